// What this CPU can run, detected once with cpuid (x86-64) and cached.
#pragma once

#include <string>
#include <vector>

#include "tileattn/tileattn.hpp"

namespace tileattn::detail {

struct CpuFeatures {
  std::string vendor;
  std::string brand;
  bool sse2 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_fp16 = false;
  bool amx_bf16 = false;
  bool amx_tile = false;
  bool os_avx = false;     // the OS saves the AVX (ymm) state
  bool os_avx512 = false;  // the OS saves the AVX-512 (zmm, opmask) state
  bool os_amx = false;     // the OS saves the AMX tile state (XCR0 bits 17, 18)

  std::vector<std::string> names() const;  // the detected features, for show_config
};

const CpuFeatures& cpu_features();

// Whether the OS has granted this process the AMX tile data state (Linux: arch_prctl, asked once).
bool amx_granted();

// Highest level this CPU can run among those compiled into the library.
Isa best_supported_isa();
// What Isa::kAuto means: best_supported_isa(), lowered by TILEATTN_ISA when that names a lower level.
Isa selected_isa();
// Whether the compiled kernels for `isa` exist and this CPU can run them.
bool isa_runnable(Isa isa);
// The value of TILEATTN_ISA when it was not understood, else empty (Python warns at import, by the same rule).
const std::string& isa_env_problem();
// Whether vdpbf16ps outruns two float32 FMAs on this CPU, so that the pairs pay for their packing: on AMD
// (Zen 4 and Zen 5: bfloat16 at 1.19-1.27x the float32 path, bench/RESULTS.md), not on Intel cores, where
// it issues at a fifth to a quarter of the FMA rate, so its two products per lane give half the FMAs'
// (0.94-1.26 G instructions/s against 4.8-5.2 on one Emerald Rapids core: 60-81 GFLOP/s against 153-166),
// and the pairs ran at 0.72-0.8x the float32 path (twenty-second session, bench/RESULTS.md).
bool bf16_dot_faster();
// Whether the AVX-512 kernels multiply bfloat16 inputs' Q K^T as pairs (vdpbf16ps): the CPU has
// AVX512_BF16, and TILEATTN_BF16_DOT is 1, or is not 0 and bf16_dot_faster(). Read at every call, so that
// a test can compare both ways.
bool bf16_dot_enabled();

}  // namespace tileattn::detail

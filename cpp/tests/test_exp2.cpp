// The kernels' vector exp2 at every instruction-set level this CPU runs, against the C library: its
// largest error in ulps over a sampled range (every 61st float of [-130, 127], 3 x 200000 random doubles),
// and its contract (simd_generic.hpp): exactly 0 below the normal range and for -inf, NaN for NaN. Run
// under the kernels' flush-to-zero (fp_env.hpp), as the kernels run it. Built with the core tests
// (TILEATTN_BUILD_TESTS); tests/test_cpp_core.py runs it.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>

#include "fp_env.hpp"
#include "half.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace {

struct Exp2Stats {
  double worst_ulp = 0;  // over the results in the normal range
  double worst_x = 0;
  long checked = 0;
  long contract_failures = 0;  // not 0 below the normal range, not NaN for NaN, not finite and > 0 above
  double failure_x = 0;
};

void fail(Exp2Stats& st, double x) {
  if (st.contract_failures++ == 0) st.failure_x = x;
}

// Error of y against 2^x in units of the ulp of T at 2^x (the reference in double for floats, within 1e-9
// of a float ulp, and in long double for doubles). Below T's normal range the result must be exactly 0;
// NaN must stay NaN. The accuracy is checked up to x = 127 (1023): the kernels call exp2 with x <= 0 only
// (scores minus their running max), and the portable and AVX2 versions clamp x at 127 (1023).
template <class T>
void note(Exp2Stats& st, T x, T y) {
  using Ref = std::conditional_t<std::is_same_v<T, float>, double, long double>;
  using Lim = std::numeric_limits<T>;
  if (std::isnan(x)) {
    if (!std::isnan(y)) fail(st, x);
    return;
  }
  const Ref e = std::exp2(static_cast<Ref>(x));
  if (e < Lim::min()) {
    if (y != T(0)) fail(st, x);
    return;
  }
  if (x > T(Lim::max_exponent - 1)) return;
  int ex;
  std::frexp(e, &ex);
  const double err = static_cast<double>(std::fabs(static_cast<Ref>(y) - e) / std::ldexp(Ref(1), ex - Lim::digits));
  ++st.checked;
  if (!(err <= st.worst_ulp)) st.worst_ulp = err, st.worst_x = x;
}

}  // namespace

// GCC 12 reports its own intrinsics headers (_mm512_undefined_*) as uninitialised under a target pragma.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define TILEATTN_ISA_NS baseline
#include "simd_generic.hpp"
#include "exp2_check.inc"
#undef TILEATTN_ISA_NS

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define TILEATTN_TEST_X86 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define TILEATTN_ISA_NS avx2
#include "simd_avx2.hpp"
#include "exp2_check.inc"
#undef TILEATTN_ISA_NS
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#endif
#define TILEATTN_ISA_NS avx512
#include "simd_avx512.hpp"
#include "exp2_check.inc"
#undef TILEATTN_ISA_NS
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

int failures = 0;

// bound: the largest error allowed, in ulps (the measured worst plus a margin; see each level's comment).
void report(const char* isa, const char* type, const Exp2Stats& st, double bound) {
  const bool ok = st.contract_failures == 0 && st.checked > 0 && st.worst_ulp <= bound;
  std::printf("%-8s %-6s worst %.4f ulp at x = %.17g over %ld values (bound %.2f); contract failures %ld%s\n", isa,
              type, st.worst_ulp, st.worst_x, st.checked, bound, st.contract_failures, ok ? "" : "  FAILED");
  if (st.contract_failures > 0) std::printf("  first contract failure at x = %.17g\n", st.failure_x);
  failures += ok ? 0 : 1;
}

}  // namespace

int main() {
  const tileattn::detail::FlushDenormals ftz;
  using namespace tileattn::kernels;
  constexpr uint32_t kStride = 61;
  constexpr int kSamples = 200000;
  // The portable level has no fused multiply-add on x86-64 (SSE2: two roundings per polynomial step):
  // 1.14 ulp (float) and 1.08 (double) measured.
  report("baseline", "float", baseline::exp2_float_stats(kStride), 1.25);
  report("baseline", "double", baseline::exp2_double_stats(kSamples), 1.25);
#if defined(TILEATTN_TEST_X86)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    // 0.94 ulp (float) and 0.79 (double) measured.
    report("avx2", "float", avx2::exp2_float_stats(kStride), 1.0);
    report("avx2", "double", avx2::exp2_double_stats(kSamples), 1.0);
  } else {
    std::printf("avx2: not run (the CPU lacks AVX2 or FMA)\n");
  }
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl")) {
    // 0.80 ulp over every float of [-126, 127] and 0.90 over 16 million doubles (bench/RESULTS.md,
    // thirty-ninth session); the fits on [0, 1) before reached 1.50 and 1.69.
    report("avx512", "float", avx512::exp2_float_stats(kStride), 0.85);
    report("avx512", "double", avx512::exp2_double_stats(kSamples), 0.95);
  } else {
    std::printf("avx512: not run (the CPU lacks AVX-512 F/BW/DQ/VL)\n");
  }
#endif
  if (failures > 0) {
    std::printf("tileattn exp2 tests: %d FAILED\n", failures);
    return 1;
  }
  std::printf("tileattn exp2 tests: ok\n");
  return 0;
}

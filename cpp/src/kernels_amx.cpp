// The tiled kernels for AVX-512 with the AMX tile unit (AMX-TILE, AMX-BF16, AVX512-BF16: Sapphire Rapids
// and later): the AVX-512 kernels, plus the matrix-unit path of TiledForward (TILEATTN_AMX; amx_tiles.hpp)
// for float32, float16 and bfloat16 inputs. Only the code inside the target region (namespace
// tileattn::kernels::amx) uses these instructions; the dispatcher calls it only on CPUs that have them and
// whose OS has granted this process the tile state (cpu_features.cpp).
#include "kernel_prelude.hpp"

// GCC 12 reports its own intrinsics headers (_mm512_undefined_*) as uninitialised under a target pragma.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c,bmi,bmi2,amx-tile,amx-bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c,bmi,bmi2,amx-tile,amx-bf16")
#endif

#define TILEATTN_ISA_NS amx
#define TILEATTN_AMX 1
#include "simd_avx512.hpp"
#include "tiled_kernel.hpp"
#include "probes_kernel.hpp"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

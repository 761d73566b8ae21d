// The tiled kernels for AVX-512 (F, BW, DQ, VL; Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4 and later).
// Only the code inside the target region (namespace tileattn::kernels::avx512) uses these instructions;
// the dispatcher calls it only on CPUs that have them.
#include "kernel_prelude.hpp"

// GCC 12 reports its own intrinsics headers (_mm512_undefined_*) as uninitialised under a target pragma.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2")
#endif

#define TILEATTN_ISA_NS avx512
#include "simd_avx512.hpp"
#include "tiled_kernel.hpp"
#include "probes_kernel.hpp"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

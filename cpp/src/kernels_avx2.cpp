// The tiled kernels for AVX2 + FMA + F16C (x86-64 from 2013 on). Only the code inside the target region
// (namespace tileattn::kernels::avx2) uses these instructions; the dispatcher calls it only on CPUs that
// have them.
#include "kernel_prelude.hpp"

// GCC 12 reports its own intrinsics headers (_mm512_undefined_*) as uninitialised under a target pragma.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2")
#endif

#define TILEATTN_ISA_NS avx2
#include "simd_avx2.hpp"
#include "tiled_kernel.hpp"
#include "probes_kernel.hpp"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

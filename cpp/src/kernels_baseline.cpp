// The tiled kernels at the baseline level: portable vectors (SSE2 on x86-64, NEON on AArch64).
#include "kernel_prelude.hpp"

#define TILEATTN_ISA_NS baseline
#include "simd_generic.hpp"
#include "tiled_kernel.hpp"
#include "probes_kernel.hpp"

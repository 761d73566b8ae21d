// Entry points of the kernels, one namespace per compiled instruction-set level. The dispatcher in
// attention.cpp is the only caller.
#pragma once

#include "tileattn/tileattn.hpp"

namespace tileattn::kernels {

// One namespace per compiled level, each with the same two functions (tiled_kernel.hpp).
#define TILEATTN_DECLARE_ISA(ns)                            \
  namespace ns {                                            \
  void tiled_attention(const Params& p, int threads);       \
  TileInfo tiled_tile_info(const Params& p, int threads);   \
  double probe_fma(bool f64, int64_t iters);                \
  double probe_fma_flops_per_iter(bool f64);                \
  double probe_read(const float* data, int64_t n);          \
  }
TILEATTN_DECLARE_ISA(baseline)
#ifdef TILEATTN_HAVE_AVX2
TILEATTN_DECLARE_ISA(avx2)
#endif
#ifdef TILEATTN_HAVE_AVX512
TILEATTN_DECLARE_ISA(avx512)
#endif
#ifdef TILEATTN_HAVE_AMX
TILEATTN_DECLARE_ISA(amx)
#endif
#undef TILEATTN_DECLARE_ISA

// The plain scalar path: one query row at a time over its full row of scores.
void reference_attention(const Params& p, int threads);

// The same for row i of query head h of sequence b only (a row the sequence has), in double (long double
// for float64): what the tiled kernels compute again for a row whose fast arithmetic broke down (scores
// or sums beyond the working precision's range), so that it still gets the exact result.
void reference_attention_row(const Params& p, int64_t b, int64_t h, int64_t i);

}  // namespace tileattn::kernels

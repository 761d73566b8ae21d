// The floating-point environment of the kernels: denormal results flushed to zero (MXCSR.FTZ) for the
// duration of a scope, then the caller's setting restored.
//
// Why: probabilities far below the row max (scores more than ~87 nats apart, common with large logits and
// with ALiBi) times values give products below 2^-126, and every x86 core handles such a denormal result
// with a microcode assist of 100+ cycles: a kernel whose rows span that range ran 5x slower. Flushing
// changes a result only where it is below 1.2e-38 (float) / 2.2e-308 (double) in magnitude, as on every GPU
// attention kernel. Denormal *inputs* are kept (no DAZ): the caller's data is never reinterpreted.
#pragma once

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define TILEATTN_HAVE_MXCSR 1
#endif

namespace tileattn::detail {

class FlushDenormals {
 public:
#if defined(TILEATTN_HAVE_MXCSR)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFtz = 0x8000;  // MXCSR bit 15: flush to zero
  unsigned saved_;
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

}  // namespace tileattn::detail

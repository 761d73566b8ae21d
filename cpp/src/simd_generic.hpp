// Portable SIMD vectors on GCC/Clang vector extensions: the baseline instruction-set level. On x86-64
// without extra flags they compile to SSE2, on AArch64 to NEON. Everything is defined inside the
// instruction-set namespace TILEATTN_ISA_NS that the including kernel unit names, so code compiled with
// different flags never shares a symbol (the ODR trap of compiling one header for several targets).
//
// Contract of every Vec implementation (the tiled kernel uses nothing else):
//   Vec<A>::kWidth, load/store (unaligned), set1, zero, fmadd(a, b, c) = a * b + c, add, mul, max,
//   reduce_add / reduce_add4 / reduce_max (fixed order), exp2, keep_first(x, n, fill) (lanes >= n become fill).
// exp2 returns exactly 0 for x < -126 (float) / -1022 (double), including -inf, and NaN for NaN (the AVX-512
// version below the normal range through the flush-to-zero every kernel runs under, fp_env.hpp).

#include <cstdint>
#include <cstring>

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including simd_generic.hpp"
#endif

namespace tileattn::kernels::TILEATTN_ISA_NS {

template <class A>
struct Vec;

// Register blocking of the tiled kernel: rows x key vectors (Q K^T) and rows x output vectors (P V).
// 8-lane vectors are two SSE registers each; 4 rows x 2 vectors keep 16 accumulators' worth in flight.
template <class A>
struct Blocking {
  static constexpr int kRows = 4;
  static constexpr int kQkVecs = 2;
  static constexpr int kPvVecs = 2;
  // Decoding (dot products on K rows as stored): 1 row x 4 keys; P V of up to 2 rows sharing their keys.
  static constexpr int kDotRows = 1;
  static constexpr int kDecodePvRows = 2;
  static constexpr int kDecodePvAccs = 8;
};

namespace generic_detail {

template <class A>
struct Lanes;
template <>
struct Lanes<float> {
  static constexpr int kWidth = 8;
  typedef float R __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  using Int = int32_t;
  static constexpr int kMantBits = 23;
  static constexpr int kBias = 127;
  static constexpr float kMin = -126.0f;   // below: result flushed to exactly 0
  static constexpr float kMax = 127.0f;    // above: clamped (never reached by softmax arguments <= 0)
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  // Taylor coefficients of 2^f = exp(f ln 2), ln2^k / k!, for |f| <= 1/2 (error < 1e-8 relative).
  static constexpr int kDegree = 7;
  static constexpr double kCoef[kDegree + 1] = {1.0,
                                                0.6931471805599453,
                                                0.2402265069591007,
                                                0.055504108664821576,
                                                0.009618129107628477,
                                                0.0013333558146428441,
                                                0.00015403530393381606,
                                                1.5252733804059838e-05};
};
template <>
struct Lanes<double> {
  static constexpr int kWidth = 4;
  typedef double R __attribute__((vector_size(32)));
  typedef int64_t I __attribute__((vector_size(32)));
  using Int = int64_t;
  static constexpr int kMantBits = 52;
  static constexpr int kBias = 1023;
  static constexpr double kMin = -1022.0;
  static constexpr double kMax = 1023.0;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int kDegree = 13;                    // error < 1e-17 relative for |f| <= 1/2
  static constexpr double kCoef[kDegree + 1] = {1.0,
                                                0.6931471805599453,
                                                0.2402265069591007,
                                                0.055504108664821576,
                                                0.009618129107628477,
                                                0.0013333558146428441,
                                                0.00015403530393381606,
                                                1.5252733804059838e-05,
                                                1.3215486790144305e-06,
                                                1.0178086009239696e-07,
                                                7.054911620801121e-09,
                                                4.44553827187081e-10,
                                                2.5678435993488196e-11,
                                                1.3691488853904124e-12};
};

}  // namespace generic_detail

template <class A>
struct Vec {
  using L = generic_detail::Lanes<A>;
  using R = typename L::R;
  using I = typename L::I;
  static constexpr int kWidth = L::kWidth;
  R v;

  static Vec load(const A* p) {
    Vec r;
    std::memcpy(&r.v, p, sizeof(R));
    return r;
  }
  void store(A* p) const { std::memcpy(p, &v, sizeof(R)); }
  static Vec set1(A x) {
    Vec r;
    r.v = R{} + x;
    return r;
  }
  static Vec zero() { return Vec{R{}}; }
  // Lane i = i, for masks.
  static I iota() {
    I r;
    for (int i = 0; i < kWidth; ++i) r[i] = i;
    return r;
  }
};

// a * b + c with one rounding, as the tests' error bounds assume (NumPy's BLAS fuses too): a real fused
// multiply-add where the target has one (AArch64; x86 built with FMA). Without one: for float, the exact
// product in double, rounded once to double and then to float; for double on x86, the product and sum in
// x87 extended precision (64-bit mantissa), rounded once to double. Both differ from a true fused result
// only by a double rounding, i.e. they are as accurate; they are slower, on CPUs older than 2013.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
constexpr bool kFusedFma = true;  // fmadd rounds once
template <class A>
inline Vec<A> fmadd(Vec<A> a, Vec<A> b, Vec<A> c) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = __builtin_fma(a.v[i], b.v[i], c.v[i]);
  return r;
}
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) {
  Vec<float> r;
  for (int i = 0; i < Vec<float>::kWidth; ++i) r.v[i] = __builtin_fmaf(a.v[i], b.v[i], c.v[i]);
  return r;
}
#else
constexpr bool kFusedFma = false;  // fmadd may round twice
template <class A>
inline Vec<A> fmadd(Vec<A> a, Vec<A> b, Vec<A> c) {
#if defined(__x86_64__) || defined(__i386__)
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) {
    r.v[i] = static_cast<A>(static_cast<long double>(a.v[i]) * b.v[i] + c.v[i]);
  }
  return r;
#else
  return Vec<A>{a.v * b.v + c.v};
#endif
}
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) {
  typedef double D __attribute__((vector_size(sizeof(double) * Vec<float>::kWidth)));
  const D r = __builtin_convertvector(a.v, D) * __builtin_convertvector(b.v, D) + __builtin_convertvector(c.v, D);
  return Vec<float>{__builtin_convertvector(r, Vec<float>::R)};
}
#endif
template <class A>
inline Vec<A> add(Vec<A> a, Vec<A> b) {
  return Vec<A>{a.v + b.v};
}
template <class A>
inline Vec<A> sub(Vec<A> a, Vec<A> b) {
  return Vec<A>{a.v - b.v};
}
template <class A>
inline Vec<A> mul(Vec<A> a, Vec<A> b) {
  return Vec<A>{a.v * b.v};
}

template <class A>
inline Vec<A> div(Vec<A> a, Vec<A> b) {
  return Vec<A>{a.v / b.v};
}

template <class A>
inline Vec<A> recip(Vec<A> x) {
  return div(Vec<A>::set1(A(1)), x);
}

template <class A>
inline Vec<A> abs(Vec<A> x) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = x.v[i] < 0 || (x.v[i] == 0 && __builtin_signbit(x.v[i])) ? -x.v[i] : x.v[i];
  return r;
}
template <class A>
inline Vec<A> copysign(Vec<A> mag, Vec<A> sgn) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = __builtin_copysign(mag.v[i], sgn.v[i]);
  return r;
}
template <class A>
inline Vec<A> select_lt(Vec<A> x, Vec<A> bound, Vec<A> a, Vec<A> b) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = x.v[i] < bound.v[i] ? a.v[i] : b.v[i];
  return r;
}
template <class A>
inline Vec<A> keep_where(Vec<A> x, const uint8_t* keep, A fill) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = keep[i] != 0 ? x.v[i] : fill;
  return r;
}
template <class A>
inline Vec<A> lane_index(A) {
  Vec<A> r;
  for (int i = 0; i < Vec<A>::kWidth; ++i) r.v[i] = static_cast<A>(i);
  return r;
}

// dst[c * ds + r] = src[r * ss + c] for a W x W block.
template <class A>
inline void transpose_block(const A* src, int64_t ss, A* dst, int64_t ds) {
  for (int c = 0; c < Vec<A>::kWidth; ++c)
    for (int r = 0; r < Vec<A>::kWidth; ++r) dst[c * ds + r] = src[r * ss + c];
}

// float16 / bfloat16 storage <-> float vectors, rounding to nearest even.
template <class T>
inline Vec<float> load_cvt(const T* p) {
  Vec<float> r;
  for (int i = 0; i < Vec<float>::kWidth; ++i) r.v[i] = detail::to_float(p[i]);
  return r;
}
inline void store_cvt(detail::Half* p, Vec<float> x) {
  for (int i = 0; i < Vec<float>::kWidth; ++i) p[i] = detail::to_half(x.v[i]);
}
inline void store_cvt(detail::BFloat16* p, Vec<float> x) {
  for (int i = 0; i < Vec<float>::kWidth; ++i) p[i] = detail::to_bfloat16(x.v[i]);
}

namespace generic_detail {
template <class A>
inline typename Vec<A>::R select(typename Vec<A>::I mask, typename Vec<A>::R yes, typename Vec<A>::R no) {
  using I = typename Vec<A>::I;
  using R = typename Vec<A>::R;
  return (R)(((I)yes & mask) | ((I)no & ~mask));
}
}  // namespace generic_detail

// max(a, b) lane-wise; a NaN in b propagates (a NaN in a may be dropped): callers keep the running
// value in a and the new data in b.
template <class A>
inline Vec<A> max(Vec<A> a, Vec<A> b) {
  return Vec<A>{generic_detail::select<A>(a.v > b.v, a.v, b.v)};
}

// min(a, b) lane-wise, with max's NaN rule.
template <class A>
inline Vec<A> min(Vec<A> a, Vec<A> b) {
  return Vec<A>{generic_detail::select<A>(a.v < b.v, a.v, b.v)};
}

template <class A>
inline A reduce_add(Vec<A> x) {
  A lanes[Vec<A>::kWidth];
  x.store(lanes);
  for (int w = Vec<A>::kWidth / 2; w >= 1; w /= 2) {
    for (int i = 0; i < w; ++i) lanes[i] += lanes[i + w];
  }
  return lanes[0];
}
// The four sums of a, b, c, d into out[0..3] (each as reduce_add).
template <class A>
inline void reduce_add4(Vec<A> a, Vec<A> b, Vec<A> c, Vec<A> d, A* out) {
  out[0] = reduce_add(a), out[1] = reduce_add(b), out[2] = reduce_add(c), out[3] = reduce_add(d);
}
template <class A>
inline A reduce_max(Vec<A> x) {
  A lanes[Vec<A>::kWidth];
  x.store(lanes);
  A m = lanes[0];
  for (int i = 1; i < Vec<A>::kWidth; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

// Lanes i >= n are replaced by `fill`.
template <class A>
inline Vec<A> keep_first(Vec<A> x, int n, A fill) {
  using I = typename Vec<A>::I;
  const I keep = Vec<A>::iota() < static_cast<typename Vec<A>::L::Int>(n);
  return Vec<A>{generic_detail::select<A>(keep, x.v, Vec<A>::set1(fill).v)};
}

// 2^x: x = n + f with n = round(x), |f| <= 1/2; 2^f by a polynomial, 2^n written into the exponent.
template <class A>
inline Vec<A> exp2(Vec<A> x) {
  using L = typename Vec<A>::L;
  using R = typename Vec<A>::R;
  using I = typename Vec<A>::I;
  const R lo = Vec<A>::set1(static_cast<A>(L::kMin)).v;
  const R hi = Vec<A>::set1(static_cast<A>(L::kMax)).v;
  const I underflow = x.v < lo;
  R xc = generic_detail::select<A>(underflow, lo, x.v);   // NaN compares false: kept
  xc = generic_detail::select<A>(xc > hi, hi, xc);
  const R magic = Vec<A>::set1(static_cast<A>(L::kMagic)).v;
  const R t = xc + magic;                                 // the integer n sits in the low mantissa bits
  const R n = t - magic;
  const R f = xc - n;
  R poly = Vec<A>::set1(static_cast<A>(L::kCoef[L::kDegree])).v;
  for (int i = L::kDegree - 1; i >= 0; --i) poly = poly * f + static_cast<A>(L::kCoef[i]);
  const I ni = (I)t - (I)magic;                           // n as an integer
  const R pow2n = (R)((ni + L::kBias) << L::kMantBits);
  const R zero = R{};
  return Vec<A>{generic_detail::select<A>(underflow, zero, poly * pow2n)};
}

// exp2 of N vectors (the instruction sets with a stage-by-stage version interleave the N chains).
template <int N, class A>
inline void exp2_n(Vec<A>* x) {
  for (int i = 0; i < N; ++i) x[i] = exp2(x[i]);
}

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

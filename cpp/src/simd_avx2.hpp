// AVX2 + FMA vectors (8 floats / 4 doubles per ymm register) for the tiled kernels. Included by
// kernels_avx2.cpp inside a `#pragma GCC target` region, within namespace TILEATTN_ISA_NS. Same contract
// as simd_generic.hpp.

#include <immintrin.h>

#include <cstdint>

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including simd_avx2.hpp"
#endif

namespace tileattn::kernels::TILEATTN_ISA_NS {

template <class A>
struct Vec;

// fmadd rounds once (a hardware fused multiply-add).
constexpr bool kFusedFma = true;

// 16 ymm registers: 6 rows x 2 vectors = 12 accumulators, 2 vectors of K or V and one broadcast. Against
// 4 x 3 (one load fewer per 12 FMAs), 6 x 2 makes key tiles and output rows whole multiples of the block
// (4 x 3 cut D128's P V into five 3-vector blocks and one latency-bound 1-vector block, and D128's key
// tiles into 48 keys): 3-6 % faster on every shape (bench/RESULTS.md, twenty-first session).
template <class A>
struct Blocking {
  static constexpr int kRows = 6;
  static constexpr int kQkVecs = 2;
  static constexpr int kPvVecs = 2;
  // Decoding (dot products on K rows as stored): 2 rows x 4 keys = 8 accumulators and 4 K vectors; P V
  // of up to 4 rows sharing their keys, with at most 12 output vectors in registers.
  static constexpr int kDotRows = 2;
  static constexpr int kDecodePvRows = 4;
  static constexpr int kDecodePvAccs = 12;
};

template <>
struct Vec<float> {
  static constexpr int kWidth = 8;
  __m256 v;
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
  static Vec zero() { return {_mm256_setzero_ps()}; }
};

template <>
struct Vec<double> {
  static constexpr int kWidth = 4;
  __m256d v;
  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
  static Vec zero() { return {_mm256_setzero_pd()}; }
};

inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> add(Vec<float> a, Vec<float> b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec<float> sub(Vec<float> a, Vec<float> b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec<float> mul(Vec<float> a, Vec<float> b) { return {_mm256_mul_ps(a.v, b.v)}; }
// vmaxps returns its second operand when either is NaN: the new data (b) keeps its NaN.
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm256_max_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm256_min_ps(a.v, b.v)}; }
inline float reduce_add(Vec<float> x) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(x.v), _mm256_extractf128_ps(x.v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline float reduce_max(Vec<float> x) {
  __m128 q = _mm_max_ps(_mm256_castps256_ps128(x.v), _mm256_extractf128_ps(x.v, 1));
  q = _mm_max_ps(q, _mm_movehl_ps(q, q));
  q = _mm_max_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
// The four sums of a, b, c, d into out[0..3], in a fixed order (pairs of lanes within 128-bit lanes,
// then the two halves): 9 instructions for four sums where four reduce_add take 24.
inline void reduce_add4(Vec<float> a, Vec<float> b, Vec<float> c, Vec<float> d, float* out) {
  const __m256 ab = _mm256_add_ps(_mm256_unpacklo_ps(a.v, b.v), _mm256_unpackhi_ps(a.v, b.v));
  const __m256 cd = _mm256_add_ps(_mm256_unpacklo_ps(c.v, d.v), _mm256_unpackhi_ps(c.v, d.v));
  const __m256d abd = _mm256_castps_pd(ab), cdd = _mm256_castps_pd(cd);
  const __m256 s = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(abd, cdd)),
                                 _mm256_castpd_ps(_mm256_unpackhi_pd(abd, cdd)));  // [a b c d] per 128 bits
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}
inline Vec<float> keep_first(Vec<float> x, int n, float fill) {
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return {_mm256_blendv_ps(_mm256_set1_ps(fill), x.v, _mm256_castsi256_ps(keep))};
}
// 2^x = 2^f * 2^n with n = round(x), |f| <= 1/2 (degree-6 minimax polynomial); exactly 0 below -126
// (and for -inf), NaN kept.
inline Vec<float> exp2(Vec<float> x) {
  const __m256 lo = _mm256_set1_ps(-126.0f);
  const __m256 underflow = _mm256_cmp_ps(x.v, lo, _CMP_LT_OQ);
  __m256 xc = _mm256_max_ps(lo, x.v);                         // NaN in x is kept
  xc = _mm256_min_ps(_mm256_set1_ps(127.0f), xc);
  const __m256 n = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(xc, n);
  __m256 p = _mm256_set1_ps(1.5353360504377633e-04f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3398875016719103e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.61843691766262e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5503323674201965e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022647738456726e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471824645996e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return {_mm256_andnot_ps(underflow, r)};
}

inline Vec<float> div(Vec<float> a, Vec<float> b) { return {_mm256_div_ps(a.v, b.v)}; }
// 1 / x within a few ulps for normal x: vrcpps (12 bits) and one Newton step.
inline Vec<float> recip(Vec<float> x) {
  const __m256 r = _mm256_rcp_ps(x.v);
  return {_mm256_fmadd_ps(r, _mm256_fnmadd_ps(x.v, r, _mm256_set1_ps(1.0f)), r)};  // r + r (1 - x r)
}
inline Vec<float> abs(Vec<float> x) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x.v)}; }
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  return {_mm256_or_ps(_mm256_andnot_ps(sign, mag.v), _mm256_and_ps(sign, sgn.v))};
}
inline Vec<float> select_lt(Vec<float> x, Vec<float> bound, Vec<float> a, Vec<float> b) {
  return {_mm256_blendv_ps(b.v, a.v, _mm256_cmp_ps(x.v, bound.v, _CMP_LT_OQ))};
}
inline Vec<float> keep_where(Vec<float> x, const uint8_t* keep, float fill) {
  const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(keep)));
  const __m256 zero = _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_setzero_si256()));
  return {_mm256_blendv_ps(x.v, _mm256_set1_ps(fill), zero)};
}
inline Vec<float> lane_index(float) { return {_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)}; }

// dst[c * ds + r] = src[r * ss + c] for an 8 x 8 block.
inline void transpose_block(const float* src, int64_t ss, float* dst, int64_t ds) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ss);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {  // r[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3
    r[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * ds, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
    _mm256_storeu_ps(dst + (4 + c) * ds, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
  }
}

inline Vec<float> load_cvt(const detail::Half* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline Vec<float> load_cvt(const detail::BFloat16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16))};
}
inline void store_cvt(detail::Half* p, Vec<float> x) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline void store_cvt(detail::BFloat16* p, Vec<float> x) {
  float lanes[8];
  _mm256_storeu_ps(lanes, x.v);
  for (int i = 0; i < 8; ++i) p[i] = detail::to_bfloat16(lanes[i]);
}

inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> add(Vec<double> a, Vec<double> b) { return {_mm256_add_pd(a.v, b.v)}; }
inline Vec<double> sub(Vec<double> a, Vec<double> b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline Vec<double> mul(Vec<double> a, Vec<double> b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm256_max_pd(a.v, b.v)}; }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return {_mm256_min_pd(a.v, b.v)}; }
inline double reduce_add(Vec<double> x) {
  __m128d q = _mm_add_pd(_mm256_castpd256_pd128(x.v), _mm256_extractf128_pd(x.v, 1));
  q = _mm_add_sd(q, _mm_unpackhi_pd(q, q));
  return _mm_cvtsd_f64(q);
}
inline double reduce_max(Vec<double> x) {
  __m128d q = _mm_max_pd(_mm256_castpd256_pd128(x.v), _mm256_extractf128_pd(x.v, 1));
  q = _mm_max_sd(q, _mm_unpackhi_pd(q, q));
  return _mm_cvtsd_f64(q);
}
inline void reduce_add4(Vec<double> a, Vec<double> b, Vec<double> c, Vec<double> d, double* out) {
  const __m256d ab = _mm256_add_pd(_mm256_unpacklo_pd(a.v, b.v), _mm256_unpackhi_pd(a.v, b.v));  // [a b a b]
  const __m256d cd = _mm256_add_pd(_mm256_unpacklo_pd(c.v, d.v), _mm256_unpackhi_pd(c.v, d.v));
  _mm256_storeu_pd(out, _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31)));
}
inline Vec<double> keep_first(Vec<double> x, int n, double fill) {
  const __m256i keep = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  return {_mm256_blendv_pd(_mm256_set1_pd(fill), x.v, _mm256_castsi256_pd(keep))};
}
inline Vec<double> div(Vec<double> a, Vec<double> b) { return {_mm256_div_pd(a.v, b.v)}; }
inline Vec<double> recip(Vec<double> x) { return div(Vec<double>::set1(1.0), x); }
inline Vec<double> abs(Vec<double> x) { return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), x.v)}; }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  return {_mm256_or_pd(_mm256_andnot_pd(sign, mag.v), _mm256_and_pd(sign, sgn.v))};
}
inline Vec<double> select_lt(Vec<double> x, Vec<double> bound, Vec<double> a, Vec<double> b) {
  return {_mm256_blendv_pd(b.v, a.v, _mm256_cmp_pd(x.v, bound.v, _CMP_LT_OQ))};
}
inline Vec<double> keep_where(Vec<double> x, const uint8_t* keep, double fill) {
  int32_t four;
  std::memcpy(&four, keep, 4);
  const __m256i k = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
  const __m256d zero = _mm256_castsi256_pd(_mm256_cmpeq_epi64(k, _mm256_setzero_si256()));
  return {_mm256_blendv_pd(x.v, _mm256_set1_pd(fill), zero)};
}
inline Vec<double> lane_index(double) { return {_mm256_setr_pd(0, 1, 2, 3)}; }

// dst[c * ds + r] = src[r * ss + c] for a 4 x 4 block.
inline void transpose_block(const double* src, int64_t ss, double* dst, int64_t ds) {
  const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ss);
  const __m256d r2 = _mm256_loadu_pd(src + 2 * ss), r3 = _mm256_loadu_pd(src + 3 * ss);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + ds, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * ds, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * ds, _mm256_permute2f128_pd(t1, t3, 0x31));
}

// Degree-13 Taylor polynomial; 2^n assembled in the exponent bits (n in [-1022, 1023]); exactly 0 below
// -1022 (and for -inf), NaN kept.
inline Vec<double> exp2(Vec<double> x) {
  const __m256d lo = _mm256_set1_pd(-1022.0);
  const __m256d underflow = _mm256_cmp_pd(x.v, lo, _CMP_LT_OQ);
  __m256d xc = _mm256_max_pd(lo, x.v);
  xc = _mm256_min_pd(_mm256_set1_pd(1023.0), xc);
  const __m256d n = _mm256_round_pd(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d f = _mm256_sub_pd(xc, n);
  static constexpr double kCoef[14] = {1.0,
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
  __m256d p = _mm256_set1_pd(kCoef[13]);
  for (int i = 12; i >= 0; --i) p = _mm256_fmadd_pd(p, f, _mm256_set1_pd(kCoef[i]));
  // 2^n: n + 1023 into the exponent field, via the 1.5 * 2^52 trick (no 64-bit conversion in AVX2).
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);
  const __m256i bits = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
  const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52);
  const __m256d r = _mm256_mul_pd(p, _mm256_castsi256_pd(e));
  return {_mm256_andnot_pd(underflow, r)};
}

// exp2 of N vectors (the instruction sets with a stage-by-stage version interleave the N chains).
template <int N, class A>
inline void exp2_n(Vec<A>* x) {
  for (int i = 0; i < N; ++i) x[i] = exp2(x[i]);
}

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

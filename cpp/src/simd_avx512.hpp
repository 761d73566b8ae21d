// AVX-512 vectors (16 floats / 8 doubles per zmm register) for the tiled kernels. Included by
// kernels_avx512.cpp inside a `#pragma GCC target` region, within namespace TILEATTN_ISA_NS, so every
// function here is compiled for AVX-512 and nothing else is. Same contract as simd_generic.hpp.

#include <immintrin.h>

#include <cstdint>

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including simd_avx512.hpp"
#endif

namespace tileattn::kernels::TILEATTN_ISA_NS {

template <class A>
struct Vec;

// fmadd rounds once (a hardware fused multiply-add).
constexpr bool kFusedFma = true;

// Register blocks: 6 rows x 4 vectors = 24 accumulators, 4 vectors of K or V, and the row values come
// in as embedded broadcasts (vfmadd231ps zmm, zmm, [mem]{1to16}): 28 of the 32 zmm registers.
template <class A>
struct Blocking {
  static constexpr int kRows = 6;
  static constexpr int kQkVecs = 4;
  static constexpr int kPvVecs = 4;
  // Decoding (dot products on K rows as stored): up to 6 rows x 4 keys = 24 accumulators and 4 K vectors;
  // P V of up to 6 rows sharing their keys, with at most 24 output vectors in registers.
  static constexpr int kDotRows = 6;
  static constexpr int kDecodePvRows = 6;
  static constexpr int kDecodePvAccs = 24;
};

template <>
struct Vec<float> {
  static constexpr int kWidth = 16;
  __m512 v;
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
  static Vec zero() { return {_mm512_setzero_ps()}; }
};

template <>
struct Vec<double> {
  static constexpr int kWidth = 8;
  __m512d v;
  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  static Vec set1(double x) { return {_mm512_set1_pd(x)}; }
  static Vec zero() { return {_mm512_setzero_pd()}; }
};

inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> add(Vec<float> a, Vec<float> b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec<float> sub(Vec<float> a, Vec<float> b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec<float> mul(Vec<float> a, Vec<float> b) { return {_mm512_mul_ps(a.v, b.v)}; }
// vmaxps returns its second operand when either is NaN: the new data (b) keeps its NaN.
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm512_max_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm512_min_ps(a.v, b.v)}; }
inline float reduce_add(Vec<float> x) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(x.v), _mm512_extractf32x8_ps(x.v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline float reduce_max(Vec<float> x) {
  const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(x.v), _mm512_extractf32x8_ps(x.v, 1));
  __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_max_ps(q, _mm_movehl_ps(q, q));
  q = _mm_max_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
// The four sums of a, b, c, d into out[0..3], in a fixed order (pairs of lanes within 128-bit lanes,
// then the 128-bit lanes): 13 instructions for four sums where four reduce_add take 28.
inline void reduce_add4(Vec<float> a, Vec<float> b, Vec<float> c, Vec<float> d, float* out) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a.v, b.v), _mm512_unpackhi_ps(a.v, b.v));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c.v, d.v), _mm512_unpackhi_ps(c.v, d.v));
  const __m512d abd = _mm512_castps_pd(ab), cdd = _mm512_castps_pd(cd);
  const __m512 s = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd)));  // [a b c d] per 128 bits
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
inline Vec<float> keep_first(Vec<float> x, int n, float fill) {
  const __mmask16 keep = n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
  return {_mm512_mask_blend_ps(keep, _mm512_set1_ps(fill), x.v)};
}
// 2^x = 2^f * 2^n with n = x rounded to the nearest integer and f = x - n in [-0.5, 0.5] from one vreduceps,
// a degree-6 minimax polynomial (relative error 3e-9 with these float coefficients; exactly 1 at f = 0) and
// vscalefps, which applies 2^n itself and keeps NaN: within 0.80 ulp of 2^x over every float in
// [-126, 128) (the fit on [0, 1) with n = floor(x) it replaces reached 1.50 ulp, at x = -0.00226: Horner's
// roundings grow with |f|). Eight instructions, six of them FMAs.
// What it gives below the normal range rests on the kernels' flush-to-zero (fp_env.hpp), under which they
// all run: 2^x < 2^-126 is flushed to exactly 0, never a denormal, whose microcode assists would slow
// every later multiply by it (P V) a hundredfold; -inf (and any x below -150) gives 0 without it, since
// vreduceps returns 0 for an integer (-inf included) and vscalefps by -inf gives 0. No compare and no
// clamp: on Zen 4 a compare into a mask takes an FMA slot, and the FMA ports bound the softmax's loop
// (7 FMA-port and 6 add-port cycles per vector of 16 scores with its exponent and sum, where the
// compare made it 8; bench/RESULTS.md, thirty-ninth session).
// exp2_n: N vectors at once, stage by stage, so that the N independent chains are interleaved in the
// instruction stream (exp2 is exp2_n<1>: the same results, bit for bit). One vector after another, each a
// chain of ten dependent instructions then (~40 cycles), the softmax of a full block ran at a third of the
// ports' throughput.
template <int N>
inline void exp2_n(Vec<float>* x) {
  __m512 f[N], p[N];
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) f[i] = _mm512_reduce_ps(x[i].v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  static constexpr float kCoef[6] = {1.3390961103141308e-03f, 9.618498384952545e-03f, 5.550359562039375e-02f,
                                     2.4022647738456726e-01f, 6.931471824645996e-01f, 1.0f};
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm512_fmadd_ps(_mm512_set1_ps(1.5329517191275954e-04f), f[i], _mm512_set1_ps(kCoef[0]));
#pragma GCC unroll 8
  for (int k = 1; k < 6; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) p[i] = _mm512_fmadd_ps(p[i], f[i], _mm512_set1_ps(kCoef[k]));
  }
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) x[i].v = _mm512_scalef_ps(p[i], _mm512_sub_ps(x[i].v, f[i]));  // n = x - f, exact
}

inline Vec<float> exp2(Vec<float> x) {
  exp2_n<1>(&x);
  return x;
}

inline Vec<float> div(Vec<float> a, Vec<float> b) { return {_mm512_div_ps(a.v, b.v)}; }
// 1 / x within 2 ulps for normal x: vrcp14ps and one Newton step (no divider: a tenth of vdivps' cost).
inline Vec<float> recip(Vec<float> x) {
  const __m512 r = _mm512_rcp14_ps(x.v);
  return {_mm512_fmadd_ps(r, _mm512_fnmadd_ps(x.v, r, _mm512_set1_ps(1.0f)), r)};  // r + r (1 - x r)
}
inline Vec<float> abs(Vec<float> x) { return {_mm512_abs_ps(x.v)}; }
// The magnitude of `mag` with the sign of `sgn`.
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(sgn.v), _mm512_castps_si512(mag.v), 0xca))};
}
// Lanes where x < bound take a, the others b.
inline Vec<float> select_lt(Vec<float> x, Vec<float> bound, Vec<float> a, Vec<float> b) {
  return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(x.v, bound.v, _CMP_LT_OQ), b.v, a.v)};
}
// Lanes whose byte in `keep` is zero become fill.
inline Vec<float> keep_where(Vec<float> x, const uint8_t* keep, float fill) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keep));
  return {_mm512_mask_blend_ps(_mm_test_epi8_mask(bytes, bytes), _mm512_set1_ps(fill), x.v)};
}
inline Vec<float> lane_index(float) {
  return {_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)};
}

// acc + the dot products of bfloat16 pairs (AVX512_BF16's vdpbf16ps): per lane, acc + q1 k1 + q0 k0, each
// product exact in float and each addition rounded (to nearest even, denormal inputs and results taken
// as zero): what two multiply-adds give. Only for a CPU that has the extension (the caller checks), hence
// its own target; TiledForward's bfloat16 inputs then multiply Q K^T at twice the float rate.
#define TILEATTN_BF16_DOT 1
__attribute__((target("avx512bf16"), always_inline)) inline Vec<float> dot_bf16_pairs(Vec<float> acc, __m512i q2,
                                                                                       __m512i k2) {
  return {_mm512_dpbf16_ps(acc.v, (__m512bh)q2, (__m512bh)k2)};
}

// dst[c * ds + r] = src[r * ss + c] for a 16 x 16 block: four rounds of 16 shuffles.
inline void transpose_block(const float* src, int64_t ss, float* dst, int64_t ds) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ss);
  for (int i = 0; i < 8; ++i) {  // pairs of rows, interleaved within 128-bit lanes
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3
    r[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {  // gather the 128-bit lanes of column 4L + c from the four row groups
    const __m512 v = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    const __m512 w = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
    const __m512 x = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    const __m512 y = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    _mm512_storeu_ps(dst + (0 + c) * ds, _mm512_shuffle_f32x4(v, x, 0x88));
    _mm512_storeu_ps(dst + (8 + c) * ds, _mm512_shuffle_f32x4(v, x, 0xdd));
    _mm512_storeu_ps(dst + (4 + c) * ds, _mm512_shuffle_f32x4(w, y, 0x88));
    _mm512_storeu_ps(dst + (12 + c) * ds, _mm512_shuffle_f32x4(w, y, 0xdd));
  }
}

// float16 / bfloat16 storage <-> float vectors (16 elements, unaligned); rounding to nearest even.
inline Vec<float> load_cvt(const detail::Half* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
inline Vec<float> load_cvt(const detail::BFloat16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
}
inline void store_cvt(detail::Half* p, Vec<float> x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline void store_cvt(detail::BFloat16* p, Vec<float> x) {
  const __m512i bits = _mm512_castps_si512(x.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x.v, x.v, _CMP_UNORD_Q);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet)));
}

inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> add(Vec<double> a, Vec<double> b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Vec<double> sub(Vec<double> a, Vec<double> b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Vec<double> mul(Vec<double> a, Vec<double> b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm512_max_pd(a.v, b.v)}; }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return {_mm512_min_pd(a.v, b.v)}; }
inline double reduce_add(Vec<double> x) {
  const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(x.v), _mm512_extractf64x4_pd(x.v, 1));
  __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
  q = _mm_add_sd(q, _mm_unpackhi_pd(q, q));
  return _mm_cvtsd_f64(q);
}
inline double reduce_max(Vec<double> x) {
  const __m256d h = _mm256_max_pd(_mm512_castpd512_pd256(x.v), _mm512_extractf64x4_pd(x.v, 1));
  __m128d q = _mm_max_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
  q = _mm_max_sd(q, _mm_unpackhi_pd(q, q));
  return _mm_cvtsd_f64(q);
}
inline void reduce_add4(Vec<double> a, Vec<double> b, Vec<double> c, Vec<double> d, double* out) {
  const __m512d ab = _mm512_add_pd(_mm512_unpacklo_pd(a.v, b.v), _mm512_unpackhi_pd(a.v, b.v));  // [a b] x 4
  const __m512d cd = _mm512_add_pd(_mm512_unpacklo_pd(c.v, d.v), _mm512_unpackhi_pd(c.v, d.v));
  const __m512d u = _mm512_add_pd(_mm512_shuffle_f64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));  // [ab ab cd cd]
  const __m512d w = _mm512_shuffle_f64x2(u, u, _MM_SHUFFLE(3, 1, 2, 0));                   // [ab cd ab cd]
  _mm256_storeu_pd(out, _mm256_add_pd(_mm512_castpd512_pd256(w), _mm512_extractf64x4_pd(w, 1)));
}
inline Vec<double> keep_first(Vec<double> x, int n, double fill) {
  const __mmask8 keep = n >= 8 ? __mmask8(0xff) : static_cast<__mmask8>((1u << n) - 1u);
  return {_mm512_mask_blend_pd(keep, _mm512_set1_pd(fill), x.v)};
}
inline Vec<double> div(Vec<double> a, Vec<double> b) { return {_mm512_div_pd(a.v, b.v)}; }
// 1 / x within 2 ulps for normal x: vrcp14pd and two Newton steps.
inline Vec<double> recip(Vec<double> x) {
  __m512d r = _mm512_rcp14_pd(x.v);
  r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(x.v, r, _mm512_set1_pd(1.0)), r);
  return {_mm512_fmadd_pd(r, _mm512_fnmadd_pd(x.v, r, _mm512_set1_pd(1.0)), r)};
}
inline Vec<double> abs(Vec<double> x) { return {_mm512_abs_pd(x.v)}; }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m512i sign = _mm512_set1_epi64(static_cast<long long>(0x8000000000000000ull));
  return {_mm512_castsi512_pd(_mm512_ternarylogic_epi64(sign, _mm512_castpd_si512(sgn.v), _mm512_castpd_si512(mag.v), 0xca))};
}
inline Vec<double> select_lt(Vec<double> x, Vec<double> bound, Vec<double> a, Vec<double> b) {
  return {_mm512_mask_blend_pd(_mm512_cmp_pd_mask(x.v, bound.v, _CMP_LT_OQ), b.v, a.v)};
}
inline Vec<double> keep_where(Vec<double> x, const uint8_t* keep, double fill) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(keep));
  return {_mm512_mask_blend_pd(static_cast<__mmask8>(_mm_test_epi8_mask(bytes, bytes)), _mm512_set1_pd(fill), x.v)};
}
inline Vec<double> lane_index(double) { return {_mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7)}; }

// dst[c * ds + r] = src[r * ss + c] for an 8 x 8 block.
inline void transpose_block(const double* src, int64_t ss, double* dst, int64_t ds) {
  __m512d r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_pd(src + i * ss);
  for (int i = 0; i < 4; ++i) {  // t[2i], lane L: column 2L of rows 2i, 2i+1; t[2i+1]: column 2L + 1
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  for (int c = 0; c < 2; ++c) {
    const __m512d v = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88);
    const __m512d w = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xdd);
    const __m512d x = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88);
    const __m512d y = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xdd);
    _mm512_storeu_pd(dst + (0 + c) * ds, _mm512_shuffle_f64x2(v, x, 0x88));
    _mm512_storeu_pd(dst + (4 + c) * ds, _mm512_shuffle_f64x2(v, x, 0xdd));
    _mm512_storeu_pd(dst + (2 + c) * ds, _mm512_shuffle_f64x2(w, y, 0x88));
    _mm512_storeu_pd(dst + (6 + c) * ds, _mm512_shuffle_f64x2(w, y, 0xdd));
  }
}

// 2^x = 2^f * 2^n with n = x rounded to the nearest integer and f = x - n in [-0.5, 0.5] from vreducepd, a
// degree-11 Chebyshev fit (relative error 2e-17 with these double coefficients; exactly 1 at f = 0) and
// vscalefpd: within 0.90 ulp of 2^x on 16 million samples of [-1030, 1024) (the fit on [0, 1) it replaces
// reached 1.69 ulp). Below 2^-1022 the kernels' flush-to-zero gives exactly 0, -inf gives 0, NaN is kept;
// no compare (see the float version). N vectors at once as for float.
template <int N>
inline void exp2_n(Vec<double>* x) {
  static constexpr double kCoef[12] = {1.0,
                                       0.6931471805599453,
                                       0.24022650695910158,
                                       0.055504108664821625,
                                       0.009618129107587256,
                                       0.001333355814640647,
                                       0.00015403530463724353,
                                       1.5252733841556773e-05,
                                       1.3215432535912375e-06,
                                       1.0178057087733941e-07,
                                       7.074194297288521e-09,
                                       4.4558179083360645e-10};
  __m512d f[N], p[N];
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) f[i] = _mm512_reduce_pd(x[i].v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) p[i] = _mm512_set1_pd(kCoef[11]);
#pragma GCC unroll 16
  for (int k = 10; k >= 0; --k) {
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) p[i] = _mm512_fmadd_pd(p[i], f[i], _mm512_set1_pd(kCoef[k]));
  }
#pragma GCC unroll 16
  for (int i = 0; i < N; ++i) x[i].v = _mm512_scalef_pd(p[i], _mm512_sub_pd(x[i].v, f[i]));  // n = x - f, exact
}
inline Vec<double> exp2(Vec<double> x) {
  exp2_n<1>(&x);
  return x;
}

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

// The tiled attention forward pass, written once against the Vec<A> interface and compiled once per
// instruction set: a kernel translation unit defines TILEATTN_ISA_NS, includes its SIMD header (which
// defines Vec and Blocking inside tileattn::kernels::TILEATTN_ISA_NS) and then this file.
//
// Algorithm (FlashAttention-2's forward pass on a CPU):
//   A work item is (batch b, kv head g, block of query positions [i0, i0 + nq)); it owns the query rows of
//   all `group` query heads that read kv head g, so each packed K/V tile serves every one of them.
//   1. Pack the item's query rows once into scratch, converted to the accumulation type A.
//   2. For each KV tile of block_k keys that some row of the item may see (causal: the tiles right of the
//      item's last diagonal are never touched, neither read nor packed):
//        pack K^T (vectors of W keys per head-dim index) and V (rows padded to whole vectors);
//        for each register block of MR rows (in groups of sub_blocks_ when the tile is larger than L1 can
//        keep: first every block's scores and softmax, then every block's P V; with a bias that differs
//        per row, several tiles are packed at once and each group walks all of them before the next group
//        starts, so that a row's bias is read in one run):
//          S = Q K^T                                   (MR x NQ*W scores in registers, then a small buffer)
//          per row: mask keys the row may not see by selection (never by adding -inf, so a NaN stored
//          in an invisible key cannot reach the row); m' = max(m, rowmax S c); alpha = 2^(m - m');
//          P = 2^(S c - m') with c = scale * log2(e) (one fma; after the element-wise options the scores
//          and m are in nats, and P = 2^((S - m') log2(e))); l = alpha * l + rowsum P
//          O = alpha * O + P V                         (MR x NP*W outputs in registers per Dv chunk; the
//                                                       tile's P V is summed from zero, then merged)
//   3. out = O / l and lse = (m + log2 l) * ln 2 per row; a row that saw no key (l == 0) gets +0 and -inf.
//
// Memory traffic per item: q rows and out rows once; every K/V element the item may see once from the
// caller's arrays (packing) and then from L2 for each register block of rows. Extra memory per thread is
// the item's rows (kItemBytes) plus one KV tile (kKvTileBytes, twice that for many rows), or kChunkBytes of
// tiles with a row-wise bias: independent of seq_q x seq_k.
//
// Determinism: every output row is computed by one thread with a fixed sequence of operations that
// depends only on the row, the KV tile size and the instruction set: not on the thread count, the item
// size, which rows share a register block, or the input strides.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "cpu_features.hpp"
#include "fp_env.hpp"
#include "half.hpp"
#include "kernels.hpp"
#include "masking.hpp"
#include "row_prefetch.hpp"
#include "scratch.hpp"
#include "static_switch.hpp"
#include "thread_pool.hpp"
#include "tile_config.hpp"
#include "tileattn/tileattn.hpp"

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including tiled_kernel.hpp"
#endif

#ifdef TILEATTN_AMX
#include "amx_tiles.hpp"
#endif

namespace tileattn::kernels::TILEATTN_ISA_NS {

using detail::BFloat16;
using detail::ceil_div;
using detail::Half;
using detail::round_up;

// S[r][n*W + w] = sum_d q[r][d] * kt[d][n][w] for R rows and N key vectors (kt: one chunk of the packed
// K^T, whose N vectors for one d are contiguous, so the loop reads one stream). The sum over d is two-level:
// blocks of kDotBlock terms in registers, then the blocks' sums in S, which keeps the rounding error of
// long head dims at the level of a blocked BLAS dot product. With `vmax`, also vmax[r] = max(vmax[r], S[r])
// lane-wise, taken from the registers as the scores are stored.
// Kept out of line: its 24 accumulators need the whole register file, whatever the caller keeps live.
//
// `epi(r, key, x)` maps the finished scores of row r, keys key .. key + W - 1 (key0 + n * W) before they
// are stored: the element-wise options, fused here when the whole block sees the whole chunk.
//
// `epi.prefetch(i, first, key0)` is called at step i of each segment of the sum (first: the first
// segment), and in the epilogue with i = r for each row r >= head_dim: one row's prefetches per step of
// the FMA loop, spread over it instead of issued in one burst. `s` is written only through its own
// pointer (__restrict): the epilogue's operands (scale, bias rows) then stay in registers instead of being
// reloaded after every store (ALiBi's cost over the plain call halved, bench/RESULTS.md).
template <class A>
struct NoEpilogue {
  Vec<A> operator()(int, int64_t, Vec<A> x) const { return x; }
  void prefetch(int64_t, bool, int64_t) const {}
};

// Unrolls the loop that follows it (GCC and Clang): the register blocks index their accumulators by the
// loop variables, which must be constants for the accumulators to stay in registers.
#if defined(__clang__)
#define TILEATTN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define TILEATTN_UNROLL _Pragma("GCC unroll 16")
#else
#define TILEATTN_UNROLL
#endif

template <class A, int R, int N>
__attribute__((always_inline)) inline void qk_zero(Vec<A> (&acc)[R][N]) {
  TILEATTN_UNROLL
  for (int r = 0; r < R; ++r) {
    TILEATTN_UNROLL
    for (int n = 0; n < N; ++n) acc[r][n] = Vec<A>::zero();
  }
}

// A segment of Q K^T done: its sums go to S (added to the earlier segments' sums), the last segment's
// through the epilogue, whose row maxima go to vmax. Each case is its own unrolled loop, so that the
// accumulators never leave the registers. `terms`: the segments' loop count in all (the epilogue's
// prefetches not yet issued by the loop follow here).
template <class A, int R, int N, class Epi>
__attribute__((always_inline)) inline void qk_store(Vec<A> (&acc)[R][N], bool first, bool last, A* __restrict s,
                                                    int64_t lds, Vec<A>* vmax, const Epi& epi, int64_t key0,
                                                    int64_t terms) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  const auto finish = [&](auto first_c, auto last_c) {
    constexpr bool kFirst = decltype(first_c)::value, kLast = decltype(last_c)::value;
    TILEATTN_UNROLL
    for (int r = 0; r < R; ++r) {
      V m = V::set1(-std::numeric_limits<A>::infinity());
      TILEATTN_UNROLL
      for (int n = 0; n < N; ++n) {
        A* dst = s + r * lds + n * W;
        V x = acc[r][n];
        if constexpr (!kFirst) x = add(V::load(dst), x);
        if constexpr (kLast) {
          if (n == 0 && r >= terms) epi.prefetch(r, true, key0);
          x = epi(r, key0 + n * W, x);
          m = max(m, x);
        }
        x.store(dst);
      }
      if constexpr (kLast) {
        if (vmax != nullptr) vmax[r] = max(vmax[r], m);
      }
    }
  };
  using False = std::false_type;
  using True = std::true_type;
  if (first) {
    last ? finish(True{}, True{}) : finish(True{}, False{});
  } else {
    last ? finish(False{}, True{}) : finish(False{}, False{});
  }
}

// NS: key vectors per head-dim index in kt's chunk (N < NS: only the chunk's first N vectors, for a block whose
// rows see no key beyond them).
template <class A, int R, int N, class Epi = NoEpilogue<A>, int NS = N>
__attribute__((noinline)) void qk_block(const A* q, int64_t ldq, const A* kt, int64_t head_dim, A* __restrict s,
                                        int64_t lds, Vec<A>* vmax, const Epi& epi = Epi{}, int64_t key0 = 0) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  for (int64_t d0 = 0; d0 < head_dim; d0 += detail::kDotBlock) {
    const int64_t d1 = std::min(head_dim, d0 + detail::kDotBlock);
    V acc[R][N];
    qk_zero(acc);
    for (int64_t d = d0; d < d1; ++d) {
      epi.prefetch(d - d0, d0 == 0, key0);
      V kv[N];
      TILEATTN_UNROLL
      for (int n = 0; n < N; ++n) kv[n] = V::load(kt + (d * NS + n) * W);
      TILEATTN_UNROLL
      for (int r = 0; r < R; ++r) {
        const V qv = V::set1(q[r * ldq + d]);
        TILEATTN_UNROLL
        for (int n = 0; n < N; ++n) acc[r][n] = fmadd(qv, kv[n], acc[r][n]);  // s += q * k
      }
    }
    qk_store<A, R, N>(acc, d0 == 0, d1 == head_dim, s, lds, vmax, epi, key0, head_dim);
  }
}

#ifdef TILEATTN_BF16_DOT
// qk_block on bfloat16 pairs (dot_bf16_pairs): q holds each row's pairs (d, d + 1) as 32-bit words
// (ldq words apart, a zero after an odd head_dim), kt the keys' pairs laid out as the float K^T with
// `pairs` in place of head_dim. The sums run in segments of kDotBlock terms as in qk_block; within a
// pair, d + 1 is added before d.
template <int R, int N, class Epi = NoEpilogue<float>, int NS = N>
__attribute__((noinline, target("avx512bf16"))) void qk_block_bf16(const uint32_t* q, int64_t ldq, const float* kt,
                                                                   int64_t pairs, float* __restrict s, int64_t lds,
                                                                   Vec<float>* vmax, const Epi& epi = Epi{},
                                                                   int64_t key0 = 0) {
  using V = Vec<float>;
  constexpr int W = V::kWidth;
  constexpr int64_t kSegment = detail::kDotBlock / 2;
  for (int64_t d0 = 0; d0 < pairs; d0 += kSegment) {
    const int64_t d1 = std::min(pairs, d0 + kSegment);
    V acc[R][N];
    qk_zero(acc);
    for (int64_t d = d0; d < d1; ++d) {
      epi.prefetch(d - d0, d0 == 0, key0);
      __m512i kv[N];
      TILEATTN_UNROLL
      for (int n = 0; n < N; ++n) kv[n] = _mm512_loadu_si512(kt + (d * NS + n) * W);
      TILEATTN_UNROLL
      for (int r = 0; r < R; ++r) {
        const __m512i qv = _mm512_set1_epi32(static_cast<int>(q[r * ldq + d]));
        TILEATTN_UNROLL
        for (int n = 0; n < N; ++n) acc[r][n] = dot_bf16_pairs(acc[r][n], qv, kv[n]);  // s += q . k, a pair
      }
    }
    qk_store<float, R, N>(acc, d0 == 0, d1 == pairs, s, lds, vmax, epi, key0, pairs);
  }
}
#endif

// P V for R rows and N output vectors starting at column `col`: acc[r] = sum_{j < nkeys} p[r][j] * vt[j],
// summed from zero over these keys only, then merged into the running output: o[r] = alpha[r] * o[r] +
// acc[r] (the online-softmax rescale comes free; alpha is 1 for all but a tile's first chain).
// kRagged (rows that see prefixes of the keys, the causal diagonal): row r sums keys [0, ends[r]) only, its
// probabilities past them never read, with the operations per element of a block over ends[r] keys (so the
// same bits as the row on its own), a test per row and key in place of a call per row.
template <class A, int R, int N, bool kRagged = false>
inline void pv_block(const A* const* p, A* const* o, const A* alpha, const A* vt, int64_t ldv, int64_t nkeys,
                     int64_t col, const int64_t* ends = nullptr) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  V acc[R][N];
  TILEATTN_UNROLL
  for (int r = 0; r < R; ++r) {
    TILEATTN_UNROLL
    for (int n = 0; n < N; ++n) acc[r][n] = V::zero();
  }
  for (int64_t j = 0; j < nkeys; ++j) {
    V vv[N];
    TILEATTN_UNROLL
    for (int n = 0; n < N; ++n) vv[n] = V::load(vt + j * ldv + col + n * W);
    TILEATTN_UNROLL
    for (int r = 0; r < R; ++r) {
      if constexpr (kRagged) {
        if (j >= ends[r]) continue;
      }
      const V pv = V::set1(p[r][j]);
      TILEATTN_UNROLL
      for (int n = 0; n < N; ++n) acc[r][n] = fmadd(pv, vv[n], acc[r][n]);  // acc += p * v
    }
  }
  TILEATTN_UNROLL
  for (int r = 0; r < R; ++r) {
    const V av = V::set1(alpha[r]);
    TILEATTN_UNROLL
    for (int n = 0; n < N; ++n) {
      A* dst = o[r] + col + n * W;
      fmadd(V::load(dst), av, acc[r][n]).store(dst);  // o = alpha * o + acc
    }
  }
}


// W elements of storage type T at p as a vector of A (T == A: a plain load; float16/bfloat16: converted).
template <class A, class T>
inline Vec<A> load_as_vec(const T* p) {
  if constexpr (std::is_same_v<T, A>) {
    return Vec<A>::load(p);
  } else {
    return load_cvt(p);
  }
}

// dst[i] = caller_array[start + i * stride] as A, for i < n. Caller arrays may be unaligned.
template <class A, class T>
inline void read_row(const void* base, int64_t start, int64_t stride, int64_t n, A* dst) {
  constexpr int W = Vec<A>::kWidth;
  int64_t i = 0;
  if (stride == 1) {
    const T* src = reinterpret_cast<const T*>(static_cast<const char*>(base) + start * int64_t{sizeof(T)});
    for (; i + W <= n; i += W) load_as_vec<A>(src + i).store(dst + i);
  }
  for (; i < n; ++i) dst[i] = detail::load_as<A>(detail::load_elem<T>(base, start + i * stride));
}

// x / l, correctly rounded, without a division per vector (vdivps cost 4-5 % of a 128-token call):
// q = x * r with r = RN(1 / l), then one correction q + r (x - q l), where x - q l is exact through a fused
// multiply-add. With r correctly rounded and q within an ulp, this gives RN(x / l) (Markstein's theorem),
// so the result is the division's, bit for bit (1 <= l < inf here; an infinite x keeps q = x * r, which is
// x / l, where the correction would give inf - inf). Without a fused fmadd (the portable build on old x86):
// the division.
template <class A>
inline Vec<A> div_by(Vec<A> x, Vec<A> l, Vec<A> neg_l, Vec<A> r) {
  if constexpr (kFusedFma) {
    const Vec<A> q = mul(x, r);
    const Vec<A> inf = Vec<A>::set1(std::numeric_limits<A>::infinity());
    return select_lt(abs(q), inf, fmadd(fmadd(q, neg_l, x), r, q), q);  // NaN: q, which is NaN
  } else {
    (void)neg_l, (void)r;
    return div(x, l);
  }
}

// caller_array[start + i * stride] = src[i] / l converted to T, for i < n.
template <class A, class T>
inline void write_row(void* base, int64_t start, int64_t stride, int64_t n, const A* src, A l) {
  constexpr int W = Vec<A>::kWidth;
  int64_t i = 0;
  if (stride == 1) {
    T* dst = reinterpret_cast<T*>(static_cast<char*>(base) + start * int64_t{sizeof(T)});
    const Vec<A> lv = Vec<A>::set1(l), neg_lv = Vec<A>::set1(-l), rv = Vec<A>::set1(A(1) / l);
    for (; i + W <= n; i += W) {
      const Vec<A> x = div_by(Vec<A>::load(src + i), lv, neg_lv, rv);
      if constexpr (std::is_same_v<T, A>) {
        x.store(dst + i);
      } else {
        store_cvt(dst + i, x);
      }
    }
  }
  for (; i < n; ++i) {
    detail::store_elem<T>(base, start + i * stride, detail::StoreAs<T>::from(src[i] / l));
  }
}

// The float rational of tanh_vec (below) without its last clamp to [-1, 1] (it may exceed 1 in magnitude by an
// ulp or two): 16 instructions.
inline Vec<float> tanh_rational(Vec<float> x) {
  using V = Vec<float>;
  static constexpr float kP[5] = {1.0f, 0.13381025195121765f, 0.003495588665828109f, 2.0609120838344097e-05f,
                                  1.3354775063589841e-08f};
  static constexpr float kQ[5] = {1.0f, 0.4671434164047241f, 0.025876982137560844f, 0.0003285636776126921f,
                                  7.776591814945277e-07f};
  const V xc = min(V::set1(9.0f), max(V::set1(-9.0f), x));  // NaN in x is kept (second operands)
  const V u = mul(xc, xc);
  V p = V::set1(kP[4]), q = V::set1(kQ[4]);
  for (int i = 3; i >= 0; --i) {
    p = fmadd(p, u, V::set1(kP[i]));
    q = fmadd(q, u, V::set1(kQ[i]));
  }
  return mul(mul(xc, p), recip(q));
}

// tanh(x). float: x P(x^2) / Q(x^2) with P, Q of degree 4, a rational fit of relative error 2e-8 on
// |x| <= 9 (tanh(9) is 1 to float precision), evaluated within 6 ulps (absolute error < 4e-7); |x| is
// clamped to 9 first and the result to [-1, 1] last. 18 instructions, no divider. double: an odd minimax
// polynomial for |x| < 0.625, else (1 - e) / (1 + e) with e = 2^(-2 log2(e) |x|); a few ulps. Both give
// exactly +-1 at +-inf and keep NaN.
template <class A>
inline Vec<A> tanh_vec(Vec<A> x) {
  using V = Vec<A>;
  if constexpr (std::is_same_v<A, float>) {
    return min(V::set1(1.0f), max(V::set1(-1.0f), tanh_rational(x)));
  } else {
    static constexpr double kF64[11] = {-0.3333333333333348,    0.1333333333335631,     -0.05396825397968042,
                                        0.021869488697065544,   -0.0088632349558839,    0.003592091761634989,
                                        -0.0014554247451718718, 0.0005876336501330852,  -0.00023081192634785342,
                                        7.925031235982247e-05,  -1.6896721162262295e-05};
    const V a = abs(x);
    const V u = mul(a, a);
    V poly = V::set1(kF64[10]);
    for (int i = 9; i >= 0; --i) poly = fmadd(poly, u, V::set1(kF64[i]));
    const V small = fmadd(mul(poly, u), a, a);                         // a + a^3 P(a^2)
    const V e = exp2(mul(a, V::set1(-2.8853900817779268)));           // exp(-2a)
    const V one = V::set1(1.0);
    const V large = mul(sub(one, e), recip(add(one, e)));
    return copysign(select_lt(a, V::set1(0.625), small, large), x);
  }
}

// The element-wise options present, as compile-time flags of the transform (no test per vector).
enum : int { kXfBias = 1, kXfAlibi = 2, kXfMask = 4, kXfSoftcap = 8, kXfAll = 15 };
// The matrix-unit path only: a mask (contiguous keys, the only option left for the vector unit) selects
// the lanes of the max and of the exponentials, as the rows' ranges do; the scores are not rewritten.
enum : int { kXfMaskLanes = 16 };
// The matrix-unit path only: a softcap that is the only option, applied in the exponentials' pass to the
// raw scores, whose max gives the row's (tanh is monotonic): no pass that rewrites the scores.
enum : int { kXfCapRaw = 32 };
// The vector path: a block of rows whose mask is all true over the tile, and no other option: the scores
// in natural-log units (t = |scale| s) as with the mask, which is not read (the options' arithmetic is
// the same with and without it, so a row's scores do not depend on its block).
enum : int { kXfScaleOnly = 64 };

// The element-wise options on the rows of a register block against one KV tile: from the raw score s of
// row r, key j to t = softcap * tanh(|scale| s / softcap) + bias - slope * |diag - j|, computed as
// fma(tanh(...), softcap, bias - slope |diag - j|) (or fma(s, |scale|, ...) without a softcap), -inf where
// the mask is false (selected, so a NaN there never survives). t is in natural-log units, as the score
// itself (TiledForward::nats_): in base-2 units (times log2(e)) a finite score or bias beyond the dtype's
// largest value / log2(e), e.g. a bias of finfo.min (a common mask value), would overflow to -inf and turn
// a row of very negative finite scores into a masked one. Applied to W keys at a time in the Q K^T
// epilogue (blocks that see whole tiles) or in a second pass (the others), with the same arithmetic.
template <class A, int MR>
struct ScoreTransform {
  using V = Vec<A>;
  static constexpr int W = V::kWidth;
  bool mask_contiguous = false;
  bool prefetch_bias = false;  // the rows' biases differ (else one row, always in cache, serves all)
  int64_t mask_stride = 0;
  V mult, cap;  // |scale| (or |scale| / softcap), softcap
  const A* bias[MR];            // the row's bias of the tile's key 0, as A (the caller's or converted)
  const A* bias_next[MR];       // what to prefetch into L1 for the row: the next block's row, this tile
  const uint8_t* mask_row[MR];  // the row's mask byte of the tile's key 0
  V neg_slope[MR];              // -slope
  V diag[MR];                   // lane l: the row's diagonal key relative to the tile, minus l
  A* gather;                    // W values of scratch
  uint8_t* keep;                // W bytes of scratch

  // Asks for the biases of the next block's row r at this tile, keys j .. j + W - 1 (one cache line), into
  // L1: a row's lines per step of the Q K^T loop (FusedTransform::prefetch), so that the prefetches never
  // fill the line-fill buffers in a burst (a block's worth at once stalls the core). Not for a bias shared
  // by all rows (one row, always in cache). One block ahead measured as fast as two to four blocks ahead, and
  // prefetching the row's bias kPrefetchTiles tiles on into L2 as well 1-3 % slower (bench/RESULTS.md).
  // The line of the vector's last key: a row is rarely 64-byte aligned (NumPy aligns to 16 bytes), and
  // then its vectors straddle lines; the first line of a vector then is the previous vector's last. That
  // of the tile's first vector is the previous tile's last line, read too long before to be still in L1:
  // FusedTransform::prefetch asks for it as well (perf showed the first bias load of a block stalling;
  // 2-3 points off the cost of a full bias, bench/RESULTS.md).
  __attribute__((always_inline)) void prefetch(int r, int64_t j) const {
    if (prefetch_bias) __builtin_prefetch(bias_next[r] + j + (W - 1), 0, 3);
  }

  // Keys j .. j + W - 1 (relative to the tile) of row r: all visible (kInside), or only those in [ar, er)
  // (nothing is read for the others).
  template <int F, bool kInside>
  V apply(int r, int64_t j, V x, int64_t ar, int64_t er) const {
    return apply_at<F, kInside>(r, j, V::set1(static_cast<A>(j)), x, ar, er);
  }
  // The same, given jf = j in every lane (a caller walking the keys keeps it as a running sum: exact).
  template <int F, bool kInside>
  V apply_at(int r, int64_t j, V jf, V x, int64_t ar, int64_t er) const {
    V extra = V::zero();  // bias - slope * |diag - key|
    if constexpr ((F & kXfBias) != 0) {
      if constexpr (kInside) {
        extra = V::load(bias[r] + j);
      } else {  // only the visible keys may be read
        for (int w = 0; w < W; ++w) gather[w] = j + w >= ar && j + w < er ? bias[r][j + w] : A(0);
        extra = V::load(gather);
      }
    }
    if constexpr ((F & kXfAlibi) != 0) {
      extra = fmadd(neg_slope[r], abs(sub(diag[r], jf)), extra);
    }
    V t;
    if constexpr ((F & kXfSoftcap) != 0) {
      t = fmadd(tanh_vec<A>(mul(x, mult)), cap, extra);
    } else if constexpr ((F & (kXfBias | kXfAlibi)) != 0) {
      t = fmadd(x, mult, extra);
    } else {
      t = mul(x, mult);  // = fma(x, mult, 0)
    }
    if constexpr ((F & kXfMask) != 0) {
      const uint8_t* k = keep;
      if (kInside && mask_contiguous) {
        k = mask_row[r] + j;
      } else {
        for (int w = 0; w < W; ++w) {
          const int64_t jj = j + w;
          keep[w] = kInside || (jj >= ar && jj < er) ? mask_row[r][jj * mask_stride] : uint8_t{1};
        }
      }
      t = keep_where(t, k, -std::numeric_limits<A>::infinity());
    }
    return t;
  }
};

// The transform as the Q K^T epilogue of a block whose rows see whole tiles.
template <class A, int MR, int N, int F>
struct FusedTransform {
  const ScoreTransform<A, MR>& xf;
  Vec<A> operator()(int r, int64_t j, Vec<A> x) const { return xf.template apply<F, true>(r, j, x, 0, 0); }
  // Step i of the first segment of the sum: the next block's row i (i < MR), its N vectors, keys
  // key0 .. key0 + N * W - 1, and at the tile's first keys also the line of key 0 (where a row that is not
  // 64-byte aligned starts). (Asking for this block's rows again in the last segment, in
  // case the K and V tiles streaming through L1 evicted them, measured no faster.)
  __attribute__((always_inline)) void prefetch(int64_t i, bool first, int64_t key0) const {
    if constexpr ((F & kXfBias) != 0) {
      if (first && i < MR && xf.prefetch_bias) {
        TILEATTN_UNROLL
        for (int n = 0; n < N; ++n) xf.prefetch(static_cast<int>(i), key0 + n * Vec<A>::kWidth);
        if (key0 == 0) __builtin_prefetch(xf.bias_next[i], 0, 3);
      }
    }
  }
};

template <class T, class A>
class TiledForward {
 public:
  using V = Vec<A>;
  using Transform = ScoreTransform<A, Blocking<A>::kRows>;
  static constexpr int W = V::kWidth;
  static constexpr int MR = Blocking<A>::kRows;    // query rows per register block
  static constexpr int kExpRows = 3;               // rows whose exponentials are interleaved (softmax_prefix)
  static constexpr int NQ = Blocking<A>::kQkVecs;  // key vectors per register block of Q K^T
  static constexpr int NP = Blocking<A>::kPvVecs;  // output vectors per register block of P V
  static constexpr int kMaxSubBlocks = 4;          // register blocks that share a pass over a KV tile
  static constexpr int kMaxChunkTiles = 32;         // KV tiles packed at a time, at most
  static constexpr double kLog2e = 1.4426950408889634;

  TiledForward(const Params& p, int threads)
      : p_(p),
        geo_(p),
        threads_(threads),
        group_(p.heads_q / p.heads_kv),
        dvp_(round_up(p.head_dim_v, W)),
        tiles_(detail::choose_tiles(p.batch, p.heads_kv, group_, geo_.max_rows(), p.head_dim, dvp_,
                                    static_cast<int64_t>(sizeof(A)), int64_t{W} * NQ, threads)),
        q_blocks_(ceil_div(geo_.max_rows(), tiles_.block_q)),
        rows_cap_(round_up(group_ * tiles_.block_q, MR)),
        c_(static_cast<A>(std::fabs(p.scale) * 1.4426950408889634)),  // |scale| * log2(e)
        scale_abs_(static_cast<A>(std::fabs(p.scale))),
        negate_q_(p.scale < 0),
        transform_(p.mask != nullptr || p.bias != nullptr || p.alibi_slopes != nullptr || p.softcap > 0),
        may_mask_values_(p.mask != nullptr || p.bias != nullptr),
        decode_(group_ * geo_.max_rows() <= detail::kDecodeRows),
        dqp_(decode_ ? round_up(p.head_dim, W) : p.head_dim),
        split_{1, std::max<int64_t>(geo_.max_keys(), 1)} {
    // At most kSplitRows rows per kv head (decoding, or few rows on the tiled path): one item per (batch, kv
    // head, chunk of keys) holds all the kv head's query rows (merge() reads them from one block, where
    // choose_tiles might cut very long rows into several), the keys split in chunks fixed by the shape alone,
    // so that a few kv heads with long caches still give every thread work.
    if (group_ * geo_.max_rows() <= detail::kSplitRows) {
      if (decode_) tiles_.block_k = detail::kDecodeBlockK;  // no K^T to keep in L1: longer tiles, fewer rescales
      tiles_.block_q = std::max<int64_t>(geo_.max_rows(), 1);
      q_blocks_ = 1;
      rows_cap_ = round_up(group_ * tiles_.block_q, MR);
      split_ = detail::choose_decode_split(p.batch, p.heads_kv, geo_.max_keys(), tiles_.block_k);
    }
    // A tile larger than kL1TileBytes does not stay in L1 while one register block alternates Q K^T (reading
    // the K^T half) and P V (the V half): the blocks then go in groups, so that each half serves the whole
    // group while it is in L1. Measured on 2 threads (A/B in one process): 64 KiB tiles in groups of 4
    // against 32 KiB tiles one block at a time: S2048 D64 3 % faster, S512 causal 7 %, B8 S512 4 %, float64
    // 8 %; at D128 (64-key tiles either way) 4-7 %; B32 S128 D32 unchanged.
    const int64_t tile_bytes = tiles_.block_k * (p.head_dim + dvp_) * static_cast<int64_t>(sizeof(A));
    sub_blocks_ = !decode_ && tile_bytes > detail::kL1TileBytes ? kMaxSubBlocks : 1;
    // A bias that differs from row to row streams 4 bytes per score from memory, rows Sk elements apart. Its
    // items pack kChunkBytes of KV tiles at a time and walk each group of register blocks over all of them
    // (instead of every group over one tile), so that each row's bias is read as one run over the chunk,
    // which the hardware prefetcher follows better than one short piece per row and tile. Measured (A/B
    // of builds, 2 threads, S2048, three alternated process pairs; bench/RESULTS.md): float32 D64 (128-key
    // tiles) with an (H, S, S) bias +20.9-25.9 % over the plain call before, +15.3-18.5 % after; an (S, S)
    // bias unchanged (+14-18 %). With 64-key tiles (float32 D128, float64 D64) it gained nothing or cost 1-3 %: only
    // tiles of kChunkMinKeys keys or more. Each row still meets the same tiles in the same order, so the
    // results do not change. Only where the blocks go in groups anyway (a tile that L1 does not keep): a
    // group then loads each tile from L2 whatever the order, where one block at a time would reload a tile
    // that L1 kept for all blocks.
    if (sub_blocks_ > 1 && p.bias != nullptr && p.bias_seq_stride != 0 && tiles_.block_k >= detail::kChunkMinKeys) {
      chunk_tiles_ = static_cast<int>(std::clamp<int64_t>(detail::kChunkBytes / tile_bytes, 1, kMaxChunkTiles));
    }
    // An item of few rows reads each V tile with few register blocks: copying the tile to aligned rows
    // costs more than the loads that span two cache lines (measured, one thread, V 16 bytes off alignment:
    // B64 H12 S32 D64 +6 %, S64 D32 / D64 +4-5 %, S128 D64 +2 %, but S128 D32 -11 %).
    v_in_place_ = group_ * tiles_.block_q <= detail::kVInPlaceRows;
#ifdef TILEATTN_AMX
    // The matrix-unit path: float accumulation outside decoding (the element-wise options apply in its
    // softmax, amx_softmax), for head dims of 32 or more and 256 keys or more. Measured against the vector path (2 threads, one run,
    // bench/RESULTS.md): S2048 D64 1.48x, D128 1.67x, B8 H16 S512 D32 1.08x; but B32 H12 S128 D32 0.90x,
    // S128 D64 0.98x, S64 D64 0.80x, S512 D16 0.96x (splitting K, V and Q and filling the pipeline cost
    // more than the products save).
    // Not for kSplitRows rows or fewer per kv head (above: the vector path, keys split).
    amx_ = std::is_same_v<A, float> && !decode_ && p.head_dim >= kAmxMinHeadDim &&
           geo_.max_keys() >= kAmxMinKeys && group_ * geo_.max_rows() > detail::kSplitRows;
    if (amx_) {
      dq_ = round_up(p.head_dim, amx_detail::kDepth);
      panel_keys_ = round_up(geo_.max_keys(), amx_detail::kKeys);
      // Memory: the split K and V of a kv head live in the call's scratch (1.5x the float32 K and V).
      if (6.0 * static_cast<double>(panel_keys_) * static_cast<double>(dq_ + dvp_) > kAmxMaxPanelBytes) amx_ = false;
    }
    if (amx_) {
      // Enough kv heads for the threads, and all of a head's rows fit in kAmxItemBytes: an item per kv head,
      // which splits its own K and V (run_amx).
      const int64_t all_rows = round_up(group_ * geo_.max_rows(), amx_detail::kRows);
      if (p.batch * p.heads_kv >= detail::kItemsPerThread * threads &&
          all_rows * (6 * dq_ + 4 * dvp_) + 6 * panel_keys_ * (dq_ + dvp_) <= kAmxItemBytes) {
        tiles_.block_q = geo_.max_rows();
        q_blocks_ = 1;
      } else {
        tiles_.block_q = detail::choose_tiles(p.batch, p.heads_kv, group_, geo_.max_rows(), p.head_dim, dvp_,
                                              static_cast<int64_t>(sizeof(A)), int64_t{W} * NQ, threads,
                                              detail::kAmxItemRowBytes)
                             .block_q;
        q_blocks_ = ceil_div(geo_.max_rows(), tiles_.block_q);
      }
      rows_cap_ = round_up(round_up(group_ * tiles_.block_q, MR), amx_detail::kRows);
      // (A float32 bias loaded as the start of Q K^T's accumulators, the query rows carrying the scale,
      // saved the vector unit its transform, but the unit then rounds every step of its accumulation at
      // the bias's magnitude: 3-6x the error of naive float32 attention for a bias 100-1000 times the
      // scores. Tried in the twelfth session and removed; test_large_bias_keeps_the_accuracy.)
      // A mask that is the only option: its bytes select lanes, with no pass that rewrites the scores,
      // which stay raw (base-2 exponents by one fma, as without options).
      amx_mask_lanes_ = p.mask != nullptr && p.mask_key_stride == 1 && xf_flags_ == kXfMask;
      amx_nats_ = nats_ && !amx_mask_lanes_;
      // A softcap that is the only option: t = softcap tanh(s |scale| / softcap) is monotonic in the raw
      // score s, so the max pass reads the raw scores (as with no option) and the row max in base-2 units is
      // m' = softcap log2(e) tanh(max(s) |scale| / softcap), by the same vector tanh; the exponent is
      // fma(tanh(s |scale| / softcap), softcap log2(e), -m'), and the transform needs no pass of its own.
      // (A first version fixed m' at softcap log2(e), with no max pass: a review found the LSE off by the
      // rounding of that product and, for rows far below the cap, probabilities near 2^-96 whose
      // products with small values the unit flushes.) For softcap log2(e) <= kCapRawMax, so that m' stays
      // within write_result's exact range, and head dims up to kCapRawMaxDim: measured (A/B of builds,
      // S2048 H8, 2 threads) D64 +30-39 % -> +21-24 % per score over the plain call, but D128 +9-17 % ->
      // +17-27 % (at D128 the tile unit's steps dominate, and the separate transform pass interleaves
      // with them better).
      // Not where |scale| / softcap overflows: times a zero raw score it would make a NaN row max and drop
      // the tile, where the transform pass keeps the NaN for the reference path (a second review; a zero
      // scale, whose 0 x inf did the same, never reaches the kernels: attention.cpp).
      amx_cap_raw_ = xf_flags_ == kXfSoftcap && p.softcap * kLog2e <= kCapRawMax && p.head_dim <= kCapRawMaxDim &&
                     std::fabs(p.scale) / p.softcap <= std::numeric_limits<float>::max();
      if (amx_cap_raw_) amx_nats_ = false;  // m' in base-2 units; -inf only for a row that saw no key
    }
#endif
  }

  TileInfo tile_info() const {
#ifdef TILEATTN_AMX
    if (amx_) return {tiles_.block_q, kAmxTileKeys};
#endif
    return {tiles_.block_q, tiles_.block_k};
  }

  void run() {
#ifdef TILEATTN_AMX
    if constexpr (std::is_same_v<A, float>) {
      if (amx_) {
        run_amx();
        return;
      }
    }
#endif
    const int64_t heads = p_.batch * p_.heads_kv;
    const int64_t items = heads * q_blocks_ * split_.chunks;
    const std::size_t bytes = carve(nullptr).bytes;
    // Per-call memory shared by the threads: the mask summary, and the partial results of split keys.
    const auto part_rows = static_cast<std::size_t>(split_.chunks > 1 ? items * rows_cap_ : 0);
    detail::Carver measure;
    measure.take<char>(p_.mask != nullptr ? detail::MaskSummary::bytes(p_, tiles_.block_k) : 0);
    measure.take<A>(detail::checked_mul(part_rows, static_cast<std::size_t>(dvp_)));
    measure.take<A>(part_rows);
    measure.take<A>(part_rows);
    detail::Carver c(detail::call_scratch().get(measure.measured()));
    char* mask_memory = c.take<char>(p_.mask != nullptr ? detail::MaskSummary::bytes(p_, tiles_.block_k) : 0);
    Partials parts{};
    parts.o = c.take<A>(detail::checked_mul(part_rows, static_cast<std::size_t>(dvp_)));
    parts.m = c.take<A>(part_rows);
    parts.l = c.take<A>(part_rows);
    if (p_.mask != nullptr) mask_.build(p_, tiles_.block_k, mask_memory, threads_);
    // Items are claimed one at a time from a shared counter. With many small items each thread claims its
    // next item before it starts the current one, so that it can ask the caches for that item's rows while
    // it computes (RowPrefetcher); a claimed item cannot go to another thread, so at the end one thread may
    // wait for at most one item of another: hence only with at least kClaimAheadItems items per thread.
    const bool ahead = !decode_ && (threads_ == 1 || items >= detail::kClaimAheadItems * threads_);
    std::atomic<int64_t> next{0};
    const int64_t workers = std::min<int64_t>(threads_, items);
    detail::parallel_for(workers, 1, threads_, [this, bytes, &parts, &next, items, ahead](int64_t, int64_t) {
      const detail::FlushDenormals ftz;
      const Workspace ws = carve(detail::thread_scratch().get(bytes));
      Prefetch pf;
      for (int64_t item = next.fetch_add(1, std::memory_order_relaxed); item < items;) {
        const int64_t after = ahead ? next.fetch_add(1, std::memory_order_relaxed) : items;
        process(ws, locate(item), item, parts, pf, after < items ? after : -1);
        detail::yield_point();
        item = ahead ? after : next.fetch_add(1, std::memory_order_relaxed);
      }
    });
    if (split_.chunks > 1) {
      detail::parallel_for(heads, 1, threads_, [this, &parts](int64_t begin, int64_t end) {
        const detail::FlushDenormals ftz;
        for (int64_t bh = begin; bh < end; ++bh) merge(parts, bh);
      });
    }
  }

 private:
  struct Partials {
    A* o;
    A* m;
    A* l;
  };

  // Whether the bias is read in place: A values, contiguous along the keys. Any other bias is converted
  // to A a tile row at a time (bias_tile).
  bool bias_native() const {
    return p_.bias != nullptr && p_.bias_key_stride == 1 &&
           p_.bias_dtype == (std::is_same_v<A, float> ? DType::kFloat32 : DType::kFloat64);
  }

  struct RowOptions {  // what the element-wise options need of a packed row
    const uint8_t* mask;  // the row's mask bytes, or null
    int64_t bias;         // element offset of the row's bias
    int64_t diag;         // the key on the row's diagonal
    A neg_slope;          // -slope of the row's head (ALiBi), or 0
  };

  struct AmxBlock {  // a block of 32 rows against a KV tile: its first row, the tile, its 32-key steps [kc0, kc1)
    int64_t rb, j0, kc0, kc1;
  };

  struct Workspace {
    A* q;         // rows_cap x dqp: packed query rows (sign of the scale folded in)
    uint32_t* qb;  // rows_cap x pairs: the same rows as bfloat16 pairs (bf16_dot_)
    A* o;         // rows_cap x dvp: output accumulators
    A* m;         // rows_cap: running max (base-2 units; natural-log units with the element-wise options)
    A* l;         // rows_cap: running sum
    int64_t* lo;  // rows_cap: first key each row may see
    int64_t* hi;  // rows_cap: one past its last
    A* kt;        // block_k x head_dim: K^T of one tile, as [key vector][d][W]
    A* vt;        // block_k x dvp: V of one tile
    A* s;         // sub_blocks x MR x block_k: scores, then probabilities
    A* ks;        // W x head_dim: K rows converted to A, before their transpose into kt
    A* bias;      // W: bias values of one vector of keys
    A* bias_tile;  // MR x block_k: the block's bias of one tile, converted to A (a bias not read in place)
    uint8_t* keep;  // W: mask bytes of one vector of keys
    uint8_t* dead;  // sub_blocks x MR x block_k: keys masked to -inf, when V holds non-finite values
    RowOptions* opt;  // rows_cap, when the scores transform
    // The matrix-unit path (amx_; amx_tiles.hpp), bfloat16 parts as uint16_t:
    uint16_t* qa;   // 3 x rows_cap x dq: the query rows' parts
    float* sa;      // 2 x 32 x kAmxTileKeys: the scores of two blocks of rows
    uint16_t* pa;   // 2 x 3 x 32 x kAmxTileKeys: their probabilities' parts
    float* qrow;    // dq: one query row as float
    uint8_t* qbad;  // rows_cap: a row whose query the parts cannot represent (computed by the reference path)
    AmxBlock* blocks;  // rows_cap / 32: the blocks of rows that see a tile
    float* abias;      // kAmxTileKeys: one row's bias of a tile, converted to float (a bias not read in place)
    std::size_t bytes;
    bool k_unasked = false;  // decoding: no earlier tile's P V asked for all of this tile's K rows
  };

  Workspace carve(void* base) const {
    detail::Carver c(base);
    Workspace ws{};
    const auto rows = static_cast<std::size_t>(rows_cap_);
    const auto keys = static_cast<std::size_t>(tiles_.block_k);
    const auto d = static_cast<std::size_t>(p_.head_dim);
    const auto dv = static_cast<std::size_t>(dvp_);
    ws.q = c.take<A>(bf16_dot_ ? 0 : detail::checked_mul(rows, static_cast<std::size_t>(dqp_)));
    ws.qb = c.take<uint32_t>(bf16_dot_ ? detail::checked_mul(rows, static_cast<std::size_t>(pairs_)) : 0);
    ws.o = c.take<A>(detail::checked_mul(rows, dv));
    ws.m = c.take<A>(rows);
    ws.l = c.take<A>(rows);
    ws.lo = c.take<int64_t>(rows);
    ws.hi = c.take<int64_t>(rows);
    const auto ct = static_cast<std::size_t>(chunk_tiles_);
    ws.kt = c.take<A>(decode_ ? 0 : detail::checked_mul(ct, detail::checked_mul(keys, d)));
    ws.vt = c.take<A>(detail::checked_mul(ct, detail::checked_mul(keys, dv)));
    ws.s = c.take<A>(detail::checked_mul(static_cast<std::size_t>(MR * sub_blocks_), keys));
    ws.ks = c.take<A>(detail::checked_mul(W, std::max(d, static_cast<std::size_t>(dqp_))));
    ws.bias = c.take<A>(W);
    ws.bias_tile = c.take<A>(p_.bias != nullptr && !bias_native_ ? detail::checked_mul(MR, keys) : 0);
    ws.keep = c.take<uint8_t>(W);
    ws.dead = c.take<uint8_t>(may_mask_values_ ? detail::checked_mul(static_cast<std::size_t>(MR * sub_blocks_), keys) : 0);
    ws.opt = c.take<RowOptions>(transform_ ? rows : 0);
#ifdef TILEATTN_AMX
    if (amx_) {
      const auto dq = static_cast<std::size_t>(dq_);
      const auto block = static_cast<std::size_t>(amx_detail::kRows * kAmxTileKeys);
      ws.qa = c.take<uint16_t>(detail::checked_mul(3 * rows, dq));
      ws.sa = c.take<float>(2 * block);      // two buffers: the pipeline's
      ws.pa = c.take<uint16_t>(2 * 3 * block);
      ws.qrow = c.take<float>(static_cast<std::size_t>(amx_stage_floats()));  // also amx_pack_tile's stage
      ws.qbad = c.take<uint8_t>(rows);
      ws.abias = c.take<float>(p_.bias != nullptr && !bias_native_ ? kAmxTileKeys : 0);
      ws.blocks = c.take<AmxBlock>(detail::checked_mul(rows / amx_detail::kRows,
                                                       static_cast<std::size_t>(ceil_div(panel_keys_, kAmxTileKeys))));
    }
#endif
    ws.bytes = c.measured();
    return ws;
  }

  // Head and position of row r of an item whose block starts at query position i0 and has nq rows.
  int64_t head_of(int64_t g, int64_t r, int64_t nq) const { return g * group_ + r / nq; }

  // What a thread asks the caches for ahead of time: the next KV tile's rows of its item (tile) and its
  // next item's (item), a few lines at each of the blocks' steps: the tile's at one step per block in
  // process() and at each of the kItemSteps steps in tile_scores and tile_pv, the item's at the latter only.
  struct Prefetch {
    detail::RowPrefetcher tile, item;
    __attribute__((always_inline)) void step() { tile.step(), item.step(); }
  };
  static constexpr int64_t kItemSteps = 4;  // the next item's lines are asked for at this many points per block

  struct ItemPos {
    int64_t chunk, b, g, i0, nq, nrows;  // rows: nrows = group * nq, row r at head g * group + r / nq
    bool empty;                          // a packed sequence shorter than the longest
  };

  // Item `item` of the kv heads [bh0, bh0 + heads) (all of them by default).
  ItemPos locate(int64_t item, int64_t bh0 = 0, int64_t heads = -1) const {
    ItemPos it{};
    it.chunk = item % split_.chunks;
    item /= split_.chunks;
    if (heads < 0) heads = p_.batch * p_.heads_kv;
    int64_t qb, bh;
    if (p_.causal) {  // costliest blocks (last query positions) first, for load balance
      qb = q_blocks_ - 1 - item / heads;
      bh = bh0 + item % heads;
    } else {  // consecutive items share K/V: better cache reuse
      qb = item % q_blocks_;
      bh = bh0 + item / q_blocks_;
    }
    it.b = bh / p_.heads_kv;
    it.g = bh % p_.heads_kv;
    it.i0 = qb * tiles_.block_q;
    it.empty = it.i0 >= geo_.rows(it.b);
    it.nq = it.empty ? 0 : std::min(tiles_.block_q, geo_.rows(it.b) - it.i0);
    it.nrows = group_ * it.nq;
    return it;
  }

  // Rows [j0, j1) of K and V of sequence b, kv head g, into pf (rows of A-sized elements read in place).
  void add_kv_rows(detail::RowPrefetcher& pf, int64_t b, int64_t g, int64_t j0, int64_t j1) const {
    if (j1 <= j0) return;
    constexpr int64_t sz = sizeof(T);
    if (p_.k_dim_stride == 1) {
      pf.add(static_cast<const char*>(p_.k) + (geo_.k_at(b, g) + j0 * p_.k_seq_stride) * sz, j1 - j0,
             p_.k_seq_stride * sz, p_.head_dim * sz, false);
    }
    if (p_.v_dim_stride == 1) {
      pf.add(static_cast<const char*>(p_.v) + (geo_.v_at(b, g) + j0 * p_.v_seq_stride) * sz, j1 - j0,
             p_.v_seq_stride * sz, p_.head_dim_v * sz, false);
    }
  }

  // The rows the item `item` reads first and writes last: its query rows, the K/V rows of its first tile
  // (from the window of its first and last positions; a mask may skip that tile: only a prefetch) and its
  // output rows.
  void plan_item(detail::RowPrefetcher& pf, int64_t item) const {
    pf.clear();
    const ItemPos it = locate(item);
    if (it.empty) return;
    constexpr int64_t sz = sizeof(T);
    for (int64_t x = 0; x < group_; ++x) {
      const int64_t h = it.g * group_ + x;
      if (p_.q_dim_stride == 1) {
        pf.add(static_cast<const char*>(p_.q) + geo_.q_at(it.b, h, it.i0) * sz, it.nq, p_.q_seq_stride * sz,
               p_.head_dim * sz, false);
      }
    }
    const int64_t last = std::min(it.i0 + it.nq, geo_.len_q(it.b)) - 1;
    if (last >= it.i0) {
      const detail::RowRange first_row = geo_.window(it.b, it.i0), last_row = geo_.window(it.b, last);
      const int64_t j0 = first_row.lo / tiles_.block_k * tiles_.block_k;
      add_kv_rows(pf, it.b, it.g, j0, std::min({j0 + tiles_.block_k, std::max(first_row.hi, last_row.hi), geo_.max_keys()}));
    }
    for (int64_t x = 0; x < group_; ++x) {
      const int64_t h = it.g * group_ + x;
      if (p_.out_dim_stride == 1) {
        pf.add(static_cast<char*>(p_.out) + geo_.out_at(it.b, h, it.i0) * sz, it.nq, p_.out_seq_stride * sz,
               p_.head_dim_v * sz, true);
      }
    }
  }

  // next_item: the item this thread computes next (-1: unknown or none), whose rows are prefetched.
  // slot: where this item's partial results go when the keys are split.
  void process(const Workspace& ws, const ItemPos& it, int64_t slot, const Partials& parts, Prefetch& pf,
               int64_t next_item) const {
    if (it.empty) return;
    const int64_t chunk = it.chunk, b = it.b, g = it.g, i0 = it.i0, nq = it.nq, nrows = it.nrows;

    // The keys each row may see; the item visits the tiles of their union, within its chunk.
    const auto [klo, khi] = item_rows(ws, it, mask_);
    const int64_t k_begin = chunk * split_.chunk_keys;
    const int64_t k_end = std::min(khi, k_begin + split_.chunk_keys);
    const int64_t first_tile = std::max(klo == std::numeric_limits<int64_t>::max() ? k_end : klo, k_begin) /
                               tiles_.block_k;

    pack_q(ws, b, g, i0, nq, nrows);
    std::fill(ws.o, ws.o + rows_cap_ * dvp_, A(0));
    std::fill(ws.m, ws.m + rows_cap_, -std::numeric_limits<A>::infinity());
    std::fill(ws.l, ws.l + rows_cap_, A(0));
    const int64_t kbase = geo_.k_at(b, g);
    const int64_t vbase = geo_.v_at(b, g);
    const int64_t blocks = ceil_div(nrows, MR);
    pf.item.clear();
    if (next_item >= 0) {
      plan_item(pf.item, next_item);
      pf.item.spread_over(kItemSteps * blocks * ceil_div(std::max<int64_t>(k_end - first_tile * tiles_.block_k, 0), tiles_.block_k));
    }
    bool lean = false;
    if constexpr (std::is_same_v<T, A>) {
      if (lean_rows_) {
        detail::with_count<MR>(static_cast<int>(nrows), [&](auto rows_c) {
          decode_rows<decltype(rows_c)::value>(ws, kbase, vbase, first_tile * tiles_.block_k, k_end);
          lean = true;
        });
      }
    }
    if (!lean) {
      tiles_loop(ws, it, pf, first_tile, k_end, kbase, vbase, blocks);
    }
    if (split_.chunks > 1) {
      const int64_t at = slot * rows_cap_;
      std::copy(ws.o, ws.o + rows_cap_ * dvp_, parts.o + at * dvp_);
      std::copy(ws.m, ws.m + rows_cap_, parts.m + at);
      std::copy(ws.l, ws.l + rows_cap_, parts.l + at);
    } else {
      finish(ws, b, g, i0, nq, nrows);
    }
  }

  // Decoding one query row per query head (lean_rows_: one token per sequence, R = the heads per kv head,
  // at most a register block's): the tiles of [j_first, k_end) in one loop through the same dot_keys,
  // softmax_rows (for R rows) and pv_decode as the general path, so the same bits (tests/test_strides.py),
  // without that path's bookkeeping for blocks of MR rows (tile records, block ranges and flags, P V jobs).
  // All R rows see the same keys (one position, ranges by position alone). The K rows of the next tile are
  // asked for during this tile's P V and V's during Q K^T, as there. Measured (thirty-third and
  // thirty-fourth sessions, one thread, bench/RESULTS.md): B1 H32 Sk4096 D64 (MHA, from L3) 22.5 GB/s in
  // the general loop -> 26.3; B1 H32 Hkv8 Sk4096 D128 (GQA, from L3) 18.3 -> 19.6-20.0.
  template <int R>
  void decode_rows(const Workspace& ws, int64_t kbase, int64_t vbase, int64_t j_first, int64_t k_end) const {
    const int64_t bk = tiles_.block_k, ks = p_.k_seq_stride, vs = p_.v_seq_stride;
    const A* const k = static_cast<const A*>(p_.k) + kbase;
    const A* const v = static_cast<const A*>(p_.v) + vbase;
    bool k_unasked = true;
    for (int64_t j0 = j_first; j0 < k_end; j0 += bk) {
      const int64_t nk = std::min(bk, k_end - j0);
      const int64_t a0 = std::clamp<int64_t>(ws.lo[0] - j0, 0, nk), e0 = std::clamp<int64_t>(ws.hi[0] - j0, 0, nk);
      if (e0 <= a0) {
        k_unasked = true;
        continue;
      }
      qk_rows<R>(ws, k + j0 * ks, v + j0 * vs, e0, k_unasked);
      int64_t a[R], e[R];
      std::fill(a, a + R, a0), std::fill(e, e + R, e0);
      A alpha[R];
      bool live[R];
      softmax_rows<false, R>(ws, 0, a, e, nullptr, xf_c_, alpha, live);
      const A* prow[R];
      A* orow[R];
      A alpha_live[R];
      int n = 0;
      for (int r = 0; r < R; ++r) {
        if (!live[r]) continue;  // every visible score is -inf: nothing to add
        prow[n] = ws.s + r * bk, orow[n] = ws.o + r * dvp_, alpha_live[n] = alpha[r];
        ++n;
      }
      const int64_t next = j0 + bk;
      const int64_t k_next = next < k_end ? kbase + next * ks : -1;
      const int64_t asked = pv_decode<R>(prow, orow, alpha_live, a, e, n, v + j0 * vs, vs, k_next);
      k_unasked = !(next < k_end) || asked < std::min(bk, k_end - next);
    }
  }

  // decode_rows' Q K^T: qk_dot for R rows whose K and V rows are read in place, the rows' addresses and
  // extents taken once per tile (+6 % over qk_dot for one row from L3, thirty-fourth session). k, v: the
  // rows of the tile's first key.
  template <int R>
  void qk_rows(const Workspace& ws, const A* k, const A* v, int64_t nk, bool ask_k) const {
    const int64_t ks = p_.k_seq_stride, vs = p_.v_seq_stride;
    const int64_t k_bytes = p_.head_dim * int64_t{sizeof(T)}, v_bytes = p_.head_dim_v * int64_t{sizeof(T)};
    for (int64_t j = 0; j < nk; j += kDotKeys) {
      const int kj = static_cast<int>(std::min<int64_t>(kDotKeys, nk - j));
      const A* kr[kDotKeys];
      for (int t = 0; t < kDotKeys; ++t) {
        if (ask_k && j + t + detail::kPrefetchKeys < nk) prefetch_lines<2>(k + (j + t + detail::kPrefetchKeys) * ks, k_bytes);
        prefetch_lines<2>(v + (j + t) * vs, v_bytes);
        kr[t] = k + (t < kj ? j + t : j) * ks;  // past the tile: a copy, not stored
      }
      dot_rows<R>(ws.q, kr, kj, ws.s + j, tiles_.block_k);
    }
  }

  // The item's KV tiles from first_tile up to k_end, its rows in register blocks (groups of sub_blocks_).
  void tiles_loop(const Workspace& ws, const ItemPos& it, Prefetch& pf, int64_t first_tile, int64_t k_end,
                  int64_t kbase, int64_t vbase, int64_t blocks) const {
    const int64_t b = it.b, g = it.g, i0 = it.i0, nq = it.nq, nrows = it.nrows;
    const int64_t kt_elems = tiles_.block_k * p_.head_dim, vt_elems = tiles_.block_k * dvp_;
    const int64_t span = tiles_.block_k * chunk_tiles_;
    // Decoding: the tile whose K rows the last P V asked for, and how many of its rows from its first.
    int64_t asked_j0 = -1, asked_keys = 0;
    for (int64_t c0 = first_tile * tiles_.block_k; c0 < k_end; c0 += span) {
      struct TileRec {
        int64_t j0, nk;
        const A* vt;
        int64_t ldv;
        bool careful;
      };
      TileRec recs[kMaxChunkTiles];
      int nt = 0;
      for (int64_t j0 = c0; j0 < std::min(k_end, c0 + span); j0 += tiles_.block_k) {
        const int64_t nk = std::min(tiles_.block_k, k_end - j0);
        if (mask_.active() && !tile_needed(ws, b, g, i0, nq, nrows, j0, nk)) continue;  // masked for every row
        Workspace wt = ws;
        wt.kt += nt * kt_elems, wt.vt += nt * vt_elems;
        if (!decode_) pack_k(wt, kbase, j0, nk);
        const auto [vt, ldv] = pack_v(wt, vbase, j0, nk);
        recs[nt++] = {j0, nk, vt, ldv, may_mask_values_ && !all_finite(vt, ldv, nk)};
      }
      if (nt == 0) continue;
      pf.tile.clear();
      if (!decode_) {
        add_kv_rows(pf.tile, b, g, c0 + span, std::min(k_end, c0 + 2 * span));
        // Over all the steps: an item of few register blocks otherwise asks for a tile's rows in bursts of
        // a hundred lines and more, which stall on the fill buffers (measured, one thread, 64 rows of a kv head
        // against 8192 keys: +7.9 %, 16 rows against 4096 keys +4.7 %).
        pf.tile.spread_over(blocks * nt * (1 + kItemSteps));
      }
      // Register blocks go in groups of sub_blocks_: the scores and softmax of the group's blocks, then
      // their P V, so that K^T, then V, serve the whole group from L1 (a tile of long rows fills L1
      // alone). Each row's arithmetic is the same whatever its group.
      for (int64_t rb = 0; rb < nrows; rb += MR * sub_blocks_) {
        for (int t = 0; t < nt; ++t) {
          const TileRec& tr = recs[t];
          PvJob jobs[kMaxSubBlocks];
          int n = 0;
          const int64_t rb_end = std::min(nrows, rb + MR * sub_blocks_);
          for (int64_t sb = rb; sb < rb_end; sb += MR) {
            pf.tile.step();
            Workspace wsub = ws;
            wsub.k_unasked = asked_j0 != tr.j0 || asked_keys < tr.nk;
            wsub.kt += t * kt_elems;
            wsub.s += n * MR * tiles_.block_k;
            if (wsub.dead != nullptr) wsub.dead += n * MR * tiles_.block_k;
            // The block computed after this one, whose option rows are prefetched meanwhile.
            BlockAt next{-1, 0};
            if (sb + MR < rb_end) {
              next = {sb + MR, tr.j0};
            } else if (t + 1 < nt) {
              next = {rb, recs[t + 1].j0};
            } else if (rb_end < nrows) {
              next = {rb_end, recs[0].j0};
            } else if (c0 + span < k_end) {
              next = {0, c0 + span};
            }
            tile_scores(wsub, sb, nrows, nq, b, g, i0, tr.j0, tr.nk, kbase, vbase, tr.careful, next, pf,
                        jobs[n++]);
          }
          for (int x = 0; x < n; ++x) {
            const int64_t asked = tile_pv(jobs[x], tr.vt, tr.ldv, pf);
            if (jobs[x].next_j0 >= 0) asked_j0 = jobs[x].next_j0, asked_keys = asked;
          }
        }
      }
    }
  }

  // Each row's visible keys [lo, hi) (and its options' set-up) into ws; returns the union's bounds
  // (max int64 and 0 when no row sees a key).
  std::pair<int64_t, int64_t> item_rows(const Workspace& ws, const ItemPos& it, const detail::MaskSummary& mask) const {
    if (!mask.active() && !transform_) {  // ranges by position alone: one head's rows, copied to the group's others
      const detail::RowRange u = geo_.windows(it.b, it.i0, it.nq, ws.lo, ws.hi);
      for (int64_t r = it.nq; r < it.nrows; ++r) ws.lo[r] = ws.lo[r - it.nq], ws.hi[r] = ws.hi[r - it.nq];
      return {u.lo, u.hi};
    }
    int64_t klo = std::numeric_limits<int64_t>::max(), khi = 0;
    for (int64_t r = 0; r < it.nrows; ++r) {
      const int64_t h = head_of(it.g, r, it.nq), i = it.i0 + r % it.nq;
      const detail::RowRange rr = detail::visible_range(geo_, mask, it.b, h, i);
      ws.lo[r] = rr.lo;
      ws.hi[r] = rr.hi;
      if (rr.lo < rr.hi) klo = std::min(klo, rr.lo), khi = std::max(khi, rr.hi);
      if (transform_) ws.opt[r] = row_options(it.b, h, i);
    }
    return {klo, khi};
  }

  RowOptions row_options(int64_t b, int64_t h, int64_t i) const {
    RowOptions o{};
    if (p_.mask != nullptr) {
      o.mask = p_.mask + b * p_.mask_batch_stride + h * p_.mask_head_stride + i * p_.mask_seq_stride;
    }
    o.bias = b * p_.bias_batch_stride + h * p_.bias_head_stride + i * p_.bias_seq_stride;
    o.diag = geo_.diag(b, i);
    o.neg_slope = p_.alibi_slopes != nullptr ? static_cast<A>(-detail::alibi_slope(p_, b, h)) : A(0);
    return o;
  }

  // Whether some row of the item sees a key of the tile [j0, j0 + nk) (by its range and the mask summary).
  bool tile_needed(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows, int64_t j0,
                   int64_t nk) const {
    const int64_t tile = j0 / tiles_.block_k;
    for (int64_t r = 0; r < nrows; ++r) {
      if (ws.lo[r] >= j0 + nk || ws.hi[r] <= j0) continue;
      if (!mask_.active() || mask_.sees_tile(b, head_of(g, r, nq), i0 + r % nq, tile)) return true;
    }
    return false;
  }

  // Whether the nk rows of V at vt (stride ldv) hold only finite values. Decides whether masked keys
  // must be skipped one by one in P V (0 * inf is NaN), which only non-finite values require; also
  // checks a row's output sums (write_result).
  bool all_finite(const A* vt, int64_t ldv, int64_t nk) const {
    V acc = V::zero();
    for (int64_t j = 0; j < nk; ++j) {
      for (int64_t e = 0; e < dvp_; e += W) acc = add(acc, mul(V::load(vt + j * ldv + e), V::zero()));  // NaN for inf, NaN
    }
    return !std::isnan(reduce_add(acc));
  }

  // Combines the chunks of kv head bh (decoding): with m = max_c m_c, l = sum_c l_c 2^(m_c - m) and
  // O = sum_c O_c 2^(m_c - m), in chunk order, then out = O / l as in finish().
  void merge(const Partials& parts, int64_t bh) const {
    const int64_t b = bh / p_.heads_kv;
    const int64_t g = bh % p_.heads_kv;
    const int64_t nq = geo_.rows(b);
    const int64_t nrows = group_ * nq;
    const int64_t first = bh * split_.chunks * rows_cap_;  // row r of chunk c: first + c * rows_cap_ + r
    A* o = static_cast<A*>(detail::thread_scratch().get(static_cast<std::size_t>(dvp_) * sizeof(A)));
    for (int64_t r = 0; r < nrows; ++r) {
      A m = -std::numeric_limits<A>::infinity();
      bool nan = false;
      for (int64_t c = 0; c < split_.chunks; ++c) {
        const A mc = parts.m[first + c * rows_cap_ + r];
        nan = nan || std::isnan(mc);
        m = mc > m ? mc : m;
      }
      if (nan) m = std::numeric_limits<A>::quiet_NaN();
      A l = 0;
      std::fill(o, o + dvp_, A(0));
      if (m != -std::numeric_limits<A>::infinity()) {  // else no chunk saw a key: l stays 0
        for (int64_t c = 0; c < split_.chunks; ++c) {
          const int64_t at = first + c * rows_cap_ + r;
          const A f = exp2_scalar(to_base2(parts.m[at] - m));  // 2^(m_c - m), 0 for an empty chunk
          l = l + parts.l[at] * f;
          const V fv = V::set1(f);
          const A* oc = parts.o + at * dvp_;
          for (int64_t e = 0; e < dvp_; e += W) fmadd(V::load(oc + e), fv, V::load(o + e)).store(o + e);
        }
      }
      write_result(b, head_of(g, r, nq), r % nq, o, m, l);
    }
  }

  void pack_q(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
#ifdef TILEATTN_BF16_DOT
    if constexpr (std::is_same_v<T, BFloat16>) {
      if (bf16_dot_) {  // the float rows would go unread
        pack_q_pairs(ws, b, g, i0, nq, nrows);
        return;
      }
    }
#endif
    const int64_t d_len = p_.head_dim;
    for (int64_t r = 0; r < nrows; ++r) {
      if (r % MR == 0 && q_in_place(r, nrows, nq)) {  // the block reads the caller's rows
        r += MR - 1;
        continue;
      }
      A* dst = ws.q + r * dqp_;
      read_row<A, T>(p_.q, geo_.q_at(b, head_of(g, r, nq), i0 + r % nq), p_.q_dim_stride, d_len, dst);
      if (negate_q_) {
        for (int64_t d = 0; d < d_len; ++d) dst[d] = -dst[d];
      }
      std::fill(dst + d_len, dst + dqp_, A(0));
    }
    std::fill(ws.q + nrows * dqp_, ws.q + rows_cap_ * dqp_, A(0));
  }

  // Whether the register block of rows [rb, rb + MR) reads its query rows where the caller stores them:
  // rows of A, contiguous, without the sign of a negative scale to fold in, all MR of one head (evenly
  // spaced); the packed copy then goes unwritten. The products read the same values either way.
  bool q_in_place(int64_t rb, int64_t nrows, int64_t nq) const {
    return q_rows_usable_ && rb + MR <= nrows && rb % nq + MR <= nq;
  }

  // The query rows of the register block at row rb and their stride (q_in_place, or the packed rows).
  std::pair<const A*, int64_t> q_block(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq,
                                       int64_t nrows, int64_t rb) const {
    if constexpr (std::is_same_v<T, A>) {
      if (q_in_place(rb, nrows, nq)) {
        return {static_cast<const A*>(p_.q) + geo_.q_at(b, head_of(g, rb, nq), i0 + rb % nq), p_.q_seq_stride};
      }
    }
    return {ws.q + rb * dqp_, dqp_};
  }

  // The query rows as bfloat16 pairs (bf16_dot_): the inputs' bits, the sign flipped for a negative
  // scale (exact), a zero after an odd head_dim.
  void pack_q_pairs(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    const int64_t d_len = p_.head_dim;
    const uint32_t sign = negate_q_ ? 0x80008000u : 0u;
    const auto* base = static_cast<const uint16_t*>(p_.q);
    for (int64_t r = 0; r < nrows; ++r) {
      uint32_t* dst = ws.qb + r * pairs_;
      const int64_t at = geo_.q_at(b, head_of(g, r, nq), i0 + r % nq);
      for (int64_t x = 0; x < pairs_; ++x) {
        const uint32_t lo = base[at + 2 * x * p_.q_dim_stride];
        const uint32_t hi = 2 * x + 1 < d_len ? base[at + (2 * x + 1) * p_.q_dim_stride] : 0u;
        dst[x] = (lo | hi << 16) ^ (2 * x + 1 < d_len ? sign : sign & 0xffffu);
      }
    }
    std::fill(ws.qb + nrows * pairs_, ws.qb + rows_cap_ * pairs_, 0u);
  }

  // Where key j of the tile starts in the packed K^T: chunks of NQ*W keys, each laid out as
  // [d][vector n][lane w], so that the register block reads one contiguous stream. `len`: elements per
  // key (head_dim; pairs_ words for bf16_dot_).
  A* kt_key(const Workspace& ws, int64_t j) const { return kt_key(ws, j, p_.head_dim); }
  A* kt_key(const Workspace& ws, int64_t j, int64_t len) const {
    const int64_t chunk = j / (int64_t{W} * NQ);
    return ws.kt + chunk * len * NQ * W + ((j / W) % NQ) * W + (j % W);
  }

  // Packs keys [j0, j0 + nk) of a kv head (K at element offset kbase) transposed into kt, W keys at a
  // time: their rows, converted to A, go through W x W register transposes. Keys past nk up to the
  // register block are zero in kt, so their scores are 0 (and are masked).
  void pack_k(const Workspace& ws, int64_t kbase, int64_t j0, int64_t nk) const {
#ifdef TILEATTN_BF16_DOT
    if constexpr (std::is_same_v<T, BFloat16>) {
      if (bf16_dot_) {
        pack_k_pairs(ws, kbase, j0, nk);
        return;
      }
    }
#endif
    const int64_t d_len = p_.head_dim;
    const int64_t d_full = d_len / W * W;
    const int64_t kstride = NQ * W;  // distance between consecutive d in kt
    // Whole vectors past nk stay unwritten: tile_scores computes a chunk's first ceil(e / W) vectors only,
    // e <= nk (zeroing them cost 4-5 % of a B64 H12 S32 D64 call).
    for (int64_t j = 0; j < nk; j += W) {
      A* kdst = kt_key(ws, j);
      const int64_t keys = std::min<int64_t>(nk - j, W);
      const A* src;
      int64_t src_stride;
      if constexpr (std::is_same_v<T, A>) {
        if (keys == W && p_.k_dim_stride == 1) {  // read the caller's rows in place
          src = reinterpret_cast<const A*>(static_cast<const char*>(p_.k) +
                                           (kbase + (j0 + j) * p_.k_seq_stride) * int64_t{sizeof(T)});
          src_stride = p_.k_seq_stride;
        } else {
          src = stage_k(ws, kbase, j0 + j, keys), src_stride = d_len;
        }
      } else {
        src = stage_k(ws, kbase, j0 + j, keys), src_stride = d_len;
      }
      for (int64_t d = 0; d < d_full; d += W) transpose_block(src + d, src_stride, kdst + d * kstride, kstride);
      for (int64_t d = d_full; d < d_len; ++d) {
        for (int w = 0; w < W; ++w) kdst[d * kstride + w] = src[w * src_stride + d];
      }
    }
  }

  // pack_k for bf16_dot_: the keys' bfloat16 pairs as 32-bit words, laid out as the float K^T with pairs_
  // in place of head_dim (kt_key), through the same 16 x 16 transposes of 32-bit words. Rows whose pairs
  // are not 32-bit words in memory (strided, odd row stride, odd head_dim, misaligned) are staged first.
  void pack_k_pairs(const Workspace& ws, int64_t kbase, int64_t j0, int64_t nk) const {
    static_assert(W == 16, "bfloat16 pairs: 16 keys per vector");
    const int64_t words = pairs_, full = words / W * W;
    const int64_t kstride = NQ * W;
    const auto* base = static_cast<const uint16_t*>(p_.k);
    const bool in_place = p_.k_dim_stride == 1 && p_.head_dim % 2 == 0 && p_.k_seq_stride % 2 == 0 &&
                          (reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(kbase) * 2) % 4 == 0;
    for (int64_t j = 0; j < nk; j += W) {  // whole vectors past nk unwritten, as in pack_k
      float* kdst = kt_key(ws, j, words);  // the pairs' words as floats: copied, never computed on
      const int64_t keys = std::min<int64_t>(nk - j, W);
      const float* src;
      int64_t src_stride;  // in words
      if (keys == W && in_place) {
        src = reinterpret_cast<const float*>(base + kbase + (j0 + j) * p_.k_seq_stride);
        src_stride = p_.k_seq_stride / 2;
      } else {  // staged: W rows of `words` words, rows past `keys` zero
        auto* stage = reinterpret_cast<uint32_t*>(ws.ks);
        for (int64_t w = 0; w < W; ++w) {
          for (int64_t x = 0; x < words; ++x) {
            uint32_t word = 0;
            if (w < keys) {
              const int64_t at = kbase + (j0 + j + w) * p_.k_seq_stride;
              word = base[at + 2 * x * p_.k_dim_stride];
              if (2 * x + 1 < p_.head_dim) word |= uint32_t{base[at + (2 * x + 1) * p_.k_dim_stride]} << 16;
            }
            stage[w * words + x] = word;
          }
        }
        src = reinterpret_cast<const float*>(stage), src_stride = words;
      }
      for (int64_t d = 0; d < full; d += W) transpose_block(src + d, src_stride, kdst + d * kstride, kstride);
      for (int64_t d = full; d < words; ++d) {
        for (int w = 0; w < W; ++w) kdst[d * kstride + w] = src[w * src_stride + d];
      }
    }
  }

  // Returns where P V reads the tile's V rows and their stride: the caller's array itself when its rows are
  // contiguous whole vectors of A already (no conversion, no padding), and either aligned to the vector size
  // (else every load of P V spans two cache lines: 5-7 % slower for NumPy's 16-byte alignment), read once
  // (decoding) or read by few register blocks (v_in_place_); else the packed copy in vt.
  std::pair<const A*, int64_t> pack_v(const Workspace& ws, int64_t vbase, int64_t j0, int64_t nk) const {
    if constexpr (std::is_same_v<T, A>) {
      if (v_rows_usable()) {
        const A* rows = reinterpret_cast<const A*>(static_cast<const char*>(p_.v) +
                                                   (vbase + j0 * p_.v_seq_stride) * int64_t{sizeof(T)});
        constexpr int64_t kVecBytes = int64_t{W} * sizeof(A);
        const bool aligned = reinterpret_cast<uintptr_t>(rows) % kVecBytes == 0 &&
                             p_.v_seq_stride * int64_t{sizeof(T)} % kVecBytes == 0;
        if (aligned || decode_ || v_in_place_) return {rows, p_.v_seq_stride};
      }
    }
    for (int64_t j = 0; j < nk; ++j) {
      A* vdst = ws.vt + j * dvp_;
      read_row<A, T>(p_.v, vbase + (j0 + j) * p_.v_seq_stride, p_.v_dim_stride, p_.head_dim_v, vdst);
      std::fill(vdst + p_.head_dim_v, vdst + dvp_, A(0));
    }
    return {ws.vt, dvp_};
  }

  // Whether P V can read V's rows as the caller stores them (pack_v: when aligned, or when decoding).
  bool v_rows_usable() const { return std::is_same_v<T, A> && p_.v_dim_stride == 1 && dvp_ == p_.head_dim_v; }

  // Key row j as A, padded with zeros to dqp_ (the caller's row itself when that is already so, else staged
  // in slot `slot` of ws.ks, which holds W >= kDotKeys rows of dqp_).
  const A* key_row(const Workspace& ws, int64_t kbase, int64_t j, int slot = 0) const {
    if constexpr (std::is_same_v<T, A>) {
      if (p_.k_dim_stride == 1 && dqp_ == p_.head_dim) {
        return reinterpret_cast<const A*>(static_cast<const char*>(p_.k) + (kbase + j * p_.k_seq_stride) * int64_t{sizeof(T)});
      }
    }
    A* dst = ws.ks + slot * dqp_;
    read_row<A, T>(p_.k, kbase + j * p_.k_seq_stride, p_.k_dim_stride, p_.head_dim, dst);
    std::fill(dst + p_.head_dim, dst + dqp_, A(0));
    return dst;
  }

  // Decoding: S[r][j] = q_r . k_{j0 + j} for j < nk and the `rows` rows of the block, as dot products over d on
  // the key rows as stored: kDotKeys keys at a time against up to kDotRows rows (each K and q vector loaded
  // once per group), W lanes each, then a fixed-order lane sum (reduce_add4: pairs within 128 bits, then
  // across), as accurate as a pairwise sum. The loop is bound by memory, and the hardware prefetchers alone
  // reach 8 GB/s of one core's 26 (Zen 4), so the kernel asks for rows ahead, into L2 (into L1, a tile of
  // V at D128, as large as L1, evicts what is in use; twenty-first session). A software prefetch holds a
  // fill buffer until its line arrives, so the requests are spread over the tile's time:
  // - V read in place (float32 and float64 rows of whole vectors): Q K^T asks for this tile's V rows and
  //   P V (pv_decode) for the next tile's K rows, a key's worth per key of either phase. A tile whose K rows
  //   were not all asked for so (ws.k_unasked: an item's first tile, one after a skipped tile or after a P V
  //   over part of its tile) asks for its own, kPrefetchKeys ahead. With every request in the Q K^T phase
  //   (until the twenty-fourth session) the fill buffers capped decoding at 10.9 GB/s on one core of
  //   Emerald Rapids, against 12.0 spread (two threads: 21-25 -> 24-30 GB/s; bench/RESULTS.md).
  // - V converted by pack_v before each tile's Q K^T (float16, bfloat16, padded rows): Q K^T asks for K
  //   rows kPrefetchKeys ahead and for the next tile's V rows; P V reads only the converted tile, in L1.
  static constexpr int kDotKeys = 4;
  void qk_dot(const Workspace& ws, int64_t rb, int rows, int64_t kbase, int64_t vbase, int64_t j0,
              int64_t nk) const {
    constexpr int G = Blocking<A>::kDotRows;
    const int64_t lds = tiles_.block_k;
    const bool spread = v_rows_usable();
    for (int64_t j = 0; j < nk; j += kDotKeys) {
      const int kj = static_cast<int>(std::min<int64_t>(kDotKeys, nk - j));
      const A* k[kDotKeys];
      for (int t = 0; t < kDotKeys; ++t) {
        if (!spread || (ws.k_unasked && j + t + detail::kPrefetchKeys < nk)) {
          prefetch_row<2>(p_.k, kbase + (j0 + j + t + detail::kPrefetchKeys) * p_.k_seq_stride, p_.k_dim_stride,
                          p_.head_dim);
        }
        prefetch_row<2>(p_.v, vbase + (j0 + j + t + (spread ? 0 : tiles_.block_k)) * p_.v_seq_stride,
                        p_.v_dim_stride, p_.head_dim_v);
        k[t] = t < kj ? key_row(ws, kbase, j0 + j + t, t) : k[0];  // past the tile: a copy, not stored
      }
      for (int r0 = 0; r0 < rows; r0 += G) {
        detail::with_count<G>(std::min(G, rows - r0), [&](auto rows_c) {
          dot_keys<decltype(rows_c)::value>(ws.q + (rb + r0) * dqp_, k, kj, ws.s + r0 * lds + j, lds);
        });
      }
    }
  }

  // S[r][t] = q_r . k_t for the R query rows at q (dqp_ apart) and the kj <= kDotKeys key rows k[t] (k[t]
  // for t >= kj: any readable row, its sum not stored), into dst[r * lds + t]: W lanes per product, then
  // reduce_add4. Each row's arithmetic is the same whatever R. The loops over rows are unrolled, so that the
  // accumulators stay in registers: as plain loops (the reduction's a branch per row), GCC kept them on the
  // stack, and decoding from the caches ran 7-17 % slower on one thread (with pv_group's unrolled merge;
  // bench/results/decode-ab-session38-epyc-zen4.txt).
  template <int R>
  __attribute__((always_inline)) void dot_keys(const A* q, const A* const* k, int kj, A* dst, int64_t lds) const {
    V acc[R][kDotKeys];
    TILEATTN_UNROLL
    for (int r = 0; r < R; ++r) {
      TILEATTN_UNROLL
      for (int t = 0; t < kDotKeys; ++t) acc[r][t] = V::zero();
    }
    for (int64_t d = 0; d < dqp_; d += W) {
      V kv[kDotKeys];
      for (int t = 0; t < kDotKeys; ++t) kv[t] = V::load(k[t] + d);
      for (int r = 0; r < R; ++r) {
        const V qv = V::load(q + r * dqp_ + d);
        for (int t = 0; t < kDotKeys; ++t) acc[r][t] = fmadd(qv, kv[t], acc[r][t]);  // s += q * k
      }
    }
    if (kj == kDotKeys) {
      TILEATTN_UNROLL
      for (int r = 0; r < R; ++r) reduce_add4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], dst + r * lds);
    } else {
      TILEATTN_UNROLL
      for (int r = 0; r < R; ++r) {
        A sums[kDotKeys];
        reduce_add4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], sums);
        std::copy(sums, sums + kj, dst + r * lds);
      }
    }
  }

  // dot_keys for R rows in groups of kDotRows.
  template <int R>
  __attribute__((always_inline)) void dot_rows(const A* q, const A* const* k, int kj, A* dst, int64_t lds) const {
    constexpr int G = Blocking<A>::kDotRows;
    if constexpr (R <= G) {
      dot_keys<R>(q, k, kj, dst, lds);
    } else {
      dot_keys<G>(q, k, kj, dst, lds);
      dot_rows<R - G>(q + G * dqp_, k, kj, dst + G * lds, lds);
    }
  }

  // Asks the caches for the n elements of T at element offset `at` (contiguous rows only). Prefetches never
  // fault, so addresses past the array's end are harmless.
  // Always inlined: out of line, GCC finds a function of prefetches free of effects and deletes its calls.
  template <int kLocality>
  __attribute__((always_inline)) static void prefetch_row(const void* base, int64_t at, int64_t stride, int64_t n) {
    if (stride != 1) return;
    prefetch_lines<kLocality>(static_cast<const char*>(base) + at * int64_t{sizeof(T)}, n * int64_t{sizeof(T)});
  }

  // Asks for every cache line that holds a byte of [p, p + bytes): one more than bytes / 64 when p is not
  // aligned to 64 bytes (NumPy aligns to 16), which a loop over offsets 0, 64, ... from p would leave out.
  template <int kLocality>
  __attribute__((always_inline)) static void prefetch_lines(const void* p, int64_t bytes) {
    if (bytes <= 0) return;
    const auto first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
    const auto last = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes) - 1;
    for (uintptr_t a = first; a <= last; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kLocality);
  }

  // K rows [j, j + keys) converted to A into the staging block (rows past `keys` zero).
  const A* stage_k(const Workspace& ws, int64_t kbase, int64_t j, int64_t keys) const {
    const int64_t d_len = p_.head_dim;
    for (int64_t w = 0; w < W; ++w) {
      A* dst = ws.ks + w * d_len;
      if (w < keys) {
        read_row<A, T>(p_.k, kbase + (j + w) * p_.k_seq_stride, p_.k_dim_stride, d_len, dst);
      } else {
        std::fill(dst, dst + d_len, A(0));
      }
    }
    return ws.ks;
  }

  // A register block (its first row) against a KV tile (its first key).
  struct BlockAt {
    int64_t rb, j0;
  };

  // What P V needs of one register block after its softmax: its live rows' probabilities, output rows,
  // masked keys (careful), rescale factors and key ranges.
  struct PvJob {
    const A* prow[MR];
    A* orow[MR];
    const uint8_t* drow[MR];
    A alpha[MR];
    int64_t ra[MR], re[MR];
    int active;
    bool careful;
    int64_t next_j0;  // decoding: the tile computed next, whose K rows P V asks for (-1: none)
    int64_t k_next;   // where that tile's K rows start in p_.k (-1: none)
  };

  // One register block of rows [rb, rb + MR) against the KV tile [j0, j0 + nk) of sequence b, kv head g:
  // the scores, their transform and the online softmax, into ws.s; job receives what P V needs.
  void tile_scores(const Workspace& ws, int64_t rb, int64_t nrows, int64_t nq, int64_t b, int64_t g, int64_t i0,
                   int64_t j0, int64_t nk, int64_t kbase, int64_t vbase, bool careful, BlockAt next,
                   Prefetch& pf, PvJob& job) const {
    job.active = 0;
    job.careful = careful;
    job.next_j0 = decode_ && v_rows_usable() && p_.k_dim_stride == 1 && next.rb >= 0 && next.j0 != j0 ? next.j0 : -1;
    job.k_next = job.next_j0 >= 0 ? kbase + job.next_j0 * p_.k_seq_stride : -1;
    pf.step();
    int64_t a[MR], e[MR];  // keys of this tile each row may see: [a[r], e[r])
    int64_t emax = 0;
    const int64_t tile = j0 / tiles_.block_k;
    // Every row that sees a key of the tile sees all of them (by the mask summary; never without one).
    bool mask_all = mask_.active();
    for (int r = 0; r < MR; ++r) {
      const int64_t row = rb + r;
      a[r] = e[r] = 0;
      if (row >= nrows) continue;
      const int64_t lo = std::clamp<int64_t>(ws.lo[row] - j0, 0, nk);
      const int64_t hi = std::clamp<int64_t>(ws.hi[row] - j0, 0, nk);
      if (hi <= lo) continue;
      if (mask_.active()) {
        const int64_t h = head_of(g, row, nq), i = i0 + row % nq;
        if (!mask_.sees_tile(b, h, i, tile)) continue;
        mask_all = mask_all && mask_.full_tile(b, h, i, tile);
      }
      a[r] = lo, e[r] = hi;
      emax = std::max(emax, hi);
    }
    if (emax == 0) return;
    const int64_t lds = tiles_.block_k;
    // A full block: every row sees every key of a tile without padding (all tiles but the diagonal ones,
    // window edges and the last). The element-wise options and the row maxima come out of the Q K^T
    // epilogue; other blocks take a second pass over the scores. Either way every row goes through the same
    // arithmetic whatever its block. Without options a tile of whole vectors is enough (its last chunk of
    // fewer than NQ vectors gives its maxima too: a 32-key tile, S32, took the second pass, 9 % of a
    // B64 H12 S32 D64 call, now 2 % faster); the options' epilogue runs on whole chunks only.
    bool full = !decode_ && nk % (int64_t{W} * (transform_ ? NQ : 1)) == 0;
    for (int r = 0; r < MR; ++r) full = full && a[r] == 0 && e[r] == nk;
    // Every row sees a prefix of the tile (the causal diagonal's blocks): the softmax of full blocks, each
    // row's last vectors cut.
    bool prefix = !decode_;
    for (int r = 0; r < MR; ++r) prefix = prefix && a[r] == 0 && e[r] > 0;
    V vmax[MR];
    for (int r = 0; r < MR; ++r) vmax[r] = V::set1(-std::numeric_limits<A>::infinity());
    // The scores of the block: Q K^T, then the element-wise options (each set of options its own code).
    const auto scores = [&](auto flags) {
      constexpr int F = decltype(flags)::value;
      Transform xf;
      if constexpr (F != 0) block_transform<F>(ws, rb, nrows, j0, nk, next, xf);
      if (decode_) {
        qk_dot(ws, rb, static_cast<int>(std::min<int64_t>(MR, nrows - rb)), kbase, vbase, j0, emax);
      } else {
        // Key vectors some row of the block sees; a last chunk seen only in part (the diagonal's tile, a
        // window's edge, the last tile) is computed over those vectors only. (Not a full block.)
        const int64_t nv = ceil_div(emax, W);
        for (int64_t kv = 0; kv < nv; kv += NQ) {
          A* s = ws.s + kv * W;
          const int part = static_cast<int>(std::min<int64_t>(NQ, nv - kv));  // < NQ: the part
#ifdef TILEATTN_BF16_DOT
          if constexpr (std::is_same_v<T, BFloat16>) {
            if (bf16_dot_) {
              qk_chunk_pairs<F>(ws, rb, kv, part, full, xf, vmax);
              continue;
            }
          }
#endif
          const A* kt = ws.kt + kv * p_.head_dim * W;  // chunk kv / NQ
          const auto [q, ldq] = q_block(ws, b, g, i0, nq, nrows, rb);
          if (part < NQ) {
            detail::with_count<NQ - 1>(part, [&, q = q, ldq = ldq](auto n) {
              qk_block<A, MR, decltype(n)::value, NoEpilogue<A>, NQ>(q, ldq, kt, p_.head_dim, s, lds,
                                                                      full ? vmax : nullptr);
            });
          } else if (F != 0 && full) {
            const FusedTransform<A, MR, NQ, F> epi{xf};
            qk_block<A, MR, NQ>(q, ldq, kt, p_.head_dim, s, lds, vmax, epi, kv * W);
          } else {
            qk_block<A, MR, NQ>(q, ldq, kt, p_.head_dim, s, lds, full ? vmax : nullptr);
          }
        }
      }
      if (F != 0 && !full) transform_rows<F>(ws, xf, a, e, vmax);
    };
    if (transform_ && mask_all && (xf_flags_ & kXfMask) != 0) {  // the block need not read the mask
      if (xf_flags_ == kXfMask) {
        scores(std::integral_constant<int, kXfScaleOnly>{});
      } else {
        detail::with_value<kXfAll + 1>(xf_flags_ & ~kXfMask, scores);
      }
    } else if (transform_) {
      detail::with_value<kXfAll + 1>(xf_flags_, scores);
    } else {
      scores(std::integral_constant<int, 0>{});
    }
    pf.step();
    if (careful) {  // the keys at -inf, which P V must skip
      for (int r = 0; r < MR; ++r) {
        for (int64_t k = a[r]; k < e[r]; ++k) ws.dead[r * lds + k] = ws.s[r * lds + k] == -std::numeric_limits<A>::infinity();
      }
    }

    A alpha_row[MR];
    bool live[MR];
    const auto softmax = [&](auto nats) {
      constexpr bool kNats = decltype(nats)::value;
      const V* vm = full || transform_ ? vmax : nullptr;
      if (full ? softmax_prefix<kNats, true>(ws, rb, nk, e, vmax, xf_c_, alpha_row, live)
               : prefix && softmax_cut<kNats>(ws, rb, nk, e, vm, xf_c_, alpha_row, live)) {
        return;
      }
      softmax_rows<kNats>(ws, rb, a, e, vm, xf_c_, alpha_row, live);
    };
    nats_ ? softmax(std::true_type{}) : softmax(std::false_type{});

    pf.step();
    int active = 0;
    for (int r = 0; r < MR; ++r) {
      if (!live[r]) continue;  // sees nothing here, or every visible score is -inf: nothing to add
      job.prow[active] = ws.s + r * lds;
      job.orow[active] = ws.o + (rb + r) * dvp_;
      job.drow[active] = careful ? ws.dead + r * lds : nullptr;
      job.alpha[active] = alpha_row[r];
      job.ra[active] = a[r], job.re[active] = e[r];
      ++active;
    }
    job.active = active;
  }

#ifdef TILEATTN_BF16_DOT
  // tile_scores' Q K^T of chunk kv / NQ (key vectors kv .. kv + part) on bfloat16 pairs (bf16_dot_), into
  // ws.s. Out of line: inside tile_scores' lambda, its code made GCC stop inlining that lambda for bfloat16
  // inputs, whose float path then ran 2 % slower than float32 inputs' (profile, S2048 D64, one thread).
  template <int F>
  __attribute__((noinline)) void qk_chunk_pairs(const Workspace& ws, int64_t rb, int64_t kv, int part, bool full,
                                                const Transform& xf, V* vmax) const {
    float* const s = ws.s + kv * W;
    const int64_t lds = tiles_.block_k;
    const float* kt = ws.kt + kv * pairs_ * W;  // chunk kv / NQ, as pairs
    if (part < NQ) {
      detail::with_count<NQ - 1>(part, [&](auto n) {
        qk_block_bf16<MR, decltype(n)::value, NoEpilogue<float>, NQ>(ws.qb + rb * pairs_, pairs_, kt, pairs_, s,
                                                                      lds, full ? vmax : nullptr);
      });
    } else if (F != 0 && full) {
      const FusedTransform<A, MR, NQ, F> epi{xf};
      qk_block_bf16<MR, NQ>(ws.qb + rb * pairs_, pairs_, kt, pairs_, s, lds, vmax, epi, kv * W);
    } else {
      qk_block_bf16<MR, NQ>(ws.qb + rb * pairs_, pairs_, kt, pairs_, s, lds, full ? vmax : nullptr);
    }
  }
#endif

  // O = alpha O + P V for the live rows of a block whose softmax is done (tile_scores). Returns how many K
  // rows of the tile job.next_j0, from its first, it asked the caches for (decoding).
  int64_t tile_pv(const PvJob& job, const A* vt, int64_t ldv, Prefetch& pf) const {
    pf.step();
    if (job.active == 0) return 0;
    if (job.careful) {
      pv_careful(job.prow, job.orow, job.drow, job.alpha, job.ra, job.re, job.active, vt, ldv);
    } else if (decode_) {
      return pv_decode<MR>(job.prow, job.orow, job.alpha, job.ra, job.re, job.active, vt, ldv, job.k_next);
    } else {
      pv_rows(job.prow, job.orow, job.alpha, job.ra, job.re, job.active, vt, ldv);
    }
    return 0;
  }

  // The transform of rows [rb, rb + MR) against the tile at key j0. Asks the caches for each row's mask and
  // converted bias kPrefetchTiles tiles ahead (into L2) and for the next block's rows of this tile (into
  // L1): rows of a (Sq, Sk) mask are far apart, and the hardware prefetchers do not follow a block's worth
  // of such streams (a bias read in place is prefetched by the transform, ScoreTransform::prefetch). Only
  // the fields that the options F use are set: this runs for every block and tile.
  template <int F>
  void block_transform(const Workspace& ws, int64_t rb, int64_t nrows, int64_t j0, int64_t nk, BlockAt next,
                       Transform& x) const {
    constexpr bool kBias = (F & kXfBias) != 0, kMask = (F & kXfMask) != 0;
    x.mask_contiguous = p_.mask_key_stride == 1;
    x.prefetch_bias = bias_native_ && p_.bias_seq_stride != 0;
    x.mask_stride = p_.mask_key_stride;
    x.mult = V::set1(p_.softcap > 0 ? static_cast<A>(std::fabs(p_.scale) / p_.softcap) : scale_abs_);
    if constexpr ((F & kXfSoftcap) != 0) x.cap = V::set1(static_cast<A>(p_.softcap));
    x.gather = ws.bias, x.keep = ws.keep;
    const bool prefetch_rows = (kMask && p_.mask_key_stride == 1) || (kBias && p_.bias_key_stride == 1 && !bias_native_);
    for (int r = 0; r < MR; ++r) {
      const RowOptions& o = ws.opt[std::min(rb + r, nrows - 1)];
      if (!kBias) {
      } else if (bias_native_) {
        const A* base = static_cast<const A*>(p_.bias);
        x.bias[r] = base + o.bias + j0;
        x.bias_next[r] = next.rb >= 0 && next.rb + r < nrows ? base + ws.opt[next.rb + r].bias + next.j0 : x.bias[r];
      } else if (p_.bias != nullptr) {
        A* dst = ws.bias_tile + r * tiles_.block_k;
        x.bias[r] = x.bias_next[r] = dst;
        if (rb + r < nrows) convert_bias(o.bias + j0 * p_.bias_key_stride, nk, dst);
      }
      if constexpr (kMask) x.mask_row[r] = o.mask != nullptr ? o.mask + j0 * p_.mask_key_stride : nullptr;
      if constexpr ((F & kXfAlibi) != 0) {
        x.neg_slope[r] = V::set1(o.neg_slope);
        x.diag[r] = sub(V::set1(static_cast<A>(o.diag - j0)), lane_index(A(0)));
      }
      if (prefetch_rows) {
        if (rb + r < nrows) prefetch_options<2>(o, j0 + detail::kPrefetchTiles * tiles_.block_k);  // far ahead, into L2
        if (next.rb >= 0 && next.rb + r < nrows) prefetch_options<3>(ws.opt[next.rb + r], next.j0);  // next block, into L1
      }
    }
  }

  // The transform as a second pass over the scores, row r over keys [a[r], e[r]) of the tile; keys outside
  // become -inf. vmax[r] receives the lane-wise max of row r's result, so that the softmax needs no pass
  // of its own.
  template <int F>
  void transform_rows(const Workspace& ws, const Transform& xf, const int64_t* a, const int64_t* e, V* vmax) const {
    const V ninf = V::set1(-std::numeric_limits<A>::infinity());
    const V lanes = lane_index(A(0));
    for (int r = 0; r < MR; ++r) {
      const int64_t ar = a[r], er = e[r];
      if (er <= ar) continue;
      A* s = ws.s + r * tiles_.block_k;
      V m = ninf;
      for (int64_t j = ar / W * W; j < er; j += W) {
        V t;
        if (j >= ar && j + W <= er) {
          if constexpr ((F & kXfBias) != 0) xf.prefetch(r, j);
          t = xf.template apply<F, true>(r, j, V::load(s + j), ar, er);
        } else {  // lanes outside [a, e) hold no visible score
          t = xf.template apply<F, false>(r, j, V::load(s + j), ar, er);
          const V jv = add(V::set1(static_cast<A>(j)), lanes);
          t = select_lt(jv, V::set1(static_cast<A>(ar)), ninf, t);
          t = select_lt(jv, V::set1(static_cast<A>(er)), t, ninf);
        }
        t.store(s + j);
        m = max(m, t);
      }
      vmax[r] = m;
    }
  }

  // dst[j] = bias[at + j * key stride] as A for j < n: a row's bias of one tile.
  void convert_bias(int64_t at, int64_t n, A* dst) const {
    if constexpr (std::is_same_v<A, float>) {
      if (p_.bias_key_stride == 1 && (p_.bias_dtype == DType::kFloat16 || p_.bias_dtype == DType::kBFloat16)) {
        if (p_.bias_dtype == DType::kFloat16) {
          read_row<A, Half>(p_.bias, at, 1, n, dst);
        } else {
          read_row<A, BFloat16>(p_.bias, at, 1, n, dst);
        }
        return;
      }
    }
    for (int64_t j = 0; j < n; ++j) dst[j] = detail::saturate<A>(detail::bias_elem(p_, at + j * p_.bias_key_stride));
  }

  // Prefetches a row's mask bytes and bias values of the keys [j, j + block_k) (contiguous rows only), into
  // L1 (kLocality 3) or L2 (2). Always inlined: out of line, GCC finds a function of prefetches free of
  // effects and deletes its calls.
  template <int kLocality>
  __attribute__((always_inline)) void prefetch_options(const RowOptions& opt, int64_t j) const {
    if (j >= geo_.max_keys()) return;
    if (opt.mask != nullptr && p_.mask_key_stride == 1) prefetch_lines<kLocality>(opt.mask + j, tiles_.block_k);
    if (p_.bias != nullptr && p_.bias_key_stride == 1 && !bias_native_) {  // native: prefetched by the transform
      const int64_t size = detail::dtype_size(p_.bias_dtype);
      prefetch_lines<kLocality>(static_cast<const char*>(p_.bias) + (opt.bias + j) * size, tiles_.block_k * size);
    }
  }

  // O = alpha O + P V for the active rows of a block, row x over its keys [a[x], e[x]). The keys are summed
  // in chains over fixed sub-blocks [c, c + kPvChain) of the tile, each merged into O (the row's first chain
  // with the rescale alpha): a two-level sum whose rounding error stays that of a BLAS product, and the same
  // for a row whatever block it is in. Chains a row sees from their first key go through register blocks:
  // pv_block when every such row sees the whole chain, else its kRagged form, each row up to its own last key
  // (the causal diagonal; measured, one thread, alternated: causal S16 D64 +4-7 %, S512 +2 %, S2048 +0.5 %,
  // thirty-fifth session). Rows that start inside a chain (a window's left edge) go row by row. Either way a
  // row never multiplies a probability with a value it may not see.
  void pv_rows(const A* const* p, A* const* o, const A* alpha, const int64_t* a, const int64_t* e, int rows,
               const A* vt, int64_t ldv) const {
    int64_t amin = std::numeric_limits<int64_t>::max(), emax = 0;
    for (int x = 0; x < rows; ++x) amin = std::min(amin, a[x]), emax = std::max(emax, e[x]);
    const A* pf[MR];
    A* of[MR];
    A sf[MR];
    for (int64_t c = amin / detail::kPvChain * detail::kPvChain; c < emax; c += detail::kPvChain) {
      const int64_t c1 = std::min(c + detail::kPvChain, emax);
      int full = 0;
      int64_t ends[MR];    // keys of the chain each blocked row sees, from its first
      bool ragged = false;  // some blocked row sees fewer than all
      for (int x = 0; x < rows; ++x) {
        if (e[x] <= c || a[x] >= c1) continue;
        const A scale = a[x] >= c ? alpha[x] : A(1);  // the row's first chain also rescales O
        if (a[x] <= c) {
          pf[full] = p[x] + c;
          of[full] = o[x];
          sf[full] = scale;
          ends[full] = std::min(e[x], c1) - c;
          ragged = ragged || e[x] < c1;
          ++full;
        } else {
          const int64_t from = std::max(a[x], c);
          pv_one_row(p[x] + from, o[x], scale, vt + from * ldv, ldv, std::min(e[x], c1) - from);
        }
      }
      if (full == 0) continue;
      const int64_t keys = c1 - c;
      detail::with_count<MR>(full, [&](auto rows_c) {
        constexpr int R = decltype(rows_c)::value;
        // The output vectors in passes of at most NP, as even as they go (D80: 3 + 2, not 4 + 1, whose pass of
        // one vector has too few independent sums to keep the FMA units busy).
        const int64_t vecs = dvp_ / W, passes = ceil_div(vecs, NP);
        int64_t col = 0;
        for (int64_t x = 0; x < passes; ++x) {
          const int n = static_cast<int>(vecs / passes + (x < vecs % passes ? 1 : 0));
          detail::with_count<NP>(n, [&](auto n_c) {
            if (ragged) {
              pv_block<A, R, decltype(n_c)::value, true>(pf, of, sf, vt + c * ldv, ldv, keys, col, ends);
            } else {
              pv_block<A, R, decltype(n_c)::value>(pf, of, sf, vt + c * ldv, ldv, keys, col);
            }
          });
          col += int64_t{n} * W;
        }
      });
    }
  }

  // o = scale * o + sum_{j < keys} p[j] * vt[j], one row, every output vector (same arithmetic per element
  // as pv_block).
  void pv_one_row(const A* p, A* o, A scale, const A* vt, int64_t ldv, int64_t keys) const {
    constexpr int kCols = 8;
    for (int64_t col = 0; col < dvp_; col += kCols * W) {
      detail::with_count<kCols>(static_cast<int>(std::min<int64_t>(kCols, (dvp_ - col) / W)), [&](auto cols) {
        constexpr int C = decltype(cols)::value;
        const A* pp[1] = {p};
        A* const oo[1] = {o};
        const A ss[1] = {scale};
        pv_block<A, 1, C>(pp, oo, ss, vt, ldv, keys, col);
      });
    }
  }

  // Decoding: P V in chains of kDecodePvChain keys, a two-level sum as accurate as a BLAS gemv (the loop is
  // bound by memory, so the extra adds cost nothing). Rows that see the same keys (a GQA group's heads) go
  // together, up to kDecodePvRows of them, so that each V vector is loaded once for all of them; each output
  // element takes the same operations in the same order whatever the grouping.
  // Rows of an array to ask the caches for, one per key of a loop: at key j, the `bytes` bytes of row
  // j - first, at at + (j - first) * stride (at null: none).
  struct RowAsk {
    const char* at = nullptr;
    int64_t first = 0, stride = 0, bytes = 0;
  };

  // The K rows that start at element k_at of p_.k, one per key from key `first` on, for pv_group to ask the
  // caches for (none when k_at < 0).
  RowAsk k_rows_ask(int64_t k_at, int64_t first) const {
    if (k_at < 0) return {};
    return {static_cast<const char*>(p_.k) + k_at * int64_t{sizeof(T)}, first, p_.k_seq_stride * int64_t{sizeof(T)},
            p_.head_dim * int64_t{sizeof(T)}};
  }

  // k_next: where the K rows to ask the caches for meanwhile start in p_.k (qk_dot), or -1. The first group
  // of rows asks, one K row per key of its range; returns how many rows that is. RMax: the most rows the
  // caller passes (decode_rows: its R), so that one row compiles to pv_group<1> with no search or dispatch.
  // Measured (one thread, MHA B1 H32 Sk4096 D64 from L3): the grouping for up to kDecodePvRows rows 25.3
  // GB/s, a direct call 26.3 (thirty-fourth session); this form the same as the direct call, 25.3-25.9 in
  // alternated runs of both builds, and GQA (R = 4) 19.3-19.8 against 19.5-19.8 (thirty-fifth).
  template <int RMax>
  int64_t pv_decode(const A* const* p, A* const* o, const A* alpha, const int64_t* a, const int64_t* e, int rows,
                    const A* vt, int64_t ldv, int64_t k_next) const {
    constexpr int kRowsMax = std::min(RMax, Blocking<A>::kDecodePvRows);
    for (int x = 0; x < rows;) {
      int n = 1;
      while (x + n < rows && n < kRowsMax && a[x + n] == a[x] && e[x + n] == e[x]) ++n;
      const RowAsk ask = x == 0 ? k_rows_ask(k_next, a[0]) : RowAsk{};
      detail::with_count<kRowsMax>(n, [&](auto rows_c) {
        pv_group<decltype(rows_c)::value, false>(p + x, nullptr, o + x, alpha + x, a[x], e[x], detail::kDecodePvChain,
                                                 vt, ldv, ask);
      });
      x += n;
    }
    return k_next >= 0 && rows > 0 ? e[0] - a[0] : 0;
  }

  // P V of R rows over the same keys [a, e), summed in chains of `chain` keys starting at a, each merged into
  // O: o = alpha o + acc for the first chain, o += acc after; C output vectors of each row in registers at a
  // time. With kDead, row r skips the keys that dead[r] marks (masked keys whose value may be inf or NaN:
  // 0 * inf would be NaN). An output element's operations depend neither on R nor on C. At each key, the
  // pass over output columns [col, col + C W) asks for the same share of ask's row (the last pass for the rest).
  template <int R, bool kDead>
  void pv_group(const A* const* p, const uint8_t* const* dead, A* const* o, const A* alpha, int64_t a, int64_t e,
                int64_t chain, const A* vt, int64_t ldv, RowAsk ask = {}) const {
    constexpr int kCols = std::clamp(Blocking<A>::kDecodePvAccs / R, 1, 8);
    const int64_t vecs = dvp_ / W;
    const int64_t passes = ceil_div(vecs, int64_t{kCols});
    const int cols = static_cast<int>(ceil_div(vecs, passes));  // even passes: 8 vectors as 4 + 4, not 6 + 2
    for (int64_t col = 0; col < dvp_; col += int64_t{cols} * W) {
      detail::with_count<kCols>(static_cast<int>(std::min<int64_t>(cols, (dvp_ - col) / W)), [&](auto cols_c) {
        constexpr int C = decltype(cols_c)::value;
        const int64_t ask_lo = std::min(ask.bytes, col * int64_t{sizeof(T)});
        const int64_t ask_hi = col + C * W >= dvp_ ? ask.bytes : std::min(ask.bytes, (col + C * W) * int64_t{sizeof(T)});
        for (int64_t j0 = a; j0 < e; j0 += chain) {
          const int64_t j1 = std::min(e, j0 + chain);
          V acc[R][C];
          TILEATTN_UNROLL
          for (int r = 0; r < R; ++r) {
            TILEATTN_UNROLL
            for (int c = 0; c < C; ++c) acc[r][c] = V::zero();
          }
          for (int64_t j = j0; j < j1; ++j) {
            if (ask.at != nullptr) prefetch_lines<2>(ask.at + (j - ask.first) * ask.stride + ask_lo, ask_hi - ask_lo);
            V vv[C];
            TILEATTN_UNROLL
            for (int c = 0; c < C; ++c) vv[c] = V::load(vt + j * ldv + col + c * W);
            TILEATTN_UNROLL
            for (int r = 0; r < R; ++r) {
              if constexpr (kDead) {
                if (dead[r][j]) continue;
              }
              const V pv = V::set1(p[r][j]);
              TILEATTN_UNROLL
              for (int c = 0; c < C; ++c) acc[r][c] = fmadd(pv, vv[c], acc[r][c]);  // acc += p * v
            }
          }
          // o = alpha o + acc for the first chain, o + acc after: each branch unrolled, so that the
          // accumulators stay in registers (as one loop with the choice per element, GCC stored them on the
          // stack and reloaded them; see dot_keys).
          if (j0 == a) {
            TILEATTN_UNROLL
            for (int r = 0; r < R; ++r) {
              const V av = V::set1(alpha[r]);
              TILEATTN_UNROLL
              for (int c = 0; c < C; ++c) {
                A* dst = o[r] + col + c * W;
                fmadd(V::load(dst), av, acc[r][c]).store(dst);
              }
            }
          } else {
            TILEATTN_UNROLL
            for (int r = 0; r < R; ++r) {
              TILEATTN_UNROLL
              for (int c = 0; c < C; ++c) {
                A* dst = o[r] + col + c * W;
                add(V::load(dst), acc[r][c]).store(dst);
              }
            }
          }
        }
      });
    }
  }

  // P V when the tile's V holds a non-finite value and some keys are masked: row by row, the masked keys
  // skipped (0 * inf would be NaN). Rare; exactness over speed.
  void pv_careful(const A* const* p, A* const* o, const uint8_t* const* dead, const A* alpha, const int64_t* a,
                  const int64_t* e, int rows, const A* vt, int64_t ldv) const {
    for (int x = 0; x < rows; ++x) pv_group<1, true>(p + x, dead + x, o + x, alpha + x, a[x], e[x], detail::kPvChain, vt, ldv);
  }

  // A difference of two row maxima in base-2 units (they are in natural-log units after the transform).
  A to_base2(A d) const { return nats_ ? d * static_cast<A>(kLog2e) : d; }

  // The exponent of p = 2^(...) of scores s against the row's max m' (neg_m = -m'): s c - m' in one fma
  // for base-2 scores, (s - m') log2(e) for scores in nats (c is 1 then).
  template <bool kNats>
  static V exponent(V s, V c, V neg_m) {
    if constexpr (kNats) {
      return mul(add(s, neg_m), V::set1(static_cast<A>(kLog2e)));
    } else {
      return fmadd(s, c, neg_m);
    }
  }

  // 2^x through the vector exp2, so that every path computes alpha with the same function.
  static A exp2_scalar(A x) {
    A lanes[W];
    exp2(V::set1(x)).store(lanes);
    return lanes[0];
  }

  // The new running max of a row from the max of its scores in this tile (already times c), or
  // false when every visible score is -inf (the row stays empty). A NaN score (which max may drop) makes it
  // NaN.
  bool new_max(A m_old, A tile_max, const A* s, int64_t a, int64_t e, A* m_new) const {
    A m = tile_max > m_old ? tile_max : m_old;
    if (m == -std::numeric_limits<A>::infinity()) {
      bool nan = false;
      for (int64_t j = a; j < e; ++j) nan = nan || std::isnan(s[j]);
      if (!nan) return false;
      m = std::numeric_limits<A>::quiet_NaN();
    }
    *m_new = m;
    return true;
  }

  // Online softmax update of the MR rows of a block, row r over its visible scores S[r][a[r], e[r]):
  // turns S into probabilities, updates each row's max m and sum l, and gives the factor
  // alpha = 2^(m - m') by which the row's output accumulators must be rescaled. live[r] is false when the
  // row sees nothing here or every visible score is -inf (the row adds nothing); a NaN score makes the row
  // NaN. Scores times c are in base-2 units: c = |scale| log2(e) on raw scores (q carries the scale's sign),
  // 1 after the transform, which leaves them in nats (kNats): the exponent is then (s - m') log2(e).
  // vmax, when given, holds the rows' lane-wise maxima of S (full blocks, from the Q K^T epilogue). The
  // rows advance in lockstep, so that their dependency chains overlap; every row goes through the same
  // operations in the same order whatever its neighbours.
  // p = 2^(fma(s, c, -m')) rounds once, and the rounding of m' is common to the whole row: it cancels in
  // O / l.
  template <bool kNats, int R = MR>
  void softmax_rows(const Workspace& ws, int64_t rb, const int64_t* a, const int64_t* e, const V* vmax_in, A c,
                    A* alpha, bool* live) const {
    const A neg_inf = -std::numeric_limits<A>::infinity();
    const int64_t lds = tiles_.block_k;
    int64_t v0[R], v1[R];  // each row's vectors [v0, v1)
    int64_t v_lo = std::numeric_limits<int64_t>::max(), v_hi = 0;
    for (int r = 0; r < R; ++r) {
      v0[r] = a[r] / W;
      v1[r] = e[r] > a[r] ? ceil_div(e[r], W) : v0[r];
      if (v1[r] > v0[r]) v_lo = std::min(v_lo, v0[r]), v_hi = std::max(v_hi, v1[r]);
    }
    // Keys outside [a, e) are not visible: selected away, never added to (a NaN there must not reach the
    // row).
    const auto visible = [&](int r, int64_t v, V x) {
      if (v == v1[r] - 1) x = keep_first(x, static_cast<int>(e[r] - v * W), neg_inf);
      if (v == v0[r] && a[r] > v * W) {
        x = select_lt(lane_index(A(0)), V::set1(static_cast<A>(a[r] - v * W)), V::set1(neg_inf), x);
      }
      return x;
    };
    V vmax[R];
    if (vmax_in != nullptr) {
      for (int r = 0; r < R; ++r) vmax[r] = vmax_in[r];
    } else {
      for (int r = 0; r < R; ++r) vmax[r] = V::set1(neg_inf);
      for (int64_t v = v_lo; v < v_hi; ++v) {
        for (int r = 0; r < R; ++r) {
          if (v < v0[r] || v >= v1[r]) continue;
          vmax[r] = max(vmax[r], visible(r, v, V::load(ws.s + r * lds + v * W)));
        }
      }
    }
    V neg_m[R];
    for (int r = 0; r < R; ++r) {
      live[r] = false;
      neg_m[r] = V::zero();
      if (e[r] <= a[r]) continue;
      const A m_old = ws.m[rb + r];
      A m_new;
      // c >= 0, so max(s) * c = max(s * c): rounding is monotonic.
      if (!new_max(m_old, reduce_max(vmax[r]) * c, ws.s + r * lds, a[r], e[r], &m_new)) continue;
      live[r] = true;
      // alpha = 2^(m - m'): exactly 1 when the max did not change and 0 on the row's first tile (exp2 gives
      // those same values; skipping it there changes no bit).
      alpha[r] = m_old == m_new ? A(1) : m_old == neg_inf ? A(0) : exp2_scalar(to_base2(m_old - m_new));
      ws.m[rb + r] = m_new;
      neg_m[r] = V::set1(-m_new);
    }
    const V cv = V::set1(c);
    V vsum[R];
    for (int r = 0; r < R; ++r) vsum[r] = V::zero();
    for (int64_t v = v_lo; v < v_hi; ++v) {
      for (int r = 0; r < R; ++r) {
        if (!live[r] || v < v0[r] || v >= v1[r]) continue;
        A* s = ws.s + r * lds + v * W;
        const V pv = exp2(visible(r, v, exponent<kNats>(V::load(s), cv, neg_m[r])));  // 0 off range
        pv.store(s);
        vsum[r] = add(vsum[r], pv);
      }
    }
    for (int r = 0; r < R; ++r) {
      if (live[r]) ws.l[rb + r] = ws.l[rb + r] * alpha[r] + reduce_add(vsum[r]);  // l = alpha * l + rowsum(p)
    }
  }

  // softmax_rows for a block whose rows all see a prefix of the tile: every row r keys [0, e[r]) with
  // e[r] > 0 (a full block: e = nk for all, nk a whole number of vectors, and the row maxima vmax from the
  // Q K^T epilogue; else vmax may be null, and the rows' last vectors are cut as softmax_rows cuts them:
  // the causal diagonal's blocks). The same operations in the same order as softmax_rows, without its
  // per-vector range and liveness tests, the rows unrolled. Returns false, having changed nothing, when
  // some row has seen only -inf so far (it may not be live, or hold a NaN): softmax_rows then decides.
  template <bool kNats, bool kFull>
  bool softmax_prefix(const Workspace& ws, int64_t rb, int64_t nk, const int64_t* e, const V* vmax_in, A c,
                      A* alpha, bool* live) const {
    const A neg_inf = -std::numeric_limits<A>::infinity();
    const int64_t lds = tiles_.block_k;
    A* const s = ws.s;
    int64_t v_hi = kFull ? nk / W : 0, v1[MR] = {};
    if constexpr (!kFull) {
      for (int r = 0; r < MR; ++r) v1[r] = ceil_div(e[r], W), v_hi = std::max(v_hi, v1[r]);
    }
    // Row r's scores of vector v as softmax_rows' visible() leaves them: lanes past e[r] -inf (and every lane
    // of the vectors past the row's last, which may not have been computed).
    const auto cut = [&](int r, int64_t v, V x) {
      if constexpr (kFull) {
        return x;
      } else {
        return v + 1 < v1[r] ? x : keep_first(x, static_cast<int>(std::max<int64_t>(e[r] - v * W, 0)), neg_inf);
      }
    };
    V vmax[MR];
    if (vmax_in != nullptr) {
      for (int r = 0; r < MR; ++r) vmax[r] = vmax_in[r];
    } else {  // as softmax_rows: the max of each row's visible scores, vector by vector
      for (int r = 0; r < MR; ++r) vmax[r] = V::set1(neg_inf);
      for (int64_t v = 0; v < v_hi; ++v) {
        TILEATTN_UNROLL
        for (int r = 0; r < MR; ++r) {
          if (v < v1[r]) vmax[r] = max(vmax[r], cut(r, v, V::load(s + r * lds + v * W)));
        }
      }
    }
    A m_new[MR];
    bool any_empty = false;
    TILEATTN_UNROLL
    for (int r = 0; r < MR; ++r) {
      const A tile_max = reduce_max(vmax[r]) * c;  // c >= 0: max(s) * c = max(s * c)
      const A m_old = ws.m[rb + r];
      m_new[r] = tile_max > m_old ? tile_max : m_old;  // as new_max
      any_empty = any_empty || m_new[r] == neg_inf;
    }
    if (any_empty) return false;
    V neg_m[MR], vsum[MR];
    TILEATTN_UNROLL
    for (int r = 0; r < MR; ++r) {
      const A m_old = ws.m[rb + r];
      alpha[r] = m_old == m_new[r] ? A(1) : m_old == neg_inf ? A(0) : exp2_scalar(to_base2(m_old - m_new[r]));
      ws.m[rb + r] = m_new[r];
      neg_m[r] = V::set1(-m_new[r]);
      vsum[r] = V::zero();
      live[r] = true;
    }
    const V cv = V::set1(c);
    // p, kExpRows rows' exponentials interleaved at a time: all MR rows at once kept more values live than
    // the registers hold (AVX-512 on Zen 4, one thread, this loop alone in bench/cpp/exp_ports.cpp: 8.7
    // cycles per vector of float32 in one group of 6, 7.8 in two of 3; float64 14.6 and 12.9, against port
    // bounds of 7 and 12).
    constexpr int G = MR % kExpRows == 0 ? kExpRows : MR;
    for (int64_t v = 0; v < v_hi; ++v) {
      TILEATTN_UNROLL
      for (int r0 = 0; r0 < MR; r0 += G) {
        V x[G];
        TILEATTN_UNROLL
        for (int i = 0; i < G; ++i) {
          x[i] = cut(r0 + i, v, exponent<kNats>(V::load(s + (r0 + i) * lds + v * W), cv, neg_m[r0 + i]));
        }
        exp2_n<G>(x);
        TILEATTN_UNROLL
        for (int i = 0; i < G; ++i) {
          x[i].store(s + (r0 + i) * lds + v * W);
          vsum[r0 + i] = add(vsum[r0 + i], x[i]);
        }
      }
    }
    TILEATTN_UNROLL
    for (int r = 0; r < MR; ++r) ws.l[rb + r] = ws.l[rb + r] * alpha[r] + reduce_add(vsum[r]);  // l = alpha l + rowsum(p)
    return true;
  }

  // softmax_prefix for blocks that are not full, out of line: inlined beside the full blocks' loop, its
  // code changed that loop's register allocation (float64 D64 2 % slower).
  template <bool kNats>
  __attribute__((noinline)) bool softmax_cut(const Workspace& ws, int64_t rb, int64_t nk, const int64_t* e,
                                             const V* vmax_in, A c, A* alpha, bool* live) const {
    return softmax_prefix<kNats, false>(ws, rb, nk, e, vmax_in, c, alpha, live);
  }

#ifdef TILEATTN_AMX
  // ---- The matrix-unit path (AMX; see amx_tiles.hpp for the arithmetic) ----
  //
  // The same algorithm as the vector path, with Q K^T and P V on the tile unit and each float operand as
  // three bfloat16 parts. K and V are split and laid out for the unit once per call (a panel per kv head,
  // kv heads in waves of at most kAmxPanelBytes), since splitting costs as much as a few hundred rows'
  // products (or by an item that holds all of a kv head's rows, for itself); the items then read their
  // tiles from the panels. Per block of 32 rows and tile of 256 keys:
  //   S = Q K^T on the unit (32 x 32 scores per step), stored; the element-wise options (ScoreTransform,
  //   one row at a time) and the online softmax per row on the vector unit, as in softmax_rows (keys a row
  //   may not see selected away, so their probabilities are exactly 0), each probability split into its
  //   parts; O (in memory) rescaled by alpha where the max changed, then O += P V on the unit.
  // The pairs (tile, block) run as a software pipeline (amx_process): the unit's work on the neighbouring
  // pairs is issued step by step from inside each pair's softmax.
  // A row's arithmetic depends only on its own data and the tile size: not on the thread count or on
  // which rows share an item or a block (the unit's rows are independent).
  // Inputs the parts cannot represent (NaN, infinite, >= 2^127): a query row is computed by the reference
  // path; a kv head with such a key or value takes the vector path (process) for all its rows. (A value
  // must not reach the unit even where no row sees it: the unit multiplies a block's whole 32-key steps,
  // and 0 x inf would make NaN of a row whose block happens to contain that key, which depends on the
  // item size, hence on the thread count.) So does a kv head with a value below 2^-100 in magnitude
  // (not 0), whose lower parts the unit would flush to zero: the output is a weighted mean of the values
  // and would lose their relative accuracy; tiny queries and keys only change scores by tiny amounts.
  // Large kv heads (panels over kAmxMaxPanelBytes) take the vector path too, whose memory is per tile.
  static constexpr int64_t kAmxMinHeadDim = 32;
  static constexpr int64_t kAmxMinKeys = 256;
  static constexpr int64_t kAmxMaxPanelBytes = int64_t{64} << 20;  // a kv head's K and V parts, at most
  static constexpr int64_t kAmxTileKeys = 256;                // keys per tile (the softmax's rescale points)
  static constexpr int64_t kAmxPanelBytes = int64_t{16} << 20;  // K and V parts of a wave of kv heads, at most
  static constexpr double kCapRawMax = 1 << 19;  // kXfCapRaw: softcap log2(e) at most
  static constexpr int64_t kCapRawMaxDim = 64;    // kXfCapRaw: head dims at most
  static constexpr int64_t kAmxPackAhead = 48;  // rows (keys, queries) ahead of the packing
  static constexpr int64_t kAmxItemBytes = int64_t{3} << 19;    // an item's rows and panel, for an item per kv head

  int64_t amx_k_plane() const { return panel_keys_ * dq_; }    // bfloat16 per part of a panel's K
  int64_t amx_v_plane() const { return panel_keys_ * dvp_; }   // ... of its V
  int64_t amx_head_elems() const { return 3 * (amx_k_plane() + amx_v_plane()); }
  int64_t amx_stage_floats() const { return 16 * dq_ + 2 * dvp_ + 256; }

  void run_amx() {
    namespace ad = amx_detail;
    const int64_t heads = p_.batch * p_.heads_kv;
    const int64_t head_elems = amx_head_elems();
    const int64_t tiles = ceil_div(panel_keys_, kAmxTileKeys);
    const std::size_t bytes = carve(nullptr).bytes;
    const Partials parts{};
    // The call's memory: a mask's summaries (rows' ranges, all-False tiles) at this path's tile size and
    // at the vector path's (for kv heads that fall back to it), and the waves' panels.
    const int64_t per_wave = std::clamp<int64_t>(kAmxPanelBytes / (2 * head_elems), 1, heads);
    const bool waves = q_blocks_ > 1;
    const std::size_t mask_bytes[2] = {
        p_.mask != nullptr ? detail::MaskSummary::bytes(p_, kAmxTileKeys) : 0,
        p_.mask != nullptr ? detail::MaskSummary::bytes(p_, tiles_.block_k) : 0};
    detail::Carver measure;
    measure.take<char>(mask_bytes[0]);
    measure.take<char>(mask_bytes[1]);
    measure.take<uint16_t>(waves ? detail::checked_mul(static_cast<std::size_t>(per_wave), static_cast<std::size_t>(head_elems)) : 0);
    measure.take<uint8_t>(waves ? static_cast<std::size_t>(per_wave * tiles) : static_cast<std::size_t>(heads));
    detail::Carver c(detail::call_scratch().get(measure.measured()));
    char* const amx_mask_memory = c.take<char>(mask_bytes[0]);
    char* const mask_memory = c.take<char>(mask_bytes[1]);
    uint16_t* const panels = c.take<uint16_t>(waves ? static_cast<std::size_t>(per_wave * head_elems) : 0);
    uint8_t* const bad = c.take<uint8_t>(waves ? static_cast<std::size_t>(per_wave * tiles) : static_cast<std::size_t>(heads));
    uint8_t* const head_bad = bad;  // without waves: per kv head
    if (p_.mask != nullptr) amx_mask_.build(p_, kAmxTileKeys, amx_mask_memory, threads_);
    // The vector path's summary (its own tile size) only when some kv head falls back to it: a second
    // pass over the mask otherwise.
    bool vector_mask = false;
    const auto need_vector_mask = [&] {
      if (p_.mask != nullptr && !vector_mask) mask_.build(p_, tiles_.block_k, mask_memory, threads_);
      vector_mask = true;
    };
    if (!waves) {
      // An item holds every row of its kv head: it splits the head's K and V itself, into its own scratch
      // (L2 keeps it), no pass of its own, no memory traffic for shared panels. kv heads with inputs the
      // unit cannot take are marked, and computed afterwards on the vector path.
      const std::size_t panel_bytes = static_cast<std::size_t>(head_elems) * sizeof(uint16_t);
      std::atomic<int64_t> next{0};
      detail::parallel_for(std::min<int64_t>(threads_, heads), 1, threads_, [&](int64_t, int64_t) {
        const detail::FlushDenormals ftz;
        const ad::TileScope unit;
        char* const base = static_cast<char*>(detail::thread_scratch().get(bytes + panel_bytes));
        const Workspace ws = carve(base);
        auto* const panel = reinterpret_cast<uint16_t*>(base + bytes);
        for (int64_t item = next.fetch_add(1, std::memory_order_relaxed); item < heads;
             item = next.fetch_add(1, std::memory_order_relaxed)) {
          bool unfit = false;
          for (int64_t t = 0; t < tiles; ++t) unfit = amx_pack_tile(panel, item, t * kAmxTileKeys, ws.qrow) || unfit;
          head_bad[item] = unfit;
          if (!unfit) amx_process(ws, locate(item), panel);
          detail::yield_point();
        }
      });
      if (std::none_of(head_bad, head_bad + heads, [](uint8_t x) { return x != 0; })) return;
      need_vector_mask();
      std::atomic<int64_t> next_bad{0};
      detail::parallel_for(std::min<int64_t>(threads_, heads), 1, threads_, [&](int64_t, int64_t) {
        const detail::FlushDenormals ftz;
        const Workspace ws = carve(detail::thread_scratch().get(bytes));
        Prefetch pf;
        for (int64_t item = next_bad.fetch_add(1, std::memory_order_relaxed); item < heads;
             item = next_bad.fetch_add(1, std::memory_order_relaxed)) {
          if (head_bad[item]) process(ws, locate(item), 0, parts, pf, -1);
        }
      });
      return;
    }
    for (int64_t w0 = 0; w0 < heads; w0 += per_wave) {
      const int64_t nh = std::min(per_wave, heads - w0);
      detail::parallel_for(nh * tiles, 1, threads_, [&](int64_t begin, int64_t end) {
        const detail::FlushDenormals ftz;
        for (int64_t job = begin; job < end; ++job) {
          float* const stage = static_cast<float*>(detail::thread_scratch().get(amx_stage_floats() * sizeof(float)));
          bad[job] = amx_pack_tile(panels + job / tiles * head_elems, w0 + job / tiles, job % tiles * kAmxTileKeys, stage);
        }
      });
      if (std::any_of(bad, bad + nh * tiles, [](uint8_t x) { return x != 0; })) need_vector_mask();
      const int64_t items = nh * q_blocks_;
      std::atomic<int64_t> next{0};
      detail::parallel_for(std::min<int64_t>(threads_, items), 1, threads_, [&](int64_t, int64_t) {
        const detail::FlushDenormals ftz;
        const ad::TileScope unit;
        const Workspace ws = carve(detail::thread_scratch().get(bytes));
        Prefetch pf;
        for (int64_t item = next.fetch_add(1, std::memory_order_relaxed); item < items;
             item = next.fetch_add(1, std::memory_order_relaxed)) {
          const ItemPos it = locate(item, w0, nh);
          const int64_t h = it.b * p_.heads_kv + it.g - w0;
          if (std::any_of(bad + h * tiles, bad + (h + 1) * tiles, [](uint8_t x) { return x != 0; })) {
            process(ws, it, 0, parts, pf, -1);  // a key the parts cannot represent: the vector path
          } else {
            amx_process(ws, it, panels + h * head_elems);
          }
          detail::yield_point();
        }
      });
    }
  }

  // Splits keys [j0, j0 + kAmxTileKeys) of kv head bh into its panel (keys past the sequence as zeros):
  //   K part k: [key block of 16][d chunk of 32][16 d pairs][16 keys][2] (B tiles of Q K^T, 1 KiB each);
  //   V part k: [column block of 16][key pair][16 columns][2] (B tiles of P V: 16 consecutive pairs).
  // Returns whether a key holds a value the parts cannot represent.
  // dim elements of a row of q, k or v (element offset `at`) as float into dst, zeros up to `width`; all
  // zeros when the row is not `present` (a key past its sequence).
  void amx_read_row(const void* src, int64_t at, int64_t dim_stride, int64_t dim, bool present, int64_t width,
                    float* dst) const {
    const int64_t n = present ? dim : 0;
    if (n > 0) read_row<A, T>(src, at, dim_stride, n, dst);
    std::fill(dst + n, dst + width, 0.0f);
  }

  // stage: amx_stage_floats() floats of scratch.
  bool amx_pack_tile(uint16_t* panel, int64_t bh, int64_t j0, float* stage) const {
    namespace ad = amx_detail;
    const int64_t b = bh / p_.heads_kv, g = bh % p_.heads_kv;
    const int64_t kbase = geo_.k_at(b, g), vbase = geo_.v_at(b, g), len = geo_.len_k(b);
    const int64_t ndc = dq_ / ad::kDepth, nvb = dvp_ / 16;
    const int64_t keys = std::min(kAmxTileKeys, panel_keys_ - j0);  // a multiple of 32
    float* const vrow = stage + 16 * dq_;
    uint32_t* const tmp = reinterpret_cast<uint32_t*>(vrow + 2 * dvp_);  // 16 keys x 16 pairs, one part
    __mmask16 bad = 0;
    for (int64_t x = 0; x < keys; x += 16) {
      for (int64_t w = 0; w < 16; ++w) {
        const int64_t j = j0 + x + w;
        if (j + kAmxPackAhead < len) {
          prefetch_row<2>(p_.k, kbase + (j + kAmxPackAhead) * p_.k_seq_stride, p_.k_dim_stride, p_.head_dim);
        }
        amx_read_row(p_.k, kbase + j * p_.k_seq_stride, p_.k_dim_stride, p_.head_dim, j < len, dq_, stage + w * dq_);
      }
      for (int64_t dc = 0; dc < ndc; ++dc) {
        __m512i keys[3][16];
        for (int w = 0; w < 16; ++w) {
          const __m512 lo = _mm512_loadu_ps(stage + w * dq_ + dc * ad::kDepth);
          const __m512 hi = _mm512_loadu_ps(stage + w * dq_ + dc * ad::kDepth + 16);
          bad |= ad::unsplittable(lo) | ad::unsplittable(hi);
          __m256i hl[3], hh[3];
          ad::split3(lo, hl);
          ad::split3(hi, hh);
          for (int k = 0; k < 3; ++k) keys[k][w] = _mm512_inserti64x4(_mm512_castsi256_si512(hl[k]), hh[k], 1);
        }
        for (int k = 0; k < 3; ++k) {
          for (int w = 0; w < 16; ++w) _mm512_storeu_si512(tmp + w * 16, keys[k][w]);
          uint16_t* tile = panel + k * amx_k_plane() + ((j0 + x) / 16 * ndc + dc) * ad::kTileElems;
          transpose_block(reinterpret_cast<const float*>(tmp), 16, reinterpret_cast<float*>(tile), 16);
        }
      }
    }
    uint16_t* const vpanel = panel + 3 * amx_k_plane();
    for (int64_t x = 0; x < keys; x += 2) {
      for (int64_t w = 0; w < 2; ++w) {
        const int64_t j = j0 + x + w;
        if (j + kAmxPackAhead < len) {
          prefetch_row<2>(p_.v, vbase + (j + kAmxPackAhead) * p_.v_seq_stride, p_.v_dim_stride, p_.head_dim_v);
        }
        amx_read_row(p_.v, vbase + j * p_.v_seq_stride, p_.v_dim_stride, p_.head_dim_v, j < len, dvp_, vrow + w * dvp_);
      }
      for (int64_t n = 0; n < nvb; ++n) {
        __m256i ha[3], hb[3];
        const __m512 va = _mm512_loadu_ps(vrow + n * 16), vb = _mm512_loadu_ps(vrow + dvp_ + n * 16);
        bad |= ad::unsplittable(va) | ad::unsplittable(vb) | ad::tiny(va) | ad::tiny(vb);
        ad::split3(va, ha);
        ad::split3(vb, hb);
        for (int k = 0; k < 3; ++k) {
          uint16_t* dst = vpanel + k * amx_v_plane() + n * panel_keys_ * 16 + (j0 + x) / 2 * 32;
          _mm512_storeu_si512(dst, ad::pairs(ha[k], hb[k]));
        }
      }
    }
    return bad != 0;
  }

  // The item's query rows split into parts (rows past nrows zero), row r's part k at qa + (k rows_cap + r) dq.
  void amx_pack_q(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    namespace ad = amx_detail;
    const int64_t plane = rows_cap_ * dq_;
    for (int64_t r = 0; r < rows_cap_; ++r) {
      uint16_t* dst = ws.qa + r * dq_;
      ws.qbad[r] = 0;
      if (r >= nrows) {
        for (int k = 0; k < 3; ++k) std::fill(dst + k * plane, dst + k * plane + dq_, uint16_t{0});
        continue;
      }
      if (const int64_t ra = r + kAmxPackAhead; ra < nrows) {
        prefetch_row<2>(p_.q, geo_.q_at(b, head_of(g, ra, nq), i0 + ra % nq), p_.q_dim_stride, p_.head_dim);
      }
      amx_read_row(p_.q, geo_.q_at(b, head_of(g, r, nq), i0 + r % nq), p_.q_dim_stride, p_.head_dim, true, dq_,
                   ws.qrow);
      __mmask16 bad = 0;
      for (int64_t d = 0; d < dq_; d += 16) {
        __m512 x = _mm512_loadu_ps(ws.qrow + d);
        if (negate_q_) x = _mm512_sub_ps(_mm512_setzero_ps(), x);
        bad |= ad::unsplittable(x);
        __m256i h[3];
        ad::split3(x, h);
        for (int k = 0; k < 3; ++k) ad::store256(dst + k * plane + d, h[k]);
      }
      ws.qbad[r] = bad != 0;
    }
  }

  // The tile work of one block of rows against one KV tile, as a sequence of steps that the softmax of
  // another block issues a few at a time between its vectors (amx_pace): the tile unit and the vector
  // ports then work at once. (In program order, one block's products, ~1,500 cycles and more, fill the
  // reorder buffer and the vector work behind them waits: run one after the other, scores, softmax and
  // P V cost their sum.) A step is one part product: two B tile loads and four tile products, with the
  // A loads and a unit's accumulator set-up and stores around it.
  //   scores: a unit per 32-key step kc: C = 0; per d chunk the six products; C -> S;
  //   P V: a unit per pair of 16-column blocks of O: C <- O; per 32-key step the six products; C -> O.
  struct AmxJob {
    bool pv;           // P V, else scores
    int64_t rb, j0;    // the block's first row (in the item) and tile
    int64_t kc0, kc1;  // its 32-key steps of the tile
    float* s;          // scores: where they go (row stride kAmxTileKeys)
    const uint16_t* p;  // P V: the probabilities' parts
    int64_t units, subs;  // units of the job; d chunks (scores) or 32-key steps (P V) per unit
    int64_t steps;        // steps per unit: subs times the products
  };
  struct AmxQueue {
    AmxJob job[2];
    int jobs = 0, at = 0;          // jobs queued, the one in progress
    int64_t unit = 0, sub = 0;     // position within it: unit, d chunk or key step,
    int prod = 0;                  // ... and product (no division per step)
    int64_t total = 0, issued = 0;  // steps of all jobs, steps done
    uint64_t rate = 0;              // steps per unit of the pace, times 2^32
  };

  // The part products of a job, one per step: the parts of the row operand (Q or P) and of the column
  // operand (K or V), and which of them each step loads. Inputs that are bfloat16 already have one part
  // (x1 = x2 = 0), float16 two (11 significant bits): only the products of nonzero parts whose weight is
  // at least 2^-18 of the first parts' product run: float32 Q K^T 6, float16 4, bfloat16 1; P V (P has
  // three parts) 6, 5 and 3. Smallest products first and the first parts' product last; consecutive
  // products share an operand where they can, so that most steps load two tiles, not four.
  struct AmxProducts {
    int n = 0;
    int8_t row[6] = {}, col[6] = {};
    bool load_row[6] = {}, load_col[6] = {};
  };
  static AmxProducts amx_products(int row_parts, int col_parts) {
    AmxProducts p;
    bool used[3][3] = {};
    int cur_i = -1, cur_j = -1;
    const auto wanted = [&](int i, int j) { return i < row_parts && j < col_parts && i + j <= 2 && !used[i][j]; };
    int left = 0;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) left += wanted(i, j);
    }
    for (; left > 0; --left) {
      int bi = -1, bj = -1, best = -1;  // score: sharing an operand first, then the smaller product
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
          if (!wanted(i, j) || (i == 0 && j == 0 && left > 1)) continue;
          const int score = 4 * (i == cur_i || j == cur_j) + i + j;
          if (score > best) best = score, bi = i, bj = j;
        }
      }
      used[bi][bj] = true;
      p.row[p.n] = static_cast<int8_t>(bi);
      p.col[p.n] = static_cast<int8_t>(bj);
      p.load_row[p.n] = bi != cur_i;
      p.load_col[p.n] = bj != cur_j;
      ++p.n;
      cur_i = bi, cur_j = bj;
    }
    return p;
  }

  void amx_queue(AmxQueue& q, const AmxJob& j) const {
    q.job[q.jobs++] = j;
    q.total += j.units * j.steps;
  }
  AmxJob amx_scores_job(const AmxBlock& b, float* s) const {
    const int64_t ndc = dq_ / amx_detail::kDepth;
    return {false, b.rb, b.j0, b.kc0, b.kc1, s, nullptr, b.kc1 - b.kc0, ndc, qk_prods_.n * ndc};
  }
  AmxJob amx_pv_job(const AmxBlock& b, const uint16_t* p) const {
    return {true, b.rb, b.j0, b.kc0, b.kc1, nullptr, p, ceil_div(dvp_ / 16, 2), b.kc1 - b.kc0, pv_prods_.n * (b.kc1 - b.kc0)};
  }

  // One step of the queue's current job (there must be one left).
  __attribute__((always_inline)) void amx_step(const Workspace& ws, AmxQueue& q, const uint16_t* panel) const {
    namespace ad = amx_detail;
    // GCC's _tile_loadd is an asm statement without a memory clobber: without this barrier the compiler
    // could move the stores of the probabilities, of O's rescale or of the query parts past the tile
    // loads that read them.
    asm volatile("" ::: "memory");
    const AmxJob& j = q.job[q.at];
    const int64_t j0 = j.j0;
    const AmxProducts& pr = j.pv ? pv_prods_ : qk_prods_;
    const int prod = q.prod;
    const bool first = q.sub == 0 && prod == 0, last = q.sub == j.subs - 1 && prod == pr.n - 1;
    if (!j.pv) {
      const int64_t ndc = dq_ / ad::kDepth;
      const int64_t next_block = ndc * ad::kTileElems;  // the next 16 keys
      const int64_t kc = j.kc0 + q.unit, dc = q.sub;
      if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      }
      if (pr.load_row[prod]) {
        const uint16_t* qd = ws.qa + (pr.row[prod] * rows_cap_ + j.rb) * dq_ + dc * ad::kDepth;
        _tile_loadd(4, qd, static_cast<int>(dq_ * 2));
        _tile_loadd(5, qd + 16 * dq_, static_cast<int>(dq_ * 2));
      }
      if (pr.load_col[prod]) {
        const uint16_t* kd = panel + pr.col[prod] * amx_k_plane() + (j0 + kc * ad::kKeys) / 16 * next_block +
                             dc * ad::kTileElems;
        _tile_loadd(6, kd, 64);
        _tile_loadd(7, kd + next_block, 64);
      }
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
      if (last) {
        constexpr int kLds = kAmxTileKeys * 4;
        float* const s = j.s + kc * ad::kKeys;
        _tile_stored(0, s, kLds);
        _tile_stored(1, s + 16, kLds);
        _tile_stored(2, s + 16 * kAmxTileKeys, kLds);
        _tile_stored(3, s + 16 * kAmxTileKeys + 16, kLds);
      }
    } else {
      const int64_t n = 2 * q.unit, kc = j.kc0 + q.sub;
      const bool two = n + 1 < dvp_ / 16;
      const int64_t next_cols = panel_keys_ * 16;  // the next column block of the V parts
      const int ldo = static_cast<int>(dvp_ * 4);
      float* const o = ws.o + j.rb * dvp_ + n * 16;
      if (first) {
        _tile_loadd(0, o, ldo);
        _tile_loadd(2, o + 16 * dvp_, ldo);
        if (two) {
          _tile_loadd(1, o + 16, ldo);
          _tile_loadd(3, o + 16 * dvp_ + 16, ldo);
        }
      }
      if (pr.load_row[prod]) {
        constexpr int kLdp = kAmxTileKeys * 2;
        const uint16_t* pk = j.p + pr.row[prod] * ad::kRows * kAmxTileKeys + kc * ad::kKeys;
        _tile_loadd(4, pk, kLdp);
        _tile_loadd(5, pk + 16 * kAmxTileKeys, kLdp);
      }
      const uint16_t* vk = panel + 3 * amx_k_plane() + pr.col[prod] * amx_v_plane() + n * next_cols +
                           (j0 + kc * ad::kKeys) / 2 * 32;
      if (pr.load_col[prod]) _tile_loadd(6, vk, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(2, 5, 6);
      if (two) {
        if (pr.load_col[prod]) _tile_loadd(7, vk + next_cols, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(3, 5, 7);
      }
      if (last) {
        _tile_stored(0, o, ldo);
        _tile_stored(2, o + 16 * dvp_, ldo);
        if (two) {
          _tile_stored(1, o + 16, ldo);
          _tile_stored(3, o + 16 * dvp_ + 16, ldo);
        }
      }
    }
    ++q.issued;
    if (++q.prod == pr.n) {
      q.prod = 0;
      if (++q.sub == j.subs) {
        q.sub = 0;
        if (++q.unit == j.units) q.unit = 0, ++q.at;
      }
    }
  }

  // Issues the queue's steps up to the share `done / total` of them (the share in 32-bit fixed point,
  // rounded up, set by amx_rate: no division per call).
  static void amx_rate(AmxQueue& q, int64_t total) {
    q.rate = total > 0 ? static_cast<uint64_t>((q.total << 32) + total - 1) / static_cast<uint64_t>(total) : 0;
  }
  void amx_pace(const Workspace& ws, AmxQueue& q, const uint16_t* panel, int64_t done) const {
    const int64_t target = std::min(q.total, static_cast<int64_t>((static_cast<uint64_t>(done) * q.rate) >> 32));
    while (q.issued < target) amx_step(ws, q, panel);
  }
  void amx_drain(const Workspace& ws, AmxQueue& q, const uint16_t* panel) const {
    while (q.issued < q.total) amx_step(ws, q, panel);
  }

  void amx_process(const Workspace& ws, const ItemPos& it, const uint16_t* panel) const {
    namespace ad = amx_detail;
    if (it.empty) return;
    const int64_t b = it.b, g = it.g, i0 = it.i0, nq = it.nq, nrows = it.nrows;
    const auto [klo, khi] = item_rows(ws, it, amx_mask_);
    amx_pack_q(ws, b, g, i0, nq, nrows);
    std::fill(ws.o, ws.o + rows_cap_ * dvp_, A(0));
    std::fill(ws.m, ws.m + rows_cap_, -std::numeric_limits<A>::infinity());
    std::fill(ws.l, ws.l + rows_cap_, A(0));
    float* const sbuf[2] = {ws.sa, ws.sa + ad::kRows * kAmxTileKeys};
    uint16_t* const pbuf[2] = {ws.pa, ws.pa + 3 * ad::kRows * kAmxTileKeys};
    // The (tile, block of rows) pairs that see some key, tile by tile, with their 32-key steps. They run in
    // a pipeline: the softmax of pair x alongside the scores of pair x + 1 and the P V of pair x - 1
    // (scores and probabilities in two buffers each), across tiles too.
    int64_t nb = 0;
    for (int64_t j0 = klo == std::numeric_limits<int64_t>::max() ? khi : klo / kAmxTileKeys * kAmxTileKeys; j0 < khi;
         j0 += kAmxTileKeys) {
      for (int64_t rb = 0; rb < nrows; rb += ad::kRows) {
        int64_t amin = kAmxTileKeys, emax = 0;
        for (int64_t row = rb; row < std::min(nrows, rb + ad::kRows); ++row) {
          const auto [a, e] = amx_row_keys(ws, it, row, j0);
          if (a < e) amin = std::min(amin, a), emax = std::max(emax, e);
        }
        if (emax > 0) ws.blocks[nb++] = {rb, j0, amin / ad::kKeys, ceil_div(emax, ad::kKeys)};
      }
    }
    if (nb > 0) {
      AmxQueue q;
      amx_queue(q, amx_scores_job(ws.blocks[0], sbuf[0]));
      amx_drain(ws, q, panel);
      for (int64_t x = 0; x < nb; ++x) {
        const AmxBlock& blk = ws.blocks[x];
        q = AmxQueue{};
        if (x > 0) {
          amx_queue(q, amx_pv_job(ws.blocks[x - 1], pbuf[(x - 1) % 2]));
          // The same rows (a single block per tile): their P V before this softmax rescales their O.
          if (ws.blocks[x - 1].rb == blk.rb) amx_drain(ws, q, panel);
        }
        if (x + 1 < nb) amx_queue(q, amx_scores_job(ws.blocks[x + 1], sbuf[(x + 1) % 2]));
        const auto softmax = [&](auto flags) {
          amx_softmax<decltype(flags)::value>(ws, it, blk, x + 1 < nb ? &ws.blocks[x + 1] : nullptr, sbuf[x % 2],
                                              pbuf[x % 2], q, panel);
        };
        if (amx_mask_lanes_) {
          softmax(std::integral_constant<int, kXfMaskLanes>{});
        } else if (amx_cap_raw_) {
          softmax(std::integral_constant<int, kXfCapRaw>{});
        } else if (transform_) {
          detail::with_value<kXfAll + 1>(xf_flags_, softmax);
        } else {
          softmax(std::integral_constant<int, 0>{});
        }
        amx_drain(ws, q, panel);
      }
      q = AmxQueue{};
      amx_queue(q, amx_pv_job(ws.blocks[nb - 1], pbuf[(nb - 1) % 2]));
      amx_drain(ws, q, panel);
    }
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t h = head_of(g, r, nq), i = i0 + r % nq;
      if (ws.qbad[r]) {
        reference_attention_row(p_, b, h, i);
      } else {
        write_result(b, h, i, ws.o + r * dvp_, ws.m[r], ws.l[r], amx_nats_, amx_mask_lanes_ || amx_cap_raw_);
      }
    }
  }

  // The online softmax of a block's rows over the tile (as softmax_rows: new_max, alpha = 2^(m - m'),
  // p = 2^(s c - m'), or with the options F the transformed scores t and p = 2^((t - m') log2 e), the
  // keys a row may not see selected away), from the scores at s; each row's
  // probabilities of the block's 32-key steps split into parts at p (exactly 0 where not visible), and
  // each row's O rescaled by alpha where its max changed. Issues the queue's tile steps as it goes.
  // The keys [a, e) of the tile at j0 that row `row` of the item sees (by its range and the mask's summary).
  std::pair<int64_t, int64_t> amx_row_keys(const Workspace& ws, const ItemPos& it, int64_t row, int64_t j0) const {
    if (row >= it.nrows) return {0, 0};
    if (amx_mask_.active() &&
        !amx_mask_.sees_tile(it.b, head_of(it.g, row, it.nq), it.i0 + row % it.nq, j0 / kAmxTileKeys)) {
      return {0, 0};
    }
    return {std::clamp<int64_t>(ws.lo[row] - j0, 0, kAmxTileKeys), std::clamp<int64_t>(ws.hi[row] - j0, 0, kAmxTileKeys)};
  }

  // The element-wise options F of one row against the tile at j0 (as block_transform, for one row): its
  // bias is read in place or converted for keys [0, e).
  template <int F>
  void amx_row_transform(const Workspace& ws, int64_t row, int64_t j0, int64_t e, ScoreTransform<A, 1>& x) const {
    x.mask_contiguous = p_.mask_key_stride == 1;
    x.prefetch_bias = false;
    x.mask_stride = p_.mask_key_stride;
    x.mult = V::set1(p_.softcap > 0 ? static_cast<A>(std::fabs(p_.scale) / p_.softcap) : scale_abs_);
    if constexpr ((F & kXfSoftcap) != 0) x.cap = V::set1(static_cast<A>(p_.softcap));
    x.gather = ws.bias, x.keep = ws.keep;
    const RowOptions& o = ws.opt[row];
    if constexpr ((F & kXfBias) != 0) {
      if (bias_native_) {
        x.bias[0] = static_cast<const A*>(p_.bias) + o.bias + j0;
      } else {
        convert_bias(o.bias + j0 * p_.bias_key_stride, e, ws.abias);
        x.bias[0] = ws.abias;
      }
      x.bias_next[0] = x.bias[0];
    }
    if constexpr ((F & kXfMask) != 0) x.mask_row[0] = o.mask != nullptr ? o.mask + j0 * p_.mask_key_stride : nullptr;
    if constexpr ((F & kXfAlibi) != 0) {
      x.neg_slope[0] = V::set1(o.neg_slope);
      x.diag[0] = sub(V::set1(static_cast<A>(o.diag - j0)), lane_index(A(0)));
    }
  }

  // A row's mask bytes and bias values of the tile at j (contiguous keys, and only where they differ from
  // row to row: else one row serves all, from cache), into L2.
  __attribute__((always_inline)) void amx_prefetch_options(const RowOptions& opt, int64_t j) const {
    if (opt.mask != nullptr && p_.mask_key_stride == 1 && p_.mask_seq_stride != 0) {
      prefetch_lines<2>(opt.mask + j, std::min(kAmxTileKeys, geo_.max_keys() - j));
    }
    if (p_.bias != nullptr && p_.bias_key_stride == 1 && p_.bias_seq_stride != 0) {
      const int64_t size = detail::dtype_size(p_.bias_dtype);
      prefetch_lines<2>(static_cast<const char*>(p_.bias) + (opt.bias + j) * size,
                        std::min(kAmxTileKeys, geo_.max_keys() - j) * size);
    }
  }

  // next: the pair after this one (its rows' mask bytes and biases are prefetched), or null.
  template <int F>
  void amx_softmax(const Workspace& ws, const ItemPos& it, const AmxBlock& blk, const AmxBlock* next, float* sbase,
                   uint16_t* pbase, AmxQueue& q, const uint16_t* panel) const {
    namespace ad = amx_detail;
    // With options, the scores become t (natural-log units, ScoreTransform) in place, and the exponent is
    // (t - m') log2(e); raw scores take one fma, s c - m' (base-2 units), as in softmax_rows.
    constexpr bool kNats = (F & kXfAll) != 0;  // else raw scores (at most a mask's lanes)
    constexpr int FX = F & kXfAll;  // the options the vector unit applies to the scores
    constexpr bool kXform = FX != 0;
    constexpr bool kMaskLanes = (F & kXfMaskLanes) != 0;
    constexpr bool kCapRaw = (F & kXfCapRaw) != 0;  // p = 2^(softcap log2(e) tanh(s |scale| / softcap) - m')
    const int64_t j0 = blk.j0;
    const A neg_inf = -std::numeric_limits<A>::infinity();
    const int64_t pplane = ad::kRows * kAmxTileKeys;
    const int64_t v0 = blk.kc0 * ad::kKeys / W, v1 = blk.kc1 * ad::kKeys / W;
    // The pace's unit: a vector of the block's rows, visited once by the exponentials and, with options,
    // once before by the transform.
    const int64_t per_row = (kXform ? 2 : 1) * (v1 - v0);
    amx_rate(q, ad::kRows * per_row);
    const V cv = V::set1(kNats ? A(1) : c_);
    const V cap_mult = V::set1(static_cast<A>(std::fabs(p_.softcap > 0 ? p_.scale / p_.softcap : 0.0)));
    const V cap_c = V::set1(static_cast<A>(p_.softcap * kLog2e));
    // Lanes of vector v that are keys [a, e).
    const auto lanes = [](int64_t v, int64_t a, int64_t e) {
      const int64_t lo = std::clamp<int64_t>(a - v * W, 0, W), hi = std::clamp<int64_t>(e - v * W, 0, W);
      return static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    };
    for (int64_t r = 0; r < ad::kRows; ++r) {
      const int64_t row = blk.rb + r;
      A* s = sbase + r * kAmxTileKeys;
      uint16_t* pr = pbase + r * kAmxTileKeys;
      const int64_t done = r * per_row;
      const auto [a, e] = amx_row_keys(ws, it, row, j0);
      if constexpr ((F & (kXfBias | kXfMask | kXfMaskLanes)) != 0) {
        // The next pair's row r: its mask bytes and bias values of that tile, into L2 (rows of a bias or
        // mask are far apart: the hardware prefetchers do not follow a block's worth of short runs).
        if (next != nullptr && next->rb + r < it.nrows) amx_prefetch_options(ws.opt[next->rb + r], next->j0);
      }
      bool live = false;
      A alpha = 1;
      V neg_m = V::zero();
      // Every key of the block's steps visible (most rows off the diagonals): no lane selection.
      const bool whole = !kMaskLanes && a <= v0 * W && e >= v1 * W;
      __mmask16 km[kAmxTileKeys / W];  // not whole: the lanes of each vector the row sees (and its mask keeps)
      if (a < e) {
        const uint8_t* const mrow = kMaskLanes ? ws.opt[row].mask : nullptr;  // the row's mask bytes (null: all)
        __mmask16 sel = 0;  // the lanes selected in any vector
        __m512 vmax = _mm512_set1_ps(neg_inf);
        if constexpr (kXform) {  // the options, in place, keys outside [a, e) of the row's vectors at -inf
          ScoreTransform<A, 1> xf;
          amx_row_transform<F>(ws, row, j0, e, xf);
          const V lanes_w = lane_index(A(0)), step = V::set1(static_cast<A>(W));
          V jf = V::set1(static_cast<A>(a / W * W));  // j in every lane
          for (int64_t v = a / W; v < ceil_div(e, W); ++v, jf = add(jf, step)) {
            const int64_t j = v * W;
            V t;
            if (j >= a && j + W <= e) {
              t = xf.template apply_at<FX, true>(0, j, jf, V::load(s + j), a, e);
            } else {
              t = xf.template apply_at<FX, false>(0, j, jf, V::load(s + j), a, e);
              const V jv = add(jf, lanes_w);
              t = select_lt(jv, V::set1(static_cast<A>(a)), V::set1(neg_inf), t);
              t = select_lt(jv, V::set1(static_cast<A>(e)), t, V::set1(neg_inf));
            }
            t.store(s + j);
            vmax = _mm512_max_ps(vmax, t.v);
            if ((v & 3) == 3) amx_pace(ws, q, panel, done + std::min(v + 1 - a / W, v1 - v0));
          }
        } else if (!whole) {  // (with the mask's lanes, never whole) each vector's lanes, kept for the exponentials
          const int64_t va = a / W, ve = ceil_div(e, W);
          const int64_t in0 = ceil_div(a, W), in1 = e / W;  // the vectors wholly inside [a, e)
          for (int64_t v = v0; v < va; ++v) km[v] = 0;
          for (int64_t v = ve; v < v1; ++v) km[v] = 0;
          for (int64_t v = va; v < ve; ++v) {
            const int64_t j = v * W;
            __mmask16 k;
            if (v >= in0 && v < in1) {
              k = 0xFFFF;
              if (mrow != nullptr) {
                const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(mrow + j0 + j));
                k = _mm_test_epi8_mask(bytes, bytes);
              }
            } else {  // an edge: only the bytes of keys in [a, e) may be read
              k = lanes(v, a, e);
              for (int w = 0; w < W && mrow != nullptr; ++w) {
                if (((k >> w) & 1) != 0 && mrow[j0 + j + w] == 0) k = static_cast<__mmask16>(k & ~(1u << w));
              }
            }
            km[v] = k;
            sel = static_cast<__mmask16>(sel | k);
            vmax = _mm512_mask_max_ps(vmax, k, vmax, _mm512_loadu_ps(s + j));
          }
        } else {
          __m512 vmax2 = vmax;
          for (int64_t v = v0; v < v1; v += 2) {
            vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + v * W));
            vmax2 = _mm512_max_ps(vmax2, _mm512_loadu_ps(s + v * W + W));
          }
          vmax = _mm512_max_ps(vmax, vmax2);
        }
        const A m_old = ws.m[row];
        A m_new;
        // c >= 0, so max(s) * c = max(s * c): rounding is monotonic.
        // (With the mask's lanes, where every selected score is -inf or none is selected, a NaN counts
        // only where a lane is selected: new_max would read every score.)
        // With a softcap alone, the max of the raw scores through the same tanh and products as the
        // exponents (tanh_rational need not be monotonic to the ulp: a score whose t rounds above the
        // row's max gets p just above 1, harmless).
        const A tile_max = _mm512_reduce_max_ps(vmax);
        const A row_max = kCapRaw ? _mm512_cvtss_f32(mul(tanh_rational(mul(V::set1(tile_max), cap_mult)), cap_c).v)
                                  : tile_max * (kNats ? A(1) : c_);
        bool found = new_max(m_old, row_max, s, kMaskLanes ? 0 : a, kMaskLanes ? 0 : e, &m_new);
        if constexpr (kMaskLanes) {
          if (!found && m_old == neg_inf) {
            for (int64_t j = a; j < e; ++j) {
              if ((mrow == nullptr || mrow[j0 + j] != 0) && std::isnan(s[j])) {
                found = true, m_new = std::numeric_limits<A>::quiet_NaN();
                break;
              }
            }
            // Keys selected, and the max of their raw scores times c is -inf (q . k overflowed: a very
            // negative finite score) or NaN (scale 0 times an infinite score): the reference path computes
            // such a row; +inf marks it (write_result) and keeps its probabilities 0 meanwhile. A row the
            // mask hides keeps m = -inf, and is written as empty.
            if (!found && sel != 0) ws.m[row] = std::numeric_limits<A>::infinity();
          }
        }
        if (found) {
          live = true;
          const A d = kNats ? (m_old - m_new) * static_cast<A>(kLog2e) : m_old - m_new;
          alpha = m_old == m_new ? A(1) : m_old == neg_inf ? A(0) : exp2_scalar(d);
          ws.m[row] = m_new;
          neg_m = V::set1(-m_new);
        }
      }
      if (!live) {
        for (int k = 0; k < 3; ++k) std::fill(pr + k * pplane + v0 * W, pr + k * pplane + v1 * W, uint16_t{0});
        amx_pace(ws, q, panel, done + per_row);
        continue;
      }
      // kGroup vectors at a time, their exponentials and splits interleaved: one vector's chain of
      // dependent instructions alone would leave most of the ports idle. (v1 - v0 is even: whole 32-key steps.)
      V vsum = V::zero();
      const auto group = [&](int64_t v, auto n_c, auto whole_c) {
        constexpr int N = decltype(n_c)::value;
        V x[N];
        TILEATTN_UNROLL
        for (int i = 0; i < N; ++i) {
          if constexpr (kCapRaw) {
            x[i] = fmadd(tanh_rational(mul(V::load(s + (v + i) * W), cap_mult)), cap_c, neg_m);
          } else {
            x[i] = exponent<kNats>(V::load(s + (v + i) * W), cv, neg_m);
          }
          if constexpr (!decltype(whole_c)::value) {  // 0 off range (and masked)
            x[i].v = _mm512_mask_blend_ps(kXform ? lanes(v + i, a, e) : km[v + i], _mm512_set1_ps(neg_inf), x[i].v);
          }
        }
        exp2_n<N>(x);
        __m256i h[N][3];
        TILEATTN_UNROLL
        for (int i = 0; i < N; ++i) vsum = add(vsum, x[i]);
        ad::split3_n<N>(x, h);
        TILEATTN_UNROLL
        for (int i = 0; i < N; ++i) {
          TILEATTN_UNROLL
          for (int k = 0; k < 3; ++k) ad::store256(pr + k * pplane + (v + i) * W, h[i][k]);
        }
        amx_pace(ws, q, panel, done + (kXform ? v1 - v0 : 0) + (v + N - v0));
      };
      const auto run_groups = [&](auto whole_c) {
        int64_t v = v0;
        for (; v + 4 <= v1; v += 4) group(v, std::integral_constant<int, 4>{}, whole_c);
        for (; v < v1; v += 2) group(v, std::integral_constant<int, 2>{}, whole_c);
      };
      whole ? run_groups(std::true_type{}) : run_groups(std::false_type{});
      ws.l[row] = ws.l[row] * alpha + reduce_add(vsum);  // l = alpha l + rowsum(p)
      if (alpha != A(1)) {
        A* o = ws.o + row * dvp_;
        const V av = V::set1(alpha);
        for (int64_t x = 0; x < dvp_; x += W) mul(V::load(o + x), av).store(o + x);
      }
    }
  }
#endif

  void finish(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    for (int64_t r = 0; r < nrows; ++r) {
      write_result(b, head_of(g, r, nq), i0 + r % nq, ws.o + r * dvp_, ws.m[r], ws.l[r]);
    }
  }

  // out[b, h, i] = o / l and lse[b, h, i] = (m + log2 l) * ln 2 (m + ln l when m is in nats); a row that
  // saw no key (l == 0) gets +0 and -inf. Overwrites o when l == 0.
  // A row whose fast arithmetic may have broken down is computed again by the reference path (in double,
  // long double for float64), which gives the exact result:
  // - raw scores so large that the rounding of the row max m' = max(s) c no longer cancels: 2^(s c - m')
  //   is off by 2^(rounding of m'), harmless (common to the row) while |m'| <= kExactMax (at most 2^-4),
  //   but beyond the exponent range for |m'| above about 2^31 (2^60 in float64); or finite raw scores
  //   whose product with c overflows (m' infinite; -inf also for a row that sees no key, which the
  //   reference path finishes at once). Only raw scores: the options' transformed scores are in nats,
  //   their max m' is one of them and s - m' is exact;
  // - weighted sums of values near the dtype's largest value that overflow (o or l not finite, or l 0).
  // Rows with an infinite or NaN value among the scores or values they see take that path too, and get
  // the same non-finite result. Every other row costs one test of its Dv sums.
  // nats: m is in natural-log units (the vector path's nats_; the matrix unit's amx_nats_). empty: m = -inf
  // means the row saw no key (the matrix unit's mask lanes, which mark an overflow with +inf).
  void write_result(int64_t b, int64_t h, int64_t i, A* o, A m, A l) const {
    write_result(b, h, i, o, m, l, nats_, false);
  }
  void write_result(int64_t b, int64_t h, int64_t i, A* o, A m, A l, bool nats, bool empty) const {
    constexpr double kLn2 = 0.6931471805599453;
    constexpr A kExactMax = std::is_same_v<A, float> ? A(1 << 20) : A(int64_t{1} << 49);
    const bool huge = !nats && !(std::fabs(m) <= kExactMax) &&  // also +-inf
                      !(empty && m == -std::numeric_limits<A>::infinity());
    const bool sums = m > -std::numeric_limits<A>::infinity() &&
                      !(l > A(0) && l <= std::numeric_limits<A>::max() && all_finite(o, dvp_, 1));
    if (!std::isnan(m) && (huge || sums)) {
      reference_attention_row(p_, b, h, i);
      return;
    }
    if (l == A(0)) std::fill(o, o + dvp_, A(0));  // 0 / 1 = +0
    write_row<A, T>(p_.out, geo_.out_at(b, h, i), p_.out_dim_stride, p_.head_dim_v, o, l == A(0) ? A(1) : l);
    if (p_.lse != nullptr) {
      using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const double lse = l == A(0) ? -std::numeric_limits<double>::infinity()
                                   : static_cast<double>(m) * (nats ? 1.0 : kLn2) + std::log(static_cast<double>(l));
      detail::store_elem<L>(p_.lse, geo_.lse_at(b, h, i), detail::saturate<L>(lse));
    }
  }

  const Params& p_;
  detail::Geometry geo_;
  detail::MaskSummary mask_;
#ifdef TILEATTN_AMX
  detail::MaskSummary amx_mask_;  // the matrix-unit path's, at its tile size
#endif
  int threads_;
  int64_t group_;
  int64_t dvp_;
  detail::TileShape tiles_;
  int64_t q_blocks_;
  int64_t rows_cap_;
  A c_;              // |scale| * log2(e): raw scores times c are in base-2 units
  A scale_abs_;      // |scale|
  bool negate_q_;    // a negative scale's sign is carried by q, so that c >= 0
  bool transform_;   // element-wise options (mask, bias, ALiBi, softcap) transform the scores
  bool may_mask_values_;  // mask or bias: a key inside a row's range may be masked
  bool decode_;      // few rows per kv head: q . k as dot products on K rows, keys split in chunks
  int64_t dqp_;      // stride of the packed q rows (padded to whole vectors when decoding)
  // One query row per query head (decoding one token) and at most a register block's heads per kv head, no
  // element-wise option, K and V rows of whole vectors read in place (K's also padding-free): decode_rows.
  bool lean_rows_ = decode_ && geo_.max_rows() == 1 && group_ <= MR && !transform_ && p_.mask == nullptr &&
                    v_rows_usable() && std::is_same_v<T, A> && p_.k_dim_stride == 1 && dqp_ == p_.head_dim;
  detail::DecodeSplit split_;
  int sub_blocks_ = 1;  // register blocks per group (scores of all, then P V of all)
  // q_in_place: also aligned to A (the block reads the rows as scalars; data at odd addresses is packed).
  // Rows strided beyond their length (layout "bshd", a fused QKV projection's slices) only where each is read
  // for few KV tiles: rows a multiple of 256 bytes apart fall in few sets of L1, where the K^T tile that
  // fills most of L1 evicts them between reads (measured, one thread, bshd H8 D64: S2048 +3-5 % and S1024
  // +2.7 % packed; S256 -1-2 %, S128 -6 %, S32 -5 %; 4 tiles the same either way).
  bool q_rows_usable_ = std::is_same_v<T, A> && p_.q_dim_stride == 1 && !negate_q_ && !decode_ &&
                        reinterpret_cast<uintptr_t>(p_.q) % alignof(A) == 0 &&
                        (p_.q_seq_stride == p_.head_dim || geo_.max_keys() <= detail::kQInPlaceTiles * tiles_.block_k);
  bool v_in_place_ = false;  // pack_v: V's rows read in place even when not aligned (items of few rows)
  // bfloat16 inputs on a CPU with AVX512_BF16: Q K^T on the inputs' pairs (qk_block_bf16), K^T packed as
  // pairs and the query rows too (pack_k, pack_q). Not when decoding (dot products on K as stored).
#ifdef TILEATTN_BF16_DOT
  bool bf16_dot_ = std::is_same_v<T, BFloat16> && !decode_ && detail::bf16_dot_enabled();
#else
  static constexpr bool bf16_dot_ = false;
#endif
  int64_t pairs_ = (p_.head_dim + 1) / 2;  // bfloat16 pairs per packed row of Q or K (bf16_dot_)
  int chunk_tiles_ = 1;  // KV tiles packed together and walked by each group of register blocks in turn
  bool bias_native_ = bias_native();
  int xf_flags_ = (p_.bias != nullptr ? kXfBias : 0) | (p_.alibi_slopes != nullptr ? kXfAlibi : 0) |
                  (p_.mask != nullptr ? kXfMask : 0) | (p_.softcap > 0 ? kXfSoftcap : 0);
  // What the softmax multiplies the stored scores by: 1 after the transform, which leaves them in base-2
  // units, c_ for raw scores. (On the vector path a mask is applied by the transform, as -inf: a masked
  // -inf times c_ = 0, scale=0, would be NaN. The matrix unit's mask lanes keep the scores raw and select
  // lanes after the exponent instead.)
  // After the element-wise options the scores and the row maxima are in natural-log units
  // (ScoreTransform): the softmax then takes (s - m') log2(e), two operations where base-2 scores take one
  // fma, s c - m'. The rounding of m' times log2(e) would not cancel at such magnitudes (|m'| up to the
  // dtype's largest value, its rounding error far beyond the exponent range); a difference of scores near
  // the max is exact.
  bool nats_ = transform_;
  A xf_c_ = transform_ ? A(1) : c_;
#ifdef TILEATTN_AMX
  bool amx_ = false;        // the matrix-unit path
  int64_t dq_ = 0;          // head dim rounded up to the unit's depth (32)
  int64_t panel_keys_ = 0;  // keys of a kv head's panel: the longest sequence, in whole tiles
  // Nonzero bfloat16 parts of the inputs (float32 3, float16 2, bfloat16 1), and the products of each job.
  static constexpr int kInputParts = std::is_same_v<T, BFloat16> ? 1 : std::is_same_v<T, Half> ? 2 : 3;
  AmxProducts qk_prods_ = amx_products(kInputParts, kInputParts);
  AmxProducts pv_prods_ = amx_products(3, kInputParts);
  bool amx_mask_lanes_ = false;  // the mask selects lanes (see the constructor)
  bool amx_nats_ = false;        // this path's scores and maxima in natural-log units
  bool amx_cap_raw_ = false;     // a softcap alone, applied to the raw scores in the exponentials (kXfCapRaw)
#endif
};

// The entry point of this instruction set's kernels.
void tiled_attention(const Params& p, int threads) {
  switch (p.dtype) {
    case DType::kFloat32:
      TiledForward<float, float>(p, threads).run();
      break;
    case DType::kFloat64:
      TiledForward<double, double>(p, threads).run();
      break;
    case DType::kFloat16:
      TiledForward<Half, float>(p, threads).run();
      break;
    case DType::kBFloat16:
      TiledForward<BFloat16, float>(p, threads).run();
      break;
  }
}

TileInfo tiled_tile_info(const Params& p, int threads) {  // NOLINT
  switch (p.dtype) {
    case DType::kFloat64:
      return TiledForward<double, double>(p, threads).tile_info();
    default:
      return TiledForward<float, float>(p, threads).tile_info();
  }
}

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

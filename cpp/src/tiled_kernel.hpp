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
//        for each register block of MR rows:
//          S = Q K^T                                   (MR x NQ*W scores in registers, then a small buffer)
//          per row: mask keys the row may not see by selection (never by adding -inf, so a NaN stored
//          in an invisible key cannot reach the row); m' = max(m, rowmax S c); alpha = 2^(m - m');
//          P = 2^(S c - m') with c = scale * log2(e) (one fma); l = alpha * l + rowsum P
//          O = alpha * O + P V                         (MR x NP*W outputs in registers per Dv chunk; the
//                                                       tile's P V is summed from zero, then merged)
//   3. out = O / l and lse = (m + log2 l) * ln 2 per row; a row that saw no key (l == 0) gets +0 and -inf.
//
// Memory traffic per item: q rows and out rows once; every K/V element the item may see once from the
// caller's arrays (packing) and then from L2 for each register block of rows. Extra memory per thread is
// the item's rows (kItemBytes) plus one KV tile (kKvTileBytes): independent of seq_q x seq_k.
//
// Determinism: every output row is computed by one thread with a fixed sequence of operations that
// depends only on the row, the KV tile size and the instruction set: not on the thread count, the item
// size, which rows share a register block, or the input strides.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "half.hpp"
#include "scratch.hpp"
#include "static_switch.hpp"
#include "thread_pool.hpp"
#include "tile_config.hpp"
#include "tileattn/tileattn.hpp"

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including tiled_kernel.hpp"
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
template <class A, int R, int N>
inline void qk_block(const A* q, int64_t ldq, const A* kt, int64_t head_dim, A* s, int64_t lds, Vec<A>* vmax) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  for (int64_t d0 = 0; d0 < head_dim; d0 += detail::kDotBlock) {
    const int64_t d1 = std::min(head_dim, d0 + detail::kDotBlock);
    V acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) acc[r][n] = V::zero();
    for (int64_t d = d0; d < d1; ++d) {
      V kv[N];
      for (int n = 0; n < N; ++n) kv[n] = V::load(kt + (d * N + n) * W);
      for (int r = 0; r < R; ++r) {
        const V qv = V::set1(q[r * ldq + d]);
        for (int n = 0; n < N; ++n) acc[r][n] = fmadd(qv, kv[n], acc[r][n]);  // s += q * k
      }
    }
    const bool track_max = vmax != nullptr && d1 == head_dim;
    for (int r = 0; r < R; ++r) {
      for (int n = 0; n < N; ++n) {
        A* dst = s + r * lds + n * W;
        const V x = d0 == 0 ? acc[r][n] : add(V::load(dst), acc[r][n]);
        x.store(dst);
        if (track_max) vmax[r] = max(vmax[r], x);
      }
    }
  }
}

// P V for R rows and N output vectors starting at column `col`: acc[r] = sum_{j < nkeys} p[r][j] * vt[j],
// summed from zero over these keys only, then merged into the running output: o[r] = alpha[r] * o[r] +
// acc[r] (the online-softmax rescale comes free; alpha is 1 for all but a tile's first chain).
template <class A, int R, int N>
inline void pv_block(const A* const* p, A* const* o, const A* alpha, const A* vt, int64_t ldv, int64_t nkeys,
                     int64_t col) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  V acc[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) acc[r][n] = V::zero();
  for (int64_t j = 0; j < nkeys; ++j) {
    V vv[N];
    for (int n = 0; n < N; ++n) vv[n] = V::load(vt + j * ldv + col + n * W);
    for (int r = 0; r < R; ++r) {
      const V pv = V::set1(p[r][j]);
      for (int n = 0; n < N; ++n) acc[r][n] = fmadd(pv, vv[n], acc[r][n]);  // acc += p * v
    }
  }
  for (int r = 0; r < R; ++r) {
    const V av = V::set1(alpha[r]);
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

// caller_array[start + i * stride] = src[i] / l converted to T, for i < n.
template <class A, class T>
inline void write_row(void* base, int64_t start, int64_t stride, int64_t n, const A* src, A l) {
  constexpr int W = Vec<A>::kWidth;
  int64_t i = 0;
  if (stride == 1) {
    T* dst = reinterpret_cast<T*>(static_cast<char*>(base) + start * int64_t{sizeof(T)});
    const Vec<A> lv = Vec<A>::set1(l);
    for (; i + W <= n; i += W) {
      const Vec<A> x = div(Vec<A>::load(src + i), lv);
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

template <class T, class A>
class TiledForward {
 public:
  using V = Vec<A>;
  static constexpr int W = V::kWidth;
  static constexpr int MR = Blocking<A>::kRows;    // query rows per register block
  static constexpr int NQ = Blocking<A>::kQkVecs;  // key vectors per register block of Q K^T
  static constexpr int NP = Blocking<A>::kPvVecs;  // output vectors per register block of P V

  TiledForward(const Params& p, int threads)
      : p_(p),
        threads_(threads),
        group_(p.heads_q / p.heads_kv),
        dvp_(round_up(p.head_dim_v, W)),
        tiles_(detail::choose_tiles(p.batch, p.heads_kv, group_, p.seq_q, p.head_dim, dvp_,
                                    static_cast<int64_t>(sizeof(A)), int64_t{W} * NQ, threads)),
        q_blocks_(ceil_div(p.seq_q, tiles_.block_q)),
        rows_cap_(round_up(group_ * tiles_.block_q, MR)),
        c_(static_cast<A>(std::fabs(p.scale) * 1.4426950408889634)),  // |scale| * log2(e)
        negate_q_(p.scale < 0),
        decode_(group_ * p.seq_q <= detail::kDecodeRows),
        dqp_(decode_ ? round_up(p.head_dim, W) : p.head_dim),
        split_{1, std::max<int64_t>(p.seq_k, 1)} {
    if (decode_) {  // one item per (batch, kv head, chunk of keys) holds all the kv head's query rows
      tiles_.block_q = std::max<int64_t>(p.seq_q, 1);
      tiles_.block_k = detail::kDecodeBlockK;  // no K^T to keep in L1: longer tiles, fewer rescales
      q_blocks_ = 1;
      rows_cap_ = round_up(group_ * tiles_.block_q, MR);
      split_ = detail::choose_decode_split(p.batch, p.heads_kv, p.seq_k, tiles_.block_k);
    }
  }

  TileInfo tile_info() const { return {tiles_.block_q, tiles_.block_k}; }

  void run() const {
    const int64_t heads = p_.batch * p_.heads_kv;
    const int64_t items = heads * q_blocks_ * split_.chunks;
    const std::size_t bytes = carve(nullptr).bytes;
    Partials parts{};
    if (split_.chunks > 1) {  // per (kv head, chunk): unnormalised O, m and l of every row, merged below
      const auto rows = static_cast<std::size_t>(items * rows_cap_);
      detail::Carver measure;
      measure.take<A>(detail::checked_mul(rows, static_cast<std::size_t>(dvp_)));
      measure.take<A>(rows);
      measure.take<A>(rows);
      detail::Carver c(detail::call_scratch().get(measure.measured()));
      parts.o = c.take<A>(detail::checked_mul(rows, static_cast<std::size_t>(dvp_)));
      parts.m = c.take<A>(rows);
      parts.l = c.take<A>(rows);
    }
    detail::parallel_for(items, 1, threads_, [this, bytes, &parts](int64_t begin, int64_t end) {
      const Workspace ws = carve(detail::thread_scratch().get(bytes));
      for (int64_t item = begin; item < end; ++item) process(ws, item, parts);
    });
    if (split_.chunks > 1) {
      detail::parallel_for(heads, 1, threads_, [this, &parts](int64_t begin, int64_t end) {
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

  struct Workspace {
    A* q;  // rows_cap x head_dim: packed, pre-scaled query rows
    A* o;  // rows_cap x dvp: output accumulators
    A* m;  // rows_cap: running max (base-2 units)
    A* l;  // rows_cap: running sum
    A* kt;  // block_k x head_dim: K^T of one tile, as [key vector][d][W]
    A* vt;  // block_k x dvp: V of one tile
    A* s;   // MR x block_k: scores, then probabilities
    A* ks;  // W x head_dim: K rows converted to A, before their transpose into kt
    std::size_t bytes;
  };

  Workspace carve(void* base) const {
    detail::Carver c(base);
    Workspace ws{};
    const auto rows = static_cast<std::size_t>(rows_cap_);
    const auto keys = static_cast<std::size_t>(tiles_.block_k);
    const auto d = static_cast<std::size_t>(p_.head_dim);
    const auto dv = static_cast<std::size_t>(dvp_);
    ws.q = c.take<A>(detail::checked_mul(rows, static_cast<std::size_t>(dqp_)));
    ws.o = c.take<A>(detail::checked_mul(rows, dv));
    ws.m = c.take<A>(rows);
    ws.l = c.take<A>(rows);
    ws.kt = c.take<A>(detail::checked_mul(keys, d));
    ws.vt = c.take<A>(detail::checked_mul(keys, dv));
    ws.s = c.take<A>(detail::checked_mul(MR, keys));
    ws.ks = c.take<A>(detail::checked_mul(W, std::max(d, static_cast<std::size_t>(dqp_))));
    ws.bytes = c.measured();
    return ws;
  }

  // Number of keys query position i may see (a prefix [0, n) of the keys).
  int64_t visible_keys(int64_t i) const {
    if (!p_.causal) return p_.seq_k;
    return std::clamp<int64_t>(i + (p_.seq_k - p_.seq_q) + 1, 0, p_.seq_k);
  }

  void process(const Workspace& ws, int64_t item, const Partials& parts) const {
    const int64_t slot = item;  // where this item's partial results go when the keys are split
    const int64_t chunk = item % split_.chunks;
    item /= split_.chunks;
    const int64_t heads = p_.batch * p_.heads_kv;
    int64_t qb, bh;
    if (p_.causal) {  // costliest blocks (last query positions) first, for load balance
      qb = q_blocks_ - 1 - item / heads;
      bh = item % heads;
    } else {  // consecutive items share K/V: better cache reuse
      qb = item % q_blocks_;
      bh = item / q_blocks_;
    }
    const int64_t b = bh / p_.heads_kv;
    const int64_t g = bh % p_.heads_kv;
    const int64_t i0 = qb * tiles_.block_q;
    const int64_t nq = std::min(tiles_.block_q, p_.seq_q - i0);
    const int64_t nrows = group_ * nq;  // row r: head g * group + r / nq, position i0 + r % nq

    pack_q(ws, b, g, i0, nq, nrows);
    const int64_t dvp = dvp_;
    std::fill(ws.o, ws.o + rows_cap_ * dvp, A(0));
    std::fill(ws.m, ws.m + rows_cap_, -std::numeric_limits<A>::infinity());
    std::fill(ws.l, ws.l + rows_cap_, A(0));

    // No row of the item sees a key past kv_end; the item covers the keys of its chunk.
    const int64_t k_begin = chunk * split_.chunk_keys;
    const int64_t k_end = std::min(visible_keys(i0 + nq - 1), k_begin + split_.chunk_keys);
    const int64_t kbase = b * p_.k_batch_stride + g * p_.k_head_stride;
    const int64_t vbase = b * p_.v_batch_stride + g * p_.v_head_stride;
    for (int64_t j0 = k_begin; j0 < k_end; j0 += tiles_.block_k) {
      const int64_t nk = std::min(tiles_.block_k, k_end - j0);
      if (!decode_) pack_k(ws, kbase, j0, nk);
      const auto [vt, ldv] = pack_v(ws, b, g, j0, nk);
      for (int64_t rb = 0; rb < nrows; rb += MR) tile_rows(ws, rb, nrows, nq, i0, j0, nk, kbase, vbase, vt, ldv);
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

  // Combines the chunks of kv head bh (decoding): with m = max_c m_c, l = sum_c l_c 2^(m_c - m) and
  // O = sum_c O_c 2^(m_c - m), in chunk order, then out = O / l as in finish().
  void merge(const Partials& parts, int64_t bh) const {
    const int64_t b = bh / p_.heads_kv;
    const int64_t g = bh % p_.heads_kv;
    const int64_t nq = p_.seq_q;
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
          const A f = exp2_scalar(parts.m[at] - m);  // 2^(m_c - m), 0 for an empty chunk
          l = l + parts.l[at] * f;
          const V fv = V::set1(f);
          const A* oc = parts.o + at * dvp_;
          for (int64_t e = 0; e < dvp_; e += W) fmadd(V::load(oc + e), fv, V::load(o + e)).store(o + e);
        }
      }
      write_result(b, g * group_ + r / nq, r % nq, o, m, l);
    }
  }

  void pack_q(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    const int64_t d_len = p_.head_dim;
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t h = g * group_ + r / nq;
      const int64_t i = i0 + r % nq;
      A* dst = ws.q + r * dqp_;
      read_row<A, T>(p_.q, b * p_.q_batch_stride + h * p_.q_head_stride + i * p_.q_seq_stride, p_.q_dim_stride,
                     d_len, dst);
      if (negate_q_) {
        for (int64_t d = 0; d < d_len; ++d) dst[d] = -dst[d];
      }
      std::fill(dst + d_len, dst + dqp_, A(0));
    }
    std::fill(ws.q + nrows * dqp_, ws.q + rows_cap_ * dqp_, A(0));
  }

  // Where key j of the tile starts in the packed K^T: chunks of NQ*W keys, each laid out as
  // [d][vector n][lane w], so that the register block reads one contiguous stream.
  A* kt_key(const Workspace& ws, int64_t j) const {
    const int64_t chunk = j / (int64_t{W} * NQ);
    return ws.kt + chunk * p_.head_dim * NQ * W + ((j / W) % NQ) * W + (j % W);
  }

  // Packs keys [j0, j0 + nk) of a kv head (K at element offset kbase): K transposed into kt (W keys at a time: their rows, converted
  // to A, go through W x W register transposes), V row by row into vt. Keys past nk up to the register
  // block are zero in kt, so their scores are 0 (and are masked).
  void pack_k(const Workspace& ws, int64_t kbase, int64_t j0, int64_t nk) const {
    const int64_t d_len = p_.head_dim;
    const int64_t d_full = d_len / W * W;
    const int64_t kstride = NQ * W;  // distance between consecutive d in kt
    for (int64_t j = 0; j < round_up(nk, int64_t{W} * NQ); j += W) {
      A* kdst = kt_key(ws, j);
      const int64_t keys = std::clamp<int64_t>(nk - j, 0, W);
      if (keys == 0) {  // padding
        for (int64_t d = 0; d < d_len; ++d) V::zero().store(kdst + d * kstride);
        continue;
      }
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

  // Returns where P V reads the tile's V rows and their stride: the caller's array itself when its rows are
  // contiguous vectors of A already (no conversion, no padding), else the packed copy in vt.
  std::pair<const A*, int64_t> pack_v(const Workspace& ws, int64_t b, int64_t g, int64_t j0, int64_t nk) const {
    const int64_t vbase = b * p_.v_batch_stride + g * p_.v_head_stride;
    if constexpr (std::is_same_v<T, A>) {
      if (p_.v_dim_stride == 1 && dvp_ == p_.head_dim_v) {
        return {reinterpret_cast<const A*>(static_cast<const char*>(p_.v) +
                                           (vbase + j0 * p_.v_seq_stride) * int64_t{sizeof(T)}),
                p_.v_seq_stride};
      }
    }
    for (int64_t j = 0; j < nk; ++j) {
      A* vdst = ws.vt + j * dvp_;
      read_row<A, T>(p_.v, vbase + (j0 + j) * p_.v_seq_stride, p_.v_dim_stride, p_.head_dim_v, vdst);
      std::fill(vdst + p_.head_dim_v, vdst + dvp_, A(0));
    }
    return {ws.vt, dvp_};
  }

  // Key row j as A, padded with zeros to dqp_ (the caller's row itself when that is already so).
  const A* key_row(const Workspace& ws, int64_t kbase, int64_t j) const {
    if constexpr (std::is_same_v<T, A>) {
      if (p_.k_dim_stride == 1 && dqp_ == p_.head_dim) {
        return reinterpret_cast<const A*>(static_cast<const char*>(p_.k) + (kbase + j * p_.k_seq_stride) * int64_t{sizeof(T)});
      }
    }
    read_row<A, T>(p_.k, kbase + j * p_.k_seq_stride, p_.k_dim_stride, p_.head_dim, ws.ks);
    std::fill(ws.ks + p_.head_dim, ws.ks + dqp_, A(0));
    return ws.ks;
  }

  // Decoding: S[r][j] = q_r . k_{j0 + j} for j < nk and the `rows` rows of the block, as dot products over d
  // (W lanes, then a fixed-order lane sum: a pairwise-like summation, accurate) on the key rows as stored.
  // The loop is bound by memory, so it prefetches K rows kPrefetchKeys ahead and this tile's V rows.
  void qk_dot(const Workspace& ws, int64_t rb, int rows, int64_t kbase, int64_t vbase, int64_t j0,
              int64_t nk) const {
    detail::with_count<MR>(rows, [&](auto rows_c) {
      constexpr int R = decltype(rows_c)::value;
      const int64_t lds = tiles_.block_k;
      const A* q = ws.q + rb * dqp_;
      for (int64_t j = 0; j < nk; ++j) {
        prefetch_row<3>(p_.k, kbase + (j0 + j + detail::kPrefetchKeys) * p_.k_seq_stride, p_.k_dim_stride,
                        p_.head_dim);
        prefetch_row<3>(p_.v, vbase + (j0 + j) * p_.v_seq_stride, p_.v_dim_stride, p_.head_dim_v);
        const A* k = key_row(ws, kbase, j0 + j);
        V acc[R];
        for (int r = 0; r < R; ++r) acc[r] = V::zero();
        for (int64_t d = 0; d < dqp_; d += W) {
          const V kv = V::load(k + d);
          for (int r = 0; r < R; ++r) acc[r] = fmadd(V::load(q + r * dqp_ + d), kv, acc[r]);  // s += q * k
        }
        for (int r = 0; r < R; ++r) ws.s[r * lds + j] = reduce_add(acc[r]);
      }
    });
  }

  // Asks the caches for the n elements of T at element offset `at` (contiguous rows only). Prefetches never
  // fault, so addresses past the array's end are harmless.
  template <int kLocality>
  static void prefetch_row(const void* base, int64_t at, int64_t stride, int64_t n) {
    if (stride != 1) return;
    const char* p = static_cast<const char*>(base) + at * int64_t{sizeof(T)};
    for (int64_t off = 0; off < n * int64_t{sizeof(T)}; off += 64) __builtin_prefetch(p + off, 0, kLocality);
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

  // One register block of rows [rb, rb + MR) against the KV tile [j0, j0 + nk).
  void tile_rows(const Workspace& ws, int64_t rb, int64_t nrows, int64_t nq, int64_t i0, int64_t j0,
                 int64_t nk, int64_t kbase, int64_t vbase, const A* vt, int64_t ldv) const {
    int64_t n[MR];  // keys of this tile that each row sees: a prefix [0, n[r])
    int64_t nmax = 0;
    for (int r = 0; r < MR; ++r) {
      const int64_t row = rb + r;
      n[r] = row < nrows ? std::clamp<int64_t>(visible_keys(i0 + row % nq) - j0, 0, nk) : 0;
      nmax = std::max(nmax, n[r]);
    }
    if (nmax == 0) return;
    const int64_t lds = tiles_.block_k;
    // A full block: every row sees every key of a tile without padding (all tiles but the diagonal ones and
    // the last). Its row maxima come out of the Q K^T epilogue and its exponentials are computed for all
    // rows together, so that the per-row dependency chains overlap. Other blocks go row by row; both ways
    // give every row bitwise the same values.
    bool full = !decode_ && nk % (int64_t{W} * NQ) == 0;
    for (int r = 0; r < MR; ++r) full = full && n[r] == nk;
    const int64_t nvec = decode_ ? 0 : round_up(ceil_div(nmax, W), NQ);
    if (decode_) {
      qk_dot(ws, rb, static_cast<int>(std::min<int64_t>(MR, nrows - rb)), kbase, vbase, j0, nmax);
    }
    V vmax[MR];
    for (int r = 0; r < MR; ++r) vmax[r] = V::set1(-std::numeric_limits<A>::infinity());
    for (int64_t kv = 0; kv < nvec; kv += NQ) {
      qk_block<A, MR, NQ>(ws.q + rb * dqp_, dqp_, ws.kt + kv * p_.head_dim * W, p_.head_dim,  // chunk kv/NQ
                          ws.s + kv * W, lds, full ? vmax : nullptr);
    }

    A alpha_row[MR];
    bool live[MR];
    softmax_rows(ws, rb, n, full ? vmax : nullptr, alpha_row, live);

    const A* prow[MR];
    A* orow[MR];
    A alpha[MR];
    int64_t nrow[MR];
    int active = 0;
    for (int r = 0; r < MR; ++r) {
      if (!live[r]) continue;  // sees nothing here, or every visible score is -inf: nothing to add
      prow[active] = ws.s + r * lds;
      orow[active] = ws.o + (rb + r) * dvp_;
      alpha[active] = alpha_row[r];
      nrow[active] = n[r];
      ++active;
    }
    if (active == 0) return;
    if (decode_) {
      pv_decode(prow, orow, alpha, nrow, active, vt, ldv);
      return;
    }
    pv_rows(prow, orow, alpha, nrow, active, vt, ldv);
  }

  // O = alpha O + P V for the active rows of a block, row a over its keys [0, n[a]). The keys are summed in
  // chains over fixed sub-blocks [c, c + kPvChain) of the tile, each merged into O (the first with the
  // rescale alpha): a two-level sum whose rounding error stays that of a BLAS product, and the same for a
  // row whatever block it is in. Sub-blocks every row sees in full go through register blocks; the rest
  // (the diagonal) row by row, so that a row never multiplies a probability with a value it may not see.
  void pv_rows(const A* const* p, A* const* o, const A* alpha, const int64_t* n, int rows, const A* vt,
               int64_t ldv) const {
    int64_t nmax = 0;
    for (int a = 0; a < rows; ++a) nmax = std::max(nmax, n[a]);
    A ones[MR];
    std::fill(ones, ones + MR, A(1));
    const A* pf[MR];
    A* of[MR];
    for (int64_t c = 0; c < nmax; c += detail::kPvChain) {
      const int64_t c1 = c + detail::kPvChain;
      const A* scale = c == 0 ? alpha : ones;  // the first chain also rescales O
      int full = 0;
      A sf[MR];
      for (int a = 0; a < rows; ++a) {
        if (n[a] >= std::min(c1, nmax) && n[a] > c) {
          pf[full] = p[a] + c;
          of[full] = o[a];
          sf[full] = scale[a];
          ++full;
        } else if (n[a] > c) {  // the diagonal: this row sees part of the chain
          pv_one_row(p[a] + c, o[a], scale[a], vt + c * ldv, ldv, n[a] - c);
        }
      }
      if (full == 0) continue;
      const int64_t keys = std::min(c1, nmax) - c;
      detail::with_count<MR>(full, [&](auto rows_c) {
        constexpr int R = decltype(rows_c)::value;
        int64_t col = 0;
        for (; col + NP * W <= dvp_; col += NP * W) pv_block<A, R, NP>(pf, of, sf, vt + c * ldv, ldv, keys, col);
        detail::with_count<NP>(static_cast<int>((dvp_ - col) / W), [&](auto vecs) {
          pv_block<A, R, decltype(vecs)::value>(pf, of, sf, vt + c * ldv, ldv, keys, col);
        });
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

  // Decoding: P V row by row, each row over its own keys [0, n), summed in chains of kDecodePvChain keys that
  // are merged into the output (O = alpha O + chain for the first, O += chain after): a two-level sum, as
  // accurate as a BLAS gemv. The loop is bound by memory, so the extra adds cost nothing.
  void pv_decode(const A* const* p, A* const* o, const A* alpha, const int64_t* n, int rows, const A* vt,
                 int64_t ldv) const {
    constexpr int kCols = 8;  // output vectors held in registers
    for (int a = 0; a < rows; ++a) {
      for (int64_t col = 0; col < dvp_; col += kCols * W) {
        detail::with_count<kCols>(static_cast<int>(std::min<int64_t>(kCols, (dvp_ - col) / W)), [&](auto cols) {
          constexpr int C = decltype(cols)::value;
          for (int64_t j0 = 0; j0 < n[a]; j0 += detail::kDecodePvChain) {
            const int64_t j1 = std::min(n[a], j0 + detail::kDecodePvChain);
            V acc[C];
            for (int c = 0; c < C; ++c) acc[c] = V::zero();
            for (int64_t j = j0; j < j1; ++j) {
              const V pv = V::set1(p[a][j]);
              for (int c = 0; c < C; ++c) acc[c] = fmadd(pv, V::load(vt + j * ldv + col + c * W), acc[c]);  // acc += p * v
            }
            const V av = V::set1(alpha[a]);
            for (int c = 0; c < C; ++c) {
              A* dst = o[a] + col + c * W;
              (j0 == 0 ? fmadd(V::load(dst), av, acc[c]) : add(V::load(dst), acc[c])).store(dst);  // o = alpha o + acc
            }
          }
        });
      }
    }
  }

  // 2^x through the vector exp2, so that every path computes alpha with the same function.
  static A exp2_scalar(A x) {
    A lanes[W];
    exp2(V::set1(x)).store(lanes);
    return lanes[0];
  }

  // The new running max of a row from the max of its scores in this tile (already times c), or false when
  // every visible score is -inf (the row stays empty). A NaN score (which max may drop) makes it NaN.
  bool new_max(A m_old, A tile_max, const A* s, int64_t n, A* m_new) const {
    A m = tile_max > m_old ? tile_max : m_old;
    if (m == -std::numeric_limits<A>::infinity()) {
      bool nan = false;
      for (int64_t j = 0; j < n; ++j) nan = nan || std::isnan(s[j]);
      if (!nan) return false;
      m = std::numeric_limits<A>::quiet_NaN();
    }
    *m_new = m;
    return true;
  }

  // Online softmax update of the MR rows of a block, row r over its n[r] visible raw scores S[r][0, n[r])
  // (q . k, unscaled): turns S into probabilities, updates each row's max m and sum l, and gives the factor
  // alpha = 2^(m - m') by which the row's output accumulators must be rescaled. live[r] is false when the
  // row sees nothing here or every visible score is -inf (the row adds nothing); a NaN score makes the
  // row NaN. vmax, when given, holds the rows' lane-wise maxima of S already (full blocks, from the Q K^T
  // epilogue). The rows advance in lockstep, so their dependency chains overlap; every row goes through
  // the same operations in the same order whatever its neighbours, so results do not depend on the block.
  // The scale is folded into the exponent: p = 2^(fma(s, c, -m')) with c = |scale| * log2(e) (q carries
  // the sign) rounds once, and the rounding of m' is common to the whole row, so it cancels in O / l.
  void softmax_rows(const Workspace& ws, int64_t rb, const int64_t* n, const V* vmax_in, A* alpha,
                    bool* live) const {
    const A neg_inf = -std::numeric_limits<A>::infinity();
    const int64_t lds = tiles_.block_k;
    int64_t nv[MR];
    int tail[MR];  // valid lanes of each row's last vector
    int64_t nv_max = 0;
    for (int r = 0; r < MR; ++r) {
      nv[r] = ceil_div(n[r], W);
      tail[r] = static_cast<int>(n[r] - (nv[r] - 1) * W);
      nv_max = std::max(nv_max, nv[r]);
    }
    V vmax[MR];
    if (vmax_in != nullptr) {
      for (int r = 0; r < MR; ++r) vmax[r] = vmax_in[r];
    } else {
      for (int r = 0; r < MR; ++r) vmax[r] = V::set1(neg_inf);
      for (int64_t v = 0; v < nv_max; ++v) {
        for (int r = 0; r < MR; ++r) {
          if (v >= nv[r]) continue;
          V x = V::load(ws.s + r * lds + v * W);
          // Keys past n[r] are not visible: selected away, never added to (a NaN there must not reach the row).
          if (v == nv[r] - 1) x = keep_first(x, tail[r], neg_inf);
          vmax[r] = max(vmax[r], x);
        }
      }
    }
    V neg_m[MR];
    for (int r = 0; r < MR; ++r) {
      live[r] = false;
      neg_m[r] = V::zero();
      if (n[r] == 0) continue;
      const A m_old = ws.m[rb + r];
      A m_new;
      // c >= 0, so max(s) * c = max(s * c): rounding is monotonic.
      if (!new_max(m_old, reduce_max(vmax[r]) * c_, ws.s + r * lds, n[r], &m_new)) continue;
      live[r] = true;
      // alpha = 2^(m - m'): exactly 1 when the max did not change and 0 on the row's first tile (exp2 gives
      // those same values; skipping it there changes no bit).
      alpha[r] = m_old == m_new ? A(1) : m_old == neg_inf ? A(0) : exp2_scalar(m_old - m_new);
      ws.m[rb + r] = m_new;
      neg_m[r] = V::set1(-m_new);
    }
    const V cv = V::set1(c_);
    V vsum[MR];
    for (int r = 0; r < MR; ++r) vsum[r] = V::zero();
    for (int64_t v = 0; v < nv_max; ++v) {
      for (int r = 0; r < MR; ++r) {
        if (!live[r] || v >= nv[r]) continue;
        A* s = ws.s + r * lds + v * W;
        V x = fmadd(V::load(s), cv, neg_m[r]);  // x = s * c - m'
        if (v == nv[r] - 1) x = keep_first(x, tail[r], neg_inf);
        const V pv = exp2(x);  // p = 2^x, exactly 0 for the keys past n
        pv.store(s);
        vsum[r] = add(vsum[r], pv);
      }
    }
    for (int r = 0; r < MR; ++r) {
      if (live[r]) ws.l[rb + r] = ws.l[rb + r] * alpha[r] + reduce_add(vsum[r]);  // l = alpha * l + rowsum(p)
    }
  }

  void finish(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    for (int64_t r = 0; r < nrows; ++r) {
      write_result(b, g * group_ + r / nq, i0 + r % nq, ws.o + r * dvp_, ws.m[r], ws.l[r]);
    }
  }

  // out[b, h, i] = o / l and lse[b, h, i] = (m + log2 l) * ln 2; a row that saw no key (l == 0) gets +0 and
  // -inf. Overwrites o when l == 0.
  void write_result(int64_t b, int64_t h, int64_t i, A* o, A m, A l) const {
    constexpr double kLn2 = 0.6931471805599453;
    const int64_t obase = b * p_.out_batch_stride + h * p_.out_head_stride + i * p_.out_seq_stride;
    if (l == A(0)) std::fill(o, o + dvp_, A(0));  // 0 / 1 = +0
    write_row<A, T>(p_.out, obase, p_.out_dim_stride, p_.head_dim_v, o, l == A(0) ? A(1) : l);
    if (p_.lse != nullptr) {
      using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const double lse = l == A(0) ? -std::numeric_limits<double>::infinity()
                                   : static_cast<double>(m) * kLn2 + std::log(static_cast<double>(l));
      const int64_t li = b * p_.lse_batch_stride + h * p_.lse_head_stride + i * p_.lse_seq_stride;
      detail::store_elem<L>(p_.lse, li, static_cast<L>(lse));
    }
  }

  const Params& p_;
  int threads_;
  int64_t group_;
  int64_t dvp_;
  detail::TileShape tiles_;
  int64_t q_blocks_;
  int64_t rows_cap_;
  A c_;            // |scale| * log2(e): scores times c are in base-2 units
  bool negate_q_;  // a negative scale's sign is carried by q, so that c >= 0
  bool decode_;    // few rows per kv head: q . k as dot products on K rows, keys split in chunks
  int64_t dqp_;    // stride of the packed q rows (padded to whole vectors when decoding)
  detail::DecodeSplit split_;
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

TileInfo tiled_tile_info(const Params& p, int threads) {
  switch (p.dtype) {
    case DType::kFloat64:
      return TiledForward<double, double>(p, threads).tile_info();
    default:
      return TiledForward<float, float>(p, threads).tile_info();
  }
}

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

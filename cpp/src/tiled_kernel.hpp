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

// S[r][n*W + w] = sum_d q[r][d] * kt[n][d][w] for R rows and N key vectors. The sum over d is two-level:
// blocks of kDotBlock terms in registers, then the blocks' sums in S, which keeps the rounding error of
// long head dims at the level of a blocked BLAS dot product.
template <class A, int R, int N>
inline void qk_block(const A* q, int64_t ldq, const A* kt, int64_t head_dim, A* s, int64_t lds) {
  using V = Vec<A>;
  constexpr int W = V::kWidth;
  for (int64_t d0 = 0; d0 < head_dim; d0 += detail::kDotBlock) {
    const int64_t d1 = std::min(head_dim, d0 + detail::kDotBlock);
    V acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) acc[r][n] = V::zero();
    for (int64_t d = d0; d < d1; ++d) {
      V kv[N];
      for (int n = 0; n < N; ++n) kv[n] = V::load(kt + (n * head_dim + d) * W);
      for (int r = 0; r < R; ++r) {
        const V qv = V::set1(q[r * ldq + d]);
        for (int n = 0; n < N; ++n) acc[r][n] = fmadd(qv, kv[n], acc[r][n]);  // s += q * k
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int n = 0; n < N; ++n) {
        A* dst = s + r * lds + n * W;
        (d0 == 0 ? acc[r][n] : add(V::load(dst), acc[r][n])).store(dst);
      }
    }
  }
}

// P V for R rows and N output vectors starting at column `col`: acc[r] = sum_{j < nkeys} p[r][j] * vt[j],
// summed from zero over this tile only (a two-level sum over the keys: tiles, then keys in a tile), then
// either merged into the running output, o[r] = alpha[r] * o[r] + acc[r] (the online-softmax rescale comes
// free), or left in stash[r] for more keys to be added before the same merge.
template <class A, int R, int N>
inline void pv_block(const A* const* p, A* const* o, const A* alpha, A* const* stash, const A* vt, int64_t ldv,
                     int64_t nkeys, int64_t col) {
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
    if (stash != nullptr) {
      for (int n = 0; n < N; ++n) acc[r][n].store(stash[r] + col + n * W);
    } else {
      const V av = V::set1(alpha[r]);
      for (int n = 0; n < N; ++n) {
        A* dst = o[r] + col + n * W;
        fmadd(V::load(dst), av, acc[r][n]).store(dst);  // o = alpha * o + acc
      }
    }
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
        c_(static_cast<A>(p.scale * 1.4426950408889634)) {}  // scale * log2(e)

  TileInfo tile_info() const { return {tiles_.block_q, tiles_.block_k}; }

  void run() const {
    const int64_t items = p_.batch * p_.heads_kv * q_blocks_;
    const std::size_t bytes = carve(nullptr).bytes;
    detail::parallel_for(items, 1, threads_, [this, bytes](int64_t begin, int64_t end) {
      const Workspace ws = carve(detail::thread_scratch().get(bytes));
      for (int64_t item = begin; item < end; ++item) process(ws, item);
    });
  }

 private:
  struct Workspace {
    A* q;  // rows_cap x head_dim: packed, pre-scaled query rows
    A* o;  // rows_cap x dvp: output accumulators
    A* m;  // rows_cap: running max (base-2 units)
    A* l;  // rows_cap: running sum
    A* kt;  // block_k x head_dim: K^T of one tile, as [key vector][d][W]
    A* vt;  // block_k x dvp: V of one tile
    A* s;   // MR x block_k: scores, then probabilities
    A* t;   // MR x dvp: P V of one tile, for rows finished key by key (the diagonal)
    std::size_t bytes;
  };

  Workspace carve(void* base) const {
    detail::Carver c(base);
    Workspace ws{};
    const auto rows = static_cast<std::size_t>(rows_cap_);
    const auto keys = static_cast<std::size_t>(tiles_.block_k);
    const auto d = static_cast<std::size_t>(p_.head_dim);
    const auto dv = static_cast<std::size_t>(dvp_);
    ws.q = c.take<A>(detail::checked_mul(rows, d));
    ws.o = c.take<A>(detail::checked_mul(rows, dv));
    ws.m = c.take<A>(rows);
    ws.l = c.take<A>(rows);
    ws.kt = c.take<A>(detail::checked_mul(keys, d));
    ws.vt = c.take<A>(detail::checked_mul(keys, dv));
    ws.s = c.take<A>(detail::checked_mul(MR, keys));
    ws.t = c.take<A>(detail::checked_mul(MR, dv));
    ws.bytes = c.measured();
    return ws;
  }

  // Number of keys query position i may see (a prefix [0, n) of the keys).
  int64_t visible_keys(int64_t i) const {
    if (!p_.causal) return p_.seq_k;
    return std::clamp<int64_t>(i + (p_.seq_k - p_.seq_q) + 1, 0, p_.seq_k);
  }

  void process(const Workspace& ws, int64_t item) const {
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

    const int64_t kv_end = visible_keys(i0 + nq - 1);  // no row of the item sees a key past this
    for (int64_t j0 = 0; j0 < kv_end; j0 += tiles_.block_k) {
      const int64_t nk = std::min(tiles_.block_k, kv_end - j0);
      pack_kv(ws, b, g, j0, nk);
      for (int64_t rb = 0; rb < nrows; rb += MR) tile_rows(ws, rb, nrows, nq, i0, j0, nk);
    }
    finish(ws, b, g, i0, nq, nrows);
  }

  void pack_q(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    const int64_t d_len = p_.head_dim;
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t h = g * group_ + r / nq;
      const int64_t i = i0 + r % nq;
      const int64_t base = b * p_.q_batch_stride + h * p_.q_head_stride + i * p_.q_seq_stride;
      A* dst = ws.q + r * d_len;
      for (int64_t d = 0; d < d_len; ++d) {
        dst[d] = detail::load_as<A>(detail::load_elem<T>(p_.q, base + d * p_.q_dim_stride));
      }
    }
    std::fill(ws.q + nrows * d_len, ws.q + rows_cap_ * d_len, A(0));
  }

  void pack_kv(const Workspace& ws, int64_t b, int64_t g, int64_t j0, int64_t nk) const {
    const int64_t d_len = p_.head_dim;
    const int64_t dv_len = p_.head_dim_v;
    const int64_t nk_padded = round_up(nk, int64_t{W} * NQ);
    const int64_t kbase = b * p_.k_batch_stride + g * p_.k_head_stride;
    const int64_t vbase = b * p_.v_batch_stride + g * p_.v_head_stride;
    for (int64_t j = 0; j < nk; ++j) {
      A* kdst = ws.kt + (j / W) * d_len * W + (j % W);
      const int64_t krow = kbase + (j0 + j) * p_.k_seq_stride;
      for (int64_t d = 0; d < d_len; ++d) {
        kdst[d * W] = detail::load_as<A>(detail::load_elem<T>(p_.k, krow + d * p_.k_dim_stride));
      }
      A* vdst = ws.vt + j * dvp_;
      const int64_t vrow = vbase + (j0 + j) * p_.v_seq_stride;
      for (int64_t e = 0; e < dv_len; ++e) {
        vdst[e] = detail::load_as<A>(detail::load_elem<T>(p_.v, vrow + e * p_.v_dim_stride));
      }
      std::fill(vdst + dv_len, vdst + dvp_, A(0));
    }
    for (int64_t j = nk; j < nk_padded; ++j) {  // padding keys: zero scores, masked below
      A* kdst = ws.kt + (j / W) * d_len * W + (j % W);
      for (int64_t d = 0; d < d_len; ++d) kdst[d * W] = A(0);
    }
  }

  // One register block of rows [rb, rb + MR) against the KV tile [j0, j0 + nk).
  void tile_rows(const Workspace& ws, int64_t rb, int64_t nrows, int64_t nq, int64_t i0, int64_t j0,
                 int64_t nk) const {
    int64_t n[MR];  // keys of this tile that each row sees: a prefix [0, n[r])
    int64_t nmax = 0;
    for (int r = 0; r < MR; ++r) {
      const int64_t row = rb + r;
      n[r] = row < nrows ? std::clamp<int64_t>(visible_keys(i0 + row % nq) - j0, 0, nk) : 0;
      nmax = std::max(nmax, n[r]);
    }
    if (nmax == 0) return;
    const int64_t lds = tiles_.block_k;
    const int64_t nvec = round_up(ceil_div(nmax, W), NQ);
    for (int64_t kv = 0; kv < nvec; kv += NQ) {
      qk_block<A, MR, NQ>(ws.q + rb * p_.head_dim, p_.head_dim, ws.kt + kv * p_.head_dim * W, p_.head_dim,
                          ws.s + kv * W, lds);
    }

    const A* prow[MR];
    A* orow[MR];
    A* trow[MR];
    A alpha[MR];
    int64_t nrow[MR];
    int active = 0;
    int64_t nmin = nk;
    for (int r = 0; r < MR; ++r) {
      if (n[r] == 0) continue;
      A* s = ws.s + r * lds;
      if (!softmax_row(ws, rb + r, s, n[r], &alpha[active])) continue;  // no visible score above -inf
      prow[active] = s;
      orow[active] = ws.o + (rb + r) * dvp_;
      trow[active] = ws.t + active * dvp_;
      nrow[active] = n[r];
      nmin = std::min(nmin, n[r]);
      ++active;
    }
    if (active == 0) return;
    bool diagonal = false;  // some row sees more keys than another: finish those keys row by row
    for (int a = 0; a < active; ++a) diagonal = diagonal || nrow[a] > nmin;
    // Keys every active row sees go through register blocks; the rest (the diagonal) row by row, so a row
    // never multiplies a probability with a value it may not see.
    detail::with_count<MR>(active, [&](auto rows) {
      constexpr int R = decltype(rows)::value;
      A* const* stash = diagonal ? trow : nullptr;
      int64_t col = 0;
      for (; col + NP * W <= dvp_; col += NP * W) {
        pv_block<A, R, NP>(prow, orow, alpha, stash, ws.vt, dvp_, nmin, col);
      }
      detail::with_count<NP>(static_cast<int>((dvp_ - col) / W), [&](auto vecs) {
        pv_block<A, R, decltype(vecs)::value>(prow, orow, alpha, stash, ws.vt, dvp_, nmin, col);
      });
    });
    if (!diagonal) return;
    for (int a = 0; a < active; ++a) {
      for (int64_t j = nmin; j < nrow[a]; ++j) {
        const V pv = V::set1(prow[a][j]);
        for (int64_t col = 0; col < dvp_; col += W) {
          fmadd(pv, V::load(ws.vt + j * dvp_ + col), V::load(trow[a] + col)).store(trow[a] + col);  // acc += p * v
        }
      }
      const V av = V::set1(alpha[a]);
      for (int64_t col = 0; col < dvp_; col += W) {
        fmadd(V::load(orow[a] + col), av, V::load(trow[a] + col)).store(orow[a] + col);  // o = alpha * o + acc
      }
    }
  }

  // Online softmax update of one row over its n visible raw scores s[0, n) (q . k, unscaled): turns s into
  // probabilities, updates the row's max and sum, and gives the factor alpha = 2^(m - m') by which the
  // row's output accumulators must be rescaled. Returns false when every visible score is -inf (the row
  // stays empty); a NaN score makes the row's max, sum and output NaN.
  // The scale is folded into the exponent: p = 2^(fma(s, c, -m')) with c = scale * log2(e) rounds once,
  // and the rounding of m' is common to the whole row, so it cancels in O / l.
  bool softmax_row(const Workspace& ws, int64_t row, A* s, int64_t n, A* alpha) const {
    const A neg_inf = -std::numeric_limits<A>::infinity();
    const int64_t nv = ceil_div(n, W);
    const int tail = static_cast<int>(n - (nv - 1) * W);
    const V cv = V::set1(c_);
    V vmax = V::set1(neg_inf);
    for (int64_t v = 0; v + 1 < nv; ++v) vmax = max(vmax, mul(V::load(s + v * W), cv));
    // Keys past n are not visible: selected away, never added to (a NaN there must not reach the row).
    vmax = max(vmax, keep_first(mul(V::load(s + (nv - 1) * W), cv), tail, neg_inf));
    const A m_old = ws.m[row];
    const A tile_max = reduce_max(vmax);
    A m_new = tile_max > m_old ? tile_max : m_old;
    if (m_new == neg_inf) {  // nothing above -inf; a NaN score (which max may drop) makes the row NaN
      bool nan = false;
      for (int64_t j = 0; j < n; ++j) nan = nan || std::isnan(s[j]);
      if (!nan) return false;
      m_new = std::numeric_limits<A>::quiet_NaN();
    }
    const V neg_m = V::set1(-m_new);
    V vsum = V::zero();
    for (int64_t v = 0; v < nv; ++v) {
      V x = fmadd(V::load(s + v * W), cv, neg_m);  // x = s * c - m'
      if (v == nv - 1) x = keep_first(x, tail, neg_inf);
      const V pv = exp2(x);  // p = 2^x, exactly 0 for the keys past n
      pv.store(s + v * W);
      vsum = add(vsum, pv);
    }
    // alpha = 2^(m - m'); exactly 1 when the max did not change, 0 on the first tile the row sees.
    *alpha = m_old == m_new ? A(1) : m_old == neg_inf ? A(0) : std::exp2(m_old - m_new);
    ws.l[row] = ws.l[row] * *alpha + reduce_add(vsum);  // l = alpha * l + rowsum(p)
    ws.m[row] = m_new;
    return true;
  }

  void finish(const Workspace& ws, int64_t b, int64_t g, int64_t i0, int64_t nq, int64_t nrows) const {
    constexpr double kLn2 = 0.6931471805599453;
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t h = g * group_ + r / nq;
      const int64_t i = i0 + r % nq;
      const int64_t obase = b * p_.out_batch_stride + h * p_.out_head_stride + i * p_.out_seq_stride;
      const A l = ws.l[r];
      const A* o = ws.o + r * dvp_;
      for (int64_t e = 0; e < p_.head_dim_v; ++e) {
        const A value = l == A(0) ? A(0) : o[e] / l;  // a row that saw no key: +0
        detail::store_elem<T>(p_.out, obase + e * p_.out_dim_stride, detail::StoreAs<T>::from(value));
      }
      if (p_.lse != nullptr) {
        using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
        const double lse = l == A(0) ? -std::numeric_limits<double>::infinity()
                                     : static_cast<double>(ws.m[r]) * kLn2 + std::log(static_cast<double>(l));
        const int64_t li = b * p_.lse_batch_stride + h * p_.lse_head_stride + i * p_.lse_seq_stride;
        detail::store_elem<L>(p_.lse, li, static_cast<L>(lse));
      }
    }
  }

  const Params& p_;
  int threads_;
  int64_t group_;
  int64_t dvp_;
  detail::TileShape tiles_;
  int64_t q_blocks_;
  int64_t rows_cap_;
  A c_;  // scale * log2(e): scores times c are in base-2 units
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

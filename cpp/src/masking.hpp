// Where each sequence's rows and keys live (plain, padded or packed batches) and which keys a query row
// may see. Every structured mask (lengths, causal in either alignment, windows) makes the visible keys of
// a row one interval [lo, hi); a boolean mask narrows it to its first..last true key and, inside, is
// applied element by element. Shared by the tiled and the reference kernels; no instruction-set code.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "half.hpp"
#include "scratch.hpp"
#include "thread_pool.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn::detail {

struct RowRange {
  int64_t lo;  // first visible key
  int64_t hi;  // one past the last visible key (hi <= lo: none)
};

class Geometry {
 public:
  explicit Geometry(const Params& p) : p_(p), packed_(p.cu_seqlens_q != nullptr) {
    left_ = p.window_left >= 0 ? p.window_left : -1;
    right_ = p.window_right >= 0 ? p.window_right : -1;
    if (p.causal) right_ = right_ >= 0 ? std::min<int64_t>(right_, 0) : 0;
    max_rows_ = p.seq_q;
    max_keys_ = p.seq_k;
    if (packed_) {
      max_rows_ = max_keys_ = 0;
      for (int64_t b = 0; b < p.batch; ++b) {
        max_rows_ = std::max(max_rows_, p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b]);
        max_keys_ = std::max(max_keys_, p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b]);
      }
    }
  }

  bool packed() const { return packed_; }
  // Query rows stored for sequence b (rows past len_q(b) exist when the batch is padded).
  int64_t rows(int64_t b) const { return packed_ ? p_.cu_seqlens_q[b + 1] - p_.cu_seqlens_q[b] : p_.seq_q; }
  int64_t max_rows() const { return max_rows_; }
  int64_t max_keys() const { return max_keys_; }
  int64_t len_q(int64_t b) const { return packed_ ? rows(b) : p_.q_lengths != nullptr ? p_.q_lengths[b] : p_.seq_q; }
  int64_t len_k(int64_t b) const {
    if (packed_) return p_.cu_seqlens_k[b + 1] - p_.cu_seqlens_k[b];
    return p_.kv_lengths != nullptr ? p_.kv_lengths[b] : p_.seq_k;
  }
  // The key on query row i's diagonal.
  int64_t diag(int64_t b, int64_t i) const { return p_.top_left ? i : i + len_k(b) - len_q(b); }

  // Element offsets: of q[b, h, i, 0], of k / v [b, g, 0, 0] (add j * seq stride), out, lse.
  int64_t q_at(int64_t b, int64_t h, int64_t i) const {
    return batch_q(b, p_.q_batch_stride) + h * p_.q_head_stride + (row0(b) + i) * p_.q_seq_stride;
  }
  int64_t k_at(int64_t b, int64_t g) const {
    return batch_k(b, p_.k_batch_stride) + g * p_.k_head_stride + key0(b) * p_.k_seq_stride;
  }
  int64_t v_at(int64_t b, int64_t g) const {
    return batch_k(b, p_.v_batch_stride) + g * p_.v_head_stride + key0(b) * p_.v_seq_stride;
  }
  int64_t out_at(int64_t b, int64_t h, int64_t i) const {
    return batch_q(b, p_.out_batch_stride) + h * p_.out_head_stride + (row0(b) + i) * p_.out_seq_stride;
  }
  int64_t lse_at(int64_t b, int64_t h, int64_t i) const {
    return batch_q(b, p_.lse_batch_stride) + h * p_.lse_head_stride + (row0(b) + i) * p_.lse_seq_stride;
  }

  // Keys row i of sequence b may see by lengths, causality and window (not the boolean mask).
  RowRange window(int64_t b, int64_t i) const {
    const int64_t lq = len_q(b);
    if (i >= lq) return {0, 0};
    const int64_t lk = len_k(b);
    return around(p_.top_left ? i : i + lk - lq, lk, left_, right_);
  }

  // window(b, i) for the n rows i0 .. i0 + n - 1, into lo[x] and hi[x]; returns the union's bounds (max
  // int64 and 0 when no row sees a key). The sequence's lengths and the window are read once: the stores
  // to lo and hi could alias the parameters, which window() then reloads for every row. Measured against
  // a window() call per row (A/B of builds, one thread, pinned rounds; bench/RESULTS.md, thirty-first
  // session): B32 H12 S128 D32 +2.5 %, B8 H16 S512 D64 +1.9 %, S512 causal +0.8 %.
  RowRange windows(int64_t b, int64_t i0, int64_t n, int64_t* lo, int64_t* hi) const {
    const int64_t lq = len_q(b), lk = len_k(b), shift = p_.top_left ? 0 : lk - lq;
    const int64_t left = left_, right = right_;
    int64_t klo = std::numeric_limits<int64_t>::max(), khi = 0;
    for (int64_t x = 0; x < n; ++x) {
      const int64_t i = i0 + x;
      const RowRange r = i < lq ? around(i + shift, lk, left, right) : RowRange{0, 0};
      lo[x] = r.lo;
      hi[x] = r.hi;
      if (r.lo < r.hi) klo = std::min(klo, r.lo), khi = std::max(khi, r.hi);
    }
    return {klo, khi};
  }

 private:
  // The keys of a row whose diagonal is key d, among lk keys, within the window (left, right; -1:
  // unbounded). Written so that no bound overflows, however large (a bound past every key is unbounded).
  static RowRange around(int64_t d, int64_t lk, int64_t left, int64_t right) {
    int64_t lo = left >= 0 && d > left ? d - left : 0;
    const int64_t hi = right >= 0 && right < lk - d ? d + right + 1 : lk;
    lo = std::min(lo, lk);
    return {lo, std::max(lo, hi)};
  }

  int64_t row0(int64_t b) const { return packed_ ? p_.cu_seqlens_q[b] : 0; }
  int64_t key0(int64_t b) const { return packed_ ? p_.cu_seqlens_k[b] : 0; }
  int64_t batch_q(int64_t b, int64_t stride) const { return packed_ ? 0 : b * stride; }
  int64_t batch_k(int64_t b, int64_t stride) const { return packed_ ? 0 : b * stride; }

  const Params& p_;
  bool packed_;
  int64_t left_, right_;
  int64_t max_rows_, max_keys_;
};

// The boolean mask, read once per call: for each of its own (batch, head, row) (broadcast dimensions
// counted once) the first and one-past-last true key, and two bits per KV tile: does the row see any key
// of that tile, and does it see all of them? Tiles a row does not see are skipped; the mask is applied
// element by element inside the others, except, on the vector levels, where it is all true (a document's
// or padding's blocks: most tiles of such masks), where it is not read at all. (The AMX level's summary
// computes those bits too but does not use them yet: its mask selects lanes, with no pass of its own.)
class MaskSummary {
 public:
  MaskSummary() = default;

  // The bytes needed for a mask over (batch, heads, seq_q, seq_k) with tiles of block_k keys.
  // AllocationError naming the mask when that is more than the machine's memory.
  static std::size_t bytes(const Params& p, int64_t block_k) {
    const auto cells = static_cast<std::size_t>(extent_b(p) * extent_h(p) * p.seq_q);
    const auto words = static_cast<std::size_t>(words_per_row(p, block_k));
    std::size_t n = 0;
    try {
      n = checked_add(round_up_bytes(checked_mul(cells, sizeof(RowRange))),
                      checked_mul(2, round_up_bytes(checked_mul(checked_mul(cells, words), 8))));
    } catch (const std::bad_alloc&) {
      n = std::numeric_limits<std::size_t>::max();
    }
    if (n > physical_memory_bytes()) {
      throw AllocationError("mask: the summary of its tiles (two bits per " + std::to_string(block_k) +
                            " keys of each of its own rows) needs more than this machine's memory");
    }
    return n;
  }

  void build(const Params& p, int64_t block_k, void* memory, int threads) {
    p_ = &p;
    block_k_ = block_k;
    eb_ = extent_b(p), eh_ = extent_h(p);
    words_ = words_per_row(p, block_k);
    const int64_t cells = eb_ * eh_ * p.seq_q;
    Carver c(memory);
    ranges_ = c.take<RowRange>(static_cast<std::size_t>(cells));
    bits_ = c.take<uint64_t>(static_cast<std::size_t>(cells * words_));
    full_ = c.take<uint64_t>(static_cast<std::size_t>(cells * words_));
    parallel_for(cells, 64, threads, [this, &p](int64_t begin, int64_t end) {
      for (int64_t cell = begin; cell < end; ++cell) {
        const int64_t i = cell % p.seq_q;
        const int64_t h = (cell / p.seq_q) % eh_;
        const int64_t b = cell / (p.seq_q * eh_);
        const uint8_t* row = p.mask + b * p.mask_batch_stride + h * p.mask_head_stride + i * p.mask_seq_stride;
        uint64_t* bits = bits_ + cell * words_;
        uint64_t* full = full_ + cell * words_;
        std::fill(bits, bits + words_, uint64_t{0});
        std::fill(full, full + words_, uint64_t{0});
        ranges_[cell] = p.mask_key_stride == 1 ? scan_contiguous(row, p.seq_k, bits, full)
                                               : scan_strided(p, row, bits, full);
      }
    });
  }

  bool active() const { return p_ != nullptr; }
  RowRange range(int64_t b, int64_t h, int64_t i) const { return ranges_[cell(b, h, i)]; }
  bool sees_tile(int64_t b, int64_t h, int64_t i, int64_t tile) const {
    return ((bits_[cell(b, h, i) * words_ + tile / 64] >> (tile % 64)) & 1) != 0;
  }
  // Whether the row sees every key of the tile.
  bool full_tile(int64_t b, int64_t h, int64_t i, int64_t tile) const {
    return ((full_[cell(b, h, i) * words_ + tile / 64] >> (tile % 64)) & 1) != 0;
  }

 private:
  static int64_t extent_b(const Params& p) { return p.mask_batch_stride == 0 ? 1 : p.batch; }
  static int64_t extent_h(const Params& p) { return p.mask_head_stride == 0 ? 1 : p.heads_q; }
  static int64_t words_per_row(const Params& p, int64_t block_k) { return (p.seq_k / block_k + 64) / 64; }
  int64_t cell(int64_t b, int64_t h, int64_t i) const {
    return ((eb_ == 1 ? 0 : b) * eh_ + (eh_ == 1 ? 0 : h)) * p_->seq_q + i;
  }

  void set_tile(uint64_t* bits, int64_t tile) const { bits[tile / 64] |= uint64_t{1} << (tile % 64); }

  // A contiguous row of n mask bytes, a tile at a time: whether any byte is set is an OR of 8-byte words
  // (vectorised by the compiler); only the first and last tiles that have one are searched byte by byte.
  RowRange scan_contiguous(const uint8_t* row, int64_t n, uint64_t* bits, uint64_t* full) const {
    int64_t first = -1, last = -1;
    for (int64_t t = 0; t * block_k_ < n; ++t) {
      const int64_t j0 = t * block_k_, j1 = std::min(n, j0 + block_k_);
      if (!any_set(row + j0, j1 - j0)) continue;
      set_tile(bits, t);
      if (all_set(row + j0, j1 - j0)) set_tile(full, t);
      if (first < 0) first = t;
      last = t;
    }
    if (first < 0) return {0, 0};
    int64_t lo = first * block_k_, hi = std::min(n, (last + 1) * block_k_);
    while (row[lo] == 0) ++lo;
    while (row[hi - 1] == 0) --hi;
    return {lo, hi};
  }

  static bool any_set(const uint8_t* p, int64_t n) {
    uint64_t acc = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      uint64_t w;
      std::memcpy(&w, p + j, 8);
      acc |= w;
    }
    for (; j < n; ++j) acc |= p[j];
    return acc != 0;
  }

  // No byte is zero: per 8-byte word, (w - 0x01..01) & ~w & 0x80..80 is nonzero exactly when w has a zero
  // byte.
  static bool all_set(const uint8_t* p, int64_t n) {
    constexpr uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    uint64_t zero = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      uint64_t w;
      std::memcpy(&w, p + j, 8);
      zero |= (w - kOnes) & ~w & kHighs;
    }
    for (; j < n; ++j) zero |= p[j] == 0;
    return zero == 0;
  }

  RowRange scan_strided(const Params& p, const uint8_t* row, uint64_t* bits, uint64_t* full) const {
    if (p.mask_key_stride == 0) {  // broadcast over the keys: all or nothing
      if (row[0] == 0 || p.seq_k == 0) return {0, 0};
      for (int64_t t = 0; t * block_k_ < p.seq_k; ++t) set_tile(bits, t), set_tile(full, t);
      return {0, p.seq_k};
    }
    int64_t lo = p.seq_k, hi = 0;
    for (int64_t t = 0; t * block_k_ < p.seq_k; ++t) {
      const int64_t j0 = t * block_k_, j1 = std::min(p.seq_k, j0 + block_k_);
      int64_t count = 0;
      for (int64_t j = j0; j < j1; ++j) {
        if (row[j * p.mask_key_stride] == 0) continue;
        lo = std::min(lo, j);
        hi = j + 1;
        ++count;
      }
      if (count > 0) set_tile(bits, t);
      if (count == j1 - j0) set_tile(full, t);
    }
    return lo < hi ? RowRange{lo, hi} : RowRange{0, 0};
  }

  const Params* p_ = nullptr;
  int64_t block_k_ = 0, eb_ = 0, eh_ = 0, words_ = 0;
  RowRange* ranges_ = nullptr;
  uint64_t* bits_ = nullptr;  // per cell, words_ words: the row sees some key of tile t (bit t)
  uint64_t* full_ = nullptr;  // ... every key of tile t
};

// The keys row i of sequence b, head h, may see: the window range narrowed by the mask's.
inline RowRange visible_range(const Geometry& geo, const MaskSummary& mask, int64_t b, int64_t h, int64_t i) {
  RowRange r = geo.window(b, i);
  if (mask.active() && r.lo < r.hi) {
    const RowRange m = mask.range(b, h, i);
    r.lo = std::max(r.lo, m.lo);
    r.hi = std::max(r.lo, std::min(r.hi, m.hi));
  }
  return r;
}

// Bytes per element of a dtype.
inline int64_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat64:
      return 8;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    default:
      return 4;
  }
}

// The bias element at element offset `at`, converted to double.
inline double bias_elem(const Params& p, int64_t at) {
  switch (p.bias_dtype) {
    case DType::kFloat64:
      return load_elem<double>(p.bias, at);
    case DType::kFloat16:
      return to_float(load_elem<Half>(p.bias, at));
    case DType::kBFloat16:
      return to_float(load_elem<BFloat16>(p.bias, at));
    default:
      return load_elem<float>(p.bias, at);
  }
}

// x as L, a finite x beyond L's range saturating at L's largest finite value instead of becoming infinite:
// only -inf masks a key, so a float64 bias of finfo.min on float32 inputs, and the LSE of a row of such
// scores, stay finite.
template <class L, class X>
inline L saturate(X x) {
  constexpr X kBig = static_cast<X>(std::numeric_limits<L>::max());
  return static_cast<L>(std::isinf(x) ? x : std::clamp(x, -kBig, kBig));
}

// Element (b, h, i, j) of the bias, converted to double.
inline double bias_at(const Params& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  return bias_elem(p, b * p.bias_batch_stride + h * p.bias_head_stride + i * p.bias_seq_stride + j * p.bias_key_stride);
}

inline double alibi_slope(const Params& p, int64_t b, int64_t h) {
  return p.alibi_slopes[b * p.alibi_batch_stride + h * p.alibi_head_stride];
}

}  // namespace tileattn::detail

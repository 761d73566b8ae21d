// The tensor-core kernel: float16 and bfloat16, FlashAttention-2's forward on mma.sync m16n8k16.
//
// A block of 4 warps takes kBlockM query rows of one (batch, head): 128 for head dims <= 128 (each warp
// owns 32 rows, two m16 tiles, so every K and V fragment read from shared memory feeds two MMAs), 64 for
// larger ones (16 rows per warp: registers). Q (kBlockM x kHD), and K and V tiles (kBlockN x kHD each, two
// buffers) live in shared memory, rows split in 16-byte chunks whose index is XORed with (row % 8) so that
// ldmatrix reads are conflict-free. Tiles are loaded with cp.async (16-byte copies, global -> shared, no
// registers) one tile ahead of the compute: while a warp multiplies tile t, tile t + 1 is in flight. Per
// tile, per warp:
//   S = Q K^T               ldmatrix.x4 fragments of Q and K, mma.sync into float32 (32 x kBlockN)
//   mask                    only in tiles some row of the block sees in part (its window / length /
//                           causal edge): hidden keys -> -inf (selected); every other tile is "full"
//   m' = max(m, c rowmax(S)), c = scale log2(e) > 0; the row's 4 threads combine with two shuffles
//   P = 2^(S c - m') (one FFMA and ex2; |m'| > 2^20: the product rounded first);  l = 2^(m - m') l +
//                           rowsum(P);  O = 2^(m - m') O, skipped when no row of the warp has a new maximum
//   O += P V                P re-packed from the S accumulators into A fragments (no shared memory),
//                           V fragments by ldmatrix.trans
// and at the end out = O / l, lse = (m + log2 l) ln 2. Dims beyond D / Dv are zero-filled in shared
// memory, so any D, Dv <= kHD work; rows and keys past the ends are zero and masked. Loads fall back to
// element-wise reads for strided or misaligned arrays (dim stride != 1, or rows not 16-byte aligned).
// Blocks run last rows first (under a causal mask they see the most keys: the long blocks start early).
// Memory traffic: Q once, K and V once per kBlockM query rows.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernel_params.cuh"

namespace tileattn::cuda {

constexpr int kMmaWarps = 4;

// m16 tiles of query rows per warp, rows per block, keys per tile.
template <int kHD>
__host__ __device__ constexpr int mma_tiles_m() {
  return kHD <= 128 ? 2 : 1;
}
template <int kHD>
__host__ __device__ constexpr int mma_block_m() {
  return 16 * kMmaWarps * mma_tiles_m<kHD>();
}
template <int kHD>
__host__ __device__ constexpr int mma_block_n() {
  return kHD <= 128 ? 64 : 32;
}

// Whether the P rows of the rare exact path (see "NaN" below), [kBlockM][kBlockN], fit in the K tile
// being processed, which is free once S = Q K^T is computed; else they get their own region.
template <int kHD>
__host__ __device__ constexpr bool mma_p_in_k() {
  return mma_block_m<kHD>() <= kHD;
}

template <class T, int kHD>
constexpr size_t mma_smem_bytes() {
  constexpr size_t kBN = mma_block_n<kHD>();
  // Q, two K and two V tiles, P of the exact path unless it lives in a K tile, and each row's visible
  // key range (two int64).
  return sizeof(T) * (static_cast<size_t>(kHD) * (mma_block_m<kHD>() + 4 * kBN) +
                      (mma_p_in_k<kHD>() ? 0 : static_cast<size_t>(mma_block_m<kHD>()) * kBN)) +
         2 * sizeof(int64_t) * mma_block_m<kHD>();
}

// Element offset of (row, col) in a [rows][kHD] shared tile with 16-byte chunks swizzled by row % 8.
template <int kHD>
__device__ __forceinline__ int swz(int row, int col) {
  return row * kHD + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7));
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}
// The same, copying `bytes` (0 or 16) and zero-filling the rest: 0 writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16_zfill(void* smem, const void* gmem, uint32_t bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Shared-memory byte offsets of this lane's ldmatrix row in a swizzled [rows][kHD] tile, for the four
// chunk pairs of an aligned group of 8 chunks: row `row` (row % 8 == lane % 8 for every fragment below),
// chunk 2u + bit -> physical chunk (2u + bit) ^ (row % 8). A fragment at chunk 8g + 2u of row row + 8x
// then sits at offsets[u] + (8x kHD + 64 g) * sizeof(T), a compile-time displacement.
template <class T, int kHD>
struct LaneOffsets {
  uint32_t at[4];
  __device__ LaneOffsets(int row, int bit) {
#pragma unroll
    for (int u = 0; u < 4; ++u) at[u] = static_cast<uint32_t>(sizeof(T) * swz<kHD>(row, (2 * u + bit) * 8));
  }
};

// d += a b for one m16n8k16 tile, float32 accumulators.
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as one register of two 16-bit values (x in the low half).
template <class T>
__device__ __forceinline__ uint32_t pack2(float x, float y);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float x, float y) {
  const __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<const uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float x, float y) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// 2^x on the special-function unit (relative error ~2^-22, results below 2^-126 flush to 0): P is
// rounded to 16 bits next.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Loads rows [0, kRows) of a (rows, cols) slice of global memory at `base` (row stride `rs`, column
// stride `cs`, elements) into a swizzled [kRows][kHD] shared tile; rows >= nrows and columns >= ncols
// become 0. 16-byte cp.async where the chunk is whole, contiguous and aligned.
template <class T, int kHD, int kRows>
__device__ __forceinline__ void load_tile_general(T* tile, const T* base, int64_t nrows, int64_t ncols, int64_t rs,
                                                  int64_t cs) {
  constexpr int kChunks = kHD / 8;
  const bool vec = cs == 1 && (rs % 8) == 0 && (reinterpret_cast<uintptr_t>(base) % 16) == 0;
  for (int x = threadIdx.x; x < kRows * kChunks; x += kMmaWarps * 32) {
    const int r = x / kChunks, c = x % kChunks;
    T* dst = tile + swz<kHD>(r, c * 8);
    const int64_t col = static_cast<int64_t>(c) * 8;
    if (r < nrows && vec && col + 8 <= ncols) {
      cp_async16(dst, base + r * rs + col);
    } else {
      alignas(16) T vals[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        vals[e] = (r < nrows && col + e < ncols) ? base[r * rs + (col + e) * cs] : from_float<T>(0.0f);
      }
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(vals);
    }
  }
}

// The copies of [kRows][kHD] tiles of one operand (rows of `rs` elements, columns of stride `cs`, `ncols`
// of them). Each thread copies the same 16-byte chunk column of rows r0, r0 + kStep, ...: its shared and
// global offsets are set once, so a tile whose rows all exist and are contiguous, 16-byte aligned and a
// multiple of 8 elements long (`fast`) costs one cp.async per chunk and no index arithmetic (chunks past
// ncols are zero-filled by the copy itself). Any other tile goes through load_tile_general.
template <class T, int kHD, int kRows>
struct TileCopy {
  static constexpr int kChunks = kHD / 8;
  static constexpr int kStep = kMmaWarps * 32 / kChunks;  // rows between a thread's chunks
  static_assert(kRows % kStep == 0, "whole rows of chunks per pass");
  int64_t src, rs, cs, ncols;
  int dst0, dst1;  // chunk i lands at dst(i % 2) + i kStep kHD (the swizzle has period 8 rows, kStep is 4, 8 or 16)
  uint32_t bytes;  // 16 where this thread's chunk column holds data (< ncols), else 0
  bool fast;
  __device__ TileCopy(const T* base, int64_t rs_, int64_t cs_, int64_t ncols_) : rs(rs_), cs(cs_), ncols(ncols_) {
    const int r0 = threadIdx.x / kChunks, c = threadIdx.x % kChunks;
    bytes = c * 8 < ncols ? 16 : 0;
    src = bytes ? r0 * rs + c * 8 : 0;  // a zero-filled chunk reads nothing; its address stays in bounds
    dst0 = swz<kHD>(r0, c * 8);
    dst1 = swz<kHD>(r0 + kStep, c * 8) - kStep * kHD;
    fast = cs == 1 && ncols % 8 == 0 && (rs % 8) == 0 && (reinterpret_cast<uintptr_t>(base) % 16) == 0;
  }
  // Rows [0, kRows) of the slice starting at `start` (nrows of them exist) into `tile`.
  __device__ __forceinline__ void operator()(T* tile, const T* start, int64_t nrows) const {
    if (fast && nrows >= kRows) {
      const T* from = start + src;
#pragma unroll
      for (int i = 0; i < kRows / kStep; ++i) {
        cp_async16_zfill(tile + (i % 2 ? dst1 : dst0) + i * kStep * kHD, from + (bytes ? i * kStep * rs : 0), bytes);
      }
    } else {
      load_tile_general<T, kHD, kRows>(tile, start, nrows, ncols, rs, cs);
    }
  }
};

// Whether this thread's share of a shared tile of kElems 16-bit values holds an inf or NaN (all exponent
// bits set), read 16 bytes at a time.
template <class T, int kElems>
__device__ __forceinline__ bool has_nonfinite(const T* tile) {
  constexpr uint32_t kExp = std::is_same_v<T, __half> ? 0x7c00u : 0x7f80u;
  constexpr uint32_t kExp2 = kExp | (kExp << 16);
  const uint4* words = reinterpret_cast<const uint4*>(tile);
  bool bad = false;
  for (int x = threadIdx.x; x < kElems / 8; x += kMmaWarps * 32) {
    const uint4 w = words[x];
    for (const uint32_t u : {w.x, w.y, w.z, w.w}) {
      const uint32_t e = u & kExp2;
      bad = bad || (e & 0xffffu) == kExp || (e >> 16) == kExp;
    }
  }
  return bad;
}

// The row (0: gid, 1: gid + 8) of accumulator element e of an m16n8 fragment.
__device__ __forceinline__ constexpr int r_of(int e) { return e / 2; }

// P = 2^(S c - m') in place over a warp's score fragments, and the rows' sums into tsum (two partial
// sums per row: short dependency chains). kRounded: the product S c rounded before the subtraction
// (rows with huge maxima, see the caller); else one FFMA. Masked scores are -inf: 2^-inf = 0.
template <bool kRounded, int kMT, int kNB>
__device__ __forceinline__ void exponentiate(float (&s)[kMT][kNB][4], float c, const float (&m_use)[kMT][2],
                                             float (&tsum)[kMT][2][2]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int n = 0; n < kNB; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float m = m_use[mt][r_of(e)];
        const float pe = fast_exp2(kRounded ? __fmul_rn(s[mt][n][e], c) - m : fmaf(s[mt][n][e], c, -m));
        s[mt][n][e] = pe;
        tsum[mt][r_of(e)][e % 2] += pe;
      }
    }
  }
}

// Row `row`'s visible keys [lo, hi) (in `ranges`) relative to the tile starting at key j0, clamped to
// [0, kBN].
template <int kBN>
__device__ __forceinline__ void tile_window(const int64_t* ranges, int row, int64_t j0, int& lo, int& hi) {
  const int64_t l = ranges[2 * row] - j0, h = ranges[2 * row + 1] - j0;
  lo = static_cast<int>(l < 0 ? 0 : l > kBN ? kBN : l);
  hi = static_cast<int>(h < 0 ? 0 : h > kBN ? kBN : h);
}

template <class T, int kHD>
__global__ void __launch_bounds__(kMmaWarps * 32) mma_attention_kernel(KernelParams p) {
  constexpr int kBN = mma_block_n<kHD>();
  constexpr int kMT = mma_tiles_m<kHD>();
  constexpr int kBM = mma_block_m<kHD>();
  constexpr int kNB = kBN / 8;  // n8 blocks of S per m16 tile
  constexpr int kDB = kHD / 8;  // n8 blocks of O per m16 tile
  static_assert(kBM <= kMmaWarps * 32, "one thread per row sets up the row ranges");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [kBM][kHD]
  T* ks = qs + kBM * kHD;                   // [2][kBN][kHD]
  T* vs = ks + 2 * kBN * kHD;               // [2][kBN][kHD]
  T* p_own = vs + 2 * kBN * kHD;            // [kBM][kBN], exact path only, unless mma_p_in_k
  int64_t* ranges = reinterpret_cast<int64_t*>(p_own + (mma_p_in_k<kHD>() ? 0 : kBM * kBN));  // [kBM][2]
  // The union of the rows' visible key ranges [tile_lo, tile_hi), and the keys every row that sees any
  // sees [full_lo, full_hi): tiles inside it need no mask.
  __shared__ unsigned long long tile_lo, tile_hi, full_lo, full_hi;

  const int64_t b = blockIdx.z, h = blockIdx.y, g = h / p.group;
  const int64_t row_base = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBM;
  const int64_t rows_b = p.rows(b);
  if (row_base >= rows_b) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tid = lane % 4;  // mma fragment coordinates: row group, column pair
  const int wrow = warp * 16 * kMT;           // the warp's first row in the block

  if (threadIdx.x == 0) {
    tile_lo = INT64_MAX;
    tile_hi = 0;
    full_lo = 0;
    full_hi = INT64_MAX;
  }
  __syncthreads();
  if (threadIdx.x < kBM) {
    int64_t lo = 0, hi = 0;
    if (row_base + threadIdx.x < rows_b) p.window(b, row_base + threadIdx.x, lo, hi);
    ranges[2 * threadIdx.x] = lo;
    ranges[2 * threadIdx.x + 1] = hi;
    if (hi > lo) {
      atomicMin(&tile_lo, static_cast<unsigned long long>(lo));
      atomicMax(&tile_hi, static_cast<unsigned long long>(hi));
      atomicMax(&full_lo, static_cast<unsigned long long>(lo));
      atomicMin(&full_hi, static_cast<unsigned long long>(hi));
    }
  }

  const T* qg = static_cast<const T*>(p.q) + p.q_at(b, h, 0);
  const T* kg = static_cast<const T*>(p.k) + p.k_at(b, g);
  const T* vg = static_cast<const T*>(p.v) + p.v_at(b, g);
  load_tile_general<T, kHD, kBM>(qs, qg + row_base * p.q_ss, rows_b - row_base, p.head_dim, p.q_ss, p.q_ds);
  const TileCopy<T, kHD, kBN> copy_k(kg, p.k_ss, p.k_ds, p.head_dim), copy_v(vg, p.v_ss, p.v_ds, p.head_dim_v);
  __syncthreads();  // tile_lo / tile_hi, ranges
  const int64_t j_begin = static_cast<int64_t>(tile_lo), j_end = static_cast<int64_t>(tile_hi);
  // Key tiles [t_begin, t_end) to visit, of which [tf_begin, tf_end) are full: every row that sees any
  // key sees all of the tile's. (Rows that see none output 0 whatever their accumulators hold.)
  const int t_begin = j_end > j_begin ? static_cast<int>(j_begin / kBN) : 0;
  const int t_end = j_end > j_begin ? static_cast<int>((j_end + kBN - 1) / kBN) : 0;
  const int64_t f_lo = static_cast<int64_t>(full_lo), f_hi = static_cast<int64_t>(full_hi);
  const int tf_begin = static_cast<int>((f_lo + kBN - 1) / kBN);
  const int tf_end = f_hi > f_lo ? static_cast<int>(min(f_hi / kBN, static_cast<int64_t>(t_end))) : 0;
  const int64_t nkeys = j_end;  // keys past the union are zero-filled (and masked)
  if (t_begin < t_end) {
    const int64_t j1 = static_cast<int64_t>(t_begin) * kBN;
    copy_k(ks, kg + j1 * p.k_ss, nkeys - j1);
    copy_v(vs, vg + j1 * p.v_ss, nkeys - j1);
  }
  cp_async_commit();

  // ldmatrix rows of this lane: Q rows wrow + lane % 16 at dim chunk 2kk + lane / 16; K rows
  // (lane / 16) 8 + lane % 8 at chunk 2kk + (lane / 8) % 2; V rows lane % 16 at chunk d + lane / 16.
  const uint32_t q_base = smem_u32(qs);
  const LaneOffsets<T, kHD> q_off(wrow + lane % 16, lane / 16);
  const LaneOffsets<T, kHD> k_off((lane / 16) * 8 + lane % 8, (lane / 8) % 2);
  const LaneOffsets<T, kHD> v_off(lane % 16, lane / 16);
  const float c = static_cast<float>(p.scale * 1.4426950408889634);  // scale * log2(e): finite, > 0 (launch)
  // Row (mt, r) of this thread: block row wrow + 16 mt + gid + 8 r.
  float m[kMT][2], l[kMT][2];
  float o[kMT][kDB][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
    for (int d = 0; d < kDB; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
  }

  for (int t = t_begin; t < t_end; ++t) {
    const int buf = (t - t_begin) & 1;
    if (t + 1 < t_end) {  // next tile into the other buffer, in flight during this one
      const int64_t j1 = static_cast<int64_t>(t + 1) * kBN;
      copy_k(ks + (buf ^ 1) * kBN * kHD, kg + j1 * p.k_ss, nkeys - j1);
      copy_v(vs + (buf ^ 1) * kBN * kHD, vg + j1 * p.v_ss, nkeys - j1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* kt = ks + buf * kBN * kHD;
    const T* vt = vs + buf * kBN * kHD;
    const int64_t j0 = static_cast<int64_t>(t) * kBN;
    const bool full = t >= tf_begin && t < tf_end;  // block-uniform
    // NaN: a key a row cannot see must not reach it, but the tensor cores compute 0 * NaN = NaN. In a
    // tile that is not full, a non-finite V element sends P V through an exact path that skips hidden
    // keys. Elsewhere every row sees every key of the tile, or the tile holds only finite values.
    bool exact = false;
    if (!full) exact = __syncthreads_or(has_nonfinite<T, kBN * kHD>(vt));

    // S = Q K^T (32 x kBN per warp)
    float s[kMT][kNB][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int n = 0; n < kNB; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
    }
    const uint32_t k_base = smem_u32(kt), v_base = smem_u32(vt);
#pragma unroll
    for (int kk = 0; kk < kHD / 16; ++kk) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {  // rows wrow + 16 mt + (lane % 16), dims 16kk + 8 (lane / 16)
        ldmatrix_x4(a[mt], q_base + q_off.at[kk % 4] + sizeof(T) * (mt * 16 * kHD + (kk / 4) * 64));
      }
#pragma unroll
      for (int n = 0; n < kNB; n += 2) {
        uint32_t bk[4];  // keys 8n .. 8n+15, dims 16kk .. 16kk+15
        ldmatrix_x4(bk, k_base + k_off.at[kk % 4] + sizeof(T) * (n * 8 * kHD + (kk / 4) * 64));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma16816<T>(s[mt][n], a[mt], bk[0], bk[1]);
          mma16816<T>(s[mt][n + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // Where the tile is not full, mask by range (selection: hidden keys -> -inf). One branch around the
    // pass: a test inside the unrolled loops would make the compiler keep a copy of `full` per element.
    if (!full) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        int lo[2], hi[2];  // the row's visible keys relative to j0, clamped to [0, kBN]
#pragma unroll
        for (int r = 0; r < 2; ++r) tile_window<kBN>(ranges, wrow + mt * 16 + gid + 8 * r, j0, lo[r], hi[r]);
#pragma unroll
        for (int n = 0; n < kNB; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = n * 8 + tid * 2 + (e % 2);
            if (!(j >= lo[e / 2] && j < hi[e / 2])) s[mt][n][e] = -INFINITY;
          }
        }
      }
    }
    // Row maxima of the raw scores; c > 0, so their products with c are the maxima in base 2.
    // (Four partial maxima per row: short dependency chains.)
    float mx[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float part[2][4];
#pragma unroll
      for (int r = 0; r < 2; ++r) part[r][0] = part[r][1] = part[r][2] = part[r][3] = -INFINITY;
#pragma unroll
      for (int n = 0; n < kNB; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) part[e / 2][(n % 2) * 2 + e % 2] = fmaxf(part[e / 2][(n % 2) * 2 + e % 2], s[mt][n][e]);
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) mx[mt][r] = fmaxf(fmaxf(part[r][0], part[r][1]), fmaxf(part[r][2], part[r][3]));
    }
    float alpha[kMT][2], m_use[kMT][2];
    bool rescale = false;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float x = mx[mt][r];
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        const float m_new = fmaxf(m[mt][r], x * c);
        m_use[mt][r] = m_new == -INFINITY ? 0.f : m_new;
        alpha[mt][r] = m[mt][r] == -INFINITY ? 0.f : fast_exp2(m[mt][r] - m_use[mt][r]);  // O and l rescale
        rescale = rescale || alpha[mt][r] != 1.f;
        m[mt][r] = m_new;
        l[mt][r] *= alpha[mt][r];
      }
    }
    // P = 2^(S c - m') (one FFMA into the exponent), row sums. m' is the rounded product of the row
    // maximum and c, the FFMA's product is exact: the row's largest key gets 2^(the rounding error),
    // which cancels in O / l unless it is large enough to overflow or vanish in 16 bits (|m'| >= 2^28
    // in float16). A warp with a row beyond |m'| > 2^20 (the CPU's threshold for its own fallback) takes
    // the rounded product first, which gives that key exactly 1.
    float tsum[kMT][2][2];  // the tile's row sums, two partial sums per row (short dependency chains)
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) tsum[mt][0][0] = tsum[mt][0][1] = tsum[mt][1][0] = tsum[mt][1][1] = 0.f;
    bool huge = false;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) huge = huge || fabsf(m_use[mt][0]) > 0x1p20f || fabsf(m_use[mt][1]) > 0x1p20f;
    if (__any_sync(0xffffffffu, huge)) {
      exponentiate<true>(s, c, m_use, tsum);
    } else {
      exponentiate<false>(s, c, m_use, tsum);
    }
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      l[mt][0] += tsum[mt][0][0] + tsum[mt][0][1];
      l[mt][1] += tsum[mt][1][0] + tsum[mt][1][1];
    }
    // O *= alpha, skipped when no row of the warp has a new maximum (alpha = 1 for all: the common case
    // once the maxima settle).
    if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int d = 0; d < kDB; ++d) {
          o[mt][d][0] *= alpha[mt][0];
          o[mt][d][1] *= alpha[mt][0];
          o[mt][d][2] *= alpha[mt][1];
          o[mt][d][3] *= alpha[mt][1];
        }
      }
    }
    if (exact) {
      // O += sum over visible keys j of P_j V_j, in float, from P (rounded to T, as the tensor cores
      // take it) in shared memory; hidden keys are skipped (an underflowed weight is not).
      T* ps = p_own;
      if constexpr (mma_p_in_k<kHD>()) {
        ps = ks + buf * kBN * kHD;
        __syncthreads();  // every warp is done with this K tile (`exact` is block-uniform)
      }
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int n = 0; n < kNB; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            ps[(wrow + mt * 16 + gid + 8 * (e / 2)) * kBN + n * 8 + tid * 2 + (e % 2)] = from_float<T>(s[mt][n][e]);
          }
        }
      }
      __syncwarp();
      int lo[kMT][2], hi[kMT][2];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) tile_window<kBN>(ranges, wrow + mt * 16 + gid + 8 * r, j0, lo[mt][r], hi[mt][r]);
      }
#pragma unroll 1
      for (int j = 0; j < kBN; ++j) {
        float pj[kMT][2];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const bool seen = j >= lo[mt][r] && j < hi[mt][r];
            // NaN marks a hidden key (P itself is never NaN here: a NaN score makes the row NaN via l)
            pj[mt][r] = seen ? static_cast<float>(ps[(wrow + mt * 16 + gid + 8 * r) * kBN + j]) : NAN;
          }
        }
#pragma unroll
        for (int d = 0; d < kDB; ++d) {
          const T* vj = vt + swz<kHD>(j, d * 8 + tid * 2);  // dims 8d + 2tid, +1: one 16-byte chunk
          const float v0 = static_cast<float>(vj[0]), v1 = static_cast<float>(vj[1]);
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              const bool seen = pj[mt][r] == pj[mt][r];
              o[mt][d][2 * r] += seen ? pj[mt][r] * v0 : 0.f;
              o[mt][d][2 * r + 1] += seen ? pj[mt][r] * v1 : 0.f;
            }
          }
        }
      }
      __syncwarp();
    } else {
      // O += P V: the S accumulators of key blocks 2kk, 2kk+1 are the A fragment of keys 16kk .. 16kk+15.
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t a[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          a[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          a[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          a[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          a[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int d = 0; d < kDB; d += 2) {
          uint32_t bv[4];  // keys 16kk .. 16kk+15, dims 8d .. 8d+15 (transposed)
          ldmatrix_x4_trans(bv, v_base + v_off.at[(d / 2) % 4] + sizeof(T) * (kk * 16 * kHD + (d / 8) * 64));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma16816<T>(o[mt][d], a[mt], bv[0], bv[1]);
            mma16816<T>(o[mt][d + 1], a[mt], bv[2], bv[3]);
          }
        }
      }
    }
    __syncthreads();  // this buffer is refilled two tiles on
  }
  cp_async_wait<0>();  // blocks that saw no key still have their Q copies in flight

  // out = O / l, lse = (m + log2 l) ln 2; the row's 4 threads add their partial sums first. A row that
  // sees no key outputs 0 and LSE -inf.
  T* og = static_cast<T*>(p.out);
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = l[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int lrow = wrow + mt * 16 + gid + 8 * r;
      const int64_t row = row_base + lrow;
      if (row >= rows_b) continue;
      const bool empty = ranges[2 * lrow + 1] <= ranges[2 * lrow] || sum == 0.f;
      const float inv = empty ? 0.f : 1.f / sum;
      T* orow = og + p.out_at(b, h, row);
      const bool pairs = p.o_ds == 1 && (reinterpret_cast<uintptr_t>(orow) % 4) == 0;
#pragma unroll
      for (int d = 0; d < kDB; ++d) {
        const int64_t col = d * 8 + tid * 2;
        const float x0 = empty ? 0.f : o[mt][d][2 * r] * inv, x1 = empty ? 0.f : o[mt][d][2 * r + 1] * inv;
        if (pairs && col + 1 < p.head_dim_v) {
          *reinterpret_cast<uint32_t*>(orow + col) = pack2<T>(x0, x1);
        } else {
          if (col < p.head_dim_v) orow[col * p.o_ds] = from_float<T>(x0);
          if (col + 1 < p.head_dim_v) orow[(col + 1) * p.o_ds] = from_float<T>(x1);
        }
      }
      if (p.lse != nullptr && tid == 0) {
        static_cast<float*>(p.lse)[p.lse_at(b, h, row)] =
            empty ? -INFINITY : (m[mt][r] + log2f(sum)) * 0.6931471805599453f;
      }
    }
  }
}

}  // namespace tileattn::cuda

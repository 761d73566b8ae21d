// The tensor-core kernel: float16 and bfloat16, FlashAttention-2's forward on mma.sync m16n8k16.
//
// A block of 4 warps takes kBlockM = 64 query rows of one (batch, head); warp w owns rows 16w .. 16w+15.
// Q (64 x kHD), and K and V tiles (kBlockN x kHD each, two buffers) live in shared memory, rows split in
// 16-byte chunks whose index is XORed with (row % 8) so that ldmatrix reads are conflict-free. Tiles are
// loaded with cp.async (16-byte copies, global -> shared, no registers) one tile ahead of the compute:
// while a warp multiplies tile t, tile t + 1 is in flight. Per tile, per warp:
//   S = Q K^T               ldmatrix.x4 fragments of Q and K, mma.sync into float32 (16 x kBlockN)
//   mask                    keys outside the row's window / length / causal range -> -inf (selected)
//   m' = max(m, rowmax(S))  the row's 4 threads combine with two shuffles
//   P = 2^(S c - m'), c = scale log2(e);  l = 2^(m - m') l + rowsum(P);  O = 2^(m - m') O
//   O += P V                P re-packed from the S accumulators into A fragments (no shared memory),
//                           V fragments by ldmatrix.trans
// and at the end out = O / l, lse = (m + log2 l) ln 2. Dims beyond D / Dv are zero-filled in shared
// memory, so any D, Dv <= kHD work; rows and keys past the ends are zero and masked. Loads fall back to
// element-wise reads for strided or misaligned arrays (dim stride != 1, or rows not 16-byte aligned).
// Memory traffic: Q once, K and V once per 64 query rows.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernel_params.cuh"

namespace tileattn::cuda {

constexpr int kMmaWarps = 4;
constexpr int kMmaBlockM = 16 * kMmaWarps;

template <int kHD>
constexpr int mma_block_n() {
  return kHD <= 128 ? 64 : 32;
}

template <class T, int kHD>
constexpr size_t mma_smem_bytes() {
  // Q, two K and two V tiles, and the float P rows of the rare exact path (see "NaN" below).
  return sizeof(T) * static_cast<size_t>(kHD) * (kMmaBlockM + 4 * mma_block_n<kHD>()) +
         sizeof(float) * kMmaBlockM * mma_block_n<kHD>();
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
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

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

// Loads rows [row0, row0 + kRows) of a (rows, cols) slice of global memory at `base` (row stride
// `rs`, column stride `cs`, elements) into a swizzled [kRows][kHD] shared tile; rows >= nrows and
// columns >= ncols become 0. 16-byte cp.async where the chunk is whole, contiguous and aligned.
template <class T, int kHD, int kRows>
__device__ __forceinline__ void load_tile(T* tile, const T* base, int64_t row0, int64_t nrows, int64_t ncols,
                                          int64_t rs, int64_t cs) {
  constexpr int kChunks = kHD / 8;
  const bool vec = cs == 1 && (rs % 8) == 0 && (reinterpret_cast<uintptr_t>(base) % 16) == 0;
  for (int x = threadIdx.x; x < kRows * kChunks; x += kMmaWarps * 32) {
    const int r = x / kChunks, c = x % kChunks;
    T* dst = tile + swz<kHD>(r, c * 8);
    const int64_t row = row0 + r;
    const int64_t col = static_cast<int64_t>(c) * 8;
    if (row < nrows && vec && col + 8 <= ncols) {
      cp_async16(dst, base + row * rs + col);
    } else {
      alignas(16) T vals[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        vals[e] = (row < nrows && col + e < ncols) ? base[row * rs + (col + e) * cs] : from_float<T>(0.0f);
      }
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(vals);
    }
  }
}

// Whether some key of the tile [j0, j0 + kBN) is hidden from one of this thread's rows that sees any key
// (a row that sees none outputs 0 whatever its accumulators hold).
__device__ __forceinline__ bool partly_hidden(const int64_t (&lo)[2], const int64_t (&hi)[2], int64_t j0, int kBN) {
  bool partial = false;
#pragma unroll
  for (int r = 0; r < 2; ++r) partial = partial || (hi[r] > lo[r] && (lo[r] > j0 || hi[r] < j0 + kBN));
  return partial;
}

template <class T, int kHD>
__global__ void __launch_bounds__(kMmaWarps * 32) mma_attention_kernel(KernelParams p) {
  constexpr int kBN = mma_block_n<kHD>();
  constexpr int kNB = kBN / 8;    // n8 blocks of S per warp
  constexpr int kDB = kHD / 8;    // n8 blocks of O per warp
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [kBlockM][kHD]
  T* ks = qs + kMmaBlockM * kHD;            // [2][kBN][kHD]
  T* vs = ks + 2 * kBN * kHD;               // [2][kBN][kHD]
  float* ps = reinterpret_cast<float*>(vs + 2 * kBN * kHD);  // [kBlockM][kBN], exact path only
  __shared__ unsigned long long tile_lo, tile_hi;

  const int64_t b = blockIdx.z, h = blockIdx.y, g = h / p.group;
  const int64_t row_base = static_cast<int64_t>(blockIdx.x) * kMmaBlockM;
  const int64_t rows_b = p.rows(b);
  if (row_base >= rows_b) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tid = lane % 4;  // mma fragment coordinates: row group, column pair

  if (threadIdx.x == 0) {
    tile_lo = INT64_MAX;
    tile_hi = 0;
  }
  __syncthreads();
  if (threadIdx.x < kMmaBlockM && row_base + threadIdx.x < rows_b) {
    widen_key_range(p, b, row_base + threadIdx.x, &tile_lo, &tile_hi);
  }
  // This thread's two rows (gid and gid + 8 of its warp) and their visible ranges.
  int64_t row[2], lo[2], hi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row[r] = row_base + warp * 16 + gid + 8 * r;
    lo[r] = hi[r] = 0;
    if (row[r] < rows_b) p.window(b, row[r], lo[r], hi[r]);
  }

  const T* qg = static_cast<const T*>(p.q) + p.q_at(b, h, 0);
  const T* kg = static_cast<const T*>(p.k) + p.k_at(b, g);
  const T* vg = static_cast<const T*>(p.v) + p.v_at(b, g);
  load_tile<T, kHD, kMmaBlockM>(qs, qg + row_base * p.q_ss, 0, rows_b - row_base, p.head_dim, p.q_ss, p.q_ds);
  __syncthreads();  // tile_lo / tile_hi
  const int64_t j_begin = static_cast<int64_t>(tile_lo), j_end = static_cast<int64_t>(tile_hi);
  const int64_t t_begin = j_end > j_begin ? j_begin / kBN : 0;
  const int64_t t_end = j_end > j_begin ? (j_end + kBN - 1) / kBN : 0;
  const int64_t nkeys = j_end;  // keys past the union are zero-filled (and masked)
  if (t_begin < t_end) {
    load_tile<T, kHD, kBN>(ks, kg + t_begin * kBN * p.k_ss, 0, nkeys - t_begin * kBN, p.head_dim, p.k_ss, p.k_ds);
    load_tile<T, kHD, kBN>(vs, vg + t_begin * kBN * p.v_ss, 0, nkeys - t_begin * kBN, p.head_dim_v, p.v_ss, p.v_ds);
  }
  cp_async_commit();

  const float c = static_cast<float>(p.scale * 1.4426950408889634);  // scale * log2(e)
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;

  for (int64_t t = t_begin; t < t_end; ++t) {
    const int buf = static_cast<int>((t - t_begin) & 1);
    if (t + 1 < t_end) {  // next tile into the other buffer, in flight during this one
      const int64_t j1 = (t + 1) * kBN;
      load_tile<T, kHD, kBN>(ks + (buf ^ 1) * kBN * kHD, kg + j1 * p.k_ss, 0, nkeys - j1, p.head_dim, p.k_ss, p.k_ds);
      load_tile<T, kHD, kBN>(vs + (buf ^ 1) * kBN * kHD, vg + j1 * p.v_ss, 0, nkeys - j1, p.head_dim_v, p.v_ss, p.v_ds);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* kt = ks + buf * kBN * kHD;
    const T* vt = vs + buf * kBN * kHD;
    // NaN: a key a row cannot see must not reach it, but the tensor cores compute 0 * NaN = NaN. In a
    // tile where the rows' ranges differ (its first or last keys are hidden from some rows) a non-finite
    // V element sends P V through an exact path that skips hidden keys. Elsewhere every row sees every
    // key of the tile, or the tile holds only finite values.
    bool exact = false;
    if (__syncthreads_or(partly_hidden(lo, hi, t * kBN, kBN))) {
      bool bad = false;
      for (int x = threadIdx.x; x < kBN * kHD; x += kMmaWarps * 32) bad = bad || !isfinite(static_cast<float>(vt[x]));
      exact = __syncthreads_or(bad);
    }

    // S = Q K^T (16 x kBN per warp)
    float s[kNB][4];
#pragma unroll
    for (int n = 0; n < kNB; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kHD / 16; ++kk) {
      uint32_t a[4];
      ldmatrix_x4(a, qs + swz<kHD>(warp * 16 + (lane % 16), kk * 16 + (lane / 16) * 8));
#pragma unroll
      for (int n = 0; n < kNB; n += 2) {
        uint32_t bk[4];  // keys 8n .. 8n+15, dims 16kk .. 16kk+15
        ldmatrix_x4(bk, kt + swz<kHD>(n * 8 + (lane / 16) * 8 + (lane % 8), kk * 16 + ((lane / 8) % 2) * 8));
        mma16816<T>(s[n], a, bk[0], bk[1]);
        mma16816<T>(s[n + 1], a, bk[2], bk[3]);
      }
    }

    // Mask by range (selection), scale into base 2, and the new row maxima.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kNB; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e / 2;
        const int64_t j = t * kBN + n * 8 + tid * 2 + (e % 2);
        const float x = (j >= lo[r] && j < hi[r]) ? s[n][e] * c : -INFINITY;
        s[n][e] = x;
        mx[r] = fmaxf(mx[r], x);
      }
    }
    float alpha[2], m_use[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      m_use[r] = m_new == -INFINITY ? 0.f : m_new;
      alpha[r] = m[r] == -INFINITY ? 0.f : exp2f(m[r] - m_use[r]);  // O and l rescale
      m[r] = m_new;
      l[r] *= alpha[r];
    }
    // P = 2^(S - m'), row sums, O *= alpha
#pragma unroll
    for (int n = 0; n < kNB; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e / 2;
        const float pe = s[n][e] == -INFINITY ? -0.f : exp2f(s[n][e] - m_use[r]);  // -0: hidden key
        s[n][e] = pe;
        l[r] += pe;
      }
    }
#pragma unroll
    for (int d = 0; d < kDB; ++d) {
      o[d][0] *= alpha[0];
      o[d][1] *= alpha[0];
      o[d][2] *= alpha[1];
      o[d][3] *= alpha[1];
    }
    if (exact) {
      // O += sum over visible keys j of P_j V_j, in float, from P in shared memory.
#pragma unroll
      for (int n = 0; n < kNB; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) ps[(warp * 16 + gid + 8 * (e / 2)) * kBN + n * 8 + tid * 2 + (e % 2)] = s[n][e];
      }
      __syncwarp();
#pragma unroll
      for (int d = 0; d < kDB; ++d) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int rr = warp * 16 + gid + 8 * (e / 2);
          const int col = d * 8 + tid * 2 + (e % 2);
          float acc = 0.f;
          for (int j = 0; j < kBN; ++j) {
            const float pj = ps[rr * kBN + j];  // -0 marks a hidden key, +0 an underflowed weight
            if (!signbit(pj)) acc += pj * static_cast<float>(vt[swz<kHD>(j, col)]);
          }
          o[d][e] += acc;
        }
      }
      __syncwarp();
    }
    // O += P V: the S accumulators of key blocks 2kk, 2kk+1 are the A fragment of keys 16kk .. 16kk+15.
    if (!exact) {
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t a[4];
        a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int d = 0; d < kDB; d += 2) {
          uint32_t bv[4];  // keys 16kk .. 16kk+15, dims 8d .. 8d+15 (transposed)
          ldmatrix_x4_trans(bv, vt + swz<kHD>(kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8, d * 8 + (lane / 16) * 8));
          mma16816<T>(o[d], a, bv[0], bv[1]);
          mma16816<T>(o[d + 1], a, bv[2], bv[3]);
        }
      }
    }
    __syncthreads();  // this buffer is refilled two tiles on
  }
  cp_async_wait<0>();  // blocks that saw no key still have their Q copies in flight

  // out = O / l, lse = (m + log2 l) ln 2; the row's 4 threads add their partial sums first.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  T* og = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= rows_b) continue;
    const bool empty = l[r] == 0.f;
    const float inv = empty ? 0.f : 1.f / l[r];
    const int64_t orow = p.out_at(b, h, row[r]);
#pragma unroll
    for (int d = 0; d < kDB; ++d) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t col = d * 8 + tid * 2 + e;
        if (col < p.head_dim_v) og[orow + col * p.o_ds] = from_float<T>(empty ? 0.f : o[d][2 * r + e] * inv);
      }
    }
    if (p.lse != nullptr && tid == 0) {
      static_cast<float*>(p.lse)[p.lse_at(b, h, row[r])] =
          empty ? -INFINITY : (m[r] + log2f(l[r])) * 0.6931471805599453f;
    }
  }
}

}  // namespace tileattn::cuda

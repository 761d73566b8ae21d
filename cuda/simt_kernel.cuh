// The CUDA-core kernel: every dtype and every option (mask, bias, ALiBi, softcap, lengths, packed
// sequences, windows), the exact semantics of cpp/src/reference_kernel.cpp with an online softmax.
//
// A block of 4 warps takes 16 query rows of one (batch, head), 4 per warp. For each tile of kKeys keys
// the block stages K and V in shared memory (rows padded by one element: conflict-free column reads),
// then each warp, for each of its rows: lane j computes s_j = scale * q . k_j and the options, the warp
// reduces the tile's max and sum with shuffles (m' = max(m, max_j s_j), l = l e^(m - m') + sum_j e^(s_j -
// m')), and lane e updates its output columns o_e = o_e e^(m - m') + sum_j e^(s_j - m') v_je. Tiles no
// row of the block can see (causal, window, lengths) are skipped. float32/16/bf16 accumulate in float,
// float64 in double; exp and tanh are the accurate library functions. Memory traffic: K and V read once
// per 16 query rows.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernel_params.cuh"

namespace tileattn::cuda {

template <class T>
struct Elem;
template <>
struct Elem<float> {
  __device__ static float load(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
  __device__ static void store(void* p, int64_t i, float x) { static_cast<float*>(p)[i] = x; }
};
template <>
struct Elem<double> {
  __device__ static double load(const void* p, int64_t i) { return static_cast<const double*>(p)[i]; }
  __device__ static void store(void* p, int64_t i, double x) { static_cast<double*>(p)[i] = x; }
};
template <>
struct Elem<__half> {
  __device__ static float load(const void* p, int64_t i) { return __half2float(static_cast<const __half*>(p)[i]); }
  __device__ static void store(void* p, int64_t i, float x) { static_cast<__half*>(p)[i] = __float2half_rn(x); }
};
template <>
struct Elem<__nv_bfloat16> {
  __device__ static float load(const void* p, int64_t i) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
  __device__ static void store(void* p, int64_t i, float x) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
  }
};

// A bias element of any dtype, as double.
__device__ inline double load_bias(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case 0:
      return Elem<float>::load(p, i);
    case 1:
      return Elem<double>::load(p, i);
    case 2:
      return Elem<__half>::load(p, i);
    default:
      return Elem<__nv_bfloat16>::load(p, i);
  }
}

// x in A, finite values beyond A's range clamped to its largest (a float64 bias on inputs computed in
// float32, as on the CPU: cpp/src/masking.hpp, saturate).
template <class A>
__device__ inline A saturate(double x) {
  if (sizeof(A) == 8 || isinf(x)) return static_cast<A>(x);
  constexpr double kBig = 3.4028234663852886e38;  // FLT_MAX
  return static_cast<A>(x > kBig ? kBig : x < -kBig ? -kBig : x);
}

constexpr int kSimtWarps = 4;
constexpr int kSimtRowsPerWarp = 4;
constexpr int kSimtRows = kSimtWarps * kSimtRowsPerWarp;
constexpr int kSimtMaxDim = 256;
constexpr int kSimtCols = kSimtMaxDim / 32;  // output columns per lane

// Keys per shared-memory tile: 32 (one per lane) for float, 16 for double (shared-memory size).
template <class A>
constexpr int simt_keys() {
  return sizeof(A) == 8 ? 16 : 32;
}

// Dynamic shared memory of one block: K and V tiles plus the block's query rows, in A.
template <class A>
constexpr size_t simt_smem_bytes(int64_t d, int64_t dv) {
  return sizeof(A) * (static_cast<size_t>(simt_keys<A>()) * (d + 1 + dv + 1) + kSimtRows * d);
}

template <class A>
__device__ inline A warp_max(A x) {
  for (int o = 16; o > 0; o >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
template <class A>
__device__ inline A warp_sum(A x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

template <class T, class A>
__global__ void __launch_bounds__(kSimtWarps * 32) simt_attention_kernel(KernelParams p) {
  constexpr int kKeys = simt_keys<A>();
  constexpr A kNegInf = -static_cast<A>(INFINITY);
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ks = reinterpret_cast<A*>(smem_raw);          // [kKeys][D + 1]
  A* vs = ks + kKeys * (p.head_dim + 1);           // [kKeys][Dv + 1]
  A* qs = vs + kKeys * (p.head_dim_v + 1);         // [kSimtRows][D]
  __shared__ unsigned long long tile_lo, tile_hi;

  const int64_t b = blockIdx.z, h = blockIdx.y, g = h / p.group;
  const int64_t row_base = static_cast<int64_t>(blockIdx.x) * kSimtRows;
  const int64_t rows_b = p.rows(b);
  if (row_base >= rows_b) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t D = p.head_dim, Dv = p.head_dim_v;

  // The block's query rows, and the union of the keys they may see.
  if (threadIdx.x == 0) {
    tile_lo = INT64_MAX;
    tile_hi = 0;
  }
  __syncthreads();
  for (int r = threadIdx.x; r < kSimtRows; r += blockDim.x) {
    if (row_base + r < rows_b) widen_key_range(p, b, row_base + r, &tile_lo, &tile_hi);
  }
  for (int64_t x = threadIdx.x; x < kSimtRows * D; x += blockDim.x) {
    const int64_t r = x / D, d = x % D, i = row_base + r;
    qs[x] = i < rows_b ? static_cast<A>(Elem<T>::load(p.q, p.q_at(b, h, i) + d * p.q_ds)) : A(0);
  }
  __syncthreads();
  const int64_t lo_all = static_cast<int64_t>(tile_lo), hi_all = static_cast<int64_t>(tile_hi);

  // Per row of this warp: its visible range, running max m, running sum l, output columns.
  int64_t rlo[kSimtRowsPerWarp], rhi[kSimtRowsPerWarp];
  A m[kSimtRowsPerWarp], l[kSimtRowsPerWarp], o[kSimtRowsPerWarp][kSimtCols];
  bool nan_row[kSimtRowsPerWarp];
  double slope[kSimtRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kSimtRowsPerWarp; ++r) {
    const int64_t i = row_base + warp * kSimtRowsPerWarp + r;
    rlo[r] = rhi[r] = 0;
    if (i < rows_b) p.window(b, i, rlo[r], rhi[r]);
    m[r] = kNegInf;
    l[r] = 0;
    nan_row[r] = false;
    slope[r] = p.alibi != nullptr ? p.alibi[b * p.a_bs + h * p.a_hs] : 0.0;
#pragma unroll
    for (int c = 0; c < kSimtCols; ++c) o[r][c] = 0;
  }

  const int64_t kbase = p.k_at(b, g), vbase = p.v_at(b, g);
  for (int64_t j0 = lo_all; j0 < hi_all; j0 += kKeys) {
    // Stage K[j0 : j0 + kKeys] and V likewise (zeros past the range).
    __syncthreads();
    for (int64_t x = threadIdx.x; x < kKeys * D; x += blockDim.x) {
      const int64_t jj = x / D, d = x % D, j = j0 + jj;
      ks[jj * (D + 1) + d] = j < hi_all ? static_cast<A>(Elem<T>::load(p.k, kbase + j * p.k_ss + d * p.k_ds)) : A(0);
    }
    for (int64_t x = threadIdx.x; x < kKeys * Dv; x += blockDim.x) {
      const int64_t jj = x / Dv, e = x % Dv, j = j0 + jj;
      vs[jj * (Dv + 1) + e] = j < hi_all ? static_cast<A>(Elem<T>::load(p.v, vbase + j * p.v_ss + e * p.v_ds)) : A(0);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kSimtRowsPerWarp; ++r) {
      const int64_t i = row_base + warp * kSimtRowsPerWarp + r;
      if (rhi[r] <= j0 || rlo[r] >= j0 + kKeys) continue;  // warp-uniform: nothing visible in this tile
      // s_j = scale * q . k_j, then softcap, bias, ALiBi and the mask (selected, never added)
      const int64_t j = j0 + lane;
      A s = kNegInf;
      if (lane < kKeys && j >= rlo[r] && j < rhi[r]) {
        const A* qrow = qs + (warp * kSimtRowsPerWarp + r) * D;
        const A* krow = ks + lane * (D + 1);
        A dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qrow[d] * krow[d];
        s = static_cast<A>(p.scale) * dot;
        if (p.softcap > 0) s = static_cast<A>(p.softcap) * tanh(s / static_cast<A>(p.softcap));
        if (p.bias != nullptr) {
          s += saturate<A>(load_bias(p.bias, p.bias_dtype, b * p.b_bs + h * p.b_hs + i * p.b_ss + j * p.b_ks));
        }
        if (p.alibi != nullptr) {
          const int64_t dist = p.diag(b, i) - j;
          s -= static_cast<A>(slope[r]) * static_cast<A>(dist < 0 ? -dist : dist);
        }
        if (p.mask != nullptr && p.mask[b * p.m_bs + h * p.m_hs + i * p.m_ss + j * p.m_ks] == 0) s = kNegInf;
      }
      nan_row[r] = nan_row[r] || __any_sync(0xffffffffu, s != s);
      // m' = max(m, max_j s_j); alpha = e^(m - m'); p_j = e^(s_j - m'); l = alpha l + sum_j p_j
      const A m_new = max(m[r], warp_max(s));
      const A m_use = m_new == kNegInf ? A(0) : m_new;
      const A alpha = m[r] == kNegInf ? A(0) : exp(m[r] - m_use);
      const A pj = s == kNegInf ? A(0) : exp(s - m_use);
      l[r] = alpha * l[r] + warp_sum(pj);
      m[r] = m_new;
      // o_e = alpha o_e + sum_j p_j v_je
#pragma unroll
      for (int c = 0; c < kSimtCols; ++c) o[r][c] *= alpha;
      for (int jj = 0; jj < kKeys; ++jj) {
        const A pk = __shfl_sync(0xffffffffu, pj, jj);
        const A sk = __shfl_sync(0xffffffffu, s, jj);
        if (sk == kNegInf) continue;  // warp-uniform: a hidden key (not an underflowed weight: 0 * inf = NaN)
#pragma unroll
        for (int c = 0; c < kSimtCols; ++c) {
          const int64_t e = lane + 32 * c;
          if (e < Dv) o[r][c] += pk * vs[jj * (Dv + 1) + e];
        }
      }
    }
  }

  // out = o / l (0 for a row that sees no key, NaN for a row with a NaN score); lse = m + log(l)
#pragma unroll
  for (int r = 0; r < kSimtRowsPerWarp; ++r) {
    const int64_t i = row_base + warp * kSimtRowsPerWarp + r;
    if (i >= rows_b) continue;
    const A nan = static_cast<A>(NAN);
    const int64_t orow = p.out_at(b, h, i);
#pragma unroll
    for (int c = 0; c < kSimtCols; ++c) {
      const int64_t e = lane + 32 * c;
      if (e < Dv) Elem<T>::store(p.out, orow + e * p.o_ds, nan_row[r] ? nan : (l[r] == A(0) ? A(0) : o[r][c] / l[r]));
    }
    if (p.lse != nullptr && lane == 0) {
      const A value = nan_row[r] ? nan : l[r] == A(0) ? kNegInf : m[r] + log(l[r]);
      if (sizeof(A) == 8) {
        static_cast<double*>(p.lse)[p.lse_at(b, h, i)] = static_cast<double>(value);
      } else {
        static_cast<float*>(p.lse)[p.lse_at(b, h, i)] = static_cast<float>(value);
      }
    }
  }
}

}  // namespace tileattn::cuda

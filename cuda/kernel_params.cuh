// The kernels' view of a params struct: plain values and device pointers, passed by value to every
// kernel, and the row geometry (lengths, packed sequences, windows) of cpp/src/masking.hpp on the device.
#pragma once

#include <cstdint>

namespace tileattn::cuda {

struct KernelParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  void* lse;
  int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim, head_dim_v, group;
  int64_t q_bs, q_hs, q_ss, q_ds;
  int64_t k_bs, k_hs, k_ss, k_ds;
  int64_t v_bs, v_hs, v_ss, v_ds;
  int64_t o_bs, o_hs, o_ss, o_ds;
  int64_t l_bs, l_hs, l_ss;
  double scale;
  bool top_left;
  int64_t left, right;  // window bounds after causality; -1 = unbounded
  const int64_t* q_lengths;     // device, or null
  const int64_t* kv_lengths;    // device, or null
  const int64_t* cu_seqlens_q;  // device, or null (packed)
  const int64_t* cu_seqlens_k;
  int64_t max_rows;  // rows per sequence to cover (seq_q, or the longest packed sequence)
  const uint8_t* mask;
  int64_t m_bs, m_hs, m_ss, m_ks;
  const void* bias;
  int bias_dtype;  // tileattn::DType
  int64_t b_bs, b_hs, b_ss, b_ks;
  const double* alibi;  // device, or null
  int64_t a_bs, a_hs;
  double softcap;

  __device__ bool packed() const { return cu_seqlens_q != nullptr; }
  __device__ int64_t rows(int64_t b) const { return packed() ? cu_seqlens_q[b + 1] - cu_seqlens_q[b] : seq_q; }
  __device__ int64_t len_q(int64_t b) const {
    return packed() ? rows(b) : q_lengths != nullptr ? q_lengths[b] : seq_q;
  }
  __device__ int64_t len_k(int64_t b) const {
    if (packed()) return cu_seqlens_k[b + 1] - cu_seqlens_k[b];
    return kv_lengths != nullptr ? kv_lengths[b] : seq_k;
  }
  __device__ int64_t row0(int64_t b) const { return packed() ? cu_seqlens_q[b] : 0; }
  __device__ int64_t key0(int64_t b) const { return packed() ? cu_seqlens_k[b] : 0; }
  __device__ int64_t bq(int64_t b, int64_t stride) const { return packed() ? 0 : b * stride; }
  // Element offsets of q[b, h, i, 0], k / v [b, g, 0, 0], out[b, h, i, 0], lse[b, h, i].
  __device__ int64_t q_at(int64_t b, int64_t h, int64_t i) const { return bq(b, q_bs) + h * q_hs + (row0(b) + i) * q_ss; }
  __device__ int64_t k_at(int64_t b, int64_t g) const { return bq(b, k_bs) + g * k_hs + key0(b) * k_ss; }
  __device__ int64_t v_at(int64_t b, int64_t g) const { return bq(b, v_bs) + g * v_hs + key0(b) * v_ss; }
  __device__ int64_t out_at(int64_t b, int64_t h, int64_t i) const { return bq(b, o_bs) + h * o_hs + (row0(b) + i) * o_ss; }
  __device__ int64_t lse_at(int64_t b, int64_t h, int64_t i) const { return bq(b, l_bs) + h * l_hs + (row0(b) + i) * l_ss; }
  __device__ int64_t diag(int64_t b, int64_t i) const { return top_left ? i : i + len_k(b) - len_q(b); }
  // [lo, hi): the keys row i may see by lengths, causality and window (hi <= lo: none).
  __device__ void window(int64_t b, int64_t i, int64_t& lo, int64_t& hi) const {
    const int64_t lq = len_q(b);
    if (i >= lq) {
      lo = hi = 0;
      return;
    }
    const int64_t lk = len_k(b);
    const int64_t d = top_left ? i : i + lk - lq;
    lo = left >= 0 && d > left ? d - left : 0;  // no bound overflows, however large
    hi = right >= 0 && right < lk - d ? d + right + 1 : lk;
    if (lo > lk) lo = lk;
    if (hi < lo) hi = lo;
  }
};

// Widens a block's shared key range [lo, hi) (initially INT64_MAX, 0) by the keys row i of sequence b sees.
__device__ inline void widen_key_range(const KernelParams& p, int64_t b, int64_t i, unsigned long long* lo,
                                       unsigned long long* hi) {
  int64_t row_lo, row_hi;
  p.window(b, i, row_lo, row_hi);
  if (row_hi > row_lo) {
    atomicMin(lo, static_cast<unsigned long long>(row_lo));
    atomicMax(hi, static_cast<unsigned long long>(row_hi));
  }
}

}  // namespace tileattn::cuda

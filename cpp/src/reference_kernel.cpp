// The plain scalar reference path, kept selectable at run time so the tiled and SIMD kernels can be
// checked inside C++ too (ggml's use_ref). One query row at a time: the row's scores over every key it
// may see (window range, then the element-wise options: softcap, bias, ALiBi, mask), their maximum, the
// exponentials and their sum, then the weighted sum of the values of the keys not masked. In double for
// float32/float16/bfloat16 and in long double for float64 (extended precision on x86-64), so that it is
// also a high-precision check inside C++. Extra memory: one row of seq_k scores per thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "half.hpp"
#include "kernels.hpp"
#include "masking.hpp"
#include "scratch.hpp"
#include "thread_pool.hpp"

namespace tileattn::kernels {
namespace {

// Scratch of one row: its scores (max_keys) and output accumulators (head_dim_v), in A.
template <class A>
std::size_t row_bytes(const Params& p, const detail::Geometry& geo) {
  return detail::checked_mul(
      detail::checked_add(static_cast<std::size_t>(geo.max_keys()), static_cast<std::size_t>(p.head_dim_v)),
      sizeof(A));
}

// Row i of query head h of sequence b (a row the sequence has): its output and LSE, written to p.out and
// p.lse. s and o: row_bytes of scratch.
template <class T, class A>
void reference_row(const Params& p, const detail::Geometry& geo, int64_t b, int64_t h, int64_t i, A* s, A* o) {
  using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const detail::MaskSummary no_mask;  // the reference reads the mask element by element
  const A neg_inf = -std::numeric_limits<A>::infinity();
  const int64_t g = h / (p.heads_q / p.heads_kv);
  const detail::RowRange range = visible_range(geo, no_mask, b, h, i);
  const int64_t qrow = geo.q_at(b, h, i);
  const int64_t kbase = geo.k_at(b, g);
  const int64_t vbase = geo.v_at(b, g);
  // s_j = scale * q . k_j, then softcap, bias, ALiBi and the mask, for the keys in the row's range
  A m = neg_inf;
  bool nan = false;  // a NaN score makes the whole row NaN
  for (int64_t j = range.lo; j < range.hi; ++j) {
    A dot = 0;
    for (int64_t d = 0; d < p.head_dim; ++d) {
      dot += detail::load_as<A>(detail::load_elem<T>(p.q, qrow + d * p.q_dim_stride)) *
             detail::load_as<A>(detail::load_elem<T>(p.k, kbase + j * p.k_seq_stride + d * p.k_dim_stride));
    }
    A z = static_cast<A>(p.scale) * dot;
    if (p.softcap > 0) z = static_cast<A>(p.softcap) * std::tanh(z / static_cast<A>(p.softcap));
    // A float64 bias on inputs the tiled kernels compute in float32 saturates at float32's range there,
    // and so here.
    if (p.bias != nullptr) z += static_cast<A>(detail::saturate<L>(detail::bias_at(p, b, h, i, j)));
    if (p.alibi_slopes != nullptr) {
      z -= static_cast<A>(detail::alibi_slope(p, b, h)) * static_cast<A>(std::llabs(geo.diag(b, i) - j));
    }
    if (p.mask != nullptr && p.mask[b * p.mask_batch_stride + h * p.mask_head_stride + i * p.mask_seq_stride +
                                     j * p.mask_key_stride] == 0) {
      z = neg_inf;  // selected, not added: a NaN here never reaches the row
    }
    s[j] = z;
    m = std::max(m, z);
    nan = nan || std::isnan(z);
  }
  if (nan) m = std::numeric_limits<A>::quiet_NaN();
  // p_j = exp(s_j - m), l = sum p_j, o = sum p_j v_j / l over the keys not masked
  A l = 0;
  std::fill(o, o + p.head_dim_v, A(0));
  if (m != neg_inf) {
    for (int64_t j = range.lo; j < range.hi; ++j) {
      if (s[j] == neg_inf) continue;
      const A pj = std::exp(s[j] - m);
      l += pj;
      for (int64_t e = 0; e < p.head_dim_v; ++e) {
        o[e] += pj * detail::load_as<A>(detail::load_elem<T>(p.v, vbase + j * p.v_seq_stride + e * p.v_dim_stride));
      }
    }
  }
  const int64_t orow = geo.out_at(b, h, i);
  for (int64_t e = 0; e < p.head_dim_v; ++e) {
    const A value = l == A(0) ? A(0) : o[e] / l;
    detail::store_elem<T>(p.out, orow + e * p.out_dim_stride, detail::StoreAs<T>::from(static_cast<L>(value)));
  }
  if (p.lse != nullptr) {
    const A lse = l == A(0) ? neg_inf : m + std::log(l);
    detail::store_elem<L>(p.lse, geo.lse_at(b, h, i), detail::saturate<L>(lse));
  }
}

template <class T, class A>
void reference_rows(const Params& p, int threads) {
  const detail::Geometry geo(p);
  const int64_t rows_per_seq = geo.max_rows();
  const int64_t rows = p.batch * p.heads_q * rows_per_seq;
  const std::size_t bytes = row_bytes<A>(p, geo);
  detail::parallel_for(rows, 16, threads, [&](int64_t begin, int64_t end) {
    A* s = static_cast<A*>(detail::thread_scratch().get(bytes));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t i = row % rows_per_seq;
      const int64_t h = (row / rows_per_seq) % p.heads_q;
      const int64_t b = row / (rows_per_seq * p.heads_q);
      if (i < geo.rows(b)) reference_row<T, A>(p, geo, b, h, i, s, s + geo.max_keys());
    }
  });
}

template <class T, class A>
void one_row(const Params& p, int64_t b, int64_t h, int64_t i) {
  const detail::Geometry geo(p);
  thread_local detail::Scratch scratch;  // its own: the caller's scratch blocks hold its live work
  A* s = static_cast<A*>(scratch.get(row_bytes<A>(p, geo)));
  reference_row<T, A>(p, geo, b, h, i, s, s + geo.max_keys());
}

}  // namespace

void reference_attention_row(const Params& p, int64_t b, int64_t h, int64_t i) {
  switch (p.dtype) {
    case DType::kFloat32:
      one_row<float, double>(p, b, h, i);
      break;
    case DType::kFloat64:
      one_row<double, long double>(p, b, h, i);
      break;
    case DType::kFloat16:
      one_row<detail::Half, double>(p, b, h, i);
      break;
    case DType::kBFloat16:
      one_row<detail::BFloat16, double>(p, b, h, i);
      break;
  }
}

void reference_attention(const Params& p, int threads) {
  switch (p.dtype) {
    case DType::kFloat32:
      reference_rows<float, double>(p, threads);
      break;
    case DType::kFloat64:
      reference_rows<double, long double>(p, threads);
      break;
    case DType::kFloat16:
      reference_rows<detail::Half, double>(p, threads);
      break;
    case DType::kBFloat16:
      reference_rows<detail::BFloat16, double>(p, threads);
      break;
  }
}

}  // namespace tileattn::kernels

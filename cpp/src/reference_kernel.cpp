// The plain scalar reference path, kept selectable at run time so the tiled and SIMD kernels can be
// checked inside C++ too (ggml's use_ref). One query row at a time: the row's scores over every key it
// sees, their maximum, the exponentials and their sum, then the weighted sum of values, in double for
// float32/float16/bfloat16 and in long double for float64 (extended precision on x86-64), so that it is
// also a high-precision check inside C++. Extra memory is one row of seq_k
// scores per thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "half.hpp"
#include "kernels.hpp"
#include "scratch.hpp"
#include "thread_pool.hpp"

namespace tileattn::kernels {
namespace {

template <class T, class A>
void reference_rows(const Params& p, int threads) {
  using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t group = p.heads_q / p.heads_kv;
  const int64_t rows = p.batch * p.heads_q * p.seq_q;
  const std::size_t bytes =
      detail::checked_mul(detail::checked_add(static_cast<std::size_t>(p.seq_k), static_cast<std::size_t>(p.head_dim_v)),
                          sizeof(A));
  detail::parallel_for(rows, 16, threads, [&](int64_t begin, int64_t end) {
    A* s = static_cast<A*>(detail::thread_scratch().get(bytes));
    A* o = s + p.seq_k;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t i = row % p.seq_q;
      const int64_t h = (row / p.seq_q) % p.heads_q;
      const int64_t b = row / (p.seq_q * p.heads_q);
      const int64_t g = h / group;
      const int64_t visible =
          p.causal ? std::clamp<int64_t>(i + p.seq_k - p.seq_q + 1, 0, p.seq_k) : p.seq_k;
      const int64_t qrow = b * p.q_batch_stride + h * p.q_head_stride + i * p.q_seq_stride;
      // s_j = scale * q . k_j for the visible keys
      A m = -std::numeric_limits<A>::infinity();
      bool nan = false;  // a NaN score makes the whole row NaN
      for (int64_t j = 0; j < visible; ++j) {
        const int64_t krow = b * p.k_batch_stride + g * p.k_head_stride + j * p.k_seq_stride;
        A dot = 0;
        for (int64_t d = 0; d < p.head_dim; ++d) {
          dot += detail::load_as<A>(detail::load_elem<T>(p.q, qrow + d * p.q_dim_stride)) *
                 detail::load_as<A>(detail::load_elem<T>(p.k, krow + d * p.k_dim_stride));
        }
        s[j] = static_cast<A>(p.scale) * dot;
        m = std::max(m, s[j]);
        nan = nan || std::isnan(s[j]);
      }
      if (nan) m = std::numeric_limits<A>::quiet_NaN();
      // p_j = exp(s_j - m), l = sum p_j, o = sum p_j v_j / l
      A l = 0;
      std::fill(o, o + p.head_dim_v, A(0));
      if (m != -std::numeric_limits<A>::infinity()) {
        for (int64_t j = 0; j < visible; ++j) {
          const A pj = std::exp(s[j] - m);
          l += pj;
          const int64_t vrow = b * p.v_batch_stride + g * p.v_head_stride + j * p.v_seq_stride;
          for (int64_t e = 0; e < p.head_dim_v; ++e) {
            o[e] += pj * detail::load_as<A>(detail::load_elem<T>(p.v, vrow + e * p.v_dim_stride));
          }
        }
      }
      const int64_t orow = b * p.out_batch_stride + h * p.out_head_stride + i * p.out_seq_stride;
      for (int64_t e = 0; e < p.head_dim_v; ++e) {
        const A value = l == A(0) ? A(0) : o[e] / l;
        detail::store_elem<T>(p.out, orow + e * p.out_dim_stride, detail::StoreAs<T>::from(static_cast<L>(value)));
      }
      if (p.lse != nullptr) {
        const A lse = l == A(0) ? -std::numeric_limits<A>::infinity() : m + std::log(l);
        detail::store_elem<L>(p.lse, b * p.lse_batch_stride + h * p.lse_head_stride + i * p.lse_seq_stride,
                              static_cast<L>(lse));
      }
    }
  });
}

}  // namespace

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

// merge_attention: the exact attention over a union of key sets from the partial results over each set.
//
// For one row with partials (o_p, l_p): m = max_p l_p, w_p = exp(l_p - m), W = sum_p w_p;
//   out = sum_p (w_p / W) o_p,  lse = m + log(W).
// A partial with l_p = -inf has w_p = 0 and adds nothing, even if o_p holds NaN; a row empty in every
// part gives out = 0, lse = -inf. Rows are independent: split over threads, the same result for any count.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "half.hpp"
#include "thread_pool.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn {
namespace {

// T: storage type of the outputs; A: accumulation and LSE type.
template <class T, class A>
void merge_rows(int64_t parts, const void* const* outs, const void* const* lses, void* out, void* lse,
                int64_t rows, int64_t dim_v, int threads) {
  const int64_t grain = dim_v >= 256 ? 8 : 64;
  detail::parallel_for(rows, grain, threads, [&](int64_t begin, int64_t end) {
    std::vector<A> weight(static_cast<size_t>(parts));
    std::vector<A> acc(static_cast<size_t>(dim_v));
    for (int64_t r = begin; r < end; ++r) {
      A m = -std::numeric_limits<A>::infinity();
      for (int64_t p = 0; p < parts; ++p) {
        const A l = detail::load_elem<A>(lses[p], r);
        if (l > m) m = l;
      }
      const A m_safe = m == -std::numeric_limits<A>::infinity() ? A(0) : m;
      A total = 0;
      for (int64_t p = 0; p < parts; ++p) {
        // w_p = exp(l_p - m): exactly 0 for an empty partial
        weight[p] = std::exp(detail::load_elem<A>(lses[p], r) - m_safe);
        total += weight[p];
      }
      if (lse != nullptr) {
        const A value = total == 0 ? -std::numeric_limits<A>::infinity() : m_safe + std::log(total);
        detail::store_elem<A>(lse, r, value);
      }
      const A denom = total == 0 ? A(1) : total;
      for (int64_t j = 0; j < dim_v; ++j) acc[j] = 0;
      for (int64_t p = 0; p < parts; ++p) {
        const A w = weight[p] / denom;
        if (!(w > 0)) continue;  // an empty partial adds nothing, not 0 * NaN
        const int64_t base = r * dim_v;
        for (int64_t j = 0; j < dim_v; ++j) acc[j] += w * detail::load_as<A>(detail::load_elem<T>(outs[p], base + j));
      }
      for (int64_t j = 0; j < dim_v; ++j) detail::store_elem<T>(out, r * dim_v + j, detail::StoreAs<T>::from(acc[j]));
    }
  });
}

}  // namespace

void merge_attention(DType dtype, int64_t parts, const void* const* outs, const void* const* lses, void* out,
                     void* lse, int64_t rows, int64_t head_dim_v, int num_threads) {
  if (parts < 1) throw std::invalid_argument("parts must be >= 1, got " + std::to_string(parts));
  if (rows < 0) throw std::invalid_argument("rows must be >= 0, got " + std::to_string(rows));
  if (head_dim_v < 1 || head_dim_v > (int64_t{1} << 40)) {  // a row's accumulator must be allocatable
    throw std::invalid_argument("head_dim_v must be in [1, 2^40], got " + std::to_string(head_dim_v));
  }
  if (num_threads > detail::kMaxThreads) {
    throw std::invalid_argument("num_threads must be at most " + std::to_string(detail::kMaxThreads));
  }
  if (num_threads < 0) throw std::invalid_argument("num_threads must be >= 0, got " + std::to_string(num_threads));
  if (rows == 0) return;
  if (outs == nullptr || lses == nullptr) throw std::invalid_argument("outs and lses must not be null");
  if (out == nullptr) throw std::invalid_argument("out is null");
  for (int64_t p = 0; p < parts; ++p) {
    if (outs[p] == nullptr) throw std::invalid_argument("outs[" + std::to_string(p) + "] is null");
    if (lses[p] == nullptr) throw std::invalid_argument("lses[" + std::to_string(p) + "] is null");
  }
  const int threads = num_threads > 0 ? num_threads : get_num_threads();
  switch (dtype) {
    case DType::kFloat32:
      return merge_rows<float, float>(parts, outs, lses, out, lse, rows, head_dim_v, threads);
    case DType::kFloat64:
      return merge_rows<double, double>(parts, outs, lses, out, lse, rows, head_dim_v, threads);
    case DType::kFloat16:
      return merge_rows<detail::Half, float>(parts, outs, lses, out, lse, rows, head_dim_v, threads);
    case DType::kBFloat16:
      return merge_rows<detail::BFloat16, float>(parts, outs, lses, out, lse, rows, head_dim_v, threads);
  }
  throw std::invalid_argument("dtype is not one of float32, float64, float16, bfloat16");
}

}  // namespace tileattn

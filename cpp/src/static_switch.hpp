// Turns small run-time counts into compile-time constants, so register blocks have fixed sizes
// (the idea of FlashAttention's static_switch.h).
#pragma once

#include <type_traits>

namespace tileattn::detail {

// Calls f(std::integral_constant<int, n>{}) for 1 <= n <= N; does nothing for other n.
template <int N, class F>
inline void with_count(int n, F&& f) {
  if constexpr (N >= 1) {
    if (n == N) {
      f(std::integral_constant<int, N>{});
      return;
    }
    with_count<N - 1>(n, f);
  }
}

// Calls f(std::integral_constant<int, v>{}) for 0 <= v < N; does nothing for other v.
template <int N, class F>
inline void with_value(int v, F&& f) {
  if constexpr (N >= 1) {
    if (v == N - 1) {
      f(std::integral_constant<int, N - 1>{});
      return;
    }
    with_value<N - 1>(v, f);
  }
}

}  // namespace tileattn::detail

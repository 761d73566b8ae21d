// Machine-ceiling probes, compiled once per instruction set next to the kernels (see kernels_*.cpp): a
// throughput loop of independent fused multiply-adds and a streaming read. The benchmarks measure them
// in the same run as the kernels, so that results are reported as fractions of this machine's ceiling.

#ifndef TILEATTN_ISA_NS
#error "define TILEATTN_ISA_NS before including probes_kernel.hpp"
#endif

namespace tileattn::kernels::TILEATTN_ISA_NS {

// Runs `iters` rounds of kChains independent vector FMAs (enough chains to cover the FMA latency on two
// ports) and returns a value that depends on all of them, so nothing is optimised away.
template <class A>
A fma_chains(int64_t iters) {
  constexpr int kChains = 12;
  using V = Vec<A>;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V::set1(static_cast<A>(i) * A(1e-3));
  const V m = V::set1(A(0.999999));
  const V c = V::set1(A(1e-6));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = fmadd(acc[i], m, c);  // a = a * m + c
  }
  V total = acc[0];
  for (int i = 1; i < kChains; ++i) total = add(total, acc[i]);
  return reduce_add(total);
}

// FLOPs of one fma_chains<A> round: kChains vectors of W lanes, 2 flops each.
template <class A>
constexpr double fma_chain_flops() {
  return 12.0 * Vec<A>::kWidth * 2.0;
}

// Sums n floats (n a multiple of 4 vectors) with four independent accumulators.
inline float read_sum(const float* data, int64_t n) {
  using V = Vec<float>;
  constexpr int W = V::kWidth;
  V a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  for (int64_t i = 0; i + 4 * W <= n; i += 4 * W) {
    a0 = add(a0, V::load(data + i));
    a1 = add(a1, V::load(data + i + W));
    a2 = add(a2, V::load(data + i + 2 * W));
    a3 = add(a3, V::load(data + i + 3 * W));
  }
  return reduce_add(add(add(a0, a1), add(a2, a3)));
}

double probe_fma(bool f64, int64_t iters) {
  return f64 ? static_cast<double>(fma_chains<double>(iters)) : static_cast<double>(fma_chains<float>(iters));
}
double probe_fma_flops_per_iter(bool f64) { return f64 ? fma_chain_flops<double>() : fma_chain_flops<float>(); }
double probe_read(const float* data, int64_t n) { return read_sum(data, n); }

}  // namespace tileattn::kernels::TILEATTN_ISA_NS

// The machine-ceiling probes: FMA throughput and memory-read bandwidth on a number of threads, with the
// best instruction set (or the one forced by TILEATTN_ISA), timed around one parallel region.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "cpu_features.hpp"
#include "kernels.hpp"
#include "scratch.hpp"
#include "thread_pool.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn {
namespace {

double probe_fma_isa(Isa isa, bool f64, int64_t iters) {
  switch (isa) {
#ifdef TILEATTN_HAVE_AMX
    case Isa::kAmx:
      return kernels::amx::probe_fma(f64, iters);
#endif
#ifdef TILEATTN_HAVE_AVX512
    case Isa::kAvx512:
      return kernels::avx512::probe_fma(f64, iters);
#endif
#ifdef TILEATTN_HAVE_AVX2
    case Isa::kAvx2:
      return kernels::avx2::probe_fma(f64, iters);
#endif
    default:
      return kernels::baseline::probe_fma(f64, iters);
  }
}

double flops_per_iter(Isa isa, bool f64) {
  switch (isa) {
#ifdef TILEATTN_HAVE_AMX
    case Isa::kAmx:
      return kernels::amx::probe_fma_flops_per_iter(f64);
#endif
#ifdef TILEATTN_HAVE_AVX512
    case Isa::kAvx512:
      return kernels::avx512::probe_fma_flops_per_iter(f64);
#endif
#ifdef TILEATTN_HAVE_AVX2
    case Isa::kAvx2:
      return kernels::avx2::probe_fma_flops_per_iter(f64);
#endif
    default:
      return kernels::baseline::probe_fma_flops_per_iter(f64);
  }
}

double probe_read_isa(Isa isa, const float* data, int64_t n) {
  switch (isa) {
#ifdef TILEATTN_HAVE_AMX
    case Isa::kAmx:
      return kernels::amx::probe_read(data, n);
#endif
#ifdef TILEATTN_HAVE_AVX512
    case Isa::kAvx512:
      return kernels::avx512::probe_read(data, n);
#endif
#ifdef TILEATTN_HAVE_AVX2
    case Isa::kAvx2:
      return kernels::avx2::probe_read(data, n);
#endif
    default:
      return kernels::baseline::probe_read(data, n);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

volatile double g_sink = 0;  // keeps the probes' results alive

}  // namespace

double probe_fma_run(int threads, bool f64, int64_t iters) {
  threads = std::max(threads, 1);
  iters = std::max<int64_t>(iters, 1);
  const Isa isa = detail::selected_isa();
  detail::parallel_for(threads, 1, threads, [&](int64_t, int64_t) { g_sink = g_sink + probe_fma_isa(isa, f64, iters); });
  return static_cast<double>(threads) * static_cast<double>(iters) * flops_per_iter(isa, f64);
}

double probe_fma_gflops(int threads, bool f64, double seconds) {
  threads = std::max(threads, 1);
  const Isa isa = detail::selected_isa();
  // Calibrate the iteration count on one thread, then run every thread for about `seconds`.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    g_sink = g_sink + probe_fma_isa(isa, f64, iters);
    const double t = seconds_since(t0);
    if (t > 0.02) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * std::max(1.0, seconds / t));
      break;
    }
    iters *= 4;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const double flops = probe_fma_run(threads, f64, iters);
  return flops / seconds_since(t0) / 1e9;
}

double probe_read_buffer(const float* data, int64_t n, int threads) {
  threads = std::max(threads, 1);
  const Isa isa = detail::selected_isa();
  const int64_t chunk = n / threads / 1024 * 1024;
  std::vector<double> sums(static_cast<size_t>(threads), 0.0);
  detail::parallel_for(threads, 1, threads, [&](int64_t t, int64_t) {
    const int64_t begin = t * chunk;
    const int64_t len = t == threads - 1 ? n - begin : chunk;
    sums[static_cast<size_t>(t)] = probe_read_isa(isa, data + begin, len);
  });
  double total = 0;
  for (double x : sums) total += x;
  return total;
}

double probe_read_gbs(int threads, int64_t bytes, int repeats) {
  const int64_t n = std::max<int64_t>(bytes / 4 / 4096 * 4096, 4096);
  std::vector<float> buffer;
  buffer.assign(static_cast<size_t>(n), 1.0f);  // touched: no page faults inside the timing
  g_sink = g_sink + probe_read_buffer(buffer.data(), n, threads);  // warm-up
  double best = 0;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    g_sink = g_sink + probe_read_buffer(buffer.data(), n, threads);
    best = std::max(best, static_cast<double>(n) * 4.0 / seconds_since(t0) / 1e9);
  }
  return best;
}

int probe_threads(int threads, double seconds) {
  threads = std::max(threads, 1);
  std::atomic<int> inside{0}, most{0};
  detail::parallel_for(threads, 1, threads, [&](int64_t, int64_t) {
    const int now = inside.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (most.load() < threads && seconds_since(t0) < seconds) std::this_thread::yield();
    inside.fetch_sub(1);
  });
  return most.load();
}

}  // namespace tileattn

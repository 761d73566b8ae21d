// The load-to-use latency of this machine's memory hierarchy, by a dependent pointer chase over a random
// cyclic permutation of 64-byte lines in buffers of growing size (one thread). It tells how many cache
// lines a core must have in flight to stream data it cannot leave to the hardware prefetchers, such as a
// full (H, S, S) bias read 256 bytes per row per KV tile: lines in flight = bandwidth x latency / 64 bytes.
// Build: g++ -O2 -std=c++17 memory_latency.cpp -o memory_latency. Run: ./memory_latency [MiB ...]
// (default 1 3 16 64 256). The buffers are 2 MiB aligned and asked for huge pages, as NumPy's are.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  std::vector<long> sizes_mib;
  for (int i = 1; i < argc; ++i) sizes_mib.push_back(std::atol(argv[i]));
  if (sizes_mib.empty()) sizes_mib = {1, 3, 16, 64, 256};
  for (const long mib : sizes_mib) {
    const std::size_t bytes = static_cast<std::size_t>(mib) << 20;
    const std::size_t lines = bytes / 64;
    char* mem = static_cast<char*>(std::aligned_alloc(std::size_t{2} << 20, bytes));
    if (mem == nullptr) return 1;
    madvise(mem, bytes, MADV_HUGEPAGE);
    std::vector<std::size_t> order(lines);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
    for (std::size_t i = 0; i < lines; ++i) {
      *reinterpret_cast<char**>(mem + order[i] * 64) = mem + order[(i + 1) % lines] * 64;
    }
    char* p = mem + order[0] * 64;
    const long steps = 20'000'000;
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < steps; ++i) p = *reinterpret_cast<char**>(p);
    const auto t1 = std::chrono::steady_clock::now();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / steps;
    std::printf("%5ld MiB: %6.1f ns per dependent load%s\n", mib, ns, p == nullptr ? "!" : "");
    std::free(mem);
  }
  return 0;
}

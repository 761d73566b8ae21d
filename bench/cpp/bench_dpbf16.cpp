// Throughput of AVX512_BF16's vdpbf16ps against vfmadd231ps on one core: 24 independent accumulators of
// each, register only. Decides whether bfloat16 inputs' Q K^T pays as bfloat16 pairs (cpu_features.hpp,
// bf16_dot_faster): one vdpbf16ps adds two products per lane, so the pairs win only where it issues at more
// than half the FMA rate. Build: g++ -O2 -std=c++17 bench_dpbf16.cpp -o bench_dpbf16 (x86-64 with
// AVX512_BF16), run pinned: taskset -c 0 ./bench_dpbf16.
#include <immintrin.h>

#include <chrono>
#include <cstdio>

#pragma GCC target("avx512f,avx512bf16,avx512vl")

#define TILEATTN_X24(X) \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

int main() {
  const long iters = 100000000;
  const __m512 x = _mm512_set1_ps(1e-9f), y = _mm512_set1_ps(1.0f);
  const __m512bh xb = (__m512bh)_mm512_set1_epi32(0x3f803f80), yb = (__m512bh)_mm512_set1_epi32(0x00010001);
  // Distinct starting values, hidden from the optimizer, so that the 24 chains stay 24 chains.
#define DECLARE(i)                       \
  __m512 a##i = _mm512_set1_ps(float(i)); \
  __asm__ volatile("" : "+v"(a##i));
  TILEATTN_X24(DECLARE)
  const auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n) {
#define FMA(i) a##i = _mm512_fmadd_ps(x, y, a##i);
    TILEATTN_X24(FMA)
    __asm__ volatile("" ::"v"(x));
  }
  const auto t1 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n) {
#define DOT(i) a##i = _mm512_dpbf16_ps(a##i, xb, yb);
    TILEATTN_X24(DOT)
    __asm__ volatile("" ::"v"(xb));
  }
  const auto t2 = std::chrono::steady_clock::now();
  float sink = 0;
#define SUM(i) sink += _mm512_reduce_add_ps(a##i);
  TILEATTN_X24(SUM)
  const double tf = std::chrono::duration<double>(t1 - t0).count();
  const double tb = std::chrono::duration<double>(t2 - t1).count();
  const double gf = 24.0 * iters / tf / 1e9, gb = 24.0 * iters / tb / 1e9;
  std::printf("vfmadd231ps zmm: %.2f G instructions/s, %.0f GFLOP/s (16 lanes x 2)\n", gf, gf * 32);
  std::printf("vdpbf16ps   zmm: %.2f G instructions/s, %.0f GFLOP/s (16 lanes x 2 products x 2)\n", gb, gb * 64);
  std::printf("pairs / FMAs in multiply-adds: %.2f (checksum %g)\n", gb * 2 / gf, sink);
  return 0;
}

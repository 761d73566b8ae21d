// The ceiling of the attention inner loops on this CPU: the Q K^T register block of the AVX-512 kernel
// (R rows x N vectors of 16 keys, K^T streamed, q broadcast) on L1-resident data, against the same
// machine's FMA probe. Build: g++ -O3 -std=c++17 bench_microkernel.cpp -o bench_microkernel (x86-64 with
// AVX-512). Prints GFLOP/s per shape and the probe's, one thread.
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <vector>

#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma")

constexpr int kDim = 64;

template <int R, int N>
__attribute__((noinline)) void qk(const float* q, const float* kt, float* s, int lds) {
  __m512 acc[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) acc[r][n] = _mm512_setzero_ps();
  for (int d = 0; d < kDim; ++d) {
    __m512 kv[N];
    for (int n = 0; n < N; ++n) kv[n] = _mm512_loadu_ps(kt + (d * N + n) * 16);
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(q[r * kDim + d]);
      for (int n = 0; n < N; ++n) acc[r][n] = _mm512_fmadd_ps(b, kv[n], acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) _mm512_storeu_ps(s + r * lds + n * 16, acc[r][n]);
}

template <int R, int N>
void bench(int keys) {
  std::vector<float> q(R * kDim, 0.01f), kt(keys * kDim, 0.01f), s(R * keys);
  const long reps = 400000L * 64 / keys * 6 / R;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < reps; ++i) {
    for (int c = 0; c < keys / (16 * N); ++c) qk<R, N>(q.data(), kt.data() + c * kDim * N * 16, s.data() + c * 16 * N, keys);
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("q.k register block %2d rows x %d vectors, K^T %3d KiB: %6.1f GFLOP/s\n", R, N, keys * kDim * 4 / 1024,
              2.0 * R * keys * kDim * reps / sec / 1e9);
}

float probe() {  // 12 independent chains of register-only FMAs
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  const long iters = 200000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m512 t = acc[0];
  for (int i = 1; i < 12; ++i) t = _mm512_add_ps(t, acc[i]);
  std::printf("FMA probe (register only):                      %6.1f GFLOP/s\n", 12.0 * 32 * iters / sec / 1e9);
  return _mm512_reduce_add_ps(t);
}

int main() {
  const float sink = probe();
  bench<6, 4>(64);   // tileattn's AVX-512 block, K^T in L1
  bench<6, 4>(256);  // K^T in L2
  bench<8, 3>(96);
  bench<12, 2>(64);
  bench<4, 6>(96);
  return sink == 12345.0f;
}

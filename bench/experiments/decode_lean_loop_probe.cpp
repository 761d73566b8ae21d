// A lean one-row decode loop, the kernel's structure without its bookkeeping (thirty-third session,
// bench/RESULTS.md): float32, D = 64, one query row per head, K and V (H, n, 64) read in place; per tile
// of G keys the dot products 4 keys at a time, the online softmax, then P V, the prefetches as chosen by
// PF (0 none; 1 each stream DIST keys ahead; 2 the kernel's scheme: V rows of this tile during Q K^T, K
// rows of the next during P V). Not the kernel's arithmetic (its own exp2, no chains): a bound on what
// the loop structure and the prefetch scheme reach on this machine, to compare with the kernel's GB/s.
//
//   g++ -O3 -march=native -o decode_lean_loop_probe decode_lean_loop_probe.cpp
//   taskset -c 1 ./decode_lean_loop_probe 32 4096 [offset_floats]    # 64 MiB: from L3
//   taskset -c 1 ./decode_lean_loop_probe 32 65536 [offset_floats]   # 1 GiB: from memory
#include <immintrin.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
static inline __m512 exp2v(__m512 x) {  // 2^x, x <= 0, polynomial on the fraction
  x = _mm512_max_ps(x, _mm512_set1_ps(-126.f));
  __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5353362e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3398874e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6184197e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503340e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
template <int PF, int DIST, int G = 16>
void head(const float* q, const float* K, const float* V, int64_t n, float* out) {
  constexpr int D = 64;
  __m512 qv[4], o[4];
  for (int c = 0; c < 4; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c), o[c] = _mm512_setzero_ps();
  const float c2 = 1.4426950408889634f / 8.f;
  float m = -INFINITY, l = 0.f;
  alignas(64) float s[G];
  for (int64_t j0 = 0; j0 < n; j0 += G) {
    for (int t = 0; t < G; t += 4) {
      __m512 a[4];
      for (int u = 0; u < 4; ++u) {
        const float* k = K + (j0 + t + u) * D;
        if (PF == 2) { const char* pk = (const char*)(V + (j0 + t + u) * D); for (int L = 0; L < 4; ++L) _mm_prefetch(pk + 64 * L, _MM_HINT_T1); } else if (PF) { const char* pk = (const char*)(k + DIST * D); for (int L = 0; L < 4; ++L) _mm_prefetch(pk + 64 * L, _MM_HINT_T1); }
        a[u] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
        for (int c = 1; c < 4; ++c) a[u] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), a[u]);
      }
      for (int u = 0; u < 4; ++u) s[t + u] = _mm512_reduce_add_ps(a[u]);
    }
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int g = 0; g < G; g += 16) mx = _mm512_max_ps(mx, _mm512_mul_ps(_mm512_load_ps(s + g), _mm512_set1_ps(c2)));
    float mn = std::max(m, _mm512_reduce_max_ps(mx));
    if (mn != m) {
      float alpha = m == -INFINITY ? 0.f : std::exp2(m - mn);
      for (int c = 0; c < 4; ++c) o[c] = _mm512_mul_ps(o[c], _mm512_set1_ps(alpha));
      l *= alpha; m = mn;
    }
    __m512 ps = _mm512_setzero_ps();
    for (int g = 0; g < G; g += 16) {
      __m512 p = exp2v(_mm512_sub_ps(_mm512_mul_ps(_mm512_load_ps(s + g), _mm512_set1_ps(c2)), _mm512_set1_ps(m)));
      ps = _mm512_add_ps(ps, p);
      _mm512_store_ps(s + g, p);
    }
    l += _mm512_reduce_add_ps(ps);
    __m512 acc[4];
    for (int c = 0; c < 4; ++c) acc[c] = _mm512_setzero_ps();
    for (int t = 0; t < G; ++t) {
      const float* v = V + (j0 + t) * D;
      if (PF == 2) { const char* pv = (const char*)(K + (j0 + G + t) * D); for (int L = 0; L < 4; ++L) _mm_prefetch(pv + 64 * L, _MM_HINT_T1); } else if (PF) { const char* pv = (const char*)(v + DIST * D); for (int L = 0; L < 4; ++L) _mm_prefetch(pv + 64 * L, _MM_HINT_T1); }
      __m512 pb = _mm512_set1_ps(s[t]);
      for (int c = 0; c < 4; ++c) acc[c] = _mm512_fmadd_ps(pb, _mm512_loadu_ps(v + 16 * c), acc[c]);
    }
    for (int c = 0; c < 4; ++c) o[c] = _mm512_add_ps(o[c], acc[c]);
  }
  for (int c = 0; c < 4; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_div_ps(o[c], _mm512_set1_ps(l)));
}
template <int PF, int DIST, int G = 16>
double run(int H, int64_t n, const float* q, const float* K, const float* V, float* out, double secs) {
  std::vector<double> ts;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(secs);
  while (std::chrono::steady_clock::now() < end) {
    auto t0 = std::chrono::steady_clock::now();
    for (int h = 0; h < H; ++h) head<PF, DIST, G>(q + h * 64, K + h * n * 64, V + h * n * 64, n, out + h * 64);
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  return 2.0 * H * n * 64 * 4 / ts[ts.size() / 2] / 1e9;
}
int main(int argc, char** argv) {
  const int H = atoi(argv[1]); const int64_t n = atol(argv[2]);
  int off = argc > 3 ? atoi(argv[3]) : 0; float *K = (float*)aligned_alloc(64, H * n * 64 * 4 + 64) + off, *V = (float*)aligned_alloc(64, H * n * 64 * 4 + 64) + off;
  std::vector<float> q(H * 64), out(H * 64);
  for (int64_t i = 0; i < H * n * 64; ++i) K[i] = (rand() / (float)RAND_MAX) - 0.5f, V[i] = K[i] * 0.5f;
  for (auto& x : q) x = (rand() / (float)RAND_MAX) - 0.5f;
  for (int r = 0; r < 3; ++r) {
    printf("G64: noPF %.1f PF32 %.1f ours-scheme %.1f | G16 ours-scheme %.1f GB/s\n",
           run<0, 0, 64>(H, n, q.data(), K, V, out.data(), 1.0), run<1, 32, 64>(H, n, q.data(), K, V, out.data(), 1.0),
           run<2, 0, 64>(H, n, q.data(), K, V, out.data(), 1.0), run<2, 0, 16>(H, n, q.data(), K, V, out.data(), 1.0));
  }
}

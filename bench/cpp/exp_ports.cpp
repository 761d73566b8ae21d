// What the softmax's instructions cost beside the products' FMAs, one thread (nineteenth session,
// bench/RESULTS.md). Build from the repository root:
//   g++ -O2 -std=c++17 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -Icpp/src bench/cpp/exp_ports.cpp \
//     -o exp_ports && taskset -c 1 ./exp_ports
// Prints, per instruction, its throughput alone (12 independent chains) and what 6 of it add to an
// iteration of 12 independent FMAs, then to one of 12 independent adds (thirty-ninth session); then what
// one or more of the kernels' own float32 exponentials (exp2_n from simd_avx512.hpp, on independent
// inputs) add to an iteration of 12 FMAs; last, the full-block softmax's loop with its rows' exponentials
// interleaved 6, 3 or 2 at a time (fortieth session). An instruction that adds nothing issues on other
// ports than the FMAs' (or the adds'). The FMAs alone take 6 cycles per iteration where a core has two
// 512-bit FMA ports (Zen 5, Intel), 12 on Zen 4 (one 512-bit FMA per cycle).
#include <chrono>
#include <cstdio>

#include "half.hpp"  // simd_avx512.hpp converts its types
#define TILEATTN_ISA_NS exp_ports
#include "simd_avx512.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr long kIters = 20000000;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

float sink(const __m512* a, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += _mm512_cvtss_f32(a[i]);
  return s;
}

// op(x, b): one instruction (or a dependent pair) under test.
template <class Op>
void alone(const char* name, Op op) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(0.5f + i * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999f);
  const auto t0 = Clock::now();
  for (long k = 0; k < kIters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = op(a[i], b);
  }
  const double s = seconds_since(t0);
  std::printf("  %-10s alone: %.3f ns per instruction (%g)\n", name, s / kIters / 12 * 1e9, sink(a, 12));
}

// 12 independent FMAs (or, with kAdds, 12 adds) and 6 of op per iteration.
template <bool kAdds = false, class Op>
void beside(const char* name, Op op) {
  __m512 a[12], o[6];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(0.5f + i * 1e-3f);
  for (int i = 0; i < 6; ++i) o[i] = _mm512_set1_ps(0.7f + i * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999f);
  const auto t0 = Clock::now();
  for (long k = 0; k < kIters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = kAdds ? _mm512_add_ps(a[i], b) : _mm512_fmadd_ps(a[i], b, b);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) o[i] = op(o[i], b);
  }
  const double s = seconds_since(t0);
  std::printf("  12 %s + 6 %-10s %.3f ns per iteration (%g)\n", kAdds ? "add" : "fma", name, s / kIters * 1e9,
              sink(a, 12) + sink(o, 6));
}

// 12 FMAs and K exponentials of independent inputs (each input one add from the last: the adds' chains are
// short and issue beside the FMAs).
template <int K>
void exps_beside_fma() {
  namespace ns = tileattn::kernels::exp_ports;
  __m512 a[12], o[K > 0 ? K : 1], x[K > 0 ? K : 1];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(0.5f + i * 1e-3f);
  for (int i = 0; i < (K > 0 ? K : 1); ++i) {
    o[i] = _mm512_setzero_ps();
    x[i] = _mm512_set1_ps(-3.3f - i * 0.01f);
  }
  const __m512 b = _mm512_set1_ps(0.999f), d = _mm512_set1_ps(-1e-6f);
  const auto t0 = Clock::now();
  for (long k = 0; k < kIters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, b);
    ns::Vec<float> e[K > 0 ? K : 1];
#pragma GCC unroll 4
    for (int i = 0; i < K; ++i) {
      x[i] = _mm512_add_ps(x[i], d);
      e[i].v = x[i];
    }
    if constexpr (K > 0) ns::exp2_n<K>(e);
#pragma GCC unroll 4
    for (int i = 0; i < K; ++i) o[i] = _mm512_add_ps(o[i], e[i].v);
  }
  const double s = seconds_since(t0);
  std::printf("  12 fma + %d exp2: %.3f ns per iteration (%g)\n", K, s / kIters * 1e9, sink(a, 12) + sink(o, K > 0 ? K : 1));
}

// The full-block softmax's loop (softmax_prefix in tiled_kernel.hpp) on R rows of 16 score vectors in L1:
// per vector, p = exp2(s c - m) stored and summed, the rows' exponentials interleaved G at a time (exp2_n<G>).
// Fortieth session: all six rows at once held more values than the 32 registers, three at a time did not.
template <class A, int R, int G>
void softmax_loop() {
  namespace ns = tileattn::kernels::exp_ports;
  using V = ns::Vec<A>;
  constexpr int W = V::kWidth, kVecs = 16;
  constexpr long kRounds = kIters / 50;
  alignas(64) static A s[R][kVecs * W], p[R][kVecs * W];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < kVecs * W; ++j) s[r][j] = A(-0.1 * (j % 37) - 0.01 * r);
  }
  V sum[R];
  for (int r = 0; r < R; ++r) sum[r] = V::zero();
  const V c = V::set1(A(1.4426950408889634)), neg_m = V::set1(A(-0.25));
  const auto t0 = Clock::now();
  for (long k = 0; k < kRounds; ++k) {
    for (int v = 0; v < kVecs; ++v) {
#pragma GCC unroll 6
      for (int r0 = 0; r0 < R; r0 += G) {
        V x[G];
#pragma GCC unroll 6
        for (int i = 0; i < G; ++i) x[i] = ns::fmadd(V::load(&s[r0 + i][v * W]), c, neg_m);
        ns::exp2_n<G>(x);
#pragma GCC unroll 6
        for (int i = 0; i < G; ++i) {
          x[i].store(&p[r0 + i][v * W]);
          sum[r0 + i] = ns::add(sum[r0 + i], x[i]);
        }
      }
    }
  }
  const double sec = seconds_since(t0);
  double total = 0;
  for (int r = 0; r < R; ++r) {
    alignas(64) A lanes[W];
    sum[r].store(lanes);
    for (int i = 0; i < W; ++i) total += lanes[i];
  }
  std::printf("  %s, %d rows, %d at a time: %.3f ns per vector (%g)\n", sizeof(A) == 4 ? "float32" : "float64", R, G,
              sec / kRounds / kVecs / R * 1e9, total);
}

}  // namespace

int main() {
  const auto fma = [](__m512 x, __m512 b) { return _mm512_fmadd_ps(x, b, b); };
  const auto add = [](__m512 x, __m512 b) { return _mm512_add_ps(x, b); };
  const auto max = [](__m512 x, __m512 b) { return _mm512_max_ps(x, b); };
  const auto reduce = [](__m512 x, __m512) { return _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); };
  const auto scalef = [](__m512 x, __m512 b) { return _mm512_scalef_ps(x, b); };
  const auto perm = [](__m512 x, __m512 b) { return _mm512_permutexvar_ps(_mm512_castps_si512(b), x); };
  const auto mul = [](__m512 x, __m512 b) { return _mm512_mul_ps(x, b); };
  const auto cmp_maskz = [](__m512 x, __m512 b) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, b, _CMP_NLT_UQ), x); };
  const auto cmp_blend = [](__m512 x, __m512 b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, b, _CMP_NLT_UQ), x, b);
  };
  std::printf("throughput alone (12 independent chains):\n");
  alone("fma", fma);
  alone("add", add);
  alone("max", max);
  alone("reduce", reduce);
  alone("scalef", scalef);
  alone("permps", perm);
  alone("cmp+blend", cmp_blend);
  std::printf("beside the FMAs:\n");
  beside("nothing", [](__m512 x, __m512) { return x; });
  beside("add", add);
  beside("max", max);
  beside("reduce", reduce);
  beside("scalef", scalef);
  beside("permps", perm);
  beside("cmp+blend", cmp_blend);
  beside("mul", mul);
  // The same beside adds: what takes the add ports (Zen 4: max, reduce and scalef, the last two for two
  // cycles each) and what takes the FMA ports (mul, a compare into a mask).
  std::printf("beside the adds:\n");
  beside<true>("nothing", [](__m512 x, __m512) { return x; });
  beside<true>("fma", fma);
  beside<true>("mul", mul);
  beside<true>("max", max);
  beside<true>("reduce", reduce);
  beside<true>("scalef", scalef);
  beside<true>("permps", perm);
  beside<true>("cmp+maskz", cmp_maskz);
  std::printf("the kernels' exponential (exp2_n: 8 instructions, 6 of them FMAs, since the thirty-ninth session) beside the FMAs:\n");
  exps_beside_fma<0>();
  exps_beside_fma<1>();
  exps_beside_fma<2>();
  exps_beside_fma<3>();
  std::printf("the full-block softmax's loop (Zen 4 at 3.67 GHz: 0.27 ns a cycle):\n");
  softmax_loop<float, 6, 6>();
  softmax_loop<float, 6, 3>();
  softmax_loop<float, 6, 2>();
  softmax_loop<double, 6, 6>();
  softmax_loop<double, 6, 3>();
  softmax_loop<double, 6, 2>();
  return 0;
}

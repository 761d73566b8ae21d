// A C++ driver for kernel work: times tileattn::attention on one shape, without Python in the way.
//   bench_core S D [causal=0] [threads=1] [dtype=f32|f64] [isa=auto|avx512|avx2|baseline] [B=1] [Hq=8] [Hkv=Hq] [Sq=S]
// Prints the best GFLOP/s of several timed calls (2*B*Hq*visible_pairs*(D+Dv) flops).
#include <tileattn/tileattn.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

template <class T>
double run(int64_t b, int64_t hq, int64_t hkv, int64_t sq, int64_t sk, int64_t d, bool causal, int threads,
           tileattn::Isa isa) {
  std::mt19937 gen(1);
  std::normal_distribution<float> nd;
  std::vector<T> q(b * hq * sq * d), k(b * hkv * sk * d), v(b * hkv * sk * d), o(b * hq * sq * d);
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = nd(gen);
  tileattn::Params p;
  p.dtype = sizeof(T) == 8 ? tileattn::DType::kFloat64 : tileattn::DType::kFloat32;
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = o.data();
  p.batch = b, p.heads_q = hq, p.heads_kv = hkv, p.seq_q = sq, p.seq_k = sk, p.head_dim = d, p.head_dim_v = d;
  const auto qs = tileattn::contiguous_bhsd(hq, sq, d), ks = tileattn::contiguous_bhsd(hkv, sk, d);
  p.q_batch_stride = qs.batch, p.q_head_stride = qs.head, p.q_seq_stride = qs.seq;
  p.out_batch_stride = qs.batch, p.out_head_stride = qs.head, p.out_seq_stride = qs.seq;
  p.k_batch_stride = ks.batch, p.k_head_stride = ks.head, p.k_seq_stride = ks.seq;
  p.v_batch_stride = ks.batch, p.v_head_stride = ks.head, p.v_seq_stride = ks.seq;
  p.scale = 1.0 / std::sqrt(double(d));
  p.causal = causal;
  p.num_threads = threads;
  p.isa = isa;
  double pairs = 0;
  for (int64_t i = 0; i < sq; ++i) pairs += causal ? std::clamp<int64_t>(i + sk - sq + 1, 0, sk) : sk;
  const double flops = 2.0 * b * hq * pairs * 2 * d;
  tileattn::attention(p);
  double best = 1e30;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < 50; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    tileattn::attention(p);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > 2.0 && r >= 4) break;
  }
  return flops / best / 1e9;
}

int main(int argc, char** argv) {
  auto arg = [&](int i, const char* dflt) { return std::string(argc > i ? argv[i] : dflt); };
  const int64_t s = std::stoll(arg(1, "2048")), d = std::stoll(arg(2, "64"));
  const bool causal = arg(3, "0") == "1";
  const int threads = std::stoi(arg(4, "1"));
  const bool f64 = arg(5, "f32") == "f64";
  const std::string isa_s = arg(6, "auto");
  const tileattn::Isa isa = isa_s == "avx512" ? tileattn::Isa::kAvx512
                            : isa_s == "avx2" ? tileattn::Isa::kAvx2
                            : isa_s == "baseline" ? tileattn::Isa::kBaseline
                                                  : tileattn::Isa::kAuto;
  const int64_t b = std::stoll(arg(7, "1")), hq = std::stoll(arg(8, "8"));
  const int64_t hkv = std::stoll(arg(9, std::to_string(hq).c_str())), sq = std::stoll(arg(10, std::to_string(s).c_str()));
  const double g = f64 ? run<double>(b, hq, hkv, sq, s, d, causal, threads, isa)
                       : run<float>(b, hq, hkv, sq, s, d, causal, threads, isa);
  const double peak = tileattn::probe_fma_gflops(threads, f64, 0.3);
  std::printf("%.1f GFLOP/s  (probe peak %.0f: %.0f%%)\n", g, peak, 100 * g / peak);
  return 0;
}

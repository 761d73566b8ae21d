// C++ example: causal GQA attention with the LSE through tileattn::attention, without Python.
//
//   ./attend              prints a summary
//   ./attend out.bin      also writes out (float32, bhsd) followed by lse (float32, bhs)
//
// The inputs are q[i] = sin(0.37 i), k[i] = cos(0.11 i), v[i] = sin(0.23 i + 1) over the flat index of
// contiguous bhsd arrays, so that any other program (the tests) can rebuild them.
#include <tileattn/tileattn.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

int main(int argc, char** argv) {
  const int64_t batch = 2, heads_q = 4, heads_kv = 2, seq_q = 37, seq_k = 45, dim = 40, dim_v = 24;
  std::vector<float> q(batch * heads_q * seq_q * dim), k(batch * heads_kv * seq_k * dim),
      v(batch * heads_kv * seq_k * dim_v), out(batch * heads_q * seq_q * dim_v), lse(batch * heads_q * seq_q);
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(std::cos(0.11 * static_cast<double>(i)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(std::sin(0.23 * static_cast<double>(i) + 1.0));

  tileattn::Params p;  // one struct describes the whole call
  p.dtype = tileattn::DType::kFloat32;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.lse = lse.data();
  p.batch = batch;
  p.heads_q = heads_q;
  p.heads_kv = heads_kv;  // query head h reads KV head h / (heads_q / heads_kv)
  p.seq_q = seq_q;
  p.seq_k = seq_k;
  p.head_dim = dim;
  p.head_dim_v = dim_v;
  const tileattn::Strides4 sq = tileattn::contiguous_bhsd(heads_q, seq_q, dim);
  const tileattn::Strides4 sk = tileattn::contiguous_bhsd(heads_kv, seq_k, dim);
  const tileattn::Strides4 sv = tileattn::contiguous_bhsd(heads_kv, seq_k, dim_v);
  const tileattn::Strides4 so = tileattn::contiguous_bhsd(heads_q, seq_q, dim_v);
  p.q_batch_stride = sq.batch, p.q_head_stride = sq.head, p.q_seq_stride = sq.seq, p.q_dim_stride = sq.dim;
  p.k_batch_stride = sk.batch, p.k_head_stride = sk.head, p.k_seq_stride = sk.seq, p.k_dim_stride = sk.dim;
  p.v_batch_stride = sv.batch, p.v_head_stride = sv.head, p.v_seq_stride = sv.seq, p.v_dim_stride = sv.dim;
  p.out_batch_stride = so.batch, p.out_head_stride = so.head, p.out_seq_stride = so.seq, p.out_dim_stride = so.dim;
  p.lse_batch_stride = heads_q * seq_q, p.lse_head_stride = seq_q, p.lse_seq_stride = 1;
  p.scale = 1.0 / std::sqrt(static_cast<double>(dim));
  p.causal = true;  // bottom-right: query i sees keys j <= i + (seq_k - seq_q)
  tileattn::attention(p);

  // Bad input is reported with std::invalid_argument naming the field.
  tileattn::Params bad = p;
  bad.heads_kv = 3;
  try {
    tileattn::attention(bad);
    std::printf("error: a bad call was accepted\n");
    return 1;
  } catch (const std::invalid_argument& e) {
    std::printf("rejected as expected: %s\n", e.what());
  }

  double checksum = 0;
  for (float x : out) checksum += x;
  std::printf("tileattn %s: out (%lld, %lld, %lld, %lld), checksum %.6f, lse[0] %.6f\n", tileattn::version(),
              static_cast<long long>(batch), static_cast<long long>(heads_q), static_cast<long long>(seq_q),
              static_cast<long long>(dim_v), checksum, static_cast<double>(lse[0]));
  if (argc > 1) {
    std::FILE* f = std::fopen(argv[1], "wb");
    if (f == nullptr) return 1;
    std::fwrite(out.data(), sizeof(float), out.size(), f);
    std::fwrite(lse.data(), sizeof(float), lse.size(), f);
    std::fclose(f);
  }
  return 0;
}

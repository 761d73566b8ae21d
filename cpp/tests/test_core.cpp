// C++ tests of the core, without Python: the tiled kernel at every instruction-set level this CPU runs
// against the scalar reference path (which accumulates in double / long double), thread-count
// determinism, strided layouts, empty cases and parameter errors. Exit status 0 when all pass.
#include <tileattn/tileattn.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int g_failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

struct Problem {
  int64_t b, hq, hkv, sq, sk, d, dv;
  bool causal;
  bool bshd = false;  // layout of q, k, v and out in memory
};

template <class T>
struct Arrays {
  std::vector<T> q, k, v, out;
  std::vector<T> lse;
};

template <class T>
tileattn::DType dtype_of();
template <>
tileattn::DType dtype_of<float>() {
  return tileattn::DType::kFloat32;
}
template <>
tileattn::DType dtype_of<double>() {
  return tileattn::DType::kFloat64;
}

template <class T>
tileattn::Params make_params(const Problem& pr, Arrays<T>& a) {
  tileattn::Params p;
  p.dtype = dtype_of<T>();
  p.q = a.q.data(), p.k = a.k.data(), p.v = a.v.data(), p.out = a.out.data(), p.lse = a.lse.data();
  p.batch = pr.b, p.heads_q = pr.hq, p.heads_kv = pr.hkv, p.seq_q = pr.sq, p.seq_k = pr.sk;
  p.head_dim = pr.d, p.head_dim_v = pr.dv;
  auto strides = [&](int64_t h, int64_t s, int64_t d) {
    return pr.bshd ? tileattn::contiguous_bshd(h, s, d) : tileattn::contiguous_bhsd(h, s, d);
  };
  const auto qs = strides(pr.hq, pr.sq, pr.d), ks = strides(pr.hkv, pr.sk, pr.d);
  const auto vs = strides(pr.hkv, pr.sk, pr.dv), os = strides(pr.hq, pr.sq, pr.dv);
  p.q_batch_stride = qs.batch, p.q_head_stride = qs.head, p.q_seq_stride = qs.seq, p.q_dim_stride = qs.dim;
  p.k_batch_stride = ks.batch, p.k_head_stride = ks.head, p.k_seq_stride = ks.seq, p.k_dim_stride = ks.dim;
  p.v_batch_stride = vs.batch, p.v_head_stride = vs.head, p.v_seq_stride = vs.seq, p.v_dim_stride = vs.dim;
  p.out_batch_stride = os.batch, p.out_head_stride = os.head, p.out_seq_stride = os.seq;
  p.out_dim_stride = os.dim;
  p.lse_batch_stride = pr.hq * pr.sq, p.lse_head_stride = pr.sq, p.lse_seq_stride = 1;
  p.scale = 1.0 / std::sqrt(static_cast<double>(pr.d));
  p.causal = pr.causal;
  return p;
}

template <class T>
Arrays<T> random_arrays(const Problem& pr, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  Arrays<T> a;
  auto fill = [&](std::vector<T>& x, int64_t n) {
    x.resize(static_cast<size_t>(n));
    for (auto& e : x) e = static_cast<T>(normal(gen));
  };
  fill(a.q, pr.b * pr.hq * pr.sq * pr.d);
  fill(a.k, pr.b * pr.hkv * pr.sk * pr.d);
  fill(a.v, pr.b * pr.hkv * pr.sk * pr.dv);
  a.out.assign(static_cast<size_t>(pr.b * pr.hq * pr.sq * pr.dv), T(-7));
  a.lse.assign(static_cast<size_t>(pr.b * pr.hq * pr.sq), T(-7));
  return a;
}

double rel_err(const std::vector<double>& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class T>
std::vector<double> as_double(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

std::string describe(const Problem& pr, const char* what) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: b%lld hq%lld hkv%lld sq%lld sk%lld d%lld dv%lld causal%d %s", what,
                static_cast<long long>(pr.b), static_cast<long long>(pr.hq), static_cast<long long>(pr.hkv),
                static_cast<long long>(pr.sq), static_cast<long long>(pr.sk), static_cast<long long>(pr.d),
                static_cast<long long>(pr.dv), pr.causal ? 1 : 0, pr.bshd ? "bshd" : "bhsd");
  return buf;
}

template <class T>
void check_problem(const Problem& pr, tileattn::Isa isa) {
  const double tol = std::is_same_v<T, float> ? 2e-6 : 4e-15;
  Arrays<T> ref = random_arrays<T>(pr, 42);
  tileattn::Params pref = make_params(pr, ref);
  pref.path = tileattn::KernelPath::kReference;
  tileattn::attention(pref);

  Arrays<T> a = random_arrays<T>(pr, 42);
  tileattn::Params p = make_params(pr, a);
  p.path = tileattn::KernelPath::kTiled;
  p.isa = isa;
  p.num_threads = 1;
  tileattn::attention(p);
  const double err = rel_err(as_double(a.out), as_double(ref.out));
  expect(err <= tol, describe(pr, tileattn::isa_name(isa)) + " error " + std::to_string(err));
  for (size_t i = 0; i < a.lse.size(); ++i) {
    const double x = a.lse[i], y = ref.lse[i];
    const bool ok = std::isinf(y) ? x == y : std::fabs(x - y) <= 64 * tol * std::fmax(1.0, std::fabs(y));
    if (!ok) {
      expect(false, describe(pr, "lse") + " at " + std::to_string(i));
      break;
    }
  }
  for (int threads : {2, 3, 7}) {  // bitwise identical for any thread count
    Arrays<T> b = random_arrays<T>(pr, 42);
    tileattn::Params pb = make_params(pr, b);
    pb.path = tileattn::KernelPath::kTiled;
    pb.isa = isa;
    pb.num_threads = threads;
    tileattn::attention(pb);
    expect(std::memcmp(b.out.data(), a.out.data(), a.out.size() * sizeof(T)) == 0 &&
               std::memcmp(b.lse.data(), a.lse.data(), a.lse.size() * sizeof(T)) == 0,
           describe(pr, "thread determinism") + " threads " + std::to_string(threads));
  }
}

std::vector<tileattn::Isa> runnable_isas() {
  std::vector<tileattn::Isa> out{tileattn::Isa::kBaseline};
  const auto best = tileattn::cpu_info().best_isa;
  for (auto isa : {tileattn::Isa::kAvx2, tileattn::Isa::kAvx512, tileattn::Isa::kAmx}) {
    if (static_cast<int>(isa) <= static_cast<int>(best)) out.push_back(isa);
  }
  return out;
}

void test_errors() {
  Problem pr{1, 4, 2, 8, 8, 16, 16, false};
  Arrays<float> a = random_arrays<float>(pr, 1);
  auto expect_throw = [&](const char* what, auto mutate, const char* needle) {
    tileattn::Params p = make_params(pr, a);
    mutate(p);
    try {
      tileattn::attention(p);
      expect(false, std::string(what) + ": no exception");
    } catch (const std::invalid_argument& e) {
      expect(std::strstr(e.what(), needle) != nullptr, std::string(what) + ": message '" + e.what() + "'");
    }
  };
  expect_throw("heads", [](tileattn::Params& p) { p.heads_kv = 3; }, "heads_q (4) must be a multiple of heads_kv (3)");
  expect_throw("head_dim", [](tileattn::Params& p) { p.head_dim = 0; }, "head_dim must be >= 1");
  expect_throw("scale", [](tileattn::Params& p) { p.scale = std::nan(""); }, "scale must be finite");
  expect_throw("seq", [](tileattn::Params& p) { p.seq_q = -1; }, "seq_q must be >= 0");
  expect_throw("null q", [](tileattn::Params& p) { p.q = nullptr; }, "q is null");
  expect_throw("threads", [](tileattn::Params& p) { p.num_threads = -2; }, "num_threads must be >= 0");
  using P = tileattn::Params;
  expect_throw("too many threads", [](P& p) { p.num_threads = 5000; }, "num_threads must be at most 4096");
  // Offsets past int64 (2^62 x 4 bytes would wrap onto batch 0), a stride of INT64_MIN, sizes whose product
  // overflows: errors naming the array or the sizes, never a wrapped read or write.
  expect_throw("q stride", [](P& p) { p.batch = 2, p.q_batch_stride = int64_t{1} << 62; }, "q: its strides reach");
  expect_throw(
      "out stride", [](P& p) { p.out_seq_stride = std::numeric_limits<int64_t>::max(); }, "out: its strides reach");
  expect_throw("k stride", [](P& p) { p.k_seq_stride = std::numeric_limits<int64_t>::min(); }, "k: its strides reach");
  expect_throw("size", [](P& p) { p.batch = int64_t{1} << 62; }, "the problem is too large");
  // out and lse may not overlap themselves: their rows' writes would race (results by thread count).
  expect_throw("out zero stride", [](P& p) { p.out_seq_stride = 0; }, "out: its strides give two elements");
  expect_throw("lse zero stride", [](P& p) { p.lse_head_stride = 0; }, "lse: its strides give two elements");
}

// out overlapping q and lse overlapping k: the results are those computed from the inputs as they were.
void test_out_overlapping_inputs() {
  const Problem pr{2, 4, 2, 40, 40, 16, 16, true};
  Arrays<float> a = random_arrays<float>(pr, 7);
  tileattn::Params p = make_params(pr, a);
  p.num_threads = 2;
  tileattn::attention(p);  // into separate arrays
  Arrays<float> b = random_arrays<float>(pr, 7);
  tileattn::Params alias = make_params(pr, b);
  alias.num_threads = 2;
  alias.out = b.q.data();  // q and out have one shape here (D = Dv)
  alias.lse = b.k.data();  // lse over k's first elements
  tileattn::attention(alias);
  const bool same = std::memcmp(b.q.data(), a.out.data(), a.out.size() * sizeof(float)) == 0 &&
                    std::memcmp(b.k.data(), a.lse.data(), a.lse.size() * sizeof(float)) == 0;
  expect(same, "out over q and lse over k give the bits of a call into separate arrays");
}

void test_no_keys() {
  Problem pr{2, 2, 1, 5, 0, 8, 3, true};
  Arrays<float> a = random_arrays<float>(pr, 3);
  tileattn::Params p = make_params(pr, a);
  tileattn::attention(p);
  bool ok = true;
  for (float x : a.out) ok = ok && x == 0.0f && !std::signbit(x);
  for (float x : a.lse) ok = ok && x == -std::numeric_limits<float>::infinity();
  expect(ok, "seq_k = 0 gives +0 and -inf");
}

}  // namespace

int main() {
  const std::vector<Problem> problems = {
      {1, 2, 1, 1, 1, 1, 1, false},     {1, 2, 2, 37, 70, 3, 5, true},    {2, 6, 3, 113, 203, 59, 31, true},
      {1, 4, 1, 203, 113, 64, 64, true}, {1, 2, 2, 129, 257, 128, 128, false}, {1, 8, 2, 1, 1000, 128, 128, true},
      {2, 4, 2, 64, 300, 256, 16, false}, {1, 3, 3, 100, 100, 111, 111, true},
  };
  for (auto isa : runnable_isas()) {
    for (Problem pr : problems) {
      check_problem<float>(pr, isa);
      check_problem<double>(pr, isa);
      pr.bshd = true;
      check_problem<float>(pr, isa);
    }
  }
  test_errors();
  test_no_keys();
  test_out_overlapping_inputs();
  std::printf("tileattn core tests: %s (isas:", g_failures == 0 ? "ok" : "FAILED");
  for (auto isa : runnable_isas()) std::printf(" %s", tileattn::isa_name(isa));
  std::printf(")\n");
  return g_failures == 0 ? 0 : 1;
}

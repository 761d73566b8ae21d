// The entry point: checks the params struct, then dispatches dtype x kernel path x instruction set.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu_features.hpp"
#include "kernels.hpp"
#include "thread_pool.hpp"
#include "validate.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn {
namespace {

// Head dims beyond this can never fit their scratch rows; reject them before any size arithmetic.
constexpr int64_t kMaxHeadDim = int64_t{1} << 40;

// Problems larger than this (batch x heads x seq x head_dim) are refused: no int64 index can overflow.
constexpr int64_t kMaxProblemSize = int64_t{1} << 56;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

// *r = a * b, or false on overflow (a, b >= 0).
bool mul_ok(int64_t a, int64_t b, int64_t* r) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return false;
  *r = a * b;
  return true;
}
bool add_ok(int64_t a, int64_t b, int64_t* r) {
  if (b > std::numeric_limits<int64_t>::max() - a) return false;
  *r = a + b;
  return true;
}

// One dimension of an array: its extent and stride (in elements).
struct Dim {
  int64_t extent, stride;
};

// An array of a call: its pointer, dims (unused ones of extent 1) and element size in bytes.
struct ArrayDesc {
  const char* name;
  const void* data;
  std::array<Dim, 4> dims;
  int64_t elem;
};

int64_t dtype_bytes(DType t) { return t == DType::kFloat64 ? 8 : t == DType::kFloat32 ? 4 : 2; }

// The arrays the call reads (those present), then out, then lse (when present): packed sequences have one
// batch (their batch strides are unused).
// At most the 12 arrays of a call, held without allocating (this runs on every call).
struct ArrayList {
  std::array<ArrayDesc, 12> items;
  int n = 0;
  const ArrayDesc* begin() const { return items.data(); }
  const ArrayDesc* end() const { return items.data() + n; }
};

ArrayList arrays_of(const Params& p) {
  const int64_t nb = p.cu_seqlens_q != nullptr ? 1 : p.batch, es = dtype_bytes(p.dtype);
  ArrayList a;
  const auto add = [&a](const char* name, const void* data, Dim d0, Dim d1, Dim d2, Dim d3, int64_t elem) {
    a.items[static_cast<size_t>(a.n++)] = {name, data, {{d0, d1, d2, d3}}, elem};
  };
  const Dim none{1, 0};
  add("q", p.q, {nb, p.q_batch_stride}, {p.heads_q, p.q_head_stride}, {p.seq_q, p.q_seq_stride},
      {p.head_dim, p.q_dim_stride}, es);
  if (p.seq_k > 0) {
    add("k", p.k, {nb, p.k_batch_stride}, {p.heads_kv, p.k_head_stride}, {p.seq_k, p.k_seq_stride},
        {p.head_dim, p.k_dim_stride}, es);
    add("v", p.v, {nb, p.v_batch_stride}, {p.heads_kv, p.v_head_stride}, {p.seq_k, p.v_seq_stride},
        {p.head_dim_v, p.v_dim_stride}, es);
  }
  if (p.mask != nullptr) {
    add("mask", p.mask, {p.batch, p.mask_batch_stride}, {p.heads_q, p.mask_head_stride},
        {p.seq_q, p.mask_seq_stride}, {p.seq_k, p.mask_key_stride}, 1);
  }
  if (p.bias != nullptr) {
    add("bias", p.bias, {p.batch, p.bias_batch_stride}, {p.heads_q, p.bias_head_stride},
        {p.seq_q, p.bias_seq_stride}, {p.seq_k, p.bias_key_stride}, dtype_bytes(p.bias_dtype));
  }
  if (p.alibi_slopes != nullptr) {
    add("alibi_slopes", p.alibi_slopes, {p.batch, p.alibi_batch_stride}, {p.heads_q, p.alibi_head_stride}, none,
        none, 8);
  }
  if (p.q_lengths != nullptr) add("q_lengths", p.q_lengths, {p.batch, 1}, none, none, none, 8);
  if (p.kv_lengths != nullptr) add("kv_lengths", p.kv_lengths, {p.batch, 1}, none, none, none, 8);
  if (p.cu_seqlens_q != nullptr) add("cu_seqlens_q", p.cu_seqlens_q, {p.batch + 1, 1}, none, none, none, 8);
  if (p.cu_seqlens_k != nullptr) add("cu_seqlens_k", p.cu_seqlens_k, {p.batch + 1, 1}, none, none, none, 8);
  add("out", p.out, {nb, p.out_batch_stride}, {p.heads_q, p.out_head_stride}, {p.seq_q, p.out_seq_stride},
      {p.head_dim_v, p.out_dim_stride}, es);
  if (p.lse != nullptr) {
    add("lse", p.lse, {nb, p.lse_batch_stride}, {p.heads_q, p.lse_head_stride}, {p.seq_q, p.lse_seq_stride},
        none, p.dtype == DType::kFloat64 ? 8 : 4);
  }
  return a;
}

// The element offsets an array's strides reach: [lo, hi] relative to its pointer. Fails, naming the array,
// when they (in bytes) would not fit in int64.
std::pair<int64_t, int64_t> reach(const ArrayDesc& a) {
  int64_t lo = 0, hi = 0, span = 0;
  for (const Dim d : a.dims) {
    if (d.extent <= 1) continue;
    int64_t step = 0;
    if (d.stride == std::numeric_limits<int64_t>::min() || !mul_ok(std::abs(d.stride), d.extent - 1, &step) ||
        !add_ok(span, step, &span)) {
      span = -1;
      break;
    }
    if (d.stride < 0) {
      lo -= step;
    } else {
      hi += step;
    }
  }
  int64_t bytes = 0;
  if (span < 0 || !mul_ok(span + 1, a.elem, &bytes)) {
    fail(std::string(a.name) + ": its strides reach offsets beyond the int64 range (|stride| x (extent - 1), summed)");
  }
  return {lo, hi};
}

// Whether no two elements of an array share an address, by a sufficient test: with the dims sorted by
// |stride|, each stride steps past everything the smaller ones span (a zero stride fails it).
bool distinct_elements(std::array<Dim, 4> dims) {
  std::sort(dims.begin(), dims.end(), [](Dim x, Dim y) { return std::abs(x.stride) < std::abs(y.stride); });
  int64_t span = 1;
  for (const Dim d : dims) {
    if (d.extent <= 1) continue;
    if (std::abs(d.stride) < span) return false;
    span += std::abs(d.stride) * (d.extent - 1);  // within int64: reach() checked it
  }
  return true;
}

// The bytes [first, last] an array may touch (its reach checked).
std::pair<uintptr_t, uintptr_t> byte_range(const ArrayDesc& a) {
  const auto [lo, hi] = reach(a);
  const auto base = reinterpret_cast<uintptr_t>(a.data);
  return {base + static_cast<uintptr_t>(lo * a.elem), base + static_cast<uintptr_t>(hi * a.elem + a.elem - 1)};
}

void check_nonnegative(int64_t value, const char* name) {
  if (value < 0) fail(std::string(name) + " must be >= 0, got " + std::to_string(value));
}

// Checks everything but the data pointers.
void validate_shape(const Params& p) {
  switch (p.dtype) {
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
      break;
    default:
      fail("dtype is not one of float32, float64, float16, bfloat16");
  }
  check_nonnegative(p.batch, "batch");
  check_nonnegative(p.heads_q, "heads_q");
  check_nonnegative(p.heads_kv, "heads_kv");
  check_nonnegative(p.seq_q, "seq_q");
  check_nonnegative(p.seq_k, "seq_k");
  if (p.head_dim < 1) fail("head_dim must be >= 1, got " + std::to_string(p.head_dim));
  if (p.head_dim_v < 1) fail("head_dim_v must be >= 1, got " + std::to_string(p.head_dim_v));
  if (p.heads_q > 0 && p.heads_kv < 1) fail("heads_kv must be >= 1 when heads_q > 0");
  if (p.heads_kv > 0 && p.heads_q % p.heads_kv != 0) {
    fail("heads_q (" + std::to_string(p.heads_q) + ") must be a multiple of heads_kv (" +
         std::to_string(p.heads_kv) + ")");
  }
  if (!std::isfinite(p.scale)) fail("scale must be finite");
  if (p.num_threads < 0) fail("num_threads must be >= 0 (0 = default), got " + std::to_string(p.num_threads));
  if (p.path != KernelPath::kAuto && p.path != KernelPath::kTiled && p.path != KernelPath::kReference) {
    fail("path is not a KernelPath");
  }
  if (p.isa != Isa::kAuto && !detail::isa_runnable(p.isa)) {
    fail(std::string("isa ") + isa_name(p.isa) + " is not compiled in or not supported by this CPU");
  }
  if (p.head_dim > kMaxHeadDim || p.head_dim_v > kMaxHeadDim) throw std::bad_alloc();
  if (!std::isfinite(p.softcap) || p.softcap < 0) fail("softcap must be finite and >= 0");
  switch (p.bias_dtype) {
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
      break;
    default:
      fail("bias_dtype is not one of float32, float64, float16, bfloat16");
  }
  if (p.num_threads > detail::kMaxThreads) {
    fail("num_threads must be at most " + std::to_string(detail::kMaxThreads) + ", got " +
         std::to_string(p.num_threads));
  }
  // Every index the kernels form (rows, work items, element offsets) stays within int64, with room to spare.
  int64_t size = 1;
  const int64_t heads = std::max(p.heads_q, p.heads_kv), seq = std::max(p.seq_q, p.seq_k);
  for (int64_t n : {p.batch, heads, seq, std::max(p.head_dim, p.head_dim_v)}) {
    if (!mul_ok(size, n, &size) || size > kMaxProblemSize) {
      fail("the problem is too large: batch x heads x seq x head_dim exceeds 2^56");
    }
  }
  if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr)) fail("give both cu_seqlens_q and cu_seqlens_k, or neither");
  if (p.cu_seqlens_q != nullptr && (p.q_lengths != nullptr || p.kv_lengths != nullptr || p.mask != nullptr || p.bias != nullptr)) {
    fail("packed sequences (cu_seqlens) do not combine with q_lengths, kv_lengths, mask or bias");
  }
}

// Checks the values behind the pointers of lengths and offsets (after the shape checks).
void validate_lengths(const Params& p) {
  auto check = [](const int64_t* values, int64_t n, int64_t most, const char* name) {
    for (int64_t b = 0; b < n; ++b) {
      if (values[b] < 0 || values[b] > most) {
        fail(std::string(name) + "[" + std::to_string(b) + "] = " + std::to_string(values[b]) + " is outside [0, " +
             std::to_string(most) + "]");
      }
    }
  };
  if (p.q_lengths != nullptr) check(p.q_lengths, p.batch, p.seq_q, "q_lengths");
  if (p.kv_lengths != nullptr) check(p.kv_lengths, p.batch, p.seq_k, "kv_lengths");
  auto check_offsets = [](const int64_t* cu, int64_t n, int64_t total, const char* name) {
    if (cu[0] != 0) fail(std::string(name) + "[0] must be 0");
    for (int64_t b = 0; b < n; ++b) {
      if (cu[b + 1] < cu[b]) fail(std::string(name) + " must be non-decreasing");
    }
    if (cu[n] > total) fail(std::string(name) + "[-1] = " + std::to_string(cu[n]) + " exceeds the sequence axis (" + std::to_string(total) + ")");
  };
  if (p.cu_seqlens_q != nullptr) {
    check_offsets(p.cu_seqlens_q, p.batch, p.seq_q, "cu_seqlens_q");
    check_offsets(p.cu_seqlens_k, p.batch, p.seq_k, "cu_seqlens_k");
  }
}

}  // namespace

void detail::validate(const Params& p) {
  validate_shape(p);
  validate_lengths(p);
  const bool any_rows = p.batch > 0 && p.heads_q > 0 && p.seq_q > 0;
  if (any_rows) {
    if (p.q == nullptr) fail("q is null");
    if (p.out == nullptr) fail("out is null");
    if (p.seq_k > 0 && (p.k == nullptr || p.v == nullptr)) fail("k and v must not be null when seq_k > 0");
    for (const ArrayDesc& a : arrays_of(p)) {
      reach(a);
      const bool output = std::strcmp(a.name, "out") == 0 || std::strcmp(a.name, "lse") == 0;
      if (output && !distinct_elements(a.dims)) {
        fail(std::string(a.name) + ": its strides give two elements one address (" + a.name +
             " must not overlap itself; zero strides broadcast inputs only)");
      }
    }
  }
  if (any_rows && p.seq_k > 0) {
    if (p.alibi_slopes != nullptr) {
      for (int64_t b = 0; b < (p.alibi_batch_stride == 0 ? 1 : p.batch); ++b) {
        for (int64_t h = 0; h < p.heads_q; ++h) {
          if (!std::isfinite(p.alibi_slopes[b * p.alibi_batch_stride + h * p.alibi_head_stride])) {
            fail("alibi_slopes must be finite");
          }
        }
      }
    }
  }
}

namespace {

int threads_for(const Params& p) { return p.num_threads > 0 ? p.num_threads : get_num_threads(); }

Isa isa_for(const Params& p) { return p.isa == Isa::kAuto ? detail::selected_isa() : p.isa; }

// Whether some ALiBi slope times a distance could overflow the tiled kernels' working precision (float32
// for all but float64 inputs; slopes are only checked finite as float64): such calls run on the reference
// path, in double (long double for float64), which gives the exact result where the tiled kernels would
// give NaN (an infinite slope times the diagonal's distance 0). Never in ordinary use (slopes are < 1).
bool alibi_beyond_range(const Params& p) {
  if (p.alibi_slopes == nullptr) return false;
  const double largest = p.dtype == DType::kFloat64 ? std::numeric_limits<double>::max()
                                                    : static_cast<double>(std::numeric_limits<float>::max());
  const double limit = largest / (4.0 * (static_cast<double>(p.seq_q) + static_cast<double>(p.seq_k) + 1.0));
  const int64_t batches = p.alibi_batch_stride != 0 ? p.batch : 1;
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t h = 0; h < p.heads_q; ++h) {
      if (std::fabs(p.alibi_slopes[b * p.alibi_batch_stride + h * p.alibi_head_stride]) > limit) return true;
    }
  }
  return false;
}

// Whether |scale| / softcap, the tiled kernels' multiplier inside the tanh, would fall below the normal
// range of their working precision (flushed to 0 there: a softcap near the dtype's largest value). Such
// calls run on the reference path too.
bool softcap_beyond_range(const Params& p) {
  if (!(p.softcap > 0) || p.scale == 0) return false;
  const double smallest = p.dtype == DType::kFloat64 ? 0x1p-1000 : 0x1p-100;
  return std::fabs(p.scale) / p.softcap < smallest;
}

// A zero scale: every score is 0 times q . k, which the tiled kernels' products (float32 for all but
// float64 inputs) may overflow to inf, and 0 x inf would make NaN of a row the oracle computes as the
// uniform mean. Such calls run on the reference path (q . k in double, long double for float64). Never in
// ordinary use.
bool zero_scale(const Params& p) { return p.scale == 0; }

}  // namespace

std::pair<const char*, const char*> detail::overlapping_output(const Params& p, bool device_arrays) {
  const auto is_output = [](const ArrayDesc& a) {
    return std::strcmp(a.name, "out") == 0 || std::strcmp(a.name, "lse") == 0;
  };
  const auto on_device = [](const ArrayDesc& a) {
    for (const char* name : {"q", "k", "v", "mask", "bias"}) {
      if (std::strcmp(a.name, name) == 0) return true;
    }
    return false;
  };
  const ArrayList arrays = arrays_of(p);
  for (const ArrayDesc& o : arrays) {
    if (!is_output(o)) continue;
    const auto [o_lo, o_hi] = byte_range(o);
    for (const ArrayDesc& a : arrays) {
      if (is_output(a) || (device_arrays && !on_device(a))) continue;
      const auto [a_lo, a_hi] = byte_range(a);
      if (o_lo <= a_hi && a_lo <= o_hi) return {o.name, a.name};
    }
  }
  return {nullptr, nullptr};
}

namespace {

// Copies the dense (nb, heads, seq, dim) array `from` into `to` with the given strides, element by element.
void copy_into(const unsigned char* from, void* to, const std::array<Dim, 4>& dims, int64_t elem) {
  int64_t n = 0;
  for (int64_t b = 0; b < dims[0].extent; ++b) {
    for (int64_t h = 0; h < dims[1].extent; ++h) {
      for (int64_t i = 0; i < dims[2].extent; ++i) {
        for (int64_t d = 0; d < dims[3].extent; ++d, ++n) {
          const int64_t at = b * dims[0].stride + h * dims[1].stride + i * dims[2].stride + d * dims[3].stride;
          std::memcpy(static_cast<unsigned char*>(to) + at * elem, from + n * elem, static_cast<size_t>(elem));
        }
      }
    }
  }
}

void run(const Params& p);

// out or lse overlaps an input: computed into dense arrays first, then copied in, so that the result is as
// if the inputs had been copied (the caller's memory is written only after everything was read).
void run_aside(const Params& p) {
  const ArrayList arrays = arrays_of(p);
  Params aside = p;
  std::vector<unsigned char> memory[2];
  std::array<Dim, 4> dims[2];
  for (const ArrayDesc& a : arrays) {
    const int which = std::strcmp(a.name, "out") == 0 ? 0 : std::strcmp(a.name, "lse") == 0 ? 1 : -1;
    if (which < 0) continue;
    dims[which] = a.dims;
    int64_t n = 1;
    for (const Dim d : a.dims) n *= d.extent;  // within the problem size checked by validate
    memory[which].resize(static_cast<size_t>(n * a.elem));
    // Dense strides of the same logical shape.
    int64_t stride = 1;
    int64_t dense[4];
    for (int x = 3; x >= 0; --x) dense[x] = stride, stride *= a.dims[x].extent;
    if (which == 0) {
      aside.out = memory[0].data();
      aside.out_batch_stride = dense[0], aside.out_head_stride = dense[1], aside.out_seq_stride = dense[2];
      aside.out_dim_stride = dense[3];
    } else {
      aside.lse = memory[1].data();
      aside.lse_batch_stride = dense[0], aside.lse_head_stride = dense[1], aside.lse_seq_stride = dense[2];
    }
  }
  run(aside);
  copy_into(memory[0].data(), p.out, dims[0], dtype_bytes(p.dtype));
  if (p.lse != nullptr) copy_into(memory[1].data(), p.lse, dims[1], p.dtype == DType::kFloat64 ? 8 : 4);
}

}  // namespace

void attention(const Params& p) {
  detail::validate(p);
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return;
  if (detail::overlapping_output(p, false).first != nullptr) {
    run_aside(p);
  } else {
    run(p);
  }
}

namespace {

// A rough single-thread time of a tiled call, in microseconds: its multiply-adds (the pairs of the causal
// band, or of the whole matrix; masks, windows and lengths ignored) at a rate per
// instruction set, plus its q, k, v and output bytes at a rate of one core's reads. The rates are about
// what one core of the development machines reaches (AVX-512 float32 about 80 GFLOP/s); they only decide
// how many threads a small call is worth.
double solo_microseconds(const Params& p, Isa isa) {
  const double sq = static_cast<double>(p.seq_q), sk = static_cast<double>(p.seq_k);
  double pairs = sq * sk;
  if (p.causal) {
    const double offset = p.top_left ? 0.0 : sk - sq;  // row i sees min(sk, i + offset + 1) keys
    const double first = std::clamp(offset + 1.0, 0.0, sk), last = std::clamp(offset + sq, 0.0, sk);
    pairs = std::min(pairs, sq * (first + last) / 2.0);  // the trapezoid of the first and last rows
  }
  const double dims = static_cast<double>(p.head_dim + p.head_dim_v);
  const double macs = static_cast<double>(p.batch) * static_cast<double>(p.heads_q) * pairs * dims;
  double macs_per_us = isa == Isa::kAmx || isa == Isa::kAvx512 ? 40e3 : isa == Isa::kAvx2 ? 20e3 : 5e3;
  if (p.dtype == DType::kFloat64) macs_per_us /= 2;
  const double item = p.dtype == DType::kFloat64 ? 8.0 : p.dtype == DType::kFloat32 ? 4.0 : 2.0;
  const double bytes = item * static_cast<double>(p.batch) * dims *
                       (static_cast<double>(p.heads_q) * sq + static_cast<double>(p.heads_kv) * sk);
  return macs / macs_per_us + bytes / 15e3;
}

// Below this single-thread time a call runs on the calling thread alone: the second thread saves less
// than it costs to hand out and collect the work, even from workers spinning between calls.
constexpr double kSoloMicroseconds = 20;
// Below this one, also while the pool's workers sleep: waking one, which lands on the caller's CPU and must
// move off it, took 50-300 us on the development machine's guest (a two-thread call of B1 H8 S48 D64,
// 95 us on one thread, took 250 us after a pause of 1 ms). Such a call wakes them for the next one instead.
constexpr double kWakeMicroseconds = 400;

// The threads a tiled call uses: those asked for, or one for a call too small to share (see above).
// Results do not depend on the thread count, so this only changes the speed. TILEATTN_SPLIT_SMALL_CALLS=1
// turns this off (the tests of that independence use it, so that small calls run on the threads asked for).
int useful_threads(const Params& p, int threads, Isa isa) {
  if (threads <= 1) return threads;
  const double solo = solo_microseconds(p, isa);
  if (solo >= kWakeMicroseconds) return threads;
  if (const char* split = std::getenv("TILEATTN_SPLIT_SMALL_CALLS"); split != nullptr && split[0] == '1') {
    return threads;
  }
  if (solo < kSoloMicroseconds) return 1;
  if (detail::workers_asleep()) {
    detail::wake_workers(solo);
    return 1;
  }
  return threads;
}

void run(const Params& p) {
  int threads = threads_for(p);
  if (p.path == KernelPath::kReference || alibi_beyond_range(p) || softcap_beyond_range(p) || zero_scale(p)) {
    kernels::reference_attention(p, threads);
    return;
  }
  threads = useful_threads(p, threads, isa_for(p));
  switch (isa_for(p)) {
#ifdef TILEATTN_HAVE_AMX
    case Isa::kAmx:
      kernels::amx::tiled_attention(p, threads);
      return;
#endif
#ifdef TILEATTN_HAVE_AVX512
    case Isa::kAvx512:
      kernels::avx512::tiled_attention(p, threads);
      return;
#endif
#ifdef TILEATTN_HAVE_AVX2
    case Isa::kAvx2:
      kernels::avx2::tiled_attention(p, threads);
      return;
#endif
    default:
      kernels::baseline::tiled_attention(p, threads);
      return;
  }
}

}  // namespace

// (With the threads asked for: a small call may run on fewer, useful_threads, and then be tiled for those;
// the results are the same.)
TileInfo tile_info(const Params& p) {
  validate_shape(p);
  switch (isa_for(p)) {
#ifdef TILEATTN_HAVE_AMX
    case Isa::kAmx:
      return kernels::amx::tiled_tile_info(p, threads_for(p));
#endif
#ifdef TILEATTN_HAVE_AVX512
    case Isa::kAvx512:
      return kernels::avx512::tiled_tile_info(p, threads_for(p));
#endif
#ifdef TILEATTN_HAVE_AVX2
    case Isa::kAvx2:
      return kernels::avx2::tiled_tile_info(p, threads_for(p));
#endif
    default:
      return kernels::baseline::tiled_tile_info(p, threads_for(p));
  }
}

Strides4 contiguous_bhsd(int64_t heads, int64_t seq, int64_t dim) {
  return {heads * seq * dim, seq * dim, dim, 1};
}

Strides4 contiguous_bshd(int64_t heads, int64_t seq, int64_t dim) {
  return {seq * heads * dim, dim, heads * dim, 1};
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAuto:
      return "auto";
    case Isa::kBaseline:
      return "baseline";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAmx:
      return "amx";
  }
  return "unknown";
}

CpuInfo cpu_info() {
  const detail::CpuFeatures& f = detail::cpu_features();
  return CpuInfo{f.vendor, f.brand, f.names(), detail::best_supported_isa(), detail::selected_isa(),
                 detail::bf16_dot_enabled()};
}

}  // namespace tileattn

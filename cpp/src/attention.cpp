// The entry point: checks the params struct, then dispatches dtype x kernel path x instruction set.
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "cpu_features.hpp"
#include "kernels.hpp"
#include "validate.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn {
namespace {

// Head dims beyond this can never fit their scratch rows; reject them before any size arithmetic.
constexpr int64_t kMaxHeadDim = int64_t{1} << 40;

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

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

void attention(const Params& p) {
  detail::validate(p);
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return;
  const int threads = threads_for(p);
  if (p.path == KernelPath::kReference || alibi_beyond_range(p) || softcap_beyond_range(p) || zero_scale(p)) {
    kernels::reference_attention(p, threads);
    return;
  }
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
  return CpuInfo{f.vendor, f.brand, f.names(), detail::best_supported_isa(), detail::selected_isa()};
}

}  // namespace tileattn

// The entry point: checks the params struct, then dispatches dtype x kernel path x instruction set.
#include <cmath>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "cpu_features.hpp"
#include "kernels.hpp"
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
}

void validate(const Params& p) {
  validate_shape(p);
  const bool any_rows = p.batch > 0 && p.heads_q > 0 && p.seq_q > 0;
  if (any_rows) {
    if (p.q == nullptr) fail("q is null");
    if (p.out == nullptr) fail("out is null");
    if (p.seq_k > 0 && (p.k == nullptr || p.v == nullptr)) fail("k and v must not be null when seq_k > 0");
  }
}

int threads_for(const Params& p) { return p.num_threads > 0 ? p.num_threads : get_num_threads(); }

Isa isa_for(const Params& p) { return p.isa == Isa::kAuto ? detail::selected_isa() : p.isa; }

}  // namespace

void attention(const Params& p) {
  validate(p);
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return;
  const int threads = threads_for(p);
  if (p.path == KernelPath::kReference) {
    kernels::reference_attention(p, threads);
    return;
  }
  switch (isa_for(p)) {
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
  }
  return "unknown";
}

CpuInfo cpu_info() {
  const detail::CpuFeatures& f = detail::cpu_features();
  return CpuInfo{f.vendor, f.brand, f.names(), detail::best_supported_isa(), detail::selected_isa()};
}

}  // namespace tileattn

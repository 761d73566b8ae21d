// tileattn: exact softmax attention computed in tiles with an online softmax.
//
// Public C++17 API of the core. No Python here: this header is usable from any C++17 program.
//
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b, h, i, :] . k[b, h / group, j, :]) * v[b, h / group, j, :]
//   lse[b, h, i]    = log(sum_j exp(scale * q[b, h, i, :] . k[b, h / group, j, :]))      (natural log)
//
// where group = heads_q / heads_kv (GQA/MQA) and j runs over the keys the query row may see. With
// `causal`, query i sees keys j <= i + (seq_k - seq_q) (bottom-right alignment, as FlashAttention). A row
// that sees no key outputs +0.0 and its LSE is -inf. The score matrix is never materialised: the extra
// memory is O(threads x tile).
#pragma once

#include <cstdint>
#include "tileattn/tileattn.h"  // TILEATTN_API, TILEATTN_VERSION_STRING, and the C ABI
#include <string>
#include <vector>

namespace tileattn {

// Element type of q, k, v and out. float16 and bfloat16 are accumulated in float32; float64 in float64.
enum class DType : int32_t { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Which implementation runs. kAuto picks the tiled kernel for the best instruction set of this CPU;
// kReference is the plain scalar path (one row at a time, full score row), kept for testing.
enum class KernelPath : int32_t { kAuto = 0, kTiled = 1, kReference = 2 };

// Instruction-set level of the tiled kernels. kAuto = the best this CPU supports (or the level forced
// lower by the environment variable TILEATTN_ISA). A level above what the CPU supports is an error.
enum class Isa : int32_t { kAuto = -1, kBaseline = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

// The whole contract between a caller and the kernels. All strides are in elements (not bytes), may be
// zero or negative, and describe the logical layout (batch, head, seq, dim) whatever the memory order.
// Every offset they reach must fit in int64 bytes. out and lse must not overlap themselves (no zero strides
// there); they may overlap the inputs (then computed aside and copied in). batch x heads x seq x head_dim
// <= 2^56 and num_threads <= 4096.
struct Params {
  DType dtype = DType::kFloat32;

  const void* q = nullptr;  // (batch, heads_q, seq_q, head_dim)
  const void* k = nullptr;  // (batch, heads_kv, seq_k, head_dim)
  const void* v = nullptr;  // (batch, heads_kv, seq_k, head_dim_v)
  void* out = nullptr;      // (batch, heads_q, seq_q, head_dim_v), same dtype as q
  void* lse = nullptr;      // (batch, heads_q, seq_q); float64 when dtype is kFloat64, else float32; may be null

  int64_t batch = 0;
  int64_t heads_q = 0;
  int64_t heads_kv = 0;
  int64_t seq_q = 0;
  int64_t seq_k = 0;
  int64_t head_dim = 0;
  int64_t head_dim_v = 0;

  int64_t q_batch_stride = 0, q_head_stride = 0, q_seq_stride = 0, q_dim_stride = 1;
  int64_t k_batch_stride = 0, k_head_stride = 0, k_seq_stride = 0, k_dim_stride = 1;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_seq_stride = 0, v_dim_stride = 1;
  int64_t out_batch_stride = 0, out_head_stride = 0, out_seq_stride = 0, out_dim_stride = 1;
  int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_seq_stride = 1;

  double scale = 0.0;  // any finite value; callers wanting the default pass 1 / sqrt(head_dim)
  bool causal = false;

  // ---- Masking (all optional). Query row i of sequence b sees the keys j with
  //   i < len_q(b), j < len_k(b), diag - window_left <= j <= diag + window_right, mask[b, h, i, j],
  // where diag = i + (top_left ? 0 : len_k(b) - len_q(b)), a negative window bound means unbounded and
  // causal caps window_right at 0. len_q / len_k come from q_lengths / kv_lengths (padded batches: rows
  // and keys past them exist in memory; such rows output 0 and LSE -inf, such keys are never read), from
  // cu_seqlens (packed sequences), or are seq_q / seq_k. A row that sees no key, or whose every visible
  // score is -inf, outputs +0 and LSE -inf.
  bool top_left = false;
  int64_t window_left = -1;
  int64_t window_right = -1;
  const int64_t* q_lengths = nullptr;   // (batch,), each in [0, seq_q]
  const int64_t* kv_lengths = nullptr;  // (batch,), each in [0, seq_k]
  // Packed sequences: sequence b's rows are rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1 along the seq
  // axis of q, out and lse (their batch strides are unused), its keys likewise in k and v; (batch + 1,)
  // non-decreasing offsets from 0 to at most seq_q / seq_k. Both or neither.
  const int64_t* cu_seqlens_q = nullptr;
  const int64_t* cu_seqlens_k = nullptr;
  // Boolean mask over (batch, heads_q, seq_q, seq_k), nonzero = may attend; zero strides broadcast.
  const uint8_t* mask = nullptr;
  int64_t mask_batch_stride = 0, mask_head_stride = 0, mask_seq_stride = 0, mask_key_stride = 0;
  // Additive bias over (batch, heads_q, seq_q, seq_k) of dtype bias_dtype, added to the scaled scores
  // (-inf masks); zero strides broadcast.
  const void* bias = nullptr;
  DType bias_dtype = DType::kFloat32;
  int64_t bias_batch_stride = 0, bias_head_stride = 0, bias_seq_stride = 0, bias_key_stride = 0;
  // ALiBi: adds -slope * |diag - j| with slope = alibi_slopes[b * alibi_batch_stride + h * alibi_head_stride].
  const double* alibi_slopes = nullptr;
  int64_t alibi_batch_stride = 0, alibi_head_stride = 1;
  // Soft capping: > 0 turns the scaled score s into softcap * tanh(s / softcap), before bias and ALiBi.
  double softcap = 0.0;

  int num_threads = 0;  // 0 = the process default (see set_num_threads)
  KernelPath path = KernelPath::kAuto;
  Isa isa = Isa::kAuto;
};

// Computes attention as described by `p`. Throws std::invalid_argument (message naming the field) for
// inconsistent parameters and std::bad_alloc when scratch memory (or a thread) cannot be had. Never reads or
// writes outside the described arrays. Results are bitwise identical for any thread count.
TILEATTN_API void attention(const Params& p);

// Merges `parts` partial results of attention over disjoint key sets of the same queries into the attention
// over their union, as tileattn.merge_attention(): outs[p] are C-contiguous (rows, head_dim_v) arrays of
// `dtype`, lses[p] their (rows,) LSEs (double for kFloat64, else float), rows in one order (for example
// batch x heads x seq of contiguous bhsd arrays). With m = max_p lse_p and W = sum_p exp(lse_p - m):
// out = sum_p exp(lse_p - m) / W * outs[p] and lse = m + log(W) (skipped when lse is null). Partials with
// LSE -inf add nothing; a row empty in every part gives 0 and -inf. Accumulates in float (double for
// kFloat64). Throws std::invalid_argument for bad arguments.
TILEATTN_API void merge_attention(DType dtype, int64_t parts, const void* const* outs, const void* const* lses,
                                  void* out, void* lse, int64_t rows, int64_t head_dim_v, int num_threads = 0);

// ---- CUDA (optional: built with -DTILEATTN_CUDA=ON; otherwise these report "not built" / throw).
struct CudaInfo {
  bool built = false;                  // compiled with CUDA
  int runtime_version = 0;             // CUDA runtime built against, e.g. 13000 for 13.0
  int driver_version = 0;              // CUDA version the installed driver supports; 0 when none
  int device_count = 0;                // devices visible now
  std::string architectures;           // compiled GPU architectures, e.g. "80-real;90-real;90-virtual"
  std::vector<std::string> devices;    // "NVIDIA H100 80GB HBM3 (sm_90)" per visible device
  std::string error;                   // why no device can be used, when none can
};
TILEATTN_API CudaInfo cuda_info();

// Attention on the current CUDA device, with the semantics of attention(). q, k, v, out, lse, mask and
// bias are device memory; q_lengths, kv_lengths, cu_seqlens and alibi_slopes are host memory (copied).
// Queued on `stream` (a cudaStream_t; nullptr = the default stream); returns without waiting. float16
// and bfloat16 run on tensor cores when no mask, bias, ALiBi or softcap is given and D, Dv <= 256;
// everything else runs on CUDA cores. head_dim and head_dim_v must be <= 256. out and lse must not share
// memory with q, k, v, mask or bias (attention() computes such calls aside; here it is an error). Throws
// std::invalid_argument for bad parameters and std::runtime_error for CUDA errors or a build without CUDA.
TILEATTN_API void attention_cuda(const Params& p, void* stream);
// The same on host memory: copies what the arrays span to the current device, computes, copies out and
// lse back and returns when done.
TILEATTN_API void attention_cuda_host(const Params& p);

// The block sizes the tiled kernel uses for `p`: query positions per work item and keys per KV tile.
// Results depend on block_k (where the online softmax rescales) but never on block_q. For diagnostics
// and for tests that probe tile boundaries.
struct TileInfo {
  int64_t block_q;
  int64_t block_k;
};
TILEATTN_API TileInfo tile_info(const Params& p);

// Fills the strides of a contiguous (batch, head, seq, dim) tensor ("bhsd") or of a contiguous
// (batch, seq, head, dim) tensor ("bshd"), as a convenience for C++ callers.
struct Strides4 {
  int64_t batch, head, seq, dim;
};
TILEATTN_API Strides4 contiguous_bhsd(int64_t heads, int64_t seq, int64_t dim);
TILEATTN_API Strides4 contiguous_bshd(int64_t heads, int64_t seq, int64_t dim);

// Default number of threads for calls with num_threads == 0. Initially the value of the environment
// variable TILEATTN_NUM_THREADS when it holds a positive integer, else the number of CPUs this process
// may run on. set_num_threads(n) requires 1 <= n <= 4096.
TILEATTN_API void set_num_threads(int n);
TILEATTN_API int get_num_threads();
// Number of CPUs this process may run on (its affinity mask).
TILEATTN_API int available_cpus();

// What was built and what runs here, for show_config().
struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  std::string cxx_flags;
  bool native_build;
  std::vector<std::string> compiled_isas;  // instruction-set levels with compiled kernels
};
TILEATTN_API BuildInfo build_info();

struct CpuInfo {
  std::string vendor;
  std::string brand;
  std::vector<std::string> features;  // detected features the kernels care about
  Isa best_isa;                       // best level this CPU and the build support
  Isa selected_isa;                   // what kAuto uses (best_isa, or lower if TILEATTN_ISA says so)
  // Whether the AVX-512 level (and the AMX level's vector path) multiplies bfloat16 inputs' Q K^T as
  // bfloat16 pairs (AVX512_BF16's vdpbf16ps) now: by default where that is faster than converting to
  // float32 (AMD, not Intel); TILEATTN_BF16_DOT=1 or 0 forces it on or off (read at this call).
  bool bf16_pairs;
};
TILEATTN_API CpuInfo cpu_info();

TILEATTN_API const char* isa_name(Isa isa);

// Probes of this machine's ceilings, for benchmarks that report fractions of them. FMA throughput in
// GFLOP/s of independent fused multiply-adds on `threads` threads with the selected instruction set
// (float32, or float64 with f64), run for about `seconds`; and the best memory-read bandwidth in GB/s of
// `repeats` passes over a buffer of `bytes` bytes split across `threads` threads.
TILEATTN_API double probe_fma_gflops(int threads, bool f64, double seconds);
TILEATTN_API double probe_read_gbs(int threads, int64_t bytes, int repeats);
// One run of that FMA loop, `iters` iterations (at least 1) on each of `threads` threads; returns the
// floating-point operations done. Benchmarks time it beside a kernel, so that both meet the same minute of
// a shared machine.
TILEATTN_API double probe_fma_run(int threads, bool f64, int64_t iters);
// One pass of that read over the caller's `n` floats at `data`, split across `threads` threads; returns
// their sum (whole vectors only: a tail shorter than four vectors per thread is not read). Benchmarks time
// it beside a kernel that reads as many bytes, so that both meet the same minute of a shared machine.
TILEATTN_API double probe_read_buffer(const float* data, int64_t n, int threads);
// How many threads of the pool a parallel region of `threads` chunks actually runs on at once: every
// chunk waits (up to `seconds`) until `threads` chunks are running, and the largest number seen running
// together is returned. `threads` when the pool works as it should (a chunk that waits in vain ends after
// `seconds`, and its thread may then run another chunk alone).
TILEATTN_API int probe_threads(int threads, double seconds);
TILEATTN_API const char* version();

}  // namespace tileattn

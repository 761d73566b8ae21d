/* tileattn: exact softmax attention computed in tiles with an online softmax.
 *
 * The C ABI of libtileattn, for C, Cython (tileattn/capi.pxd), ctypes, Rust, Julia and anything else that
 * can call C. The same kernels, thread pool and CPU dispatch as the Python module and the C++ API
 * (tileattn.hpp), in the same shared library.
 *
 *   out[b, h, i, :] = sum_j softmax_j(scale * q[b, h, i, :] . k[b, h / group, j, :]) * v[b, h / group, j, :]
 *   lse[b, h, i]    = log(sum_j exp(scale * q[b, h, i, :] . k[b, h / group, j, :]))      (natural log)
 *
 * with group = heads_q / heads_kv (GQA/MQA: query head h reads KV head h / group) and j over the keys row
 * i may see. Causal masks are aligned bottom-right: query i sees keys j <= i + (seq_k - seq_q), as in
 * FlashAttention. A row that sees no key outputs exactly +0.0 and its LSE is -inf.
 *
 * Stability: functions are never removed or changed once released with a given TILEATTN_ABI_VERSION.
 * tileattn_params starts with its own size, so later versions can append fields without breaking
 * callers compiled against this header: always fill it with tileattn_params_init() first.
 *
 * Errors: every function that can fail returns a tileattn_status (0 = success) and never throws, aborts
 * or crashes on bad arguments; tileattn_last_error() then gives the message, naming the argument, of the
 * last failure on the calling thread. All entry points are thread-safe and may be called without any
 * lock (Cython: `nogil`). They never modify their inputs.
 *
 * Arrays: strides are in elements and may be zero (broadcast) or negative for the inputs; every offset
 * they reach must fit in int64 bytes (else an error naming the array). out and lse must not overlap
 * themselves (no two elements at one address); they may overlap the inputs: the result is then computed
 * aside and copied in, as if the inputs had been copied first. At most 4096 threads; problems are limited
 * to batch x heads x seq x head_dim <= 2^56.
 */
#ifndef TILEATTN_TILEATTN_H_
#define TILEATTN_TILEATTN_H_

#include <stddef.h>
#include <stdint.h>

#include "tileattn/version.h"

#if defined(_WIN32)
#if defined(TILEATTN_BUILDING_LIBRARY)
#define TILEATTN_API __declspec(dllexport)
#else
#define TILEATTN_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define TILEATTN_API __attribute__((visibility("default")))
#else
#define TILEATTN_API
#endif

/* Version of the C ABI below: bumped only by incompatible changes. tileattn_abi_version() returns the
 * value the library was built with; a caller can compare the two at run time. */
#define TILEATTN_ABI_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tileattn_status {
  TILEATTN_OK = 0,
  TILEATTN_ERROR_INVALID_ARGUMENT = 1, /* shapes, values, null pointers, unknown enum values */
  TILEATTN_ERROR_OUT_OF_MEMORY = 2,    /* scratch memory could not be allocated */
  TILEATTN_ERROR_INTERNAL = 3          /* anything else; a bug: please report it */
} tileattn_status;

/* Element types (the values match tileattn::DType). float16 is IEEE binary16 and bfloat16 the upper
 * half of a float32; both are accumulated in float32, float64 in float64. */
typedef enum tileattn_dtype {
  TILEATTN_FLOAT32 = 0,
  TILEATTN_FLOAT64 = 1,
  TILEATTN_FLOAT16 = 2,
  TILEATTN_BFLOAT16 = 3
} tileattn_dtype;

/* Instruction set of the CPU kernels (values match tileattn::Isa). AUTO = the best this CPU supports,
 * or lower when the environment variable TILEATTN_ISA says so. */
typedef enum tileattn_isa {
  TILEATTN_ISA_AUTO = -1,
  TILEATTN_ISA_BASELINE = 0,
  TILEATTN_ISA_AVX2 = 1,
  TILEATTN_ISA_AVX512 = 2,
  TILEATTN_ISA_AMX = 3
} tileattn_isa;

/* Every option of tileattn.attention() / attention_varlen(). Strides are in elements (not bytes), in the
 * logical order (batch, head, seq, dim) whatever the memory order, and may be zero (broadcast) or
 * negative. Fill with tileattn_params_init() and then set what you need; enum-valued fields are int32_t
 * so that the layout does not depend on the compiler's enum size. */
typedef struct tileattn_params {
  uint64_t struct_size; /* sizeof(tileattn_params), set by tileattn_params_init() */
  int32_t dtype;        /* tileattn_dtype of q, k, v and out */
  int32_t num_threads;  /* 0 = the process default (tileattn_set_num_threads) */

  const void* q; /* (batch, heads_q, seq_q, head_dim) */
  const void* k; /* (batch, heads_kv, seq_k, head_dim) */
  const void* v; /* (batch, heads_kv, seq_k, head_dim_v) */
  void* out;     /* (batch, heads_q, seq_q, head_dim_v), dtype */
  void* lse;     /* (batch, heads_q, seq_q): float64 for TILEATTN_FLOAT64, else float32; NULL = not wanted */

  int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim, head_dim_v;

  int64_t q_strides[4]; /* batch, head, seq, dim */
  int64_t k_strides[4];
  int64_t v_strides[4];
  int64_t out_strides[4];
  int64_t lse_strides[3]; /* batch, head, seq */

  double scale;     /* any finite value; NaN (the default) = 1 / sqrt(head_dim), computed in double */
  int32_t causal;   /* 0 or 1 */
  int32_t top_left; /* 1: align causal masks and windows top-left (query i sees keys j <= i) */
  /* Sliding window: row i sees keys diag - window_left <= j <= diag + window_right, diag the causal
   * diagonal; negative = unbounded (the default). causal caps window_right at 0. */
  int64_t window_left, window_right;

  /* Padded batches: (batch,) valid lengths, each in [0, seq_q] / [0, seq_k]; rows past q_lengths[b]
   * output 0 and LSE -inf, keys past kv_lengths[b] are never read. NULL = full. */
  const int64_t* q_lengths;
  const int64_t* kv_lengths;
  /* Packed sequences (attention_varlen): sequence b is rows cu_seqlens_q[b] .. cu_seqlens_q[b+1]-1 of
   * the seq axis of q, out and lse (batch strides unused), keys likewise; (batch + 1,) offsets from 0,
   * non-decreasing. Both or neither; not combined with lengths, mask or bias. */
  const int64_t* cu_seqlens_q;
  const int64_t* cu_seqlens_k;

  /* Boolean mask over (batch, heads_q, seq_q, seq_k), nonzero = may attend. NULL = none. */
  const uint8_t* mask;
  int64_t mask_strides[4];
  /* Additive bias over (batch, heads_q, seq_q, seq_k), of type bias_dtype, added to the scaled scores;
   * -inf masks. NULL = none. */
  const void* bias;
  int32_t bias_dtype;
  int32_t isa; /* tileattn_isa for the CPU kernels */
  int64_t bias_strides[4];
  /* ALiBi: adds -slope * |diag - j|, slope = alibi_slopes[b * alibi_strides[0] + h * alibi_strides[1]]. */
  const double* alibi_slopes;
  int64_t alibi_strides[2];
  /* > 0: the scaled score s becomes softcap * tanh(s / softcap), before bias and ALiBi. 0 = off. */
  double softcap;
} tileattn_params;

/* Fills *params with the defaults: everything zero or NULL, struct_size set, dtype float32, scale NaN
 * (= 1/sqrt(head_dim)), windows unbounded, the dim strides 1, isa AUTO. The other strides are 0: set
 * those of out and lse (tileattn_contiguous_strides), which may not broadcast. */
TILEATTN_API void tileattn_params_init(tileattn_params* params);

/* Fills strides[4] (batch, head, seq, dim) for a C-contiguous array of layout "bhsd" (bshd = 0),
 * shape (batch, heads, seq, dim), or of layout "bshd" (bshd = 1), shape (batch, seq, heads, dim). */
TILEATTN_API void tileattn_contiguous_strides(int64_t heads, int64_t seq, int64_t dim, int bshd,
                                              int64_t strides[4]);

/* Attention with every option, as described by *params. */
TILEATTN_API int tileattn_attention(const tileattn_params* params);

/* The common case: C-contiguous bhsd float32 (or float64) arrays, q (batch, heads_q, seq_q, head_dim),
 * k (batch, heads_kv, seq_k, head_dim), v (batch, heads_kv, seq_k, head_dim_v), out (batch, heads_q,
 * seq_q, head_dim_v), lse (batch, heads_q, seq_q) or NULL. scale NaN = 1/sqrt(head_dim); causal 0 or 1
 * (bottom-right). */
TILEATTN_API int tileattn_attention_f32(const float* q, const float* k, const float* v, float* out, float* lse,
                                        int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q,
                                        int64_t seq_k, int64_t head_dim, int64_t head_dim_v, float scale,
                                        int causal);
TILEATTN_API int tileattn_attention_f64(const double* q, const double* k, const double* v, double* out,
                                        double* lse, int64_t batch, int64_t heads_q, int64_t heads_kv,
                                        int64_t seq_q, int64_t seq_k, int64_t head_dim, int64_t head_dim_v,
                                        double scale, int causal);

/* Merges `parts` partial results of attention over disjoint key sets of the same queries (split-KV,
 * ring attention, a KV cache plus new keys), as tileattn.merge_attention(): outs[p] are C-contiguous
 * (rows, head_dim_v) arrays of dtype, lses[p] their (rows,) LSEs (float64 for TILEATTN_FLOAT64, else
 * float32), rows in the same order (for example batch x heads x seq of bhsd arrays). Writes the exact
 * attention over the union to out and, unless NULL, its LSE to lse. Partials with LSE -inf contribute
 * nothing; a row empty in every part outputs 0 and LSE -inf. */
TILEATTN_API int tileattn_merge_attention(int32_t dtype, int64_t parts, const void* const* outs,
                                          const void* const* lses, void* out, void* lse, int64_t rows,
                                          int64_t head_dim_v, int32_t num_threads);

/* Default thread count for calls with num_threads = 0 (initially TILEATTN_NUM_THREADS or the CPUs this
 * process may use); shared with the Python module in the same process. 1 <= n <= 4096. */
TILEATTN_API int tileattn_set_num_threads(int n);
TILEATTN_API int tileattn_get_num_threads(void);

/* The message of the last failure on the calling thread ("" if none); valid until the next failing call
 * on this thread. */
TILEATTN_API const char* tileattn_last_error(void);

/* The library's version ("0.1.0") and the TILEATTN_ABI_VERSION it was built with. */
TILEATTN_API const char* tileattn_version(void);
TILEATTN_API int tileattn_abi_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TILEATTN_TILEATTN_H_ */

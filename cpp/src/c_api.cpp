// The C ABI (tileattn.h): a thin layer over the C++ API that turns exceptions into status codes and a
// per-thread message. Nothing thrown inside the library crosses it.
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "tileattn/tileattn.h"
#include "tileattn/tileattn.hpp"

namespace {

thread_local std::string last_error_message;

// Runs f, mapping what it throws to a status; the message is kept for tileattn_last_error().
template <class F>
int guarded(F&& f) noexcept {
  try {
    f();
    return TILEATTN_OK;
  } catch (const std::invalid_argument& e) {
    last_error_message = e.what();
    return TILEATTN_ERROR_INVALID_ARGUMENT;
  } catch (const std::bad_alloc& e) {
    last_error_message = std::string("out of memory: ") + e.what();
    return TILEATTN_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error_message = std::string("internal error: ") + e.what();
    return TILEATTN_ERROR_INTERNAL;
  } catch (...) {
    last_error_message = "internal error: unknown exception";
    return TILEATTN_ERROR_INTERNAL;
  }
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

tileattn::DType dtype_from(int32_t code, const char* name) {
  if (code < TILEATTN_FLOAT32 || code > TILEATTN_BFLOAT16) {
    fail(std::string(name) + " = " + std::to_string(code) + " is not a tileattn_dtype");
  }
  return static_cast<tileattn::DType>(code);
}

// Offset of the first byte after `member` in tileattn_params: a caller's struct must reach that far.
#define TILEATTN_PARAMS_END(member) (offsetof(tileattn_params, member) + sizeof(tileattn_params::member))

void to_cpp(const tileattn_params& c, tileattn::Params& p) {
  p.dtype = dtype_from(c.dtype, "dtype");
  p.q = c.q;
  p.k = c.k;
  p.v = c.v;
  p.out = c.out;
  p.lse = c.lse;
  p.batch = c.batch;
  p.heads_q = c.heads_q;
  p.heads_kv = c.heads_kv;
  p.seq_q = c.seq_q;
  p.seq_k = c.seq_k;
  p.head_dim = c.head_dim;
  p.head_dim_v = c.head_dim_v;
  auto set4 = [](const int64_t (&s)[4], int64_t& b, int64_t& h, int64_t& q, int64_t& d) {
    b = s[0];
    h = s[1];
    q = s[2];
    d = s[3];
  };
  set4(c.q_strides, p.q_batch_stride, p.q_head_stride, p.q_seq_stride, p.q_dim_stride);
  set4(c.k_strides, p.k_batch_stride, p.k_head_stride, p.k_seq_stride, p.k_dim_stride);
  set4(c.v_strides, p.v_batch_stride, p.v_head_stride, p.v_seq_stride, p.v_dim_stride);
  set4(c.out_strides, p.out_batch_stride, p.out_head_stride, p.out_seq_stride, p.out_dim_stride);
  p.lse_batch_stride = c.lse_strides[0];
  p.lse_head_stride = c.lse_strides[1];
  p.lse_seq_stride = c.lse_strides[2];
  if (std::isnan(c.scale)) {
    if (c.head_dim < 1) fail("head_dim must be >= 1, got " + std::to_string(c.head_dim));
    p.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  } else {
    p.scale = c.scale;
  }
  if (c.causal != 0 && c.causal != 1) fail("causal must be 0 or 1, got " + std::to_string(c.causal));
  if (c.top_left != 0 && c.top_left != 1) fail("top_left must be 0 or 1, got " + std::to_string(c.top_left));
  p.causal = c.causal == 1;
  p.top_left = c.top_left == 1;
  p.window_left = c.window_left;
  p.window_right = c.window_right;
  p.q_lengths = c.q_lengths;
  p.kv_lengths = c.kv_lengths;
  p.cu_seqlens_q = c.cu_seqlens_q;
  p.cu_seqlens_k = c.cu_seqlens_k;
  p.mask = c.mask;
  set4(c.mask_strides, p.mask_batch_stride, p.mask_head_stride, p.mask_seq_stride, p.mask_key_stride);
  p.bias = c.bias;
  p.bias_dtype = dtype_from(c.bias_dtype, "bias_dtype");
  set4(c.bias_strides, p.bias_batch_stride, p.bias_head_stride, p.bias_seq_stride, p.bias_key_stride);
  p.alibi_slopes = c.alibi_slopes;
  p.alibi_batch_stride = c.alibi_strides[0];
  p.alibi_head_stride = c.alibi_strides[1];
  p.softcap = c.softcap;
  p.num_threads = c.num_threads;
  if (c.isa < TILEATTN_ISA_AUTO || c.isa > TILEATTN_ISA_AMX) fail("isa = " + std::to_string(c.isa) + " is not a tileattn_isa");
  p.isa = static_cast<tileattn::Isa>(c.isa);
}

void fill_contiguous(int64_t heads, int64_t seq, int64_t dim, int bshd, int64_t strides[4]) {
  const tileattn::Strides4 s = bshd ? tileattn::contiguous_bshd(heads, seq, dim) : tileattn::contiguous_bhsd(heads, seq, dim);
  strides[0] = s.batch;
  strides[1] = s.head;
  strides[2] = s.seq;
  strides[3] = s.dim;
}

template <class T>
int attention_contiguous(tileattn_dtype dtype, const T* q, const T* k, const T* v, T* out, T* lse, int64_t batch,
                         int64_t heads_q, int64_t heads_kv, int64_t seq_q, int64_t seq_k, int64_t head_dim,
                         int64_t head_dim_v, double scale, int causal) {
  tileattn_params p;
  tileattn_params_init(&p);
  p.dtype = dtype;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.lse = lse;
  p.batch = batch;
  p.heads_q = heads_q;
  p.heads_kv = heads_kv;
  p.seq_q = seq_q;
  p.seq_k = seq_k;
  p.head_dim = head_dim;
  p.head_dim_v = head_dim_v;
  p.scale = scale;
  p.causal = causal;
  return guarded([&] {
    fill_contiguous(heads_q, seq_q, head_dim, 0, p.q_strides);
    fill_contiguous(heads_kv, seq_k, head_dim, 0, p.k_strides);
    fill_contiguous(heads_kv, seq_k, head_dim_v, 0, p.v_strides);
    fill_contiguous(heads_q, seq_q, head_dim_v, 0, p.out_strides);
    p.lse_strides[0] = heads_q * seq_q;
    p.lse_strides[1] = seq_q;
    p.lse_strides[2] = 1;
    tileattn::Params cpp;
    to_cpp(p, cpp);
    tileattn::attention(cpp);
  });
}

}  // namespace

extern "C" {

void tileattn_params_init(tileattn_params* params) {
  if (params == nullptr) return;
  std::memset(params, 0, sizeof *params);
  params->struct_size = sizeof *params;
  params->dtype = TILEATTN_FLOAT32;
  params->scale = std::numeric_limits<double>::quiet_NaN();
  params->window_left = -1;
  params->window_right = -1;
  params->q_strides[3] = params->k_strides[3] = params->v_strides[3] = params->out_strides[3] = 1;
  params->lse_strides[2] = 1;
  params->bias_dtype = TILEATTN_FLOAT32;
  params->alibi_strides[1] = 1;
  params->isa = TILEATTN_ISA_AUTO;
}

void tileattn_contiguous_strides(int64_t heads, int64_t seq, int64_t dim, int bshd, int64_t strides[4]) {
  if (strides != nullptr) fill_contiguous(heads, seq, dim, bshd, strides);
}

int tileattn_attention(const tileattn_params* params) {
  return guarded([&] {
    if (params == nullptr) fail("params is null");
    // Every field this version reads must lie inside the caller's struct (an older, shorter struct
    // would need defaults for the missing ones: none exist yet, ABI version 1 is the first).
    if (params->struct_size < TILEATTN_PARAMS_END(softcap)) {
      fail("params->struct_size = " + std::to_string(params->struct_size) +
           " is too small: fill the struct with tileattn_params_init()");
    }
    tileattn::Params p;
    to_cpp(*params, p);
    tileattn::attention(p);
  });
}

int tileattn_attention_f32(const float* q, const float* k, const float* v, float* out, float* lse, int64_t batch,
                           int64_t heads_q, int64_t heads_kv, int64_t seq_q, int64_t seq_k, int64_t head_dim,
                           int64_t head_dim_v, float scale, int causal) {
  return attention_contiguous<float>(TILEATTN_FLOAT32, q, k, v, out, lse, batch, heads_q, heads_kv, seq_q, seq_k,
                                     head_dim, head_dim_v, static_cast<double>(scale), causal);
}

int tileattn_attention_f64(const double* q, const double* k, const double* v, double* out, double* lse,
                           int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q, int64_t seq_k,
                           int64_t head_dim, int64_t head_dim_v, double scale, int causal) {
  return attention_contiguous<double>(TILEATTN_FLOAT64, q, k, v, out, lse, batch, heads_q, heads_kv, seq_q, seq_k,
                                      head_dim, head_dim_v, scale, causal);
}

int tileattn_merge_attention(int32_t dtype, int64_t parts, const void* const* outs, const void* const* lses,
                             void* out, void* lse, int64_t rows, int64_t head_dim_v, int32_t num_threads) {
  return guarded([&] {
    tileattn::merge_attention(dtype_from(dtype, "dtype"), parts, outs, lses, out, lse, rows, head_dim_v,
                              num_threads);
  });
}

int tileattn_set_num_threads(int n) {
  return guarded([&] { tileattn::set_num_threads(n); });
}

int tileattn_get_num_threads(void) { return tileattn::get_num_threads(); }

const char* tileattn_last_error(void) { return last_error_message.c_str(); }

const char* tileattn_version(void) { return tileattn::version(); }

int tileattn_abi_version(void) { return TILEATTN_ABI_VERSION; }

}  // extern "C"

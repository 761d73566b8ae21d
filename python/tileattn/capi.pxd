# cython: language_level=3
# The C ABI of libtileattn (tileattn/tileattn.h) for Cython.
#
#     from tileattn cimport capi
#
#     with nogil:
#         status = capi.tileattn_attention_f32(&q[0, 0, 0, 0], &k[0, 0, 0, 0], &v[0, 0, 0, 0],
#                                              &out[0, 0, 0, 0], NULL, B, H, H, S, S, D, D, NAN, 1)
#     if status != capi.TILEATTN_OK:
#         raise ValueError(capi.tileattn_last_error().decode())
#
# Build the extension with ``include_dirs=[tileattn.get_include()]``, ``library_dirs`` and
# ``runtime_library_dirs=[tileattn.get_library_dir()]`` and ``libraries=["tileattn"]`` (see examples/cython).
# Every function may be called without the GIL and never raises: check the returned status.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef extern from "tileattn/tileattn.h" nogil:
    enum:
        TILEATTN_ABI_VERSION
        TILEATTN_VERSION_MAJOR
        TILEATTN_VERSION_MINOR
        TILEATTN_VERSION_PATCH

    ctypedef enum tileattn_status:
        TILEATTN_OK
        TILEATTN_ERROR_INVALID_ARGUMENT
        TILEATTN_ERROR_OUT_OF_MEMORY
        TILEATTN_ERROR_INTERNAL

    ctypedef enum tileattn_dtype:
        TILEATTN_FLOAT32
        TILEATTN_FLOAT64
        TILEATTN_FLOAT16
        TILEATTN_BFLOAT16

    ctypedef enum tileattn_isa:
        TILEATTN_ISA_AUTO
        TILEATTN_ISA_BASELINE
        TILEATTN_ISA_AVX2
        TILEATTN_ISA_AVX512
        TILEATTN_ISA_AMX

    ctypedef struct tileattn_params:
        uint64_t struct_size
        int32_t dtype
        int32_t num_threads
        const void* q
        const void* k
        const void* v
        void* out
        void* lse
        int64_t batch, heads_q, heads_kv, seq_q, seq_k, head_dim, head_dim_v
        int64_t q_strides[4]
        int64_t k_strides[4]
        int64_t v_strides[4]
        int64_t out_strides[4]
        int64_t lse_strides[3]
        double scale
        int32_t causal
        int32_t top_left
        int64_t window_left, window_right
        const int64_t* q_lengths
        const int64_t* kv_lengths
        const int64_t* cu_seqlens_q
        const int64_t* cu_seqlens_k
        const uint8_t* mask
        int64_t mask_strides[4]
        const void* bias
        int32_t bias_dtype
        int32_t isa
        int64_t bias_strides[4]
        const double* alibi_slopes
        int64_t alibi_strides[2]
        double softcap

    void tileattn_params_init(tileattn_params* params)
    void tileattn_contiguous_strides(int64_t heads, int64_t seq, int64_t dim, int bshd, int64_t* strides)
    int tileattn_attention(const tileattn_params* params)
    int tileattn_attention_f32(const float* q, const float* k, const float* v, float* out, float* lse,
                               int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q,
                               int64_t seq_k, int64_t head_dim, int64_t head_dim_v, float scale, int causal)
    int tileattn_attention_f64(const double* q, const double* k, const double* v, double* out, double* lse,
                               int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q,
                               int64_t seq_k, int64_t head_dim, int64_t head_dim_v, double scale,
                               int causal)
    int tileattn_merge_attention(int32_t dtype, int64_t parts, const void* const* outs,
                                 const void* const* lses, void* out, void* lse, int64_t rows,
                                 int64_t head_dim_v, int32_t num_threads)
    int tileattn_set_num_threads(int n)
    int tileattn_get_num_threads()
    const char* tileattn_last_error()
    const char* tileattn_version()
    int tileattn_abi_version()

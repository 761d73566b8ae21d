// CUDA entry points: checks, the kernel choice (tensor cores for float16 / bfloat16 without element-wise
// options and with scale > 0, CUDA cores otherwise), launches on the caller's stream, and the host-memory
// variant that copies what the arrays span.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpp/src/validate.hpp"
#include "mma_kernel.cuh"
#include "simt_kernel.cuh"
#include "tileattn/tileattn.hpp"

#ifndef TILEATTN_CUDA_ARCHITECTURES
#define TILEATTN_CUDA_ARCHITECTURES ""
#endif

namespace tileattn {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
  }
}

constexpr int64_t kMaxCudaDim = 256;

// Device copies of the small host arrays (lengths, offsets, slopes), freed in stream order.
class DeviceScratch {
 public:
  explicit DeviceScratch(cudaStream_t stream) : stream_(stream) {}
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch() {
    for (void* ptr : owned_) cudaFreeAsync(ptr, stream_);
  }
  template <class T>
  const T* upload(const T* host, int64_t count) {
    if (host == nullptr || count <= 0) return host == nullptr ? nullptr : static_cast<const T*>(alloc(sizeof(T)));
    void* dev = alloc(sizeof(T) * static_cast<size_t>(count));
    check(cudaMemcpyAsync(dev, host, sizeof(T) * static_cast<size_t>(count), cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync");
    return static_cast<const T*>(dev);
  }

 private:
  void* alloc(size_t bytes) {
    void* dev = nullptr;
    check(cudaMallocAsync(&dev, bytes, stream_), "cudaMallocAsync");
    owned_.push_back(dev);
    return dev;
  }
  cudaStream_t stream_;
  std::vector<void*> owned_;
};

cuda::KernelParams kernel_params(const Params& p, DeviceScratch& scratch) {
  cuda::KernelParams k{};
  k.q = p.q, k.k = p.k, k.v = p.v, k.out = p.out, k.lse = p.lse;
  k.batch = p.batch, k.heads_q = p.heads_q, k.heads_kv = p.heads_kv, k.seq_q = p.seq_q, k.seq_k = p.seq_k;
  k.head_dim = p.head_dim, k.head_dim_v = p.head_dim_v, k.group = p.heads_q / p.heads_kv;
  k.q_bs = p.q_batch_stride, k.q_hs = p.q_head_stride, k.q_ss = p.q_seq_stride, k.q_ds = p.q_dim_stride;
  k.k_bs = p.k_batch_stride, k.k_hs = p.k_head_stride, k.k_ss = p.k_seq_stride, k.k_ds = p.k_dim_stride;
  k.v_bs = p.v_batch_stride, k.v_hs = p.v_head_stride, k.v_ss = p.v_seq_stride, k.v_ds = p.v_dim_stride;
  k.o_bs = p.out_batch_stride, k.o_hs = p.out_head_stride, k.o_ss = p.out_seq_stride, k.o_ds = p.out_dim_stride;
  k.l_bs = p.lse_batch_stride, k.l_hs = p.lse_head_stride, k.l_ss = p.lse_seq_stride;
  k.scale = p.scale;
  k.top_left = p.top_left;
  k.left = p.window_left >= 0 ? p.window_left : -1;
  k.right = p.window_right >= 0 ? p.window_right : -1;
  if (p.causal) k.right = k.right >= 0 ? std::min<int64_t>(k.right, 0) : 0;
  k.q_lengths = scratch.upload(p.q_lengths, p.batch);
  k.kv_lengths = scratch.upload(p.kv_lengths, p.batch);
  k.cu_seqlens_q = scratch.upload(p.cu_seqlens_q, p.batch + 1);
  k.cu_seqlens_k = scratch.upload(p.cu_seqlens_k, p.batch + 1);
  k.max_rows = p.seq_q;
  if (p.cu_seqlens_q != nullptr) {
    k.max_rows = 0;
    for (int64_t b = 0; b < p.batch; ++b) k.max_rows = std::max(k.max_rows, p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b]);
  }
  k.mask = p.mask;
  k.m_bs = p.mask_batch_stride, k.m_hs = p.mask_head_stride, k.m_ss = p.mask_seq_stride, k.m_ks = p.mask_key_stride;
  k.bias = p.bias;
  k.bias_dtype = static_cast<int>(p.bias_dtype);
  k.b_bs = p.bias_batch_stride, k.b_hs = p.bias_head_stride, k.b_ss = p.bias_seq_stride, k.b_ks = p.bias_key_stride;
  if (p.alibi_slopes != nullptr) {
    // Upload the slopes the kernel reads: indices b * batch_stride + h * head_stride.
    const int64_t nb = p.alibi_batch_stride == 0 ? 1 : p.batch;
    std::vector<double> slopes(static_cast<size_t>(nb * p.heads_q));
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t h = 0; h < p.heads_q; ++h) slopes[b * p.heads_q + h] = p.alibi_slopes[b * p.alibi_batch_stride + h * p.alibi_head_stride];
    }
    k.alibi = scratch.upload(slopes.data(), static_cast<int64_t>(slopes.size()));
    k.a_bs = p.alibi_batch_stride == 0 ? 0 : p.heads_q;
    k.a_hs = 1;
  }
  k.softcap = p.softcap;
  return k;
}

dim3 grid_for(const cuda::KernelParams& k, int rows_per_block) {
  const int64_t blocks = (k.max_rows + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff || k.heads_q > 65535 || k.batch > 65535) {
    throw std::invalid_argument("too many rows, heads or sequences for one CUDA launch (heads and batch must be <= 65535)");
  }
  return dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(k.heads_q), static_cast<unsigned>(k.batch));
}

template <class Kernel>
void launch(Kernel kernel, dim3 grid, size_t smem, cudaStream_t stream, const cuda::KernelParams& k) {
  if (smem > 48 * 1024) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "cudaFuncSetAttribute (shared memory)");
  }
  kernel<<<grid, cuda::kMmaWarps * 32, smem, stream>>>(k);
  check(cudaGetLastError(), "kernel launch");
}

// The most dynamic shared memory a block of the current device may opt in to (99 KiB on sm_86/89,
// 163 KiB on sm_80, 227 KiB on sm_90).
size_t smem_limit() {
  int device = 0, bytes = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute");
  return static_cast<size_t>(bytes);
}

constexpr size_t kStaticSmem = 64;  // the kernels' own __shared__ variables, with room to spare

template <class T, class A>
void launch_simt(const cuda::KernelParams& k, cudaStream_t stream) {
  launch(cuda::simt_attention_kernel<T, A>, grid_for(k, cuda::kSimtRows), cuda::simt_smem_bytes<A>(k.head_dim, k.head_dim_v),
         stream, k);
}

// The tensor-core kernel of head-dim bucket kHD, when its shared memory fits this device.
template <class T, int kHD>
bool try_launch_mma(const cuda::KernelParams& k, cudaStream_t stream, size_t limit) {
  const size_t smem = cuda::mma_smem_bytes<T, kHD>();
  if (smem + kStaticSmem > limit) return false;
  launch(cuda::mma_attention_kernel<T, kHD>, grid_for(k, cuda::mma_block_m<kHD>()), smem, stream, k);
  return true;
}

// The tensor-core kernel of the smallest head-dim bucket that holds D and Dv and fits this device's
// shared memory; else the CUDA-core kernel.
template <class T>
void launch_mma(const cuda::KernelParams& k, cudaStream_t stream) {
  const int64_t d = std::max(k.head_dim, k.head_dim_v);
  const size_t limit = smem_limit();
  if (d <= 64 && try_launch_mma<T, 64>(k, stream, limit)) return;
  if (d <= 128 && try_launch_mma<T, 128>(k, stream, limit)) return;
  if (try_launch_mma<T, 256>(k, stream, limit)) return;
  launch_simt<T, float>(k, stream);
}

void check_cuda_params(const Params& p) {
  detail::validate(p);
  if (p.head_dim > kMaxCudaDim || p.head_dim_v > kMaxCudaDim) {
    throw std::invalid_argument("head_dim and head_dim_v must be <= 256 on CUDA, got " + std::to_string(p.head_dim) +
                                " and " + std::to_string(p.head_dim_v));
  }
}

// The element range [lo, hi) an array spans, from its sizes and strides (any sign).
struct Span {
  int64_t lo = 0, hi = 0;
};
Span span_of(const int64_t (&n)[4], const int64_t (&s)[4]) {
  Span sp;
  for (int i = 0; i < 4; ++i) {
    if (n[i] == 0) return {};
  }
  for (int i = 0; i < 4; ++i) {
    const int64_t reach = (n[i] - 1) * s[i];
    if (reach < 0) sp.lo += reach;
    else sp.hi += reach;
  }
  sp.hi += 1;
  return sp;
}

size_t dtype_bytes(DType d) { return d == DType::kFloat64 ? 8 : d == DType::kFloat32 ? 4 : 2; }

// One host array mirrored on the device: allocated, copied in, and copied back when `writeback`.
class Mirror {
 public:
  Mirror(const void* host, size_t elem, Span span, bool copy_in) : host_(host), elem_(elem), span_(span) {
    if (host == nullptr || span.hi <= span.lo) return;
    check(cudaMalloc(&dev_, bytes()), "cudaMalloc");
    if (copy_in) check(cudaMemcpy(dev_, host_base(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;
  ~Mirror() {
    if (dev_ != nullptr) cudaFree(dev_);
  }
  // The device address of the host pointer's element.
  void* device_ptr() const {
    if (host_ == nullptr) return nullptr;
    if (dev_ == nullptr) return const_cast<void*>(host_);  // nothing to read or write: never dereferenced
    return static_cast<char*>(dev_) - span_.lo * static_cast<int64_t>(elem_);
  }
  void copy_back() const {
    if (dev_ != nullptr) check(cudaMemcpy(const_cast<char*>(host_base()), dev_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  }

 private:
  size_t bytes() const { return static_cast<size_t>(span_.hi - span_.lo) * elem_; }
  const char* host_base() const { return static_cast<const char*>(host_) + span_.lo * static_cast<int64_t>(elem_); }
  const void* host_;
  size_t elem_;
  Span span_;
  void* dev_ = nullptr;
};

}  // namespace

void attention_cuda(const Params& p, void* stream_ptr) {
  check_cuda_params(p);
  // The blocks of a launch write their rows of out while others still read q, k and v: an output that
  // shares memory with an input would race (the CPU entry computes aside instead; here that would cost a
  // device allocation and a strided copy per call).
  if (const auto [o, in] = detail::overlapping_output(p, true); o != nullptr) {
    throw std::invalid_argument(std::string(o) + " overlaps " + in +
                                ": on the GPU, out and lse must not share memory with q, k, v, mask or bias "
                                "(pass a separate array)");
  }
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return;
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  DeviceScratch scratch(stream);
  const cuda::KernelParams k = kernel_params(p, scratch);
  if (k.max_rows == 0) return;
  // The tensor-core kernel takes the row maxima of raw scores and masks before scaling, which needs
  // c = scale log2(e) in float finite and > 0; element-wise options and other scales run on the
  // CUDA-core kernel.
  const float c = static_cast<float>(p.scale * 1.4426950408889634);
  const bool elementwise = p.mask != nullptr || p.bias != nullptr || p.alibi_slopes != nullptr || p.softcap > 0 ||
                           !(c > 0 && std::isfinite(c));
  switch (p.dtype) {
    case DType::kFloat16:
      return elementwise ? launch_simt<__half, float>(k, stream) : launch_mma<__half>(k, stream);
    case DType::kBFloat16:
      return elementwise ? launch_simt<__nv_bfloat16, float>(k, stream) : launch_mma<__nv_bfloat16>(k, stream);
    case DType::kFloat32:
      return launch_simt<float, float>(k, stream);
    case DType::kFloat64:
      return launch_simt<double, double>(k, stream);
  }
}

void attention_cuda_host(const Params& p) {
  check_cuda_params(p);
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return;
  const bool packed = p.cu_seqlens_q != nullptr;
  const int64_t nb = packed ? 1 : p.batch;
  const size_t elem = dtype_bytes(p.dtype);
  const Mirror q(p.q, elem, span_of({nb, p.heads_q, p.seq_q, p.head_dim}, {p.q_batch_stride, p.q_head_stride, p.q_seq_stride, p.q_dim_stride}), true);
  const Mirror k(p.k, elem, span_of({nb, p.heads_kv, p.seq_k, p.head_dim}, {p.k_batch_stride, p.k_head_stride, p.k_seq_stride, p.k_dim_stride}), true);
  const Mirror v(p.v, elem, span_of({nb, p.heads_kv, p.seq_k, p.head_dim_v}, {p.v_batch_stride, p.v_head_stride, p.v_seq_stride, p.v_dim_stride}), true);
  // out and lse are copied in too: elements between the ones written keep their values on the way back.
  const Mirror out(p.out, elem, span_of({nb, p.heads_q, p.seq_q, p.head_dim_v}, {p.out_batch_stride, p.out_head_stride, p.out_seq_stride, p.out_dim_stride}), true);
  const Mirror lse(p.lse, p.dtype == DType::kFloat64 ? 8 : 4, span_of({nb, p.heads_q, p.seq_q, 1}, {p.lse_batch_stride, p.lse_head_stride, p.lse_seq_stride, 0}), true);
  const Mirror mask(p.mask, 1, span_of({p.batch, p.heads_q, p.seq_q, p.seq_k}, {p.mask_batch_stride, p.mask_head_stride, p.mask_seq_stride, p.mask_key_stride}), true);
  const Mirror bias(p.bias, dtype_bytes(p.bias_dtype), span_of({p.batch, p.heads_q, p.seq_q, p.seq_k}, {p.bias_batch_stride, p.bias_head_stride, p.bias_seq_stride, p.bias_key_stride}), true);
  Params d = p;
  d.q = q.device_ptr();
  d.k = k.device_ptr();
  d.v = v.device_ptr();
  d.out = out.device_ptr();
  d.lse = lse.device_ptr();
  d.mask = static_cast<const uint8_t*>(mask.device_ptr());
  d.bias = bias.device_ptr();
  attention_cuda(d, nullptr);
  check(cudaStreamSynchronize(nullptr), "kernel");
  out.copy_back();
  lse.copy_back();
}

CudaInfo cuda_info() {
  CudaInfo info;
  info.built = true;
  info.runtime_version = CUDART_VERSION;
  info.architectures = TILEATTN_CUDA_ARCHITECTURES;
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info.error = std::string("no usable CUDA device: ") + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error state of the runtime API call
    return info;
  }
  info.device_count = count;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
      info.devices.push_back(std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")");
    }
  }
  if (count == 0) info.error = "no CUDA device is visible";
  return info;
}

}  // namespace tileattn

// The CUDA entry points of a build without CUDA (-DTILEATTN_CUDA=OFF, the default).
#include <stdexcept>

#include "tileattn/tileattn.hpp"

namespace tileattn {

CudaInfo cuda_info() {
  CudaInfo info;
  info.error = "tileattn was built without CUDA (rebuild with pip install . -Ccmake.define.TILEATTN_CUDA=ON)";
  return info;
}

void attention_cuda(const Params&, void*) { throw std::runtime_error(cuda_info().error); }

void attention_cuda_host(const Params&) { throw std::runtime_error(cuda_info().error); }

}  // namespace tileattn

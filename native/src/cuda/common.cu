// CUDA errors as s2s::Error; the device query behind cuda_status().
#include <string>

#include "backend.h"
#include "cuda/common.cuh"

namespace s2s {
namespace cuda {

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::string f(file);
  f = f.substr(f.find_last_of('/') + 1);
  throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e) + " (" + f + ":" + std::to_string(line) + ")");
}

}  // namespace cuda

CudaStatus cuda_status() {
  CudaStatus s;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver) {
    s.reason = "no NVIDIA driver new enough for this build's CUDA runtime (" + std::to_string(CUDART_VERSION / 1000) +
               "." + std::to_string(CUDART_VERSION % 1000 / 10) + ") was found";
    cudaGetLastError();
    return s;
  }
  if (e != cudaSuccess) {
    s.reason = std::string("no usable CUDA driver or device: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear it, so that it does not surface in a later check
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device is present";
    return s;
  }
  cudaDeviceProp p;
  e = cudaGetDeviceProperties(&p, 0);
  if (e != cudaSuccess) {
    s.reason = std::string("the CUDA device could not be queried: ") + cudaGetErrorString(e);
    return s;
  }
  if (p.major < 8) {
    s.reason = std::string("the GPU (") + p.name + ", compute capability " + std::to_string(p.major) + "." +
               std::to_string(p.minor) + ") is older than the engine's kernels need (8.0: bf16 tensor cores)";
    return s;
  }
  s.available = true;
  s.device = std::string(p.name) + " (compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) + ")";
  return s;
}

}  // namespace s2s

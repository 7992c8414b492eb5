// Choosing a backend: the device (CPU, CUDA when available) and, inside each device's make_*_model,
// the architecture. The only place that knows both devices.
#include <memory>
#include <string>

#include "backend.h"

namespace s2s {

std::shared_ptr<ModelBackend> make_cpu_model(const ModelConfig& cfg);   // cpu/model_cpu.cc
#ifdef S2S_WITH_CUDA
std::shared_ptr<ModelBackend> make_cuda_model(const ModelConfig& cfg);  // cuda/model_cuda.cu
#endif

std::shared_ptr<ModelBackend> make_backend(const ModelConfig& cfg, const std::string& device) {
  if (device == "cpu") return make_cpu_model(cfg);
  if (device != "cuda" && device != "auto")
    throw Error("device must be 'auto', 'cpu' or 'cuda', got '" + device + "'");
  CudaStatus s = cuda_status();
  if (!s.available) {
    if (device == "auto") return make_cpu_model(cfg);
    throw Error("the CUDA backend is unavailable: " + s.reason);
  }
#ifdef S2S_WITH_CUDA
  return make_cuda_model(cfg);
#else
  return make_cpu_model(cfg);
#endif
}

}  // namespace s2s

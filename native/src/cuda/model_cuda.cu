// The runtime's CUDA instantiation.
#include "cuda/model_cuda.h"

#include "model_impl.h"

namespace s2s {

template class Transformer<arch::GPT2, cuda::CudaOps>;
template class Transformer<arch::Llama, cuda::CudaOps>;

std::shared_ptr<ModelBackend> make_cuda_model(const ModelConfig& cfg) { return make_model<cuda::CudaOps>(cfg); }

}  // namespace s2s

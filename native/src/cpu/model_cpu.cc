// The runtime's CPU instantiation.
#include "cpu/model_cpu.h"

#include "model_impl.h"

namespace s2s {

template class Transformer<arch::GPT2, CpuOps>;
template class Transformer<arch::Llama, CpuOps>;

std::shared_ptr<ModelBackend> make_cpu_model(const ModelConfig& cfg) { return make_model<CpuOps>(cfg); }

}  // namespace s2s

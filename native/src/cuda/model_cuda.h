// The transformer runtime on an NVIDIA GPU (for the C++ tests and the GPU benchmark; the engine
// builds models through make_backend). Parameters, gradients and AdamW state are fp32 on the
// device; matmuls run at the op set's precision (src/cuda/ops.cuh). In bf16 the argmax behind
// greedy decoding and divergence scoring may pick the other token of a near-tie (logits within
// bf16's rounding) where the CPU would not; fp32 matches the CPU token for token (tests/test_cuda.cc).
#pragma once

#include <memory>

#include "arch/gpt2.h"
#include "arch/llama.h"
#include "cuda/ops.cuh"
#include "model.h"

namespace s2s {

extern template class Transformer<arch::GPT2, cuda::CudaOps>;
extern template class Transformer<arch::Llama, cuda::CudaOps>;

namespace cuda {
using GPTCuda = Transformer<arch::GPT2, CudaOps>;
using LlamaCuda = Transformer<arch::Llama, CudaOps>;
}  // namespace cuda


}  // namespace s2s

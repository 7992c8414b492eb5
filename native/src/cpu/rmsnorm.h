// RMSNorm over the channel dimension (Llama's LlamaRMSNorm), computed in fp32 with eps from the config.
#pragma once

#include <cstdint>

namespace s2s {

// out[n,:] = inp[n,:] * rstd[n] * weight, rstd[n] = 1 / sqrt(mean(inp[n,:]^2) + eps); saves rstd for backward.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps);
// dinp += d/dinp, dweight += d/dweight (both accumulate, as layernorm_backward); dinp must not alias
// dout (CUDA reads dout again for dweight after writing dinp).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int C);

void rmsnorm_forward_naive(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C,
                           float eps);

}  // namespace s2s

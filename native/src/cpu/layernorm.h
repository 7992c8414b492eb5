// LayerNorm over the channel dimension (eps 1e-5, as GPT-2).
#pragma once

#include <cstdint>

#include "ops/contracts.h"  // kLayerNormEps

namespace s2s {

// out[n,:] = (inp[n,:] - mean) * rstd * weight + bias; saves mean[n] and rstd[n] for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C);
// dinp += d/dinp, dweight += ..., dbias += ...   (all accumulate)
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int C);

void layernorm_forward_naive(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                             const float* bias, int64_t N, int C);

}  // namespace s2s

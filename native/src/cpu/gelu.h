// GELU, tanh approximation (GPT-2's "gelu_new").
#pragma once

#include <cstdint>

namespace s2s {

void gelu_forward(float* out, const float* inp, int64_t N);
// dinp = dout * gelu'(inp) (overwritten; may alias dout)
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N);

void gelu_forward_naive(float* out, const float* inp, int64_t N);

}  // namespace s2s

// GELU, tanh approximation (GPT-2's "gelu_new").
#pragma once

#include <cstdint>

#include "cpu/vecmath.h"

namespace s2s {

// gelu'(x) * dout, as every GELU backward here computes it (vectorises in omp simd loops).
#pragma omp declare simd notinbranch
inline float gelu_grad_times(float x, float dout) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  float u = k * (x + 0.044715f * x * x * x);
  float th = fast_tanh(u);
  float sech2 = 1.0f - th * th;
  float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * k * (1.0f + 3.0f * 0.044715f * x * x);
  return grad * dout;
}

void gelu_forward(float* out, const float* inp, int64_t N);
// dinp = dout * gelu'(inp) (overwritten; may alias dout)
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N);

void gelu_forward_naive(float* out, const float* inp, int64_t N);

}  // namespace s2s

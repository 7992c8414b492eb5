// GELU forward/backward (tanh form), vectorised with fast_tanh; reference loops in double.
#include "cpu/gelu.h"

#include <cmath>

#include "common.h"
#include "cpu/vecmath.h"

namespace s2s {

static constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

void gelu_forward(float* out, const float* inp, int64_t N) {
#pragma omp parallel for simd schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + fast_tanh(kGeluScale * (x + 0.044715f * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N) {
#pragma omp parallel for simd schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; i++) dinp[i] = gelu_grad_times(inp[i], dout[i]);
}

void gelu_forward_naive(float* out, const float* inp, int64_t N) {
  for (int64_t i = 0; i < N; i++) {
    double x = inp[i];
    out[i] = (float)(0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
  }
}

}  // namespace s2s

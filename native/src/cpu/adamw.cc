// AdamW and the global norm: one parallel loop each; reference loops in double.
#include "cpu/adamw.h"

#include <cmath>

#include "common.h"

namespace s2s {

double global_norm(const float* grads, size_t n) {
  double acc = 0.0;
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if ((int64_t)n >= kMinParallelWork)
  for (size_t i = 0; i < n; i++) acc += (double)grads[i] * grads[i];
  return std::sqrt(acc);
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  float bc1 = 1.0f - (float)std::pow((double)beta1, (double)t);
  float bc2 = 1.0f - (float)std::pow((double)beta2, (double)t);
  float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for simd schedule(static) if ((int64_t)n >= kMinParallelWork)
  for (size_t i = 0; i < n; i++) {
    float g = grads[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
  }
}

}  // namespace s2s

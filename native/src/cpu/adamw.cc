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

namespace {

// One AdamW update of the n values from i0 (the loop both entry points run).
inline void adamw_range(float* params, const float* grads, float* m, float* v, size_t i0, size_t i1, float lr,
                        float beta1, float beta2, float eps, float decay, float bc1, float bc2, float grad_scale) {
#pragma omp simd
  for (size_t i = i0; i < i1; i++) {
    float g = grads[i] * grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
  }
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  adamw_update_with_copy(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale, nullptr,
                         CpuMatmul::fp32);
}

void adamw_update_with_copy(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t t, float grad_scale, void* copy,
                            CpuMatmul mode) {
  float bc1 = 1.0f - (float)std::pow((double)beta1, (double)t);
  float bc2 = 1.0f - (float)std::pow((double)beta2, (double)t);
  float decay = 1.0f - lr * weight_decay;
  const size_t esz = operand_size(mode);
  // blocks of 16 KiB of parameters: the copy reads each block right after the update wrote it
  const size_t block = 4096, blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if ((int64_t)n >= kMinParallelWork)
  for (size_t b = 0; b < blocks; b++) {
    const size_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
    adamw_range(params, grads, m, v, i0, i1, lr, beta1, beta2, eps, decay, bc1, bc2, grad_scale);
    if (copy) to_operand(static_cast<char*>(copy) + i0 * esz, params + i0, (int64_t)(i1 - i0), mode);
  }
}

}  // namespace s2s

// AdamW and the global norm: one parallel loop each, over blocks a core keeps in cache.
#include "cpu/adamw.h"

#include <cmath>

#include "common.h"

namespace s2s {

namespace {
constexpr size_t kBlock = 4096;  // 16 KiB of fp32 values
}  // namespace

double global_norm(const float* grads, size_t n) {
  // 16 partial sums per block (the compiler keeps them in independent vector registers, so the
  // additions are not one dependent chain), then the blocks' sums in a fixed per-thread order.
  const size_t blocks = (n + kBlock - 1) / kBlock;
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if ((int64_t)n >= kMinParallelWork)
  for (size_t b = 0; b < blocks; b++) {
    const size_t i0 = b * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
    double lane[16] = {0};
    size_t i = i0;
    for (; i + 16 <= i1; i += 16) {
      __builtin_prefetch(grads + i + 1024);  // 4 KiB on: one stream, read once, from memory
#pragma omp simd
      for (int j = 0; j < 16; j++) lane[j] += (double)grads[i + j] * grads[i + j];
    }
    double s = 0.0;
    for (; i < i1; i++) s += (double)grads[i] * grads[i];
    for (int j = 0; j < 16; j++) s += lane[j];
    acc += s;
  }
  return std::sqrt(acc);
}

namespace {

// One AdamW update of the values [i0, i1), zeroing their gradients as it reads them; returns 0
// when every updated parameter is finite, else NaN (p * 0 is NaN for an infinite or NaN p).
inline float adamw_range(float* params, float* grads, float* m, float* v, size_t i0, size_t i1, float lr, float beta1,
                         float beta2, float eps, float decay, float bc1, float bc2, float grad_scale) {
  float probe = 0.0f;
#pragma omp simd reduction(+ : probe)
  for (size_t i = i0; i < i1; i++) {
    float g = grads[i] * grad_scale;
    grads[i] = 0.0f;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i] * decay - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
    params[i] = p;
    probe += p * 0.0f;
  }
  return probe;
}

}  // namespace

bool adamw_update_with_copy(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t t, float grad_scale, void* copy,
                            CpuMatmul mode) {
  float bc1 = 1.0f - (float)std::pow((double)beta1, (double)t);
  float bc2 = 1.0f - (float)std::pow((double)beta2, (double)t);
  float decay = 1.0f - lr * weight_decay;
  const size_t esz = operand_size(mode);
  // the copy reads each block right after the update wrote it
  const size_t blocks = (n + kBlock - 1) / kBlock;
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if ((int64_t)n >= kMinParallelWork)
  for (size_t b = 0; b < blocks; b++) {
    const size_t i0 = b * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
    float probe = adamw_range(params, grads, m, v, i0, i1, lr, beta1, beta2, eps, decay, bc1, bc2, grad_scale);
    bad |= probe != 0.0f;  // NaN != 0
    if (copy) to_operand(static_cast<char*>(copy) + i0 * esz, params + i0, (int64_t)(i1 - i0), mode);
  }
  return bad == 0;
}

}  // namespace s2s

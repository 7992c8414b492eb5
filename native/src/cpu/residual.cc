// Residual addition.
#include "cpu/residual.h"

#include "common.h"

namespace s2s {

void residual_forward(float* out, const float* a, const float* b, int64_t N) {
#pragma omp parallel for simd schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void residual_forward_naive(float* out, const float* a, const float* b, int64_t N) {
  for (int64_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

}  // namespace s2s

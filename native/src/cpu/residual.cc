// Residual addition, and the row gather the LM head uses.
#include "cpu/residual.h"

#include <cstring>

#include "common.h"

namespace s2s {

void residual_forward(float* out, const float* a, const float* b, int64_t N) {
#pragma omp parallel for simd schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void gather_rows(float* dst, const float* src, const int64_t* idx, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++) std::memcpy(dst + n * C, src + idx[n] * C, C * sizeof(float));
}

}  // namespace s2s

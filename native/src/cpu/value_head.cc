// Value head forward/backward and reference loops.
#include "cpu/value_head.h"

#include <omp.h>

#include <cstddef>
#include <vector>

#include "common.h"

namespace s2s {

void value_head_forward(float* values, const float* lnf, const float* weight, int64_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    const float* x = lnf + n * C;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int c = 0; c < C; c++) acc += x[c] * weight[c];
    values[n] = acc;
  }
}

void value_head_backward(float* dlnf, float* dweight, const float* dvalues, const float* lnf,
                         const float* weight, int64_t N, int C) {
  int nthreads = omp_get_max_threads();
  std::vector<double> partial((size_t)nthreads * C, 0.0);
#pragma omp parallel if (N * C >= kMinParallelWork)
  {
    double* dw = partial.data() + (size_t)omp_get_thread_num() * C;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      float g = dvalues[n];
      if (g == 0.0f) continue;
      const float* x = lnf + n * C;
      float* dx = dlnf + n * C;
      for (int c = 0; c < C; c++) {
        dx[c] += g * weight[c];
        dw[c] += (double)g * x[c];
      }
    }
  }
  for (int t = 0; t < nthreads; t++) {
    const double* dw = partial.data() + (size_t)t * C;
    for (int c = 0; c < C; c++) dweight[c] += (float)dw[c];
  }
}

}  // namespace s2s

// RMSNorm forward/backward: row-parallel loops that vectorise (sums of squares in fp32, as HF's
// LlamaRMSNorm computes them, over a few thousand channels at most), and the reference loops in double.
#include "cpu/rmsnorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "common.h"
#include "cpu/matmul.h"

namespace s2s {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) {
  // the next matmul's copy of each row too, while the row is in cache (operand_made_here)
  void* copy = operand_made_here(out, N * C);
  const CpuMatmul mode = current_matmul();
  const size_t esz = operand_size(mode);
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / C + eps);
    float* o = out + n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
    if (copy) to_operand(static_cast<char*>(copy) + n * C * esz, o, C, mode);
    rstd[n] = r;
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int C) {
  // y = w x r, r = (mean(x^2) + eps)^-1/2:  dx = r (w dy - x r^2 mean(w dy x)),  dw = sum_n x r dy.
  // Rows are independent except for dweight: each thread sums its rows' share privately.
  int nthreads = omp_get_max_threads();
  std::vector<float> partial((size_t)nthreads * C, 0.0f);
#pragma omp parallel if (N * C >= kMinParallelWork)
  {
    float* dw = partial.data() + (size_t)omp_get_thread_num() * C;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      float r = rstd[n];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < C; c++) dot += weight[c] * d[c] * x[c];
      float k = r * r * dot / C;
      float* dx = dinp + n * C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        dx[c] += r * (weight[c] * d[c] - x[c] * k);
        dw[c] += x[c] * r * d[c];
      }
    }
  }
  for (int t = 0; t < nthreads; t++) {
    const float* dw = partial.data() + (size_t)t * C;
    for (int c = 0; c < C; c++) dweight[c] += dw[c];
  }
}

void rmsnorm_forward_naive(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C,
                           float eps) {
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
    double r = 1.0 / std::sqrt(ss / C + (double)eps);
    for (int c = 0; c < C; c++) out[n * C + c] = (float)(x[c] * r * weight[c]);
    rstd[n] = (float)r;
  }
}

}  // namespace s2s

// LayerNorm forward/backward: row-parallel loops that vectorise, and the reference loops.
#include "cpu/layernorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "common.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C) {
  // the next matmul's copy of each row too, while the row is in cache (operand_made_here)
  void* copy = operand_made_here(out, N * C);
  const CpuMatmul mode = current_matmul();
  const size_t esz = operand_size(mode);
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    prefetch_row_ahead(inp, n, N, C);
    const float* x = inp + n * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    float m = s / C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) {
      float d = x[c] - m;
      v += d * d;
    }
    float r = 1.0f / std::sqrt(v / C + kLayerNormEps);
    float* o = out + n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (copy) to_operand(static_cast<char*>(copy) + n * C * esz, o, C, mode);
    mean[n] = m;
    rstd[n] = r;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int C) {
  // Rows are independent except for dweight/dbias: each thread sums its rows' share privately.
  int nthreads = omp_get_max_threads();
  std::vector<float> partial((size_t)nthreads * 2 * C, 0.0f);
#pragma omp parallel if (N * C >= kMinParallelWork)
  {
    float* dw = partial.data() + (size_t)omp_get_thread_num() * 2 * C;
    float* db = dw + C;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      prefetch_row_ahead(inp, n, N, C);
      prefetch_row_ahead(dout, n, N, C);
      prefetch_row_ahead(dinp, n, N, C);
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      float m = mean[n], r = rstd[n];
      float sum_dn = 0.0f, sum_dn_norm = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dn_norm)
      for (int c = 0; c < C; c++) {
        float norm = (x[c] - m) * r;
        float dn = weight[c] * d[c];
        sum_dn += dn;
        sum_dn_norm += dn * norm;
      }
      float mean_dn = sum_dn / C, mean_dn_norm = sum_dn_norm / C;
      float* dx = dinp + n * C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        float norm = (x[c] - m) * r;
        float dn = weight[c] * d[c];
        dx[c] += (dn - mean_dn - norm * mean_dn_norm) * r;
        dw[c] += norm * d[c];
        db[c] += d[c];
      }
    }
  }
  for (int t = 0; t < nthreads; t++) {
    const float* dw = partial.data() + (size_t)t * 2 * C;
    for (int c = 0; c < C; c++) {
      dweight[c] += dw[c];
      dbias[c] += dw[C + c];
    }
  }
}

void layernorm_forward_naive(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                             const float* bias, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    double m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    double v = 0;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    double r = 1.0 / std::sqrt(v + kLayerNormEps);
    for (int c = 0; c < C; c++) out[n * C + c] = (float)((x[c] - m) * r * weight[c] + bias[c]);
    mean[n] = (float)m;
    rstd[n] = (float)r;
  }
}

}  // namespace s2s

// SwiGLU forward/backward (silu(gate) * up), vectorised with fast_exp; reference loops in double.
#include "cpu/swiglu.h"

#include <algorithm>
#include <cmath>

#include "common.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

void swiglu_forward(float* out, const float* h, int64_t N, int64_t F) {
  // in a training forward with bf16 matmuls, only the next matmul's copy of each row, through L1 a
  // block at a time: that matmul is all that reads it (operand_instead_here)
  void* copy = operand_instead_here(out, N * F);
  const CpuMatmul mode = current_matmul();
  const size_t esz = operand_size(mode);
  constexpr int64_t kBlock = 4096;
#pragma omp parallel for schedule(static) if (N * F >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    const float* g = h + n * 2 * F;
    const float* u = g + F;
    prefetch_row_ahead(h, n, N, 2 * F);  // (see gelu_forward)
    float block[kBlock];
    for (int64_t f0 = 0; f0 < F; f0 += kBlock) {
      const int64_t f1 = std::min(F, f0 + kBlock);
      float* o = copy ? block : out + n * F + f0;
      const float *gf = g + f0, *uf = u + f0;
#pragma omp simd
      for (int64_t f = 0; f < f1 - f0; f++) o[f] = gf[f] / (1.0f + fast_exp(-gf[f])) * uf[f];
      if (copy) to_operand(static_cast<char*>(copy) + (n * F + f0) * esz, block, f1 - f0, mode);
    }
  }
}

void swiglu_backward(float* dh, const float* dout, const float* h, int64_t N, int64_t F) {
  // d silu(g) / dg = sig(g) (1 + g (1 - sig(g))). Each element reads its gate and up before writing
  // either gradient, so dh may be h itself.
#pragma omp parallel for schedule(static) if (N * F >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    const float* g = h + n * 2 * F;
    const float* u = g + F;
    const float* d = dout + n * F;
    float* dg = dh + n * 2 * F;
    float* du = dg + F;
#pragma omp simd
    for (int64_t f = 0; f < F; f++) {
      float x = g[f], up = u[f];
      float sig = 1.0f / (1.0f + fast_exp(-x));
      dg[f] = d[f] * up * sig * (1.0f + x * (1.0f - sig));
      du[f] = d[f] * x * sig;
    }
  }
}

void swiglu_forward_naive(float* out, const float* h, int64_t N, int64_t F) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t f = 0; f < F; f++) {
      double g = h[n * 2 * F + f], u = h[n * 2 * F + F + f];
      out[n * F + f] = (float)(g / (1.0 + std::exp(-g)) * u);
    }
}

}  // namespace s2s

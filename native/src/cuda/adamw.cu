// AdamW and the global gradient norm on the GPU. The sum of squares is accumulated in double, as
// on the CPU (a float sum overflows for gradients the CPU still clips), into one partial per block,
// then summed in a fixed order, so the norm and the clip scale are the same on every run. AdamW is
// elementwise with the bias corrections computed on the host exactly as the CPU computes them.
#include <algorithm>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

__global__ void sum_squares_kernel(double* partials, const float* g, size_t n) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    s += (double)g[i] * g[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// One block: *acc += the partials' sum, each thread taking a fixed stride of them.
__global__ void add_partials_kernel(double* acc, const double* partials, unsigned count) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *acc += s;
}

__global__ void adamw_kernel(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1,
                             float beta2, float eps, float decay, float bc1, float bc2, float grad_scale) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = grads[i] * grad_scale;
  grads[i] = 0.0f;  // the step consumes the gradient (kernels.h)
  float mi = beta1 * m[i] + (1.0f - beta1) * g;
  float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  params[i] = params[i] * decay - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
}

}  // namespace

void sum_squares(double* acc, const float* grads, size_t n) {
  if (n == 0) return;
  unsigned blocks = (unsigned)std::min<int64_t>(ceil_div((int64_t)n, 1024), kSumSquaresBlocks);
  S2S_LAUNCH(sum_squares_kernel, blocks, 1024)(acc + 1, grads, n);
  S2S_CUDA_LAUNCHED("sum_squares");
  S2S_LAUNCH(add_partials_kernel, 1, 1024)(acc, acc + 1, blocks);
  S2S_CUDA_LAUNCHED("sum_squares (partials)");
}

void adamw_update(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  if (n == 0) return;
  float bc1 = 1.0f - (float)std::pow((double)beta1, (double)t);
  float bc2 = 1.0f - (float)std::pow((double)beta2, (double)t);
  float decay = 1.0f - lr * weight_decay;
  S2S_LAUNCH(adamw_kernel, (unsigned)ceil_div((int64_t)n, 256), 256)(params, grads, m, v, n, lr, beta1, beta2, eps, decay,
                                                              bc1, bc2, grad_scale);
  S2S_CUDA_LAUNCHED("adamw_update");
}

}  // namespace cuda
}  // namespace s2s

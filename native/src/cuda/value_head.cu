// The scalar value head on the GPU: a warp per row for the dot products; the weight's gradient is a
// column sum weighted by the value gradients (add_column_sums, as the bias gradient).
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

__global__ void value_head_forward_kernel(float* values, const float* lnf, const float* weight, int64_t N, int C) {
  int64_t n = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (n >= N) return;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += lnf[n * C + c] * weight[c];
  s = warp_sum(s);
  if (lane == 0) values[n] = s;
}

__global__ void value_head_dlnf_kernel(float* dlnf, const float* dvalues, const float* weight, int64_t N, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N * C) dlnf[i] += dvalues[i / C] * weight[i % C];
}

}  // namespace

void value_head_forward(float* values, const float* lnf, const float* weight, int64_t N, int C) {
  if (N == 0) return;
  S2S_LAUNCH(value_head_forward_kernel, (unsigned)ceil_div(N, 8), 256)(values, lnf, weight, N, C);
  S2S_CUDA_LAUNCHED("value_head_forward");
}

void value_head_backward(float* dlnf, float* dweight, const float* dvalues, const float* lnf, const float* weight,
                         int64_t N, int C) {
  if (N == 0) return;
  S2S_LAUNCH(value_head_dlnf_kernel, (unsigned)ceil_div(N * C, 256), 256)(dlnf, dvalues, weight, N, C);
  S2S_CUDA_LAUNCHED("value_head_backward (hidden states)");
  add_column_sums(dweight, lnf, dvalues, N, C);
}

}  // namespace cuda
}  // namespace s2s

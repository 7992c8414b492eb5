// GELU (tanh approximation, GPT-2's gelu_new) on the GPU, elementwise.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

__global__ void gelu_forward_kernel(float* out, const float* inp, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  float x = inp[i];
  out[i] = 0.5f * x * (1.0f + tanhf(kGeluScale * (x + 0.044715f * x * x * x)));
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  float x = inp[i];
  float th = tanhf(kGeluScale * (x + 0.044715f * x * x * x));
  float sech2 = 1.0f - th * th;
  float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
  dinp[i] = grad * dout[i];
}

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t N) {
  if (N == 0) return;
  S2S_LAUNCH(gelu_forward_kernel, (unsigned)ceil_div(N, 256), 256)(out, inp, N);
  S2S_CUDA_LAUNCHED("gelu_forward");
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N) {
  if (N == 0) return;
  S2S_LAUNCH(gelu_backward_kernel, (unsigned)ceil_div(N, 256), 256)(dinp, inp, dout, N);
  S2S_CUDA_LAUNCHED("gelu_backward");
}

}  // namespace cuda
}  // namespace s2s

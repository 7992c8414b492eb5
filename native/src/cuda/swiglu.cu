// Llama's gated MLP activation on the GPU: one thread per output element over h [N, 2F] (gate in
// h[n, 0:F], up in h[n, F:2F]); silu(g) = g / (1 + exp(-g)) with the full-precision expf.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

__global__ void swiglu_forward_kernel(float* out, const float* h, int64_t N, int64_t F) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * F) return;
  int64_t n = i / F, f = i % F;
  float g = h[n * 2 * F + f], u = h[n * 2 * F + F + f];
  out[i] = g / (1.0f + expf(-g)) * u;
}

// d/dg silu(g) = sig(g) (1 + g (1 - sig(g))); d/du = silu(g).
__global__ void swiglu_backward_kernel(float* dh, const float* dout, const float* h, int64_t N, int64_t F) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * F) return;
  int64_t n = i / F, f = i % F;
  int64_t gi = n * 2 * F + f, ui = gi + F;
  float g = h[gi], u = h[ui], d = dout[i];
  float sig = 1.0f / (1.0f + expf(-g));
  dh[gi] = d * u * sig * (1.0f + g * (1.0f - sig));
  dh[ui] = d * g * sig;
}

}  // namespace

void swiglu_forward(float* out, const float* h, int64_t N, int64_t F) {
  int64_t n = N * F;
  if (n == 0) return;
  S2S_LAUNCH(swiglu_forward_kernel, (unsigned)ceil_div(n, 256), 256)(out, h, N, F);
  S2S_CUDA_LAUNCHED("swiglu_forward");
}

void swiglu_backward(float* dh, const float* dout, const float* h, int64_t N, int64_t F) {
  int64_t n = N * F;
  if (n == 0) return;
  S2S_LAUNCH(swiglu_backward_kernel, (unsigned)ceil_div(n, 256), 256)(dh, dout, h, N, F);
  S2S_CUDA_LAUNCHED("swiglu_backward");
}

}  // namespace cuda
}  // namespace s2s

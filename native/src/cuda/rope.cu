// Rotary position embeddings on the GPU, in place (Hugging Face's half-split layout): one thread
// per rotated pair (row n, head, i < hd/2), with the cos/sin tables [maxT, hd/2] on the device.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

// sign +1: the rotation by the position's angle (forward); -1: its inverse (the gradient).
__global__ void rope_kernel(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                            int64_t stride, int nheads, int hd, float sign) {
  int half = hd / 2;
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * nheads * half) return;
  int k = (int)(i % half);
  int64_t nh = i / half;
  int h = (int)(nh % nheads);
  int64_t n = nh / nheads;
  int64_t p = (pos ? pos[n / T] : 0) + n % T;
  float c = cos[p * half + k], s = sign * sin[p * half + k];
  float* row = x + n * stride + (int64_t)h * hd;
  float x0 = row[k], x1 = row[k + half];
  row[k] = x0 * c - x1 * s;
  row[k + half] = x1 * c + x0 * s;
}

void launch_rope(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T, int64_t stride,
                 int nheads, int hd, float sign, const char* name) {
  int64_t n = N * nheads * (hd / 2);
  if (n == 0) return;
  S2S_LAUNCH(rope_kernel, (unsigned)ceil_div(n, 256), 256)(x, cos, sin, pos, N, T, stride, nheads, hd, sign);
  S2S_CUDA_LAUNCHED(name);
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T, int64_t stride,
                  int nheads, int hd) {
  launch_rope(x, cos, sin, pos, N, T, stride, nheads, hd, 1.0f, "rope_forward");
}

void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                   int64_t stride, int nheads, int hd) {
  launch_rope(dx, cos, sin, pos, N, T, stride, nheads, hd, -1.0f, "rope_backward");
}

}  // namespace cuda
}  // namespace s2s

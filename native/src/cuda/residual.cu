// The residual add, and the row gather the LM head and generation use, on the GPU.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

__global__ void residual_forward_kernel(float* out, const float* a, const float* b, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = a[i] + b[i];
}

__global__ void gather_rows_kernel(float* dst, const float* src, const int64_t* idx, int64_t N, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * C) return;
  int64_t n = i / C;
  dst[i] = src[idx[n] * C + i % C];
}

}  // namespace

void residual_forward(float* out, const float* a, const float* b, int64_t N) {
  if (N == 0) return;
  S2S_LAUNCH(residual_forward_kernel, (unsigned)ceil_div(N, 256), 256)(out, a, b, N);
  S2S_CUDA_LAUNCHED("residual_forward");
}

void gather_rows(float* dst, const float* src, const int64_t* idx, int64_t N, int C) {
  if (N == 0) return;
  S2S_LAUNCH(gather_rows_kernel, (unsigned)ceil_div(N * C, 256), 256)(dst, src, idx, N, C);
  S2S_CUDA_LAUNCHED("gather_rows");
}

}  // namespace cuda
}  // namespace s2s

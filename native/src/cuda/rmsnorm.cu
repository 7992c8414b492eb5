// RMSNorm on the GPU (Llama's LlamaRMSNorm): a warp per row, its sum of squares in fp32. The
// backward's dinp is a warp per row too; dweight is a separate pass in which one block owns 8
// channels and sums every row in a fixed order (no atomics: the same bits on every run).
#include <string>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

constexpr int kWarps = 8;  // warps (rows) per block

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int64_t N,
                                       int C, float eps) {
  int64_t n = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (n >= N) return;
  const float* x = inp + n * C;
  float ss = 0.0f;
  for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
  float r = rsqrtf(warp_sum(ss) / C + eps);
  float* o = out + n * C;
  for (int c = lane; c < C; c += 32) o[c] = x[c] * r * weight[c];
  if (lane == 0) rstd[n] = r;
}

// dinp[n,:] += r (w d - xhat mean(w d xhat)), xhat = x r.
__global__ void rmsnorm_backward_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                             const float* rstd, int64_t N, int C) {
  int64_t n = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (n >= N) return;
  const float* x = inp + n * C;
  const float* d = dout + n * C;
  float r = rstd[n];
  float dot = 0.0f;
  for (int c = lane; c < C; c += 32) dot += weight[c] * d[c] * x[c];
  float mean_dn_norm = warp_sum(dot) * r / C;
  float* dx = dinp + n * C;
  for (int c = lane; c < C; c += 32) dx[c] += (weight[c] * d[c] - x[c] * r * mean_dn_norm) * r;
}

// dweight[c] += sum_n dout[n,c] x[n,c] rstd[n]: a block of kDwCols x kDwRows threads owns kDwCols
// channels (one 32-byte sector of a row); thread (x, y) sums rows y, y + kDwRows, ... of channel x,
// then a tree over y adds the partial sums, in the same order on every run.
constexpr int kDwCols = 8, kDwRows = 128;

__global__ void rmsnorm_backward_dweight_kernel(float* dweight, const float* dout, const float* inp,
                                                const float* rstd, int64_t N, int C) {
  __shared__ float part[kDwRows][kDwCols];
  int c = blockIdx.x * kDwCols + threadIdx.x;
  float s = 0.0f;
  if (c < C)
    for (int64_t n = threadIdx.y; n < N; n += kDwRows) s += dout[n * C + c] * inp[n * C + c] * rstd[n];
  part[threadIdx.y][threadIdx.x] = s;
  for (int half = kDwRows / 2; half > 0; half /= 2) {
    __syncthreads();
    if ((int)threadIdx.y < half) part[threadIdx.y][threadIdx.x] += part[threadIdx.y + half][threadIdx.x];
  }
  if (threadIdx.y == 0 && c < C) dweight[c] += part[0][threadIdx.x];
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) {
  if (N == 0) return;
  S2S_LAUNCH(rmsnorm_forward_kernel, (unsigned)ceil_div(N, kWarps), kWarps * 32)(out, rstd, inp, weight, N, C, eps);
  S2S_CUDA_LAUNCHED("rmsnorm_forward");
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int C) {
  if (N == 0 || C == 0) return;
  S2S_LAUNCH(rmsnorm_backward_dinp_kernel, (unsigned)ceil_div(N, kWarps), kWarps * 32)(dinp, dout, inp, weight,
                                                                                      rstd, N, C);
  S2S_CUDA_LAUNCHED("rmsnorm_backward (dinp)");
  S2S_LAUNCH(rmsnorm_backward_dweight_kernel, (unsigned)ceil_div(C, kDwCols), dim3(kDwCols, kDwRows))(
      dweight, dout, inp, rstd, N, C);
  S2S_CUDA_LAUNCHED("rmsnorm_backward (dweight)");
}

}  // namespace cuda
}  // namespace s2s

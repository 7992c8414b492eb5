// LayerNorm on the GPU: a warp per row. The backward sums each block's share of dweight and dbias
// in shared memory before one atomic add per channel.
#include "ops/contracts.h"  // kLayerNormEps
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

constexpr int kWarps = 8;       // warps per block
constexpr int kRowsPerWarp = 4;  // in the backward

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                         const float* bias, int64_t N, int C) {
  int64_t n = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (n >= N) return;
  const float* x = inp + n * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += x[c];
  float m = warp_sum(s) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    float d = x[c] - m;
    v += d * d;
  }
  float r = rsqrtf(warp_sum(v) / C + kLayerNormEps);
  float* o = out + n * C;
  for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * weight[c] + bias[c];
  if (lane == 0) {
    mean[n] = m;
    rstd[n] = r;
  }
}

__global__ void layernorm_backward_kernel(float* dinp, float* dweight, float* dbias, const float* dout,
                                          const float* inp, const float* weight, const float* mean,
                                          const float* rstd, int64_t N, int C) {
  S2S_DYNAMIC_SHARED(float, shared);  // [2C]: this block's dweight, dbias
  float* dw = shared;
  float* db = shared + C;
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) shared[c] = 0.0f;
  __syncthreads();
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int64_t base = (int64_t)blockIdx.x * kWarps * kRowsPerWarp;
  for (int k = 0; k < kRowsPerWarp; k++) {
    int64_t n = base + (int64_t)k * kWarps + warp;
    if (n >= N) break;
    const float* x = inp + n * C;
    const float* d = dout + n * C;
    float m = mean[n], r = rstd[n];
    float sum_dn = 0.0f, sum_dn_norm = 0.0f;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * r, dn = weight[c] * d[c];
      sum_dn += dn;
      sum_dn_norm += dn * norm;
    }
    float mean_dn = warp_sum(sum_dn) / C, mean_dn_norm = warp_sum(sum_dn_norm) / C;
    float* dx = dinp + n * C;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * r;
      dx[c] += (weight[c] * d[c] - mean_dn - norm * mean_dn_norm) * r;
      atomicAdd(&dw[c], d[c] * norm);
      atomicAdd(&db[c], d[c]);
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    atomicAdd(&dweight[c], dw[c]);
    atomicAdd(&dbias[c], db[c]);
  }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C) {
  if (N == 0) return;
  S2S_LAUNCH(layernorm_forward_kernel, (unsigned)ceil_div(N, kWarps), kWarps * 32)(out, mean, rstd, inp, weight, bias, N, C);
  S2S_CUDA_LAUNCHED("layernorm_forward");
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int C) {
  if (N == 0) return;
  size_t smem = 2 * (size_t)C * sizeof(float);
  if (smem > 48 * 1024) throw Error("layernorm_backward on the GPU supports at most 6144 channels");
  unsigned blocks = (unsigned)ceil_div(N, kWarps * kRowsPerWarp);
  S2S_LAUNCH(layernorm_backward_kernel, blocks, kWarps * 32, smem)(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  S2S_CUDA_LAUNCHED("layernorm_backward");
}

}  // namespace cuda
}  // namespace s2s

// Causal attention on the GPU, mirroring the CPU: the four products per head are strided batched
// GEMMs over views of qkv (no copies), the softmax and its backward are warp-per-row kernels; the
// KV-cache decoding step is a block per (row, head).
#include <cmath>

#include "ops/strides.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

// Row `row` of att [B*NH*T, T] holds query position i = row % T: softmax over 0..i, zeros after.
__global__ void causal_softmax_kernel(float* att, int64_t rows, int T) {
  int64_t row = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= rows) return;
  int i = (int)(row % T);
  float* a = att + row * T;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, a[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    float e = __expf(a[j] - mx);
    a[j] = e;
    sum += e;
  }
  float inv = 1.0f / warp_sum(sum);
  for (int j = lane; j < T; j += 32) a[j] = j <= i ? a[j] * inv : 0.0f;
}

// In place: d = att * (d - sum_j att * d) over 0..i, zeros after.
__global__ void causal_softmax_backward_kernel(float* datt, const float* att, int64_t rows, int T) {
  int64_t row = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= rows) return;
  int i = (int)(row % T);
  const float* a = att + row * T;
  float* d = datt + row * T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) dot += a[j] * d[j];
  dot = warp_sum(dot);
  for (int j = lane; j < T; j += 32) d[j] = j <= i ? a[j] * (d[j] - dot) : 0.0f;
}

__global__ void kv_cache_write_kernel(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int B,
                                      int maxT, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)B * C) return;
  int b = (int)(i / C), c = (int)(i % C);
  int64_t dst = ((int64_t)b * maxT + pos[b]) * C + c;
  kcache[dst] = qkv[(int64_t)b * 3 * C + C + c];
  vcache[dst] = qkv[(int64_t)b * 3 * C + 2 * C + c];
}

__global__ void kv_cache_prefill_kernel(float* kcache, float* vcache, const float* qkv, const int32_t* len, int B,
                                        int P, int maxT, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)B * P * C) return;
  int c = (int)(i % C);
  int64_t bt = i / C;
  int b = (int)(bt / P), t = (int)(bt % P);
  if (t >= len[b]) return;
  int64_t dst = ((int64_t)b * maxT + t) * C + c;
  kcache[dst] = qkv[bt * 3 * C + C + c];
  vcache[dst] = qkv[bt * 3 * C + 2 * C + c];
}

// Block (b, h): scores over positions 0..pos[b] in shared memory, softmax, weighted sum of values.
__global__ void attention_decode_kernel(float* out, const float* qkv, const float* kcache, const float* vcache,
                                        const int32_t* pos, int maxT, int C, int NH) {
  S2S_DYNAMIC_SHARED(float, shared);  // [32 scratch | maxT scores]
  float* scratch = shared;
  float* score = shared + 32;
  int b = blockIdx.x / NH, h = blockIdx.x % NH, hs = C / NH;
  int n = pos[b] + 1;
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float scale = rsqrtf((float)hs);
  const float* q = qkv + (int64_t)b * 3 * C + h * hs;
  const float* kb = kcache + (int64_t)b * maxT * C + h * hs;
  const float* vb = vcache + (int64_t)b * maxT * C + h * hs;
  for (int j = warp; j < n; j += warps) {
    float s = 0.0f;
    for (int c = lane; c < hs; c += 32) s += q[c] * kb[(int64_t)j * C + c];
    s = warp_sum(s);
    if (lane == 0) score[j] = s * scale;
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, score[j]);
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float e = __expf(score[j] - mx);
    score[j] = e;
    sum += e;
  }
  float inv = 1.0f / block_sum(sum, scratch);  // its barriers also publish the exponentials
  for (int c = threadIdx.x; c < hs; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < n; j++) acc += score[j] * vb[(int64_t)j * C + c];
    out[(int64_t)b * C + h * hs + c] = acc * inv;
  }
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH, Precision p) {
  if (B == 0 || T == 0) return;
  int hs = C / NH;
  float scale = 1.0f / std::sqrt((float)hs);
  gemm_batched(B, NH, T, T, hs, qkv, qkv_view(T, C, hs), qkv + C, qkv_view_t(T, C, hs), att, att_view(NH, T), scale,
               false, p);
  int64_t rows = (int64_t)B * NH * T;
  S2S_LAUNCH(causal_softmax_kernel, (unsigned)ceil_div(rows, 8), 256)(att, rows, T);
  S2S_CUDA_LAUNCHED("attention softmax");
  gemm_batched(B, NH, T, hs, T, att, att_view(NH, T), qkv + 2 * C, qkv_view(T, C, hs), out, heads_view(T, C, hs),
               1.0f, false, p);
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att, int B,
                        int T, int C, int NH, Precision p) {
  if (B == 0 || T == 0) return;
  int hs = C / NH;
  float scale = 1.0f / std::sqrt((float)hs);
  gemm_batched(B, NH, T, T, hs, dout, heads_view(T, C, hs), qkv + 2 * C, qkv_view_t(T, C, hs), datt,
               att_view(NH, T), 1.0f, false, p);
  gemm_batched(B, NH, T, hs, T, att, att_view_t(NH, T), dout, heads_view(T, C, hs), dqkv + 2 * C,
               qkv_view(T, C, hs), 1.0f, false, p);
  int64_t rows = (int64_t)B * NH * T;
  S2S_LAUNCH(causal_softmax_backward_kernel, (unsigned)ceil_div(rows, 8), 256)(datt, att, rows, T);
  S2S_CUDA_LAUNCHED("attention softmax backward");
  gemm_batched(B, NH, T, hs, T, datt, att_view(NH, T), qkv + C, qkv_view(T, C, hs), dqkv, qkv_view(T, C, hs), scale,
               false, p);
  gemm_batched(B, NH, T, hs, T, datt, att_view_t(NH, T), qkv, qkv_view(T, C, hs), dqkv + C, qkv_view(T, C, hs),
               scale, false, p);
}

void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int B, int maxT, int C) {
  if (B == 0) return;
  S2S_LAUNCH(kv_cache_write_kernel, (unsigned)ceil_div((int64_t)B * C, 256), 256)(kcache, vcache, qkv, pos, B, maxT, C);
  S2S_CUDA_LAUNCHED("kv_cache_write");
}

void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int B, int P, int maxT,
                      int C) {
  if (B == 0 || P == 0) return;
  S2S_LAUNCH(kv_cache_prefill_kernel, (unsigned)ceil_div((int64_t)B * P * C, 256), 256)(kcache, vcache, qkv, len, B, P,
                                                                                 maxT, C);
  S2S_CUDA_LAUNCHED("kv_cache_prefill");
}

void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache, const int32_t* pos,
                      int B, int maxT, int C, int NH) {
  if (B == 0) return;
  // the scores of one row and the reduction scratch, in the 48 KiB of shared memory every launch may take
  constexpr size_t kMaxPositions = 48 * 1024 / sizeof(float) - 32;
  if ((size_t)maxT > kMaxPositions)
    throw Error("attention_decode on the GPU supports contexts of at most " + std::to_string(kMaxPositions) +
                " positions (got " + std::to_string(maxT) + ")");
  size_t smem = (32 + (size_t)maxT) * sizeof(float);
  S2S_LAUNCH(attention_decode_kernel, (unsigned)(B * NH), 128, smem)(out, qkv, kcache, vcache, pos, maxT, C, NH);
  S2S_CUDA_LAUNCHED("attention_decode");
}

}  // namespace cuda
}  // namespace s2s

// Causal (grouped-query) attention on the GPU, mirroring the CPU: the four products per head are
// strided batched GEMMs over views of qkv (no copies; with G = NH / KVH query heads per key/value
// head, one call per g batched over (b, kv head)), the softmax and its backward are warp-per-row
// kernels; the KV-cache decoding step is a block per (row, query head).
#include <cmath>
#include <string>

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
                                      int maxT, int64_t W, int64_t qw, int KV) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)B * KV) return;
  int b = (int)(i / KV), c = (int)(i % KV);
  int64_t dst = ((int64_t)b * maxT + pos[b]) * KV + c;
  kcache[dst] = qkv[(int64_t)b * W + qw + c];
  vcache[dst] = qkv[(int64_t)b * W + qw + KV + c];
}

__global__ void kv_cache_prefill_kernel(float* kcache, float* vcache, const float* qkv, const int32_t* len, int B,
                                        int P, int maxT, int64_t W, int64_t qw, int KV) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)B * P * KV) return;
  int c = (int)(i % KV);
  int64_t bt = i / KV;
  int b = (int)(bt / P), t = (int)(bt % P);
  if (t >= len[b]) return;
  int64_t dst = ((int64_t)b * maxT + t) * KV + c;
  kcache[dst] = qkv[bt * W + qw + c];
  vcache[dst] = qkv[bt * W + qw + KV + c];
}

// Block (b, h): scores over positions 0..pos[b] in shared memory, softmax, weighted sum of values
// (query head h reads key/value head h / G).
__global__ void attention_decode_kernel(float* out, const float* qkv, const float* kcache, const float* vcache,
                                        const int32_t* pos, int maxT, int NH, int G, int hd, int64_t W) {
  S2S_DYNAMIC_SHARED(float, shared);  // [32 scratch | maxT scores]
  float* scratch = shared;
  float* score = shared + 32;
  int b = blockIdx.x / NH, h = blockIdx.x % NH, kvh = h / G;
  int64_t KV = (int64_t)(NH / G) * hd;
  int n = pos[b] + 1;
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float scale = rsqrtf((float)hd);
  const float* q = qkv + (int64_t)b * W + (int64_t)h * hd;
  const float* kb = kcache + (int64_t)b * maxT * KV + (int64_t)kvh * hd;
  const float* vb = vcache + (int64_t)b * maxT * KV + (int64_t)kvh * hd;
  for (int j = warp; j < n; j += warps) {
    float s = 0.0f;
    for (int c = lane; c < hd; c += 32) s += q[c] * kb[(int64_t)j * KV + c];
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
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < n; j++) acc += score[j] * vb[(int64_t)j * KV + c];
    out[(int64_t)b * NH * hd + (int64_t)h * hd + c] = acc * inv;
  }
}

// Where turn g's operands start and how they stride (ops/strides.h): turn g batches the query
// heads kvh * G + g over (b, kvh); G == 1 is one turn over (b, h), as GPT-2 always ran it.
struct Turn {
  int T, NH, G;
  int64_t hd, W, QW;  // head size; qkv's row width; the output's (NH hd)
  explicit Turn(const AttnShape& s) : T(s.T), NH(s.NH), G(s.group()), hd(s.hd), W(s.qkv_width()), QW(s.q_width()) {}
  int64_t q(int g) const { return g * hd; }              // in qkv / dqkv and in out / dout
  int64_t att(int g) const { return (int64_t)g * T * T; }  // in att / datt
  Strides qv() const { return head_rows(T, W, G * hd); }
  Strides kvv() const { return head_rows(T, W, hd); }
  Strides kvv_t() const { return head_rows_t(T, W, hd); }
  Strides outv() const { return head_rows(T, QW, G * hd); }
  Strides attv() const { return att_heads(NH, T, G); }
  Strides attv_t() const { return att_heads_t(NH, T, G); }
};

void check_shape(const AttnShape& s, const char* op) {
  if (s.B < 0 || s.T < 0 || s.NH <= 0 || s.KVH <= 0 || s.hd <= 0 || s.NH % s.KVH != 0)
    throw Error(std::string(op) + ": invalid attention shape (NH " + std::to_string(s.NH) + ", KVH " +
                std::to_string(s.KVH) + ", hd " + std::to_string(s.hd) + ")");
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const AttnShape& s, Precision p) {
  check_shape(s, "attention_forward");
  if (s.B == 0 || s.T == 0) return;
  const Turn u(s);
  const float* k = qkv + s.q_width();
  const float* v = k + s.kv_width();
  float scale = 1.0f / std::sqrt((float)s.hd);
  for (int g = 0; g < u.G; g++)
    gemm_batched(s.B, s.KVH, s.T, s.T, s.hd, qkv + u.q(g), u.qv(), k, u.kvv_t(), att + u.att(g), u.attv(), scale,
                 false, p);
  int64_t rows = (int64_t)s.B * s.NH * s.T;
  S2S_LAUNCH(causal_softmax_kernel, (unsigned)ceil_div(rows, 8), 256)(att, rows, s.T);
  S2S_CUDA_LAUNCHED("attention softmax");
  for (int g = 0; g < u.G; g++)
    gemm_batched(s.B, s.KVH, s.T, s.hd, s.T, att + u.att(g), u.attv(), v, u.kvv(), out + u.q(g), u.outv(), 1.0f,
                 false, p);
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        const AttnShape& s, Precision p) {
  check_shape(s, "attention_backward");
  if (s.B == 0 || s.T == 0) return;
  const Turn u(s);
  const int B = s.B, T = s.T, KVH = s.KVH, hd = s.hd;
  const int64_t koff = s.q_width(), voff = koff + s.kv_width();
  float scale = 1.0f / std::sqrt((float)hd);
  // datt = dout_h @ v^T;  dv = sum over the group of att_h^T @ dout_h (the first turn overwrites)
  for (int g = 0; g < u.G; g++) {
    gemm_batched(B, KVH, T, T, hd, dout + u.q(g), u.outv(), qkv + voff, u.kvv_t(), datt + u.att(g), u.attv(), 1.0f,
                 false, p);
    gemm_batched(B, KVH, T, hd, T, att + u.att(g), u.attv_t(), dout + u.q(g), u.outv(), dqkv + voff, u.kvv(), 1.0f,
                 g > 0, p);
  }
  int64_t rows = (int64_t)B * s.NH * T;
  S2S_LAUNCH(causal_softmax_backward_kernel, (unsigned)ceil_div(rows, 8), 256)(datt, att, rows, T);
  S2S_CUDA_LAUNCHED("attention softmax backward");
  // dq = scale * datt_h @ k;  dk = scale * sum over the group of datt_h^T @ q_h
  for (int g = 0; g < u.G; g++) {
    gemm_batched(B, KVH, T, hd, T, datt + u.att(g), u.attv(), qkv + koff, u.kvv(), dqkv + u.q(g), u.qv(), scale,
                 false, p);
    gemm_batched(B, KVH, T, hd, T, datt + u.att(g), u.attv_t(), qkv + u.q(g), u.qv(), dqkv + koff, u.kvv(), scale,
                 g > 0, p);
  }
}

void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int maxT, const AttnShape& s) {
  check_shape(s, "kv_cache_write");
  int64_t KV = s.kv_width();
  if (s.B == 0) return;
  S2S_LAUNCH(kv_cache_write_kernel, (unsigned)ceil_div((int64_t)s.B * KV, 256), 256)(
      kcache, vcache, qkv, pos, s.B, maxT, s.qkv_width(), s.q_width(), (int)KV);
  S2S_CUDA_LAUNCHED("kv_cache_write");
}

void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int maxT,
                      const AttnShape& s) {
  check_shape(s, "kv_cache_prefill");
  int64_t KV = s.kv_width();
  if (s.B == 0 || s.T == 0) return;
  S2S_LAUNCH(kv_cache_prefill_kernel, (unsigned)ceil_div((int64_t)s.B * s.T * KV, 256), 256)(
      kcache, vcache, qkv, len, s.B, s.T, maxT, s.qkv_width(), s.q_width(), (int)KV);
  S2S_CUDA_LAUNCHED("kv_cache_prefill");
}

void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache, const int32_t* pos,
                      int maxT, const AttnShape& s) {
  check_shape(s, "attention_decode");
  if (s.B == 0) return;
  // the scores of one row and the reduction scratch, in the 48 KiB of shared memory every launch may take
  constexpr size_t kMaxPositions = 48 * 1024 / sizeof(float) - 32;
  if ((size_t)maxT > kMaxPositions)
    throw Error("attention_decode on the GPU supports contexts of at most " + std::to_string(kMaxPositions) +
                " positions (got " + std::to_string(maxT) + ")");
  size_t smem = (32 + (size_t)maxT) * sizeof(float);
  S2S_LAUNCH(attention_decode_kernel, (unsigned)(s.B * s.NH), 128, smem)(out, qkv, kcache, vcache, pos, maxT, s.NH,
                                                                        s.group(), s.hd, s.qkv_width());
  S2S_CUDA_LAUNCHED("attention_decode");
}

}  // namespace cuda
}  // namespace s2s

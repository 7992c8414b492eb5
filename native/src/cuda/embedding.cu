// Token (+ position) embedding on the GPU: one thread per output element; the backward scatters with
// atomics (a token may repeat within a batch). A null wpe / dwpe means no position embedding.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                                         int64_t N, int T, int C, const int32_t* pos) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * C) return;
  int64_t n = i / C;
  int c = (int)(i % C);
  int t = (int)(n % T), b = (int)(n / T);
  int p = (pos ? pos[b] : 0) + t;
  float v = wte[(int64_t)tokens[n] * C + c];
  if (wpe) v += wpe[(int64_t)p * C + c];  // null: no position embedding (Llama: rotary instead)
  out[i] = v;
}

__global__ void embedding_backward_kernel(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                                          int64_t N, int T, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * C) return;
  int64_t n = i / C;
  int c = (int)(i % C);
  float d = dout[i];
  atomicAdd(&dwte[(int64_t)tokens[n] * C + c], d);
  if (dwpe) atomicAdd(&dwpe[(n % T) * C + c], d);
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C,
                       const int32_t* pos) {
  int64_t n = (int64_t)B * T * C;
  if (n == 0) return;
  S2S_LAUNCH(embedding_forward_kernel, (unsigned)ceil_div(n, 256), 256)(out, tokens, wte, wpe, (int64_t)B * T, T, C, pos);
  S2S_CUDA_LAUNCHED("embedding_forward");
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C) {
  int64_t n = (int64_t)B * T * C;
  if (n == 0) return;
  S2S_LAUNCH(embedding_backward_kernel, (unsigned)ceil_div(n, 256), 256)(dwte, dwpe, dout, tokens, (int64_t)B * T, T, C);
  S2S_CUDA_LAUNCHED("embedding_backward");
}

}  // namespace cuda
}  // namespace s2s

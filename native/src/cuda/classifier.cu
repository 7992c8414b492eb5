// The fused LM head on the GPU, as the CPU's: per chunk of rows one GEMM for the logits (kept for
// backward when the model can afford it), then a block per row for the log-softmax, the gathered
// log-prob and the entropy; the backward turns the logits into dlogits in place and runs the two
// GEMMs of the tied embedding. Logits never leave the device.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) softmax_stats_kernel(const float* logits, int V, const int32_t* targets,
                                                                 int64_t r0, float* logprob, float* entropy,
                                                                 float* lse) {
  __shared__ float scratch[32];
  __shared__ double dscratch[32];
  const float* l = logits + (int64_t)blockIdx.x * V;
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, l[v]);
  mx = block_max(mx, scratch);
  // The denominator in double, as on the CPU: a confident row's many tiny terms are not rounded away.
  double sum = 0.0, wsum = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float d = l[v] - mx, e = __expf(d);
    sum += e;
    wsum += (double)e * d;
  }
  sum = block_sum(sum, dscratch);
  wsum = block_sum(wsum, dscratch);
  if (threadIdx.x == 0) {
    int64_t n = r0 + blockIdx.x;
    double logsum = log(sum);
    lse[n] = (float)(mx + logsum);
    int32_t t = targets ? targets[n] : -1;
    logprob[n] = t >= 0 ? (float)((double)(l[t] - mx) - logsum) : 0.0f;
    if (entropy) entropy[n] = (float)(logsum - wsum / sum);
  }
}

__global__ void __launch_bounds__(kThreads) dlogits_kernel(float* logits, int V, const int32_t* targets, int64_t r0,
                                                           const float* dlogprob, const float* lse) {
  int64_t n = r0 + blockIdx.x;
  float* l = logits + (int64_t)blockIdx.x * V;
  int32_t t = targets ? targets[n] : -1;
  float g = t >= 0 ? dlogprob[n] : 0.0f, m = lse[n];
  for (int v = threadIdx.x; v < V; v += blockDim.x) l[v] = -g * __expf(l[v] - m) + (v == t ? g : 0.0f);
}

int64_t chunk_rows(const ClassifierArgs& a) { return a.logits ? a.N : a.chunk; }

float* chunk_logits(const ClassifierArgs& a, int64_t r0, int64_t rows, bool compute) {
  float* lg = a.logits ? a.logits + r0 * a.V : a.scratch;
  if (compute) gemm(false, true, rows, a.V, a.C, a.lnf + r0 * a.C, a.wte, lg, a.inv_temp, false, a.precision);
  return lg;
}

}  // namespace

void classifier_forward(const ClassifierArgs& a, float* logprob, float* entropy, float* lse) {
  for (int64_t r0 = 0; r0 < a.N; r0 += chunk_rows(a)) {
    int64_t rows = std::min(chunk_rows(a), a.N - r0);
    float* lg = chunk_logits(a, r0, rows, true);
    S2S_LAUNCH(softmax_stats_kernel, (unsigned)rows, kThreads)(lg, a.V, a.targets, r0, logprob, entropy, lse);
    S2S_CUDA_LAUNCHED("classifier_forward");
  }
}

void classifier_backward(const ClassifierArgs& a, float* dlnf, float* dwte, const float* dlogprob, const float* lse,
                         bool accumulate) {
  for (int64_t r0 = 0; r0 < a.N; r0 += chunk_rows(a)) {
    int64_t rows = std::min(chunk_rows(a), a.N - r0);
    float* lg = chunk_logits(a, r0, rows, a.logits == nullptr);
    S2S_LAUNCH(dlogits_kernel, (unsigned)rows, kThreads)(lg, a.V, a.targets, r0, dlogprob, lse);
    S2S_CUDA_LAUNCHED("classifier_backward");
    gemm(false, false, rows, a.C, a.V, lg, a.wte, dlnf + r0 * a.C, a.inv_temp, false, a.precision);
    gemm(true, false, a.V, a.C, rows, lg, a.lnf + r0 * a.C, dwte, a.inv_temp, accumulate || r0 > 0, a.precision);
  }
}

}  // namespace cuda
}  // namespace s2s

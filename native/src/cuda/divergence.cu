// The fused divergence-scoring kernel. A block per logits row: the argmax over the vocabulary and
// its match with the given token; the last block to finish a batch row (an atomic count per row)
// then scans that row's span for the first divergence and writes the rule's scores. One pass over
// the logits, which stay on the device; only [B, T] integers and scores come back.
#include <climits>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/rowops.cuh"

namespace s2s {
namespace cuda {

namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) divergence_kernel(const float* logits, int V, const int32_t* row,
                                                              const int32_t* pos, const int32_t* tokens, int T,
                                                              const int32_t* spans, DivergenceRule rule,
                                                              int32_t* argmax, float* scores, int32_t* first,
                                                              int32_t* counters) {
  __shared__ float scratch[64];
  __shared__ bool last;
  __shared__ int first_mismatch;
  const int m = blockIdx.x, b = row[m];
  ArgMax best = block_argmax(logits + (int64_t)m * V, V, scratch);
  const int start = spans[2 * b], end = spans[2 * b + 1];
  if (threadIdx.x == 0) {
    argmax[(int64_t)b * T + pos[m]] = best.index;
    __threadfence();  // the argmax is visible to every block before the count says so
    last = atomicAdd(&counters[b], 1) == end - start - 1;
    first_mismatch = INT_MAX;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const int32_t* am = argmax + (int64_t)b * T;
  const int32_t* tk = tokens + (int64_t)b * T;
  for (int t = start + threadIdx.x; t < end; t += blockDim.x)
    if (__ldcg(am + t) != tk[t]) atomicMin(&first_mismatch, t);
  __syncthreads();
  const int f = first_mismatch;
  for (int t = start + threadIdx.x; t < end; t += blockDim.x) {
    bool match = __ldcg(am + t) == tk[t];
    scores[(int64_t)b * T + t] = t < f ? rule.positive : (match ? rule.neutral : rule.negative);
  }
  if (threadIdx.x == 0) {
    first[b] = f == INT_MAX ? -1 : f - start;
    counters[b] = 0;  // every other block of this row has counted: ready for the next call
  }
}

}  // namespace

void divergence_score(const float* logits, int64_t M, int V, const int32_t* row, const int32_t* pos,
                      const int32_t* tokens, int T, const int32_t* spans, DivergenceRule rule, int32_t* argmax,
                      float* scores, int32_t* first, int32_t* counters) {
  if (M == 0) return;
  if (M > INT_MAX) throw Error("divergence_score: too many rows in one call");
  S2S_LAUNCH(divergence_kernel, (unsigned)M, kThreads)(logits, V, row, pos, tokens, T, spans, rule, argmax, scores, first,
                                               counters);
  S2S_CUDA_LAUNCHED("divergence_score");
}

}  // namespace cuda
}  // namespace s2s

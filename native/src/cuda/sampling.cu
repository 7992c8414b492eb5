// Greedy and plain temperature sampling on the GPU, a block per row, so generation never copies
// logits to the host. The uniform draw comes from the host's RNG stream for the row (the one the
// CPU uses), and the pick walks the vocabulary in order with a block-wide prefix sum, as the CPU's
// sequential walk does. Top-k and top-p sort the vocabulary and run on the host (see model_cuda.cu).
#include <climits>
#include <cub/block/block_scan.cuh>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/rowops.cuh"

namespace s2s {
namespace cuda {

namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(int32_t* token, float* logprob, const float* logits,
                                                               const float* u, const uint8_t* done, int V,
                                                               float temperature) {
  using Scan = cub::BlockScan<float, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ float scratch[64];
  __shared__ int chosen;
  __shared__ float carry;
  int b = blockIdx.x;
  if (done[b]) return;
  const float* l = logits + (int64_t)b * V;
  bool greedy = temperature <= 0.0f;
  float inv_t = greedy ? 1.0f : 1.0f / temperature;
  ArgMax best = block_argmax(l, V, scratch);
  float mx = best.value;
  float sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += __expf((l[v] - mx) * inv_t);
  sum = block_sum(sum, scratch);
  float lse = logf(sum);
  int pick = best.index;
  if (!greedy) {
    float target = u[b] * sum;
    if (threadIdx.x == 0) {
      chosen = INT_MAX;
      carry = 0.0f;
    }
    __syncthreads();
    for (int v0 = 0; v0 < V; v0 += blockDim.x) {
      int v = v0 + threadIdx.x;
      float p = v < V ? __expf((l[v] - mx) * inv_t) : 0.0f;
      float incl, total;
      Scan(scan).InclusiveSum(p, incl, total);
      float base = carry;
      __syncthreads();
      // the first token whose running sum passes the target (the CPU's `u < acc`)
      if (v < V && target < base + incl) atomicMin(&chosen, v);
      if (threadIdx.x == 0) carry = base + total;
      __syncthreads();
      if (chosen != INT_MAX) break;
    }
    pick = chosen != INT_MAX ? chosen : V - 1;  // rounding left the target past the end
  }
  if (threadIdx.x == 0) {
    token[b] = pick;
    logprob[b] = (l[pick] - mx) * inv_t - lse;
  }
}

}  // namespace

void sample_rows(int32_t* token, float* logprob, const float* logits, const float* u, const uint8_t* done, int B,
                 int V, float temperature) {
  if (B == 0) return;
  S2S_LAUNCH(sample_rows_kernel, (unsigned)B, kThreads)(token, logprob, logits, u, done, V, temperature);
  S2S_CUDA_LAUNCHED("sample_rows");
}

}  // namespace cuda
}  // namespace s2s

// Reductions over one row of logits by a whole block, shared by the classifier, sampling and the
// divergence kernel.
#pragma once

#include "cuda/common.cuh"

namespace s2s {
namespace cuda {

#if defined(__CUDACC__) || defined(S2S_CUDA_EMULATION)
struct ArgMax {
  float value;
  int index;
};

// The larger value; on a tie the smaller index (torch.argmax's first maximum).
__device__ inline ArgMax argmax_pick(ArgMax a, ArgMax b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ inline ArgMax warp_argmax(ArgMax a) {
  for (int o = 16; o > 0; o >>= 1) {
    ArgMax b{__shfl_xor_sync(0xffffffffu, a.value, o), __shfl_xor_sync(0xffffffffu, a.index, o)};
    a = argmax_pick(a, b);
  }
  return a;
}

// argmax over l[0..V) by the whole block; every thread gets it. NaNs are never chosen, and a row
// of only NaN or -inf gives index 0. (The CPU's loop differs only for a NaN at index 0, which it
// keeps; forward() refuses non-finite results before they could reach a sampler.) `scratch` holds 64 words of shared memory.
__device__ inline ArgMax block_argmax(const float* l, int V, float* scratch) {
  ArgMax a{-INFINITY, V};
  // Four loads in flight per thread before any compare: the row is read once, at full bandwidth.
  const int step = blockDim.x;
  int v = threadIdx.x;
  for (; v + 3 * step < V; v += 4 * step) {
    float x0 = __ldg(l + v), x1 = __ldg(l + v + step), x2 = __ldg(l + v + 2 * step), x3 = __ldg(l + v + 3 * step);
    if (x0 > a.value) a = {x0, v};  // indices rise within a thread: '>' keeps the first maximum
    if (x1 > a.value) a = {x1, v + step};
    if (x2 > a.value) a = {x2, v + 2 * step};
    if (x3 > a.value) a = {x3, v + 3 * step};
  }
  for (; v < V; v += step) {
    float x = __ldg(l + v);
    if (x > a.value) a = {x, v};
  }
  a = warp_argmax(a);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  int* iscratch = reinterpret_cast<int*>(scratch + 32);
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = a.value;
    iscratch[warp] = a.index;
  }
  __syncthreads();
  a = lane < warps ? ArgMax{scratch[lane], iscratch[lane]} : ArgMax{-INFINITY, V};
  a = warp_argmax(a);
  if (a.index >= V) a.index = 0;
  return a;
}
#endif

}  // namespace cuda
}  // namespace s2s

// What every CUDA file of the engine shares: error checks that become s2s::Error, device arrays
// that own their memory, and the warp and block reductions the row kernels use.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace s2s {
namespace cuda {

// Throws s2s::Error naming the call, the CUDA error and where, when `e` is not cudaSuccess.
void check(cudaError_t e, const char* what, const char* file, int line);

#define S2S_CUDA_CHECK(x) ::s2s::cuda::check((x), #x, __FILE__, __LINE__)
// After a kernel launch: a bad configuration shows up here, a fault at the next synchronising call.
#define S2S_CUDA_LAUNCHED(name) ::s2s::cuda::check(cudaGetLastError(), name, __FILE__, __LINE__)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Kernel launches are written `S2S_LAUNCH(kernel, grid, block[, shared bytes])(args...)`, CUDA's
// kernel<<<grid, block, shared>>>(args...), and a block's dynamic shared memory
// `S2S_DYNAMIC_SHARED(T, name)`, CUDA's `extern __shared__ T name[]`: two spellings a host compiler
// can also read, so that tests/cuda_emu (the CUDA execution model emulated on the CPU, which
// defines both first) runs these same sources in CI, where there is no GPU.
#ifndef S2S_LAUNCH
#define S2S_LAUNCH(kernel, ...) kernel<<<__VA_ARGS__>>>
#endif
#ifndef S2S_DYNAMIC_SHARED
#define S2S_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// A device array of T that owns its memory and can grow (contents are not kept).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // Releases the memory (a buffer not allocated reads as size 0).
  void reset() { release(); }
  // Makes room for at least n elements; returns true when it reallocated.
  bool reserve(size_t n) {
    if (n <= size_) return false;
    release();
    S2S_CUDA_CHECK(cudaMalloc(&data_, n * sizeof(T)));
    size_ = n;
    return true;
  }
  // Exactly n zeros.
  void allocate_zeroed(size_t n) {
    release();
    reserve(n);
    zero(n);
  }
  void zero(size_t n) {
    if (n) S2S_CUDA_CHECK(cudaMemset(data_, 0, n * sizeof(T)));
  }
  // Every byte 0xFF: -1 for signed integers.
  void fill_ones(size_t n) {
    if (n) S2S_CUDA_CHECK(cudaMemset(data_, 0xFF, n * sizeof(T)));
  }
  void zero() { if (size_) zero(size_); }
  void upload(const T* host, size_t n, size_t offset = 0) {
    if (n == 0) return;
    S2S_CUDA_CHECK(cudaMemcpy(data_ + offset, host, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, size_t n, size_t offset = 0) const {
    if (n == 0) return;
    S2S_CUDA_CHECK(cudaMemcpy(host, data_ + offset, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release() {
    if (data_) cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

using DeviceBuffer = DeviceArray<float>;

// Milliseconds of GPU time taken by what fn() launches on the default stream.
template <typename F>
float time_ms(F&& fn) {
  struct Events {  // destroyed however fn() ends
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } e;
  S2S_CUDA_CHECK(cudaEventCreate(&e.start));
  S2S_CUDA_CHECK(cudaEventCreate(&e.stop));
  S2S_CUDA_CHECK(cudaEventRecord(e.start));
  fn();
  S2S_CUDA_CHECK(cudaEventRecord(e.stop));
  S2S_CUDA_CHECK(cudaEventSynchronize(e.stop));
  float ms = 0.0f;
  S2S_CUDA_CHECK(cudaEventElapsedTime(&ms, e.start, e.stop));
  return ms;
}

#if defined(__CUDACC__) || defined(S2S_CUDA_EMULATION)
template <typename T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `scratch` holds 32 values of shared memory.
template <typename T>
__device__ inline T block_sum(T v, T* scratch) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}

__device__ inline float block_max(float v, float* scratch) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}
#endif

}  // namespace cuda
}  // namespace s2s

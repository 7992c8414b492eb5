// The CUDA emulator (tests/cuda_emu) against CUDA's documented semantics, with kernels written for
// the purpose: what it computes (block reductions, WMMA tile layouts, bf16 rounding, cub's scan,
// cuBLAS's column-major GEMM on hand-worked matrices) and what it refuses as the GPU would fail
// (barriers reached from different places, shuffles missing exited lanes, host pointers in a
// kernel, copies past an allocation, invalid launch configurations). test_cuda_emu relies on it
// to run the engine's CUDA kernels in CI; these cases are what make that run mean something.
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <mma.h>

#include <cub/block/block_scan.cuh>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "harness.h"

using namespace s2s;

namespace {

template <typename T>
struct Dev {
  cuda::DeviceArray<T> a;
  size_t n;
  explicit Dev(size_t count) : n(count) { a.reserve(count); }
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    a.reserve(n);
    a.upload(h.data(), n);
  }
  T* p() { return a.data(); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    a.download(h.data(), n);
    return h;
  }
};

// The error of the last launch, and its message.
std::pair<cudaError_t, std::string> last_launch() {
  cudaError_t e = cudaGetLastError();
  return {e, e == cudaSuccess ? "" : cudaGetErrorString(e)};
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

__global__ void block_sum_kernel(float* out, const float* in) {
  __shared__ float scratch[32];
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = cuda::block_sum(in[i], scratch);
}

// Warp w publishes a value, then reads warp w + 1's: correct only with the barrier between.
__global__ void neighbour_kernel(int* out, bool barrier) {
  __shared__ int slot[8];
  int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) slot[warp] = blockIdx.x * 100 + warp;
  if (barrier) __syncthreads();
  if (threadIdx.x % 32 == 0) out[blockIdx.x * warps + warp] = slot[(warp + 1) % warps];
}

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 64) {
    __syncthreads();
    out[threadIdx.x] = 1.0f;
  } else {
    out[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

__global__ void partial_warp_shuffle_kernel(float* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = cuda::warp_sum(1.0f);
}

// A warp of 16 threads (a block of 48): the full-mask sum reads lanes that do not exist.
__global__ void short_warp_shuffle_kernel(float* out) { out[threadIdx.x] = cuda::warp_sum(1.0f); }

// __syncwarp after some lanes have returned is legal: only the lanes that have not exited take part.
__global__ void syncwarp_after_exit_kernel(float* out) {
  unsigned lane = threadIdx.x % 32, base = threadIdx.x - lane;
  if (lane >= 8) return;
  out[threadIdx.x] = (float)lane;
  __syncwarp();
  float next = out[base + (lane + 1) % 8];
  __syncwarp();
  out[threadIdx.x] += next;
}

// Each block counts itself in; the one that counts last records its index.
__global__ void last_block_kernel(int* counter, int* last) {
  if (threadIdx.x == 0 && atomicAdd(counter, 1) == (int)gridDim.x - 1) *last = blockIdx.x;
}

// Threads that have exited do not hold up a barrier (as on the hardware).
__global__ void early_exit_kernel(float* out) {
  __shared__ float s[128];
  if (threadIdx.x >= 128) return;
  s[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[127 - threadIdx.x];
}

__global__ void write_kernel(float* out) { out[threadIdx.x] = 1.0f; }

// Adds into static shared memory that nothing set (a missing zeroing).
__global__ void unset_shared_kernel(float* out) {
  __shared__ float acc[4];
  if (threadIdx.x == 0) acc[1] += 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = acc[1];
}

__global__ void dynamic_shared_kernel(float* out) {
  S2S_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = 2.0f * threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// One warp: acc = 1 + A (row-major) B (column-major), stored column-major.
__global__ void wmma_kernel(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 1.0f);
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_col_major);
}

// Lanes that give a fragment different values: it has no meaning on a GPU, where the warp holds
// one tile between its lanes.
__global__ void wmma_lane_dependent_kernel(float* c) {
  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, (float)threadIdx.x);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

// Each lane loads its own tile: undefined on the GPU, refused here.
__global__ void wmma_divergent_load_kernel(float* c, const __nv_bfloat16* a) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + (threadIdx.x % 2) * 16, 16);
  c[threadIdx.x] = (float)fa.x[0];
}

// A tile one element off its 256-bit alignment, or with a stride of 12 bf16 (24 bytes): both are
// refused by the CUDA programming guide's rules for WMMA operands.
__global__ void wmma_misaligned_kernel(float* c, const __nv_bfloat16* a, unsigned offset, unsigned ldm) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + offset, ldm);
  c[threadIdx.x] = (float)fa.x[0];
}

constexpr int kScanThreads = 512;
__global__ void scan_kernel(float* incl, float* total, const float* in) {
  using Scan = cub::BlockScan<float, kScanThreads>;
  __shared__ typename Scan::TempStorage storage;
  float i, t;
  Scan(storage).InclusiveSum(in[threadIdx.x], i, t);
  incl[threadIdx.x] = i;
  if (threadIdx.x == 0) *total = t;
}

float bf16_round(float x) { return (float)__float2bfloat16(x); }

}  // namespace

TEST(block_reductions_give_every_thread_its_blocks_sum) {
  const int blocks = 3, threads = 256;
  std::vector<float> in(blocks * threads);
  for (size_t i = 0; i < in.size(); i++) in[i] = (float)(i % 7) - 3.0f + (float)(i / threads);  // exact in float
  Dev<float> din(in), dout(in.size());
  S2S_LAUNCH(block_sum_kernel, blocks, threads)(dout.p(), din.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> out = dout.host();
  for (int b = 0; b < blocks; b++) {
    double want = 0;
    for (int t = 0; t < threads; t++) want += in[b * threads + t];
    for (int t = 0; t < threads; t++) EXPECT(out[b * threads + t] == (float)want);
  }
}

TEST(a_missing_barrier_gives_wrong_results_and_the_barrier_right_ones) {
  const int blocks = 32, warps = 8;
  for (bool barrier : {true, false}) {
    Dev<int> out(blocks * warps);
    S2S_LAUNCH(neighbour_kernel, blocks, warps * 32)(out.p(), barrier);
    EXPECT(last_launch().first == cudaSuccess);
    std::vector<int> h = out.host();
    int wrong = 0;
    for (int b = 0; b < blocks; b++)
      for (int w = 0; w < warps; w++) wrong += h[b * warps + w] != b * 100 + (w + 1) % warps;
    if (barrier)
      EXPECT(wrong == 0);
    else
      EXPECT(wrong > 0);  // warps run in an order drawn per block: some read before the write
  }
}

TEST(barriers_reached_from_different_places_fail_the_launch) {
  Dev<float> out(256);
  S2S_LAUNCH(divergent_barrier_kernel, 1, 256)(out.p());
  auto [e, msg] = last_launch();
  EXPECT(e == cudaErrorLaunchFailure);
  EXPECT(contains(msg, "different __syncthreads"));
  EXPECT(contains(msg, "divergent_barrier_kernel"));
  // the next launch runs (unlike on a GPU, where a kernel fault is sticky: the emulator reports
  // each launch's own failure, so that a test can check one refusal after another)
  S2S_LAUNCH(write_kernel, 1, 32)(out.p());
  EXPECT(last_launch().first == cudaSuccess);
}

TEST(a_shuffle_that_exited_lanes_miss_fails_the_launch) {
  Dev<float> out(64);
  S2S_LAUNCH(partial_warp_shuffle_kernel, 1, 64)(out.p());
  auto [e, msg] = last_launch();
  EXPECT(e == cudaErrorLaunchFailure);
  EXPECT(contains(msg, "__shfl_xor_sync"));
  EXPECT(contains(msg, "exited"));
}

TEST(a_shuffle_over_a_warp_shorter_than_32_fails_and_syncwarp_after_exits_does_not) {
  Dev<float> out(64);
  S2S_LAUNCH(short_warp_shuffle_kernel, 1, 48)(out.p());
  auto [e, msg] = last_launch();
  EXPECT(e == cudaErrorLaunchFailure);
  EXPECT(contains(msg, "does not exist"));
  S2S_LAUNCH(syncwarp_after_exit_kernel, 1, 64)(out.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> h = out.host();
  for (int w : {0, 32})
    for (int l = 0; l < 8; l++) EXPECT(h[w + l] == (float)(l + (l + 1) % 8));
}

TEST(blocks_run_in_an_order_that_varies_from_launch_to_launch) {
  std::vector<int> lasts;
  for (int i = 0; i < 8; i++) {
    Dev<int> counter(std::vector<int>{0}), last(1);
    S2S_LAUNCH(last_block_kernel, 16, 32)(counter.p(), last.p());
    EXPECT(last_launch().first == cudaSuccess);
    lasts.push_back(last.host()[0]);
  }
  std::sort(lasts.begin(), lasts.end());
  EXPECT(std::unique(lasts.begin(), lasts.end()) - lasts.begin() > 1);  // not always the same block last
}

TEST(exited_threads_do_not_hold_up_a_barrier) {
  Dev<float> out(128);
  S2S_LAUNCH(early_exit_kernel, 1, 256)(out.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> h = out.host();
  for (int i = 0; i < 128; i++) EXPECT(h[i] == (float)(127 - i));
}

TEST(static_shared_memory_starts_undefined_in_every_block) {
  Dev<float> out(4);
  S2S_LAUNCH(unset_shared_kernel, 4, 32)(out.p());
  EXPECT(last_launch().first == cudaSuccess);
  for (float x : out.host()) EXPECT(std::isnan(x));  // not 1, 2, 3, 4 as if it were zeroed once
}

TEST(dynamic_shared_memory_is_per_launch_and_sized_by_it) {
  Dev<float> out(96);
  S2S_LAUNCH(dynamic_shared_kernel, 1, 96, 96 * sizeof(float))(out.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> h = out.host();
  for (int i = 0; i < 96; i++) EXPECT(h[i] == 2.0f * (95 - i));
  S2S_LAUNCH(dynamic_shared_kernel, 1, 96, 64 * 1024)(out.p());
  EXPECT(last_launch().first == cudaErrorInvalidValue);  // over the 48 KiB a launch may take by default
}

TEST(host_pointers_in_kernels_and_copies_past_an_allocation_are_refused) {
  std::vector<float> host(32, 0.0f);
  S2S_LAUNCH(write_kernel, 1, 32)(host.data());
  auto [e, msg] = last_launch();
  EXPECT(e == cudaErrorInvalidValue);
  EXPECT(contains(msg, "host memory"));
  EXPECT(host[0] == 0.0f);  // the kernel did not run

  Dev<float> d(10);
  std::vector<float> eleven(11, 1.0f);
  EXPECT(cudaMemcpy(d.p(), eleven.data(), 11 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  EXPECT(cudaMemcpy(eleven.data(), d.p() + 1, 10 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  EXPECT(cudaMemset(d.p() + 5, 0, 6 * sizeof(float)) == cudaErrorInvalidValue);
  EXPECT(cudaMemcpy(d.p(), eleven.data(), 10 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  EXPECT(cudaFree(host.data()) == cudaErrorInvalidDevicePointer);
  cudaGetLastError();
}

TEST(fresh_device_memory_reads_as_nan_and_minus_one) {
  Dev<float> f(4);
  Dev<int32_t> i(4);
  for (float x : f.host()) EXPECT(std::isnan(x));
  for (int32_t x : i.host()) EXPECT(x == -1);
}

TEST(invalid_launch_configurations_are_refused) {
  Dev<float> out(32);
  S2S_LAUNCH(write_kernel, 1, 2048)(out.p());
  EXPECT(last_launch().first == cudaErrorInvalidConfiguration);
  S2S_LAUNCH(write_kernel, dim3(1, 70000), 32)(out.p());
  EXPECT(last_launch().first == cudaErrorInvalidConfiguration);
  S2S_LAUNCH(write_kernel, 0, 32)(out.p());
  EXPECT(last_launch().first == cudaErrorInvalidConfiguration);
}

TEST(bf16_rounds_to_nearest_even) {
  EXPECT(bf16_round(1.0f + 0x1p-8f) == 1.0f);                   // halfway, to the even neighbour
  EXPECT(bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);     // halfway, to the even neighbour
  EXPECT(bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // past halfway: up
  EXPECT(bf16_round(-2.0f - 0x1p-7f + 0x1p-22f) == -2.0f);      // below halfway: down in magnitude
  EXPECT(std::isnan(bf16_round(NAN)));
  EXPECT(std::isinf(bf16_round(3.4e38f)));  // rounds past the largest bf16
  EXPECT(bf16_round(0x1p-130f) == 0x1p-130f);  // subnormals keep their top bits
}

TEST(wmma_multiplies_tiles_in_their_documented_layouts) {
  std::vector<__nv_bfloat16> a(256), b(256);
  std::vector<float> af(256), bf(256);
  for (int e = 0; e < 256; e++) {
    af[e] = (float)((e * 7) % 11) - 5.0f;  // small integers: every product and sum is exact
    bf[e] = (float)((e * 5) % 13) - 6.0f;
    a[e] = __float2bfloat16(af[e]);
    b[e] = __float2bfloat16(bf[e]);
  }
  Dev<__nv_bfloat16> da(a), db(b);
  Dev<float> dc(256);
  S2S_LAUNCH(wmma_kernel, 1, 32)(dc.p(), da.p(), db.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> c = dc.host();
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) {
      double want = 1.0;
      for (int k = 0; k < 16; k++) want += (double)af[i * 16 + k] * bf[k + 16 * j];  // A row-major, B column-major
      EXPECT(c[i + 16 * j] == (float)want);                                          // C column-major
    }
  S2S_LAUNCH(wmma_divergent_load_kernel, 1, 32)(dc.p(), da.p());
  auto [e, msg] = last_launch();
  EXPECT(e == cudaErrorLaunchFailure);
  EXPECT(contains(msg, "different pointers"));
  Dev<__nv_bfloat16> big(std::vector<__nv_bfloat16>(1024, __float2bfloat16(1.0f)));
  S2S_LAUNCH(wmma_misaligned_kernel, 1, 32)(dc.p(), big.p(), 16u, 16u);  // 32 bytes in: aligned
  EXPECT(last_launch().first == cudaSuccess);
  S2S_LAUNCH(wmma_misaligned_kernel, 1, 32)(dc.p(), big.p(), 1u, 16u);
  EXPECT(contains(last_launch().second, "not 256-bit aligned"));
  S2S_LAUNCH(wmma_misaligned_kernel, 1, 32)(dc.p(), big.p(), 0u, 12u);
  EXPECT(contains(last_launch().second, "multiple of 16 bytes"));
  S2S_LAUNCH(wmma_lane_dependent_kernel, 1, 32)(dc.p());
  EXPECT(contains(last_launch().second, "lanes hold different values"));
}

TEST(cub_block_scan_gives_inclusive_prefix_sums_and_the_total) {
  std::vector<float> in(kScanThreads);
  for (int i = 0; i < kScanThreads; i++) in[i] = (float)(i % 5);
  Dev<float> din(in), incl(kScanThreads), total(1);
  S2S_LAUNCH(scan_kernel, 1, kScanThreads)(incl.p(), total.p(), din.p());
  EXPECT(last_launch().first == cudaSuccess);
  std::vector<float> h = incl.host();
  float run = 0;
  for (int i = 0; i < kScanThreads; i++) {
    run += in[i];
    EXPECT(h[i] == run);
  }
  EXPECT(total.host()[0] == run);
}

TEST(cublas_gemm_follows_the_column_major_contract) {
  cublasHandle_t h;
  EXPECT(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  // A = [[1,2,3],[4,5,6]] (2 x 3, lda 2), B = [[1,0],[0,1],[1,1]] (3 x 2, ldb 3): A B = [[4,5],[10,11]].
  // Batch 1 doubles both A and B (4 A B). Bt holds B transposed (2 x 3, ldb 2), for CUBLAS_OP_T.
  Dev<float> A(std::vector<float>{1, 4, 2, 5, 3, 6, 2, 8, 4, 10, 6, 12});
  Dev<float> B(std::vector<float>{1, 0, 1, 0, 1, 1, 2, 0, 2, 0, 2, 2});
  Dev<float> Bt(std::vector<float>{1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 2, 2});
  const std::vector<float> want{4, 10, 5, 11, 16, 40, 20, 44};  // column-major, batch after batch
  float alpha = 1.0f, beta = 0.0f;
  Dev<float> C(8);  // NaN-filled: beta 0 must not read it
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, A.p(), CUDA_R_32F, 2, 6, B.p(),
                                    CUDA_R_32F, 3, 6, &beta, C.p(), CUDA_R_32F, 2, 4, 2, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
  EXPECT(C.host() == want);
  Dev<float> C2(std::vector<float>(8, 1.0f));
  alpha = 2.0f, beta = 1.0f;
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &alpha, A.p(), CUDA_R_32F, 2, 6, Bt.p(),
                                    CUDA_R_32F, 2, 6, &beta, C2.p(), CUDA_R_32F, 2, 4, 2, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
  std::vector<float> c2 = C2.host();
  for (int i = 0; i < 8; i++) EXPECT(c2[i] == 2 * want[i] + 1);
  // a leading dimension smaller than the rows, and a batch that runs past the allocation
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, A.p(), CUDA_R_32F, 1, 6, B.p(),
                                    CUDA_R_32F, 3, 6, &beta, C.p(), CUDA_R_32F, 2, 4, 2, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, A.p(), CUDA_R_32F, 2, 6, B.p(),
                                    CUDA_R_32F, 3, 6, &beta, C.p(), CUDA_R_32F, 2, 4, 3, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
  // the fast-bf16 compute type rounds its inputs: 1 + 2^-8 becomes 1
  Dev<float> x(std::vector<float>{1.0f + 0x1p-8f}), y(std::vector<float>{1.0f}), z(1);
  alpha = 1.0f, beta = 0.0f;
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, x.p(), CUDA_R_32F, 1, 1, y.p(),
                                    CUDA_R_32F, 1, 1, &beta, z.p(), CUDA_R_32F, 1, 1, 1,
                                    CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
  EXPECT(z.host()[0] == 1.0f);
}

int main() { return harness::run_all(); }

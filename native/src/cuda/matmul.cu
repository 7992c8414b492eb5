// GEMMs on the GPU. cuBLAS (cublasGemmStridedBatchedEx) when the build has it and the strides fit
// its column-major model; otherwise two built-in kernels: a bf16 tensor-core kernel (WMMA, fp32
// accumulation, inputs rounded to bf16 as they are staged in shared memory) and a tiled fp32 SIMT
// kernel for the parity mode. Both take the CPU's general strides with two batch dimensions, so
// attention's head views need no copies. The naive kernel (double accumulation) is the tests'
// reference.
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

#ifdef S2S_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace s2s {
namespace cuda {


namespace {

struct GemmArgs {
  int64_t nb1, M, N, K;
  const float* A;
  Strides sa;
  const float* B;
  Strides sb;
  float* C;
  Strides sc;
  float alpha;
  bool accumulate;
};

__device__ inline void batch_pointers(const GemmArgs& g, const float*& A, const float*& B, float*& C) {
  int64_t z = blockIdx.z, b0 = z / g.nb1, b1 = z % g.nb1;
  A = g.A + b0 * g.sa.batch0 + b1 * g.sa.batch1;
  B = g.B + b0 * g.sb.batch0 + b1 * g.sb.batch1;
  C = g.C + b0 * g.sc.batch0 + b1 * g.sc.batch1;
}

__device__ inline void store_out(const GemmArgs& g, float* C, int64_t r, int64_t c, float acc) {
  float* dst = C + r * g.sc.row + c * g.sc.col;
  float v = g.alpha * acc;
  if (g.accumulate) v += *dst;
  *dst = v;
}

// ---- bf16 tensor cores: 128 x 128 tiles, K in steps of 32, 8 warps of 64 x 32 each ----
constexpr int kBM = 128, kBN = 128, kBK = 32, kPadA = 8, kPadB = 8;

__global__ void __launch_bounds__(256) gemm_bf16_kernel(GemmArgs g) {
  using namespace nvcuda;
  __shared__ __align__(128) __nv_bfloat16 As[kBM][kBK + kPadA];
  __shared__ __align__(128) __nv_bfloat16 Bs[kBK][kBN + kPadB];
  __shared__ __align__(128) float Cs[8][16 * 16];
  const float *A, *B;
  float* C;
  batch_pointers(g, A, B, C);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile: rows wm*64.., cols wn*32..
  const int64_t m0 = (int64_t)blockIdx.y * kBM, n0 = (int64_t)blockIdx.x * kBN;
  // Which index runs fastest across threads follows the stride-1 dimension, so loads coalesce.
  const bool a_k_fast = g.sa.col == 1, b_n_fast = g.sb.col == 1;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < g.K; k0 += kBK) {
    for (int e = tid; e < kBM * kBK; e += 256) {
      int r = a_k_fast ? e / kBK : e % kBM, c = a_k_fast ? e % kBK : e / kBM;
      int64_t gr = m0 + r, gc = k0 + c;
      float v = gr < g.M && gc < g.K ? A[gr * g.sa.row + gc * g.sa.col] : 0.0f;
      As[r][c] = __float2bfloat16(v);
    }
    for (int e = tid; e < kBK * kBN; e += 256) {
      int r = b_n_fast ? e / kBN : e % kBK, c = b_n_fast ? e % kBN : e / kBK;
      int64_t gr = k0 + r, gc = n0 + c;
      float v = gr < g.K && gc < g.N ? B[gr * g.sb.row + gc * g.sb.col] : 0.0f;
      Bs[r][c] = __float2bfloat16(v);
    }
    __syncthreads();
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[2];
      for (int i = 0; i < 4; i++) wmma::load_matrix_sync(fa[i], &As[wm * 64 + i * 16][kk], kBK + kPadA);
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], kBN + kPadB);
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  // Epilogue through a per-warp staging tile, so alpha, accumulate and the bounds apply per element.
  // (Unrolled, so that acc stays in registers: indexed by a loop variable it would go to local memory.)
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) {
      wmma::store_matrix_sync(Cs[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        int64_t r = m0 + wm * 64 + i * 16 + e / 16, c = n0 + wn * 32 + j * 16 + e % 16;
        if (r < g.M && c < g.N) store_out(g, C, r, c, Cs[warp][e]);
      }
      __syncwarp();
    }
}

// ---- fp32 SIMT: 64 x 64 tiles, K in steps of 16, 4 x 4 outputs per thread ----
constexpr int kSM = 64, kSN = 64, kSK = 16;

__global__ void __launch_bounds__(256) gemm_fp32_kernel(GemmArgs g) {
  __shared__ float As[kSK][kSM + 4];  // A tile stored k-major: rows of the product broadcast
  __shared__ float Bs[kSK][kSN + 4];
  const float *A, *B;
  float* C;
  batch_pointers(g, A, B, C);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t)blockIdx.y * kSM, n0 = (int64_t)blockIdx.x * kSN;
  const bool a_k_fast = g.sa.col == 1, b_n_fast = g.sb.col == 1;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < g.K; k0 += kSK) {
    for (int e = tid; e < kSM * kSK; e += 256) {
      int r = a_k_fast ? e / kSK : e % kSM, c = a_k_fast ? e % kSK : e / kSM;
      int64_t gr = m0 + r, gc = k0 + c;
      As[c][r] = gr < g.M && gc < g.K ? A[gr * g.sa.row + gc * g.sa.col] : 0.0f;
    }
    for (int e = tid; e < kSK * kSN; e += 256) {
      int r = b_n_fast ? e / kSN : e % kSK, c = b_n_fast ? e % kSN : e / kSK;
      int64_t gr = k0 + r, gc = n0 + c;
      Bs[r][c] = gr < g.K && gc < g.N ? B[gr * g.sb.row + gc * g.sb.col] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kSK; k++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = As[k][ty + 16 * i];
      for (int j = 0; j < 4; j++) b[j] = Bs[k][tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      int64_t r = m0 + ty + 16 * i, c = n0 + tx + 16 * j;
      if (r < g.M && c < g.N) store_out(g, C, r, c, acc[i][j]);
    }
}

__global__ void gemm_naive_kernel(GemmArgs g) {
  const float *A, *B;
  float* C;
  batch_pointers(g, A, B, C);
  int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= g.M * g.N) return;
  int64_t r = idx / g.N, c = idx % g.N;
  double acc = 0.0;
  for (int64_t k = 0; k < g.K; k++) acc += (double)A[r * g.sa.row + k * g.sa.col] * B[k * g.sb.row + c * g.sb.col];
  float* dst = C + r * g.sc.row + c * g.sc.col;
  double v = (double)g.alpha * acc;
  if (g.accumulate) v += *dst;
  *dst = (float)v;
}

// Negative sizes are a caller's bug; zero sizes are an empty product (as on the CPU).
void check_sizes(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K) {
  if (nb0 < 0 || nb1 < 0 || M < 0 || N < 0 || K < 0)
    throw Error("gemm: invalid sizes (batches " + std::to_string(nb0) + " x " + std::to_string(nb1) + ", " +
                std::to_string(M) + " x " + std::to_string(N) + " x " + std::to_string(K) + ")");
}

// The built-in kernels put the batches on the grid's z dimension.
void check_grid_batches(int64_t nb0, int64_t nb1) {
  if (nb0 * nb1 > 65535) throw Error("gemm: the built-in kernels take at most 65535 batched matrices per call");
}


#ifdef S2S_HAVE_CUBLAS
cublasHandle_t cublas_handle() {
  static std::once_flag once;
  static cublasHandle_t handle = nullptr;
  static cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  std::call_once(once, [] { status = cublasCreate(&handle); });
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS could not be initialised: ") + cublasGetStatusString(status));
  return handle;
}

// A logical rows x cols operand whose element (i, j) lies at i*rs + j*cs, in cuBLAS terms.
bool as_operand(int64_t rows, int64_t cols, int64_t rs, int64_t cs, cublasOperation_t* op, int64_t* ld) {
  if (rs == 1 && cs >= (rows > 1 ? rows : 1)) {
    *op = CUBLAS_OP_N;
    *ld = cs;
    return true;
  }
  if (cs == 1 && rs >= (cols > 1 ? cols : 1)) {
    *op = CUBLAS_OP_T;
    *ld = rs;
    return true;
  }
  return false;
}

// Returns false when the strides do not fit cuBLAS (the caller then uses the built-in kernels).
bool gemm_cublas(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                 const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate, Precision p) {
  // cuBLAS is column-major. For a row-major C, compute C^T = B^T A^T; for a column-major C, C = A B.
  bool c_row_major = sc.col == 1;
  if (!c_row_major && sc.row != 1) return false;
  int64_t m = c_row_major ? N : M, n = c_row_major ? M : N;
  cublasOperation_t opx, opy;
  int64_t ldx, ldy, ldc = c_row_major ? sc.row : sc.col;
  const float *X = c_row_major ? B : A, *Y = c_row_major ? A : B;
  Strides sx = c_row_major ? Strides{sb.batch0, sb.batch1, sb.col, sb.row} : sa;
  Strides sy = c_row_major ? Strides{sa.batch0, sa.batch1, sa.col, sa.row} : sb;
  if (!as_operand(m, K, sx.row, sx.col, &opx, &ldx) || !as_operand(K, n, sy.row, sy.col, &opy, &ldy)) return false;
  if (ldc < (m > 1 ? m : 1)) return false;
  const int64_t limit = INT32_MAX;
  if (m > limit || n > limit || K > limit || ldx > limit || ldy > limit || ldc > limit) return false;
  // One run of batches with a single stride: fold the two batch dimensions when they nest.
  int64_t batches, stx, sty, stc, outer = 1;
  if (nb1 == 1) {
    batches = nb0, stx = sx.batch0, sty = sy.batch0, stc = sc.batch0;
  } else if (nb0 == 1 || (sx.batch0 == nb1 * sx.batch1 && sy.batch0 == nb1 * sy.batch1 && sc.batch0 == nb1 * sc.batch1)) {
    batches = nb0 * nb1, stx = sx.batch1, sty = sy.batch1, stc = sc.batch1;
  } else {
    batches = nb1, stx = sx.batch1, sty = sy.batch1, stc = sc.batch1, outer = nb0;
  }
  float beta = accumulate ? 1.0f : 0.0f;
  cublasComputeType_t ct = p == Precision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
  cublasHandle_t h = cublas_handle();
  for (int64_t o = 0; o < outer; o++) {
    cublasStatus_t s = cublasGemmStridedBatchedEx(
        h, opx, opy, (int)m, (int)n, (int)K, &alpha, X + o * sx.batch0, CUDA_R_32F, (int)ldx, stx,
        Y + o * sy.batch0, CUDA_R_32F, (int)ldy, sty, &beta, C + o * sc.batch0, CUDA_R_32F, (int)ldc, stc,
        (int)batches, ct, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS GEMM failed: ") + cublasGetStatusString(s));
  }
  return true;
}
#endif

void launch(void (*kernel)(GemmArgs), dim3 grid, int threads, const GemmArgs& g, const char* name) {
  S2S_LAUNCH(kernel, grid, threads)(g);
  S2S_CUDA_LAUNCHED(name);
}

}  // namespace

bool have_cublas() {
#ifdef S2S_HAVE_CUBLAS
  // S2S_CUBLAS=off at run time, as at build time: the built-in kernels only
  static const bool enabled = [] {
    const char* v = std::getenv("S2S_CUBLAS");
    return !(v && std::string(v) == "off");
  }();
  return enabled;
#else
  return false;
#endif
}

void gemm_batched_builtin(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                          const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate,
                          Precision p) {
  check_sizes(nb0, nb1, M, N, K);
  if (nb0 == 0 || nb1 == 0 || M == 0 || N == 0) return;
  check_grid_batches(nb0, nb1);
  GemmArgs g{nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate};
  if (K == 0) {
    // a product over nothing: C = 0 (+ C), which the naive kernel's empty loop gives
    launch(gemm_naive_kernel, dim3((unsigned)ceil_div(M * N, 256), 1, (unsigned)(nb0 * nb1)), 256, g, "gemm (K = 0)");
    return;
  }
  if (p == Precision::bf16) {
    dim3 grid((unsigned)ceil_div(N, kBN), (unsigned)ceil_div(M, kBM), (unsigned)(nb0 * nb1));
    if (grid.y > 65535) throw Error("gemm: too many rows for the built-in kernel");
    launch(gemm_bf16_kernel, grid, 256, g, "gemm (bf16 tensor cores)");
  } else {
    dim3 grid((unsigned)ceil_div(N, kSN), (unsigned)ceil_div(M, kSM), (unsigned)(nb0 * nb1));
    if (grid.y > 65535) throw Error("gemm: too many rows for the built-in kernel");
    launch(gemm_fp32_kernel, grid, 256, g, "gemm (fp32)");
  }
}

void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate, Precision p) {
  check_sizes(nb0, nb1, M, N, K);
  if (nb0 == 0 || nb1 == 0 || M == 0 || N == 0) return;
#ifdef S2S_HAVE_CUBLAS
  if (K > 0 && have_cublas() && gemm_cublas(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate, p)) return;
#endif
  gemm_batched_builtin(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate, p);
}

void gemm_batched_naive(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                        const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate) {
  check_sizes(nb0, nb1, M, N, K);
  if (nb0 == 0 || nb1 == 0 || M == 0 || N == 0) return;
  check_grid_batches(nb0, nb1);
  GemmArgs g{nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate};
  launch(gemm_naive_kernel, dim3((unsigned)ceil_div(M * N, 256), 1, (unsigned)(nb0 * nb1)), 256, g, "gemm (naive)");
}

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
          float alpha, bool accumulate, Precision p) {
  Strides sa = transA ? dense_t(M, K) : dense(M, K);
  Strides sb = transB ? dense_t(K, N) : dense(K, N);
  gemm_batched(1, 1, M, N, K, A, sa, B, sb, C, dense(M, N), alpha, accumulate, p);
}

namespace {

__global__ void add_bias_kernel(float* out, const float* bias, int64_t N, int64_t OC) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N * OC) out[i] += bias[i % OC];
}

// dst[c] += sum_n scale[n] * src[n, c] (scale null: 1): a 32 x 8 block sums 32 columns over a
// slab of rows, then one atomic add per column.
__global__ void column_sums_kernel(float* dst, const float* src, const float* scale, int64_t N, int64_t C,
                                   int64_t rows_per_block) {
  __shared__ float part[8][33];
  int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
  int64_t r0 = (int64_t)blockIdx.y * rows_per_block, r1 = r0 + rows_per_block < N ? r0 + rows_per_block : N;
  float s = 0.0f;
  if (c < C)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += (scale ? scale[r] : 1.0f) * src[r * C + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int y = 1; y < 8; y++) s += part[y][threadIdx.x];
    atomicAdd(&dst[c], s);
  }
}

}  // namespace

void add_column_sums(float* dst, const float* src, const float* scale, int64_t N, int64_t C) {
  if (N == 0 || C == 0) return;
  const int64_t rows = 256;
  dim3 grid((unsigned)ceil_div(C, 32), (unsigned)ceil_div(N, rows));
  S2S_LAUNCH(column_sums_kernel, grid, dim3(32, 8))(dst, src, scale, N, C, rows);
  S2S_CUDA_LAUNCHED("column sums");
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC, Precision p) {
  gemm(false, false, N, OC, C, inp, weight, out, 1.0f, false, p);
  if (bias && N * OC > 0) {
    S2S_LAUNCH(add_bias_kernel, (unsigned)ceil_div(N * OC, 256), 256)(out, bias, N, OC);
    S2S_CUDA_LAUNCHED("matmul bias");
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate, Precision p) {
  if (dinp) gemm(false, true, N, C, OC, dout, weight, dinp, 1.0f, false, p);
  gemm(true, false, C, OC, N, inp, dout, dweight, 1.0f, accumulate, p);
  if (dbias) add_column_sums(dbias, dout, nullptr, N, OC);
}

void gelu_matmul_backward(float* dinp, float* dweight, float* dbias, float* dpre, const float* pre, const float* dact,
                          const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate,
                          Precision p) {
  gelu_backward(dpre, pre, dact, N * OC);
  matmul_backward(dinp, dweight, dbias, dpre, inp, weight, N, C, OC, accumulate, p);
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC, Precision p) {
  gemm(false, true, N, OC, C, inp, weight, out, 1.0f, false, p);  // weight [OC, C] read transposed
  if (bias && N * OC > 0) {
    S2S_LAUNCH(add_bias_kernel, (unsigned)ceil_div(N * OC, 256), 256)(out, bias, N, OC);
    S2S_CUDA_LAUNCHED("linear bias");
  }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate, Precision p) {
  if (dinp) gemm(false, false, N, C, OC, dout, weight, dinp, 1.0f, false, p);
  gemm(true, false, OC, C, N, dout, inp, dweight, 1.0f, accumulate, p);  // dweight [OC, C] (+)= dout^T @ inp
  if (dbias) add_column_sums(dbias, dout, nullptr, N, OC);
}

double measure_gemm_tflops(int64_t M, int64_t N, int64_t K, int iters, Precision p) {
  DeviceBuffer a, b, c;
  a.reserve(M * K);
  b.reserve(K * N);
  c.reserve(M * N);
  {
    // values like a trained layer's (the tensor cores' power draw, hence clocks, depends on them)
    std::vector<float> h((size_t)(M * K > K * N ? M * K : K * N));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (float& v : h) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v = (float)((x >> 40) & 0xFFFF) / 65536.0f - 0.5f;
    }
    a.upload(h.data(), M * K);
    b.upload(h.data(), K * N);
  }
  gemm(false, false, M, N, K, a.data(), b.data(), c.data(), 1.0f, false, p);  // warm-up (and cuBLAS's init)
  float ms = time_ms([&] {
    for (int i = 0; i < iters; i++) gemm(false, false, M, N, K, a.data(), b.data(), c.data(), 1.0f, false, p);
  });
  return 2.0 * M * N * K * iters / (ms * 1e-3) / 1e12;
}

}  // namespace cuda
}  // namespace s2s

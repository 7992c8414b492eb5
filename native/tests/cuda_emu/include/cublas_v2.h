// The one cuBLAS call the engine makes (cublasGemmStridedBatchedEx), on the CPU emulator, written
// from cuBLAS's documented column-major contract, independently of how the engine maps its
// row-major strides onto it: element (i, j) of an m x n matrix X with leading dimension ld is
// X[i + j * ld]; op(X) is X or its transpose; each batch's matrices lie a fixed stride apart;
// C = alpha op(A) op(B) + beta C, with C not read when beta is 0. Invalid sizes and leading
// dimensions are refused as cuBLAS refuses them. Products accumulate in double; the fast-bf16
// compute type rounds the inputs to bf16 first (the fast-tf32 one is computed in full fp32). One
// check of the emulator's own: every element a call touches must lie in device memory (real
// cuBLAS would read past the buffer instead); strides are taken as non-negative.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasComputeType_t {
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct cublasContext {};
using cublasHandle_t = cublasContext*;

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  static cublasContext context;
  *h = &context;
  return CUBLAS_STATUS_SUCCESS;
}

inline const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                                 cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                                 const void* A, cudaDataType Atype, int lda, long long strideA,
                                                 const void* B, cudaDataType Btype, int ldb, long long strideB,
                                                 const void* beta, void* C, cudaDataType Ctype, int ldc,
                                                 long long strideC, int batchCount, cublasComputeType_t compute,
                                                 cublasGemmAlgo_t algo) {
  (void)algo;
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  // for real matrices the conjugate transpose is the transpose
  if (transa == CUBLAS_OP_C) transa = CUBLAS_OP_T;
  if (transb == CUBLAS_OP_C) transb = CUBLAS_OP_T;
  auto at_least = [](int ld, int rows) { return ld >= (rows > 1 ? rows : 1); };
  if (m < 0 || n < 0 || k < 0 || batchCount < 0 || !at_least(lda, transa == CUBLAS_OP_N ? m : k) ||
      !at_least(ldb, transb == CUBLAS_OP_N ? k : n) || !at_least(ldc, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  // Every element the call touches must lie in device memory (the first and last of the batches).
  auto spans_device = [batchCount](const void* p, long long stride, int rows, int cols, int ld) {
    if (batchCount == 0 || rows == 0 || cols == 0) return true;
    const float* f = static_cast<const float*>(p);
    long long last = (long long)(batchCount - 1) * stride + (rows - 1) + (long long)(cols - 1) * ld;
    return s2s_emu::is_device_range(f, (size_t)(last + 1) * sizeof(float));
  };
  bool na = transa == CUBLAS_OP_N, nb = transb == CUBLAS_OP_N;
  if (!spans_device(C, strideC, m, n, ldc) || !spans_device(A, strideA, na ? m : k, na ? k : m, lda) ||
      !spans_device(B, strideB, nb ? k : n, nb ? n : k, ldb))
    return CUBLAS_STATUS_INVALID_VALUE;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool bf16 = compute == CUBLAS_COMPUTE_32F_FAST_16BF;
  auto in = [bf16](float x) { return bf16 ? (float)__float2bfloat16(x) : x; };
  for (int z = 0; z < batchCount; z++) {
    const float* Az = static_cast<const float*>(A) + z * strideA;
    const float* Bz = static_cast<const float*>(B) + z * strideB;
    float* Cz = static_cast<float*>(C) + z * strideC;
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        double acc = 0.0;
        for (int p = 0; p < k; p++) {
          float x = transa == CUBLAS_OP_N ? Az[i + (int64_t)p * lda] : Az[p + (int64_t)i * lda];
          float y = transb == CUBLAS_OP_N ? Bz[p + (int64_t)j * ldb] : Bz[j + (int64_t)p * ldb];
          acc += (double)in(x) * in(y);
        }
        float& c = Cz[i + (int64_t)j * ldc];
        c = (float)(a * acc + (b == 0.0f ? 0.0 : (double)b * c));
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// Matrix multiplication for the engine: linear layers (forward/backward) and a general strided,
// batched GEMM used by attention and the LM head. Optimised path: oneDNN; reference: plain loops.
#pragma once

#include <cstdint>

#include "ops/strides.h"

namespace s2s {

// C[b0,b1] = alpha * A[b0,b1] (M x K) @ B[b0,b1] (K x N), plus the old C when accumulate is true.
void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate);
void gemm_batched_naive(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                        Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha,
                        bool accumulate);

// One matrix: C = alpha * op(A) @ op(B) (+ C). A is M x K (K x M when transA), B is K x N (N x K
// when transB), all dense row-major.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
          float* C, float alpha, bool accumulate);

// Linear layer with HF Conv1D's weight layout [C, OC]:  out[N,OC] = inp[N,C] @ weight + bias.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC);
// dinp = dout @ weight^T (overwritten; skipped when null), dweight += inp^T @ dout,
// dbias += column sums of dout (skipped when null).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

// Linear layer with torch.nn.Linear's weight layout [OC, C] (Llama's projections):
// out[N,OC] = inp[N,C] @ weight^T + bias (bias may be null).
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
// dinp = dout @ weight (overwritten; skipped when null), dweight [OC, C] += dout^T @ inp,
// dbias += column sums of dout (skipped when null).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

void linear_forward_naive(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                          int64_t C, int64_t OC);
void matmul_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          int64_t N, int64_t C, int64_t OC);

// Sustained sgemm rate of this machine through the same path the engine uses (GFLOP/s).
double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int iters);

}  // namespace s2s

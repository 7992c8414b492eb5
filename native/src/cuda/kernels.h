// The CUDA layer kernels, one group per file of src/cuda/ (mirroring src/cpu/ file for file), as
// host functions over device pointers. Each does what its CPU namesake does (same arguments, same
// accumulate-or-overwrite contract), so one composition drives both devices (src/cuda/ops.cuh); the
// op-case table (tests/test_ops.cc) runs every one against a float64 reference. All launches go to the
// default stream; a launch error is thrown as s2s::Error right away, a fault at the next copy.
#pragma once

#include <cstdint>

#include "ops/contracts.h"  // Strides, Precision, ClassifierArgs, DivergenceRule

namespace s2s {
namespace cuda {

using ::s2s::AttnShape;
using ::s2s::ClassifierArgs;
using ::s2s::DivergenceRule;
using ::s2s::Precision;
using ::s2s::precision_name;

// ---- matmul.cu ----
// Whether GEMMs may use cuBLAS: the build has it and S2S_CUBLAS is not "off" in the environment
// (else every GEMM runs on the built-in kernels).
bool have_cublas();
// C[b0,b1] = alpha * A[b0,b1] @ B[b0,b1] (+ C), as the CPU gemm_batched: through cuBLAS when the
// strides suit it, else the built-in kernels (tensor-core WMMA for bf16, tiled SIMT for fp32).
void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate, Precision p);
// Always the built-in kernels (what runs without cuBLAS; the tests check them everywhere).
void gemm_batched_builtin(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                          Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha,
                          bool accumulate, Precision p);
// One thread per output element, accumulating in double: the reference for the tests.
void gemm_batched_naive(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                        Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha,
                        bool accumulate);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
          float alpha, bool accumulate, Precision p);
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC, Precision p);
// accumulate: as the CPU's (dweight added to, or written without reading it; dbias always added to).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate, Precision p);
// The CPU's gelu_matmul_backward (cpu/matmul.h): here GELU's backward into dpre, then matmul_backward.
void gelu_matmul_backward(float* dinp, float* dweight, float* dbias, float* dpre, const float* pre, const float* dact,
                          const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate,
                          Precision p);
// torch.nn.Linear's layout: out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias (bias may be null); backward as
// the CPU's linear_backward (dinp overwritten unless null, dweight added to unless accumulate is
// false, dbias added to).
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC, Precision p);
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate, Precision p);
// dst[c] += sum_n scale[n] * src[n, c] over src [N, C] (scale null: all 1): bias and value-head
// weight gradients.
void add_column_sums(float* dst, const float* src, const float* scale, int64_t N, int64_t C);
// Sustained GEMM rate of this GPU through gemm() at this precision (TFLOP/s).
double measure_gemm_tflops(int64_t M, int64_t N, int64_t K, int iters, Precision p);

// ---- embedding.cu ----
// pos: per-row start positions [B] on the device, or null for 0 (generation passes each row's).
// wpe null: no position embedding (dwpe null: no position gradient).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C,
                       const int32_t* pos);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C);

// ---- layernorm.cu ----
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int C);

// ---- attention.cu ----
// Causal (grouped-query) attention over qkv [B, T, s.qkv_width()], as the CPU's (src/cpu/attention.h).
void attention_forward(float* out, float* att, const float* qkv, const AttnShape& s, Precision p);
void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        const AttnShape& s, Precision p);
// Writes row b's new key and value (from qkv[b]) at position pos[b] of the caches [B, maxT, KVH*hd].
void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int maxT, const AttnShape& s);
// Copies the prompt positions t < len[b] of a prefill's qkv [B, s.T, qkv_width] into the caches.
void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int maxT,
                      const AttnShape& s);
void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache, const int32_t* pos,
                      int maxT, const AttnShape& s);

// ---- rmsnorm.cu ----
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int C);

// ---- rope.cu ----
void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T, int64_t stride,
                  int nheads, int hd);
void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                   int64_t stride, int nheads, int hd);

// ---- swiglu.cu ----
void swiglu_forward(float* out, const float* h, int64_t N, int64_t F);
void swiglu_backward(float* dh, const float* dout, const float* h, int64_t N, int64_t F);

// ---- gelu.cu ----
void gelu_forward(float* out, const float* inp, int64_t N);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N);

// ---- residual.cu ----
void residual_forward(float* out, const float* a, const float* b, int64_t N);
// dst[n, :] = src[idx[n], :] for n < N (rows of C floats): gathers the rows the LM head needs.
void gather_rows(float* dst, const float* src, const int64_t* idx, int64_t N, int C);

// ---- classifier.cu ----
void classifier_forward(const ClassifierArgs& a, float* logprob, float* entropy, float* lse);
void classifier_backward(const ClassifierArgs& a, float* dlnf, float* dwte, const float* dlogprob, const float* lse,
                         bool accumulate);

// ---- value_head.cu ----
void value_head_forward(float* values, const float* lnf, const float* weight, int64_t N, int C);
void value_head_backward(float* dlnf, float* dweight, const float* dvalues, const float* lnf, const float* weight,
                         int64_t N, int C);

// ---- adamw.cu ----
// Adds sum(grads^2) into acc[0], in double and in the same order on every run; acc holds
// 1 + kSumSquaresBlocks doubles on the device (the rest is scratch for the per-block partials).
constexpr int kSumSquaresBlocks = 4096;
void sum_squares(double* acc, const float* grads, size_t n);
// One AdamW update (cpu/adamw.h's): the gradients are zeroed as they are read.
void adamw_update(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale);

// ---- sampling.cu ----
// Greedy or plain temperature sampling for every row of logits [B, V] in one kernel: u[b] is the
// row's uniform draw (from the same host RNG stream the CPU uses), ignored when greedy. Rows with
// done[b] != 0 are skipped. Writes token[b] and its log-probability (as the CPU sample_token).
void sample_rows(int32_t* token, float* logprob, const float* logits, const float* u, const uint8_t* done, int B,
                 int V, float temperature);

// ---- divergence.cu ----
// The fused divergence scoring over logits the device already holds. Row m of logits [M, V]
// predicts position pos[m] of batch row row[m]; given tokens [B, T] and spans [B, 2], it takes the
// argmax, matches it with the token, and the last block to finish a batch row scans that row for
// its first divergence and writes the rule's scores. scores/argmax [B, T] and first [B] must be
// prepared (0, -1, -1) before the first call of a batch, and counters [B] zero (each row's last
// block sets its counter back to zero); chunks of rows may come in any number of calls.
void divergence_score(const float* logits, int64_t M, int V, const int32_t* row, const int32_t* pos,
                      const int32_t* tokens, int T, const int32_t* spans, DivergenceRule rule, int32_t* argmax,
                      float* scores, int32_t* first, int32_t* counters);

}  // namespace cuda
}  // namespace s2s

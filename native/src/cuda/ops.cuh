// The CUDA op set: the kernels of src/cuda/ over device memory, in the shape every device offers
// to the one composition (src/model_impl.h, src/arch/). Matmuls run at the device's precision
// (bf16 inputs with fp32 accumulation by default, S2S_CUDA_PRECISION=fp32 for exact fp32).
#pragma once

#include <cmath>
#include <cstdint>

#include "backend.h"  // cuda_default_precision
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "ops/contracts.h"
#include "ops/op_set.h"

namespace s2s {
namespace cuda {

struct CudaOps {
  // Larger chunks than the CPU's: a GPU needs more rows per GEMM to fill.
  static constexpr DeviceTraits kTraits{"cuda", false, true, 4096, 1024, 2048};
  template <typename T>
  using Array = DeviceArray<T>;

  CudaOps() : precision_(cuda_default_precision()) {}
  Precision precision() const { return precision_; }
  void set_precision(Precision p) { precision_ = p; }
  const char* precision_label() const { return precision_name(precision_); }
  // The CPU's attention_probs_values (cpu/ops.h): here attention always keeps the probabilities.
  int64_t attention_probs_values(const AttnShape& s) const { return (int64_t)s.B * s.NH * s.T * s.T; }
  // The bf16 kernels round their inputs as they stage them: no weight copy to keep.
  void weights_changed(const float*, size_t) {}
  // A fault shows up here, in the engine call that caused it.
  void synchronize() { S2S_CUDA_CHECK(cudaDeviceSynchronize()); }
  // sqrt(sum of squares), in double and in a fixed order (deterministic).
  double grad_norm(const float* grads, size_t n) {
    norm_.reserve(1 + kSumSquaresBlocks);
    norm_.zero(1);
    sum_squares(norm_.data(), grads, n);
    double sq = 0.0;
    norm_.download(&sq, 1);
    return std::sqrt(sq);
  }
  // The CPU keeps a forward's bf16 matmul operands for its backward; the kernels here stage their own.
  void keep_operands(bool) {}
  void drop_operands() {}
  // Whether the updates since the last call left every parameter finite: not tracked here (false),
  // so the next forward checks the parameters with grad_norm.
  bool take_updates_finite() { return false; }
  void sample_rows(int32_t* token, float* logprob, const float* logits, const float* u, const uint8_t* done, int B,
                   int V, float temperature) {
    cuda::sample_rows(token, logprob, logits, u, done, B, V, temperature);
  }

#define S2S_CUDA_OP(name) S2S_FORWARD_OP(::s2s::cuda, name)
  S2S_DEVICE_OPS(S2S_CUDA_OP)
#undef S2S_CUDA_OP
#define S2S_CUDA_MATMUL_OP(name)                                  \
  template <class... A>                                           \
  void name(A&&... a) {                                           \
    ::s2s::cuda::name(std::forward<A>(a)..., precision_);         \
  }
  S2S_MATMUL_OPS(S2S_CUDA_MATMUL_OP)
#undef S2S_CUDA_MATMUL_OP

 private:
  Precision precision_;
  DeviceArray<double> norm_;
};

}  // namespace cuda
}  // namespace s2s

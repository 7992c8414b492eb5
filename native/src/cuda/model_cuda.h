// The GPT on an NVIDIA GPU: the CPU model's composition (src/model.cc) over the kernels of
// src/cuda/. Parameters, gradients and AdamW state are fp32 on the device; matmuls run at the
// model's precision (bf16 inputs with fp32 accumulation by default, S2S_CUDA_PRECISION=fp32 for
// exact fp32). In bf16 the argmax behind greedy decoding and divergence scoring may pick the other
// token of a near-tie (logits within bf16's rounding) where the CPU would not; fp32 matches the CPU
// token for token (tests/test_cuda.cc). Everything crossing to the host is the interface's: log-probs, values, entropies,
// generated tokens, divergence scores, and parameter copies for checkpoints.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace s2s {
namespace cuda {

// The precision new CUDA models use: S2S_CUDA_PRECISION (fp32 or bf16), else bf16.
Precision default_precision();

class GPTCuda final : public ModelBackend {
 public:
  explicit GPTCuda(const GPTConfig& cfg);

  const char* device() const override { return "cuda"; }
  const GPTConfig& config() const override { return cfg_; }
  const std::vector<TensorInfo>& layout() const override { return layout_; }
  size_t num_params() const override { return num_params_; }

  void init_weights(uint64_t seed) override;
  ForwardResult forward(const int32_t* tokens, const int32_t* targets, int B, int T, const ForwardOptions& opts) override;
  size_t last_batch_size() const override;
  void backward(const float* dlogprob, const float* dvalue) override;
  double step(const AdamWConfig& cfg) override;
  void zero_grad() override;
  GenerateResult generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& opts) override;
  GreedyMatchResult greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans) override;
  DivergenceResult divergence(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg) override;
  void read_buffer(BufferKind k, size_t offset, size_t n, float* dst) override;
  void write_buffer(BufferKind k, size_t offset, size_t n, const float* src) override;
  int64_t optimizer_step() const override { return adam_step_; }
  void set_optimizer_step(int64_t step) override { adam_step_ = step; }

  Precision precision() const { return precision_; }
  void set_precision(Precision p) { precision_ = p; }

 private:
  DeviceBuffer& buffer(BufferKind k);
  float* ensure(BufferKind k);  // allocates (zeroed) on first use
  void invalidate_activations() { acts_valid_ = false; }
  void ensure_activations(int B, int T);
  void transformer_forward(const int32_t* tokens, int B, int T);  // device tokens
  void decode_step(int B, int maxT);  // dec_.cur at dec_.pos -> dec_.logits
  // The divergence pass behind greedy_match() and divergence(): argmax, match and the rule.
  DivergenceResult score(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg);

  GPTConfig cfg_;
  std::vector<TensorInfo> layout_;
  size_t num_params_ = 0;
  Precision precision_;
  DeviceBuffer params_, grads_, adam_m_, adam_v_;
  int64_t adam_step_ = 0;

  struct Acts {
    DeviceBuffer encoded, ln1, ln1_mean, ln1_rstd, qkv, atty, att, res2, ln2, ln2_mean, ln2_rstd, fch, fch_gelu,
        res3, lnf, lnf_mean, lnf_rstd, lse, logits, scratch_c, logits_chunk, logprob, values, entropy;
    DeviceArray<int32_t> tokens, targets;
  } acts_;
  struct GradActs {
    DeviceBuffer dres, dbuf_c, dbuf_4c, dqkv, datt, dlogprob, dvalue;
  } gacts_;
  int B_ = 0, T_ = 0;
  bool logits_stored_ = false, logits_consumed_ = false, head_ran_ = false, acts_valid_ = false;
  float last_inv_temp_ = 1.0f;
  DeviceArray<double> norm_;

  struct Decode {
    DeviceBuffer kcache, vcache, x, ln, ln_mean, ln_rstd, qkv, atty, fch, fch_gelu, tmp, logits, logprob, u;
    DeviceArray<int32_t> cur, pos, len, token;
    DeviceArray<int64_t> rows;
    DeviceArray<uint8_t> done;
  } dec_;
  struct Score {
    DeviceBuffer rows, logits, scores;
    DeviceArray<int32_t> row, pos, spans, argmax, first, counters;
    DeviceArray<int64_t> idx;
  } sc_;
};

}  // namespace cuda
}  // namespace s2s

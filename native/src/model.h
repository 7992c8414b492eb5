// The GPT (GPT-2's architecture) on the CPU: parameters in one flat buffer, forward and backward
// composed from the layer kernels, AdamW, KV-cache generation, and the fused greedy-match and
// divergence passes that reward extraction builds on.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "common.h"

namespace s2s {

class GPT final : public ModelBackend {
 public:
  explicit GPT(const GPTConfig& cfg);

  const char* device() const override { return "cpu"; }
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
  int64_t optimizer_step() const override { return adam_step; }
  void set_optimizer_step(int64_t step) override { adam_step = step; }

  // A flat buffer for direct use (the C++ tests): null while not allocated, unless `allocate`,
  // which allocates it zeroed. Parameters given out for writing discard the last activations.
  float* buffer(BufferKind k, bool allocate);

  Buffer params, grads, adam_m, adam_v;
  int64_t adam_step = 0;  // number of optimizer steps taken (for bias correction)

  // The activations of the last forward were discarded (by generate, greedy_match, step or a
  // parameter change): backward() refuses until the next forward().
  void invalidate_activations() { acts_valid_ = false; }

 private:
  ParamView view(float* base) const { return param_view(cfg_, layout_, base); }

  void ensure_activations(int B, int T);
  // Embedding through the final LayerNorm on acts_ (tokens [B,T]); leaves lnf filled.
  void transformer_forward(const int32_t* tokens, int B, int T);
  // One generation step for every row: token tokens[b] at position pos[b] goes through the model
  // against the KV cache (rows maxT apart), writing the next-token logits [B, V].
  void decode_step(const int32_t* tokens, const int32_t* pos, int B, int maxT, float* logits_out);

  GPTConfig cfg_;
  std::vector<TensorInfo> layout_;
  size_t num_params_ = 0;

  // Activations of the last forward, sized for (B_, T_).
  struct Acts {
    Buffer encoded, ln1, ln1_mean, ln1_rstd, qkv, atty, att, res2, ln2, ln2_mean, ln2_rstd, fch, fch_gelu,
        res3, lnf, lnf_mean, lnf_rstd, lse, logits, scratch_c, logits_chunk;
  } acts_;
  struct GradActs {
    Buffer dres, dbuf_c, dbuf_4c, dqkv, datt;
  } gacts_;
  int B_ = 0, T_ = 0;
  bool logits_stored_ = false;    // acts_.logits holds every row's logits (within the memory budget)
  bool logits_consumed_ = false;  // backward turned them into dlogits; a second backward recomputes
  bool head_ran_ = false;         // the last forward ran the LM head (backward may take dlogprob)
  bool acts_valid_ = false;
  float last_inv_temp_ = 1.0f;
  std::vector<int32_t> last_tokens_, last_targets_;

  // KV cache and per-step buffers for generation.
  struct Decode {
    Buffer kcache, vcache, x, ln, ln_mean, ln_rstd, qkv, atty, fch, fch_gelu, tmp, logits;
  } dec_;
};

}  // namespace s2s

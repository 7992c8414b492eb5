// The GPT (GPT-2's architecture) as the engine runs it: parameter layout in one flat buffer,
// forward and backward composed from the layer kernels, AdamW, KV-cache generation and the
// fused greedy-match pass that reward extraction builds on.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "cpu/sampling.h"

namespace s2s {

struct GPTConfig {
  int vocab_size = 0;   // V
  int max_seq_len = 0;  // maxT (GPT-2's n_positions)
  int num_layers = 0;   // L
  int num_heads = 0;    // NH
  int channels = 0;     // C
  bool value_head = false;  // a scalar head (HF GPT2ForSequenceClassification's score, 1 x C, no bias)
};
void validate_config(const GPTConfig& cfg);

// One named tensor inside the flat parameter buffer, with GPT-2's Hugging Face name and shape.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset;
  size_t numel;
  bool decay;  // weight decay applies (matrices and embeddings, not biases and norms)
};

struct ForwardOptions {
  bool logprob = true;  // false skips the LM head (value-only models: the scalar RM, the critic)
  bool values = false;
  bool entropy = false;
  float temperature = 1.0f;  // log-probs of softmax(logits / temperature)
};

struct ForwardResult {
  std::vector<float> logprob;  // [B*T] (empty when not asked)
  std::vector<float> values;   // [B*T] when asked
  std::vector<float> entropy;  // [B*T] when asked
};

struct AdamWConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float max_grad_norm = 0.0f;  // 0: no clipping
};

struct GenerateOptions {
  int max_new_tokens = 16;
  SamplingConfig sampling;
  std::vector<int32_t> eos;  // any of these ends a row (the EOS token is kept in the output)
  uint64_t seed = 0;
};

struct GenerateResult {
  int B = 0, max_new = 0;
  std::vector<int32_t> tokens;   // [B, max_new], rows padded with -1 after their end
  std::vector<float> logprobs;   // [B, max_new], 0 after the end
  std::vector<int32_t> lengths;  // [B] generated tokens per row (EOS included)
  std::vector<uint8_t> eos;      // [B] 1 when the row ended with an EOS token
};

struct GreedyMatchResult {
  std::vector<uint8_t> match;   // [B*T] 1 where argmax(logits at t-1) == tokens[t], inside spans
  std::vector<int32_t> argmax;  // [B*T] that argmax inside spans, -1 elsewhere
};

class GPT {
 public:
  explicit GPT(const GPTConfig& cfg);

  const GPTConfig& config() const { return cfg_; }
  const std::vector<TensorInfo>& layout() const { return layout_; }
  size_t num_params() const { return num_params_; }
  // Model FLOPs per trained token at sequence length T, counting every matmul (the LM head
  // included) and causal attention: 6 * (matmul params) + 6 * L * C * T (as llm.c counts them).
  double flops_per_token(int T) const;

  // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L), biases 0,
  // LayerNorm weights 1. Resets the optimizer state.
  void init_weights(uint64_t seed);

  // tokens and targets are [B, T]; a target < 0 marks a position without a target.
  ForwardResult forward(const int32_t* tokens, const int32_t* targets, int B, int T, const ForwardOptions& opts);
  // Accumulates gradients of sum(dlogprob * logprob) + sum(dvalue * values) for the last forward.
  // Either may be null.
  void backward(const float* dlogprob, const float* dvalue);
  // Clips by global norm, applies AdamW, zeroes the gradients; returns the norm before clipping.
  double step(const AdamWConfig& cfg);
  void zero_grad();

  GenerateResult generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& opts);
  // spans: per row [start, end) of the positions to check, 1 <= start <= end <= T.
  GreedyMatchResult greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans);

  enum class BufferKind { params, grads, adam_m, adam_v };
  // The flat buffer of that kind for reading, or null while it is not allocated (all zeros).
  const float* read_buffer(BufferKind k);
  // The flat buffer for writing, allocated (zeroed) when needed. Writing parameters discards
  // the activations of the last forward.
  float* write_buffer(BufferKind k);

  Buffer params, grads, adam_m, adam_v;
  int64_t adam_step = 0;  // number of optimizer steps taken (for bias correction)
  std::mutex mu;          // every entry point from another thread takes it

  // B*T of the last forward, whose activations backward() will use; throws when there are none.
  size_t last_batch_size() const;

  // The activations of the last forward were discarded (by generate, greedy_match, step or a
  // parameter change): backward() refuses until the next forward().
  void invalidate_activations() { acts_valid_ = false; }

 private:
  struct LayerParams {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
  };
  struct ParamView {
    float *wte, *wpe, *lnfw, *lnfb, *score;
    std::vector<LayerParams> layers;
  };
  ParamView view(float* base) const;

  void build_layout();
  void ensure_activations(int B, int T);
  void check_batch(const int32_t* tokens, int B, int T) const;
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

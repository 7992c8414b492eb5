// What every backend of the engine (the CPU one, the CUDA one) offers the binding: the model's
// configuration and parameter layout, the one forward/backward that serves every trainer,
// AdamW, generation, greedy match and the fused divergence scoring; plus the argument checks they
// share, so that bad input gets the same message whichever device runs it.
#pragma once

#include <cstdint>
#include <memory>
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

struct DivergenceConfig {
  float positive = 1.0f;  // a token before the first divergence
  float negative = -1.0f;  // a diverging token at or after it
  float neutral = 0.0f;    // a matching token after it
};

struct DivergenceResult {
  std::vector<float> scores;             // [B*T]: the rule's score inside spans, 0 elsewhere
  std::vector<int32_t> first_divergence;  // [B]: position (from the span's start) of the first mismatch, -1 if none
  std::vector<int32_t> argmax;           // [B*T]: the model's argmax inside spans, -1 elsewhere
};

enum class BufferKind { params, grads, adam_m, adam_v };

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  virtual const char* device() const = 0;
  virtual const GPTConfig& config() const = 0;
  virtual const std::vector<TensorInfo>& layout() const = 0;
  virtual size_t num_params() const = 0;

  // GPT-2's initialisation, the same numbers on every device (see make_layout / init_params).
  virtual void init_weights(uint64_t seed) = 0;
  // tokens and targets are [B, T]; a target < 0 marks a position without a target.
  virtual ForwardResult forward(const int32_t* tokens, const int32_t* targets, int B, int T, const ForwardOptions& opts) = 0;
  // B*T of the last forward, whose activations backward() will use; throws when there are none.
  virtual size_t last_batch_size() const = 0;
  // Accumulates gradients of sum(dlogprob * logprob) + sum(dvalue * values) for the last forward.
  virtual void backward(const float* dlogprob, const float* dvalue) = 0;
  // Clips by global norm, applies AdamW, zeroes the gradients; returns the norm before clipping.
  virtual double step(const AdamWConfig& cfg) = 0;
  virtual void zero_grad() = 0;
  virtual GenerateResult generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& opts) = 0;
  // spans: per row [start, end) of the positions to check, 1 <= start <= end <= T.
  virtual GreedyMatchResult greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans) = 0;
  // Reward extraction's scores in one pass: argmax, match, first-divergence scan and the rule.
  virtual DivergenceResult divergence(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg) = 0;

  // Copies n values of a flat buffer from `offset` (zeros for a buffer not allocated yet).
  virtual void read_buffer(BufferKind k, size_t offset, size_t n, float* dst) = 0;
  // Copies n values into a flat buffer at `offset`, allocating it (zeroed) when needed. Writing
  // parameters discards the activations of the last forward.
  virtual void write_buffer(BufferKind k, size_t offset, size_t n, const float* src) = 0;
  virtual int64_t optimizer_step() const = 0;
  virtual void set_optimizer_step(int64_t step) = 0;

  std::mutex mu;  // every entry point from another thread takes it
};

// ---- shared by the backends ----

void validate_config(const GPTConfig& cfg);
// GPT-2's tensors with their Hugging Face names and shapes, laid out in one flat buffer.
std::vector<TensorInfo> make_layout(const GPTConfig& cfg, size_t* num_params);
// Pointers to each tensor of a flat buffer laid out by make_layout (parameters or gradients, on
// whichever device holds it).
struct LayerParams {
  float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
};
struct ParamView {
  float *wte, *wpe, *lnfw, *lnfb, *score;  // score: null without a value head
  std::vector<LayerParams> layers;
};
ParamView param_view(const GPTConfig& cfg, const std::vector<TensorInfo>& layout, float* base);
// Model FLOPs per trained token at sequence length T, counting every matmul (the LM head
// included) and causal attention: 6 * (matmul params) + 6 * L * C * T (as llm.c counts them).
double flops_per_token(const GPTConfig& cfg, int T);
// GPT-2's initialisation into a host buffer laid out by `layout`: N(0, 0.02), residual
// projections scaled by 1/sqrt(2L), biases 0, LayerNorm weights 1; the same on every thread count.
void init_params(float* params, const GPTConfig& cfg, const std::vector<TensorInfo>& layout, uint64_t seed);

void check_batch(const GPTConfig& cfg, const int32_t* tokens, int B, int T);
void check_targets(const GPTConfig& cfg, const int32_t* targets, int B, int T);
void check_forward_options(const GPTConfig& cfg, const ForwardOptions& o);
void check_backward_inputs(const GPTConfig& cfg, const float* dlogprob, const float* dvalue, int B, int T, bool head_ran);
void check_adamw(const AdamWConfig& o);
// Checks that [offset, offset + n) lies inside a flat buffer of `total` values.
void check_buffer_range(size_t offset, size_t n, size_t total);
// Checks the spans and returns how many positions they cover.
int64_t check_spans(const int32_t* spans, int B, int T);
// Checks the prompts and options and returns the longest prompt's length.
int check_generate(const GPTConfig& cfg, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o);
// The divergence rule over the argmax of each span position (argmax [B*T], -1 outside spans).
DivergenceResult score_divergence(const int32_t* tokens, const int32_t* argmax, int B, int T, const int32_t* spans, const DivergenceConfig& cfg);
// "row b, position t" for flat index i of a [B, T] array.
std::string where(int T, int64_t i);

// ---- choosing a backend ----

struct CudaStatus {
  bool available = false;
  std::string reason;  // why not, when not available
  std::string device;  // the GPU's name when available
};
CudaStatus cuda_status();

// device: "cpu", "cuda", or "auto" (CUDA when available, else the CPU).
std::shared_ptr<ModelBackend> make_backend(const GPTConfig& cfg, const std::string& device);

}  // namespace s2s

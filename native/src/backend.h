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

#include "arch/config.h"
#include "arch/tensor.h"
#include "common.h"
#include "ops/contracts.h"

namespace s2s {

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
  // Row b samples from stream first_row + b: a batch split into parts (over data-parallel ranks)
  // samples what the whole batch would, given each part's first row.
  uint64_t first_row = 0;
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

// The divergence rule's three scores (positive before the first divergence, then negative or
// neutral).
using DivergenceConfig = DivergenceRule;

struct DivergenceResult {
  std::vector<float> scores;             // [B*T]: the rule's score inside spans, 0 elsewhere
  std::vector<int32_t> first_divergence;  // [B]: position (from the span's start) of the first mismatch, -1 if none
  std::vector<int32_t> argmax;           // [B*T]: the model's argmax inside spans, -1 elsewhere
};

enum class BufferKind { params, grads, adam_m, adam_v };

class ProcessGroup;  // src/comm/process_group.h

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  virtual const char* device() const = 0;
  // How its matmuls multiply: "fp32", "bf16" (bf16 inputs, fp32 accumulation) or, on the CPU,
  // "bf16-emulated".
  virtual const char* matmul_precision() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual const std::vector<TensorInfo>& layout() const = 0;
  virtual size_t num_params() const = 0;
  // Model FLOPs per trained token at sequence length T (the architecture's count).
  virtual double flops_per_token(int T) const = 0;

  // The architecture's initialisation, the same numbers on every device.
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

  // Data parallelism: the gradient buffer summed over the group's ranks, then multiplied by
  // `scale` (1 / world size: the ranks' mean), identical on every rank afterwards.
  virtual void allreduce_grads(ProcessGroup& g, float scale) = 0;
  // root's parameters (and, with `optimizer`, AdamW's moments and step count) on every rank.
  virtual void broadcast_params(ProcessGroup& g, int root, bool optimizer) = 0;

  std::mutex mu;  // every entry point from another thread takes it

 protected:
  // The parameters passed a finiteness check since they last changed (anything that writes them
  // clears it; every call that reads them checks again first, once).
  bool params_checked_ = false;
};

// ---- shared by the backends ----

void check_batch(const ModelConfig& cfg, const int32_t* tokens, int B, int T);
void check_targets(const ModelConfig& cfg, const int32_t* targets, int B, int T);
void check_forward_options(const ModelConfig& cfg, const ForwardOptions& o);
void check_backward_inputs(const ModelConfig& cfg, const float* dlogprob, const float* dvalue, int B, int T, bool head_ran);
void check_adamw(const AdamWConfig& o);
// Refuses values written into a buffer that must be finite (params, adam_m, adam_v; adam_v, the
// second moment, also >= 0), naming the offset and the tensor it falls in. Grads pass unchecked
// (step refuses a non-finite gradient).
void check_buffer_values(const std::vector<TensorInfo>& layout, BufferKind k, size_t offset, size_t n, const float* src);
// Refuses non-finite parameters: `host` holds tensor t's values; names the tensor and the index.
void check_tensor_finite(const TensorInfo& t, const float* host, const char* call);
const char* buffer_name(BufferKind k);
// Checks that [offset, offset + n) lies inside a flat buffer of `total` values.
void check_buffer_range(size_t offset, size_t n, size_t total);
// Checks the spans and returns how many positions they cover.
int64_t check_spans(const int32_t* spans, int B, int T);
// Checks the prompts and options and returns the longest prompt's length.
int check_generate(const ModelConfig& cfg, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o);
// The divergence rule over the argmax of each span position (argmax [B*T], -1 outside spans).
DivergenceResult score_divergence(const int32_t* tokens, const int32_t* argmax, int B, int T, const int32_t* spans, const DivergenceConfig& cfg);
// "row b, position t" for flat index i of a [B, T] array.
std::string where(int T, int64_t i);

// ---- choosing a backend (src/factory.cc) ----

struct CudaStatus {
  bool available = false;
  std::string reason;  // why not, when not available
  std::string device;  // the GPU's name when available
};
CudaStatus cuda_status();
// The precision of new CUDA models' matmuls: S2S_CUDA_PRECISION ('bf16' or 'fp32'), else bf16;
// any other value is refused. Read on every call (builds without CUDA answer the same).
Precision cuda_default_precision();

// device: "cpu", "cuda", or "auto" (CUDA when available, else the CPU); the architecture is
// cfg.arch's.
std::shared_ptr<ModelBackend> make_backend(const ModelConfig& cfg, const std::string& device);

}  // namespace s2s

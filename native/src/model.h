// The transformer runtime, written once and instantiated per device and architecture: the flat
// parameter buffer (with gradients and AdamW moments of the same layout), the one forward and
// backward that serve every trainer (the architecture's body, then the fused LM head and the value
// head), AdamW over the layout, KV-cache generation, and greedy match / divergence scoring.
//
// Arch is an architecture descriptor (src/arch/gpt2.h); D a device's op set (src/cpu/ops.h,
// src/cuda/ops.cuh). Definitions are in model_impl.h, included only where a device instantiates
// them (src/cpu/model_cpu.cc, src/cuda/model_cuda.cu).
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"

namespace s2s {

template <class Arch, class D>
class Transformer final : public ModelBackend {
 public:
  template <typename T>
  using Array = typename D::template Array<T>;
  using Params = typename Arch::Params;

  explicit Transformer(const ModelConfig& cfg);

  const char* device() const override { return D::kTraits.name; }
  const char* matmul_precision() const override { return ops_.precision_label(); }
  const ModelConfig& config() const override { return cfg_; }
  const std::vector<TensorInfo>& layout() const override { return layout_; }
  size_t num_params() const override { return num_params_; }
  double flops_per_token(int T) const override { return Arch::flops_per_token(cfg_, T); }

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
  void allreduce_grads(ProcessGroup& g, float scale) override;
  void broadcast_params(ProcessGroup& g, int root, bool optimizer) override;

  // The device's precision for matmuls (bf16 inputs with fp32 accumulation, or fp32).
  Precision precision() const { return ops_.precision(); }
  // A forward's activations (what attention kept, the copies the backward reads) are the old
  // setting's: a backward needs a forward at the new one.
  void set_precision(Precision p) {
    ops_.set_precision(p);
    invalidate_activations();
  }
  // The device's op set (the C++ tests read its counters).
  const D& ops() const { return ops_; }

  // A flat buffer in the device's memory for direct use (the C++ tests): null while not
  // allocated, unless `allocate`, which allocates it zeroed. Parameters given out for writing
  // discard the last activations.
  float* buffer(BufferKind k, bool allocate);

  Array<float> params, grads, adam_m, adam_v;
  int64_t adam_step = 0;  // number of optimizer steps taken (for bias correction)

 private:
  Array<float>& buffer_of(BufferKind k);
  // Runs a collective over buffer k in host memory: in place where the device's memory is the
  // host's, else through a host copy in slices of kCollectiveSlice values.
  template <class F>
  void on_host(BufferKind k, bool write_back, F&& collective);
  // The architecture's named view of `b`, recomputed only when its memory moved.
  const Params& view(Array<float>& b);
  void invalidate_activations() {
    acts_valid_ = false;
    ops_.drop_operands();
  }
  // The architecture's forward over `tokens` [B, T] (host memory) into acts_.
  void run_body(const int32_t* tokens, int B, int T);
  // logits [B, V] = hidden [B, C] @ lm_head^T
  void lm_logits(const float* hidden, int B, float* logits);
  // The divergence pass behind greedy_match() and divergence(): argmax, match and the rule.
  DivergenceResult score(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg,
                         const char* call);
  // Refuses parameters that contain NaN or Inf (naming the first bad tensor and index) before
  // `call` reads them; checked once after each change of the parameters.
  void check_params(const char* call);
  // The parameters are about to change or just did: activations, the finiteness check and the
  // device's derived copies of the weights (the CPU's bf16 cache) are stale.
  void params_changed();

  ModelConfig cfg_;
  std::vector<TensorInfo> layout_;
  size_t num_params_ = 0;
  D ops_;
  struct CachedView {
    const float* base = nullptr;
    Params p;
  } pview_, gview_;

  typename Arch::template Tables<D> tables_;
  typename Arch::template Acts<D> acts_;
  typename Arch::template Grads<D> gacts_;
  typename Arch::template Decode<D> dec_;
  // The runtime's own per-forward buffers: the heads' inputs and outputs.
  struct Head {
    Array<float> logits, chunk, lse, logprob, values, entropy, dlogprob, dvalue;
    Array<int32_t> tokens, targets;
  } head_;
  int B_ = 0, T_ = 0;
  // The gradients are known to hold zeros (allocated, zero_grad, or read by AdamW, which zeroes
  // them): the next backward's weight products write their gradients rather than add to them. Any
  // backward, and any pointer to the gradients given out for writing, clears it.
  bool grads_zero_ = false;
  bool logits_stored_ = false;    // head_.logits holds every row's logits (within the memory budget)
  bool logits_consumed_ = false;  // backward turned them into dlogits; a second backward recomputes
  bool head_ran_ = false;         // the last forward ran the LM head (backward may take dlogprob)
  bool acts_valid_ = false;
  float last_inv_temp_ = 1.0f;

  struct Generation {
    Array<float> kcache, vcache, logits, logprob, u;
    Array<int32_t> cur, pos, len, token;
    Array<int64_t> rows;
    Array<uint8_t> done;
  } gen_;
  struct Scoring {
    Array<float> rows, logits, scores;
    Array<int32_t> row, pos, spans, argmax, first, counters;
    Array<int64_t> idx;
  } sc_;
};

}  // namespace s2s

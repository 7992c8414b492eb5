// The transformer runtime's definitions (see model.h). Written once: every step below runs the
// same on each device, through its op set; what a device does differently is in its op struct's
// DeviceTraits (src/ops/op_set.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "comm/process_group.h"
#include "cpu/sampling.h"  // the host sampler (sample_token), used by every device for top-k / top-p
#include "arch/gpt2.h"
#include "arch/llama.h"
#include "model.h"

namespace s2s {

namespace detail {
// Keep a forward's logits for backward while they fit S2S_LOGITS_MB (else the device's default) MiB.
inline size_t logits_budget_floats(size_t default_mb) {
  size_t mb = default_mb;
  if (const char* env = std::getenv("S2S_LOGITS_MB")) mb = (size_t)std::strtoull(env, nullptr, 10);
  return mb * (1u << 20) / sizeof(float);
}

// Refuses non-finite parameters before `call` reads them. The device's norm (a sum of squares in
// double) says whether there is anything to find; only then are the tensors copied to the host
// and scanned for the first bad value, named by tensor and index.
template <class D, class A>
void check_params_finite(D& ops, const A& params, size_t n, const std::vector<TensorInfo>& layout, const char* call) {
  if (std::isfinite(ops.grad_norm(params.data(), n))) return;
  std::vector<float> host;
  for (const TensorInfo& t : layout) {
    host.resize(t.numel);
    params.download(host.data(), t.numel, t.offset);
    check_tensor_finite(t, host.data(), call);
  }
}
}  // namespace detail

template <class Arch, class D>
Transformer<Arch, D>::Transformer(const ModelConfig& cfg) : cfg_(cfg.resolved()) {
  Arch::validate(cfg_);
  layout_ = Arch::layout(cfg_, &num_params_);
  params.allocate_zeroed(num_params_);
  params_changed();
  tables_.build(cfg_);
}

template <class Arch, class D>
typename D::template Array<float>& Transformer<Arch, D>::buffer_of(BufferKind k) {
  return k == BufferKind::params ? params : k == BufferKind::grads ? grads : k == BufferKind::adam_m ? adam_m : adam_v;
}

template <class Arch, class D>
float* Transformer<Arch, D>::buffer(BufferKind k, bool allocate) {
  Array<float>& b = buffer_of(k);
  if (b.size() != num_params_) {
    if (!allocate) return nullptr;
    b.allocate_zeroed(num_params_);
  }
  // gradients given out for writing (write_buffer, a collective, a test) are not known to be zero
  if (k == BufferKind::grads && allocate) grads_zero_ = false;
  // A writable pointer to the parameters: whatever is written next makes what was derived stale.
  if (k == BufferKind::params && allocate) params_changed();
  return b.data();
}

template <class Arch, class D>
void Transformer<Arch, D>::params_changed() {
  invalidate_activations();
  params_checked_ = false;
  ops_.weights_changed(params.data(), num_params_);
}

template <class Arch, class D>
const typename Arch::Params& Transformer<Arch, D>::view(Array<float>& b) {
  CachedView& c = &b == &params ? pview_ : gview_;
  if (c.base != b.data()) {
    c.p = Arch::view(cfg_, layout_, b.data());
    c.base = b.data();
  }
  return c.p;
}

template <class Arch, class D>
void Transformer<Arch, D>::init_weights(uint64_t seed) {
  if constexpr (D::kTraits.host_memory) {
    Arch::init(params.data(), cfg_, layout_, seed);
  } else {
    std::vector<float> host(num_params_);
    Arch::init(host.data(), cfg_, layout_, seed);
    params.upload(host.data(), num_params_);
  }
  adam_m.reset();
  adam_v.reset();
  adam_step = 0;
  params_changed();
}

template <class Arch, class D>
void Transformer<Arch, D>::check_params(const char* call) {
  if (params_checked_) return;
  detail::check_params_finite(ops_, params, num_params_, layout_, call);
  params_checked_ = true;
}

template <class Arch, class D>
void Transformer<Arch, D>::run_body(const int32_t* tokens, int B, int T) {
  const int64_t N = (int64_t)B * T;
  acts_.reserve(ops_, cfg_, B, T);
  head_.tokens.reserve(N);
  head_.tokens.upload(tokens, N);
  B_ = B;
  T_ = T;
  Arch::forward(ops_, cfg_, view(params), tables_, acts_, head_.tokens.data(), B, T);
}

template <class Arch, class D>
void Transformer<Arch, D>::lm_logits(const float* hidden, int B, float* logits) {
  ops_.gemm(false, true, B, cfg_.vocab_size, cfg_.channels, hidden, view(params).lm_head, logits, 1.0f, false);
}

template <class Arch, class D>
ForwardResult Transformer<Arch, D>::forward(const int32_t* tokens, const int32_t* targets, int B, int T,
                                            const ForwardOptions& opts) {
  check_batch(cfg_, tokens, B, T);
  check_targets(cfg_, targets, B, T);
  check_forward_options(cfg_, opts);
  check_params("forward");
  const int64_t N = (int64_t)B * T, V = cfg_.vocab_size;
  const int C = cfg_.channels;
  invalidate_activations();
  // the matmuls' converted operands are kept for the backward this forward's activations serve
  struct Keep {
    D& ops;
    explicit Keep(D& o) : ops(o) { ops.keep_operands(true); }
    ~Keep() { ops.keep_operands(false); }
  } keep(ops_);
  run_body(tokens, B, T);
  Head& h = head_;
  h.targets.reserve(N);
  if (targets)
    h.targets.upload(targets, N);
  else
    h.targets.fill_ones(N);  // -1: no target anywhere
  last_inv_temp_ = 1.0f / opts.temperature;

  ForwardResult r;
  head_ran_ = opts.logprob;
  if (opts.logprob) {
    // Only a forward that may be followed by backward keeps its logits, and only within the budget.
    static const size_t budget = detail::logits_budget_floats(D::kTraits.logits_budget_mb);
    logits_stored_ = (size_t)(N * V) <= budget;
    if (logits_stored_)
      h.logits.reserve(N * V);
    else
      h.chunk.reserve(D::kTraits.classifier_chunk * V);
    for (auto* b : {&h.lse, &h.logprob, &h.entropy}) b->reserve(N);
    ClassifierArgs ca{acts_.lnf.data(), view(params).lm_head, h.targets.data(), N, C, (int)V, last_inv_temp_,
                      logits_stored_ ? h.logits.data() : nullptr, h.chunk.data(), D::kTraits.classifier_chunk,
                      ops_.precision()};
    ops_.classifier_forward(ca, h.logprob.data(), opts.entropy ? h.entropy.data() : nullptr, h.lse.data());
    logits_consumed_ = false;
    r.logprob.resize(N);
    h.logprob.download(r.logprob.data(), N);
    if (opts.entropy) {
      r.entropy.resize(N);
      h.entropy.download(r.entropy.data(), N);
    }
  }
  if (opts.values) {
    h.values.reserve(N);
    ops_.value_head_forward(h.values.data(), acts_.lnf.data(), view(params).score, N, C);
    r.values.resize(N);
    h.values.download(r.values.data(), N);
  }
  for (int64_t i = 0; i < N; i++) {
    if (opts.logprob && !std::isfinite(r.logprob[i]))
      throw Error("forward produced a non-finite log-prob at " + where(T, i) +
                  ": the logits overflowed (the parameters are finite but too large)");
    if (opts.values && !std::isfinite(r.values[i]))
      throw Error("forward produced a non-finite value at " + where(T, i) +
                  ": the activations overflowed (the parameters are finite but too large)");
  }
  acts_valid_ = true;
  return r;
}

template <class Arch, class D>
size_t Transformer<Arch, D>::last_batch_size() const {
  if (!acts_valid_)
    throw Error("backward() needs the activations of a forward() call on this model: call forward() first "
                "(generate, greedyMatch, step and parameter changes discard them)");
  return (size_t)B_ * T_;
}

template <class Arch, class D>
void Transformer<Arch, D>::backward(const float* dlogprob, const float* dvalue) {
  last_batch_size();
  check_backward_inputs(cfg_, dlogprob, dvalue, B_, T_, head_ran_);
  const int B = B_, T = T_, C = cfg_.channels, V = cfg_.vocab_size;
  const int64_t N = (int64_t)B * T;
  if (grads.size() != num_params_) {
    grads.allocate_zeroed(num_params_);
    grads_zero_ = true;
  }
  // Zeroed gradients are written rather than added to; from here on they are not known to be zero
  // (whatever becomes of this call).
  const bool accumulate = !grads_zero_;
  grads_zero_ = false;
  const Params& p = view(params);
  const Params& g = view(grads);
  Head& h = head_;
  gacts_.reserve(ops_, cfg_, B, T);

  // The LM head and the value head -> the gradient of the final hidden states (dlnf).
  float* dlnf = gacts_.dlnf.data();
  if (dlogprob) {
    h.dlogprob.reserve(N);
    h.dlogprob.upload(dlogprob, N);
    bool keep = logits_stored_ && !logits_consumed_;
    if (!keep) h.chunk.reserve(D::kTraits.classifier_chunk * V);
    ClassifierArgs ca{acts_.lnf.data(), p.lm_head, h.targets.data(), N, C, V, last_inv_temp_,
                      keep ? h.logits.data() : nullptr, h.chunk.data(), D::kTraits.classifier_chunk, ops_.precision()};
    ops_.classifier_backward(ca, dlnf, g.lm_head, h.dlogprob.data(), h.lse.data(), accumulate);
    logits_consumed_ = logits_consumed_ || keep;  // the stored logits now hold dlogits
  } else {
    gacts_.dlnf.zero(N * C);
  }
  if (dvalue) {
    h.dvalue.reserve(N);
    h.dvalue.upload(dvalue, N);
    ops_.value_head_backward(dlnf, g.score, h.dvalue.data(), acts_.lnf.data(), p.score, N, C);
  }
  Arch::backward(ops_, cfg_, p, g, tables_, acts_, gacts_, h.tokens.data(), B, T, accumulate);
  ops_.synchronize();
}

template <class Arch, class D>
void Transformer<Arch, D>::zero_grad() {
  if (grads.size() != num_params_) return;
  grads.zero();
  grads_zero_ = true;
}

template <class Arch, class D>
double Transformer<Arch, D>::step(const AdamWConfig& o) {
  check_adamw(o);
  float* g = buffer(BufferKind::grads, true);
  invalidate_activations();
  double norm = ops_.grad_norm(g, num_params_);
  if (!std::isfinite(norm)) {
    zero_grad();
    throw Error("step skipped: the gradient norm is not finite (" + std::to_string(norm) +
                "); parameters and optimizer state are unchanged and the gradients were zeroed");
  }
  float scale = 1.0f;
  if (o.max_grad_norm > 0 && norm > o.max_grad_norm) scale = (float)(o.max_grad_norm / (norm + 1e-6));
  // The second moment holds squared gradients in float: an element above sqrt(FLT_MAX) would make
  // it Inf, and AdamW would then freeze that parameter for good. No element exceeds the norm.
  if (norm * scale > 1.8e19) {
    zero_grad();
    throw Error("step skipped: the gradient norm (" + std::to_string(norm) +
                ") is too large for AdamW's second moment in float (its squares overflow); parameters and "
                "optimizer state are unchanged and the gradients were zeroed (maxGradNorm clips it)");
  }
  float* m = buffer(BufferKind::adam_m, true);
  float* v = buffer(BufferKind::adam_v, true);
  adam_step++;
  params_changed();
  ops_.take_updates_finite();
  // AdamW zeroes the gradients as it reads them (every tensor is in the layout, so all of them)
  for (const TensorInfo& t : layout_)
    ops_.adamw_update(params.data() + t.offset, g + t.offset, m + t.offset, v + t.offset, t.numel, o.lr, o.beta1,
                      o.beta2, o.eps, t.decay ? o.weight_decay : 0.0f, adam_step, scale);
  ops_.synchronize();
  grads_zero_ = true;
  // a device whose update saw every new parameter finite spares the next call the scan
  if (ops_.take_updates_finite()) params_checked_ = true;
  return norm;
}

template <class Arch, class D>
GenerateResult Transformer<Arch, D>::generate(const std::vector<std::vector<int32_t>>& prompts,
                                              const GenerateOptions& o) {
  const int B = (int)prompts.size();
  const int V = cfg_.vocab_size, C = cfg_.channels;
  const int P = check_generate(cfg_, prompts, o);
  const SamplingConfig& sc = o.sampling;
  check_params("generate");
  invalidate_activations();

  // Prefill: one batched forward over the right-padded prompts. Causal attention means padding
  // after a prompt never influences its positions; decoding overwrites the padded cache slots.
  std::vector<int32_t> padded((size_t)B * P, 0), len(B);
  for (int b = 0; b < B; b++) {
    std::copy(prompts[b].begin(), prompts[b].end(), padded.begin() + (size_t)b * P);
    len[b] = (int32_t)prompts[b].size();
  }
  run_body(padded.data(), B, P);

  const int maxT = P + o.max_new_tokens;
  const int64_t cache = (int64_t)cfg_.num_layers * B * maxT * Arch::kv_width(cfg_);
  Generation& d = gen_;
  d.kcache.reserve(cache);
  d.vcache.reserve(cache);
  dec_.reserve(cfg_, B);
  d.logits.reserve((int64_t)B * V);
  for (auto* b : {&d.logprob, &d.u}) b->reserve(B);
  for (auto* b : {&d.cur, &d.pos, &d.len, &d.token}) b->reserve(B);
  d.rows.reserve(B);
  d.done.reserve(B);
  d.len.upload(len.data(), B);
  Arch::prefill_cache(ops_, cfg_, acts_, d.kcache.data(), d.vcache.data(), d.len.data(), B, P, maxT);
  // Logits for each row's first new token come from its last prompt position.
  std::vector<int64_t> last(B);
  for (int b = 0; b < B; b++) last[b] = (int64_t)b * P + len[b] - 1;
  d.rows.upload(last.data(), B);
  ops_.gather_rows(dec_.out.data(), acts_.lnf.data(), d.rows.data(), B, C);
  lm_logits(dec_.out.data(), B, d.logits.data());

  GenerateResult r;
  r.B = B;
  r.max_new = o.max_new_tokens;
  r.tokens.assign((size_t)B * o.max_new_tokens, -1);
  r.logprobs.assign((size_t)B * o.max_new_tokens, 0.0f);
  r.lengths.assign(B, 0);
  r.eos.assign(B, 0);
  std::vector<Rng> rngs;
  for (int b = 0; b < B; b++) rngs.emplace_back(o.seed, o.first_row + (uint64_t)b);
  std::vector<uint8_t> done(B, 0);
  std::vector<int32_t> cur(B), pos(B);
  std::vector<float> u(B, 0.0f), lp(B);
  const bool greedy = sc.temperature <= 0.0f;
  // Top-k and top-p sort the vocabulary: those rows are picked on the host.
  const bool on_device = D::kTraits.samples_on_device && (greedy || ((sc.top_k <= 0 || sc.top_k >= V) && sc.top_p >= 1.0f));
  std::vector<float> host_logits(on_device || D::kTraits.host_memory ? 0 : (size_t)B * V);
  for (int s = 0; s < o.max_new_tokens; s++) {
    if constexpr (D::kTraits.samples_on_device) {
      if (on_device) {
        if (!greedy)
          for (int b = 0; b < B; b++) u[b] = done[b] ? 0.0f : (float)rngs[b].uniform();
        d.u.upload(u.data(), B);
        d.done.upload(done.data(), B);
        ops_.sample_rows(d.token.data(), d.logprob.data(), d.logits.data(), d.u.data(), d.done.data(), B, V,
                         sc.temperature);
        d.token.download(cur.data(), B);  // rows already done keep their last token
        d.logprob.download(lp.data(), B);
      }
    }
    if (!on_device) {
      const float* logits = d.logits.data();
      if constexpr (!D::kTraits.host_memory) {
        d.logits.download(host_logits.data(), (size_t)B * V);
        logits = host_logits.data();
      }
      sample_tokens(logits, B, V, sc, rngs.data(), done.data(), cur.data(), lp.data());
    }
    for (int b = 0; b < B; b++) {
      if (done[b]) continue;
      // Finite parameters can still overflow (weights of 1e30, say): the logits are then Inf or
      // NaN, and what was sampled from them means nothing.
      if (!std::isfinite(lp[b]))
        throw Error("generate: the log-prob of row " + std::to_string(b) + "'s token " + std::to_string(s) +
                    " is not finite: the model's logits overflowed (its parameters are finite but too large)");
      r.tokens[(size_t)b * o.max_new_tokens + s] = cur[b];
      r.logprobs[(size_t)b * o.max_new_tokens + s] = lp[b];
      r.lengths[b]++;
      if (std::find(o.eos.begin(), o.eos.end(), cur[b]) != o.eos.end()) {
        done[b] = 1;
        r.eos[b] = 1;
      }
    }
    bool all_done = std::all_of(done.begin(), done.end(), [](uint8_t x) { return x != 0; });
    if (all_done || s == o.max_new_tokens - 1) break;
    // Finished rows keep stepping with their last token; their outputs are ignored.
    for (int b = 0; b < B; b++) pos[b] = len[b] + s;
    d.cur.upload(cur.data(), B);
    d.pos.upload(pos.data(), B);
    Arch::decode(ops_, cfg_, view(params), tables_, dec_, d.kcache.data(), d.vcache.data(), d.cur.data(), d.pos.data(), B, maxT);
    lm_logits(dec_.out.data(), B, d.logits.data());
  }
  return r;
}

template <class Arch, class D>
DivergenceResult Transformer<Arch, D>::score(const int32_t* tokens, int B, int T, const int32_t* spans,
                                             const DivergenceConfig& cfg, const char* call) {
  check_batch(cfg_, tokens, B, T);
  const int64_t M = check_spans(spans, B, T);
  check_params(call);
  invalidate_activations();
  const int64_t N = (int64_t)B * T;
  const int C = cfg_.channels, V = cfg_.vocab_size;
  run_body(tokens, B, T);

  // Row m of the logits predicts position pos[m] of batch row row[m] from the hidden state before it.
  std::vector<int32_t> row, pos;
  std::vector<int64_t> idx;
  row.reserve(M);
  pos.reserve(M);
  idx.reserve(M);
  for (int b = 0; b < B; b++)
    for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++) {
      row.push_back(b);
      pos.push_back(t);
      idx.push_back((int64_t)b * T + t - 1);
    }
  Scoring& s = sc_;
  for (auto* a : {&s.row, &s.pos}) a->reserve(M);
  s.idx.reserve(M);
  s.spans.reserve(2 * (size_t)B);
  s.argmax.reserve(N);
  s.scores.reserve(N);
  s.first.reserve(B);
  s.counters.reserve(B);
  s.row.upload(row.data(), M);
  s.pos.upload(pos.data(), M);
  s.idx.upload(idx.data(), M);
  s.spans.upload(spans, 2 * (size_t)B);
  s.argmax.fill_ones(N);
  s.scores.zero(N);
  s.first.fill_ones(B);
  s.counters.zero(B);
  const int64_t chunk = std::min<int64_t>(std::max<int64_t>(M, 1), D::kTraits.score_chunk);
  s.rows.reserve(chunk * C);
  s.logits.reserve(chunk * V);
  const float* lm_head = view(params).lm_head;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    int64_t rows = std::min(chunk, M - r0);
    ops_.gather_rows(s.rows.data(), acts_.lnf.data(), s.idx.data() + r0, rows, C);
    ops_.gemm(false, true, rows, V, C, s.rows.data(), lm_head, s.logits.data(), 1.0f, false);
    ops_.divergence_score(s.logits.data(), rows, V, s.row.data() + r0, s.pos.data() + r0, head_.tokens.data(), T,
                          s.spans.data(), cfg, s.argmax.data(),
                          s.scores.data(), s.first.data(), s.counters.data());
  }
  DivergenceResult r;
  r.scores.resize(N);
  r.argmax.resize(N);
  r.first_divergence.resize(B);
  s.scores.download(r.scores.data(), N);
  s.argmax.download(r.argmax.data(), N);
  s.first.download(r.first_divergence.data(), B);
  return r;
}

template <class Arch, class D>
GreedyMatchResult Transformer<Arch, D>::greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans) {
  DivergenceResult d = score(tokens, B, T, spans, DivergenceConfig{}, "greedyMatch");
  GreedyMatchResult r;
  r.argmax = std::move(d.argmax);
  r.match.assign((size_t)B * T, 0);
  for (size_t i = 0; i < r.match.size(); i++) r.match[i] = r.argmax[i] >= 0 && r.argmax[i] == tokens[i] ? 1 : 0;
  return r;
}

template <class Arch, class D>
DivergenceResult Transformer<Arch, D>::divergence(const int32_t* tokens, int B, int T, const int32_t* spans,
                                                  const DivergenceConfig& cfg) {
  return score(tokens, B, T, spans, cfg, "divergence");
}

template <class Arch, class D>
void Transformer<Arch, D>::read_buffer(BufferKind k, size_t offset, size_t n, float* dst) {
  check_buffer_range(offset, n, num_params_);
  Array<float>& b = buffer_of(k);
  if (b.size() == num_params_)
    b.download(dst, n, offset);
  else
    std::memset(dst, 0, n * sizeof(float));
}

// ---- data parallelism ----

template <class Arch, class D>
template <class F>
void Transformer<Arch, D>::on_host(BufferKind k, bool write_back, F&& collective) {
  float* b = buffer(k, true);
  if constexpr (D::kTraits.host_memory) {
    collective(b, num_params_);
  } else {
    // 64 MB slices: the staging copy stays small next to the model.
    constexpr size_t kSlice = (size_t)16 << 20;
    std::vector<float> host(std::min(kSlice, num_params_));
    for (size_t at = 0; at < num_params_; at += kSlice) {
      size_t n = std::min(kSlice, num_params_ - at);
      buffer_of(k).download(host.data(), n, at);
      collective(host.data(), n);
      if (write_back) buffer_of(k).upload(host.data(), n, at);
    }
  }
}

template <class Arch, class D>
void Transformer<Arch, D>::allreduce_grads(ProcessGroup& g, float scale) {
  on_host(BufferKind::grads, true, [&](float* x, size_t n) {
    g.allreduce_sum(x, n);
    if (scale != 1.0f)
      for (size_t i = 0; i < n; i++) x[i] *= scale;
  });
}

template <class Arch, class D>
void Transformer<Arch, D>::broadcast_params(ProcessGroup& g, int root, bool optimizer) {
  params_changed();
  on_host(BufferKind::params, true, [&](float* x, size_t n) { g.broadcast(x, n * sizeof(float), root); });
  if (!optimizer) return;
  on_host(BufferKind::adam_m, true, [&](float* x, size_t n) { g.broadcast(x, n * sizeof(float), root); });
  on_host(BufferKind::adam_v, true, [&](float* x, size_t n) { g.broadcast(x, n * sizeof(float), root); });
  g.broadcast(&adam_step, sizeof adam_step, root);
}

template <class Arch, class D>
void Transformer<Arch, D>::write_buffer(BufferKind k, size_t offset, size_t n, const float* src) {
  check_buffer_range(offset, n, num_params_);
  check_buffer_values(layout_, k, offset, n, src);
  buffer(k, true);
  buffer_of(k).upload(src, n, offset);
}

}  // namespace s2s

namespace s2s {

// A model of cfg.arch's architecture on device D: the one list of architectures.
template <class D>
std::shared_ptr<ModelBackend> make_model(const ModelConfig& cfg) {
  if (cfg.arch == arch::GPT2::kName) return std::make_shared<Transformer<arch::GPT2, D>>(cfg);
  if (cfg.arch == arch::Llama::kName) return std::make_shared<Transformer<arch::Llama, D>>(cfg);
  throw Error("unknown architecture '" + cfg.arch + "' (the engine has: gpt2, llama)");
}

}  // namespace s2s

// The GPT: parameter layout, forward/backward composition, AdamW, generation and greedy match.
#include "model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/classifier.h"
#include "cpu/embedding.h"
#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
#include "cpu/residual.h"
#include "cpu/value_head.h"

namespace s2s {

namespace {

constexpr int64_t kClassifierChunk = 256;  // rows of logits computed at once when not all are kept

// Keep all logits of a forward (so backward needs no second LM-head GEMM) while they fit this
// many MiB; S2S_LOGITS_MB overrides it.
size_t logits_budget_floats() {
  static size_t budget = [] {
    size_t mb = 1024;
    if (const char* env = std::getenv("S2S_LOGITS_MB")) mb = (size_t)std::strtoull(env, nullptr, 10);
    return mb * (1u << 20) / sizeof(float);
  }();
  return budget;
}

}  // namespace

GPT::GPT(const GPTConfig& cfg) : cfg_(cfg) {
  validate_config(cfg);
  layout_ = make_layout(cfg, &num_params_);
  params.resize_zeroed(num_params_);
}

void GPT::init_weights(uint64_t seed) {
  init_params(params.data(), cfg_, layout_, seed);
  adam_m.resize(0);
  adam_v.resize(0);
  adam_step = 0;
  invalidate_activations();
}

void GPT::ensure_activations(int B, int T) {
  const int64_t N = (int64_t)B * T, C = cfg_.channels, L = cfg_.num_layers, NH = cfg_.num_heads;
  const int64_t V = cfg_.vocab_size;
  Acts& a = acts_;
  a.encoded.reserve(N * C);
  a.ln1.reserve(L * N * C);
  a.ln1_mean.reserve(L * N);
  a.ln1_rstd.reserve(L * N);
  a.qkv.reserve(L * N * 3 * C);
  a.atty.reserve(L * N * C);
  a.att.reserve(L * B * NH * T * T);
  a.res2.reserve(L * N * C);
  a.ln2.reserve(L * N * C);
  a.ln2_mean.reserve(L * N);
  a.ln2_rstd.reserve(L * N);
  a.fch.reserve(L * N * 4 * C);
  a.fch_gelu.reserve(L * N * 4 * C);
  a.res3.reserve(L * N * C);
  a.lnf.reserve(N * C);
  a.lnf_mean.reserve(N);
  a.lnf_rstd.reserve(N);
  a.lse.reserve(N);
  a.scratch_c.reserve(N * C);
  a.logits_chunk.reserve(kClassifierChunk * V);
  B_ = B;
  T_ = T;
}

void GPT::transformer_forward(const int32_t* tokens, int B, int T) {
  ensure_activations(B, T);
  const int64_t N = (int64_t)B * T;
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers;
  ParamView p = view(params.data());
  Acts& a = acts_;
  embedding_forward(a.encoded.data(), tokens, p.wte, p.wpe, B, T, C);
  for (int l = 0; l < L; l++) {
    const LayerParams& w = p.layers[l];
    const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
    float* ln1 = a.ln1.data() + l * N * C;
    float* ln1_mean = a.ln1_mean.data() + l * N;
    float* ln1_rstd = a.ln1_rstd.data() + l * N;
    float* qkv = a.qkv.data() + l * N * 3 * C;
    float* atty = a.atty.data() + l * N * C;
    float* att = a.att.data() + (int64_t)l * B * NH * T * T;
    float* res2 = a.res2.data() + l * N * C;
    float* ln2 = a.ln2.data() + l * N * C;
    float* ln2_mean = a.ln2_mean.data() + l * N;
    float* ln2_rstd = a.ln2_rstd.data() + l * N;
    float* fch = a.fch.data() + l * N * 4 * C;
    float* fch_gelu = a.fch_gelu.data() + l * N * 4 * C;
    float* res3 = a.res3.data() + l * N * C;
    float* tmp = a.scratch_c.data();

    layernorm_forward(ln1, ln1_mean, ln1_rstd, res_in, w.ln1w, w.ln1b, N, C);
    matmul_forward(qkv, ln1, w.qkvw, w.qkvb, N, C, 3 * C);
    attention_forward(atty, att, qkv, B, T, C, NH);
    matmul_forward(tmp, atty, w.attprojw, w.attprojb, N, C, C);
    residual_forward(res2, res_in, tmp, N * C);
    layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, w.ln2w, w.ln2b, N, C);
    matmul_forward(fch, ln2, w.fcw, w.fcb, N, C, 4 * C);
    gelu_forward(fch_gelu, fch, N * 4 * C);
    matmul_forward(tmp, fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
    residual_forward(res3, res2, tmp, N * C);
  }
  layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), a.res3.data() + (L - 1) * N * C, p.lnfw,
                    p.lnfb, N, C);
}

ForwardResult GPT::forward(const int32_t* tokens, const int32_t* targets, int B, int T, const ForwardOptions& opts) {
  check_batch(cfg_, tokens, B, T);
  check_targets(cfg_, targets, B, T);
  check_forward_options(cfg_, opts);
  const int64_t N = (int64_t)B * T;

  invalidate_activations();
  transformer_forward(tokens, B, T);
  last_tokens_.assign(tokens, tokens + N);
  if (targets)
    last_targets_.assign(targets, targets + N);
  else
    last_targets_.assign(N, -1);
  last_inv_temp_ = 1.0f / opts.temperature;

  ForwardResult r;
  head_ran_ = opts.logprob;
  if (opts.logprob) {
    // Only a forward that may be followed by backward keeps its logits, and only within the budget.
    logits_stored_ = (size_t)(N * cfg_.vocab_size) <= logits_budget_floats();
    if (logits_stored_) acts_.logits.reserve(N * cfg_.vocab_size);
    r.logprob.resize(N);
    if (opts.entropy) r.entropy.resize(N);
    ClassifierArgs ca{acts_.lnf.data(), params.data() + layout_[0].offset, last_targets_.data(), N,
                      cfg_.channels, cfg_.vocab_size, last_inv_temp_,
                      logits_stored_ ? acts_.logits.data() : nullptr, acts_.logits_chunk.data(), kClassifierChunk};
    classifier_forward(ca, r.logprob.data(), opts.entropy ? r.entropy.data() : nullptr, acts_.lse.data());
    logits_consumed_ = false;
  }
  if (opts.values) {
    r.values.resize(N);
    value_head_forward(r.values.data(), acts_.lnf.data(), view(params.data()).score, N, cfg_.channels);
  }
  for (int64_t i = 0; i < N; i++) {
    if (opts.logprob && !std::isfinite(r.logprob[i]))
      throw Error("forward produced a non-finite log-prob at " + where(T, i) +
                  ": the parameters contain NaN or Inf, or the logits overflowed");
    if (opts.values && !std::isfinite(r.values[i]))
      throw Error("forward produced a non-finite value at " + where(T, i) +
                  ": the parameters contain NaN or Inf");
  }
  acts_valid_ = true;
  return r;
}

float* GPT::buffer(BufferKind k, bool allocate) {
  Buffer& b = k == BufferKind::params ? params : k == BufferKind::grads ? grads : k == BufferKind::adam_m ? adam_m : adam_v;
  if (k == BufferKind::params && allocate) invalidate_activations();
  if (b.size() != num_params_) {
    if (!allocate) return nullptr;
    b.resize_zeroed(num_params_);
  }
  return b.data();
}

void GPT::read_buffer(BufferKind k, size_t offset, size_t n, float* dst) {
  check_buffer_range(offset, n, num_params_);
  const float* src = buffer(k, false);
  if (src)
    std::memcpy(dst, src + offset, n * sizeof(float));
  else
    std::memset(dst, 0, n * sizeof(float));
}

void GPT::write_buffer(BufferKind k, size_t offset, size_t n, const float* src) {
  check_buffer_range(offset, n, num_params_);
  std::memcpy(buffer(k, true) + offset, src, n * sizeof(float));
}

size_t GPT::last_batch_size() const {
  if (!acts_valid_)
    throw Error("backward() needs the activations of a forward() call on this model: call forward() first "
                "(generate, greedyMatch, step and parameter changes discard them)");
  return (size_t)B_ * T_;
}

void GPT::backward(const float* dlogprob, const float* dvalue) {
  last_batch_size();
  check_backward_inputs(cfg_, dlogprob, dvalue, B_, T_, head_ran_);
  const int B = B_, T = T_;
  const int64_t N = (int64_t)B * T;
  buffer(BufferKind::grads, true);
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers;
  ParamView p = view(params.data());
  ParamView g = view(grads.data());
  Acts& a = acts_;
  GradActs& d = gacts_;
  d.dres.reserve(N * C);
  d.dbuf_c.reserve(N * C);
  d.dbuf_4c.reserve(N * 4 * C);
  d.dqkv.reserve(N * 3 * C);
  d.datt.reserve((int64_t)B * NH * T * T);

  // LM head and value head -> gradient of the final LayerNorm's output (dbuf_c).
  if (dlogprob) {
    bool keep = logits_stored_ && !logits_consumed_;
    ClassifierArgs ca{a.lnf.data(), p.wte, last_targets_.data(), N, C, cfg_.vocab_size, last_inv_temp_,
                      keep ? a.logits.data() : nullptr, a.logits_chunk.data(), kClassifierChunk};
    classifier_backward(ca, d.dbuf_c.data(), g.wte, dlogprob, a.lse.data());
    logits_consumed_ = logits_consumed_ || keep;  // the stored logits now hold dlogits
  } else {
    std::memset(d.dbuf_c.data(), 0, N * C * sizeof(float));
  }
  if (dvalue) value_head_backward(d.dbuf_c.data(), g.score, dvalue, a.lnf.data(), p.score, N, C);

  std::memset(d.dres.data(), 0, N * C * sizeof(float));
  layernorm_backward(d.dres.data(), g.lnfw, g.lnfb, d.dbuf_c.data(), a.res3.data() + (L - 1) * N * C, p.lnfw,
                     a.lnf_mean.data(), a.lnf_rstd.data(), N, C);
  // dres is the gradient of the residual stream; each block adds its two branches into it.
  for (int l = L - 1; l >= 0; l--) {
    const LayerParams& w = p.layers[l];
    const LayerParams& gw = g.layers[l];
    const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
    float* dres = d.dres.data();
    float* dc = d.dbuf_c.data();
    float* d4c = d.dbuf_4c.data();
    // MLP branch
    matmul_backward(d4c, gw.fcprojw, gw.fcprojb, dres, a.fch_gelu.data() + l * N * 4 * C, w.fcprojw, N, 4 * C, C);
    gelu_backward(d4c, a.fch.data() + l * N * 4 * C, d4c, N * 4 * C);
    matmul_backward(dc, gw.fcw, gw.fcb, d4c, a.ln2.data() + l * N * C, w.fcw, N, C, 4 * C);
    layernorm_backward(dres, gw.ln2w, gw.ln2b, dc, a.res2.data() + l * N * C, w.ln2w, a.ln2_mean.data() + l * N,
                       a.ln2_rstd.data() + l * N, N, C);
    // attention branch
    matmul_backward(dc, gw.attprojw, gw.attprojb, dres, a.atty.data() + l * N * C, w.attprojw, N, C, C);
    attention_backward(d.dqkv.data(), d.datt.data(), dc, a.qkv.data() + l * N * 3 * C,
                       a.att.data() + (int64_t)l * B * NH * T * T, B, T, C, NH);
    matmul_backward(dc, gw.qkvw, gw.qkvb, d.dqkv.data(), a.ln1.data() + l * N * C, w.qkvw, N, C, 3 * C);
    layernorm_backward(dres, gw.ln1w, gw.ln1b, dc, res_in, w.ln1w, a.ln1_mean.data() + l * N,
                       a.ln1_rstd.data() + l * N, N, C);
  }
  embedding_backward(g.wte, g.wpe, d.dres.data(), last_tokens_.data(), B, T, C);
}

void GPT::zero_grad() {
  if (grads.size()) grads.zero();
}

double GPT::step(const AdamWConfig& o) {
  check_adamw(o);
  buffer(BufferKind::grads, true);
  invalidate_activations();
  double norm = global_norm(grads.data(), num_params_);
  if (!std::isfinite(norm)) {
    grads.zero();
    throw Error("step skipped: the gradient norm is not finite (" + std::to_string(norm) +
                "); parameters and optimizer state are unchanged and the gradients were zeroed");
  }
  buffer(BufferKind::adam_m, true);
  buffer(BufferKind::adam_v, true);
  float scale = 1.0f;
  if (o.max_grad_norm > 0 && norm > o.max_grad_norm) scale = (float)(o.max_grad_norm / (norm + 1e-6));
  adam_step++;
  for (const TensorInfo& t : layout_)
    adamw_update(params.data() + t.offset, grads.data() + t.offset, adam_m.data() + t.offset,
                 adam_v.data() + t.offset, t.numel, o.lr, o.beta1, o.beta2, o.eps, t.decay ? o.weight_decay : 0.0f,
                 adam_step, scale);
  grads.zero();
  return norm;
}

void GPT::decode_step(const int32_t* tokens, const int32_t* pos, int B, int maxT, float* logits_out) {
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers, V = cfg_.vocab_size;
  ParamView p = view(params.data());
  Decode& d = dec_;
  for (int b = 0; b < B; b++) embedding_forward(d.x.data() + (int64_t)b * C, tokens + b, p.wte, p.wpe, 1, 1, C, pos[b]);
  for (int l = 0; l < L; l++) {
    const LayerParams& w = p.layers[l];
    float* kc = d.kcache.data() + (int64_t)l * B * maxT * C;
    float* vc = d.vcache.data() + (int64_t)l * B * maxT * C;
    layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), w.ln1w, w.ln1b, B, C);
    matmul_forward(d.qkv.data(), d.ln.data(), w.qkvw, w.qkvb, B, C, 3 * C);
    for (int b = 0; b < B; b++) {
      const float* row = d.qkv.data() + (int64_t)b * 3 * C;
      std::memcpy(kc + ((int64_t)b * maxT + pos[b]) * C, row + C, C * sizeof(float));
      std::memcpy(vc + ((int64_t)b * maxT + pos[b]) * C, row + 2 * C, C * sizeof(float));
    }
    attention_decode(d.atty.data(), d.qkv.data(), kc, vc, pos, B, maxT, C, NH);
    matmul_forward(d.tmp.data(), d.atty.data(), w.attprojw, w.attprojb, B, C, C);
    residual_forward(d.x.data(), d.x.data(), d.tmp.data(), (int64_t)B * C);
    layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), w.ln2w, w.ln2b, B, C);
    matmul_forward(d.fch.data(), d.ln.data(), w.fcw, w.fcb, B, C, 4 * C);
    gelu_forward(d.fch_gelu.data(), d.fch.data(), (int64_t)B * 4 * C);
    matmul_forward(d.tmp.data(), d.fch_gelu.data(), w.fcprojw, w.fcprojb, B, 4 * C, C);
    residual_forward(d.x.data(), d.x.data(), d.tmp.data(), (int64_t)B * C);
  }
  layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), p.lnfw, p.lnfb, B, C);
  gemm(false, true, B, V, C, d.ln.data(), p.wte, logits_out, 1.0f, false);
}

GenerateResult GPT::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  const int B = (int)prompts.size();
  const int C = cfg_.channels, L = cfg_.num_layers, V = cfg_.vocab_size;
  const int P = check_generate(cfg_, prompts, o);
  const SamplingConfig& sc = o.sampling;
  invalidate_activations();

  // Prefill: one batched forward over the right-padded prompts. Causal attention means padding
  // after a prompt never influences its positions; decoding overwrites the padded cache slots.
  std::vector<int32_t> padded((size_t)B * P, 0);
  for (int b = 0; b < B; b++) std::copy(prompts[b].begin(), prompts[b].end(), padded.begin() + (size_t)b * P);
  transformer_forward(padded.data(), B, P);

  const int maxT = P + o.max_new_tokens;
  Decode& d = dec_;
  d.kcache.reserve((int64_t)L * B * maxT * C);
  d.vcache.reserve((int64_t)L * B * maxT * C);
  for (Buffer* buf : {&d.x, &d.ln, &d.atty, &d.tmp}) buf->reserve((int64_t)B * C);
  d.ln_mean.reserve(B);
  d.ln_rstd.reserve(B);
  d.qkv.reserve((int64_t)B * 3 * C);
  d.fch.reserve((int64_t)B * 4 * C);
  d.fch_gelu.reserve((int64_t)B * 4 * C);
  d.logits.reserve((int64_t)B * V);
  const int64_t N = (int64_t)B * P;
  for (int l = 0; l < L; l++) {
    const float* qkv = acts_.qkv.data() + l * N * 3 * C;
    float* kc = d.kcache.data() + (int64_t)l * B * maxT * C;
    float* vc = d.vcache.data() + (int64_t)l * B * maxT * C;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < (int)prompts[b].size(); t++) {
        const float* row = qkv + ((int64_t)b * P + t) * 3 * C;
        std::memcpy(kc + ((int64_t)b * maxT + t) * C, row + C, C * sizeof(float));
        std::memcpy(vc + ((int64_t)b * maxT + t) * C, row + 2 * C, C * sizeof(float));
      }
  }
  // Logits for each row's first new token come from its last prompt position.
  for (int b = 0; b < B; b++)
    std::memcpy(d.ln.data() + (int64_t)b * C, acts_.lnf.data() + ((int64_t)b * P + prompts[b].size() - 1) * C,
                C * sizeof(float));
  gemm(false, true, B, V, C, d.ln.data(), params.data() + layout_[0].offset, d.logits.data(), 1.0f, false);

  GenerateResult r;
  r.B = B;
  r.max_new = o.max_new_tokens;
  r.tokens.assign((size_t)B * o.max_new_tokens, -1);
  r.logprobs.assign((size_t)B * o.max_new_tokens, 0.0f);
  r.lengths.assign(B, 0);
  r.eos.assign(B, 0);
  std::vector<Rng> rngs;
  for (int b = 0; b < B; b++) rngs.emplace_back(o.seed, (uint64_t)b);
  std::vector<uint8_t> done(B, 0);
  std::vector<int32_t> cur(B), pos(B);
  for (int s = 0; s < o.max_new_tokens; s++) {
#pragma omp parallel if ((int64_t)B * V >= kMinParallelWork)
    {
      SamplingWork work;
#pragma omp for schedule(static)
      for (int b = 0; b < B; b++) {
        if (done[b]) continue;
        float lp = 0.0f;
        int32_t tok = sample_token(d.logits.data() + (int64_t)b * V, V, sc, rngs[b], &lp, work);
        r.tokens[(size_t)b * o.max_new_tokens + s] = tok;
        r.logprobs[(size_t)b * o.max_new_tokens + s] = lp;
        r.lengths[b]++;
        cur[b] = tok;
        if (std::find(o.eos.begin(), o.eos.end(), tok) != o.eos.end()) {
          done[b] = 1;
          r.eos[b] = 1;
        }
      }
    }
    bool all_done = std::all_of(done.begin(), done.end(), [](uint8_t x) { return x != 0; });
    if (all_done || s == o.max_new_tokens - 1) break;
    // Finished rows keep stepping with their last token; their outputs are ignored.
    for (int b = 0; b < B; b++) pos[b] = (int32_t)prompts[b].size() + s;
    decode_step(cur.data(), pos.data(), B, maxT, d.logits.data());
  }
  return r;
}

GreedyMatchResult GPT::greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans) {
  check_batch(cfg_, tokens, B, T);
  const int64_t M = check_spans(spans, B, T);
  invalidate_activations();
  transformer_forward(tokens, B, T);
  const int C = cfg_.channels, V = cfg_.vocab_size;
  Buffer rows((size_t)std::max<int64_t>(M, 1) * C);
  int64_t m = 0;
  for (int b = 0; b < B; b++)
    for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++, m++)
      std::memcpy(rows.data() + m * C, acts_.lnf.data() + ((int64_t)b * T + t - 1) * C, C * sizeof(float));
  std::vector<int32_t> am(M);
  ClassifierArgs ca{rows.data(), params.data() + layout_[0].offset, nullptr, M, C, V, 1.0f, nullptr,
                    acts_.logits_chunk.data(), kClassifierChunk};
  if (M > 0) classifier_argmax(ca, am.data());
  GreedyMatchResult r;
  r.match.assign((size_t)B * T, 0);
  r.argmax.assign((size_t)B * T, -1);
  m = 0;
  for (int b = 0; b < B; b++)
    for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++, m++) {
      int64_t i = (int64_t)b * T + t;
      r.argmax[i] = am[m];
      r.match[i] = am[m] == tokens[i] ? 1 : 0;
    }
  return r;
}

DivergenceResult GPT::divergence(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg) {
  GreedyMatchResult g = greedy_match(tokens, B, T, spans);
  return score_divergence(tokens, g.argmax.data(), B, T, spans, cfg);
}

}  // namespace s2s

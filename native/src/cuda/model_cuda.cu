// The GPT on the GPU: the same composition as src/model.cc, step for step, over src/cuda/'s kernels.
#include "cuda/model_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace s2s {

std::shared_ptr<ModelBackend> make_cuda_backend(const GPTConfig& cfg) {
  return std::make_shared<cuda::GPTCuda>(cfg);
}

namespace cuda {

namespace {

constexpr int64_t kClassifierChunk = 1024;  // rows of logits at once when not all are kept
constexpr int64_t kScoreChunk = 2048;       // rows of logits per divergence-kernel launch

// Keep a forward's logits for backward while they fit this many MiB (S2S_LOGITS_MB overrides).
size_t logits_budget_floats() {
  static size_t budget = [] {
    size_t mb = 4096;
    if (const char* env = std::getenv("S2S_LOGITS_MB")) mb = (size_t)std::strtoull(env, nullptr, 10);
    return mb * (1u << 20) / sizeof(float);
  }();
  return budget;
}

}  // namespace

Precision default_precision() {
  const char* env = std::getenv("S2S_CUDA_PRECISION");
  if (!env || !*env || std::strcmp(env, "bf16") == 0) return Precision::bf16;
  if (std::strcmp(env, "fp32") == 0) return Precision::fp32;
  throw Error(std::string("S2S_CUDA_PRECISION must be 'bf16' or 'fp32', got '") + env + "'");
}

GPTCuda::GPTCuda(const GPTConfig& cfg) : cfg_(cfg), precision_(default_precision()) {
  validate_config(cfg);
  layout_ = make_layout(cfg, &num_params_);
  ensure(BufferKind::params);
}

DeviceBuffer& GPTCuda::buffer(BufferKind k) {
  return k == BufferKind::params ? params_ : k == BufferKind::grads ? grads_ : k == BufferKind::adam_m ? adam_m_ : adam_v_;
}

float* GPTCuda::ensure(BufferKind k) {
  DeviceBuffer& b = buffer(k);
  if (b.size() != num_params_) {
    b.reset();
    b.reserve(num_params_);
    b.zero();
  }
  return b.data();
}

void GPTCuda::init_weights(uint64_t seed) {
  std::vector<float> host(num_params_);
  init_params(host.data(), cfg_, layout_, seed);
  params_.upload(host.data(), num_params_);
  adam_m_.reset();
  adam_v_.reset();
  adam_step_ = 0;
  invalidate_activations();
}

void GPTCuda::ensure_activations(int B, int T) {
  const int64_t N = (int64_t)B * T, C = cfg_.channels, L = cfg_.num_layers, NH = cfg_.num_heads;
  Acts& a = acts_;
  a.encoded.reserve(N * C);
  for (DeviceBuffer* b : {&a.ln1, &a.atty, &a.res2, &a.ln2, &a.res3}) b->reserve(L * N * C);
  for (DeviceBuffer* b : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) b->reserve(L * N);
  a.qkv.reserve(L * N * 3 * C);
  a.att.reserve(L * B * NH * T * T);
  a.fch.reserve(L * N * 4 * C);
  a.fch_gelu.reserve(L * N * 4 * C);
  a.lnf.reserve(N * C);
  for (DeviceBuffer* b : {&a.lnf_mean, &a.lnf_rstd, &a.lse, &a.logprob, &a.values, &a.entropy}) b->reserve(N);
  a.scratch_c.reserve(N * C);
  a.tokens.reserve(N);
  a.targets.reserve(N);
  B_ = B;
  T_ = T;
}

void GPTCuda::transformer_forward(const int32_t* tokens, int B, int T) {
  ensure_activations(B, T);
  const int64_t N = (int64_t)B * T;
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers;
  const Precision pr = precision_;
  ParamView p = param_view(cfg_, layout_, params_.data());
  Acts& a = acts_;
  embedding_forward(a.encoded.data(), tokens, p.wte, p.wpe, B, T, C, nullptr);
  for (int l = 0; l < L; l++) {
    const LayerParams& w = p.layers[l];
    const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
    float* ln1 = a.ln1.data() + l * N * C;
    float* qkv = a.qkv.data() + l * N * 3 * C;
    float* atty = a.atty.data() + l * N * C;
    float* att = a.att.data() + (int64_t)l * B * NH * T * T;
    float* res2 = a.res2.data() + l * N * C;
    float* ln2 = a.ln2.data() + l * N * C;
    float* fch = a.fch.data() + l * N * 4 * C;
    float* fch_gelu = a.fch_gelu.data() + l * N * 4 * C;
    float* res3 = a.res3.data() + l * N * C;
    float* tmp = a.scratch_c.data();
    layernorm_forward(ln1, a.ln1_mean.data() + l * N, a.ln1_rstd.data() + l * N, res_in, w.ln1w, w.ln1b, N, C);
    matmul_forward(qkv, ln1, w.qkvw, w.qkvb, N, C, 3 * C, pr);
    attention_forward(atty, att, qkv, B, T, C, NH, pr);
    matmul_forward(tmp, atty, w.attprojw, w.attprojb, N, C, C, pr);
    residual_forward(res2, res_in, tmp, N * C);
    layernorm_forward(ln2, a.ln2_mean.data() + l * N, a.ln2_rstd.data() + l * N, res2, w.ln2w, w.ln2b, N, C);
    matmul_forward(fch, ln2, w.fcw, w.fcb, N, C, 4 * C, pr);
    gelu_forward(fch_gelu, fch, N * 4 * C);
    matmul_forward(tmp, fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C, pr);
    residual_forward(res3, res2, tmp, N * C);
  }
  layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), a.res3.data() + (L - 1) * N * C, p.lnfw,
                    p.lnfb, N, C);
}

ForwardResult GPTCuda::forward(const int32_t* tokens, const int32_t* targets, int B, int T, const ForwardOptions& opts) {
  check_batch(cfg_, tokens, B, T);
  check_targets(cfg_, targets, B, T);
  check_forward_options(cfg_, opts);
  const int64_t N = (int64_t)B * T, V = cfg_.vocab_size;
  invalidate_activations();
  ensure_activations(B, T);
  acts_.tokens.upload(tokens, N);
  if (targets) {
    acts_.targets.upload(targets, N);
  } else {
    acts_.targets.fill_ones(N);  // -1: no target anywhere
  }
  transformer_forward(acts_.tokens.data(), B, T);
  last_inv_temp_ = 1.0f / opts.temperature;

  ForwardResult r;
  head_ran_ = opts.logprob;
  if (opts.logprob) {
    logits_stored_ = (size_t)(N * V) <= logits_budget_floats();
    if (logits_stored_)
      acts_.logits.reserve(N * V);
    else
      acts_.logits_chunk.reserve(kClassifierChunk * V);
    ClassifierArgs ca{acts_.lnf.data(), params_.data() + layout_[0].offset, acts_.targets.data(), N, cfg_.channels,
                      cfg_.vocab_size, last_inv_temp_, logits_stored_ ? acts_.logits.data() : nullptr,
                      acts_.logits_chunk.data(), kClassifierChunk, precision_};
    classifier_forward(ca, acts_.logprob.data(), opts.entropy ? acts_.entropy.data() : nullptr, acts_.lse.data());
    logits_consumed_ = false;
    r.logprob.resize(N);
    acts_.logprob.download(r.logprob.data(), N);
    if (opts.entropy) {
      r.entropy.resize(N);
      acts_.entropy.download(r.entropy.data(), N);
    }
  }
  if (opts.values) {
    value_head_forward(acts_.values.data(), acts_.lnf.data(), param_view(cfg_, layout_, params_.data()).score, N,
                       cfg_.channels);
    r.values.resize(N);
    acts_.values.download(r.values.data(), N);
  }
  for (int64_t i = 0; i < N; i++) {
    if (opts.logprob && !std::isfinite(r.logprob[i]))
      throw Error("forward produced a non-finite log-prob at " + where(T, i) +
                  ": the parameters contain NaN or Inf, or the logits overflowed");
    if (opts.values && !std::isfinite(r.values[i]))
      throw Error("forward produced a non-finite value at " + where(T, i) + ": the parameters contain NaN or Inf");
  }
  acts_valid_ = true;
  return r;
}

size_t GPTCuda::last_batch_size() const {
  if (!acts_valid_)
    throw Error("backward() needs the activations of a forward() call on this model: call forward() first "
                "(generate, greedyMatch, step and parameter changes discard them)");
  return (size_t)B_ * T_;
}

void GPTCuda::backward(const float* dlogprob, const float* dvalue) {
  last_batch_size();
  check_backward_inputs(cfg_, dlogprob, dvalue, B_, T_, head_ran_);
  const int B = B_, T = T_;
  const int64_t N = (int64_t)B * T;
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers;
  const Precision pr = precision_;
  ParamView p = param_view(cfg_, layout_, params_.data());
  ParamView g = param_view(cfg_, layout_, ensure(BufferKind::grads));
  Acts& a = acts_;
  GradActs& d = gacts_;
  d.dres.reserve(N * C);
  d.dbuf_c.reserve(N * C);
  d.dbuf_4c.reserve(N * 4 * C);
  d.dqkv.reserve(N * 3 * C);
  d.datt.reserve((int64_t)B * NH * T * T);

  if (dlogprob) {
    d.dlogprob.reserve(N);
    d.dlogprob.upload(dlogprob, N);
    bool keep = logits_stored_ && !logits_consumed_;
    if (!keep) acts_.logits_chunk.reserve(kClassifierChunk * cfg_.vocab_size);
    ClassifierArgs ca{a.lnf.data(), p.wte, a.targets.data(), N, C, cfg_.vocab_size, last_inv_temp_,
                      keep ? a.logits.data() : nullptr, a.logits_chunk.data(), kClassifierChunk, pr};
    classifier_backward(ca, d.dbuf_c.data(), g.wte, d.dlogprob.data(), a.lse.data());
    logits_consumed_ = logits_consumed_ || keep;
  } else {
    d.dbuf_c.zero(N * C);
  }
  if (dvalue) {
    d.dvalue.reserve(N);
    d.dvalue.upload(dvalue, N);
    value_head_backward(d.dbuf_c.data(), g.score, d.dvalue.data(), a.lnf.data(), p.score, N, C);
  }
  d.dres.zero(N * C);
  layernorm_backward(d.dres.data(), g.lnfw, g.lnfb, d.dbuf_c.data(), a.res3.data() + (L - 1) * N * C, p.lnfw,
                     a.lnf_mean.data(), a.lnf_rstd.data(), N, C);
  for (int l = L - 1; l >= 0; l--) {
    const LayerParams& w = p.layers[l];
    const LayerParams& gw = g.layers[l];
    const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
    float* dres = d.dres.data();
    float* dc = d.dbuf_c.data();
    float* d4c = d.dbuf_4c.data();
    matmul_backward(d4c, gw.fcprojw, gw.fcprojb, dres, a.fch_gelu.data() + l * N * 4 * C, w.fcprojw, N, 4 * C, C, pr);
    gelu_backward(d4c, a.fch.data() + l * N * 4 * C, d4c, N * 4 * C);
    matmul_backward(dc, gw.fcw, gw.fcb, d4c, a.ln2.data() + l * N * C, w.fcw, N, C, 4 * C, pr);
    layernorm_backward(dres, gw.ln2w, gw.ln2b, dc, a.res2.data() + l * N * C, w.ln2w, a.ln2_mean.data() + l * N,
                       a.ln2_rstd.data() + l * N, N, C);
    matmul_backward(dc, gw.attprojw, gw.attprojb, dres, a.atty.data() + l * N * C, w.attprojw, N, C, C, pr);
    attention_backward(d.dqkv.data(), d.datt.data(), dc, a.qkv.data() + l * N * 3 * C,
                       a.att.data() + (int64_t)l * B * NH * T * T, B, T, C, NH, pr);
    matmul_backward(dc, gw.qkvw, gw.qkvb, d.dqkv.data(), a.ln1.data() + l * N * C, w.qkvw, N, C, 3 * C, pr);
    layernorm_backward(dres, gw.ln1w, gw.ln1b, dc, res_in, w.ln1w, a.ln1_mean.data() + l * N,
                       a.ln1_rstd.data() + l * N, N, C);
  }
  embedding_backward(g.wte, g.wpe, d.dres.data(), a.tokens.data(), B, T, C);
  S2S_CUDA_CHECK(cudaDeviceSynchronize());  // a fault shows up here, in the call that caused it
}

void GPTCuda::zero_grad() {
  if (grads_.size() == num_params_) grads_.zero();
}

double GPTCuda::step(const AdamWConfig& o) {
  check_adamw(o);
  float* grads = ensure(BufferKind::grads);
  invalidate_activations();
  norm_.reserve(1 + kSumSquaresBlocks);
  norm_.zero(1);
  sum_squares(norm_.data(), grads, num_params_);
  double sq = 0.0;
  norm_.download(&sq, 1);
  double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) {
    grads_.zero();
    throw Error("step skipped: the gradient norm is not finite (" + std::to_string(norm) +
                "); parameters and optimizer state are unchanged and the gradients were zeroed");
  }
  float* m = ensure(BufferKind::adam_m);
  float* v = ensure(BufferKind::adam_v);
  float scale = 1.0f;
  if (o.max_grad_norm > 0 && norm > o.max_grad_norm) scale = (float)(o.max_grad_norm / (norm + 1e-6));
  adam_step_++;
  for (const TensorInfo& t : layout_)
    adamw_update(params_.data() + t.offset, grads + t.offset, m + t.offset, v + t.offset, t.numel, o.lr, o.beta1,
                 o.beta2, o.eps, t.decay ? o.weight_decay : 0.0f, adam_step_, scale);
  grads_.zero();
  S2S_CUDA_CHECK(cudaDeviceSynchronize());
  return norm;
}

void GPTCuda::decode_step(int B, int maxT) {
  const int C = cfg_.channels, NH = cfg_.num_heads, L = cfg_.num_layers, V = cfg_.vocab_size;
  const Precision pr = precision_;
  ParamView p = param_view(cfg_, layout_, params_.data());
  Decode& d = dec_;
  embedding_forward(d.x.data(), d.cur.data(), p.wte, p.wpe, B, 1, C, d.pos.data());
  for (int l = 0; l < L; l++) {
    const LayerParams& w = p.layers[l];
    float* kc = d.kcache.data() + (int64_t)l * B * maxT * C;
    float* vc = d.vcache.data() + (int64_t)l * B * maxT * C;
    layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), w.ln1w, w.ln1b, B, C);
    matmul_forward(d.qkv.data(), d.ln.data(), w.qkvw, w.qkvb, B, C, 3 * C, pr);
    kv_cache_write(kc, vc, d.qkv.data(), d.pos.data(), B, maxT, C);
    attention_decode(d.atty.data(), d.qkv.data(), kc, vc, d.pos.data(), B, maxT, C, NH);
    matmul_forward(d.tmp.data(), d.atty.data(), w.attprojw, w.attprojb, B, C, C, pr);
    residual_forward(d.x.data(), d.x.data(), d.tmp.data(), (int64_t)B * C);
    layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), w.ln2w, w.ln2b, B, C);
    matmul_forward(d.fch.data(), d.ln.data(), w.fcw, w.fcb, B, C, 4 * C, pr);
    gelu_forward(d.fch_gelu.data(), d.fch.data(), (int64_t)B * 4 * C);
    matmul_forward(d.tmp.data(), d.fch_gelu.data(), w.fcprojw, w.fcprojb, B, 4 * C, C, pr);
    residual_forward(d.x.data(), d.x.data(), d.tmp.data(), (int64_t)B * C);
  }
  layernorm_forward(d.ln.data(), d.ln_mean.data(), d.ln_rstd.data(), d.x.data(), p.lnfw, p.lnfb, B, C);
  gemm(false, true, B, V, C, d.ln.data(), p.wte, d.logits.data(), 1.0f, false, pr);
}

GenerateResult GPTCuda::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  const int B = (int)prompts.size();
  const int C = cfg_.channels, L = cfg_.num_layers, V = cfg_.vocab_size;
  const int P = check_generate(cfg_, prompts, o);
  const SamplingConfig& sc = o.sampling;
  invalidate_activations();

  // Prefill: one batched forward over the right-padded prompts (causal attention keeps padding
  // out of each prompt's positions), then the caches take each prompt's keys and values.
  std::vector<int32_t> padded((size_t)B * P, 0), len(B);
  for (int b = 0; b < B; b++) {
    std::copy(prompts[b].begin(), prompts[b].end(), padded.begin() + (size_t)b * P);
    len[b] = (int32_t)prompts[b].size();
  }
  ensure_activations(B, P);
  acts_.tokens.upload(padded.data(), padded.size());
  transformer_forward(acts_.tokens.data(), B, P);

  const int maxT = P + o.max_new_tokens;
  Decode& d = dec_;
  d.kcache.reserve((int64_t)L * B * maxT * C);
  d.vcache.reserve((int64_t)L * B * maxT * C);
  for (DeviceBuffer* buf : {&d.x, &d.ln, &d.atty, &d.tmp}) buf->reserve((int64_t)B * C);
  for (DeviceBuffer* buf : {&d.ln_mean, &d.ln_rstd, &d.logprob, &d.u}) buf->reserve(B);
  d.qkv.reserve((int64_t)B * 3 * C);
  d.fch.reserve((int64_t)B * 4 * C);
  d.fch_gelu.reserve((int64_t)B * 4 * C);
  d.logits.reserve((int64_t)B * V);
  for (DeviceArray<int32_t>* buf : {&d.cur, &d.pos, &d.len, &d.token}) buf->reserve(B);
  d.rows.reserve(B);
  d.done.reserve(B);
  d.len.upload(len.data(), B);
  const int64_t N = (int64_t)B * P;
  for (int l = 0; l < L; l++)
    kv_cache_prefill(d.kcache.data() + (int64_t)l * B * maxT * C, d.vcache.data() + (int64_t)l * B * maxT * C,
                     acts_.qkv.data() + l * N * 3 * C, d.len.data(), B, P, maxT, C);
  // Each row's first new token comes from its last prompt position.
  std::vector<int64_t> last(B);
  for (int b = 0; b < B; b++) last[b] = (int64_t)b * P + len[b] - 1;
  d.rows.upload(last.data(), B);
  gather_rows(d.ln.data(), acts_.lnf.data(), d.rows.data(), B, C);
  gemm(false, true, B, V, C, d.ln.data(), params_.data() + layout_[0].offset, d.logits.data(), 1.0f, false, precision_);

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
  std::vector<float> u(B, 0.0f), lp(B);
  const bool greedy = sc.temperature <= 0.0f;
  // Top-k and top-p sort the vocabulary: those rows are picked on the host, as the CPU does.
  const bool on_device = greedy || ((sc.top_k <= 0 || sc.top_k >= V) && sc.top_p >= 1.0f);
  std::vector<float> host_logits(on_device ? 0 : (size_t)B * V);
  SamplingWork work;
  for (int s = 0; s < o.max_new_tokens; s++) {
    if (on_device) {
      if (!greedy)
        for (int b = 0; b < B; b++) u[b] = done[b] ? 0.0f : (float)rngs[b].uniform();
      d.u.upload(u.data(), B);
      d.done.upload(done.data(), B);
      sample_rows(d.token.data(), d.logprob.data(), d.logits.data(), d.u.data(), d.done.data(), B, V, sc.temperature);
      d.token.download(cur.data(), B);  // rows already done keep their last token
      d.logprob.download(lp.data(), B);
    } else {
      d.logits.download(host_logits.data(), (size_t)B * V);
      for (int b = 0; b < B; b++)
        if (!done[b]) cur[b] = sample_token(host_logits.data() + (size_t)b * V, V, sc, rngs[b], &lp[b], work);
    }
    for (int b = 0; b < B; b++) {
      if (done[b]) continue;
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
    for (int b = 0; b < B; b++) pos[b] = len[b] + s;
    d.cur.upload(cur.data(), B);
    d.pos.upload(pos.data(), B);
    decode_step(B, maxT);
  }
  return r;
}

DivergenceResult GPTCuda::score(const int32_t* tokens, int B, int T, const int32_t* spans, const DivergenceConfig& cfg) {
  check_batch(cfg_, tokens, B, T);
  const int64_t M = check_spans(spans, B, T);
  invalidate_activations();
  const int64_t N = (int64_t)B * T;
  const int C = cfg_.channels, V = cfg_.vocab_size;
  ensure_activations(B, T);
  acts_.tokens.upload(tokens, N);
  transformer_forward(acts_.tokens.data(), B, T);

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
  Score& s = sc_;
  for (DeviceArray<int32_t>* a : {&s.row, &s.pos}) a->reserve(M);
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
  const int64_t chunk = std::min<int64_t>(std::max<int64_t>(M, 1), kScoreChunk);
  s.rows.reserve(chunk * C);
  s.logits.reserve(chunk * V);
  const float* wte = params_.data() + layout_[0].offset;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    int64_t rows = std::min(chunk, M - r0);
    gather_rows(s.rows.data(), acts_.lnf.data(), s.idx.data() + r0, rows, C);
    gemm(false, true, rows, V, C, s.rows.data(), wte, s.logits.data(), 1.0f, false, precision_);
    divergence_score(s.logits.data(), rows, V, s.row.data() + r0, s.pos.data() + r0, acts_.tokens.data(), T,
                     s.spans.data(), {cfg.positive, cfg.negative, cfg.neutral}, s.argmax.data(), s.scores.data(),
                     s.first.data(), s.counters.data());
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

GreedyMatchResult GPTCuda::greedy_match(const int32_t* tokens, int B, int T, const int32_t* spans) {
  DivergenceResult d = score(tokens, B, T, spans, DivergenceConfig{});
  GreedyMatchResult r;
  r.argmax = std::move(d.argmax);
  r.match.assign((size_t)B * T, 0);
  for (size_t i = 0; i < r.match.size(); i++) r.match[i] = r.argmax[i] >= 0 && r.argmax[i] == tokens[i] ? 1 : 0;
  return r;
}

DivergenceResult GPTCuda::divergence(const int32_t* tokens, int B, int T, const int32_t* spans,
                                     const DivergenceConfig& cfg) {
  return score(tokens, B, T, spans, cfg);
}

void GPTCuda::read_buffer(BufferKind k, size_t offset, size_t n, float* dst) {
  check_buffer_range(offset, n, num_params_);
  DeviceBuffer& b = buffer(k);
  if (b.size() == num_params_)
    b.download(dst, n, offset);
  else
    std::memset(dst, 0, n * sizeof(float));
}

void GPTCuda::write_buffer(BufferKind k, size_t offset, size_t n, const float* src) {
  check_buffer_range(offset, n, num_params_);
  if (k == BufferKind::params) invalidate_activations();
  ensure(k);
  buffer(k).upload(src, n, offset);
}

}  // namespace cuda
}  // namespace s2s

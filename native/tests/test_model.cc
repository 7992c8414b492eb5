// The whole model against independent computations: a forward composed from the naive kernels in
// double precision, finite differences of the loss, and hand-checked properties of generation,
// greedy match, AdamW and the error paths.
#include <algorithm>
#include <cstring>
#include <memory>
#include <cmath>
#include <vector>

#include "cpu/attention.h"
#include "cpu/classifier.h"
#include "cpu/embedding.h"
#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
#include "harness.h"
#include "cpu/model_cpu.h"

using namespace s2s;
using Vec = std::vector<float>;

// vocabulary 37, context 16, 2 layers, 2 heads, width 12
static GPTConfig tiny(bool value_head = true) { return {37, 16, 2, 2, 12, value_head}; }

static const float* tensor(GPT& m, const std::string& name) {
  for (const TensorInfo& t : m.layout())
    if (t.name == name) return m.params.data() + t.offset;
  throw Error("no tensor " + name);
}

// Logits [B*T, V] from the naive kernels (double accumulation), independent of the fused path.
static std::vector<double> reference_logits(GPT& m, const std::vector<int32_t>& tok, int B, int T) {
  const GPTConfig& c = m.config();
  int C = c.channels, V = c.vocab_size, NH = c.num_heads;
  int64_t N = (int64_t)B * T;
  Vec x(N * C), ln(N * C), mean(N), rstd(N), qkv(N * 3 * C), atty(N * C), att((size_t)B * NH * T * T), tmp(N * C),
      fch(N * 4 * C), fchg(N * 4 * C);
  embedding_forward_naive(x.data(), tok.data(), tensor(m, "transformer.wte.weight"),
                          tensor(m, "transformer.wpe.weight"), B, T, C);
  for (int l = 0; l < c.num_layers; l++) {
    std::string p = "transformer.h." + std::to_string(l) + ".";
    layernorm_forward_naive(ln.data(), mean.data(), rstd.data(), x.data(), tensor(m, p + "ln_1.weight"),
                            tensor(m, p + "ln_1.bias"), N, C);
    matmul_forward_naive(qkv.data(), ln.data(), tensor(m, p + "attn.c_attn.weight"), tensor(m, p + "attn.c_attn.bias"), N,
                         C, 3 * C);
    attention_forward_naive(atty.data(), att.data(), qkv.data(), AttnShape{B, T, NH, NH, C / NH});
    matmul_forward_naive(tmp.data(), atty.data(), tensor(m, p + "attn.c_proj.weight"), tensor(m, p + "attn.c_proj.bias"),
                         N, C, C);
    for (int64_t i = 0; i < N * C; i++) x[i] += tmp[i];
    layernorm_forward_naive(ln.data(), mean.data(), rstd.data(), x.data(), tensor(m, p + "ln_2.weight"),
                            tensor(m, p + "ln_2.bias"), N, C);
    matmul_forward_naive(fch.data(), ln.data(), tensor(m, p + "mlp.c_fc.weight"), tensor(m, p + "mlp.c_fc.bias"), N, C,
                         4 * C);
    gelu_forward_naive(fchg.data(), fch.data(), N * 4 * C);
    matmul_forward_naive(tmp.data(), fchg.data(), tensor(m, p + "mlp.c_proj.weight"), tensor(m, p + "mlp.c_proj.bias"),
                         N, 4 * C, C);
    for (int64_t i = 0; i < N * C; i++) x[i] += tmp[i];
  }
  layernorm_forward_naive(ln.data(), mean.data(), rstd.data(), x.data(), tensor(m, "transformer.ln_f.weight"),
                          tensor(m, "transformer.ln_f.bias"), N, C);
  const float* wte = tensor(m, "transformer.wte.weight");
  std::vector<double> logits(N * V);
  for (int64_t n = 0; n < N; n++)
    for (int v = 0; v < V; v++) {
      double acc = 0;
      for (int k = 0; k < C; k++) acc += (double)ln[n * C + k] * wte[(int64_t)v * C + k];
      logits[n * V + v] = acc;
    }
  return logits;
}

static double log_softmax_at(const std::vector<double>& logits, int64_t row, int V, int tok, double inv_t = 1.0) {
  double mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = std::max(mx, logits[row * V + v] * inv_t);
  double s = 0;
  for (int v = 0; v < V; v++) s += std::exp(logits[row * V + v] * inv_t - mx);
  return logits[row * V + tok] * inv_t - mx - std::log(s);
}

static int argmax_at(const std::vector<double>& logits, int64_t row, int V) {
  int best = 0;
  for (int v = 1; v < V; v++)
    if (logits[row * V + v] > logits[row * V + best]) best = v;
  return best;
}

static std::vector<int32_t> tokens_for(int B, int T, int V, int salt) {
  std::vector<int32_t> t(B * T);
  for (int i = 0; i < B * T; i++) t[i] = (i * 13 + salt * 7 + 5) % V;
  return t;
}

TEST(parameter_count_matches_gpt2_small) {
  GPTConfig c{50257, 1024, 12, 12, 768, false};
  GPT m(c);
  EXPECT(m.num_params() == 124439808);
}

TEST(forward_matches_naive_composition) {
  GPT m(tiny());
  m.init_weights(1);
  int B = 3, T = 9, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 1);
  std::vector<int32_t> tgt(B * T);
  for (int i = 0; i < B * T; i++) tgt[i] = i % 4 == 0 ? -1 : (i * 5 + 1) % V;
  ForwardOptions o;
  o.temperature = 0.8f;
  o.entropy = true;
  ForwardResult r = m.forward(tok.data(), tgt.data(), B, T, o);
  auto logits = reference_logits(m, tok, B, T);
  Vec want(B * T);
  for (int i = 0; i < B * T; i++) want[i] = tgt[i] < 0 ? 0.0f : (float)log_softmax_at(logits, i, V, tgt[i], 1.0 / 0.8);
  EXPECT_CLOSE(r.logprob.data(), want.data(), want.size(), 1e-5);
}

// Finite differences of L = sum(w * logprob) + sum(u * values) against backward().
TEST(gradients_match_finite_differences) {
  GPT m(tiny());
  m.init_weights(2);
  // larger weights than at init, so that every path carries a visible gradient
  for (const TensorInfo& t : m.layout())
    if (t.decay)
      for (size_t i = 0; i < t.numel; i++) m.params[t.offset + i] *= 5.0f;
  int B = 2, T = 7, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 3);
  std::vector<int32_t> tgt(B * T);
  for (int i = 0; i < B * T; i++) tgt[i] = (i * 11 + 2) % V;
  Vec w(B * T), u(B * T);
  harness::fill_uniform(w.data(), w.size(), 5);
  harness::fill_uniform(u.data(), u.size(), 6);
  ForwardOptions o;
  o.values = true;
  auto loss = [&]() {
    ForwardResult r = m.forward(tok.data(), tgt.data(), B, T, o);
    double L = 0;
    for (int i = 0; i < B * T; i++) L += (double)w[i] * r.logprob[i] + (double)u[i] * r.values[i];
    return L;
  };
  loss();
  m.zero_grad();
  m.backward(w.data(), u.data());
  Vec grad(m.grads.data(), m.grads.data() + m.num_params());
  int checked = 0, bad = 0;
  for (const TensorInfo& t : m.layout()) {
    for (int k = 0; k < 4; k++) {
      size_t i = t.offset + (size_t)((k * 7919 + 13) % t.numel);
      float old = m.params[i];
      const float h = 1e-2f;
      m.params[i] = old + h;
      double lp = loss();
      m.params[i] = old - h;
      double lm = loss();
      m.params[i] = old;
      double fd = (lp - lm) / (2 * h);
      double err = std::fabs(fd - grad[i]) / std::max(1e-2, std::fabs(fd) + std::fabs(grad[i]));
      checked++;
      if (err > 2e-2) {
        bad++;
        std::printf("  %s[%zu]: finite difference %.6g, backward %.6g\n", t.name.c_str(), i - t.offset, fd, grad[i]);
      }
    }
  }
  EXPECT(bad == 0);
  EXPECT(checked == (int)m.layout().size() * 4);
}

TEST(backward_twice_equals_double_gradient) {
  // The stored logits become dlogits during backward; a second backward must recompute them.
  GPT m(tiny(false));
  m.init_weights(3);
  int B = 2, T = 5, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 4);
  Vec w(B * T, 1.0f);
  m.forward(tok.data(), tok.data(), B, T, {});
  m.zero_grad();
  m.backward(w.data(), nullptr);
  Vec once(m.grads.data(), m.grads.data() + m.num_params());
  m.backward(w.data(), nullptr);
  for (float& g : once) g *= 2.0f;
  EXPECT_CLOSE(m.grads.data(), once.data(), once.size(), 1e-5);
}

// A backward after a step (or zero_grad) writes the weight gradients instead of adding to the zeros
// there; gradients written from outside since (write_buffer, a pointer given out for writing) must
// still be added to, and zero_grad makes the next backward write again.
TEST(a_backward_adds_to_gradients_written_since_the_step) {
  GPT m(tiny(false));
  m.init_weights(5);
  int B = 2, T = 5, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 2);
  Vec w(B * T, -0.1f);
  const size_t P = m.num_params();
  {  // gradients written into a model that had none yet (write_buffer allocates them)
    GPT fresh(tiny(false)), ref(tiny(false));
    fresh.init_weights(5);
    ref.init_weights(5);
    ref.forward(tok.data(), tok.data(), B, T, {});
    ref.backward(w.data(), nullptr);
    Vec g0(P, 0.5f), want(P);
    for (size_t i = 0; i < P; i++) want[i] = g0[i] + ref.grads[i];
    fresh.write_buffer(BufferKind::grads, 0, P, g0.data());
    fresh.forward(tok.data(), tok.data(), B, T, {});
    fresh.backward(w.data(), nullptr);
    EXPECT_CLOSE(fresh.grads.data(), want.data(), P, 1e-6);
  }
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);
  m.step({});
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);  // onto the zeros the step left
  Vec g1(m.grads.data(), m.grads.data() + P);
  EXPECT(std::any_of(g1.begin(), g1.end(), [](float x) { return x != 0.0f; }));
  Vec g0(P), want(P);
  for (size_t i = 0; i < P; i++) {
    g0[i] = 0.25f + 0.001f * (float)(i % 7);
    want[i] = g0[i] + g1[i];
  }
  m.write_buffer(BufferKind::grads, 0, P, g0.data());
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);
  EXPECT_CLOSE(m.grads.data(), want.data(), P, 1e-6);
  m.zero_grad();
  float* g = m.buffer(BufferKind::grads, true);
  std::copy(g0.begin(), g0.end(), g);
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);
  EXPECT_CLOSE(m.grads.data(), want.data(), P, 1e-6);
  m.zero_grad();
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);
  EXPECT_CLOSE(m.grads.data(), g1.data(), P, 1e-6);
}

TEST(value_only_forward_skips_the_head_but_not_the_values_or_their_gradients) {
  GPT m(tiny());
  m.init_weights(11);
  int B = 2, T = 6, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 12);
  Vec u(B * T);
  harness::fill_uniform(u.data(), u.size(), 13);
  ForwardOptions full;
  full.values = true;
  ForwardResult a = m.forward(tok.data(), tok.data(), B, T, full);
  m.zero_grad();
  m.backward(nullptr, u.data());
  Vec ga(m.grads.data(), m.grads.data() + m.num_params());
  ForwardOptions vo;
  vo.values = true;
  vo.logprob = false;
  ForwardResult b = m.forward(tok.data(), nullptr, B, T, vo);
  EXPECT(b.logprob.empty());
  EXPECT_CLOSE(b.values.data(), a.values.data(), a.values.size(), 0);
  m.zero_grad();
  m.backward(nullptr, u.data());
  EXPECT_CLOSE(m.grads.data(), ga.data(), ga.size(), 0);
  Vec w(B * T, 1.0f);
  EXPECT_THROWS_WITH(m.backward(w.data(), nullptr), "skipped the LM head");
  vo.values = false;
  EXPECT_THROWS_WITH(m.forward(tok.data(), nullptr, B, T, vo), "needs values: true");
}

TEST(generation_logprobs_match_a_full_recompute) {
  GPT m(tiny(false));
  m.init_weights(4);
  int V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9}};
  GenerateOptions o;
  o.max_new_tokens = 6;
  o.sampling.temperature = 1.0f;
  o.seed = 42;
  GenerateResult g = m.generate(prompts, o);
  for (int b = 0; b < 3; b++) {
    std::vector<int32_t> seq = prompts[b];
    for (int s = 0; s < g.lengths[b]; s++) seq.push_back(g.tokens[b * o.max_new_tokens + s]);
    int T = (int)seq.size();
    auto logits = reference_logits(m, seq, 1, T);
    for (int s = 0; s < g.lengths[b]; s++) {
      int pos = (int)prompts[b].size() + s;
      double want = log_softmax_at(logits, pos - 1, V, seq[pos]);
      EXPECT(std::fabs(want - g.logprobs[b * o.max_new_tokens + s]) < 1e-4);
    }
  }
  // the same seed reproduces the samples; another seed gives others
  GenerateResult again = m.generate(prompts, o);
  EXPECT(again.tokens == g.tokens);
  o.seed = 43;
  EXPECT(m.generate(prompts, o).tokens != g.tokens);
}

TEST(greedy_generation_follows_the_argmax_and_eos_stops_a_row) {
  GPT m(tiny(false));
  m.init_weights(5);
  int V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> prompts = {{3, 1}, {2, 2, 2}};
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.sampling.temperature = 0.0f;
  GenerateResult g = m.generate(prompts, o);
  for (int b = 0; b < 2; b++) {
    EXPECT(g.lengths[b] == 8);
    std::vector<int32_t> seq = prompts[b];
    for (int s = 0; s < 8; s++) {
      auto logits = reference_logits(m, seq, 1, (int)seq.size());
      int want = argmax_at(logits, (int64_t)seq.size() - 1, V);
      EXPECT(g.tokens[b * 8 + s] == want);
      seq.push_back(want);
    }
  }
  // make the 3rd greedy token of row 0 an EOS: row 0 stops there, row 1 goes on
  o.eos = {g.tokens[2]};
  GenerateResult e = m.generate(prompts, o);
  int stop0 = (int)(std::find(g.tokens.begin(), g.tokens.begin() + 8, g.tokens[2]) - g.tokens.begin()) + 1;
  EXPECT(e.lengths[0] == stop0 && e.eos[0] == 1);
  EXPECT(e.tokens[stop0] == -1);
  for (int s = 0; s < e.lengths[1]; s++) EXPECT(e.tokens[8 + s] == g.tokens[8 + s]);
}

TEST(greedy_match_equals_argmax_of_full_logits) {
  GPT m(tiny(false));
  m.init_weights(6);
  int B = 3, T = 10, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 7);
  auto logits = reference_logits(m, tok, B, T);
  // make some positions agree with the argmax so that both outcomes are exercised (one position at
  // a time: changing token t changes the logits that predict t + 1)
  for (int t = 4; t < 6; t++) {
    for (int b = 0; b < B; b++) tok[b * T + t] = argmax_at(logits, (int64_t)b * T + t - 1, V);
    logits = reference_logits(m, tok, B, T);
  }
  std::vector<int32_t> spans = {2, 8, 1, 10, 5, 5};
  GreedyMatchResult r = m.greedy_match(tok.data(), B, T, spans.data());
  int matches = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int i = b * T + t;
      bool in = t >= spans[2 * b] && t < spans[2 * b + 1];
      if (!in) {
        EXPECT(r.argmax[i] == -1 && r.match[i] == 0);
        continue;
      }
      int want = argmax_at(logits, i - 1, V);
      EXPECT(r.argmax[i] == want);
      EXPECT(r.match[i] == (want == tok[i]));
      matches += r.match[i];
    }
  EXPECT(matches >= 4);
}

TEST(divergence_scores_the_rule_from_the_argmax) {
  // hand-worked: a row matching, then diverging, then matching again, then diverging
  std::vector<int32_t> tokens = {9, 1, 2, 3, 4, 5, 6};
  std::vector<int32_t> argmax = {-1, 1, 2, 7, 4, 8, -1};
  std::vector<int32_t> spans = {1, 6};
  DivergenceResult r = score_divergence(tokens.data(), argmax.data(), 1, 7, spans.data(), DivergenceConfig{});
  Vec want = {0, 1, 1, -1, 0, -1, 0};
  EXPECT_CLOSE(r.scores.data(), want.data(), want.size(), 0);
  EXPECT(r.first_divergence[0] == 2);
  DivergenceConfig pos{1, 0, 0};
  DivergenceResult p = score_divergence(tokens.data(), argmax.data(), 1, 7, spans.data(), pos);
  Vec want_pos = {0, 1, 1, 0, 0, 0, 0};
  EXPECT_CLOSE(p.scores.data(), want_pos.data(), want_pos.size(), 0);
  // a span that matches throughout has no divergence
  std::vector<int32_t> short_span = {1, 3};
  EXPECT(score_divergence(tokens.data(), argmax.data(), 1, 7, short_span.data(), DivergenceConfig{}).first_divergence[0] == -1);

  // the model's fused pass equals greedy match followed by the rule
  GPT m(tiny(false));
  m.init_weights(12);
  int B = 2, T = 9, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 5);
  std::vector<int32_t> sp = {3, 9, 1, 6};
  GreedyMatchResult g = m.greedy_match(tok.data(), B, T, sp.data());
  DivergenceResult d = m.divergence(tok.data(), B, T, sp.data(), DivergenceConfig{});
  DivergenceResult want2 = score_divergence(tok.data(), g.argmax.data(), B, T, sp.data(), DivergenceConfig{});
  EXPECT(d.argmax == g.argmax);
  EXPECT(d.scores == want2.scores);
  EXPECT(d.first_divergence == want2.first_divergence);
}

TEST(adamw_decays_weights_but_not_biases_or_norms) {
  GPT m(tiny(false));
  m.init_weights(7);
  Vec before(m.params.data(), m.params.data() + m.num_params());
  m.zero_grad();  // zero gradient: only weight decay can move a parameter
  AdamWConfig o;
  o.lr = 0.1f;
  o.weight_decay = 0.5f;
  double norm = m.step(o);
  EXPECT(norm == 0.0);
  for (const TensorInfo& t : m.layout()) {
    size_t i = t.offset + t.numel / 2;
    float want = t.decay ? before[i] * (1.0f - 0.1f * 0.5f) : before[i];
    EXPECT(std::fabs(m.params[i] - want) <= 1e-7f * std::fabs(want) + 1e-12f);
  }
}

TEST(clipping_scales_the_update) {
  // With clipping, the first Adam step is unchanged in direction (Adam normalises) but the moments
  // hold the clipped gradient: m = (1 - beta1) * g * maxNorm / norm.
  GPT m(tiny(false));
  m.init_weights(8);
  int B = 2, T = 6, V = m.config().vocab_size;
  auto tok = tokens_for(B, T, V, 9);
  Vec w(B * T, -1.0f);
  m.forward(tok.data(), tok.data(), B, T, {});
  m.backward(w.data(), nullptr);
  Vec g(m.grads.data(), m.grads.data() + m.num_params());
  AdamWConfig o;
  o.max_grad_norm = 0.01f;
  double norm = m.step(o);
  double ssq = 0;
  for (float x : g) ssq += (double)x * x;
  EXPECT(std::fabs(norm - std::sqrt(ssq)) < 1e-6 * norm);
  EXPECT(norm > 0.01);
  double scale = 0.01 / (norm + 1e-6);
  Vec want(g.size());
  for (size_t i = 0; i < g.size(); i++) want[i] = (float)(0.1 * g[i] * scale);
  EXPECT_CLOSE(m.adam_m.data(), want.data(), want.size(), 1e-5);
}

TEST(bad_input_is_refused_with_a_clear_error) {
  GPT m(tiny());
  m.init_weights(9);
  std::vector<int32_t> tok = {1, 2, 99, 3};
  EXPECT_THROWS_WITH(m.forward(tok.data(), nullptr, 1, 4, {}), "token id 99 at row 0, position 2 is outside the vocabulary");
  std::vector<int32_t> ok(20, 1);
  EXPECT_THROWS_WITH(m.forward(ok.data(), nullptr, 1, 20, {}), "exceeds the model's context length (16)");
  std::vector<int32_t> bad_tgt = {1, -2, 1, 1};
  EXPECT_THROWS_WITH(m.forward(ok.data(), bad_tgt.data(), 1, 4, {}), "target id -2");
  EXPECT_THROWS_WITH(m.backward(nullptr, nullptr), "call forward() first");
  m.forward(ok.data(), ok.data(), 1, 4, {});
  Vec nan_grad = {1, NAN, 1, 1};
  EXPECT_THROWS_WITH(m.backward(nan_grad.data(), nullptr), "dlogprob at row 0, position 1 is not finite");
  std::vector<int32_t> spans = {0, 3};
  EXPECT_THROWS_WITH(m.greedy_match(ok.data(), 1, 4, spans.data()), "1 <= start <= end <= T");
  GenerateOptions go;
  go.max_new_tokens = 10;
  EXPECT_THROWS_WITH(m.generate({std::vector<int32_t>(8, 1)}, go), "exceeds the model's context length");
  EXPECT_THROWS_WITH(m.generate({{}}, go), "prompt 0 is empty");
  GPTConfig c = tiny();
  c.num_heads = 5;
  EXPECT_THROWS_WITH(GPT{c}, "must be divisible by n_head");
}

TEST(non_finite_gradients_skip_the_step_and_keep_the_parameters) {
  GPT m(tiny(false));
  m.init_weights(10);
  Vec before(m.params.data(), m.params.data() + m.num_params());
  m.buffer(BufferKind::grads, true)[17] = NAN;
  EXPECT_THROWS_WITH(m.step({}), "step skipped: the gradient norm is not finite");
  EXPECT(std::equal(before.begin(), before.end(), m.params.data()));
  EXPECT(m.adam_step == 0);
  // poisoned parameters surface as a forward error, not as silent NaNs
  m.params[5] = NAN;
  std::vector<int32_t> tok = {0, 1, 2};
  EXPECT_THROWS_WITH(m.forward(tok.data(), tok.data(), 1, 3, {}), "parameters are not finite");
}

// AdamW checks the parameters it writes (the CPU spares the next forward its scan when all are
// finite): an update that overflows one is still refused by the next call, naming it, and a step
// leaves every gradient zero for the next backward.
TEST(a_step_that_overflows_a_parameter_is_refused_by_the_next_forward) {
  GPT m(tiny(false));
  m.init_weights(12);
  const TensorInfo& t = m.layout()[1];
  std::vector<int32_t> tok = {0, 1, 2};
  Vec dlp(3, -1.0f / 3);
  m.forward(tok.data(), tok.data(), 1, 3, {});
  m.backward(dlp.data(), nullptr);
  m.step({});
  std::vector<float> g(m.num_params());
  m.read_buffer(BufferKind::grads, 0, g.size(), g.data());
  EXPECT(std::all_of(g.begin(), g.end(), [](float x) { return x == 0.0f; }));
  m.forward(tok.data(), tok.data(), 1, 3, {});  // finite: runs
  // parameter 4 of tensor 1 at 3.3e38 with a gradient of -1 there alone: AdamW's first step moves
  // it by lr (mhat / sqrt(vhat) = -1), past float's largest value
  GPT f(tiny(false));
  f.init_weights(12);
  float big = 3.3e38f, minus_one = -1.0f;
  f.write_buffer(BufferKind::params, t.offset + 4, 1, &big);
  f.buffer(BufferKind::grads, true)[t.offset + 4] = minus_one;
  AdamWConfig o;
  o.lr = 1e38f;
  o.weight_decay = 0.0f;
  f.step(o);
  EXPECT(std::isinf(f.params[t.offset + 4]));
  EXPECT_THROWS_WITH(f.forward(tok.data(), tok.data(), 1, 3, {}),
                     ("parameters are not finite (tensor '" + t.name + "', index 4 is inf)").c_str());
}

TEST(confident_log_probs_over_a_gpt2_vocabulary_match_float64) {
  // One logit at 0, 50,256 near -20: the denominator is 1 + ~1e-4 made of terms of ~2e-9, each
  // below float's rounding at 1. Summed in float they vanish (log-probs off by ~1e-4); the
  // engine sums them in double. Logits are exact in float here (lnf is one-hot), so the only
  // error left is the softmax's.
  const int V = 50257, C = 8, N = 3;
  Vec lnf(N * C, 0.0f), wte((size_t)V * C, 0.0f);
  for (int n = 0; n < N; n++) lnf[n * C + n] = 1.0f;  // row n reads channel n
  for (int v = 0; v < V; v++)
    for (int c = 0; c < N; c++) wte[(size_t)v * C + c] = v == 7 * (c + 1) ? 0.0f : -20.0f - 0.25f * (float)((v + c) % 5);
  std::vector<int32_t> tgt = {7, 100, 21};  // the argmax, another word, the argmax
  Vec lp(N), ent(N), lse(N), scratch(256 * (size_t)V);
  ClassifierArgs a{lnf.data(), wte.data(), tgt.data(), N, C, V, 1.0f, nullptr, scratch.data(), 256};
  classifier_forward(a, lp.data(), ent.data(), lse.data());
  for (int n = 0; n < N; n++) {
    double mx = 0, sum = 0;
    for (int v = 0; v < V; v++) sum += std::exp((double)wte[(size_t)v * C + n] - mx);
    double want = (double)wte[(size_t)tgt[n] * C + n] - std::log(sum);
    EXPECT(std::fabs(lp[n] - want) < 2e-6);
  }
}

// Every call that reads the weights (not only forward, whose log-probs would show it) refuses
// parameters holding NaN or Inf, naming the first bad tensor and index.
TEST(every_call_that_reads_the_weights_refuses_non_finite_parameters) {
  GPT m(tiny());
  m.init_weights(21);
  std::vector<int32_t> tok = {1, 2, 3, 4, 5, 6}, spans = {1, 3, 2, 3};
  GenerateOptions go;
  go.max_new_tokens = 3;
  go.sampling.temperature = 0.0f;
  auto all_refuse = [&](const std::string& what) {
    EXPECT_THROWS_WITH(m.forward(tok.data(), tok.data(), 2, 3, {}), what.c_str());
    EXPECT_THROWS_WITH(m.generate({{1, 2}, {3}}, go), what.c_str());
    EXPECT_THROWS_WITH(m.greedy_match(tok.data(), 2, 3, spans.data()), what.c_str());
    EXPECT_THROWS_WITH(m.divergence(tok.data(), 2, 3, spans.data(), DivergenceConfig{}), what.c_str());
  };
  const TensorInfo& t = m.layout()[3];
  m.forward(tok.data(), tok.data(), 2, 3, {});  // checked once: finite
  m.buffer(BufferKind::params, true)[t.offset + 4] = NAN;
  all_refuse("parameters are not finite (tensor '" + t.name + "', index 4 is nan)");
  m.buffer(BufferKind::params, true)[t.offset + 4] = -INFINITY;
  all_refuse("index 4 is -inf");
  m.buffer(BufferKind::params, true)[t.offset + 4] = 0.5f;
  m.forward(tok.data(), tok.data(), 2, 3, {});
  m.generate({{1, 2}, {3}}, go);
  m.greedy_match(tok.data(), 2, 3, spans.data());
  m.divergence(tok.data(), 2, 3, spans.data(), DivergenceConfig{});
  // A step changes the parameters: the next call checks them again (the Inf here was written
  // behind the model's back, after the last check, and AdamW keeps it).
  m.params[7] = INFINITY;
  m.buffer(BufferKind::grads, true);
  m.step({});
  EXPECT_THROWS_WITH(m.generate({{1}}, go), "index 7 is inf");
}

// Finite parameters too large for float arithmetic (a checkpoint with 3e38 in it) pass the
// finiteness check but overflow inside the model: forward and generate refuse what comes out.
TEST(parameters_that_overflow_the_model_are_refused_by_forward_and_generate) {
  GPT m(tiny());
  m.init_weights(22);
  // the MLP's first weight near float's largest value: its products overflow to Inf, and NaN follows
  for (const TensorInfo& t : m.layout())
    if (t.name == "transformer.h.0.mlp.c_fc.weight")
      for (size_t i = 0; i < t.numel; i++) m.buffer(BufferKind::params, true)[t.offset + i] = 3e38f;
  std::vector<int32_t> tok = {1, 2, 3, 4, 5, 6};
  GenerateOptions go;
  go.max_new_tokens = 3;
  EXPECT_THROWS_WITH(m.forward(tok.data(), tok.data(), 2, 3, {}), "logits overflowed");
  for (float temperature : {0.0f, 1.0f}) {
    go.sampling.temperature = temperature;
    EXPECT_THROWS_WITH(m.generate({{1, 2}, {3}}, go), "generate: the log-prob of row 0's token 0 is not finite");
  }
}

// A gradient whose square overflows float would leave Inf in AdamW's second moment (the parameter
// then never moves again): the step is refused, as for a non-finite gradient; with clipping it runs.
TEST(a_gradient_too_large_for_the_second_moment_skips_the_step_unless_clipped) {
  GPT m(tiny());
  m.init_weights(23);
  std::vector<float> before(m.params.data(), m.params.data() + m.num_params());
  m.buffer(BufferKind::grads, true)[5] = 1e20f;
  EXPECT_THROWS_WITH(m.step({}), "too large for AdamW's second moment");
  EXPECT(std::equal(before.begin(), before.end(), m.params.data()));
  EXPECT(m.adam_step == 0);
  m.buffer(BufferKind::grads, true)[5] = 1e20f;
  AdamWConfig clipped;
  clipped.max_grad_norm = 1.0f;
  m.step(clipped);
  std::vector<float> v(m.num_params());
  m.read_buffer(BufferKind::adam_v, 0, v.size(), v.data());
  EXPECT(std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }) && v[5] > 0);
}

TEST(write_buffer_refuses_non_finite_values_and_a_negative_second_moment) {
  GPT m(tiny(false));
  m.init_weights(22);
  const TensorInfo& t = m.layout()[1];
  Vec before(m.params.data(), m.params.data() + m.num_params());
  Vec bad = {0.5f, 0.25f, NAN};
  std::string at = "the value at offset " + std::to_string(t.offset + 2) + " (tensor '" + t.name + "', index 2)";
  EXPECT_THROWS_WITH(m.write_buffer(BufferKind::params, t.offset, 3, bad.data()), ("writeBuffer(params): " + at + " is not finite (nan)").c_str());
  EXPECT(std::equal(before.begin(), before.end(), m.params.data()));  // nothing was written
  bad[2] = INFINITY;
  EXPECT_THROWS_WITH(m.write_buffer(BufferKind::adam_m, t.offset, 3, bad.data()), ("writeBuffer(adam_m): " + at + " is not finite (inf)").c_str());
  EXPECT_THROWS_WITH(m.write_buffer(BufferKind::adam_v, t.offset, 3, bad.data()), ("writeBuffer(adam_v): " + at).c_str());
  bad[2] = -1e-3f;
  EXPECT_THROWS_WITH(m.write_buffer(BufferKind::adam_v, t.offset, 3, bad.data()), ("writeBuffer(adam_v): " + at + " is negative").c_str());
  EXPECT(m.buffer(BufferKind::adam_v, false) == nullptr);  // not even allocated
  m.write_buffer(BufferKind::adam_m, t.offset, 3, bad.data());  // a negative first moment is fine
  bad[2] = NAN;
  m.write_buffer(BufferKind::grads, t.offset, 3, bad.data());  // step refuses non-finite gradients itself
  EXPECT_THROWS_WITH(m.step({}), "gradient norm is not finite");
}

TEST(backward_needs_dlogprob_or_dvalue) {
  GPT m(tiny());
  m.init_weights(23);
  std::vector<int32_t> tok = {1, 2, 3};
  m.forward(tok.data(), tok.data(), 1, 3, {});
  EXPECT_THROWS_WITH(m.backward(nullptr, nullptr), "backward needs dlogprob or dvalue");
}

int main() { return harness::run_all(); }

// bf16 matmuls on the CPU (native where the processor has them, and the emulated twin everywhere)
// against the same model in fp32: forward and gradients within bf16's tolerance, and the weight
// cache following every change of the parameters: after a step and after a write, a bf16 model's
// forward is bit for bit that of a fresh bf16 model given the same parameters.
TEST(cpu_bf16_model_tracks_fp32_and_its_weights_follow_every_change) {
  std::vector<const char*> modes = {"bf16-emulated"};
  if (cpu_bf16_support().native) modes.push_back("bf16");
  GPTConfig c{97, 32, 2, 4, 64, true};
  const int B = 3, T = 24;
  auto tok = tokens_for(B, T, c.vocab_size, 3);
  std::vector<int32_t> tgt = tokens_for(B, T, c.vocab_size, 4);
  Vec dlogprob(B * T, 1.0f / (B * T)), dvalue(B * T, 0.5f / (B * T));
  ForwardOptions o;
  o.values = true;
  AdamWConfig adam;
  adam.lr = 1e-2f;
  auto make = [&](const char* mode) {
    setenv("S2S_CPU_PRECISION", mode, 1);
    auto m = std::make_unique<GPT>(c);
    setenv("S2S_CPU_PRECISION", "fp32", 1);
    return m;
  };
  auto params_of = [](GPT& m) {
    Vec p(m.num_params());
    m.read_buffer(BufferKind::params, 0, p.size(), p.data());
    return p;
  };
  for (const char* mode : modes) {
    auto ref = make("fp32");
    auto m = make(mode);
    EXPECT(m->precision() == Precision::bf16 && ref->precision() == Precision::fp32);
    ref->init_weights(5);
    m->init_weights(5);
    ForwardResult a = ref->forward(tok.data(), tgt.data(), B, T, o), b = m->forward(tok.data(), tgt.data(), B, T, o);
    EXPECT_CLOSE(b.logprob.data(), a.logprob.data(), a.logprob.size(), 2e-2);
    EXPECT_CLOSE(b.values.data(), a.values.data(), a.values.size(), 2e-2);
    // and it is bf16: further from fp32 than fp32's own rounding
    EXPECT(harness::rel_error(b.logprob.data(), a.logprob.data(), a.logprob.size()) > 1e-5);
    ref->backward(dlogprob.data(), dvalue.data());
    m->backward(dlogprob.data(), dvalue.data());
    Vec ga(ref->num_params()), gb(m->num_params());
    ref->read_buffer(BufferKind::grads, 0, ga.size(), ga.data());
    m->read_buffer(BufferKind::grads, 0, gb.size(), gb.data());
    EXPECT_CLOSE(gb.data(), ga.data(), ga.size(), 5e-2);

    // after a step: the same forward as a fresh bf16 model with the stepped parameters
    m->step(adam);
    ForwardResult after = m->forward(tok.data(), tgt.data(), B, T, o);
    Vec stepped = params_of(*m);
    auto fresh = make(mode);
    fresh->write_buffer(BufferKind::params, 0, stepped.size(), stepped.data());
    ForwardResult want = fresh->forward(tok.data(), tgt.data(), B, T, o);
    EXPECT(std::memcmp(after.logprob.data(), want.logprob.data(), want.logprob.size() * sizeof(float)) == 0);
    EXPECT(harness::rel_error(after.logprob.data(), b.logprob.data(), b.logprob.size()) > 1e-4);  // the step moved it

    // after a write: likewise (here the fp32 model's parameters, so the result is the first one's)
    Vec original = params_of(*ref);
    m->write_buffer(BufferKind::params, 0, original.size(), original.data());
    ForwardResult rewritten = m->forward(tok.data(), tgt.data(), B, T, o);
    EXPECT(std::memcmp(rewritten.logprob.data(), b.logprob.data(), b.logprob.size() * sizeof(float)) == 0);
  }
}

// Attention's T x T probabilities are allocated only where the CPU's attention reads them: not
// where it runs in blocks (bf16 on AMX or AVX512-BF16, head size and T multiples of 32), where a
// long context's squares would be tens of GB of address space (SmolLM2 at T = 8192: 69 GB, refused).
// A change of precision discards the forward's activations, which were made for the old one.
TEST(attention_probabilities_are_allocated_only_where_attention_reads_them) {
  CpuOps ops;
  const AttnShape blocked{2, 64, 4, 2, 32}, odd_t{2, 40, 4, 2, 32}, narrow{2, 64, 4, 2, 16};
  ops.set_matmul(CpuMatmul::fp32);
  EXPECT(ops.attention_probs_values(blocked) == 2 * 4 * 64 * 64);
  ops.set_matmul(CpuMatmul::bf16_emulated);
  EXPECT(ops.attention_probs_values(blocked) == 2 * 4 * 64 * 64);
  if (cpu_bf16_support().native) {
    ops.set_matmul(CpuMatmul::bf16);
    EXPECT(ops.attention_probs_values(odd_t) == 2 * 4 * 40 * 40);
    EXPECT(ops.attention_probs_values(narrow) == 2 * 4 * 64 * 64);
    // none on a processor with AVX512-BF16 (every one with AMX has it too), unless turned off
    const char* env = std::getenv("S2S_ATTENTION_BLOCKS");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16") && !(env && std::strcmp(env, "off") == 0))
      EXPECT(ops.attention_probs_values(blocked) == 0);
  }
  GPT m(tiny(false));
  m.init_weights(2);
  std::vector<int32_t> tok = {0, 1, 2};
  Vec dlp(3, -1.0f / 3);
  m.forward(tok.data(), tok.data(), 1, 3, {});
  m.set_precision(m.precision());
  EXPECT_THROWS_WITH(m.backward(dlp.data(), nullptr), "call forward() first");
}

// Where bf16 attention runs in blocks, the backward after a training forward makes each row's
// probabilities again from the two floats the forward kept: the gradient must be bit for bit the one
// it gets from the probabilities a forward wrote out (a forward that keeps nothing writes them when
// given att). A forward with no att writes its output alone, the same output.
TEST(attention_made_again_from_row_softmax_gives_the_stored_probabilities_gradient) {
  const AttnShape s{2, 64, 4, 2, 32};
  if (!cpu_bf16_support().native || !attention_blocks_backward_usable(s, CpuMatmul::bf16)) {
    std::printf("  (not run here: bf16 attention does not run in blocks on this processor or setting)\n");
    return;
  }
  CpuOps ops;
  ops.set_matmul(CpuMatmul::bf16);
  const int64_t N = (int64_t)s.B * s.T, W = s.qkv_width(), QW = s.q_width(), sq = (int64_t)s.B * s.NH * s.T * s.T;
  Vec qkv(N * W), dout(N * QW);
  harness::fill_uniform(qkv.data(), qkv.size(), 31, -1.0f, 1.0f);
  harness::fill_uniform(dout.data(), dout.size(), 32, -1.0f, 1.0f);
  Vec out_kept(N * QW), out_stored(N * QW), out_none(N * QW), att(sq), datt(sq), dq_kept(N * W), dq_stored(N * W);
  ops.keep_operands(true);
  ops.attention_forward(out_kept.data(), nullptr, qkv.data(), s);
  ops.keep_operands(false);
  ops.attention_backward(dq_kept.data(), nullptr, dout.data(), qkv.data(), nullptr, s);
  ops.drop_operands();
  ops.attention_forward(out_stored.data(), att.data(), qkv.data(), s);
  ops.attention_backward(dq_stored.data(), datt.data(), dout.data(), qkv.data(), att.data(), s);
  ops.attention_forward(out_none.data(), nullptr, qkv.data(), s);
  EXPECT(std::memcmp(dq_kept.data(), dq_stored.data(), dq_kept.size() * sizeof(float)) == 0);
  EXPECT(std::memcmp(out_none.data(), out_stored.data(), out_none.size() * sizeof(float)) == 0);
  // (out_kept is not compared: a training forward writes only the projection's bf16 copy of it.)
  // A backward that finds neither probabilities nor the rows' softmax refuses.
  ops.drop_operands();
  EXPECT_THROWS_WITH(ops.attention_backward(dq_kept.data(), nullptr, dout.data(), qkv.data(), nullptr, s),
                     "kept neither its probabilities nor its rows' softmax");
}

// A training forward keeps attention's row softmax (kept_state_room) past the operands' budget and
// with it at 0: a long context's forward must not go back to writing its T x T squares because
// the operands filled the budget first (SmolLM2 at T = 4096 did: 13.4 GB after the forward).
TEST(a_training_forward_keeps_small_states_past_the_operand_budget) {
  OperandCache cache(0);
  MatmulScope scope(CpuMatmul::bf16_emulated, nullptr, &cache);
  float x[8] = {};
  EXPECT(kept_state_room(x, 3, 8) == nullptr);  // not a training forward: nothing is kept
  cache.record(true);
  EXPECT(kept_operand_room(x, 2, 8) == nullptr);  // past the budget
  void* kept = kept_state_room(x, 3, 8);
  EXPECT(kept != nullptr);
  cache.record(false);
  EXPECT(kept_operand(x, 3, 8) == kept);
  EXPECT(kept_operand(x, 2, 8) == nullptr);
}

// A training forward keeps its bf16 matmul operands for the backward's weight gradients (the
// OperandCache), the norms, GELU and SwiGLU writing their outputs' copies as they make them
// (operand_made_here): the gradients are bit for bit those of the same model converting every
// operand afresh (S2S_OPERAND_CACHE_MB=0), for GPT-2 and Llama (GQA, a fused gate/up), through two
// forwards of different shapes before the backward and a second backward of the same forward; and
// GPT-2 with 32-wide heads at T = 32, where a processor with AMX or AVX512-BF16 runs attention in
// blocks (the forward's output copy among the kept operands, cpu/attention_blocks.cc).
TEST(kept_bf16_operands_give_the_gradients_of_fresh_conversions) {
  std::vector<const char*> modes = {"bf16-emulated"};
  if (cpu_bf16_support().native) modes.push_back("bf16");
  ModelConfig llama;
  llama.arch = "llama";
  llama.vocab_size = 41;
  llama.max_seq_len = 32;
  llama.num_layers = 2;
  llama.num_heads = 6;
  llama.num_kv_heads = 2;
  llama.channels = 24;
  llama.head_dim = 4;
  llama.ffn_size = 40;
  llama.value_head = true;
  ForwardOptions o;
  o.values = true;
  for (const char* mode : modes)
    for (int variant : {0, 1, 2}) {  // GPT-2, Llama, GPT-2 with 32-wide heads
      const bool is_llama = variant == 1;
      auto make = [&](const char* budget_mb) -> std::unique_ptr<ModelBackend> {
        setenv("S2S_CPU_PRECISION", mode, 1);
        setenv("S2S_OPERAND_CACHE_MB", budget_mb, 1);
        std::unique_ptr<ModelBackend> m;
        if (is_llama) m = std::make_unique<LlamaCpu>(llama);
        else m = std::make_unique<GPT>(GPTConfig{97, 32, 2, variant == 2 ? 2 : 4, 64, true});
        setenv("S2S_CPU_PRECISION", "fp32", 1);
        unsetenv("S2S_OPERAND_CACHE_MB");
        return m;
      };
      auto kept = make("512"), fresh = make("0");
      const int V = is_llama ? 41 : 97;
      const std::string name = std::string(mode) + (is_llama ? " llama" : variant == 2 ? " gpt2 hd32" : " gpt2");
      auto fail = [](const std::string& who, const std::string& what) {
        std::printf("  FAIL %s: %s\n", who.c_str(), what.c_str());
        harness::failures()++;
      };
      Vec gk, gf;
      for (auto* m : {kept.get(), fresh.get()}) {
        m->init_weights(8);
        auto other = tokens_for(2, 9, V, 5);
        m->forward(other.data(), other.data(), 2, 9, o);  // another shape first: its copies must not serve
        const int B = 3, T = variant == 2 ? 32 : 20;
        auto tok = tokens_for(B, T, V, 6);
        Vec dlogprob(B * T, 1.0f / (B * T)), dvalue(B * T, 0.25f / (B * T));
        m->forward(tok.data(), tok.data(), B, T, o);
        m->backward(dlogprob.data(), dvalue.data());
        m->backward(dlogprob.data(), dvalue.data());  // the same forward's activations, twice
        Vec g(m->num_params());
        m->read_buffer(BufferKind::grads, 0, g.size(), g.data());
        (m == kept.get() ? gk : gf) = g;
      }
      auto hits = [&](ModelBackend* m) {
        return is_llama ? static_cast<LlamaCpu*>(m)->ops().operand_cache_hits()
                        : static_cast<GPT*>(m)->ops().operand_cache_hits();
      };
      if (hits(kept.get()) == 0) fail(name, "the backward took no kept operand");
      if (hits(fresh.get()) != 0) fail(name, "a zero budget still kept operands");
      if (std::memcmp(gk.data(), gf.data(), gk.size() * sizeof(float)) != 0)
        fail(name, "kept operands changed the gradients");
    }
}

// The Llama architecture as a whole on the CPU, for each family variant: gradients against central
// differences of the loss, generation with the KV cache against full recomputation (greedy tokens
// and sampled log-probs), the rotary tables against transformers' formulas written out here, and
// the config checks. The numeric reference for the forward and every gradient is Hugging Face's
// definition written independently in tfjs (test/llama-vs-reference.test.ts); these tests pin what
// that one cannot see: the KV cache, the fused layout and the config errors.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/model_cpu.h"
#include "harness.h"

using namespace s2s;
using Vec = std::vector<float>;

namespace {

// The four families' distinguishing features at toy sizes.
struct Variant {
  const char* name;
  ModelConfig cfg;
};

ModelConfig base(int V, int maxT, int L, int NH, int KVH, int C, int hd, int F) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = V;
  c.max_seq_len = maxT;
  c.num_layers = L;
  c.num_heads = NH;
  c.num_kv_heads = KVH;
  c.channels = C;
  c.head_dim = hd;
  c.ffn_size = F;
  return c;
}

std::vector<Variant> variants(bool value_head) {
  std::vector<Variant> v;
  ModelConfig smol = base(41, 32, 2, 6, 2, 24, 4, 40);  // GQA 3, tied, theta 1e5
  smol.rope_theta = 1e5;
  v.push_back({"smollm2-like", smol});
  ModelConfig qwen = base(43, 32, 2, 4, 2, 16, 4, 24);  // q/k/v biases, theta 1e6, eps 1e-6
  qwen.rope_theta = 1e6;
  qwen.norm_eps = 1e-6;
  qwen.qkv_bias = true;
  v.push_back({"qwen2-like", qwen});
  ModelConfig tiny = base(37, 32, 2, 4, 1, 16, 4, 32);  // untied lm_head, GQA 4
  tiny.tie_embeddings = false;
  v.push_back({"tinyllama-like", tiny});
  ModelConfig l32 = base(39, 32, 2, 4, 2, 24, 8, 32);  // llama3 scaling, head_dim != C / NH
  l32.rope_theta = 5e5;
  l32.rope_scaling = "llama3";
  l32.rope_factor = 32;
  l32.rope_original_max_pos = 16;
  v.push_back({"llama3.2-like", l32});
  for (auto& x : v) x.cfg.value_head = value_head;
  return v;
}

// Weights away from their init (norm weights and biases not 1 and 0), so every path carries a
// visible gradient.
void randomise(LlamaCpu& m, uint64_t seed) {
  m.init_weights(seed);
  Vec noise(m.num_params());
  harness::fill_uniform(noise.data(), noise.size(), seed + 100, -0.5f, 0.5f);
  for (const TensorInfo& t : m.layout())
    for (size_t i = 0; i < t.numel; i++) {
      float& p = m.params[t.offset + i];
      p = t.decay ? p * 8.0f : p + noise[t.offset + i];
    }
}

std::vector<int32_t> tokens_for(int n, int V, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = (i * 13 + salt * 7 + 5) % V;
  return t;
}

// log-softmax of the model's logits at the last position of seq (a full forward over it).
std::vector<double> last_logprobs(LlamaCpu& m, const std::vector<int32_t>& seq) {
  const int T = (int)seq.size(), V = m.config().vocab_size;
  std::vector<double> out(V);
  std::vector<int32_t> tgt(T, -1);
  ForwardOptions o;
  for (int v = 0; v < V; v++) {
    tgt[T - 1] = v;
    out[v] = m.forward(seq.data(), tgt.data(), 1, T, o).logprob[T - 1];
  }
  return out;
}

}  // namespace

TEST(layout_names_and_shapes_are_transformers_and_q_k_v_lie_side_by_side) {
  for (const Variant& v : variants(true)) {
    LlamaCpu m(v.cfg);
    const ModelConfig& c = m.config();
    size_t want = (size_t)c.vocab_size * c.channels * (c.tie_embeddings ? 1 : 2) + c.channels + c.channels;
    const size_t qw = (size_t)c.num_heads * c.head_dim, kw = (size_t)c.num_kv_heads * c.head_dim;
    size_t per_layer = 2 * c.channels + c.channels * (qw + 2 * kw) + qw * c.channels + 3 * (size_t)c.channels * c.ffn_size;
    if (c.qkv_bias) per_layer += qw + 2 * kw;
    want += per_layer * c.num_layers;
    EXPECT(m.num_params() == want);
    const auto& L = m.layout();
    auto find = [&](const std::string& n) -> const TensorInfo* {
      for (const TensorInfo& t : L)
        if (t.name == n) return &t;
      return nullptr;
    };
    const TensorInfo* q = find("model.layers.1.self_attn.q_proj.weight");
    const TensorInfo* k = find("model.layers.1.self_attn.k_proj.weight");
    EXPECT(q && k && q->shape == std::vector<int64_t>({(int64_t)qw, c.channels}) && q->offset + q->numel == k->offset);
    EXPECT(find("model.layers.0.self_attn.o_proj.weight")->shape == std::vector<int64_t>({c.channels, (int64_t)qw}));
    EXPECT(find("model.layers.0.mlp.down_proj.weight")->shape == std::vector<int64_t>({c.channels, c.ffn_size}));
    EXPECT((find("lm_head.weight") != nullptr) == !c.tie_embeddings);
    EXPECT((find("model.layers.0.self_attn.q_proj.bias") != nullptr) == c.qkv_bias);
    EXPECT(find("model.layers.0.self_attn.o_proj.bias") == nullptr);
    EXPECT(find("score.weight") && find("score.weight")->shape == std::vector<int64_t>({1, c.channels}));
  }
}

TEST(gradients_match_finite_differences_for_every_variant) {
  for (const Variant& v : variants(true)) {
    LlamaCpu m(v.cfg);
    randomise(m, 3);
    const int B = 2, T = 7, V = m.config().vocab_size;
    auto tok = tokens_for(B * T, V, 3);
    std::vector<int32_t> tgt(B * T);
    for (int i = 0; i < B * T; i++) tgt[i] = (i * 11 + 2) % V;
    tgt[4] = -1;
    Vec w(B * T), u(B * T);
    harness::fill_uniform(w.data(), w.size(), 5);
    harness::fill_uniform(u.data(), u.size(), 6);
    ForwardOptions o;
    o.values = true;
    auto loss = [&]() {
      ForwardResult r = m.forward(tok.data(), tgt.data(), B, T, o);
      double s = 0;
      for (int i = 0; i < B * T; i++) s += (double)w[i] * r.logprob[i] + (double)u[i] * r.values[i];
      return s;
    };
    loss();
    m.zero_grad();
    m.backward(w.data(), u.data());
    Vec grad(m.grads.data(), m.grads.data() + m.num_params());
    int bad = 0;
    for (const TensorInfo& t : m.layout())
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
        if (err > 2e-2) {
          bad++;
          std::printf("  %s %s[%zu]: finite difference %.6g, backward %.6g\n", v.name, t.name.c_str(), i - t.offset, fd,
                      grad[i]);
        }
      }
    EXPECT(bad == 0);
  }
}

TEST(greedy_generation_with_the_kv_cache_equals_full_recomputation) {
  for (const Variant& v : variants(false)) {
    LlamaCpu m(v.cfg);
    randomise(m, 5);
    std::vector<std::vector<int32_t>> prompts = {{3, 1, 4}, {2}, {5, 9, 2, 6, 5, 3}};
    GenerateOptions o;
    o.max_new_tokens = 7;
    o.sampling.temperature = 0.0f;
    GenerateResult g = m.generate(prompts, o);
    for (size_t b = 0; b < prompts.size(); b++) {
      std::vector<int32_t> seq = prompts[b];
      for (int s = 0; s < g.lengths[b]; s++) {
        std::vector<double> lp = last_logprobs(m, seq);
        int want = (int)(std::max_element(lp.begin(), lp.end()) - lp.begin());
        if (g.tokens[b * o.max_new_tokens + s] != want)
          std::printf("  %s row %zu step %d: cached %d, recomputed %d\n", v.name, b, s, g.tokens[b * o.max_new_tokens + s],
                      want);
        EXPECT(g.tokens[b * o.max_new_tokens + s] == want);
        EXPECT(std::fabs(lp[want] - g.logprobs[b * o.max_new_tokens + s]) < 1e-4);
        seq.push_back(want);
      }
    }
  }
}

TEST(sampled_generation_logprobs_equal_a_full_recompute) {
  for (const Variant& v : variants(false)) {
    LlamaCpu m(v.cfg);
    randomise(m, 6);
    std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4, 4}};
    GenerateOptions o;
    o.max_new_tokens = 5;
    o.sampling.temperature = 1.0f;
    o.seed = 9;
    GenerateResult g = m.generate(prompts, o);
    for (size_t b = 0; b < prompts.size(); b++) {
      std::vector<int32_t> seq = prompts[b];
      for (int s = 0; s < g.lengths[b]; s++) {
        int tok = g.tokens[b * o.max_new_tokens + s];
        EXPECT(std::fabs(last_logprobs(m, seq)[tok] - g.logprobs[b * o.max_new_tokens + s]) < 1e-4);
        seq.push_back(tok);
      }
    }
  }
}

// transformers' inv_freq (default and llama3), written out from modeling_rope_utils.
TEST(rotary_tables_follow_transformers) {
  ModelConfig c = base(10, 64, 1, 2, 2, 32, 16, 8);
  c.rope_theta = 10000;
  std::vector<float> cs, sn;
  arch::Llama::rope_tables(c.resolved(), &cs, &sn);
  const int half = 8;
  for (int p : {0, 1, 7, 63})
    for (int i = 0; i < half; i++) {
      double inv = 1.0 / std::pow(10000.0, 2.0 * i / 16.0);
      EXPECT(std::fabs(cs[p * half + i] - std::cos(p * inv)) < 2e-5 * std::max(1, p));
      EXPECT(std::fabs(sn[p * half + i] - std::sin(p * inv)) < 2e-5 * std::max(1, p));
    }
  // llama3: factor 8, low 1, high 4, original 32. Wavelengths 2 pi / inv: above 32 -> inv / 8;
  // below 8 -> inv; between: (1 - s) inv / 8 + s inv with s = (32 / wavelen - 1) / 3.
  c.rope_scaling = "llama3";
  c.rope_factor = 8;
  c.rope_low_freq_factor = 1;
  c.rope_high_freq_factor = 4;
  c.rope_original_max_pos = 32;
  arch::Llama::rope_tables(c.resolved(), &cs, &sn);
  int bands[3] = {0, 0, 0};
  for (int i = 0; i < half; i++) {
    double inv = 1.0 / std::pow(10000.0, 2.0 * i / 16.0), wl = 2 * M_PI / inv, want;
    if (wl < 8) {
      want = inv;
      bands[0]++;
    } else if (wl > 32) {
      want = inv / 8;
      bands[2]++;
    } else {
      double s = (32 / wl - 1) / 3;
      want = (1 - s) * inv / 8 + s * inv;
      bands[1]++;
    }
    EXPECT(std::fabs(sn[1 * half + i] - std::sin(want)) < 1e-5);
  }
  EXPECT(bands[0] > 0 && bands[1] > 0 && bands[2] > 0);  // every band is exercised
}

TEST(bad_configs_are_refused_with_the_field_named) {
  ModelConfig c = base(10, 8, 1, 6, 4, 24, 4, 8);
  EXPECT_THROWS_WITH(LlamaCpu{c}, "numHeads (6) must be a multiple of numKvHeads (4)");
  c = base(10, 8, 1, 4, 2, 24, 5, 8);
  EXPECT_THROWS_WITH(LlamaCpu{c}, "headDim must be a positive even integer");
  c = base(10, 8, 1, 4, 2, 24, 6, 8);
  c.rope_scaling = "yarn";
  EXPECT_THROWS_WITH(LlamaCpu{c}, "ropeScaling must be 'none' or 'llama3'");
  c.rope_scaling = "llama3";
  c.rope_low_freq_factor = 4;
  c.rope_high_freq_factor = 1;
  EXPECT_THROWS_WITH(LlamaCpu{c}, "ropeLowFreqFactor < ropeHighFreqFactor");
  ModelConfig g;
  g.vocab_size = 10;
  g.max_seq_len = 8;
  g.num_layers = 1;
  g.num_heads = 2;
  g.channels = 8;
  g.num_kv_heads = 1;
  EXPECT_THROWS_WITH(GPT{g}, "gpt2 has no grouped-query attention");
  g.num_kv_heads = 0;
  g.tie_embeddings = false;
  EXPECT_THROWS_WITH(GPT{g}, "tieEmbeddings must be true");
}

int main() { return harness::run_all(); }

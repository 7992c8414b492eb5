// GPT-2's config checks, tensor layout, view, initialisation and FLOPs.
#include "arch/gpt2.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "common.h"

namespace s2s {

float* tensor_at(const std::vector<TensorInfo>& layout, float* base, const std::string& name) {
  for (const TensorInfo& t : layout)
    if (t.name == name) return base + t.offset;
  throw Error("the model has no tensor named " + name);
}

namespace arch {

void GPT2::validate(const ModelConfig& c) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error("invalid model config: " + msg);
  };
  need(c.vocab_size > 0, "vocab_size must be a positive integer, got " + std::to_string(c.vocab_size));
  need(c.max_seq_len > 0, "n_positions must be a positive integer, got " + std::to_string(c.max_seq_len));
  need(c.num_layers > 0, "n_layer must be a positive integer, got " + std::to_string(c.num_layers));
  need(c.num_heads > 0, "n_head must be a positive integer, got " + std::to_string(c.num_heads));
  need(c.channels > 0, "n_embd must be a positive integer, got " + std::to_string(c.channels));
  need(c.channels % c.num_heads == 0, "n_embd (" + std::to_string(c.channels) + ") must be divisible by n_head (" +
                                          std::to_string(c.num_heads) + ")");
  // The Llama family's options have one value in GPT-2.
  need(c.num_kv_heads == c.num_heads, "gpt2 has no grouped-query attention: numKvHeads must equal numHeads");
  need(c.head_dim == c.channels / c.num_heads, "gpt2's headDim is channels / numHeads");
  need(c.ffn_size == 4 * c.channels, "gpt2's MLP width (ffnSize) is 4 * channels");
  need(c.norm_eps == 1e-5, "gpt2's LayerNorm epsilon (normEps) is 1e-5");
  need(c.rope_scaling == "none", "gpt2 has no rotary embeddings (ropeScaling must be 'none')");
  need(!c.qkv_bias, "gpt2's attention always has biases; qkvBias (the Llama family's option) must be false");
  need(c.tie_embeddings, "gpt2 ties the LM head to the token embedding (tieEmbeddings must be true)");
}

std::vector<TensorInfo> GPT2::layout(const ModelConfig& cfg, size_t* num_params) {
  const int64_t V = cfg.vocab_size, C = cfg.channels, maxT = cfg.max_seq_len;
  LayoutBuilder b;
  // matrices and embeddings decay; biases and LayerNorm parameters do not
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    bool decay = shape.size() >= 2;
    b.add(name, std::move(shape), decay);
  };
  add("transformer.wte.weight", {V, C});
  add("transformer.wpe.weight", {maxT, C});
  for (int l = 0; l < cfg.num_layers; l++) {
    std::string p = "transformer.h." + std::to_string(l) + ".";
    add(p + "ln_1.weight", {C});
    add(p + "ln_1.bias", {C});
    add(p + "attn.c_attn.weight", {C, 3 * C});
    add(p + "attn.c_attn.bias", {3 * C});
    add(p + "attn.c_proj.weight", {C, C});
    add(p + "attn.c_proj.bias", {C});
    add(p + "ln_2.weight", {C});
    add(p + "ln_2.bias", {C});
    add(p + "mlp.c_fc.weight", {C, 4 * C});
    add(p + "mlp.c_fc.bias", {4 * C});
    add(p + "mlp.c_proj.weight", {4 * C, C});
    add(p + "mlp.c_proj.bias", {C});
  }
  add("transformer.ln_f.weight", {C});
  add("transformer.ln_f.bias", {C});
  if (cfg.value_head) add("score.weight", {1, C});
  *num_params = b.size;
  return b.tensors;
}

GPT2::Params GPT2::view(const ModelConfig& cfg, const std::vector<TensorInfo>& layout, float* base) {
  auto at = [&](const std::string& name) { return tensor_at(layout, base, name); };
  Params p;
  p.wte = at("transformer.wte.weight");
  p.wpe = at("transformer.wpe.weight");
  p.lnfw = at("transformer.ln_f.weight");
  p.lnfb = at("transformer.ln_f.bias");
  p.lm_head = p.wte;
  p.score = cfg.value_head ? at("score.weight") : nullptr;
  for (int l = 0; l < cfg.num_layers; l++) {
    std::string h = "transformer.h." + std::to_string(l) + ".";
    p.layers.push_back({at(h + "ln_1.weight"), at(h + "ln_1.bias"), at(h + "attn.c_attn.weight"),
                        at(h + "attn.c_attn.bias"), at(h + "attn.c_proj.weight"), at(h + "attn.c_proj.bias"),
                        at(h + "ln_2.weight"), at(h + "ln_2.bias"), at(h + "mlp.c_fc.weight"), at(h + "mlp.c_fc.bias"),
                        at(h + "mlp.c_proj.weight"), at(h + "mlp.c_proj.bias")});
  }
  return p;
}

double GPT2::flops_per_token(const ModelConfig& cfg, int T) {
  double L = cfg.num_layers, C = cfg.channels, V = cfg.vocab_size;
  double matmul_params = L * 12.0 * C * C + V * C;
  return 6.0 * matmul_params + 6.0 * L * C * T;
}

void GPT2::init(float* params, const ModelConfig& cfg, const std::vector<TensorInfo>& layout, uint64_t seed) {
  const double std0 = 0.02, std_proj = 0.02 / std::sqrt(2.0 * cfg.num_layers);
  const size_t CHUNK = 1 << 16;
  for (size_t ti = 0; ti < layout.size(); ti++) {
    const TensorInfo& t = layout[ti];
    float* p = params + t.offset;
    bool is_norm_weight = t.name.find(".ln_") != std::string::npos && t.name.find(".weight") != std::string::npos;
    if (!t.decay) {  // biases and LayerNorm parameters
      std::fill(p, p + t.numel, is_norm_weight ? 1.0f : 0.0f);
      continue;
    }
    bool proj = t.name.find("c_proj.weight") != std::string::npos;
    double sd = proj ? std_proj : std0;
    size_t nchunks = (t.numel + CHUNK - 1) / CHUNK;
    // Each chunk has its own RNG stream, so the weights do not depend on the thread count.
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (size_t c = 0; c < nchunks; c++) {
      Rng rng(seed, ((uint64_t)ti << 32) | c);
      size_t end = std::min(t.numel, (c + 1) * CHUNK);
      for (size_t i = c * CHUNK; i < end; i++) p[i] = (float)(rng.normal() * sd);
    }
  }
}

}  // namespace arch
}  // namespace s2s

// The Llama family's config checks, tensor layout, view, initialisation, FLOPs and rotary tables.
#include "arch/llama.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "common.h"

namespace s2s {
namespace arch {

void Llama::validate(const ModelConfig& c) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error("invalid model config: " + msg);
  };
  auto str = [](double v) {
    std::string s = std::to_string(v);
    return s;
  };
  need(c.vocab_size > 0, "vocabSize must be a positive integer, got " + std::to_string(c.vocab_size));
  need(c.max_seq_len > 0, "maxSeqLen must be a positive integer, got " + std::to_string(c.max_seq_len));
  need(c.num_layers > 0, "numLayers must be a positive integer, got " + std::to_string(c.num_layers));
  need(c.num_heads > 0, "numHeads must be a positive integer, got " + std::to_string(c.num_heads));
  need(c.channels > 0, "channels must be a positive integer, got " + std::to_string(c.channels));
  need(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0,
       "numHeads (" + std::to_string(c.num_heads) + ") must be a multiple of numKvHeads (" +
           std::to_string(c.num_kv_heads) + ")");
  need(c.head_dim > 0 && c.head_dim % 2 == 0,
       "headDim must be a positive even integer (rotary embeddings pair its halves), got " +
           std::to_string(c.head_dim));
  need(c.ffn_size > 0, "ffnSize must be a positive integer, got " + std::to_string(c.ffn_size));
  need(c.norm_eps > 0 && std::isfinite(c.norm_eps), "normEps must be positive, got " + str(c.norm_eps));
  need(c.rope_theta > 0 && std::isfinite(c.rope_theta), "ropeTheta must be positive, got " + str(c.rope_theta));
  need(c.rope_scaling == "none" || c.rope_scaling == "llama3",
       "ropeScaling must be 'none' or 'llama3', got '" + c.rope_scaling + "'");
  if (c.rope_scaling == "llama3") {
    need(c.rope_factor > 0, "ropeFactor must be positive, got " + str(c.rope_factor));
    need(c.rope_low_freq_factor > 0 && c.rope_high_freq_factor > c.rope_low_freq_factor,
         "llama3 rope scaling needs 0 < ropeLowFreqFactor < ropeHighFreqFactor, got " + str(c.rope_low_freq_factor) +
             " and " + str(c.rope_high_freq_factor));
    need(c.rope_original_max_pos > 0, "ropeOriginalMaxPos must be positive");
  }
}

std::vector<TensorInfo> Llama::layout(const ModelConfig& c, size_t* num_params) {
  const int64_t V = c.vocab_size, C = c.channels, F = c.ffn_size;
  const int64_t QW = (int64_t)c.num_heads * c.head_dim, KW = (int64_t)c.num_kv_heads * c.head_dim;
  LayoutBuilder b;
  // matrices and embeddings decay; biases and norm weights do not
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    bool decay = shape.size() >= 2;
    b.add(name, std::move(shape), decay);
  };
  add("model.embed_tokens.weight", {V, C});
  for (int l = 0; l < c.num_layers; l++) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C});
    // q, k, v weights side by side: one [(NH + 2 KVH) hd, C] matrix (and their biases one vector)
    add(p + "self_attn.q_proj.weight", {QW, C});
    add(p + "self_attn.k_proj.weight", {KW, C});
    add(p + "self_attn.v_proj.weight", {KW, C});
    if (c.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {QW});
      add(p + "self_attn.k_proj.bias", {KW});
      add(p + "self_attn.v_proj.bias", {KW});
    }
    add(p + "self_attn.o_proj.weight", {C, QW});
    add(p + "post_attention_layernorm.weight", {C});
    // gate and up side by side: one [2F, C] matrix
    add(p + "mlp.gate_proj.weight", {F, C});
    add(p + "mlp.up_proj.weight", {F, C});
    add(p + "mlp.down_proj.weight", {C, F});
  }
  add("model.norm.weight", {C});
  if (!c.tie_embeddings) add("lm_head.weight", {V, C});
  if (c.value_head) add("score.weight", {1, C});
  *num_params = b.size;
  return b.tensors;
}

Llama::Params Llama::view(const ModelConfig& c, const std::vector<TensorInfo>& layout, float* base) {
  auto at = [&](const std::string& name) { return tensor_at(layout, base, name); };
  // The fused views rely on the layout placing the parts one after another.
  auto next = [&](const std::string& first, const std::string& second) {
    float* a = at(first);
    float* b = at(second);
    for (const TensorInfo& t : layout)
      if (t.name == first && a + t.numel != b) throw Error("layout: " + second + " does not follow " + first);
    return a;
  };
  Params p;
  p.wte = at("model.embed_tokens.weight");
  p.wpe = nullptr;
  p.normw = at("model.norm.weight");
  p.lm_head = c.tie_embeddings ? p.wte : at("lm_head.weight");
  p.score = c.value_head ? at("score.weight") : nullptr;
  for (int l = 0; l < c.num_layers; l++) {
    std::string h = "model.layers." + std::to_string(l) + ".";
    Layer w;
    w.ln1w = at(h + "input_layernorm.weight");
    w.qkvw = next(h + "self_attn.q_proj.weight", h + "self_attn.k_proj.weight");
    next(h + "self_attn.k_proj.weight", h + "self_attn.v_proj.weight");
    w.qkvb = nullptr;
    if (c.qkv_bias) {
      w.qkvb = next(h + "self_attn.q_proj.bias", h + "self_attn.k_proj.bias");
      next(h + "self_attn.k_proj.bias", h + "self_attn.v_proj.bias");
    }
    w.ow = at(h + "self_attn.o_proj.weight");
    w.ln2w = at(h + "post_attention_layernorm.weight");
    w.gateupw = next(h + "mlp.gate_proj.weight", h + "mlp.up_proj.weight");
    w.downw = at(h + "mlp.down_proj.weight");
    p.layers.push_back(w);
  }
  return p;
}

double Llama::flops_per_token(const ModelConfig& c, int T) {
  double L = c.num_layers, C = c.channels, V = c.vocab_size, F = c.ffn_size;
  double QW = (double)c.num_heads * c.head_dim, KW = (double)c.num_kv_heads * c.head_dim;
  double per_layer = C * (QW + 2 * KW) + QW * C + 3.0 * C * F;
  return 6.0 * (L * per_layer + V * C) + 6.0 * L * QW * T;
}

void Llama::init(float* params, const ModelConfig& c, const std::vector<TensorInfo>& layout, uint64_t seed) {
  (void)c;
  const double sd = 0.02;
  const size_t CHUNK = 1 << 16;
  for (size_t ti = 0; ti < layout.size(); ti++) {
    const TensorInfo& t = layout[ti];
    float* p = params + t.offset;
    if (!t.decay) {  // biases 0, norm weights 1
      bool bias = t.name.size() >= 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
      std::fill(p, p + t.numel, bias ? 0.0f : 1.0f);
      continue;
    }
    size_t nchunks = (t.numel + CHUNK - 1) / CHUNK;
    // Each chunk has its own RNG stream, so the weights do not depend on the thread count.
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (size_t k = 0; k < nchunks; k++) {
      Rng rng(seed, ((uint64_t)ti << 32) | k);
      size_t end = std::min(t.numel, (k + 1) * CHUNK);
      for (size_t i = k * CHUNK; i < end; i++) p[i] = (float)(rng.normal() * sd);
    }
  }
}

void Llama::rope_tables(const ModelConfig& c, std::vector<float>* cos, std::vector<float>* sin) {
  const int half = c.head_dim / 2;
  // inv_freq in fp32, as transformers computes it: 1 / theta^(2i / hd)
  std::vector<float> inv(half);
  for (int i = 0; i < half; i++)
    inv[i] = 1.0f / std::pow((float)c.rope_theta, (float)(2 * i) / (float)c.head_dim);
  if (c.rope_scaling == "llama3") {
    // transformers' _compute_llama3_parameters: low frequencies divided by factor, high ones kept,
    // the band between interpolated.
    const float factor = (float)c.rope_factor, lo = (float)c.rope_low_freq_factor, hi = (float)c.rope_high_freq_factor;
    const float old_len = (float)c.rope_original_max_pos;
    const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
    for (int i = 0; i < half; i++) {
      float wavelen = 2.0f * (float)M_PI / inv[i];
      float f = wavelen > low_wavelen ? inv[i] / factor : inv[i];
      float smooth = (old_len / wavelen - lo) / (hi - lo);
      float smoothed = (1.0f - smooth) * f / factor + smooth * f;
      bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      inv[i] = medium ? smoothed : f;
    }
  }
  const int64_t maxT = c.max_seq_len;
  cos->resize(maxT * half);
  sin->resize(maxT * half);
  for (int64_t p = 0; p < maxT; p++)
    for (int i = 0; i < half; i++) {
      float angle = (float)p * inv[i];  // the fp32 product transformers forms
      (*cos)[p * half + i] = (float)std::cos((double)angle);
      (*sin)[p * half + i] = (float)std::sin((double)angle);
    }
}

}  // namespace arch
}  // namespace s2s

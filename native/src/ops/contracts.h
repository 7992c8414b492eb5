// The op contracts both devices implement: argument structs, rules and constants that the CPU
// kernels (src/cpu/) and the CUDA kernels (src/cuda/) share, so that one composition
// (src/model_impl.h, src/arch/) drives either.
#pragma once

#include <cstdint>

#include "ops/strides.h"

namespace s2s {

// How matmuls multiply: fp32 throughout, or bf16 inputs with fp32 accumulation and fp32 outputs
// (weights, activations and optimizer state stay fp32). A device's own setting.
enum class Precision { fp32, bf16 };
inline const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

// LayerNorm's epsilon (GPT-2's layer_norm_epsilon).
constexpr float kLayerNormEps = 1e-5f;

// The shape of causal self-attention over a packed projection qkv [B, T, (NH + 2 KVH) * hd]: NH
// query heads, then KVH key heads, then KVH value heads, hd channels each (GPT-2's c_attn: KVH = NH;
// Llama's q_proj, k_proj, v_proj laid out side by side). Query head h reads key/value head
// h / (NH / KVH) (grouped-query attention). Scores are scaled by 1/sqrt(hd). The output is
// [B, T, NH * hd] (the heads side by side); KV caches are [B, maxT, KVH * hd] per layer.
struct AttnShape {
  int B, T, NH, KVH, hd;
  int group() const { return NH / KVH; }
  int64_t q_width() const { return (int64_t)NH * hd; }
  int64_t kv_width() const { return (int64_t)KVH * hd; }
  int64_t qkv_width() const { return (int64_t)(NH + 2 * KVH) * hd; }
};

struct SamplingConfig {
  float temperature = 1.0f;  // 0 means greedy
  int top_k = 0;             // 0 means no top-k filter
  float top_p = 1.0f;        // 1 means no nucleus filter
};

// The fused LM head's arguments: logits = lnf @ lm_head^T * inv_temp, in chunks of rows when the
// caller does not keep all of them.
struct ClassifierArgs {
  const float* lnf;        // [N, C] final hidden states
  const float* wte;        // [V, C] the LM head (GPT-2: tied to the token embedding)
  const int32_t* targets;  // [N]; a negative target means "no target" (log-prob 0, no gradient)
  int64_t N;
  int C, V;
  float inv_temp;      // logits are lnf @ wte^T * inv_temp
  float* logits;       // [N, V] when the caller keeps all logits for backward, else null
  float* scratch;      // [chunk, V] used when logits is null
  int64_t chunk;       // rows per chunk when logits is null
  Precision precision = Precision::fp32;
};

// Reward extraction's rule: a token before the first divergence scores `positive`; at or after
// it, a diverging token scores `negative` and a matching one `neutral`.
struct DivergenceRule {
  float positive = 1.0f, negative = -1.0f, neutral = 0.0f;
};

}  // namespace s2s

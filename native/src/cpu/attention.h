// Causal multi-head self-attention over a packed qkv tensor [B,T,3C] (q, k, v side by side, each
// split into NH heads of hs = C/NH channels, as GPT-2's c_attn produces them).
#pragma once

#include <cstdint>

namespace s2s {

// out[B,T,C]: the heads' outputs side by side; att[B,NH,T,T]: the softmax probabilities, saved
// for backward (zero above the diagonal).
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
// dqkv[B,T,3C] is overwritten; datt[B,NH,T,T] is scratch.
void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        int B, int T, int C, int NH);

void attention_forward_naive(float* out, float* att, const float* qkv, int B, int T, int C, int NH);

// One decoding step with a KV cache: row b's query (the q part of qkv[b, 0:C], rows 3C apart)
// attends to kcache/vcache[b, 0..pos[b]] (layout [B, maxT, C]; position pos[b] must already hold
// the new key and value). out is [B, C].
void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache,
                      const int32_t* pos, int B, int maxT, int C, int NH);
// Writes row b's new key and value (from qkv[b], rows 3C apart) at position pos[b] of the caches.
void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int B, int maxT, int C);
// Copies the prompt positions t < len[b] of a prefill's qkv [B, P, 3C] into the caches.
void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int B, int P, int maxT,
                      int C);

}  // namespace s2s

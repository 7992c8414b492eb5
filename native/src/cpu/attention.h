// Causal multi-head (and grouped-query) self-attention over a packed qkv tensor
// [B, T, (NH + 2 KVH) * hd] (AttnShape in ops/contracts.h: query heads, key heads, value heads side
// by side, as GPT-2's c_attn or Llama's q/k/v projections produce them).
#pragma once

#include <cstdint>

#include "ops/contracts.h"

namespace s2s {

// out[B, T, NH*hd]: the heads' outputs side by side; att[B, NH, T, T]: the softmax probabilities,
// saved for backward (zero above the diagonal). Where the AMX kernels run both ways (bf16, head
// size a multiple of 32, T a multiple of 32), a training forward (operands kept) leaves att
// unwritten and keeps each row's max and 1 / sum instead, from which the backward makes the
// probabilities again, bit for bit: a T x T square per head is neither written nor read back, and
// att's pages are never touched.
void attention_forward(float* out, float* att, const float* qkv, const AttnShape& s);
// dqkv[B, T, qkv_width] is overwritten; datt[B, NH, T, T] is scratch. With KVH < NH, a key/value
// head's gradient sums over the query heads of its group.
void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        const AttnShape& s);

void attention_forward_naive(float* out, float* att, const float* qkv, const AttnShape& s);

// One decoding step with a KV cache (s.T is 1: one row of qkv per batch row b, qkv_width apart):
// row b's query heads attend to kcache/vcache[b, 0..pos[b]] (layout [B, maxT, KVH*hd]; position
// pos[b] must already hold the new key and value). out is [B, NH*hd].
void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache,
                      const int32_t* pos, int maxT, const AttnShape& s);
// Writes row b's new key and value (from qkv[b]) at position pos[b] of the caches (s.T is 1).
void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int maxT,
                    const AttnShape& s);
// Copies the prompt positions t < len[b] of a prefill's qkv [B, s.T, qkv_width] into the caches.
void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int maxT,
                      const AttnShape& s);

}  // namespace s2s

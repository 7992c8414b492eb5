// Token + learned position embedding (GPT-2's wte and wpe).
#pragma once

#include <cstdint>

namespace s2s {

// out[b,t,:] = wte[tokens[b,t],:] + wpe[pos[b] + t,:]; pos: per-row start positions [B], or null
// for 0 (generation passes each row's). wpe null: no position embedding (Llama: rotary instead).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                       int C, const int32_t* pos = nullptr);
// dwte[tokens[b,t],:] += dout[b,t,:];  dwpe[t,:] += dout[b,t,:] (skipped when dwpe is null)
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                        int C);

void embedding_forward_naive(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                             int T, int C);

}  // namespace s2s

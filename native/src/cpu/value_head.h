// The scalar value head: one linear map, without bias, from the final hidden state to a number per
// position (Hugging Face GPT2ForSequenceClassification's `score`), used by the scalar reward model
// and the PPO critic. LayerNorm's bias before it already gives the head an offset.
#pragma once

#include <cstdint>

namespace s2s {

// values[n] = lnf[n,:] . weight
void value_head_forward(float* values, const float* lnf, const float* weight, int64_t N, int C);
// dlnf += dvalues * weight (accumulate), dweight += sum_n dvalues[n] lnf[n,:]
void value_head_backward(float* dlnf, float* dweight, const float* dvalues, const float* lnf,
                         const float* weight, int64_t N, int C);

}  // namespace s2s

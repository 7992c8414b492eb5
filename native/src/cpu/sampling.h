// Choosing the next token from a row of logits: greedy, temperature, top-k and top-p.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace s2s {

struct SamplingConfig {
  float temperature = 1.0f;  // 0 means greedy
  int top_k = 0;             // 0 means no top-k filter
  float top_p = 1.0f;        // 1 means no nucleus filter
};

// Reusable per-thread work space, so sampling allocates nothing per token.
struct SamplingWork {
  std::vector<float> prob;
  std::vector<int32_t> idx;
};

// Picks a token from logits[V]. *logprob receives its log-probability under the full (unfiltered)
// distribution softmax(logits / temperature), or softmax(logits) when greedy: this is the quantity
// the engine's forward() returns with the same temperature, so rollouts and training agree.
// The candidate order is fixed (descending probability, ties by index, when a filter is active;
// vocabulary order otherwise) and one uniform draw picks along it, so a seed fixes the result.
int32_t sample_token(const float* logits, int V, const SamplingConfig& cfg, Rng& rng, float* logprob,
                     SamplingWork& work);
int32_t sample_token_naive(const float* logits, int V, const SamplingConfig& cfg, Rng& rng, float* logprob);

}  // namespace s2s

// Choosing the next token from a row of logits: greedy, temperature, top-k and top-p.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"
#include "ops/contracts.h"  // SamplingConfig

namespace s2s {

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
// sample_token for every row b of logits [B, V] with done[b] == 0 (rows in parallel), into
// token[b] and logprob[b]; rng[b] is row b's stream.
void sample_tokens(const float* logits, int B, int V, const SamplingConfig& cfg, Rng* rng, const uint8_t* done,
                   int32_t* token, float* logprob);
int32_t sample_token_naive(const float* logits, int V, const SamplingConfig& cfg, Rng& rng, float* logprob);

}  // namespace s2s

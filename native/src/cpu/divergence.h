// The fused divergence scoring on the CPU, with the CUDA kernel's contract (src/cuda/divergence.cu):
// over a chunk of logits rows [M, V], row m predicting position pos[m] of batch row row[m], take
// each argmax (first index on ties, as torch.argmax), and once a batch row's whole span has been
// seen, find its first divergence and write the rule's scores.
#pragma once

#include <cstdint>

#include "ops/contracts.h"

namespace s2s {

// scores/argmax [B, T] and first [B] must be prepared (0, -1, -1) before the first call of a batch
// and counters [B] zeroed; a row's counter goes back to zero once the row is scored. Chunks come
// in any number of calls, each row of a span exactly once.
void divergence_score(const float* logits, int64_t M, int V, const int32_t* row, const int32_t* pos,
                      const int32_t* tokens, int T, const int32_t* spans, DivergenceRule rule, int32_t* argmax,
                      float* scores, int32_t* first, int32_t* counters);

}  // namespace s2s

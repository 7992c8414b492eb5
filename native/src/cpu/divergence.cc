// Divergence scoring: a row-parallel argmax over the chunk's logits, then the rule for each batch
// row whose span is complete.
#include "cpu/divergence.h"

#include "common.h"

namespace s2s {

namespace {

// The rule over batch row b's span, whose argmax entries are all written.
void score_row(int b, const int32_t* tokens, int T, const int32_t* spans, DivergenceRule rule, const int32_t* argmax,
               float* scores, int32_t* first) {
  const int start = spans[2 * b], end = spans[2 * b + 1];
  const int64_t o = (int64_t)b * T;
  int f = -1;
  for (int t = start; t < end; t++) {
    bool match = argmax[o + t] == tokens[o + t];
    if (f < 0 && !match) f = t;
    scores[o + t] = f < 0 ? rule.positive : (match ? rule.neutral : rule.negative);
  }
  first[b] = f < 0 ? -1 : f - start;
}

}  // namespace

void divergence_score(const float* logits, int64_t M, int V, const int32_t* row, const int32_t* pos,
                      const int32_t* tokens, int T, const int32_t* spans, DivergenceRule rule, int32_t* argmax,
                      float* scores, int32_t* first, int32_t* counters) {
#pragma omp parallel for schedule(static) if (M * V >= kMinParallelWork)
  for (int64_t m = 0; m < M; m++) {
    const float* l = logits + m * V;
    int best = 0;
    for (int v = 1; v < V; v++)
      if (l[v] > l[best]) best = v;
    argmax[(int64_t)row[m] * T + pos[m]] = best;
  }
  for (int64_t m = 0; m < M; m++) {
    const int b = row[m];
    if (++counters[b] < spans[2 * b + 1] - spans[2 * b]) continue;
    score_row(b, tokens, T, spans, rule, argmax, scores, first);
    counters[b] = 0;
  }
}

}  // namespace s2s

// The fused LM head: logits -> log-softmax -> gather -> entropy, and its backward, with the LM
// head tied to the token embedding wte [V, C]. Logits are produced chunk by chunk and never leave
// the engine; the backward recomputes the softmax from the logits and the saved log-sum-exp.
#pragma once

#include <cstdint>

namespace s2s {

struct ClassifierArgs {
  const float* lnf;        // [N, C] final hidden states
  const float* wte;        // [V, C]
  const int32_t* targets;  // [N]; a negative target means "no target" (log-prob 0, no gradient)
  int64_t N;
  int C, V;
  float inv_temp;      // logits are lnf @ wte^T * inv_temp
  float* logits;       // [N, V] when the caller keeps all logits for backward, else null
  float* scratch;      // [chunk, V] used when logits is null
  int64_t chunk;       // rows per chunk when logits is null
};

// logprob[n] = log softmax(logits_n)[target_n]; lse[n] = log-sum-exp (saved for backward);
// entropy[n] (optional) = entropy of softmax(logits_n).
void classifier_forward(const ClassifierArgs& a, float* logprob, float* entropy, float* lse);
// dlnf[N,C] = dlogits @ wte * inv_temp (overwritten), dwte += (dlogits^T @ lnf) * inv_temp, where
// dlogits[n,v] = dlogprob[n] * ([v == target_n] - softmax(logits_n)[v]).
void classifier_backward(const ClassifierArgs& a, float* dlnf, float* dwte, const float* dlogprob,
                         const float* lse);
// argmax_v logits_n for every row (first index on ties, as torch.argmax); logits via scratch.
void classifier_argmax(const ClassifierArgs& a, int32_t* argmax);

void classifier_forward_naive(const float* lnf, const float* wte, const int32_t* targets, int64_t N, int C,
                              int V, float inv_temp, float* logprob, float* entropy);
void classifier_backward_naive(const float* lnf, const float* wte, const int32_t* targets, int64_t N, int C,
                               int V, float inv_temp, const float* dlogprob, float* dlnf, float* dwte);
void classifier_argmax_naive(const float* lnf, const float* wte, int64_t N, int C, int V, int32_t* argmax);

}  // namespace s2s

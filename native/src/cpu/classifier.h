// The fused LM head: logits -> log-softmax -> gather -> entropy, and its backward, with the LM
// head tied to the token embedding wte [V, C]. Logits are produced chunk by chunk and never leave
// the engine; the backward recomputes the softmax from the logits and the saved log-sum-exp.
#pragma once

#include <cstdint>

#include "ops/contracts.h"  // ClassifierArgs

namespace s2s {

// logprob[n] = log softmax(logits_n)[target_n]; lse[n] = log-sum-exp (saved for backward);
// entropy[n] (optional) = entropy of softmax(logits_n).
void classifier_forward(const ClassifierArgs& a, float* logprob, float* entropy, float* lse);
// dlnf[N,C] = dlogits @ wte * inv_temp (overwritten), dwte += (dlogits^T @ lnf) * inv_temp (with
// accumulate false: dwte = ..., its old values never read, as matmul_backward's dweight), where
// dlogits[n,v] = dlogprob[n] * ([v == target_n] - softmax(logits_n)[v]).
void classifier_backward(const ClassifierArgs& a, float* dlnf, float* dwte, const float* dlogprob,
                         const float* lse, bool accumulate);

}  // namespace s2s

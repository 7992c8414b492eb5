// Causal attention's products on AMX tiles (Intel's Advanced Matrix Extensions), for the CPU's bf16
// setting: one head at a time, a block of 32 rows at a time, only the blocks on or below the
// diagonal multiplied (oneDNN's batched products compute the whole T x T square); in the forward
// the scores of a block stay in L1 from the product that makes them through the softmax to the
// product that reads the probabilities. cpu/attention.cc's oneDNN path is what it is checked
// against and what every other processor, shape and setting takes.
#pragma once

#include <cstdint>

#include "cpu/matmul.h"
#include "ops/contracts.h"

namespace s2s {

// Whether attention_forward_amx serves `s` here: bf16 matmuls, a processor with AMX-BF16 whose
// kernel lets this process use the tiles, a head size that is a multiple of 32, and
// S2S_ATTENTION_AMX not "0" (set to 0, the oneDNN path runs instead: for comparing the two).
bool attention_amx_usable(const AttnShape& s, CpuMatmul mode);

// For heads already packed head-major in bf16 (q, k, v [B, NH, T, hd], key/value heads repeated
// per query head as attention.cc's copies are): out [B, T, NH hd] (each head's columns), att
// [B, NH, T, T] the fp32 probabilities (zero above the diagonal), and, when p is not null, the
// same probabilities in bf16 [B, NH, T, T] as the backward's products read them.
void attention_forward_amx(float* out, float* att, uint16_t* p, const uint16_t* q, const uint16_t* k,
                           const uint16_t* v, const AttnShape& s);

// The backward's products, like the forward's only over the blocks on and below the diagonal, for
// T a multiple of 32 (attention_amx_backward_usable), over BH heads packed as above:
// datt[bh] = dout[bh] v[bh]^T, written for each block of 32 rows up to its diagonal block only
// (the softmax's backward reads j <= i); dq[bh] [T, hd] = scale dpre[bh] k[bh], reading dpre's
// [T, T] bf16 rows up to each block's diagonal block (zero above the diagonal within it); and
// out[bh] [T, hd] = scale sq[bh]^T x[bh] for a square zero above its diagonal (dv = p^T dout with
// scale 1, dk = scale dpre^T q), reading for output rows j only the rows i of sq from j's block
// down, each up to its diagonal block. Rows of sq past their diagonal block are never read.
bool attention_amx_backward_usable(const AttnShape& s, CpuMatmul mode);
// Where head bh = b NH + h of a [T, hd] gradient goes: rows `row` apart from
// base + b * batch + h * head (a head-major [B NH, T, hd] buffer, or a head's columns of dqkv).
struct HeadRows {
  float* base;
  int64_t batch, head, row;
  int NH;
  float* at(int64_t bh) const { return base + (bh / NH) * batch + (bh % NH) * head; }
};
void attention_scores_grad_amx(float* datt, const uint16_t* dout, const uint16_t* v, int64_t BH, int T, int hd);
void attention_query_grad_amx(const HeadRows& dq, const uint16_t* dpre, const uint16_t* k, int64_t BH, int T, int hd,
                              float scale);
void attention_transposed_grad_amx(const HeadRows& out, const uint16_t* sq, const uint16_t* x, int64_t BH, int T,
                                   int hd, float scale);

}  // namespace s2s

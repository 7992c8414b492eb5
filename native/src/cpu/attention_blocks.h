// Causal attention's products in 32 x 32 blocks, for the CPU's bf16 setting: on AMX tiles (Intel's
// Advanced Matrix Extensions) where the processor has them, else with AVX512-BF16's dot products
// (AMD Zen 4 and 5, Intel Cooper Lake); one head at a time, a block of 32 rows at a time, only the
// blocks on or below the diagonal multiplied (oneDNN's batched products compute the whole T x T
// square). Both sum each result's products in the order oneDNN's kernel for the same instructions
// does (its AMX kernel, or its AVX512-BF16 one where there is no AMX), so the results are its bits
// (checked by the parameters after training steps). In the forward
// the scores of a block stay in L1 from the product that makes them through the softmax to the
// product that reads the probabilities, and the backward takes a head through all of its steps
// in one pass (its squares stay in the core's L2). cpu/attention.cc's oneDNN path is what it is
// checked against and what every other processor, shape and setting takes.
#pragma once

#include <cstdint>

#include "cpu/matmul.h"
#include "ops/contracts.h"

namespace s2s {

// Whether attention_forward_blocks serves `s` here: bf16 matmuls, a processor with AMX-BF16 (whose
// kernel lets this process use the tiles) or with AVX512-BF16, and a head size that is a multiple
// of 32. S2S_ATTENTION_BLOCKS = auto (the default: AMX where usable, else AVX512-BF16) | amx |
// avx512 | off picks the instructions (one the processor lacks, or off: the oneDNN path, for
// comparing the two).
bool attention_blocks_usable(const AttnShape& s, CpuMatmul mode);

// A row's softmax as the forward took it: its max (of the scaled scores) and 1 / its sum.
struct RowSoftmax {
  float max, inv_sum;
};

// For heads already packed head-major in bf16 (q, k, v [B, NH, T, hd], key/value heads repeated
// per query head as attention.cc's copies are): out [B, T, NH hd] (each head's columns), att
// [B, NH, T, T] the fp32 probabilities (zero above the diagonal), and, when p is not null, the
// same probabilities in bf16 [B, NH, T, T] as the backward's products read them. When stats is not
// null, neither square is written: stats [B, NH, T] gets each row's RowSoftmax instead, from which
// attention_backward_blocks makes the probabilities again, bit for bit (a training forward's choice:
// no T x T memory, and no trip through it; at T = 256 making them again costs about what the trip
// did, at T = 1024 the step is 6-12% faster). att null (and p and stats): only out is written.
void attention_forward_blocks(float* out, float* att, uint16_t* p, RowSoftmax* stats, const uint16_t* q,
                           const uint16_t* k, const uint16_t* v, const AttnShape& s);

// The backward, for T a multiple of 32 (attention_blocks_backward_usable), over BH heads packed as
// above, one head at a time with its squares in the thread's caches: the gradient of its
// probabilities (dout v^T), the softmax's backward, dq = scale dpre k, dv = p^T dout and
// dk = scale dpre^T q, every product over the blocks on and below the diagonal only. dout
// [B, T, NH hd] is the output's gradient as the forward wrote the output, att and p the forward's
// probabilities (p null: none were kept in bf16; they are converted from att), or, where stats is
// not null, the forward's RowSoftmax of each row instead (att and p are not read). The three
// gradients are written (not added) where dq, dk, dv say (HeadRows), each [T, hd] per head.
bool attention_blocks_backward_usable(const AttnShape& s, CpuMatmul mode);
// Where head bh = b NH + h of a [T, hd] gradient goes: rows `row` apart from
// base + b * batch + h * head (a head-major [B NH, T, hd] buffer, or a head's columns of dqkv).
struct HeadRows {
  float* base;
  int64_t batch, head, row;
  int NH;
  float* at(int64_t bh) const { return base + (bh / NH) * batch + (bh % NH) * head; }
};
void attention_backward_blocks(const HeadRows& dq, const HeadRows& dk, const HeadRows& dv, const float* dout,
                            const float* att, const uint16_t* p, const RowSoftmax* stats, const uint16_t* q,
                            const uint16_t* k, const uint16_t* v, const AttnShape& s);

// The softmax's backward for row i of a causal square, in place: d[j] <- a[j] (d[j] - sum_k a[k]
// d[k]) over j <= i (a: the row's probabilities, d: their gradient), and zeros from i + 1 up to
// `width`. One definition for the oneDNN path and the blocked one, so that both give the same bits.
inline void softmax_backward_row(const float* a, float* d, int i, int width) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int j = 0; j <= i; j++) dot += a[j] * d[j];
#pragma omp simd
  for (int j = 0; j <= i; j++) d[j] = a[j] * (d[j] - dot);
  for (int j = i + 1; j < width; j++) d[j] = 0.0f;
}

}  // namespace s2s

// Rotary position embeddings in Hugging Face's half-split layout (rotate_half): channel i of a head
// pairs with channel i + hd/2.
#pragma once

#include <cstdint>

namespace s2s {

// In place on x: rows n < N, `stride` floats apart; in each row the first `nheads` heads of hd
// channels are rotated (Llama: the NH query heads and KVH key heads at the start of qkv). Row n sits
// at position p = (pos ? pos[n / T] : 0) + n % T, and for i < hd/2, with c = cos[p, i], s = sin[p, i]
// (tables [maxT, hd/2]):
//   x[i]        <- x[i] c - x[i + hd/2] s
//   x[i + hd/2] <- x[i + hd/2] c + x[i] s
void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                  int64_t stride, int nheads, int hd);
// The gradient through rope_forward, in place on dx (the inverse rotation: s -> -s).
void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                   int64_t stride, int nheads, int hd);

void rope_forward_naive(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                        int64_t stride, int nheads, int hd);

}  // namespace s2s

// Llama's gated MLP activation: down(silu(gate(x)) * up(x)), with gate and up projected together.
#pragma once

#include <cstdint>

namespace s2s {

// h [N, 2F]: gate in h[n, 0:F], up in h[n, F:2F];  out[n, f] = silu(h[n, f]) * h[n, F + f],
// silu(g) = g / (1 + exp(-g)).
void swiglu_forward(float* out, const float* h, int64_t N, int64_t F);
// dh [N, 2F] is overwritten with the gradient of sum(dout * out) with respect to h.
void swiglu_backward(float* dh, const float* dout, const float* h, int64_t N, int64_t F);

void swiglu_forward_naive(float* out, const float* h, int64_t N, int64_t F);

}  // namespace s2s

// The residual connection out = a + b. Its backward is the identity for both inputs; the model
// keeps a single gradient buffer for the residual stream, so no kernel is needed for it.
#pragma once

#include <cstdint>

namespace s2s {

void residual_forward(float* out, const float* a, const float* b, int64_t N);
void residual_forward_naive(float* out, const float* a, const float* b, int64_t N);

}  // namespace s2s

// The residual connection out = a + b. Its backward is the identity for both inputs; the model
// keeps a single gradient buffer for the residual stream, so no kernel is needed for it.
#pragma once

#include <cstdint>

namespace s2s {

void residual_forward(float* out, const float* a, const float* b, int64_t N);
// dst[n, :] = src[idx[n], :] for n < N (rows of C floats): gathers the rows the LM head needs.
void gather_rows(float* dst, const float* src, const int64_t* idx, int64_t N, int C);

}  // namespace s2s

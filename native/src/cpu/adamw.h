// AdamW (decoupled weight decay, as torch.optim.AdamW) and the global gradient norm.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/matmul.h"

namespace s2s {

// sqrt(sum of squares) accumulated in double.
double global_norm(const float* grads, size_t n);

// One AdamW update of n parameters at step t (1-based). grad_scale multiplies the gradient first
// (the clipping factor). weight_decay is applied as p -= lr * wd * p. The step consumes the
// gradients: each is zeroed as it is read (no separate pass clears them for the next backward).
// Returns whether every updated parameter is finite. With `copy` (null: none), the updated
// parameters are also written as the bf16 matmuls read them (the weight cache's, cpu/matmul.h:
// to_operand in `mode`), each block while it is still in cache, instead of a separate pass over
// every parameter before the next matmul. (CpuOps::adamw_update is the op-set entry.)
bool adamw_update_with_copy(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t t, float grad_scale, void* copy,
                            CpuMatmul mode);

}  // namespace s2s

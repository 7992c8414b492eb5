// GELU forward/backward (tanh form), vectorised with fast_tanh; reference loops in double.
#include "cpu/gelu.h"

#include <algorithm>
#include <cmath>

#include "common.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

static constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

#pragma omp declare simd notinbranch
static inline float gelu_value(float x) {
  return 0.5f * x * (1.0f + fast_tanh(kGeluScale * (x + 0.044715f * x * x * x)));
}

void gelu_forward(float* out, const float* inp, int64_t N) {
  // in a training forward with bf16 matmuls, only the next matmul's copy of the output, a chunk at
  // a time through L1: that matmul is all that reads it (operand_instead_here)
  void* copy = operand_instead_here(out, N);
  const CpuMatmul mode = current_matmul();
  const size_t esz = operand_size(mode);
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static) if (N >= kMinParallelWork)
  for (int64_t c = 0; c < N; c += kChunk) {
    const int64_t e = std::min(N, c + kChunk);
    const float* x = inp + c;
    // the thread's next chunk asked for now: the hardware prefetcher alone left this loop waiting
    // on its loads (a third of the op's time in a training step)
    if (e < N) prefetch_floats(inp + e, std::min(kChunk, N - e));
    float chunk[kChunk];
    float* o = copy ? chunk : out + c;
#pragma omp simd
    for (int64_t i = 0; i < e - c; i++) o[i] = gelu_value(x[i]);
    if (copy) to_operand(static_cast<char*>(copy) + c * esz, chunk, e - c, mode);
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t N) {
#pragma omp parallel for simd schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; i++) dinp[i] = gelu_grad_times(inp[i], dout[i]);
}

void gelu_forward_naive(float* out, const float* inp, int64_t N) {
  for (int64_t i = 0; i < N; i++) {
    double x = inp[i];
    out[i] = (float)(0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
  }
}

}  // namespace s2s

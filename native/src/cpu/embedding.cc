// Token + position embedding, forward and backward, with the reference loops (no position
// embedding when wpe is null: Llama's positions are rotary, applied to q and k).
#include "cpu/embedding.h"

#include "common.h"

namespace s2s {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                       int C, const int32_t* pos) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * C >= kMinParallelWork)
  for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
    int t = (int)(bt % T);
    const float* te = wte + (int64_t)tokens[bt] * C;
    float* o = out + bt * C;
    if (!wpe) {
      for (int c = 0; c < C; c++) o[c] = te[c];
      continue;
    }
    const float* pe = wpe + (int64_t)((pos ? pos[bt / T] : 0) + t) * C;
    for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                        int C) {
  // A token can repeat within the batch, so rows of dwte are shared: split the work by channel
  // blocks instead, so each thread owns its columns of dwte and dwpe.
  const int BLK = 32;
  int nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if ((int64_t)B * T * C >= kMinParallelWork)
  for (int blk = 0; blk < nblk; blk++) {
    int c0 = blk * BLK, c1 = c0 + BLK < C ? c0 + BLK : C;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        int64_t bt = (int64_t)b * T + t;
        const float* d = dout + bt * C;
        float* te = dwte + (int64_t)tokens[bt] * C;
        for (int c = c0; c < c1; c++) te[c] += d[c];
        if (!dwpe) continue;
        float* pe = dwpe + (int64_t)t * C;
        for (int c = c0; c < c1; c++) pe[c] += d[c];
      }
  }
}

void embedding_forward_naive(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                             int T, int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        int64_t bt = (int64_t)b * T + t;
        out[bt * C + c] = wte[(int64_t)tokens[bt] * C + c] + (wpe ? wpe[(int64_t)t * C + c] : 0.0f);
      }
}

}  // namespace s2s

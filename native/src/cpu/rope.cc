// Rotary position embeddings, forward and backward, in place: row- and head-parallel loops over
// the rotated halves; the reference loops in double.
#include "cpu/rope.h"

#include "common.h"

namespace s2s {

namespace {

// Rotates the first nheads heads of every row by the angle of its position, sin scaled by `sign`
// (+1: the rotation; -1: its inverse, which is also its transpose, hence the gradient).
void rotate(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T, int64_t stride,
            int nheads, int hd, float sign) {
  const int half = hd / 2;
#pragma omp parallel for schedule(static) if (N * nheads * hd >= kMinParallelWork)
  for (int64_t n = 0; n < N; n++) {
    int64_t p = (pos ? pos[n / T] : 0) + n % T;
    const float* c = cos + p * half;
    const float* s = sin + p * half;
    float* row = x + n * stride;
    for (int h = 0; h < nheads; h++) {
      float* a = row + (int64_t)h * hd;
      float* b = a + half;
#pragma omp simd
      for (int i = 0; i < half; i++) {
        float ai = a[i], bi = b[i], si = sign * s[i];
        a[i] = ai * c[i] - bi * si;
        b[i] = bi * c[i] + ai * si;
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                  int64_t stride, int nheads, int hd) {
  rotate(x, cos, sin, pos, N, T, stride, nheads, hd, 1.0f);
}

void rope_backward(float* dx, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                   int64_t stride, int nheads, int hd) {
  rotate(dx, cos, sin, pos, N, T, stride, nheads, hd, -1.0f);
}

void rope_forward_naive(float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T,
                        int64_t stride, int nheads, int hd) {
  const int half = hd / 2;
  for (int64_t n = 0; n < N; n++) {
    int64_t p = (pos ? pos[n / T] : 0) + n % T;
    for (int h = 0; h < nheads; h++)
      for (int i = 0; i < half; i++) {
        float* a = x + n * stride + (int64_t)h * hd + i;
        double c = cos[p * half + i], s = sin[p * half + i], ai = a[0], bi = a[half];
        a[0] = (float)(ai * c - bi * s);
        a[half] = (float)(bi * c + ai * s);
      }
  }
}

}  // namespace s2s

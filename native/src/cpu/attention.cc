// Causal attention. The optimised path does the four products per head as strided batched GEMMs
// (computing the full T x T square and masking is cheaper than a hand-written causal loop), with
// the softmax and its backward as row-parallel loops.
#include "cpu/attention.h"
#include "ops/strides.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  int hs = C / NH;
  float scale = 1.0f / std::sqrt((float)hs);
  gemm_batched(B, NH, T, T, hs, qkv, qkv_view(T, C, hs), qkv + C, qkv_view_t(T, C, hs), att,
               att_view(NH, T), scale, false);
#pragma omp parallel for schedule(static) if ((int64_t)B * NH * T * T >= kMinParallelWork)
  for (int64_t row = 0; row < (int64_t)B * NH * T; row++) {
    int i = (int)(row % T);
    float* a = att + row * T;
    float mx = a[0];
    for (int j = 1; j <= i; j++) mx = a[j] > mx ? a[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= i; j++) {
      a[j] = fast_exp(a[j] - mx);
      sum += a[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) a[j] *= inv;
    for (int j = i + 1; j < T; j++) a[j] = 0.0f;
  }
  gemm_batched(B, NH, T, hs, T, att, att_view(NH, T), qkv + 2 * C, qkv_view(T, C, hs), out,
               heads_view(T, C, hs), 1.0f, false);
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        int B, int T, int C, int NH) {
  int hs = C / NH;
  float scale = 1.0f / std::sqrt((float)hs);
  // datt = dout_h @ v^T ;  dv = att^T @ dout_h
  gemm_batched(B, NH, T, T, hs, dout, heads_view(T, C, hs), qkv + 2 * C, qkv_view_t(T, C, hs), datt,
               att_view(NH, T), 1.0f, false);
  gemm_batched(B, NH, T, hs, T, att, att_view_t(NH, T), dout, heads_view(T, C, hs), dqkv + 2 * C,
               qkv_view(T, C, hs), 1.0f, false);
  // softmax backward, in place: dpre = att * (datt - sum_j att * datt)
#pragma omp parallel for schedule(static) if ((int64_t)B * NH * T * T >= kMinParallelWork)
  for (int64_t row = 0; row < (int64_t)B * NH * T; row++) {
    int i = (int)(row % T);
    const float* a = att + row * T;
    float* d = datt + row * T;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j <= i; j++) dot += a[j] * d[j];
    for (int j = 0; j <= i; j++) d[j] = a[j] * (d[j] - dot);
    for (int j = i + 1; j < T; j++) d[j] = 0.0f;
  }
  // dq = scale * dpre @ k ;  dk = scale * dpre^T @ q
  gemm_batched(B, NH, T, hs, T, datt, att_view(NH, T), qkv + C, qkv_view(T, C, hs), dqkv,
               qkv_view(T, C, hs), scale, false);
  gemm_batched(B, NH, T, hs, T, datt, att_view_t(NH, T), qkv, qkv_view(T, C, hs), dqkv + C,
               qkv_view(T, C, hs), scale, false);
}

void attention_forward_naive(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  int hs = C / NH;
  double scale = 1.0 / std::sqrt((double)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        const float* q = qkv + ((int64_t)b * T + i) * 3 * C + h * hs;
        float* a = att + (((int64_t)b * NH + h) * T + i) * T;
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (int j = 0; j <= i; j++) {
          const float* k = qkv + ((int64_t)b * T + j) * 3 * C + C + h * hs;
          double dot = 0;
          for (int d = 0; d < hs; d++) dot += (double)q[d] * k[d];
          s[j] = dot * scale;
          if (s[j] > mx) mx = s[j];
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < T; j++) a[j] = j <= i ? (float)(s[j] / sum) : 0.0f;
        float* o = out + ((int64_t)b * T + i) * C + h * hs;
        for (int d = 0; d < hs; d++) {
          double acc = 0;
          for (int j = 0; j <= i; j++) acc += (double)a[j] * qkv[((int64_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
          o[d] = (float)acc;
        }
      }
}

void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache,
                      const int32_t* pos, int B, int maxT, int C, int NH) {
  int hs = C / NH;
  float scale = 1.0f / std::sqrt((float)hs);
  int64_t work = 0;
  for (int b = 0; b < B; b++) work += (int64_t)(pos[b] + 1) * C;
#pragma omp parallel if (work >= kMinParallelWork)
  {
    std::vector<float> s(maxT);
#pragma omp for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++) {
        int n = pos[b] + 1;
        const float* qh = qkv + (int64_t)b * 3 * C + h * hs;
        const float* kb = kcache + (int64_t)b * maxT * C + h * hs;
        const float* vb = vcache + (int64_t)b * maxT * C + h * hs;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
          const float* k = kb + (int64_t)j * C;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int d = 0; d < hs; d++) dot += qh[d] * k[d];
          s[j] = dot * scale;
          mx = s[j] > mx ? s[j] : mx;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) sum += (s[j] = fast_exp(s[j] - mx));
        float inv = 1.0f / sum;
        float* o = out + (int64_t)b * C + h * hs;
        for (int d = 0; d < hs; d++) o[d] = 0.0f;
        for (int j = 0; j < n; j++) {
          const float* v = vb + (int64_t)j * C;
          float w = s[j] * inv;
          for (int d = 0; d < hs; d++) o[d] += w * v[d];
        }
      }
  }
}

void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int B, int maxT, int C) {
  for (int b = 0; b < B; b++) {
    const float* row = qkv + (int64_t)b * 3 * C;
    std::memcpy(kcache + ((int64_t)b * maxT + pos[b]) * C, row + C, C * sizeof(float));
    std::memcpy(vcache + ((int64_t)b * maxT + pos[b]) * C, row + 2 * C, C * sizeof(float));
  }
}

void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int B, int P, int maxT,
                      int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < len[b]; t++) {
      const float* row = qkv + ((int64_t)b * P + t) * 3 * C;
      std::memcpy(kcache + ((int64_t)b * maxT + t) * C, row + C, C * sizeof(float));
      std::memcpy(vcache + ((int64_t)b * maxT + t) * C, row + 2 * C, C * sizeof(float));
    }
}

}  // namespace s2s

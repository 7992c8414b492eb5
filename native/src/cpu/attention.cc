// Causal attention, multi-head and grouped-query. The optimised path does the four products per
// head as strided batched GEMMs (computing the full T x T square and masking is cheaper than a
// hand-written causal loop), with the softmax and its backward as row-parallel loops.
//
// Grouped-query attention (G = NH / KVH query heads per key/value head) reads each key/value head
// in place, without repeating it (HF's repeat_kv): turn g = 0..G-1 batches the query heads
// kvh G + g over [B, KVH], whose heads lie G hd apart in qkv, G T T apart in att. Multi-head
// attention (G = 1) is the one turn batched over [B, NH].
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

namespace {

// Where turn g's operands start and how they stride (see the top of the file).
struct Turn {
  int G, KVH, T, hd;
  int64_t W, QW;  // qkv's row width; the output's (NH hd)
  int64_t koff, voff;
  int NH;
  explicit Turn(const AttnShape& s)
      : G(s.group()), KVH(s.KVH), T(s.T), hd(s.hd), W(s.qkv_width()), QW(s.q_width()), koff(s.q_width()),
        voff(s.q_width() + s.kv_width()), NH(s.NH) {}
  int64_t q(int g) const { return (int64_t)g * hd; }       // in qkv (and in out / dout)
  int64_t att(int g) const { return (int64_t)g * T * T; }  // in att / datt
  Strides qv() const { return head_rows(T, W, (int64_t)G * hd); }
  Strides kvv() const { return head_rows(T, W, hd); }
  Strides kvv_t() const { return head_rows_t(T, W, hd); }
  Strides outv() const { return head_rows(T, QW, (int64_t)G * hd); }
  Strides attv() const { return att_heads(NH, T, G); }
  Strides attv_t() const { return att_heads_t(NH, T, G); }
};

}  // namespace

// The products run in fp32 whatever the op set's matmul setting (cpu/matmul.h): oneDNN 2.6 has no
// AMX kernel for these strided batches, and its bf16 fallback (gemm:jit) ran them 3x slower than
// fp32 on an AMX Xeon, for a few percent of a step's FLOPs at T = 256.
void attention_forward(float* out, float* att, const float* qkv, const AttnShape& s) {
  MatmulScope fp32(CpuMatmul::fp32, nullptr);
  const int B = s.B, T = s.T, NH = s.NH;
  const Turn u(s);
  float scale = 1.0f / std::sqrt((float)s.hd);
  for (int g = 0; g < u.G; g++)
    gemm_batched(B, s.KVH, T, T, s.hd, qkv + u.q(g), u.qv(), qkv + u.koff, u.kvv_t(), att + u.att(g), u.attv(),
                 scale, false);
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
  for (int g = 0; g < u.G; g++)
    gemm_batched(B, s.KVH, T, s.hd, T, att + u.att(g), u.attv(), qkv + u.voff, u.kvv(), out + u.q(g), u.outv(), 1.0f,
                 false);
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        const AttnShape& s) {
  MatmulScope fp32(CpuMatmul::fp32, nullptr);  // as attention_forward
  const int B = s.B, T = s.T, NH = s.NH, KVH = s.KVH, hd = s.hd;
  const Turn u(s);
  float scale = 1.0f / std::sqrt((float)hd);
  // datt = dout_h @ v^T ;  dv = sum over the group of att^T @ dout_h (the first turn overwrites)
  for (int g = 0; g < u.G; g++) {
    gemm_batched(B, KVH, T, T, hd, dout + u.q(g), u.outv(), qkv + u.voff, u.kvv_t(), datt + u.att(g), u.attv(), 1.0f,
                 false);
    gemm_batched(B, KVH, T, hd, T, att + u.att(g), u.attv_t(), dout + u.q(g), u.outv(), dqkv + u.voff, u.kvv(), 1.0f,
                 g > 0);
  }
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
  // dq = scale * dpre @ k ;  dk = scale * sum over the group of dpre^T @ q
  for (int g = 0; g < u.G; g++) {
    gemm_batched(B, KVH, T, hd, T, datt + u.att(g), u.attv(), qkv + u.koff, u.kvv(), dqkv + u.q(g), u.qv(), scale,
                 false);
    gemm_batched(B, KVH, T, hd, T, datt + u.att(g), u.attv_t(), qkv + u.q(g), u.qv(), dqkv + u.koff, u.kvv(), scale,
                 g > 0);
  }
}

void attention_forward_naive(float* out, float* att, const float* qkv, const AttnShape& s) {
  const int B = s.B, T = s.T, NH = s.NH, hd = s.hd, G = s.group();
  const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
  double scale = 1.0 / std::sqrt((double)hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        const float* q = qkv + ((int64_t)b * T + i) * W + (int64_t)h * hd;
        const int64_t koff = QW + (int64_t)(h / G) * hd, voff = koff + KW;
        float* a = att + (((int64_t)b * NH + h) * T + i) * T;
        std::vector<double> sc(i + 1);
        double mx = -1e300;
        for (int j = 0; j <= i; j++) {
          const float* k = qkv + ((int64_t)b * T + j) * W + koff;
          double dot = 0;
          for (int d = 0; d < hd; d++) dot += (double)q[d] * k[d];
          sc[j] = dot * scale;
          if (sc[j] > mx) mx = sc[j];
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) sum += (sc[j] = std::exp(sc[j] - mx));
        for (int j = 0; j < T; j++) a[j] = j <= i ? (float)(sc[j] / sum) : 0.0f;
        float* o = out + ((int64_t)b * T + i) * QW + (int64_t)h * hd;
        for (int d = 0; d < hd; d++) {
          double acc = 0;
          for (int j = 0; j <= i; j++) acc += (double)a[j] * qkv[((int64_t)b * T + j) * W + voff + d];
          o[d] = (float)acc;
        }
      }
}

void attention_decode(float* out, const float* qkv, const float* kcache, const float* vcache,
                      const int32_t* pos, int maxT, const AttnShape& s) {
  const int B = s.B, NH = s.NH, hd = s.hd, G = s.group();
  const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
  float scale = 1.0f / std::sqrt((float)hd);
  int64_t work = 0;
  for (int b = 0; b < B; b++) work += (int64_t)(pos[b] + 1) * QW;
#pragma omp parallel if (work >= kMinParallelWork)
  {
    std::vector<float> sc(maxT);
#pragma omp for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++) {
        int n = pos[b] + 1;
        const float* qh = qkv + (int64_t)b * W + (int64_t)h * hd;
        const float* kb = kcache + (int64_t)b * maxT * KW + (int64_t)(h / G) * hd;
        const float* vb = vcache + (int64_t)b * maxT * KW + (int64_t)(h / G) * hd;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
          const float* k = kb + (int64_t)j * KW;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int d = 0; d < hd; d++) dot += qh[d] * k[d];
          sc[j] = dot * scale;
          mx = sc[j] > mx ? sc[j] : mx;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) sum += (sc[j] = fast_exp(sc[j] - mx));
        float inv = 1.0f / sum;
        float* o = out + (int64_t)b * QW + (int64_t)h * hd;
        for (int d = 0; d < hd; d++) o[d] = 0.0f;
        for (int j = 0; j < n; j++) {
          const float* v = vb + (int64_t)j * KW;
          float w = sc[j] * inv;
          for (int d = 0; d < hd; d++) o[d] += w * v[d];
        }
      }
  }
}

void kv_cache_write(float* kcache, float* vcache, const float* qkv, const int32_t* pos, int maxT,
                    const AttnShape& s) {
  const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
  for (int b = 0; b < s.B; b++) {
    const float* row = qkv + (int64_t)b * W;
    std::memcpy(kcache + ((int64_t)b * maxT + pos[b]) * KW, row + QW, KW * sizeof(float));
    std::memcpy(vcache + ((int64_t)b * maxT + pos[b]) * KW, row + QW + KW, KW * sizeof(float));
  }
}

void kv_cache_prefill(float* kcache, float* vcache, const float* qkv, const int32_t* len, int maxT,
                      const AttnShape& s) {
  const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
  for (int b = 0; b < s.B; b++)
    for (int t = 0; t < len[b]; t++) {
      const float* row = qkv + ((int64_t)b * s.T + t) * W;
      std::memcpy(kcache + ((int64_t)b * maxT + t) * KW, row + QW, KW * sizeof(float));
      std::memcpy(vcache + ((int64_t)b * maxT + t) * KW, row + QW + KW, KW * sizeof(float));
    }
}

}  // namespace s2s

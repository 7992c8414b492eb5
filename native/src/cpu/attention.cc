// Causal attention, multi-head and grouped-query. The optimised path copies the heads out of qkv
// into head-major [B, NH, T, hd] operands (in the matmul setting's type: bf16 values where the CPU
// multiplies bf16) and does the four products per head as dense batched GEMMs over B NH, computing
// the full T x T square and masking it (cheaper than a hand-written causal loop); the softmax and
// its backward are row-parallel loops that also write the probabilities as the next product reads
// them. Dense operands are what oneDNN's fastest kernels take (AMX's for bf16: strided heads fell
// back to a generic kernel 3x slower than fp32's; in fp32 the dense copy also doubles the rate).
//
// Grouped-query attention (G = NH / KVH query heads per key/value head) repeats each key/value head
// for the G query heads of its group in the copies (HF's repeat_kv), and sums the group's
// gradients when it writes them back; query head h reads key/value head h / G.
#include "cpu/attention.h"
#include "ops/strides.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "cpu/attention_blocks.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

namespace {

// Per-thread operand buffers: engine calls run one at a time on its thread.
struct Scratch {
  HostArray<char> q, k, v, dout, p, dpre;
  HostArray<float> grad;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

void* room(HostArray<char>& a, int64_t values, CpuMatmul mode) {
  a.reserve((size_t)values * operand_size(mode));
  return a.data();
}

// A training forward's head-major copies and probabilities in the matmuls' type, kept for its
// backward (kept_operand_room, cpu/matmul.h) under qkv's address (the probabilities under att's):
// each its own layout.
enum Layout { kQ = 1, kK, kV, kP, kStats };
// The blocked forward's RowSoftmax per row, kept under qkv's address as [B, NH, T] pairs of floats
// (the OperandCache counts in bf16 values: four to a pair), whatever the operands' budget. (Not
// under att's: where the backward runs in blocks too, the model gives attention no att at all.)
RowSoftmax* kept_stats_room(const float* qkv, int64_t rows) {
  return static_cast<RowSoftmax*>(kept_state_room(qkv, kStats, rows * 4));
}
const RowSoftmax* kept_stats(const float* qkv, int64_t rows) {
  return static_cast<const RowSoftmax*>(kept_operand(qkv, kStats, rows * 4));
}
void* kept_or(HostArray<char>& scratch, const float* src, Layout layout, int64_t values, CpuMatmul mode) {
  if (void* kept = kept_operand_room(src, layout, values)) return kept;
  return room(scratch, values, mode);
}

// dst [B, NH, T, hd] <- the heads of src [B, T, width] starting at column `off`, head h reading
// source head h / rep (rep = G repeats a key/value head for its group), converted to `mode`.
void pack_heads(void* dst, const float* src, int64_t width, int64_t off, int rep, const AttnShape& s, CpuMatmul mode) {
  const int B = s.B, NH = s.NH, T = s.T, hd = s.hd;
  const size_t esz = operand_size(mode);
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * NH * T * hd >= kMinParallelWork)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++)
        to_operand(static_cast<char*>(dst) + ((((int64_t)b * NH + h) * T + t) * hd) * esz,
                   src + ((int64_t)b * T + t) * width + off + (int64_t)(h / rep) * hd, hd, mode);
}

// q, k, v [B, NH, T, hd] <- the query, key and value heads of qkv [B, T, qkv_width] (key/value head
// h / G for query head h), converted to `mode`: pack_heads for all three in one pass over qkv's rows,
// each row read once and whole (three column-strided passes read each row's lines three times).
void pack_qkv_heads(void* q, void* k, void* v, const float* qkv, const AttnShape& s, CpuMatmul mode) {
  const int NH = s.NH, T = s.T, hd = s.hd, G = s.group();
  const int64_t W = s.qkv_width(), koff = s.q_width(), voff = s.q_width() + s.kv_width(), rows = (int64_t)s.B * T;
  const size_t esz = operand_size(mode);
#pragma omp parallel for schedule(static) if (rows * W >= kMinParallelWork)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = r / T, t = r % T;
    const float* row = qkv + r * W;
    for (int h = 0; h < NH; h++) {
      const int64_t at = (((b * NH + h) * T + t) * hd) * (int64_t)esz;
      to_operand(static_cast<char*>(q) + at, row + (int64_t)h * hd, hd, mode);
      to_operand(static_cast<char*>(k) + at, row + koff + (int64_t)(h / G) * hd, hd, mode);
      to_operand(static_cast<char*>(v) + at, row + voff + (int64_t)(h / G) * hd, hd, mode);
    }
  }
}

// The heads of dst [B, T, width] from column `off` (NH / rep of them) <- src [B, NH, T, hd], head j
// the sum of src heads j rep .. j rep + rep - 1 (a key/value head's group); overwrites.
void unpack_heads(float* dst, int64_t width, int64_t off, const float* src, int rep, const AttnShape& s) {
  const int B = s.B, NH = s.NH, T = s.T, hd = s.hd, nh = NH / rep;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * NH * T * hd >= kMinParallelWork)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int j = 0; j < nh; j++) {
        float* d = dst + ((int64_t)b * T + t) * width + off + (int64_t)j * hd;
        const float* first = src + (((int64_t)b * NH + (int64_t)j * rep) * T + t) * hd;
        std::memcpy(d, first, hd * sizeof(float));
        for (int r = 1; r < rep; r++) {
          const float* o = first + (int64_t)r * T * hd;
          for (int i = 0; i < hd; i++) d[i] += o[i];
        }
      }
}

// Views over B NH dense matrices, batched as [1, B NH]: [T, hd] as is and transposed, [T, T] as is
// and transposed. (The outer batch stride is the whole tensor's size, as a dense layout's would be:
// oneDNN takes a 0 there for a broadcast and runs its reference kernel.)
Strides heads(int64_t BH, int T, int hd) { return {BH * T * hd, (int64_t)T * hd, hd, 1}; }
Strides heads_t(int64_t BH, int T, int hd) { return {BH * T * hd, (int64_t)T * hd, 1, hd}; }
Strides squares(int64_t BH, int T) { return {BH * T * T, (int64_t)T * T, T, 1}; }
Strides squares_t(int64_t BH, int T) { return {BH * T * T, (int64_t)T * T, 1, T}; }

}  // namespace

namespace {

// Batch rows go through attention a few at a time, so that each group's T x T squares (scores,
// their gradient, the probabilities as the products read them) stay in the cores' caches between
// the product that writes them, the softmax and the product that reads them: at most this many
// bytes of fp32 squares a group (the two cores' L2 caches; always at least one row).
constexpr int64_t kSquaresBudget = 4 << 20;
int rows_per_group(const AttnShape& s) {
  const int64_t per_row = (int64_t)s.NH * s.T * s.T * (int64_t)sizeof(float);
  return (int)std::max<int64_t>(1, std::min<int64_t>(s.B, kSquaresBudget / per_row));
}
AttnShape rows_of(const AttnShape& s, int nb) {
  AttnShape r = s;
  r.B = nb;
  return r;
}
const void* at(const void* base, int64_t i, size_t esz) { return static_cast<const char*>(base) + i * (int64_t)esz; }
void* at(void* base, int64_t i, size_t esz) { return static_cast<char*>(base) + i * (int64_t)esz; }

// Forward for batch rows whose heads are packed already: scores, softmax (att in fp32, p as the
// product reads the probabilities: att itself in fp32), out.
void forward_rows(float* out, float* att, const void* q, const void* k, const void* v, void* p, const AttnShape& s,
                  CpuMatmul mode) {
  const int B = s.B, T = s.T, NH = s.NH, hd = s.hd;
  const int64_t QW = s.q_width(), BH = (int64_t)B * NH;
  const float scale = 1.0f / std::sqrt((float)hd);
  const bool convert = mode != CpuMatmul::fp32;
  const size_t esz = operand_size(mode);
  gemm_batched_prepared(1, BH, T, T, hd, q, heads(BH, T, hd), k, heads_t(BH, T, hd), att, squares(BH, T), scale, false);
#pragma omp parallel for schedule(static) if (BH * T * T >= kMinParallelWork)
  for (int64_t row = 0; row < BH * T; row++) {
    int i = (int)(row % T);
    float* a = att + row * T;
    float mx = a[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j <= i; j++) mx = a[j] > mx ? a[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= i; j++) {
      a[j] = fast_exp(a[j] - mx);
      sum += a[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j <= i; j++) a[j] *= inv;
    for (int j = i + 1; j < T; j++) a[j] = 0.0f;
    if (convert) to_operand(static_cast<char*>(p) + row * T * esz, a, T, mode);
  }
  // out [B, T, NH hd] written in place: head h of row (b, t) at (b T + t) QW + h hd
  gemm_batched_prepared(B, NH, T, hd, T, p, {(int64_t)NH * T * T, (int64_t)T * T, T, 1}, v,
                        {(int64_t)NH * T * hd, (int64_t)T * hd, hd, 1}, out, {(int64_t)T * QW, hd, QW, 1}, 1.0f, false);
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const AttnShape& s) {
  const CpuMatmul mode = current_matmul();
  const int B = s.B, T = s.T, NH = s.NH, hd = s.hd;
  const int64_t QW = s.q_width(), BH = (int64_t)B * NH;
  const size_t esz = operand_size(mode);
  Scratch& x = scratch();
  void* q = kept_or(x.q, qkv, kQ, BH * T * hd, mode);
  void* k = kept_or(x.k, qkv, kK, BH * T * hd, mode);
  void* v = kept_or(x.v, qkv, kV, BH * T * hd, mode);
  pack_qkv_heads(q, k, v, qkv, s, mode);
  if (attention_blocks_usable(s, mode)) {
    // a training forward whose backward runs in blocks too keeps each row's softmax, not the squares
    // (and any other forward then has no att: nothing would read its probabilities)
    RowSoftmax* stats = attention_blocks_backward_usable(s, mode) ? kept_stats_room(qkv, BH * T) : nullptr;
    void* kept_p = stats || !att ? nullptr : kept_operand_room(att, kP, BH * T * T);
    attention_forward_blocks(out, att, static_cast<uint16_t*>(kept_p), stats, static_cast<const uint16_t*>(q),
                          static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), s);
    return;
  }
  // the probabilities as the products read them: kept whole for the backward, else a group's room
  const bool convert = mode != CpuMatmul::fp32;
  const int group = rows_per_group(s);
  void* kept_p = convert ? kept_operand_room(att, kP, BH * T * T) : nullptr;
  void* p_room = convert && !kept_p ? room(x.p, (int64_t)group * NH * T * T, mode) : nullptr;
  const int64_t heads_per_row = (int64_t)NH * T * hd, squares_per_row = (int64_t)NH * T * T;
  for (int b0 = 0; b0 < B; b0 += group) {
    const int nb = std::min(group, B - b0);
    float* att_b = att + b0 * squares_per_row;
    void* p = !convert ? static_cast<void*>(att_b) : kept_p ? at(kept_p, b0 * squares_per_row, esz) : p_room;
    forward_rows(out + (int64_t)b0 * T * QW, att_b, at(q, b0 * heads_per_row, esz), at(k, b0 * heads_per_row, esz),
                 at(v, b0 * heads_per_row, esz), p, rows_of(s, nb), mode);
  }
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                        const AttnShape& s) {
  const CpuMatmul mode = current_matmul();
  const int B = s.B, T = s.T, NH = s.NH, hd = s.hd, G = s.group();
  const int64_t W = s.qkv_width(), QW = s.q_width(), BH = (int64_t)B * NH;
  const int64_t koff = s.q_width(), voff = s.q_width() + s.kv_width();
  const float scale = 1.0f / std::sqrt((float)hd);
  const bool convert = mode != CpuMatmul::fp32;
  const size_t esz = operand_size(mode);
  Scratch& x = scratch();
  // the forward's copies where it kept them, else made again
  auto heads_of = [&](HostArray<char>& scratch, Layout layout, int64_t off, int rep) {
    if (const void* kept = kept_operand(qkv, layout, BH * T * hd)) return kept;
    void* h = room(scratch, BH * T * hd, mode);
    pack_heads(h, qkv, W, off, rep, s, mode);
    return static_cast<const void*>(h);
  };
  const void* q = heads_of(x.q, kQ, 0, 1);
  const void* k = heads_of(x.k, kK, koff, G);
  const void* v = heads_of(x.v, kV, voff, G);
  const void* kept_p = convert && att ? kept_operand(att, kP, BH * T * T) : nullptr;
  if (attention_blocks_backward_usable(s, mode)) {  // every head in one pass, datt unused
    const RowSoftmax* stats = kept_stats(qkv, BH * T);  // then att holds nothing (or is null)
    if (!stats && !att)
      throw Error("attention_backward: the forward kept neither its probabilities nor its rows' softmax");
    const int64_t hsize = BH * T * hd;
    if (G > 1) x.grad.reserve((size_t)(2 * hsize));
    auto dqkv_rows = [&](int64_t off) { return HeadRows{dqkv + off, (int64_t)T * W, hd, W, NH}; };
    // a key/value head's gradient sums over its group: each query head's first, then the sums
    auto grad_rows = [&](int i) {
      return HeadRows{x.grad.data() + i * hsize, (int64_t)NH * T * hd, (int64_t)T * hd, hd, NH};
    };
    attention_backward_blocks(dqkv_rows(0), G == 1 ? dqkv_rows(koff) : grad_rows(0),
                           G == 1 ? dqkv_rows(voff) : grad_rows(1), dout, att, static_cast<const uint16_t*>(kept_p),
                           stats, static_cast<const uint16_t*>(q), static_cast<const uint16_t*>(k),
                           static_cast<const uint16_t*>(v), s);
    if (G > 1) {
      unpack_heads(dqkv, W, koff, grad_rows(0).base, G, s);
      unpack_heads(dqkv, W, voff, grad_rows(1).base, G, s);
    }
    return;
  }
  // a group of batch rows at a time (rows_per_group): its squares stay in cache from the product
  // that writes datt to the two that read dpre
  const int group = rows_per_group(s);
  const int64_t gh = (int64_t)group * NH * T * hd, gsq = (int64_t)group * NH * T * T;
  void* dout_h = room(x.dout, gh, mode);
  void* p_room = convert && !kept_p ? room(x.p, gsq, mode) : nullptr;
  // dpre in its own room: a kept copy of the probabilities stays for another backward of the forward
  void* dpre_room = convert ? room(x.dpre, gsq, mode) : nullptr;
  x.grad.reserve((size_t)gh);
  float* grad = x.grad.data();
  const int64_t heads_per_row = (int64_t)NH * T * hd, squares_per_row = (int64_t)NH * T * T;
  for (int b0 = 0; b0 < B; b0 += group) {
    const int nb = std::min(group, B - b0);
    const AttnShape r = rows_of(s, nb);
    const int64_t bh = (int64_t)nb * NH;
    const float* att_b = att + b0 * squares_per_row;
    float* datt_b = datt + b0 * squares_per_row;
    float* dqkv_b = dqkv + (int64_t)b0 * T * W;
    const void* q_b = at(q, b0 * heads_per_row, esz);
    const void* k_b = at(k, b0 * heads_per_row, esz);
    const void* v_b = at(v, b0 * heads_per_row, esz);
    pack_heads(dout_h, dout + (int64_t)b0 * T * QW, QW, 0, 1, r, mode);
    // the probabilities as the products read them
    const void* p = att_b;
    if (convert) {
      if (kept_p) {
        p = at(kept_p, b0 * squares_per_row, esz);
      } else {
#pragma omp parallel for schedule(static) if (bh * T * T >= kMinParallelWork)
        for (int64_t row = 0; row < bh * T; row++)
          to_operand(static_cast<char*>(p_room) + row * T * esz, att_b + row * T, T, mode);
        p = p_room;
      }
    }
    // datt = dout_h @ v^T ;  dv = att^T @ dout_h, summed over each group
    gemm_batched_prepared(1, bh, T, T, hd, dout_h, heads(bh, T, hd), v_b, heads_t(bh, T, hd), datt_b, squares(bh, T),
                          1.0f, false);
    gemm_batched_prepared(1, bh, T, hd, T, p, squares_t(bh, T), dout_h, heads(bh, T, hd), grad, heads(bh, T, hd), 1.0f,
                          false);
    unpack_heads(dqkv_b, W, voff, grad, G, r);
    // softmax backward, in place: dpre = att * (datt - sum_j att * datt); then as the products read it
    void* dpre = convert ? dpre_room : datt_b;
#pragma omp parallel for schedule(static) if (bh * T * T >= kMinParallelWork)
    for (int64_t row = 0; row < bh * T; row++) {
      float* d = datt_b + row * T;
      softmax_backward_row(att_b + row * T, d, (int)(row % T), T);
      if (convert) to_operand(static_cast<char*>(dpre) + row * T * esz, d, T, mode);
    }
    // dq = scale * dpre @ k ;  dk = scale * dpre^T @ q, summed over each group
    gemm_batched_prepared(1, bh, T, hd, T, dpre, squares(bh, T), k_b, heads(bh, T, hd), grad, heads(bh, T, hd), scale,
                          false);
    unpack_heads(dqkv_b, W, 0, grad, 1, r);
    gemm_batched_prepared(1, bh, T, hd, T, dpre, squares_t(bh, T), q_b, heads(bh, T, hd), grad, heads(bh, T, hd), scale,
                          false);
    unpack_heads(dqkv_b, W, koff, grad, G, r);
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

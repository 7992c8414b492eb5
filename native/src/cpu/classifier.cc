// Fused LM head. Each chunk of rows: one GEMM for its logits, then one row-parallel pass for the
// log-softmax, the gathered log-prob and the entropy; the backward turns the logits into dlogits (in
// place in fp32; with bf16 matmuls straight into the operand the products read, a row at a time
// through the cache, so the fp32 dlogits never reach memory) and runs the two GEMMs of the tied
// embedding.
#include "cpu/classifier.h"

#include <algorithm>
#include <cmath>

#include "common.h"
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

namespace s2s {

namespace {

// Logits for rows [r0, r0 + rows): either the stored slice or freshly computed into scratch.
float* chunk_logits(const ClassifierArgs& a, int64_t r0, int64_t rows, bool compute) {
  float* lg = a.logits ? a.logits + r0 * a.V : a.scratch;
  if (compute) gemm(false, true, rows, a.V, a.C, a.lnf + r0 * a.C, a.wte, lg, a.inv_temp, false);
  return lg;
}

int64_t chunk_rows(const ClassifierArgs& a) { return a.logits ? a.N : a.chunk; }

// A row of logits (200 KB at GPT-2's vocabulary) is read once, from memory: the loops over it go
// in stripes, each asking for the stripe kAhead values on (the hardware prefetcher alone left the
// backward's loop waiting on loads).
constexpr int kStripe = 256, kAhead = 2048;
inline void prefetch_ahead(const float* row, int v0, int V) {
  if (v0 + kAhead < V) prefetch_floats(row + v0 + kAhead, std::min(kStripe, V - v0 - kAhead));
}

}  // namespace

void classifier_forward(const ClassifierArgs& a, float* logprob, float* entropy, float* lse) {
  const int V = a.V;
  for (int64_t r0 = 0; r0 < a.N; r0 += chunk_rows(a)) {
    int64_t rows = std::min(chunk_rows(a), a.N - r0);
    float* lg = chunk_logits(a, r0, rows, true);
#pragma omp parallel for schedule(static) if (rows * V >= kMinParallelWork)
    for (int64_t i = 0; i < rows; i++) {
      const float* l = lg + i * V;
      float mx = l[0];
      for (int v0 = 0; v0 < V; v0 += kStripe) {  // the row's first read: from memory
        prefetch_ahead(l, v0, V);
        const int v1 = v0 + kStripe < V ? v0 + kStripe : V;
#pragma omp simd reduction(max : mx)
        for (int v = v0; v < v1; v++) mx = l[v] > mx ? l[v] : mx;
      }
      // The denominator in double: over tens of thousands of words, a confident row's many tiny
      // terms would otherwise be rounded away (a float sum is off by ~2e-4 in log-prob at 50k).
      double sum = 0.0, wsum = 0.0;
#pragma omp simd reduction(+ : sum, wsum)
      for (int v = 0; v < V; v++) {
        float e = fast_exp(l[v] - mx);
        sum += e;
        wsum += (double)e * (l[v] - mx);
      }
      double logsum = std::log(sum);
      int64_t n = r0 + i;
      lse[n] = (float)(mx + logsum);
      int32_t tgt = a.targets ? a.targets[n] : -1;
      logprob[n] = tgt >= 0 ? (float)((double)(l[tgt] - mx) - logsum) : 0.0f;
      if (entropy) entropy[n] = (float)(logsum - wsum / sum);
    }
  }
}

void classifier_backward(const ClassifierArgs& a, float* dlnf, float* dwte, const float* dlogprob,
                         const float* lse, bool accumulate) {
  const int V = a.V;
  for (int64_t r0 = 0; r0 < a.N; r0 += chunk_rows(a)) {
    int64_t rows = std::min(chunk_rows(a), a.N - r0);
    float* lg = chunk_logits(a, r0, rows, a.logits == nullptr);
    // both products read the logits' gradient: converted once, as it is made
    void* target = shared_operand_target(rows * V);
    const CpuMatmul mode = current_matmul();
    const size_t esz = operand_size(mode);
#pragma omp parallel for schedule(static) if (rows * V >= kMinParallelWork)
    for (int64_t i = 0; i < rows; i++) {
      int64_t n = r0 + i;
      const float* l = lg + i * V;
      float* d = lg + i * V;
      if (target) {
        thread_local HostArray<float> row;
        row.reserve(V);
        d = row.data();
      }
      int32_t tgt = a.targets ? a.targets[n] : -1;
      float g = tgt >= 0 ? dlogprob[n] : 0.0f;
      float m = lse[n];
      for (int v0 = 0; v0 < V; v0 += kStripe) {
        prefetch_ahead(l, v0, V);
        const int v1 = v0 + kStripe < V ? v0 + kStripe : V;
#pragma omp simd
        for (int v = v0; v < v1; v++) d[v] = -g * fast_exp(l[v] - m);
      }
      if (tgt >= 0) d[tgt] += g;
      if (target) to_operand(static_cast<char*>(target) + i * V * esz, d, V, mode);
    }
    const void* d = target ? target : lg;
    gemm_prepared(false, false, rows, a.C, V, lg, d, a.wte, nullptr, dlnf + r0 * a.C, a.inv_temp, false);
    // the first chunk writes dwte unless it is to be added to; the rest add to that
    gemm_prepared(true, false, V, a.C, rows, lg, d, a.lnf + r0 * a.C, nullptr, dwte, a.inv_temp,
                  accumulate || r0 > 0);
  }
}

}  // namespace s2s

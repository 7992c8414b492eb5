// Token sampling. The optimised path touches the whole vocabulary once for the softmax and sorts
// only what a filter needs; the reference sorts everything in double precision.
#include "cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/vecmath.h"

namespace s2s {

namespace {
bool by_prob_desc(const std::vector<float>& p, int32_t a, int32_t b) {
  return p[a] > p[b] || (p[a] == p[b] && a < b);
}
}  // namespace

int32_t sample_token(const float* logits, int V, const SamplingConfig& cfg, Rng& rng, float* logprob,
                     SamplingWork& work) {
  bool greedy = cfg.temperature <= 0.0f;
  float inv_t = greedy ? 1.0f : 1.0f / cfg.temperature;
  float mx = logits[0];
  int best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > mx) mx = logits[v], best = v;
  work.prob.resize(V);
  float* p = work.prob.data();
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int v = 0; v < V; v++) {
    p[v] = fast_exp((logits[v] - mx) * inv_t);
    sum += p[v];
  }
  float lse = std::log(sum);  // of the shifted, scaled logits
  auto lp = [&](int v) { return (logits[v] - mx) * inv_t - lse; };
  if (greedy) {
    *logprob = lp(best);
    return best;
  }
  bool top_k = cfg.top_k > 0 && cfg.top_k < V;
  bool top_p = cfg.top_p < 1.0f;
  if (!top_k && !top_p) {
    float u = rng.uniform() * sum, acc = 0.0f;
    int chosen = V - 1;
    for (int v = 0; v < V; v++) {
      acc += p[v];
      if (u < acc) {
        chosen = v;
        break;
      }
    }
    *logprob = lp(chosen);
    return chosen;
  }
  std::vector<int32_t>& idx = work.idx;
  idx.resize(V);
  std::iota(idx.begin(), idx.end(), 0);
  auto cmp = [&](int32_t a, int32_t b) { return by_prob_desc(work.prob, a, b); };
  int n = V;
  if (top_k) {
    std::partial_sort(idx.begin(), idx.begin() + cfg.top_k, idx.end(), cmp);
    n = cfg.top_k;
  } else {
    std::sort(idx.begin(), idx.end(), cmp);
  }
  float kept = 0.0f;
  for (int i = 0; i < n; i++) kept += p[idx[i]];
  if (top_p) {
    // smallest prefix whose share of the (top-k renormalised) mass reaches top_p
    float acc = 0.0f;
    int m = 0;
    while (m < n) {
      acc += p[idx[m++]];
      if (acc >= cfg.top_p * kept) break;
    }
    n = m;
    kept = acc;
  }
  float u = rng.uniform() * kept, acc = 0.0f;
  int chosen = idx[n - 1];
  for (int i = 0; i < n; i++) {
    acc += p[idx[i]];
    if (u < acc) {
      chosen = idx[i];
      break;
    }
  }
  *logprob = lp(chosen);
  return chosen;
}

void sample_tokens(const float* logits, int B, int V, const SamplingConfig& cfg, Rng* rng, const uint8_t* done,
                   int32_t* token, float* logprob) {
#pragma omp parallel if ((int64_t)B * V >= kMinParallelWork)
  {
    SamplingWork work;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++)
      if (!done[b]) token[b] = sample_token(logits + (int64_t)b * V, V, cfg, rng[b], &logprob[b], work);
  }
}

int32_t sample_token_naive(const float* logits, int V, const SamplingConfig& cfg, Rng& rng, float* logprob) {
  bool greedy = cfg.temperature <= 0.0f;
  double inv_t = greedy ? 1.0 : 1.0 / cfg.temperature;
  std::vector<double> s(V);
  double mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = std::max(mx, (double)logits[v] * inv_t);
  double sum = 0;
  for (int v = 0; v < V; v++) sum += std::exp((double)logits[v] * inv_t - mx);
  for (int v = 0; v < V; v++) s[v] = (double)logits[v] * inv_t - mx - std::log(sum);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  if (greedy) {
    int best = 0;
    for (int v = 1; v < V; v++)
      if (logits[v] > logits[best]) best = v;
    *logprob = (float)s[best];
    return best;
  }
  bool filtered = (cfg.top_k > 0 && cfg.top_k < V) || cfg.top_p < 1.0f;
  int n = V;
  if (filtered) {
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[a] > s[b]; });
    if (cfg.top_k > 0 && cfg.top_k < V) n = cfg.top_k;
    if (cfg.top_p < 1.0f) {
      double kept = 0;
      for (int i = 0; i < n; i++) kept += std::exp(s[order[i]]);
      double acc = 0;
      int m = 0;
      while (m < n) {
        acc += std::exp(s[order[m++]]);
        if (acc >= cfg.top_p * kept) break;
      }
      n = m;
    }
  }
  double total = 0;
  for (int i = 0; i < n; i++) total += std::exp(s[order[i]]);
  double u = rng.uniform() * total, acc = 0;
  int chosen = order[n - 1];
  for (int i = 0; i < n; i++) {
    acc += std::exp(s[order[i]]);
    if (u < acc) {
      chosen = order[i];
      break;
    }
  }
  *logprob = (float)s[chosen];
  return chosen;
}

}  // namespace s2s

// The CPU's kernels outside the op set: fast_exp and fast_tanh against libm, and sampling against its
// naive twin and its distribution. The ops themselves are tested, on every device, by the op-case
// table in test_ops.cc.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/sampling.h"
#include "cpu/vecmath.h"
#include "harness.h"

using namespace s2s;
using Vec = std::vector<float>;

static Vec rand_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Vec v(n);
  harness::fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

TEST(fast_exp_matches_libm) {
  double worst = 0;
  for (int i = 0; i <= 200000; i++) {
    float x = -87.0f + 175.0f * i / 200000.0f;
    double ref = std::exp((double)x);
    worst = std::fmax(worst, std::fabs(fast_exp(x) - ref) / ref);
  }
  EXPECT(worst < 5e-7);
  EXPECT(fast_exp(-INFINITY) == 0.0f);
  EXPECT(fast_exp(-200.0f) == 0.0f);
  EXPECT(std::fabs(fast_tanh(0.3f) - std::tanh(0.3)) < 1e-6);
  EXPECT(fast_tanh(30.0f) == 1.0f && fast_tanh(-30.0f) == -1.0f);
}

TEST(sampling_matches_naive_and_its_distribution) {
  int V = 50;
  Vec logits = rand_vec(V, 101, -3, 3);
  SamplingConfig cfgs[] = {{0.0f, 0, 1.0f}, {1.0f, 0, 1.0f}, {0.7f, 10, 1.0f}, {1.3f, 0, 0.8f}, {1.0f, 5, 0.5f}};
  for (const SamplingConfig& cfg : cfgs) {
    SamplingWork work;
    Rng r1(5, 1), r2(5, 1);
    int agree = 0, draws = 2000;
    for (int i = 0; i < draws; i++) {
      float lp1, lp2;
      int a = sample_token(logits.data(), V, cfg, r1, &lp1, work);
      int b = sample_token_naive(logits.data(), V, cfg, r2, &lp2);
      agree += a == b;
      if (a == b) EXPECT(std::fabs(lp1 - lp2) < 1e-5);
    }
    // float vs double cumulative sums may split a draw that lands within ~1e-7 of a boundary
    EXPECT(agree >= draws - 2);
  }
  // Empirical frequencies against softmax(logits / t) restricted to the top-k and renormalised.
  SamplingConfig cfg{0.8f, 8, 1.0f};
  std::vector<double> p(V);
  std::vector<int> order(V);
  for (int v = 0; v < V; v++) order[v] = v;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  double z = 0;
  for (int i = 0; i < cfg.top_k; i++) z += (p[order[i]] = std::exp(logits[order[i]] / cfg.temperature));
  for (int v = 0; v < V; v++) p[v] /= z;
  std::vector<int> count(V, 0);
  SamplingWork work;
  Rng rng(9, 3);
  int draws = 200000;
  for (int i = 0; i < draws; i++) {
    float lp;
    count[sample_token(logits.data(), V, cfg, rng, &lp, work)]++;
  }
  for (int v = 0; v < V; v++) {
    double f = (double)count[v] / draws, sd = std::sqrt(p[v] * (1 - p[v]) / draws);
    EXPECT(std::fabs(f - p[v]) <= 5 * sd + 1e-9);
  }
}

int main() { return harness::run_all(); }

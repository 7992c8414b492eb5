// Every optimised CPU kernel against its naive reference, on fresh random inputs.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/classifier.h"
#include "cpu/embedding.h"
#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
#include "cpu/residual.h"
#include "cpu/sampling.h"
#include "cpu/value_head.h"
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

TEST(matmul_forward_and_backward_match_naive) {
  int shapes[][3] = {{37, 53, 71}, {64, 32, 96}, {5, 128, 1}};
  for (auto& s : shapes) {
    int N = s[0], C = s[1], OC = s[2];
    Vec inp = rand_vec((size_t)N * C, 1), w = rand_vec((size_t)C * OC, 2), b = rand_vec(OC, 3);
    Vec out(N * OC), ref(N * OC);
    matmul_forward(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
    matmul_forward_naive(ref.data(), inp.data(), w.data(), b.data(), N, C, OC);
    EXPECT_CLOSE(out.data(), ref.data(), out.size(), 1e-5);

    Vec dout = rand_vec((size_t)N * OC, 4);
    // gradients accumulate into non-zero buffers; dinp is overwritten
    Vec dinp = rand_vec((size_t)N * C, 5), dw = rand_vec((size_t)C * OC, 6), db = rand_vec(OC, 7);
    Vec dinp_r = rand_vec((size_t)N * C, 8), dw_r = dw, db_r = db;
    matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward_naive(dinp_r.data(), dw_r.data(), db_r.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    EXPECT_CLOSE(dinp.data(), dinp_r.data(), dinp.size(), 1e-5);
    EXPECT_CLOSE(dw.data(), dw_r.data(), dw.size(), 1e-5);
    EXPECT_CLOSE(db.data(), db_r.data(), db.size(), 1e-5);
  }
}

TEST(strided_batched_gemm_matches_naive) {
  // The attention views: q and k^T inside a packed qkv tensor.
  int B = 2, T = 9, C = 12, NH = 3, hs = C / NH;
  Vec qkv = rand_vec((size_t)B * T * 3 * C, 11);
  Strides q{(int64_t)T * 3 * C, hs, 3 * C, 1}, kt{(int64_t)T * 3 * C, hs, 1, 3 * C};
  Strides att{(int64_t)NH * T * T, (int64_t)T * T, T, 1};
  Vec out = rand_vec((size_t)B * NH * T * T, 12), ref = out;
  gemm_batched(B, NH, T, T, hs, qkv.data(), q, qkv.data() + C, kt, out.data(), att, 0.5f, true);
  gemm_batched_naive(B, NH, T, T, hs, qkv.data(), q, qkv.data() + C, kt, ref.data(), att, 0.5f, true);
  EXPECT_CLOSE(out.data(), ref.data(), out.size(), 1e-5);
}

TEST(layernorm_matches_naive) {
  int64_t N = 45;
  int C = 67;
  Vec inp = rand_vec(N * C, 21, -3, 3), w = rand_vec(C, 22), b = rand_vec(C, 23);
  Vec out(N * C), mean(N), rstd(N), out_r(N * C), mean_r(N), rstd_r(N);
  layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
  layernorm_forward_naive(out_r.data(), mean_r.data(), rstd_r.data(), inp.data(), w.data(), b.data(), N, C);
  EXPECT_CLOSE(out.data(), out_r.data(), out.size(), 1e-5);
  EXPECT_CLOSE(mean.data(), mean_r.data(), N, 1e-5);
  EXPECT_CLOSE(rstd.data(), rstd_r.data(), N, 1e-5);
  Vec dout = rand_vec(N * C, 24);
  Vec dinp = rand_vec(N * C, 25), dw = rand_vec(C, 26), db = rand_vec(C, 27);
  Vec dinp_r = dinp, dw_r = dw, db_r = db;
  layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(), rstd.data(), N, C);
  layernorm_backward_naive(dinp_r.data(), dw_r.data(), db_r.data(), dout.data(), inp.data(), w.data(), mean.data(),
                           rstd.data(), N, C);
  EXPECT_CLOSE(dinp.data(), dinp_r.data(), dinp.size(), 1e-5);
  EXPECT_CLOSE(dw.data(), dw_r.data(), C, 1e-5);
  EXPECT_CLOSE(db.data(), db_r.data(), C, 1e-5);
}

TEST(attention_matches_naive) {
  int B = 2, T = 17, C = 24, NH = 3;
  Vec qkv = rand_vec((size_t)B * T * 3 * C, 31, -2, 2);
  Vec out(B * T * C), att((size_t)B * NH * T * T), out_r(B * T * C), att_r((size_t)B * NH * T * T);
  attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  attention_forward_naive(out_r.data(), att_r.data(), qkv.data(), B, T, C, NH);
  EXPECT_CLOSE(out.data(), out_r.data(), out.size(), 1e-5);
  EXPECT_CLOSE(att.data(), att_r.data(), att.size(), 1e-5);
  Vec dout = rand_vec((size_t)B * T * C, 32);
  Vec dqkv = rand_vec((size_t)B * T * 3 * C, 33), dqkv_r((size_t)B * T * 3 * C), datt((size_t)B * NH * T * T);
  attention_backward(dqkv.data(), datt.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
  attention_backward_naive(dqkv_r.data(), dout.data(), qkv.data(), att_r.data(), B, T, C, NH);
  EXPECT_CLOSE(dqkv.data(), dqkv_r.data(), dqkv.size(), 1e-5);
}

TEST(attention_decode_matches_full_attention) {
  // The last position of full causal attention equals one decode step against a cache of k, v.
  int B = 3, T = 11, C = 16, NH = 4, maxT = 14;
  Vec qkv = rand_vec((size_t)B * T * 3 * C, 41, -2, 2);
  Vec out(B * T * C), att((size_t)B * NH * T * T);
  attention_forward_naive(out.data(), att.data(), qkv.data(), B, T, C, NH);
  Vec kc((size_t)B * maxT * C), vc((size_t)B * maxT * C), q((size_t)B * 3 * C), dec(B * C), want(B * C);
  std::vector<int32_t> pos(B, T - 1);
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        kc[((size_t)b * maxT + t) * C + c] = qkv[((size_t)b * T + t) * 3 * C + C + c];
        vc[((size_t)b * maxT + t) * C + c] = qkv[((size_t)b * T + t) * 3 * C + 2 * C + c];
      }
    std::copy_n(qkv.begin() + ((size_t)b * T + T - 1) * 3 * C, 3 * C, q.begin() + (size_t)b * 3 * C);
    std::copy_n(out.begin() + ((size_t)b * T + T - 1) * C, C, want.begin() + (size_t)b * C);
  }
  attention_decode(dec.data(), q.data(), kc.data(), vc.data(), pos.data(), B, maxT, C, NH);
  EXPECT_CLOSE(dec.data(), want.data(), dec.size(), 1e-5);
}

TEST(gelu_and_residual_match_naive) {
  int64_t N = 1000;
  Vec x = rand_vec(N, 51, -6, 6), y(N), y_r(N);
  gelu_forward(y.data(), x.data(), N);
  gelu_forward_naive(y_r.data(), x.data(), N);
  EXPECT_CLOSE(y.data(), y_r.data(), N, 1e-5);
  Vec d = rand_vec(N, 52), dx(N), dx_r(N);
  gelu_backward(dx.data(), x.data(), d.data(), N);
  gelu_backward_naive(dx_r.data(), x.data(), d.data(), N);
  EXPECT_CLOSE(dx.data(), dx_r.data(), N, 1e-5);
  Vec a = rand_vec(N, 53), r(N), r_r(N);
  residual_forward(r.data(), a.data(), x.data(), N);
  residual_forward_naive(r_r.data(), a.data(), x.data(), N);
  EXPECT_CLOSE(r.data(), r_r.data(), N, 0);
}

TEST(embedding_matches_naive) {
  int B = 3, T = 7, C = 40, V = 5;  // few tokens: many repeats, so shared rows are exercised
  Vec wte = rand_vec((size_t)V * C, 61), wpe = rand_vec((size_t)T * C, 62);
  std::vector<int32_t> tok(B * T);
  for (int i = 0; i < B * T; i++) tok[i] = (i * 7 + 3) % V;
  Vec out(B * T * C), out_r(B * T * C);
  embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  embedding_forward_naive(out_r.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  EXPECT_CLOSE(out.data(), out_r.data(), out.size(), 0);
  Vec dout = rand_vec((size_t)B * T * C, 63);
  Vec dwte = rand_vec((size_t)V * C, 64), dwpe = rand_vec((size_t)T * C, 65), dwte_r = dwte, dwpe_r = dwpe;
  embedding_backward(dwte.data(), dwpe.data(), dout.data(), tok.data(), B, T, C);
  embedding_backward_naive(dwte_r.data(), dwpe_r.data(), dout.data(), tok.data(), B, T, C);
  EXPECT_CLOSE(dwte.data(), dwte_r.data(), dwte.size(), 1e-6);
  EXPECT_CLOSE(dwpe.data(), dwpe_r.data(), dwpe.size(), 1e-6);
}

static void check_classifier(bool store_logits) {
  int64_t N = 23;
  int C = 19, V = 301;
  float inv_temp = 1.0f / 0.7f;
  Vec lnf = rand_vec(N * C, 71, -2, 2), wte = rand_vec((size_t)V * C, 72, -1, 1);
  std::vector<int32_t> tgt(N);
  for (int64_t i = 0; i < N; i++) tgt[i] = i % 5 == 3 ? -1 : (int32_t)((i * 37) % V);
  Vec logits(store_logits ? N * V : 0), scratch(8 * V);
  ClassifierArgs a{lnf.data(), wte.data(), tgt.data(), N, C, V, inv_temp,
                   store_logits ? logits.data() : nullptr, scratch.data(), 8};
  Vec lp(N), ent(N), lse(N), lp_r(N), ent_r(N);
  classifier_forward(a, lp.data(), ent.data(), lse.data());
  classifier_forward_naive(lnf.data(), wte.data(), tgt.data(), N, C, V, inv_temp, lp_r.data(), ent_r.data());
  EXPECT_CLOSE(lp.data(), lp_r.data(), N, 1e-5);
  EXPECT_CLOSE(ent.data(), ent_r.data(), N, 1e-5);
  for (int64_t i = 0; i < N; i++) EXPECT(tgt[i] >= 0 || lp[i] == 0.0f);

  Vec dlp = rand_vec(N, 73);
  Vec dlnf = rand_vec(N * C, 74), dwte = rand_vec((size_t)V * C, 75), dlnf_r(N * C), dwte_r = dwte;
  classifier_backward(a, dlnf.data(), dwte.data(), dlp.data(), lse.data());
  classifier_backward_naive(lnf.data(), wte.data(), tgt.data(), N, C, V, inv_temp, dlp.data(), dlnf_r.data(), dwte_r.data());
  EXPECT_CLOSE(dlnf.data(), dlnf_r.data(), dlnf.size(), 1e-5);
  EXPECT_CLOSE(dwte.data(), dwte_r.data(), dwte.size(), 1e-5);
}

TEST(classifier_with_stored_logits_matches_naive) { check_classifier(true); }
TEST(classifier_chunked_matches_naive) { check_classifier(false); }

TEST(value_head_matches_naive) {
  int64_t N = 31;
  int C = 29;
  Vec lnf = rand_vec(N * C, 81), w = rand_vec(C, 82), v(N), v_r(N);
  value_head_forward(v.data(), lnf.data(), w.data(), N, C);
  value_head_forward_naive(v_r.data(), lnf.data(), w.data(), N, C);
  EXPECT_CLOSE(v.data(), v_r.data(), N, 1e-6);
  Vec dv = rand_vec(N, 83), dlnf = rand_vec(N * C, 84), dw = rand_vec(C, 85), dlnf_r = dlnf, dw_r = dw;
  value_head_backward(dlnf.data(), dw.data(), dv.data(), lnf.data(), w.data(), N, C);
  value_head_backward_naive(dlnf_r.data(), dw_r.data(), dv.data(), lnf.data(), w.data(), N, C);
  EXPECT_CLOSE(dlnf.data(), dlnf_r.data(), dlnf.size(), 1e-6);
  EXPECT_CLOSE(dw.data(), dw_r.data(), C, 1e-6);
}

TEST(adamw_and_norm_match_naive) {
  size_t n = 4099;
  Vec p = rand_vec(n, 91), g = rand_vec(n, 92), m = rand_vec(n, 93, 0, 0.1f), v = rand_vec(n, 94, 0, 0.1f);
  Vec p_r = p, m_r = m, v_r = v;
  double nrm = global_norm(g.data(), n), nrm_r = global_norm_naive(g.data(), n);
  EXPECT(std::fabs(nrm - nrm_r) <= 1e-9 * nrm_r);
  for (int t = 1; t <= 3; t++) {
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.5f);
    adamw_update_naive(p_r.data(), g.data(), m_r.data(), v_r.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.5f);
  }
  EXPECT_CLOSE(p.data(), p_r.data(), n, 1e-6);
  EXPECT_CLOSE(m.data(), m_r.data(), n, 1e-6);
  EXPECT_CLOSE(v.data(), v_r.data(), n, 1e-6);
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

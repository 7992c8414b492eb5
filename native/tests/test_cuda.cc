// The CUDA backend against the CPU one where the op-case table (test_ops.cc, which runs every op
// of the op set on both devices) does not reach: the GEMM kernels one by one (the CUDA naive, the
// built-in fp32 and bf16 and the cuBLAS dispatch) over the strides the engine uses, the sampling
// kernel, and the whole model: log-probs, values and gradients, AdamW, generation (greedy
// identical, sampled log-probs equal to a recompute), divergence, and the error messages. Exits 77
// (ctest: skipped) with the reason when this machine has no usable GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "backend.h"
#include "cpu/matmul.h"
#include "cpu/sampling.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/model_cuda.h"
#include "harness.h"
#include "cpu/model_cpu.h"

using namespace s2s;
using Vec = std::vector<float>;
using cuda::Precision;

// Tolerances (normalised error, see harness::rel_error). fp32 kernels differ from the double
// reference only by float rounding and summation order; bf16 matmuls keep 8 bits of mantissa.
constexpr double kFp32Tol = 2e-5;
constexpr double kBf16Tol = 2e-2;

namespace {

template <typename T>
struct Dev {
  cuda::DeviceArray<T> a;
  size_t n;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    a.reserve(std::max<size_t>(n, 1));
    a.upload(h.data(), n);
  }
  explicit Dev(size_t count) : n(count) {
    a.reserve(std::max<size_t>(n, 1));
    a.zero(std::max<size_t>(n, 1));
  }
  T* p() { return a.data(); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    a.download(h.data(), n);
    return h;
  }
};

Vec random(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Vec v(n);
  harness::fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

using harness::random_tokens;

// vocabulary 97, context 32, 2 layers, 4 heads, width 64
GPTConfig small_config(bool value_head) { return {97, 32, 2, 4, 64, value_head}; }

Vec params_of(ModelBackend& m, BufferKind k = BufferKind::params) {
  Vec v(m.num_params());
  m.read_buffer(k, 0, v.size(), v.data());
  return v;
}

// A Llama-family model with every feature at once: grouped-query attention (4 query heads over 2
// key/value heads), q/k/v biases, an untied LM head, llama3 rotary scaling with its three bands in
// use, and a head size that is not channels / heads.
GPTConfig llama_config(bool value_head) {
  GPTConfig c = small_config(value_head);
  c.arch = "llama";
  c.num_kv_heads = 2;
  c.head_dim = 24;
  c.ffn_size = 96;
  c.norm_eps = 1e-6;
  c.rope_theta = 5e5;
  c.rope_scaling = "llama3";
  c.rope_factor = 32;
  c.rope_original_max_pos = 16;
  c.qkv_bias = true;
  c.tie_embeddings = false;
  return c;
}

// A CPU model and a CUDA model of one architecture with the same parameters (norm weights and
// biases moved off their init of 1 and 0, so that their paths carry visible gradients).
template <class Arch>
struct PairOf {
  Transformer<Arch, CpuOps> cpu;
  Transformer<Arch, cuda::CudaOps> gpu;
  PairOf(const GPTConfig& c, uint64_t seed, Precision p) : cpu(c), gpu(c) {
    cpu.init_weights(seed);
    Vec noise(cpu.num_params());
    harness::fill_uniform(noise.data(), noise.size(), seed + 1000, -0.3f, 0.3f);
    for (const TensorInfo& t : cpu.layout())
      if (!t.decay)
        for (size_t i = 0; i < t.numel; i++) cpu.params[t.offset + i] += noise[t.offset + i];
    gpu.write_buffer(BufferKind::params, 0, cpu.num_params(), cpu.params.data());
    gpu.set_precision(p);
  }
};
using Pair = PairOf<arch::GPT2>;
using LlamaPair = PairOf<arch::Llama>;

}  // namespace

// ---- matmul ----

struct GemmCase {
  const char* name;
  int64_t nb0, nb1, M, N, K;
  Strides sa, sb, sc;
  size_t na, nb, nc;  // element counts of the three buffers
};

static std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> v;
  auto plain = [](const char* name, bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
    return GemmCase{name, 1, 1, M, N, K, ta ? dense_t(M, K) : dense(M, K), tb ? dense_t(K, N) : dense(K, N),
                    dense(M, N), (size_t)(M * K), (size_t)(K * N), (size_t)(M * N)};
  };
  v.push_back(plain("NN odd sizes", false, false, 37, 53, 29));
  v.push_back(plain("NT (the LM head)", false, true, 130, 97, 64));
  v.push_back(plain("TN (weight gradients)", true, false, 64, 192, 150));
  v.push_back(plain("NN past one tile", false, false, 257, 129, 300));
  // attention's head views into qkv [B, T, 3C]: q @ k^T per (b, h)
  int B = 2, T = 19, C = 32, NH = 4, hs = C / NH;
  Strides q{(int64_t)T * 3 * C, hs, 3 * C, 1}, kt{(int64_t)T * 3 * C, hs, 1, 3 * C};
  Strides att{(int64_t)NH * T * T, (int64_t)T * T, T, 1};
  v.push_back({"attention q @ k^T (two batch dims)", B, NH, T, T, hs, q, kt, att, (size_t)B * T * 3 * C,
               (size_t)B * T * 3 * C, (size_t)B * NH * T * T});
  Strides heads{(int64_t)T * C, hs, C, 1};
  Strides att_t{(int64_t)NH * T * T, (int64_t)T * T, 1, T};
  v.push_back({"attention att^T @ dout", B, NH, T, hs, T, att_t, heads, q, (size_t)B * NH * T * T, (size_t)B * T * C,
               (size_t)B * T * 3 * C});
  // dense [B, NH, ...] batches whose two dimensions nest (batch0 = NH * batch1 for every operand):
  // cuBLAS runs them as one strided batch of B * NH
  int64_t m = 23, n = 17, k = 31;
  Strides na{NH * m * k, m * k, k, 1}, nb{NH * k * n, k * n, 1, k}, nc{NH * m * n, m * n, n, 1};
  v.push_back({"nested batches (one strided batch)", B, NH, m, n, k, na, nb, nc, (size_t)(B * NH * m * k),
               (size_t)(B * NH * k * n), (size_t)(B * NH * m * n)});
  return v;
}

TEST(gemm_kernels_match_the_cpu_reference) {
  for (const GemmCase& g : gemm_cases()) {
    Vec A = random(g.na, 1), Bm = random(g.nb, 2), C0 = random(g.nc, 3);
    for (bool acc : {false, true}) {
      float alpha = acc ? 0.75f : 1.25f;
      Vec want = C0;
      gemm_batched_naive(g.nb0, g.nb1, g.M, g.N, g.K, A.data(), g.sa, Bm.data(), g.sb, want.data(), g.sc, alpha, acc);
      Dev<float> a(A), b(Bm);
      auto run = [&](const char* what, double tol, auto fn) {
        Dev<float> c(C0);
        fn(c.p());
        Vec got = c.host();
        double e = harness::rel_error(got.data(), want.data(), got.size());
        if (!(e <= tol)) {
          std::printf("  FAIL %s, %s, accumulate=%d: normalised error %.3g > %.3g\n", g.name, what, (int)acc, e, tol);
          harness::failures()++;
        }
      };
      run("naive", 1e-6, [&](float* c) {
        cuda::gemm_batched_naive(g.nb0, g.nb1, g.M, g.N, g.K, a.p(), g.sa, b.p(), g.sb, c, g.sc, alpha, acc);
      });
      run("built-in fp32", kFp32Tol, [&](float* c) {
        cuda::gemm_batched_builtin(g.nb0, g.nb1, g.M, g.N, g.K, a.p(), g.sa, b.p(), g.sb, c, g.sc, alpha, acc,
                                   Precision::fp32);
      });
      run("built-in bf16", kBf16Tol, [&](float* c) {
        cuda::gemm_batched_builtin(g.nb0, g.nb1, g.M, g.N, g.K, a.p(), g.sa, b.p(), g.sb, c, g.sc, alpha, acc,
                                   Precision::bf16);
      });
      run("dispatch fp32", kFp32Tol, [&](float* c) {
        cuda::gemm_batched(g.nb0, g.nb1, g.M, g.N, g.K, a.p(), g.sa, b.p(), g.sb, c, g.sc, alpha, acc, Precision::fp32);
      });
      run("dispatch bf16", kBf16Tol, [&](float* c) {
        cuda::gemm_batched(g.nb0, g.nb1, g.M, g.N, g.K, a.p(), g.sa, b.p(), g.sb, c, g.sc, alpha, acc, Precision::bf16);
      });
    }
  }
}

TEST(gemm_over_an_empty_inner_dimension_zeroes_or_keeps_c) {
  // K = 0: a product over nothing, C = 0 (or C unchanged when accumulating), as the CPU's gemm
  int64_t M = 37, N = 300;
  Vec C0 = random(M * N, 30);
  Dev<float> a((size_t)1), b((size_t)1);
  for (bool acc : {false, true})
    for (Precision p : {Precision::fp32, Precision::bf16})
      for (bool builtin : {false, true}) {
        Vec want = C0;
        gemm_batched_naive(1, 1, M, N, 0, nullptr, dense(M, 0), nullptr, dense(0, N), want.data(), dense(M, N), 2.0f,
                           acc);
        Dev<float> c(C0);
        if (builtin)
          cuda::gemm_batched_builtin(1, 1, M, N, 0, a.p(), dense(M, 0), b.p(), dense(0, N), c.p(), dense(M, N), 2.0f,
                                     acc, p);
        else
          cuda::gemm_batched(1, 1, M, N, 0, a.p(), dense(M, 0), b.p(), dense(0, N), c.p(), dense(M, N), 2.0f, acc, p);
        EXPECT(c.host() == want);
      }
}

TEST(bf16_gemm_is_not_silently_fp32) {
  // Values that bf16 cannot hold exactly: the bf16 result must differ from fp32 (so the tensor-core
  // path really ran), while staying within its tolerance.
  int64_t M = 64, N = 64, K = 64;
  Vec A(M * K, 1.0f + 1.0f / 512), Bm(K * N, 1.0f);
  Dev<float> a(A), b(Bm), c32((size_t)(M * N)), c16((size_t)(M * N));
  cuda::gemm(false, false, M, N, K, a.p(), b.p(), c32.p(), 1.0f, false, Precision::fp32);
  cuda::gemm_batched_builtin(1, 1, M, N, K, a.p(), dense(M, K), b.p(), dense(K, N), c16.p(), dense(M, N), 1.0f, false,
                             Precision::bf16);
  Vec r32 = c32.host(), r16 = c16.host();
  EXPECT(std::fabs(r32[0] - 64.125f) < 1e-4);
  EXPECT(r16[0] == 64.0f);
}

// ---- sampling ----

TEST(sampling_kernel_matches_the_cpu_sampler) {
  int B = 64, V = 5003;
  Vec logits = random((size_t)B * V, 90, -4, 4);
  Dev<float> dl(logits), dlp((size_t)B), du((size_t)B);
  Dev<int32_t> dtok((size_t)B);
  Dev<uint8_t> ddone(std::vector<uint8_t>(B, 0));
  for (float temp : {0.0f, 0.8f}) {
    std::vector<float> u(B);
    for (int b = 0; b < B; b++) u[b] = Rng(5, b).uniform();
    du.a.upload(u.data(), B);
    cuda::sample_rows(dtok.p(), dlp.p(), dl.p(), du.p(), ddone.p(), B, V, temp);
    auto tok = dtok.host();
    Vec lp = dlp.host();
    int same = 0;
    SamplingWork work;
    for (int b = 0; b < B; b++) {
      Rng rng(5, b);
      float want_lp;
      SamplingConfig sc;
      sc.temperature = temp;
      int32_t want = sample_token(logits.data() + (size_t)b * V, V, sc, rng, &want_lp, work);
      if (want == tok[b]) {
        same++;
        EXPECT(std::fabs(want_lp - lp[b]) < 1e-4);
      }
    }
    // greedy is exact; a sample may differ only where the draw falls on a rounding boundary
    EXPECT(temp == 0.0f ? same == B : same >= B - 2);
  }
}

// ---- the whole model ----

TEST(initialisation_and_checkpoint_buffers_are_identical_across_devices) {
  Pair m(small_config(true), 3, Precision::fp32);
  // bit for bit: the same bytes go into a checkpoint whichever device wrote them
  for (const GPTConfig& c : {small_config(true), llama_config(true)}) {
    std::shared_ptr<ModelBackend> cpu = make_backend(c, "cpu"), gpu = make_backend(c, "cuda");
    cpu->init_weights(3);
    gpu->init_weights(3);
    EXPECT(params_of(*cpu) == params_of(*gpu));
  }
  Vec part = random(100, 5);
  for (float& x : part) x = std::fabs(x);  // a second moment is >= 0 (writeBuffer refuses it otherwise)
  m.gpu.write_buffer(BufferKind::adam_v, 17, part.size(), part.data());
  Vec back(100);
  m.gpu.read_buffer(BufferKind::adam_v, 17, 100, back.data());
  EXPECT(back == part);
  Vec zeros(10);
  m.gpu.read_buffer(BufferKind::adam_m, 0, 10, zeros.data());  // never allocated: zeros
  EXPECT(std::all_of(zeros.begin(), zeros.end(), [](float x) { return x == 0.0f; }));
  EXPECT_THROWS_WITH(m.gpu.read_buffer(BufferKind::params, m.gpu.num_params() - 5, 10, back.data()), "exceeds");
}

// The two models' gradients, each tensor on its own scale (so that a small tensor's error is not
// hidden by a large one's).
template <class P>
static void expect_same_gradients(P& m, const char* what, Precision p, double tol) {
  Vec gc(m.cpu.grads.data(), m.cpu.grads.data() + m.cpu.num_params()), gg = params_of(m.gpu, BufferKind::grads);
  for (const TensorInfo& t : m.cpu.layout()) {
    double e = harness::rel_error(gg.data() + t.offset, gc.data() + t.offset, t.numel);
    if (!(e <= tol)) {
      std::printf("  FAIL %s of %s (%s): normalised error %.3g > %.3g\n", what, t.name.c_str(), cuda::precision_name(p),
                  e, tol);
      harness::failures()++;
    }
  }
}

template <class P = Pair>
static void check_model_parity(Precision p, double tol_fwd, double tol_grad, GPTConfig cfg = small_config(true)) {
  P m(cfg, 7, p);
  int B = 3, T = 17;
  auto tok = random_tokens((size_t)B * T, cfg.vocab_size, 8);
  auto tg = random_tokens((size_t)B * T, cfg.vocab_size, 9);
  tg[3] = -1;
  ForwardOptions o;
  o.values = true;
  o.entropy = true;
  o.temperature = 0.9f;
  ForwardResult rc = m.cpu.forward(tok.data(), tg.data(), B, T, o);
  ForwardResult rg = m.gpu.forward(tok.data(), tg.data(), B, T, o);
  EXPECT_CLOSE(rg.logprob.data(), rc.logprob.data(), rc.logprob.size(), tol_fwd);
  EXPECT_CLOSE(rg.values.data(), rc.values.data(), rc.values.size(), tol_fwd);
  EXPECT_CLOSE(rg.entropy.data(), rc.entropy.data(), rc.entropy.size(), tol_fwd);
  Vec dlp = random((size_t)B * T, 10), dv = random((size_t)B * T, 11);
  m.cpu.backward(dlp.data(), dv.data());
  m.gpu.backward(dlp.data(), dv.data());
  // a second batch's gradients add to the first's (gradient accumulation), on both devices
  auto tok2 = random_tokens((size_t)B * T, cfg.vocab_size, 12), tg2 = random_tokens((size_t)B * T, cfg.vocab_size, 13);
  Vec dlp2 = random((size_t)B * T, 14), dv2 = random((size_t)B * T, 15);
  m.cpu.forward(tok2.data(), tg2.data(), B, T, o);
  m.gpu.forward(tok2.data(), tg2.data(), B, T, o);
  m.cpu.backward(dlp2.data(), dv2.data());
  m.gpu.backward(dlp2.data(), dv2.data());
  expect_same_gradients(m, "gradient", p, tol_grad);
  AdamWConfig a;
  a.lr = 1e-2f;
  a.weight_decay = 0.1f;
  a.max_grad_norm = 0.5f;
  double nc = m.cpu.step(a), ng = m.gpu.step(a);
  EXPECT(std::fabs(nc - ng) <= tol_grad * nc);
  Vec pc(m.cpu.params.data(), m.cpu.params.data() + m.cpu.num_params()), pg = params_of(m.gpu);
  EXPECT_CLOSE(pg.data(), pc.data(), pc.size(), tol_grad);
  EXPECT(m.gpu.optimizer_step() == 1);
}

// What the critic and the scalar reward model run: no targets, no LM head, values only, and a
// backward from the values alone; then zero_grad.
template <class P = Pair>
static void check_value_only_parity(Precision p, double tol_fwd, double tol_grad, GPTConfig cfg = small_config(true)) {
  P m(cfg, 21, p);
  int B = 2, T = 13;
  auto tok = random_tokens((size_t)B * T, cfg.vocab_size, 22);
  ForwardOptions o;
  o.logprob = false;
  o.values = true;
  ForwardResult rc = m.cpu.forward(tok.data(), nullptr, B, T, o);
  ForwardResult rg = m.gpu.forward(tok.data(), nullptr, B, T, o);
  EXPECT(rg.logprob.empty() && rc.logprob.empty());
  EXPECT_CLOSE(rg.values.data(), rc.values.data(), rc.values.size(), tol_fwd);
  Vec dv = random((size_t)B * T, 23);
  m.cpu.backward(nullptr, dv.data());
  m.gpu.backward(nullptr, dv.data());
  expect_same_gradients(m, "value-only gradient", p, tol_grad);
  m.gpu.zero_grad();
  Vec z = params_of(m.gpu, BufferKind::grads);
  EXPECT(std::all_of(z.begin(), z.end(), [](float x) { return x == 0.0f; }));
}

TEST(value_only_passes_match_the_cpu) {
  check_value_only_parity(Precision::fp32, 1e-4, 1e-3);
  check_value_only_parity(Precision::bf16, 3e-2, 8e-2);
  check_value_only_parity<LlamaPair>(Precision::fp32, 1e-4, 1e-3, llama_config(true));
}

TEST(whole_model_matches_the_cpu_in_fp32) { check_model_parity(Precision::fp32, 1e-4, 1e-3); }
TEST(whole_model_matches_the_cpu_in_bf16) { check_model_parity(Precision::bf16, 3e-2, 8e-2); }
TEST(whole_llama_model_matches_the_cpu_in_fp32) {
  check_model_parity<LlamaPair>(Precision::fp32, 1e-4, 1e-3, llama_config(true));
}
TEST(whole_llama_model_matches_the_cpu_in_bf16) {
  check_model_parity<LlamaPair>(Precision::bf16, 3e-2, 8e-2, llama_config(true));
}

template <class P>
static void check_greedy_generation(const GPTConfig& cfg) {
  P m(cfg, 11, Precision::fp32);
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10, 11}};
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.sampling.temperature = 0.0f;
  GenerateResult c = m.cpu.generate(prompts, o);
  GenerateResult g = m.gpu.generate(prompts, o);
  EXPECT(g.tokens == c.tokens);
  EXPECT_CLOSE(g.logprobs.data(), c.logprobs.data(), c.logprobs.size(), 1e-4);
  // an EOS stops a row on the GPU as on the CPU
  o.eos = {c.tokens[4]};
  GenerateResult ce = m.cpu.generate(prompts, o), ge = m.gpu.generate(prompts, o);
  EXPECT(ge.tokens == ce.tokens && ge.lengths == ce.lengths && ge.eos == ce.eos);
}

TEST(greedy_generation_is_identical_to_the_cpu) { check_greedy_generation<Pair>(small_config(false)); }
TEST(llama_greedy_generation_is_identical_to_the_cpu) { check_greedy_generation<LlamaPair>(llama_config(false)); }

TEST(sampled_generation_logprobs_equal_a_recompute) {
  GPTConfig cfg = small_config(false);
  for (int filtered = 0; filtered < 2; filtered++) {
    Pair m(cfg, 12, Precision::fp32);
    std::vector<std::vector<int32_t>> prompts = {{1, 2}, {3, 4, 5, 6}, {7}, {8, 9, 10}};
    GenerateOptions o;
    o.max_new_tokens = 10;
    o.sampling.temperature = 0.9f;
    if (filtered) o.sampling.top_k = 20, o.sampling.top_p = 0.9f;  // the host-side path
    o.seed = 77;
    GenerateResult g = m.gpu.generate(prompts, o);
    GenerateResult c = m.cpu.generate(prompts, o);
    int same_rows = 0;
    for (int b = 0; b < (int)prompts.size(); b++) {
      std::vector<int32_t> seq = prompts[b];
      for (int s = 0; s < g.lengths[b]; s++) seq.push_back(g.tokens[(size_t)b * o.max_new_tokens + s]);
      std::vector<int32_t> targets(seq.size(), -1);
      for (size_t t = prompts[b].size(); t < seq.size(); t++) targets[t - 1] = seq[t];
      ForwardOptions fo;
      fo.temperature = 0.9f;
      ForwardResult r = m.cpu.forward(seq.data(), targets.data(), 1, (int)seq.size(), fo);
      for (int s = 0; s < g.lengths[b]; s++) {
        float want = r.logprob[prompts[b].size() - 1 + s], got = g.logprobs[(size_t)b * o.max_new_tokens + s];
        if (!(std::fabs(want - got) < 1e-4)) {
          std::printf("  FAIL row %d step %d: generated log-prob %g, recomputed %g\n", b, s, got, want);
          harness::failures()++;
        }
      }
      bool same = true;
      for (int s = 0; s < o.max_new_tokens; s++)
        same = same && g.tokens[(size_t)b * o.max_new_tokens + s] == c.tokens[(size_t)b * o.max_new_tokens + s];
      same_rows += same;
    }
    // the same seed draws the same uniforms as the CPU, so the samples agree (a rounding boundary
    // may split one row)
    EXPECT(same_rows >= (int)prompts.size() - 1);
  }
}

TEST(divergence_and_greedy_match_are_identical_to_the_cpu) {
  Pair m(small_config(false), 13, Precision::fp32);
  int B = 3, T = 20, V = m.cpu.config().vocab_size;
  auto tok = random_tokens((size_t)B * T, V, 14);
  std::vector<int32_t> spans = {4, 20, 1, 12, 9, 9};
  // let a prefix of each span follow the model's greedy choice, so both outcomes occur
  for (int t = 0; t < 6; t++) {
    GreedyMatchResult g = m.cpu.greedy_match(tok.data(), B, T, spans.data());
    for (int b = 0; b < B; b++) {
      int p = spans[2 * b] + t;
      if (p < spans[2 * b + 1] && t < 2 + b) tok[(size_t)b * T + p] = g.argmax[(size_t)b * T + p];
    }
  }
  DivergenceConfig rule{1.0f, -1.0f, 0.0f};
  DivergenceResult c = m.cpu.divergence(tok.data(), B, T, spans.data(), rule);
  DivergenceResult g = m.gpu.divergence(tok.data(), B, T, spans.data(), rule);
  EXPECT(g.argmax == c.argmax);
  EXPECT(g.scores == c.scores);
  EXPECT(g.first_divergence == c.first_divergence);
  GreedyMatchResult gc = m.cpu.greedy_match(tok.data(), B, T, spans.data());
  GreedyMatchResult gg = m.gpu.greedy_match(tok.data(), B, T, spans.data());
  EXPECT(gg.match == gc.match && gg.argmax == gc.argmax);
  EXPECT(std::count(gc.match.begin(), gc.match.end(), 1) >= 3);
}

TEST(bad_input_gets_the_cpu_messages_on_the_gpu) {
  cuda::GPTCuda m(small_config(false));
  std::vector<int32_t> tok = {1, 2, 500};
  EXPECT_THROWS_WITH(m.forward(tok.data(), nullptr, 1, 3, ForwardOptions{}), "outside the vocabulary");
  Vec d(3, 1.0f);
  EXPECT_THROWS_WITH(m.backward(d.data(), nullptr), "call forward() first");
  std::vector<int32_t> ok = {1, 2, 3}, spans = {0, 3};
  EXPECT_THROWS_WITH(m.divergence(ok.data(), 1, 3, spans.data(), DivergenceConfig{}), "span");
  // a NaN gradient skips the step and leaves the parameters as they were
  m.init_weights(1);
  Vec before = params_of(m);
  Vec nan(1, NAN);
  m.write_buffer(BufferKind::grads, 5, 1, nan.data());
  EXPECT_THROWS_WITH(m.step(AdamWConfig{}), "not finite");
  EXPECT(params_of(m) == before);
  // NaN weights: writeBuffer refuses them; put there anyway, every call that reads the weights
  // refuses them, as on the CPU
  EXPECT_THROWS_WITH(m.write_buffer(BufferKind::params, 0, 1, nan.data()),
                     "writeBuffer(params): the value at offset 0 (tensor 'transformer.wte.weight', index 0) is not finite");
  m.params.upload(nan.data(), 1, 0);
  const char* bad = "the model's parameters are not finite (tensor 'transformer.wte.weight', index 0 is nan)";
  EXPECT_THROWS_WITH(m.forward(ok.data(), ok.data(), 1, 3, ForwardOptions{}), bad);
  std::vector<int32_t> good_spans = {1, 3};
  EXPECT_THROWS_WITH(m.divergence(ok.data(), 1, 3, good_spans.data(), DivergenceConfig{}), bad);
  EXPECT_THROWS_WITH(m.greedy_match(ok.data(), 1, 3, good_spans.data()), bad);
  GenerateOptions go;
  go.max_new_tokens = 2;
  EXPECT_THROWS_WITH(m.generate({{1, 2}}, go), bad);
  // an unknown precision in the environment is named
  setenv("S2S_CUDA_PRECISION", "fp16", 1);
  EXPECT_THROWS_WITH(cuda::GPTCuda(small_config(false)), "S2S_CUDA_PRECISION must be 'bf16' or 'fp32', got 'fp16'");
  unsetenv("S2S_CUDA_PRECISION");
}

int main() {
  CudaStatus s = cuda_status();
  if (!s.available) {
    std::printf("SKIP: the CUDA backend's tests need a GPU: %s\n", s.reason.c_str());
    return 77;
  }
  std::printf("device: %s; cuBLAS: %s\n", s.device.c_str(), cuda::have_cublas() ? "yes" : "no (built-in kernels)");
  return harness::run_all();
}

// The GPU benchmark (scripts/gpu-check.sh runs it): the card's measured peaks first (bf16 GEMM
// rate, device-to-device copy bandwidth), then the engine against them in the same run: a GPT-2
// 124M training step (tokens/s, model-FLOPs utilisation), generation (tokens/s) and the fused
// divergence kernel (GB/s of logits read once, against the copy bandwidth). Prints one table.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend.h"
#include "harness.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/model_cuda.h"

using namespace s2s;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Row {
  std::string what, value, against;
};
std::vector<Row> rows;

void report(const std::string& what, const std::string& value, const std::string& against) {
  rows.push_back({what, value, against});
  std::printf("%-52s %-22s %s\n", what.c_str(), value.c_str(), against.c_str());
  std::fflush(stdout);
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

double copy_bandwidth_gbs() {
  const size_t n = (size_t)1 << 28;  // 1 GiB of floats
  cuda::DeviceBuffer a, b;
  a.reserve(n);
  b.reserve(n);
  a.zero();
  S2S_CUDA_CHECK(cudaMemcpy(b.data(), a.data(), n * sizeof(float), cudaMemcpyDeviceToDevice));
  const int iters = 10;
  float ms = cuda::time_ms([&] {
    for (int i = 0; i < iters; i++)
      S2S_CUDA_CHECK(cudaMemcpy(b.data(), a.data(), n * sizeof(float), cudaMemcpyDeviceToDevice));
  });
  return 2.0 * n * sizeof(float) * iters / (ms * 1e-3) / 1e9;  // bytes read + written
}

// GPT-2 124M: vocabulary 50257, context 1024, 12 layers, 12 heads, width 768
GPTConfig gpt2_small() { return {50257, 1024, 12, 12, 768}; }

// SmolLM2-135M's shape: 30 layers, width 576, 9 query heads over 3 key/value heads, FF 1536.
GPTConfig smollm2_135m() {
  GPTConfig c{49152, 2048, 30, 9, 576};
  c.arch = "llama";
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.ffn_size = 1536;
  c.rope_theta = 1e5;
  return c;
}

std::vector<int32_t> tokens(size_t n, int V, uint64_t seed) { return harness::random_tokens(n, V, seed); }

}  // namespace

int main(int argc, char** argv) {
  CudaStatus st = cuda_status();
  if (!st.available) {
    std::printf("SKIP: no usable GPU: %s\n", st.reason.c_str());
    return 77;
  }
  // a shorter run for a quick look: bench_cuda quick
  const bool quick = argc > 1 && std::string(argv[1]) == "quick";
  std::printf("device: %s; cuBLAS: %s\n\n", st.device.c_str(), cuda::have_cublas() ? "yes" : "no (built-in kernels)");

  const double peak_bf16 = cuda::measure_gemm_tflops(8192, 8192, 8192, quick ? 5 : 20, cuda::Precision::bf16);
  report("peak: GEMM 8192^3, bf16 (TFLOP/s)", fmt("%.1f", peak_bf16), "the card's measured rate");
  const double peak_fp32 = cuda::measure_gemm_tflops(4096, 4096, 4096, quick ? 3 : 10, cuda::Precision::fp32);
  report("peak: GEMM 4096^3, fp32 (TFLOP/s)", fmt("%.1f", peak_fp32), "");
  const double copy = copy_bandwidth_gbs();
  report("peak: device copy (GB/s, read + write)", fmt("%.0f", copy), "the card's measured bandwidth");

  // ---- training step, GPT-2 124M ----
  GPTConfig cfg = gpt2_small();
  const int B = 8, T = 1024;
  for (cuda::Precision p : {cuda::Precision::bf16, cuda::Precision::fp32}) {
    cuda::GPTCuda m(cfg);
    m.set_precision(p);
    m.init_weights(1);
    auto tok = tokens((size_t)B * T, cfg.vocab_size, 2), tgt = tokens((size_t)B * T, cfg.vocab_size, 3);
    std::vector<float> dlp((size_t)B * T, -1.0f / (B * T));
    AdamWConfig a;
    a.lr = 1e-4f;
    a.max_grad_norm = 1.0f;
    auto step = [&] {
      m.forward(tok.data(), tgt.data(), B, T, ForwardOptions{});
      m.backward(dlp.data(), nullptr);
      m.step(a);
    };
    step();  // warm-up: allocation and cuBLAS's heuristics
    const int iters = quick ? 2 : 5;
    auto t0 = Clock::now();
    for (int i = 0; i < iters; i++) step();
    double s = seconds_since(t0) / iters;
    double tps = B * T / s;
    double tflops = m.flops_per_token(T) * tps / 1e12;
    std::string name = std::string("train step 124M B=8 T=1024, ") + cuda::precision_name(p);
    report(name + " (tokens/s)", fmt("%.0f", tps), fmt("%.1f ms/step", s * 1e3));
    double peak = p == cuda::Precision::bf16 ? peak_bf16 : peak_fp32;
    report(name + " (MFU)", fmt("%.1f%%", 100.0 * tflops / peak),
           fmt("%.1f TFLOP/s of the measured ", tflops) + cuda::precision_name(p) + " peak");
  }

  // ---- the Llama family: a training step and generation of SmolLM2-135M's shape ----
  {
    GPTConfig lc = smollm2_135m();
    const int LB = 8, LT = 1024;
    cuda::LlamaCuda m(lc);
    m.init_weights(1);
    auto tok = tokens((size_t)LB * LT, lc.vocab_size, 2), tgt = tokens((size_t)LB * LT, lc.vocab_size, 3);
    std::vector<float> dlp((size_t)LB * LT, -1.0f / (LB * LT));
    AdamWConfig a;
    a.lr = 1e-4f;
    auto step = [&] {
      m.forward(tok.data(), tgt.data(), LB, LT, ForwardOptions{});
      m.backward(dlp.data(), nullptr);
      m.step(a);
    };
    step();
    const int iters = quick ? 2 : 5;
    auto t0 = Clock::now();
    for (int i = 0; i < iters; i++) step();
    double s = seconds_since(t0) / iters;
    double tflops = m.flops_per_token(LT) * LB * LT / s / 1e12;
    report("train step SmolLM2-135M shape B=8 T=1024, bf16 (tokens/s)", fmt("%.0f", LB * LT / s),
           fmt("%.1f ms/step, ", s * 1e3) + fmt("MFU %.1f%%", 100.0 * tflops / peak_bf16));
    std::vector<std::vector<int32_t>> prompts;
    for (int b = 0; b < 32; b++) prompts.push_back(tokens(16, lc.vocab_size, 20 + b));
    GenerateOptions o;
    o.max_new_tokens = quick ? 32 : 128;
    o.sampling.temperature = 1.0f;
    m.generate(prompts, o);  // warm-up
    t0 = Clock::now();
    GenerateResult r = m.generate(prompts, o);
    double gs = seconds_since(t0);
    long n = 0;
    for (int len : r.lengths) n += len;
    report(std::string("generate SmolLM2-135M shape, 32 x (16 + ") + std::to_string(o.max_new_tokens) + ") (tokens/s)",
           fmt("%.0f", n / gs), fmt("%.2f ms per step", gs * 1e3 / o.max_new_tokens));
  }

  // ---- generation ----
  {
    cuda::GPTCuda m(cfg);
    m.init_weights(4);
    const int GB = 64, P = 64, NEW = quick ? 32 : 128;
    std::vector<std::vector<int32_t>> prompts;
    for (int b = 0; b < GB; b++) prompts.push_back(tokens(P, cfg.vocab_size, 10 + b));
    for (float temp : {0.0f, 1.0f}) {
      GenerateOptions o;
      o.max_new_tokens = NEW;
      o.sampling.temperature = temp;
      o.seed = 5;
      m.generate(prompts, o);  // warm-up
      auto t0 = Clock::now();
      GenerateResult r = m.generate(prompts, o);
      double s = seconds_since(t0);
      long n = 0;
      for (int len : r.lengths) n += len;
      report(std::string("generate 124M, 64 x (64 + ") + std::to_string(NEW) + "), " +
                 (temp == 0.0f ? "greedy" : "sampled") + " (tokens/s)",
             fmt("%.0f", n / s), fmt("%.2f ms per step", s * 1e3 / NEW));
    }
  }

  // ---- the fused divergence kernel on logits already on the device ----
  {
    const int V = cfg.vocab_size, Bd = 16, Td = 512;
    const int64_t M = (int64_t)Bd * (Td - 1);
    cuda::DeviceBuffer logits, scores;
    logits.reserve((size_t)M * V);
    {
      std::vector<float> h((size_t)V * 64);
      Rng rng(9, 9);
      for (float& x : h) x = rng.uniform();
      for (int64_t r = 0; r < M; r += 64) logits.upload(h.data(), (size_t)std::min<int64_t>(64, M - r) * V, (size_t)r * V);
    }
    std::vector<int32_t> row, pos, spans;
    for (int b = 0; b < Bd; b++) {
      spans.push_back(1);
      spans.push_back(Td);
      for (int t = 1; t < Td; t++) row.push_back(b), pos.push_back(t);
    }
    auto tok = tokens((size_t)Bd * Td, V, 6);
    cuda::DeviceArray<int32_t> drow, dpos, dtok, dspans, am, first, counters;
    drow.reserve(M), dpos.reserve(M), dtok.reserve((size_t)Bd * Td), dspans.reserve(2 * Bd);
    am.reserve((size_t)Bd * Td), first.reserve(Bd), counters.reserve(Bd);
    scores.reserve((size_t)Bd * Td);
    drow.upload(row.data(), M), dpos.upload(pos.data(), M), dtok.upload(tok.data(), tok.size());
    dspans.upload(spans.data(), spans.size());
    auto run = [&] {
      counters.zero(Bd);
      cuda::divergence_score(logits.data(), M, V, drow.data(), dpos.data(), dtok.data(), Td, dspans.data(),
                             {1.0f, -1.0f, 0.0f}, am.data(), scores.data(), first.data(), counters.data());
    };
    run();
    S2S_CUDA_CHECK(cudaDeviceSynchronize());
    const int iters = quick ? 3 : 10;
    float ms = cuda::time_ms([&] {
      for (int i = 0; i < iters; i++) run();
    });
    double gbs = (double)M * V * sizeof(float) * iters / (ms * 1e-3) / 1e9;
    report("divergence kernel, 8176 rows x 50257 (GB/s)", fmt("%.0f", gbs),
           fmt("%.1f%% of the copy bandwidth", 100.0 * gbs / copy));

    // the whole pass a reward model runs: transformer, LM head per chunk, the kernel
    cuda::GPTCuda m(cfg);
    m.init_weights(8);
    m.divergence(tok.data(), Bd, Td, spans.data(), DivergenceConfig{});  // warm-up
    auto t0 = Clock::now();
    m.divergence(tok.data(), Bd, Td, spans.data(), DivergenceConfig{});
    double sec = seconds_since(t0);
    report("model.divergence 124M, 16 x 512 (tokens/s)", fmt("%.0f", Bd * Td / sec), fmt("%.1f ms", sec * 1e3));
  }

  std::printf("\n| measurement | value | against |\n|---|---|---|\n");
  for (const Row& r : rows) std::printf("| %s | %s | %s |\n", r.what.c_str(), r.value.c_str(), r.against.c_str());
  return 0;
}

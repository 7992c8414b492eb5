// What the backends share: every argument check (one message for one mistake, whichever device
// runs it) and the divergence rule as the paper states it (the reference the kernels are tested
// against).
#include "backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>


namespace s2s {

std::string where(int T, int64_t i) {
  std::ostringstream s;
  s << "row " << i / T << ", position " << i % T;
  return s.str();
}

void check_batch(const ModelConfig& cfg, const int32_t* tokens, int B, int T) {
  if (B < 1 || T < 1) throw Error("batch shape must be at least 1 x 1, got " + std::to_string(B) + " x " + std::to_string(T));
  if (T > cfg.max_seq_len)
    throw Error("sequence length " + std::to_string(T) + " exceeds the model's context length (" +
                std::to_string(cfg.max_seq_len) + ")");
  for (int64_t i = 0; i < (int64_t)B * T; i++)
    if (tokens[i] < 0 || tokens[i] >= cfg.vocab_size)
      throw Error("token id " + std::to_string(tokens[i]) + " at " + where(T, i) + " is outside the vocabulary (0.." +
                  std::to_string(cfg.vocab_size - 1) + ")");
}

void check_targets(const ModelConfig& cfg, const int32_t* targets, int B, int T) {
  if (!targets) return;
  for (int64_t i = 0; i < (int64_t)B * T; i++)
    if (targets[i] < -1 || targets[i] >= cfg.vocab_size)
      throw Error("target id " + std::to_string(targets[i]) + " at " + where(T, i) + " is outside the vocabulary (0.." +
                  std::to_string(cfg.vocab_size - 1) + ", or -1 for none)");
}

void check_forward_options(const ModelConfig& cfg, const ForwardOptions& o) {
  if (!(o.temperature > 0.0f) || !std::isfinite(o.temperature))
    throw Error("temperature must be a positive finite number, got " + std::to_string(o.temperature));
  if (o.values && !cfg.value_head) throw Error("values were requested but this model has no value head");
  if (!o.logprob && !o.values) throw Error("forward with logprob: false needs values: true (there is nothing else to compute)");
  if (!o.logprob && o.entropy) throw Error("entropy needs the LM head: it cannot be asked with logprob: false");
}

void check_backward_inputs(const ModelConfig& cfg, const float* dlogprob, const float* dvalue, int B, int T, bool head_ran) {
  if (!dlogprob && !dvalue) throw Error("backward needs dlogprob or dvalue (each of B*T values); neither was given");
  if (dvalue && !cfg.value_head) throw Error("dvalue was given but this model has no value head");
  if (dlogprob && !head_ran) throw Error("dlogprob was given but the last forward skipped the LM head (logprob: false)");
  for (int64_t i = 0; i < (int64_t)B * T; i++) {
    if (dlogprob && !std::isfinite(dlogprob[i]))
      throw Error("dlogprob at " + where(T, i) + " is not finite (" + std::to_string(dlogprob[i]) + ")");
    if (dvalue && !std::isfinite(dvalue[i]))
      throw Error("dvalue at " + where(T, i) + " is not finite (" + std::to_string(dvalue[i]) + ")");
  }
}

void check_adamw(const AdamWConfig& o) {
  auto bad = [](float x) { return !std::isfinite(x); };
  if (bad(o.lr) || o.lr < 0) throw Error("lr must be a finite number >= 0, got " + std::to_string(o.lr));
  if (bad(o.beta1) || o.beta1 < 0 || o.beta1 >= 1) throw Error("beta1 must be in [0, 1), got " + std::to_string(o.beta1));
  if (bad(o.beta2) || o.beta2 < 0 || o.beta2 >= 1) throw Error("beta2 must be in [0, 1), got " + std::to_string(o.beta2));
  if (bad(o.eps) || o.eps <= 0) throw Error("eps must be a finite number > 0, got " + std::to_string(o.eps));
  if (bad(o.weight_decay) || o.weight_decay < 0)
    throw Error("weightDecay must be a finite number >= 0, got " + std::to_string(o.weight_decay));
  if (bad(o.max_grad_norm) || o.max_grad_norm < 0)
    throw Error("maxGradNorm must be a finite number >= 0 (0 disables clipping), got " + std::to_string(o.max_grad_norm));
}

const char* buffer_name(BufferKind k) {
  return k == BufferKind::params ? "params" : k == BufferKind::grads ? "grads" : k == BufferKind::adam_m ? "adam_m" : "adam_v";
}

namespace {
std::string value_str(float x) {
  std::ostringstream s;
  s << x;
  return s.str();
}
// "offset 12 (tensor 'wte.weight', index 12)"
std::string locate(const std::vector<TensorInfo>& layout, size_t offset) {
  std::string s = "offset " + std::to_string(offset);
  for (const TensorInfo& t : layout)
    if (offset >= t.offset && offset < t.offset + t.numel)
      return s + " (tensor '" + t.name + "', index " + std::to_string(offset - t.offset) + ")";
  return s;
}
}  // namespace

void check_buffer_values(const std::vector<TensorInfo>& layout, BufferKind k, size_t offset, size_t n, const float* src) {
  if (k == BufferKind::grads) return;
  for (size_t i = 0; i < n; i++) {
    if (!std::isfinite(src[i]))
      throw Error(std::string("writeBuffer(") + buffer_name(k) + "): the value at " + locate(layout, offset + i) +
                  " is not finite (" + value_str(src[i]) + "); nothing was written");
    if (k == BufferKind::adam_v && src[i] < 0)
      throw Error("writeBuffer(adam_v): the value at " + locate(layout, offset + i) + " is negative (" +
                  value_str(src[i]) + "): AdamW's second moment must be >= 0; nothing was written");
  }
}

void check_tensor_finite(const TensorInfo& t, const float* host, const char* call) {
  for (size_t i = 0; i < t.numel; i++)
    if (!std::isfinite(host[i]))
      throw Error(std::string(call) + " refused: the model's parameters are not finite (tensor '" + t.name + "', index " +
                  std::to_string(i) + " is " + value_str(host[i]) + ")");
}

void check_buffer_range(size_t offset, size_t n, size_t total) {
  if (offset + n > total)
    throw Error("offset + length (" + std::to_string(offset + n) + ") exceeds the number of parameters (" +
                std::to_string(total) + ")");
}

int64_t check_spans(const int32_t* spans, int B, int T) {
  int64_t M = 0;
  for (int b = 0; b < B; b++) {
    int s = spans[2 * b], e = spans[2 * b + 1];
    if (s < 1 || e < s || e > T)
      throw Error("span of row " + std::to_string(b) + " is [" + std::to_string(s) + ", " + std::to_string(e) +
                  "): it must satisfy 1 <= start <= end <= T (" + std::to_string(T) +
                  "), since position t is predicted from position t - 1");
    M += e - s;
  }
  return M;
}

int check_generate(const ModelConfig& cfg, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  const int V = cfg.vocab_size;
  if (prompts.empty()) throw Error("generate needs at least one prompt");
  if (o.max_new_tokens < 1) throw Error("maxNewTokens must be at least 1, got " + std::to_string(o.max_new_tokens));
  const SamplingConfig& sc = o.sampling;
  if (!std::isfinite(sc.temperature) || sc.temperature < 0)
    throw Error("temperature must be a finite number >= 0 (0 is greedy), got " + std::to_string(sc.temperature));
  if (sc.top_k < 0) throw Error("topK must be >= 0 (0 disables it), got " + std::to_string(sc.top_k));
  if (!(sc.top_p > 0.0f && sc.top_p <= 1.0f)) throw Error("topP must be in (0, 1], got " + std::to_string(sc.top_p));
  for (int32_t e : o.eos)
    if (e < 0 || e >= V) throw Error("eos token id " + std::to_string(e) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
  int P = 0;
  for (size_t b = 0; b < prompts.size(); b++) {
    int n = (int)prompts[b].size();
    if (n == 0) throw Error("prompt " + std::to_string(b) + " is empty: a prompt needs at least one token (a BOS token, say)");
    if (n + o.max_new_tokens > cfg.max_seq_len)
      throw Error("prompt " + std::to_string(b) + " has " + std::to_string(n) + " tokens; with maxNewTokens " +
                  std::to_string(o.max_new_tokens) + " that exceeds the model's context length (" +
                  std::to_string(cfg.max_seq_len) + ")");
    for (int t = 0; t < n; t++)
      if (prompts[b][t] < 0 || prompts[b][t] >= V)
        throw Error("token id " + std::to_string(prompts[b][t]) + " in prompt " + std::to_string(b) + ", position " +
                    std::to_string(t) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
    P = std::max(P, n);
  }
  return P;
}

DivergenceResult score_divergence(const int32_t* tokens, const int32_t* argmax, int B, int T, const int32_t* spans,
                                  const DivergenceConfig& cfg) {
  DivergenceResult r;
  r.scores.assign((size_t)B * T, 0.0f);
  r.first_divergence.assign(B, -1);
  r.argmax.assign(argmax, argmax + (size_t)B * T);
  for (int b = 0; b < B; b++) {
    bool diverged = false;
    for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++) {
      int64_t i = (int64_t)b * T + t;
      bool match = argmax[i] == tokens[i];
      if (!diverged && match) {
        r.scores[i] = cfg.positive;
        continue;
      }
      if (!diverged) {
        diverged = true;
        r.first_divergence[b] = t - spans[2 * b];
      }
      r.scores[i] = match ? cfg.neutral : cfg.negative;
    }
  }
  return r;
}

Precision cuda_default_precision() {
  const char* env = std::getenv("S2S_CUDA_PRECISION");
  if (!env || !*env || std::strcmp(env, "bf16") == 0) return Precision::bf16;
  if (std::strcmp(env, "fp32") == 0) return Precision::fp32;
  throw Error(std::string("S2S_CUDA_PRECISION must be 'bf16' or 'fp32', got '") + env + "'");
}

#ifndef S2S_WITH_CUDA
CudaStatus cuda_status() {
  CudaStatus s;
  s.reason = "this build of the engine has no CUDA backend (nvcc was not found when it was built, or S2S_CUDA=off)";
  return s;
}
#endif

}  // namespace s2s

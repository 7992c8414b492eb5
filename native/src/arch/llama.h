// The Llama family's architecture (Llama 2/3, TinyLlama, SmolLM2, Qwen2, Mistral without a sliding
// window), as Hugging Face's modeling_llama / modeling_qwen2 define it: token embedding (no learned
// positions), per block RMSNorm -> q/k/v projections (biases in Qwen2) -> rotary embeddings
// (rotate_half layout, rope_theta, optional llama3 frequency scaling) -> grouped-query causal
// attention -> o_proj, residual, RMSNorm -> SwiGLU MLP down(silu(gate(x)) * up(x)), residual; final
// RMSNorm; an LM head tied to the embedding or its own lm_head. The same members as arch/gpt2.h
// (what the runtime, src/model_impl.h, asks of an architecture).
//
// Layout: tensors keep transformers' names and [out, in] Linear shapes. q_proj, k_proj and v_proj
// lie next to each other in the flat buffer, so together they are one [(NH + 2 KVH) hd, C] weight
// and one matmul produces the packed qkv that attention reads (AttnShape); their biases likewise;
// gate_proj and up_proj likewise form one [2F, C] weight whose output swiglu splits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/config.h"
#include "arch/tensor.h"
#include "ops/contracts.h"

namespace s2s {
namespace arch {

struct Llama {
  static constexpr const char* kName = "llama";

  static void validate(const ModelConfig& c);
  static std::vector<TensorInfo> layout(const ModelConfig& c, size_t* num_params);
  // As transformers' _init_weights: N(0, initializer_range 0.02) for Linear and Embedding weights,
  // RMSNorm weights 1, biases 0; the same numbers on every thread count and device.
  static void init(float* params, const ModelConfig& c, const std::vector<TensorInfo>& layout, uint64_t seed);
  // 6 * (matmul params, the LM head included) + 6 * L * NH * hd * T (causal attention).
  static double flops_per_token(const ModelConfig& c, int T);
  static int64_t kv_width(const ModelConfig& c) { return (int64_t)c.num_kv_heads * c.head_dim; }
  // The rotary tables for positions 0..maxT-1: cos[p, i], sin[p, i] (i < hd/2) of p * inv_freq[i],
  // inv_freq as transformers computes it (default or llama3 scaling), the angle in double.
  static void rope_tables(const ModelConfig& c, std::vector<float>* cos, std::vector<float>* sin);

  static AttnShape shape(const ModelConfig& c, int B, int T) {
    return AttnShape{B, T, c.num_heads, c.num_kv_heads, c.head_dim};
  }

  struct Layer {
    float *ln1w, *qkvw, *qkvb, *ow, *ln2w, *gateupw, *downw;  // qkvb: null without q/k/v biases
  };
  struct Params {
    float *wte, *wpe, *normw, *lm_head, *score;  // wpe: always null (no learned positions)
    std::vector<Layer> layers;
  };
  static Params view(const ModelConfig& c, const std::vector<TensorInfo>& layout, float* base);

  // Per-model constants on the device: the rotary tables.
  template <class D>
  struct Tables {
    typename D::template Array<float> cos, sin;
    void build(const ModelConfig& c) {
      std::vector<float> hc, hs;
      rope_tables(c, &hc, &hs);
      cos.reserve((int64_t)hc.size());
      sin.reserve((int64_t)hs.size());
      cos.upload(hc.data(), hc.size());
      sin.upload(hs.data(), hs.size());
    }
  };

  template <class D>
  struct Acts {
    typename D::template Array<float> encoded, ln1, ln1_rstd, qkv, atty, att, res2, ln2, ln2_rstd, gu, act, res3,
        lnf, lnf_rstd, scratch_c;
    int64_t att_layer = 0;  // as GPT-2's
    float* att_of(int l) { return att_layer ? att.data() + l * att_layer : nullptr; }
    void reserve(const D& ops, const ModelConfig& c, int B, int T) {
      const int64_t N = (int64_t)B * T, C = c.channels, L = c.num_layers, F = c.ffn_size;
      const AttnShape s = shape(c, B, T);
      encoded.reserve(N * C);
      for (auto* b : {&ln1, &res2, &ln2, &res3}) b->reserve(L * N * C);
      for (auto* b : {&ln1_rstd, &ln2_rstd}) b->reserve(L * N);
      qkv.reserve(L * N * s.qkv_width());
      atty.reserve(L * N * s.q_width());
      att_layer = ops.attention_probs_values(s);
      att.reserve(L * att_layer);
      gu.reserve(L * N * 2 * F);
      act.reserve(L * N * F);
      lnf.reserve(N * C);
      lnf_rstd.reserve(N);
      scratch_c.reserve(N * C);
    }
  };
  template <class D>
  struct Grads {
    typename D::template Array<float> dres, dlnf, dgu, dact, dqkv, datty, datt;
    void reserve(const D& ops, const ModelConfig& c, int B, int T) {
      const int64_t N = (int64_t)B * T, C = c.channels, F = c.ffn_size;
      const AttnShape s = shape(c, B, T);
      dres.reserve(N * C);
      dlnf.reserve(N * C);
      dgu.reserve(N * 2 * F);
      dact.reserve(N * F);
      dqkv.reserve(N * s.qkv_width());
      datty.reserve(N * s.q_width());
      datt.reserve(ops.attention_probs_values(s));
    }
  };
  template <class D>
  struct Decode {
    typename D::template Array<float> x, rstd, qkv, atty, gu, act, tmp, out;
    void reserve(const ModelConfig& c, int B) {
      const int64_t C = c.channels, F = c.ffn_size;
      const AttnShape s = shape(c, B, 1);
      for (auto* b : {&x, &tmp, &out}) b->reserve(B * C);
      rstd.reserve(B);
      qkv.reserve(B * s.qkv_width());
      atty.reserve(B * s.q_width());
      gu.reserve(B * 2 * F);
      act.reserve(B * F);
    }
  };

  template <class D>
  static void forward(D& ops, const ModelConfig& c, const Params& p, const Tables<D>& tb, Acts<D>& a,
                      const int32_t* tokens, int B, int T) {
    const int64_t N = (int64_t)B * T;
    const int C = c.channels, L = c.num_layers;
    const int64_t F = c.ffn_size;
    const float eps = (float)c.norm_eps;
    const AttnShape s = shape(c, B, T);
    const int64_t W = s.qkv_width(), QW = s.q_width();
    ops.embedding_forward(a.encoded.data(), tokens, p.wte, nullptr, B, T, C, nullptr);
    for (int l = 0; l < L; l++) {
      const Layer& w = p.layers[l];
      const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
      float* ln1 = a.ln1.data() + l * N * C;
      float* qkv = a.qkv.data() + l * N * W;
      float* atty = a.atty.data() + l * N * QW;
      float* att = a.att_of(l);
      float* res2 = a.res2.data() + l * N * C;
      float* ln2 = a.ln2.data() + l * N * C;
      float* gu = a.gu.data() + l * N * 2 * F;
      float* act = a.act.data() + l * N * F;
      float* res3 = a.res3.data() + l * N * C;
      float* tmp = a.scratch_c.data();
      ops.rmsnorm_forward(ln1, a.ln1_rstd.data() + l * N, res_in, w.ln1w, N, C, eps);
      ops.linear_forward(qkv, ln1, w.qkvw, w.qkvb, N, C, W);
      ops.rope_forward(qkv, tb.cos.data(), tb.sin.data(), nullptr, N, T, W, s.NH + s.KVH, s.hd);
      ops.attention_forward(atty, att, qkv, s);
      ops.linear_forward(tmp, atty, w.ow, nullptr, N, QW, C);
      ops.residual_forward(res2, res_in, tmp, N * C);
      ops.rmsnorm_forward(ln2, a.ln2_rstd.data() + l * N, res2, w.ln2w, N, C, eps);
      ops.linear_forward(gu, ln2, w.gateupw, nullptr, N, C, 2 * F);
      ops.swiglu_forward(act, gu, N, F);
      ops.linear_forward(tmp, act, w.downw, nullptr, N, F, C);
      ops.residual_forward(res3, res2, tmp, N * C);
    }
    ops.rmsnorm_forward(a.lnf.data(), a.lnf_rstd.data(), a.res3.data() + (L - 1) * N * C, p.normw, N, C, eps);
  }

  // As GPT-2's backward (accumulate false: g holds zeros, and the weight products write theirs).
  template <class D>
  static void backward(D& ops, const ModelConfig& c, const Params& p, const Params& g, const Tables<D>& tb,
                       Acts<D>& a, Grads<D>& d, const int32_t* tokens, int B, int T, bool accumulate) {
    const int64_t N = (int64_t)B * T;
    const int C = c.channels, L = c.num_layers;
    const int64_t F = c.ffn_size;
    const AttnShape s = shape(c, B, T);
    const int64_t W = s.qkv_width(), QW = s.q_width();
    float* dres = d.dres.data();
    float* dc = d.dlnf.data();  // the heads' gradient first, then each branch's C-wide gradient
    d.dres.zero(N * C);
    ops.rmsnorm_backward(dres, g.normw, dc, a.res3.data() + (L - 1) * N * C, p.normw, a.lnf_rstd.data(), N, C);
    for (int l = L - 1; l >= 0; l--) {
      const Layer& w = p.layers[l];
      const Layer& gw = g.layers[l];
      const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
      // MLP branch
      ops.linear_backward(d.dact.data(), gw.downw, nullptr, dres, a.act.data() + l * N * F, w.downw, N, F, C,
                          accumulate);
      ops.swiglu_backward(d.dgu.data(), d.dact.data(), a.gu.data() + l * N * 2 * F, N, F);
      ops.linear_backward(dc, gw.gateupw, nullptr, d.dgu.data(), a.ln2.data() + l * N * C, w.gateupw, N, C, 2 * F,
                          accumulate);
      ops.rmsnorm_backward(dres, gw.ln2w, dc, a.res2.data() + l * N * C, w.ln2w, a.ln2_rstd.data() + l * N, N, C);
      // attention branch
      ops.linear_backward(d.datty.data(), gw.ow, nullptr, dres, a.atty.data() + l * N * QW, w.ow, N, QW, C, accumulate);
      ops.attention_backward(d.dqkv.data(), d.datt.data(), d.datty.data(), a.qkv.data() + l * N * W,
                             a.att_of(l), s);
      ops.rope_backward(d.dqkv.data(), tb.cos.data(), tb.sin.data(), nullptr, N, T, W, s.NH + s.KVH, s.hd);
      ops.linear_backward(dc, gw.qkvw, gw.qkvb, d.dqkv.data(), a.ln1.data() + l * N * C, w.qkvw, N, C, W, accumulate);
      ops.rmsnorm_backward(dres, gw.ln1w, dc, res_in, w.ln1w, a.ln1_rstd.data() + l * N, N, C);
    }
    ops.embedding_backward(g.wte, nullptr, dres, tokens, B, T, C);
  }

  template <class D>
  static void prefill_cache(D& ops, const ModelConfig& c, Acts<D>& a, float* kcache, float* vcache, const int32_t* len,
                            int B, int P, int maxT) {
    const AttnShape s = shape(c, B, P);
    const int64_t N = (int64_t)B * P, layer = (int64_t)B * maxT * s.kv_width();
    for (int l = 0; l < c.num_layers; l++)
      ops.kv_cache_prefill(kcache + l * layer, vcache + l * layer, a.qkv.data() + l * N * s.qkv_width(), len, maxT, s);
  }

  template <class D>
  static void decode(D& ops, const ModelConfig& c, const Params& p, const Tables<D>& tb, Decode<D>& d, float* kcache,
                     float* vcache, const int32_t* tok, const int32_t* pos, int B, int maxT) {
    const int C = c.channels, L = c.num_layers;
    const int64_t F = c.ffn_size, BC = (int64_t)B * C;
    const float eps = (float)c.norm_eps;
    const AttnShape s = shape(c, B, 1);
    const int64_t W = s.qkv_width(), QW = s.q_width(), layer = (int64_t)B * maxT * s.kv_width();
    float* x = d.x.data();
    float* ln = d.out.data();  // RMSNorm outputs; the last one is the result
    ops.embedding_forward(x, tok, p.wte, nullptr, B, 1, C, pos);
    for (int l = 0; l < L; l++) {
      const Layer& w = p.layers[l];
      float* kc = kcache + l * layer;
      float* vc = vcache + l * layer;
      ops.rmsnorm_forward(ln, d.rstd.data(), x, w.ln1w, B, C, eps);
      ops.linear_forward(d.qkv.data(), ln, w.qkvw, w.qkvb, B, C, W);
      ops.rope_forward(d.qkv.data(), tb.cos.data(), tb.sin.data(), pos, B, 1, W, s.NH + s.KVH, s.hd);
      ops.kv_cache_write(kc, vc, d.qkv.data(), pos, maxT, s);
      ops.attention_decode(d.atty.data(), d.qkv.data(), kc, vc, pos, maxT, s);
      ops.linear_forward(d.tmp.data(), d.atty.data(), w.ow, nullptr, B, QW, C);
      ops.residual_forward(x, x, d.tmp.data(), BC);
      ops.rmsnorm_forward(ln, d.rstd.data(), x, w.ln2w, B, C, eps);
      ops.linear_forward(d.gu.data(), ln, w.gateupw, nullptr, B, C, 2 * F);
      ops.swiglu_forward(d.act.data(), d.gu.data(), B, F);
      ops.linear_forward(d.tmp.data(), d.act.data(), w.downw, nullptr, B, F, C);
      ops.residual_forward(x, x, d.tmp.data(), BC);
    }
    ops.rmsnorm_forward(ln, d.rstd.data(), x, p.normw, B, C, eps);
  }
};

}  // namespace arch
}  // namespace s2s

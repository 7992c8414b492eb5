// GPT-2's architecture, in one place: its config checks, Hugging Face tensor names and shapes in
// the flat parameter buffer, the named view of that buffer, initialisation, FLOPs per token, and
// the body of the network (embeddings, blocks, final LayerNorm) forward, backward and decoding,
// written once over a device's op set D (src/cpu/ops.h, src/cuda/ops.cuh). The runtime
// (src/model_impl.h) owns everything around the body: the LM and value heads, the optimizer,
// generation and divergence scoring.
//
// What the runtime asks of an architecture (Llama will be a sibling file with the same members):
//   validate, layout, init, flops_per_token, view (Params with lm_head and score), kv_width,
//   Acts<D> (with `lnf`, the final hidden states), Grads<D> (with `dlnf`), Decode<D> (with `out`),
//   forward, backward, prefill_cache, decode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/config.h"
#include "arch/tensor.h"
#include "ops/contracts.h"

namespace s2s {
namespace arch {

struct GPT2 {
  static constexpr const char* kName = "gpt2";
  static AttnShape shape(const ModelConfig& c, int B, int T) {
    return AttnShape{B, T, c.num_heads, c.num_heads, c.channels / c.num_heads};
  }

  static void validate(const ModelConfig& c);
  // wte, wpe, 12 tensors per block, ln_f, and score when the model has a value head.
  static std::vector<TensorInfo> layout(const ModelConfig& c, size_t* num_params);
  // N(0, 0.02), residual projections scaled by 1/sqrt(2L), biases 0, LayerNorm weights 1; the same
  // numbers on every thread count and device.
  static void init(float* params, const ModelConfig& c, const std::vector<TensorInfo>& layout, uint64_t seed);
  // 6 * (matmul params, the LM head included) + 6 * L * C * T (causal attention), as llm.c counts.
  static double flops_per_token(const ModelConfig& c, int T);
  // Floats per position of the key (and of the value) cache of one layer.
  static int64_t kv_width(const ModelConfig& c) { return c.channels; }

  struct Layer {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
  };
  // Pointers to each tensor of a flat buffer laid out by layout() (parameters or gradients, on
  // whichever device holds it). lm_head is wte: GPT-2 ties them.
  struct Params {
    float *wte, *wpe, *lnfw, *lnfb, *lm_head, *score;  // score: null without a value head
    std::vector<Layer> layers;
  };
  static Params view(const ModelConfig& c, const std::vector<TensorInfo>& layout, float* base);

  // Per-model constants on the device: GPT-2 has none (Llama: its rotary tables).
  template <class D>
  struct Tables {
    void build(const ModelConfig&) {}
  };

  // Activations of a forward over [B, T], kept for backward (per layer, layer after layer).
  template <class D>
  struct Acts {
    typename D::template Array<float> encoded, ln1, ln1_mean, ln1_rstd, qkv, atty, att, res2, ln2, ln2_mean, ln2_rstd,
        fch, fch_gelu, res3, lnf, lnf_mean, lnf_rstd, scratch_c;
    int64_t att_layer = 0;  // values of att per layer: the device's attention_probs_values, maybe 0
    // layer l's probabilities, or null where the device keeps none
    float* att_of(int l) { return att_layer ? att.data() + l * att_layer : nullptr; }
    void reserve(const D& ops, const ModelConfig& c, int B, int T) {
      const int64_t N = (int64_t)B * T, C = c.channels, L = c.num_layers;
      encoded.reserve(N * C);
      for (auto* b : {&ln1, &atty, &res2, &ln2, &res3}) b->reserve(L * N * C);
      for (auto* b : {&ln1_mean, &ln1_rstd, &ln2_mean, &ln2_rstd}) b->reserve(L * N);
      qkv.reserve(L * N * 3 * C);
      att_layer = ops.attention_probs_values(shape(c, B, T));
      att.reserve(L * att_layer);
      fch.reserve(L * N * 4 * C);
      fch_gelu.reserve(L * N * 4 * C);
      lnf.reserve(N * C);
      lnf_mean.reserve(N);
      lnf_rstd.reserve(N);
      scratch_c.reserve(N * C);
    }
  };
  // Gradient scratch of backward; dlnf receives the heads' gradient and is then reused.
  template <class D>
  struct Grads {
    typename D::template Array<float> dres, dlnf, dbuf_4c, dqkv, datt;
    void reserve(const D& ops, const ModelConfig& c, int B, int T) {
      const int64_t N = (int64_t)B * T, C = c.channels;
      dres.reserve(N * C);
      dlnf.reserve(N * C);
      dbuf_4c.reserve(N * 4 * C);
      dqkv.reserve(N * 3 * C);
      datt.reserve(ops.attention_probs_values(shape(c, B, T)));
    }
  };
  // One decoding step's buffers for B rows; `out` holds the final hidden states.
  template <class D>
  struct Decode {
    typename D::template Array<float> x, ln_mean, ln_rstd, qkv, atty, fch, fch_gelu, tmp, out;
    void reserve(const ModelConfig& c, int B) {
      const int64_t C = c.channels;
      for (auto* b : {&x, &atty, &tmp, &out}) b->reserve(B * C);
      ln_mean.reserve(B);
      ln_rstd.reserve(B);
      qkv.reserve(B * 3 * C);
      fch.reserve(B * 4 * C);
      fch_gelu.reserve(B * 4 * C);
    }
  };

  // tokens [B, T] (device memory) through every block and the final LayerNorm into a.lnf.
  template <class D>
  static void forward(D& ops, const ModelConfig& c, const Params& p, const Tables<D>&, Acts<D>& a,
                      const int32_t* tokens, int B, int T) {
    const int64_t N = (int64_t)B * T;
    const int C = c.channels, L = c.num_layers;
    ops.embedding_forward(a.encoded.data(), tokens, p.wte, p.wpe, B, T, C, nullptr);
    for (int l = 0; l < L; l++) {
      const Layer& w = p.layers[l];
      const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
      float* ln1 = a.ln1.data() + l * N * C;
      float* qkv = a.qkv.data() + l * N * 3 * C;
      float* atty = a.atty.data() + l * N * C;
      float* att = a.att_of(l);
      float* res2 = a.res2.data() + l * N * C;
      float* ln2 = a.ln2.data() + l * N * C;
      float* fch = a.fch.data() + l * N * 4 * C;
      float* fch_gelu = a.fch_gelu.data() + l * N * 4 * C;
      float* res3 = a.res3.data() + l * N * C;
      float* tmp = a.scratch_c.data();
      ops.layernorm_forward(ln1, a.ln1_mean.data() + l * N, a.ln1_rstd.data() + l * N, res_in, w.ln1w, w.ln1b, N, C);
      ops.matmul_forward(qkv, ln1, w.qkvw, w.qkvb, N, C, 3 * C);
      ops.attention_forward(atty, att, qkv, shape(c, B, T));
      ops.matmul_forward(tmp, atty, w.attprojw, w.attprojb, N, C, C);
      ops.residual_forward(res2, res_in, tmp, N * C);
      ops.layernorm_forward(ln2, a.ln2_mean.data() + l * N, a.ln2_rstd.data() + l * N, res2, w.ln2w, w.ln2b, N, C);
      ops.matmul_forward(fch, ln2, w.fcw, w.fcb, N, C, 4 * C);
      ops.gelu_forward(fch_gelu, fch, N * 4 * C);
      ops.matmul_forward(tmp, fch_gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
      ops.residual_forward(res3, res2, tmp, N * C);
    }
    ops.layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), a.res3.data() + (L - 1) * N * C, p.lnfw,
                          p.lnfb, N, C);
  }

  // From d.dlnf (the gradient of a.lnf) back to every parameter's gradient in g (added to it; with
  // accumulate false, g holds zeros and the layers' weight products write theirs instead: the same
  // values, without reading the zeros).
  template <class D>
  static void backward(D& ops, const ModelConfig& c, const Params& p, const Params& g, const Tables<D>&, Acts<D>& a,
                       Grads<D>& d, const int32_t* tokens, int B, int T, bool accumulate) {
    const int64_t N = (int64_t)B * T;
    const int C = c.channels, L = c.num_layers;
    float* dres = d.dres.data();
    float* dc = d.dlnf.data();  // the heads' gradient first, then each branch's C-wide gradient
    float* d4c = d.dbuf_4c.data();
    d.dres.zero(N * C);
    ops.layernorm_backward(dres, g.lnfw, g.lnfb, dc, a.res3.data() + (L - 1) * N * C, p.lnfw, a.lnf_mean.data(),
                           a.lnf_rstd.data(), N, C);
    // dres is the gradient of the residual stream; each block adds its two branches into it.
    for (int l = L - 1; l >= 0; l--) {
      const Layer& w = p.layers[l];
      const Layer& gw = g.layers[l];
      const float* res_in = l == 0 ? a.encoded.data() : a.res3.data() + (l - 1) * N * C;
      // MLP branch
      ops.matmul_backward(d4c, gw.fcprojw, gw.fcprojb, dres, a.fch_gelu.data() + l * N * 4 * C, w.fcprojw, N, 4 * C,
                          C, accumulate);
      // through GELU into the up-projection (d4c: its gradient in, scratch after)
      ops.gelu_matmul_backward(dc, gw.fcw, gw.fcb, d4c, a.fch.data() + l * N * 4 * C, d4c, a.ln2.data() + l * N * C,
                               w.fcw, N, C, 4 * C, accumulate);
      ops.layernorm_backward(dres, gw.ln2w, gw.ln2b, dc, a.res2.data() + l * N * C, w.ln2w, a.ln2_mean.data() + l * N,
                             a.ln2_rstd.data() + l * N, N, C);
      // attention branch
      ops.matmul_backward(dc, gw.attprojw, gw.attprojb, dres, a.atty.data() + l * N * C, w.attprojw, N, C, C,
                          accumulate);
      ops.attention_backward(d.dqkv.data(), d.datt.data(), dc, a.qkv.data() + l * N * 3 * C,
                             a.att_of(l), shape(c, B, T));
      ops.matmul_backward(dc, gw.qkvw, gw.qkvb, d.dqkv.data(), a.ln1.data() + l * N * C, w.qkvw, N, C, 3 * C,
                          accumulate);
      ops.layernorm_backward(dres, gw.ln1w, gw.ln1b, dc, res_in, w.ln1w, a.ln1_mean.data() + l * N,
                             a.ln1_rstd.data() + l * N, N, C);
    }
    ops.embedding_backward(g.wte, g.wpe, dres, tokens, B, T, C);
  }

  // The keys and values of a prefill forward over right-padded prompts [B, P] (positions
  // t < len[b]) into the caches, layer l's at kcache/vcache + l * B * maxT * kv_width.
  template <class D>
  static void prefill_cache(D& ops, const ModelConfig& c, Acts<D>& a, float* kcache, float* vcache, const int32_t* len,
                            int B, int P, int maxT) {
    const int64_t N = (int64_t)B * P, C = c.channels, layer = (int64_t)B * maxT * C;
    const AttnShape s{B, P, c.num_heads, c.num_heads, c.channels / c.num_heads};
    for (int l = 0; l < c.num_layers; l++)
      ops.kv_cache_prefill(kcache + l * layer, vcache + l * layer, a.qkv.data() + l * N * 3 * C, len, maxT, s);
  }

  // One generation step: token tok[b] at position pos[b] of row b through every block against the
  // caches (writing its key and value there), into d.out [B, C].
  template <class D>
  static void decode(D& ops, const ModelConfig& c, const Params& p, const Tables<D>&, Decode<D>& d, float* kcache,
                     float* vcache, const int32_t* tok, const int32_t* pos, int B, int maxT) {
    const int C = c.channels, NH = c.num_heads, L = c.num_layers;
    const int64_t BC = (int64_t)B * C;
    const AttnShape s{B, 1, NH, NH, C / NH};
    float* x = d.x.data();
    float* ln = d.out.data();  // LayerNorm outputs; the last one is the result
    ops.embedding_forward(x, tok, p.wte, p.wpe, B, 1, C, pos);
    for (int l = 0; l < L; l++) {
      const Layer& w = p.layers[l];
      float* kc = kcache + (int64_t)l * B * maxT * C;
      float* vc = vcache + (int64_t)l * B * maxT * C;
      ops.layernorm_forward(ln, d.ln_mean.data(), d.ln_rstd.data(), x, w.ln1w, w.ln1b, B, C);
      ops.matmul_forward(d.qkv.data(), ln, w.qkvw, w.qkvb, B, C, 3 * C);
      ops.kv_cache_write(kc, vc, d.qkv.data(), pos, maxT, s);
      ops.attention_decode(d.atty.data(), d.qkv.data(), kc, vc, pos, maxT, s);
      ops.matmul_forward(d.tmp.data(), d.atty.data(), w.attprojw, w.attprojb, B, C, C);
      ops.residual_forward(x, x, d.tmp.data(), BC);
      ops.layernorm_forward(ln, d.ln_mean.data(), d.ln_rstd.data(), x, w.ln2w, w.ln2b, B, C);
      ops.matmul_forward(d.fch.data(), ln, w.fcw, w.fcb, B, C, 4 * C);
      ops.gelu_forward(d.fch_gelu.data(), d.fch.data(), (int64_t)B * 4 * C);
      ops.matmul_forward(d.tmp.data(), d.fch_gelu.data(), w.fcprojw, w.fcprojb, B, 4 * C, C);
      ops.residual_forward(x, x, d.tmp.data(), BC);
    }
    ops.layernorm_forward(ln, d.ln_mean.data(), d.ln_rstd.data(), x, p.lnfw, p.lnfb, B, C);
  }
};

}  // namespace arch
}  // namespace s2s

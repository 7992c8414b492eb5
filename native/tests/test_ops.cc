// One table of op cases for every device, in the manner of ggml's test-backend-ops. A case names an
// op of the op set (src/ops/op_set.h), a shape, a seeded input generator and a reference computed in
// double precision on the host from the op's definition; run_case<Ops> runs it through a device's op
// struct (CpuOps always; CudaOps when built, at fp32 and, for the matmul family, bf16) and compares
// every output with the normalised error. Outputs an op overwrites start as NaN (an element it
// forgets fails), outputs it accumulates into start as random values (the contract is checked).
// Backward cases are also checked against central differences of the reference forward, on a few
// coordinates of each input, independently of the reference backward. Adding an op's tests means
// adding a case: one add(op, shape, inputs, reference, call) below. Names: "<device> <op> <shape>",
// so S2S_TEST_FILTER=cuda-bf16 or S2S_TEST_FILTER=layernorm picks some.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend.h"  // cuda_status
#include "cpu/ops.h"
#include "harness.h"
#ifdef S2S_WITH_CUDA
#include "cuda/ops.cuh"
#endif

using namespace s2s;
using VecD = std::vector<double>;

namespace {

// Normalised error (harness::rel_error) allowed on each device and precision. fp32 kernels differ
// from the double reference by float rounding and summation order (on a GPU also by __expf, rsqrtf
// and atomics, hence its wider bound); bf16 matmuls keep 8 bits of mantissa.
struct Tol {
  double cpu = 1e-5, fp32 = 2e-5, bf16 = 2e-2;  // CPU at fp32; CUDA at fp32; either at bf16
  double at(bool on_cpu, Precision p) const { return p == Precision::bf16 ? bf16 : on_cpu ? cpu : fp32; }
};
constexpr Tol kExact{0, 0, 0};

// ---- host tensors ----

// in: read by the op; out: overwritten (NaN before the op runs); inout: accumulated into or
// updated (random or prepared values before); scratch: neither read first nor compared.
enum class Role { in, out, inout, scratch };

struct Tensor {
  Role role = Role::in;
  char type = 'f';  // f: float, i: int32, l: int64
  std::vector<float> f;
  std::vector<int32_t> i;
  std::vector<int64_t> l;
  size_t size() const { return type == 'f' ? f.size() : type == 'i' ? i.size() : l.size(); }
};

// A case's tensors by name, and the op's scalar result (grad_norm returns one).
struct Host {
  uint64_t seed = 1;
  int drawn = 0;  // tensors drawn so far: each gets its own stream
  std::map<std::string, Tensor> t;
  double scalar = NAN;

  std::vector<float>& uniform(const std::string& name, size_t n, float lo = -1.0f, float hi = 1.0f,
                              Role r = Role::in) {
    Tensor& x = add(name, r, 'f');
    x.f.resize(n);
    harness::fill_uniform(x.f.data(), n, seed * 1000 + drawn++, lo, hi);
    return x.f;
  }
  std::vector<float>& floats(const std::string& name, std::vector<float> v, Role r = Role::in) {
    return add(name, r, 'f').f = std::move(v);
  }
  std::vector<float>& out(const std::string& name, size_t n) {
    return floats(name, std::vector<float>(n, NAN), Role::out);
  }
  std::vector<float>& scratch(const std::string& name, size_t n) {
    return floats(name, std::vector<float>(n, NAN), Role::scratch);
  }
  std::vector<int32_t>& ints(const std::string& name, std::vector<int32_t> v, Role r = Role::in) {
    return add(name, r, 'i').i = std::move(v);
  }
  std::vector<int32_t>& tokens(const std::string& name, size_t n, int V) {
    return ints(name, harness::random_tokens(n, V, seed * 1000 + drawn++));
  }
  std::vector<int64_t>& longs(const std::string& name, std::vector<int64_t> v) {
    return add(name, Role::in, 'l').l = std::move(v);
  }

  std::vector<float>& F(const std::string& n) { return get(n, 'f').f; }
  const std::vector<float>& F(const std::string& n) const { return get(n, 'f').f; }
  const std::vector<int32_t>& I(const std::string& n) const { return get(n, 'i').i; }
  std::vector<int32_t>& I(const std::string& n) { return get(n, 'i').i; }
  const std::vector<int64_t>& L(const std::string& n) const { return get(n, 'l').l; }

 private:
  Tensor& add(const std::string& name, Role r, char type) {
    Tensor& x = t[name];
    x.role = r;
    x.type = type;
    return x;
  }
  const Tensor& get(const std::string& n, char type) const {
    auto it = t.find(n);
    if (it == t.end() || it->second.type != type) throw Error("the case has no tensor '" + n + "' of that type");
    return it->second;
  }
  Tensor& get(const std::string& n, char type) {
    return const_cast<Tensor&>(static_cast<const Host*>(this)->get(n, type));
  }
};

void assign(std::vector<float>& dst, const VecD& v) {
  for (size_t i = 0; i < v.size(); i++) dst[i] = (float)v[i];
}
void add_to(std::vector<float>& dst, const VecD& v) {
  for (size_t i = 0; i < v.size(); i++) dst[i] = (float)((double)dst[i] + v[i]);
}
double dot(const std::vector<float>& a, const VecD& b) {
  double s = 0;
  for (size_t i = 0; i < b.size(); i++) s += (double)a[i] * b[i];
  return s;
}

// ---- device buffers ----

// A case's tensors on a device, in its op struct's arrays.
template <class Ops>
struct Bufs {
  template <typename T>
  using Array = typename Ops::template Array<T>;
  std::map<std::string, std::unique_ptr<Array<float>>> f;
  std::map<std::string, std::unique_ptr<Array<int32_t>>> i;
  std::map<std::string, std::unique_ptr<Array<int64_t>>> l;
  double scalar = NAN;

  float* F(const std::string& n) { return find(f, n)->data(); }
  int32_t* I(const std::string& n) { return find(i, n)->data(); }
  int64_t* L(const std::string& n) { return find(l, n)->data(); }

  explicit Bufs(const Host& h) {
    for (const auto& [name, x] : h.t) {
      if (x.type == 'f') f[name] = upload<float>(x.f);
      if (x.type == 'i') i[name] = upload<int32_t>(x.i);
      if (x.type == 'l') l[name] = upload<int64_t>(x.l);
    }
  }
  // The outputs (out and inout tensors) and the scalar, read back into a copy of h.
  Host download(const Host& h) const {
    Host r = h;
    for (auto& [name, x] : r.t) {
      if (x.role != Role::out && x.role != Role::inout) continue;
      if (x.type == 'f') find(f, name)->download(x.f.data(), x.f.size());
      if (x.type == 'i') find(i, name)->download(x.i.data(), x.i.size());
      if (x.type == 'l') find(l, name)->download(x.l.data(), x.l.size());
    }
    r.scalar = scalar;
    return r;
  }

 private:
  template <typename T>
  static std::unique_ptr<Array<T>> upload(const std::vector<T>& v) {
    auto a = std::make_unique<Array<T>>();
    a->reserve(std::max<size_t>(v.size(), 1));  // an empty tensor still gets a pointer
    a->upload(v.data(), v.size());
    return a;
  }
  template <class M>
  static auto& find(M& m, const std::string& n) {
    auto it = m.find(n);
    if (it == m.end()) throw Error("the case has no tensor '" + n + "' of that type");
    return it->second;
  }
};

template <class Ops>
using Call = std::function<void(Ops&, Bufs<Ops>&)>;

// ---- the case ----

struct OpCase {
  std::string op, shape;
  std::function<void(Host&)> make;       // the inputs, and the outputs' starting values
  std::function<void(Host&)> reference;  // the outputs from the inputs (on a copy of make's tensors)
  Call<CpuOps> cpu;
#ifdef S2S_WITH_CUDA
  Call<cuda::CudaOps> cuda;
#endif
  Tol tol;                                 // for every float output
  std::map<std::string, std::pair<double, double>> each_of;  // fp32: |got - want| <= atol + rtol |want| everywhere
  double scalar_rtol = -1;                 // >= 0: compare the scalar result (relative error)
  bool large = false;                      // the emulator skips it unless S2S_OPS_LARGE=1
  bool repeat = false;                     // run twice: the outputs must be the same bits
  // Finite differences (backward ops): loss = <upstream gradient, reference forward>, and the
  // (input, gradient output) pairs the op computes.
  std::function<double(const Host&)> loss;
  std::vector<std::pair<std::string, std::string>> grads;

  std::string name() const { return op + " " + shape; }
};

std::deque<OpCase>& table();

// Adds a case whose call, written once as a generic lambda (ops, tensors), serves every device.
template <class F>
OpCase& add(std::string op, std::string shape, std::function<void(Host&)> make, std::function<void(Host&)> reference,
            F call) {
  OpCase c;
  c.op = std::move(op);
  c.shape = std::move(shape);
  c.make = std::move(make);
  c.reference = std::move(reference);
  c.cpu = call;
#ifdef S2S_WITH_CUDA
  c.cuda = call;
#endif
  table().push_back(std::move(c));
  return table().back();
}

// The strided batched GEMM behind the attention and LM-head views: not in the op set (the
// composition reaches it through the ops), so the test reaches each device's directly.
void gemm_batched_on(CpuOps&, int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                     const float* B, Strides sb, float* C, Strides sc, float alpha, bool acc) {
  gemm_batched(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, acc);
}
#ifdef S2S_WITH_CUDA
void gemm_batched_on(cuda::CudaOps& ops, int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                     Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha, bool acc) {
  cuda::gemm_batched(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, acc, ops.precision());
}
#endif

// ---- references, in double, from the ops' definitions ----

// C[b0,b1] = alpha * A[b0,b1] @ B[b0,b1] (+ C)
void ref_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa, const float* B,
              Strides sb, float* C, Strides sc, double alpha, bool acc) {
  for (int64_t b0 = 0; b0 < nb0; b0++)
    for (int64_t b1 = 0; b1 < nb1; b1++)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double s = 0;
          for (int64_t k = 0; k < K; k++)
            s += (double)A[b0 * sa.batch0 + b1 * sa.batch1 + i * sa.row + k * sa.col] *
                 B[b0 * sb.batch0 + b1 * sb.batch1 + k * sb.row + j * sb.col];
          float& c = C[b0 * sc.batch0 + b1 * sc.batch1 + i * sc.row + j * sc.col];
          c = (float)(alpha * s + (acc ? (double)c : 0.0));
        }
}

// out[b,t,:] = wte[tokens[b,t],:] + wpe[p,:] with p = pos[b] + t (pos null: t; wpe null: no position
// embedding)
VecD ref_embedding(const int32_t* tok, const float* wte, const float* wpe, const int32_t* pos, int B, int T, int C) {
  VecD out((size_t)B * T * C);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int64_t bt = (int64_t)b * T + t, p = (pos ? pos[b] : 0) + t;
      for (int c = 0; c < C; c++)
        out[bt * C + c] = (double)wte[(int64_t)tok[bt] * C + c] + (wpe ? wpe[p * C + c] : 0.0);
    }
  return out;
}

struct LayerNormRef {
  VecD out, mean, rstd;
};
// out = (x - mean) / sqrt(var + eps) * w + b over each row (biased variance)
LayerNormRef ref_layernorm(const float* x, const float* w, const float* bias, int64_t N, int C) {
  LayerNormRef r{VecD(N * C), VecD(N), VecD(N)};
  for (int64_t n = 0; n < N; n++) {
    const float* xr = x + n * C;
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += xr[c];
    m /= C;
    for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
    v /= C;
    double s = 1.0 / std::sqrt(v + (double)kLayerNormEps);
    for (int c = 0; c < C; c++) r.out[n * C + c] = (xr[c] - m) * s * w[c] + bias[c];
    r.mean[n] = m;
    r.rstd[n] = s;
  }
  return r;
}

// out[N,OC] = inp[N,C] @ w[C,OC] + bias
VecD ref_matmul(const float* inp, const float* w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  VecD out(N * OC);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; c++) s += (double)inp[n * C + c] * w[c * OC + o];
      out[n * OC + o] = s;
    }
  return out;
}

struct AttentionRef {
  VecD out, att;
};
// Causal softmax(q k^T / sqrt(hs)) v per head; att [B,NH,T,T] zero above the diagonal.
AttentionRef ref_attention(const float* qkv, int B, int T, int C, int NH) {
  int hs = C / NH;
  double scale = 1.0 / std::sqrt((double)hs);
  AttentionRef r{VecD((size_t)B * T * C), VecD((size_t)B * NH * T * T, 0.0)};
  auto at = [&](int b, int t, int part, int h) { return qkv + ((int64_t)b * T + t) * 3 * C + part * C + h * hs; };
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        double* a = &r.att[(((size_t)b * NH + h) * T + i) * T];
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int d = 0; d < hs; d++) s += (double)at(b, i, 0, h)[d] * at(b, j, 1, h)[d];
          a[j] = s * scale;
          mx = std::max(mx, a[j]);
        }
        for (int j = 0; j <= i; j++) sum += (a[j] = std::exp(a[j] - mx));
        for (int j = 0; j <= i; j++) a[j] /= sum;
        for (int d = 0; d < hs; d++) {
          double s = 0;
          for (int j = 0; j <= i; j++) s += a[j] * at(b, j, 2, h)[d];
          r.out[((size_t)b * T + i) * C + h * hs + d] = s;
        }
      }
  return r;
}

// HF's repeat_kv ahead of eager attention: the packed qkv [B, T, (NH + 2 KVH) hd] as multi-head
// attention's [B, T, 3 NH hd], each key/value head repeated for the NH / KVH query heads that read
// it (repeat_interleave: query head h gets key/value head h / (NH / KVH)).
std::vector<float> repeat_kv(const float* qkv, const AttnShape& s) {
  const int G = s.NH / s.KVH, hd = s.hd;
  const int64_t C = s.q_width(), W = s.qkv_width(), KW = s.kv_width();
  std::vector<float> r((size_t)s.B * s.T * 3 * C);
  for (int64_t bt = 0; bt < (int64_t)s.B * s.T; bt++)
    for (int h = 0; h < s.NH; h++)
      for (int d = 0; d < hd; d++) {
        const float* row = qkv + bt * W;
        float* o = &r[bt * 3 * C];
        o[h * hd + d] = row[h * hd + d];
        o[C + h * hd + d] = row[C + (h / G) * hd + d];
        o[2 * C + h * hd + d] = row[C + KW + (h / G) * hd + d];
      }
  return r;
}
// The gradient through repeat_kv: a key/value head's gradient is the sum over its repeats.
VecD fold_kv(const VecD& d3, const AttnShape& s) {
  const int G = s.NH / s.KVH, hd = s.hd;
  const int64_t C = s.q_width(), W = s.qkv_width(), KW = s.kv_width();
  VecD r((size_t)s.B * s.T * W, 0.0);
  for (int64_t bt = 0; bt < (int64_t)s.B * s.T; bt++)
    for (int h = 0; h < s.NH; h++)
      for (int d = 0; d < hd; d++) {
        const double* i = &d3[bt * 3 * C];
        double* o = &r[bt * W];
        o[h * hd + d] = i[h * hd + d];
        o[C + (h / G) * hd + d] += i[C + h * hd + d];
        o[C + KW + (h / G) * hd + d] += i[2 * C + h * hd + d];
      }
  return r;
}
// Grouped-query attention as HF's eager attention computes it: repeat_kv, then multi-head attention.
AttentionRef ref_gqa_attention(const float* qkv, const AttnShape& s) {
  return ref_attention(repeat_kv(qkv, s).data(), s.B, s.T, s.NH * s.hd, s.NH);
}

// torch.nn.Linear: out[N,OC] = inp[N,C] @ w[OC,C]^T + bias
VecD ref_linear(const float* inp, const float* w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  VecD out(N * OC);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; c++) s += (double)inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

struct RmsNormRef {
  VecD out, rstd;
};
// HF's LlamaRMSNorm: weight * x * rsqrt(mean(x^2) + eps) over each row
RmsNormRef ref_rmsnorm(const float* x, const float* w, int64_t N, int C, double eps) {
  RmsNormRef r{VecD(N * C), VecD(N)};
  for (int64_t n = 0; n < N; n++) {
    double v = 0;
    for (int c = 0; c < C; c++) v += (double)x[n * C + c] * x[n * C + c];
    double s = 1.0 / std::sqrt(v / C + eps);
    for (int c = 0; c < C; c++) r.out[n * C + c] = (double)w[c] * (x[n * C + c] * s);
    r.rstd[n] = s;
  }
  return r;
}

// HF's rotary tables (LlamaRotaryEmbedding, default rope type): inv_freq[i] = 1 / theta^(2i / hd),
// angle[p, i] = p inv_freq[i]; "cos" and "sin" [maxT, hd/2] (HF's [maxT, hd] is cat(freqs, freqs):
// the same half twice).
void rope_tables(Host& h, int maxT, int hd, double theta) {
  std::vector<float> c((size_t)maxT * hd / 2), s(c.size());
  for (int p = 0; p < maxT; p++)
    for (int i = 0; i < hd / 2; i++) {
      double a = p * (1.0 / std::pow(theta, 2.0 * i / hd));
      c[(size_t)p * hd / 2 + i] = (float)std::cos(a);
      s[(size_t)p * hd / 2 + i] = (float)std::sin(a);
    }
  h.floats("cos", c);
  h.floats("sin", s);
}
// The position of row n of a [B, T] batch: pos[b] + t (pos null: t).
int64_t rope_position(const int32_t* pos, int64_t n, int T) { return (pos ? pos[n / T] : 0) + n % T; }
// HF's apply_rotary_pos_emb on the first nheads heads of each row (stride floats apart):
// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1); the rest of each row as it was.
VecD ref_rope(const float* x, const float* cos, const float* sin, const int32_t* pos, int64_t N, int T, int64_t stride,
              int nheads, int hd) {
  const int half = hd / 2;
  VecD out(x, x + N * stride);
  for (int64_t n = 0; n < N; n++) {
    int64_t p = rope_position(pos, n, T);
    for (int h = 0; h < nheads; h++) {
      const float* xh = x + n * stride + (int64_t)h * hd;
      for (int d = 0; d < hd; d++) {
        double rot = d < half ? -(double)xh[d + half] : (double)xh[d - half];
        double c = cos[p * half + d % half], s = sin[p * half + d % half];
        out[n * stride + (int64_t)h * hd + d] = xh[d] * c + rot * s;
      }
    }
  }
  return out;
}

// Llama's act_fn (silu) and its derivative: silu(g) = g sigmoid(g)
double silu(double g) { return g / (1.0 + std::exp(-g)); }
double silu_grad(double g) {
  double sg = 1.0 / (1.0 + std::exp(-g));
  return sg * (1.0 + g * (1.0 - sg));
}

// GPT-2's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }
double gelu_grad(double x) {
  double k = std::sqrt(2.0 / M_PI), th = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// Row n of the LM head's logits: lnf[n] . wte[v] * inv_temp.
VecD ref_logits(const float* lnf, const float* wte, int64_t n, int C, int V, double inv_temp) {
  VecD l(V);
  for (int v = 0; v < V; v++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += (double)lnf[n * C + c] * wte[(int64_t)v * C + c];
    l[v] = s * inv_temp;
  }
  return l;
}
double ref_lse(const VecD& l) {
  double mx = *std::max_element(l.begin(), l.end()), s = 0;
  for (double x : l) s += std::exp(x - mx);
  return mx + std::log(s);
}
struct ClassifierRef {
  VecD logprob, entropy;
};
ClassifierRef ref_classifier(const float* lnf, const float* wte, const int32_t* tgt, int64_t N, int C, int V,
                             double inv_temp) {
  ClassifierRef r{VecD(N), VecD(N)};
  for (int64_t n = 0; n < N; n++) {
    VecD l = ref_logits(lnf, wte, n, C, V, inv_temp);
    double lse = ref_lse(l), h = 0;
    for (double x : l) h -= std::exp(x - lse) * (x - lse);
    r.logprob[n] = tgt[n] >= 0 ? l[tgt[n]] - lse : 0.0;
    r.entropy[n] = h;
  }
  return r;
}

VecD ref_value_head(const float* lnf, const float* w, int64_t N, int C) {
  VecD v(N);
  for (int64_t n = 0; n < N; n++)
    for (int c = 0; c < C; c++) v[n] += (double)lnf[n * C + c] * w[c];
  return v;
}

// ---- running a case ----

// A case's tensors before the op runs and the reference's outputs, made once for every device.
struct Prepared {
  Host host, want;
};
const Prepared& prepare(const OpCase& c) {
  static std::map<const OpCase*, std::unique_ptr<Prepared>> cache;
  auto& p = cache[&c];
  if (!p) {
    p = std::make_unique<Prepared>();
    uint64_t h = 1469598103934665603ull;  // FNV-1a of the name: a case's seed does not move with the table
    for (char ch : c.name()) h = (h ^ (uint8_t)ch) * 1099511628211ull;
    p->host.seed = h;
    c.make(p->host);
    p->want = p->host;
    c.reference(p->want);
  }
  return *p;
}

void fail(const std::string& label, const std::string& what) {
  std::printf("  FAIL %s: %s\n", label.c_str(), what.c_str());
  harness::failures()++;
}

void compare(const OpCase& c, const Host& got, const Host& want, bool on_cpu, Precision p, const std::string& label) {
  for (const auto& [name, w] : want.t) {
    if (w.role != Role::out && w.role != Role::inout) continue;
    const Tensor& g = got.t.at(name);
    std::string what = label + ": " + name;
    if (w.type == 'f') {
      harness::expect_close(what.c_str(), g.f.data(), w.f.data(), w.f.size(), c.tol.at(on_cpu, p),
                            __FILE__, __LINE__);
      auto e = c.each_of.find(name);
      if (e != c.each_of.end() && p == Precision::fp32)
        harness::expect_close_each(what.c_str(), g.f.data(), w.f.data(), w.f.size(), e->second.first, e->second.second,
                                   __FILE__, __LINE__);
      continue;
    }
    for (size_t i = 0; i < w.size(); i++) {
      int64_t a = w.type == 'i' ? g.i[i] : g.l[i], b = w.type == 'i' ? w.i[i] : w.l[i];
      if (a != b) {
        fail(label, name + ": element " + std::to_string(i) + " is " + std::to_string(a) + ", want " +
                        std::to_string(b));
        break;
      }
    }
  }
  if (c.scalar_rtol >= 0 &&
      !(std::isfinite(got.scalar) && std::fabs(got.scalar - want.scalar) <= c.scalar_rtol * std::fabs(want.scalar)))
    fail(label, "scalar result " + std::to_string(got.scalar) + ", want " + std::to_string(want.scalar));
}

// Every output, bit for bit.
void compare_bits(const Host& a, const Host& b, const std::string& label) {
  for (const auto& [name, x] : a.t) {
    const Tensor& y = b.t.at(name);
    bool same = x.type == 'f' ? x.f.empty() || std::memcmp(x.f.data(), y.f.data(), x.f.size() * sizeof(float)) == 0
                              : x.i == y.i && x.l == y.l;
    if (!same) fail(label, name + " differs between two runs of the same inputs");
  }
  if (std::memcmp(&a.scalar, &b.scalar, sizeof(double)) != 0) fail(label, "the scalar result differs between two runs");
}

// The op's gradients against central differences of the reference forward's loss on a few
// coordinates of each input (three drawn, and the one with the largest gradient): the error
// normalised by the gradient's largest magnitude, within twice the output's tolerance (+1e-4 for
// the differences' own truncation error).
void check_finite_differences(const OpCase& c, const Host& before, const Host& got, bool on_cpu, Precision p,
                              const std::string& label) {
  Rng rng(before.seed, 99);
  for (const auto& [x, g] : c.grads) {
    const Tensor& gt = before.t.at(g);
    std::vector<double> grad(gt.f.size());
    double scale = 1e-6;
    size_t top = 0;
    for (size_t i = 0; i < grad.size(); i++) {
      grad[i] = (double)got.F(g)[i] - (gt.role == Role::inout ? (double)gt.f[i] : 0.0);  // what the op added
      if (std::fabs(grad[i]) > std::fabs(grad[top])) top = i;
      scale = std::max(scale, std::fabs(grad[i]));
    }
    Host h = before;
    std::vector<float>& xs = h.F(x);
    std::vector<size_t> coords = {top};
    for (int k = 0; k < 3; k++) coords.push_back((size_t)(rng.next_u64() % xs.size()));
    double worst = 0;
    size_t worst_i = 0;
    double worst_fd = 0;
    for (size_t i : coords) {
      float x0 = xs[i];
      double step = 1e-3 * std::max(1.0, std::fabs((double)x0));
      float hi = (float)(x0 + step), lo = (float)(x0 - step);
      xs[i] = hi;
      double lhi = c.loss(h);
      xs[i] = lo;
      double llo = c.loss(h);
      xs[i] = x0;
      double fd = (lhi - llo) / ((double)hi - (double)lo);
      double e = std::fabs(fd - grad[i]) / std::max(scale, std::fabs(fd));
      if (e >= worst) worst = e, worst_i = i, worst_fd = fd;
    }
    double tol = 2 * c.tol.at(on_cpu, p) + 1e-4;
    if (!(worst <= tol)) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "finite differences: d loss / d %s[%zu] is %.7g, %s says %.7g (normalised error %.3g > %.3g)",
                    x.c_str(), worst_i, worst_fd, g.c_str(), grad[worst_i], worst, tol);
      fail(label, buf);
    }
  }
}

// Runs a case through a device's op struct: buffers of Ops::Array, the op, its outputs against the
// reference, then the determinism and finite-difference checks the case asks for.
// On the CPU, bf16 runs natively or, with `emulated`, as its emulated twin (cpu/matmul.h).
template <class Ops>
void run_case(const OpCase& c, const Call<Ops>& call, Precision p, const std::string& label, bool emulated = false) {
  const Prepared& pr = prepare(c);
  const bool on_cpu = std::is_same<Ops, CpuOps>::value;
  Ops ops;
  if constexpr (std::is_same<Ops, CpuOps>::value)
    ops.set_matmul(p == Precision::fp32 ? CpuMatmul::fp32 : emulated ? CpuMatmul::bf16_emulated : CpuMatmul::bf16);
  else
    ops.set_precision(p);
  auto run = [&] {
    Bufs<Ops> dev(pr.host);
    call(ops, dev);
    ops.synchronize();
    return dev.download(pr.host);
  };
  Host got = run();
  compare(c, got, pr.want, on_cpu, p, label);
  if (c.repeat) compare_bits(got, run(), label);
  if (c.loss) check_finite_differences(c, pr.host, got, on_cpu, p, label);
}

// ---- the table ----

using Ints = std::vector<int32_t>;

void gemm_cases() {
  auto plain = [](const char* label, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, bool acc) {
    std::string shape = std::string(label) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                        std::to_string(K) + (acc ? " accumulate" : "");
    return &add("gemm", shape,
        [=](Host& h) {
          h.uniform("A", M * K);
          h.uniform("B", K * N);
          if (acc) h.uniform("C", M * N, -1, 1, Role::inout); else h.out("C", M * N);
        },
        [=](Host& h) {
          ref_gemm(1, 1, M, N, K, h.F("A").data(), ta ? dense_t(M, K) : dense(M, K), h.F("B").data(),
                   tb ? dense_t(K, N) : dense(K, N), h.F("C").data(), dense(M, N), alpha, acc);
        },
        [=](auto& ops, auto& t) { ops.gemm(ta, tb, M, N, K, t.F("A"), t.F("B"), t.F("C"), alpha, acc); });
  };
  plain("NN odd sizes", false, false, 37, 53, 29, 1.25f, false);
  plain("NN odd sizes", false, false, 37, 53, 29, 0.75f, true);
  plain("NT (the LM head)", false, true, 130, 97, 64, 0.5f, false);
  plain("TN (weight gradients)", true, false, 64, 192, 150, 1.0f, true);
  plain("TT", true, true, 33, 70, 45, 0.5f, false);
  plain("NN past one tile", false, false, 257, 129, 300, 1.0f, true);
  plain("NN one element", false, false, 1, 1, 1, 2.0f, false);
  plain("NT one row", false, true, 1, 300, 17, 1.0f, false);
  // K = 0: a product over nothing, C = 0 (or C unchanged when accumulating)
  plain("NN empty inner dimension", false, false, 37, 300, 0, 2.0f, false)->tol = kExact;
  plain("NN empty inner dimension", false, false, 37, 300, 0, 2.0f, true)->tol = kExact;
  plain("TN large", true, false, 384, 512, 1000, 1.0f, true)->large = true;

  // attention's head views into qkv [B, T, 3C] and att [B, NH, T, T], two batch dimensions
  struct View {
    const char* label;
    int64_t M, N, K;
    Strides sa, sb, sc;
    size_t na, nb, nc;
    int64_t b_offset;  // B's start inside its buffer (k inside qkv)
    float alpha;
    bool acc;
  };
  const int B = 2, T = 19, C = 32, NH = 4, hs = C / NH;
  const size_t nqkv = (size_t)B * T * 3 * C, natt = (size_t)B * NH * T * T, nheads = (size_t)B * T * C;
  const int64_t m = 23, n = 17, k = 31;
  std::vector<View> views = {
      {"q @ k^T (attention scores) B2 NH4 T19 hs8", T, T, hs, qkv_view(T, C, hs), qkv_view_t(T, C, hs),
       att_view(NH, T), nqkv, nqkv, natt, C, 0.5f, true},
      {"att @ v (attention output) B2 NH4 T19 hs8", T, hs, T, att_view(NH, T), qkv_view(T, C, hs),
       heads_view(T, C, hs), natt, nqkv, nheads, 2 * C, 1.0f, false},
      {"att^T @ dout (dv) B2 NH4 T19 hs8", T, hs, T, att_view_t(NH, T), heads_view(T, C, hs), qkv_view(T, C, hs),
       natt, nheads, nqkv, 0, 1.0f, false},
      // dense [B, NH, ...] batches whose two dimensions nest: one strided batch of B * NH for cuBLAS
      {"nested batches B2 NH4 23x17x31", m, n, k, {NH * m * k, m * k, k, 1}, {NH * k * n, k * n, 1, k},
       {NH * m * n, m * n, n, 1}, (size_t)(B * NH * m * k), (size_t)(B * NH * k * n), (size_t)(B * NH * m * n), 0,
       0.75f, true},
  };

  for (const View& v : views)
    add("gemm_batched", v.label,
        [=](Host& h) {
          h.uniform("A", v.na);
          h.uniform("B", v.nb);
          // an output view that skips elements (dq inside dqkv) leaves them: they start random
          h.uniform("C", v.nc, -1, 1, Role::inout);
        },
        [=](Host& h) {
          ref_gemm(B, NH, v.M, v.N, v.K, h.F("A").data(), v.sa, h.F("B").data() + v.b_offset, v.sb, h.F("C").data(),
                   v.sc, v.alpha, v.acc);
        },
        [=](auto& ops, auto& t) {
          gemm_batched_on(ops, B, NH, v.M, v.N, v.K, t.F("A"), v.sa, t.F("B") + v.b_offset, v.sb, t.F("C"), v.sc,
                          v.alpha, v.acc);
        });
}

// A Conv1D layer's three gradients in double from the gradient at its output (dout(i), i over
// [N, OC]): dinp written (when has_dinp), dweight accumulated (written when not `accumulate`) and
// dbias (when has_bias) accumulated.
template <class Dout>
void ref_matmul_backward(Host& h, Dout&& dout, int64_t N, int64_t C, int64_t OC, bool has_dinp, bool has_bias,
                         bool accumulate) {
  const float *inp = h.F("inp").data(), *w = h.F("weight").data();
  VecD dinp(N * C), dw(C * OC), db(OC);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double d = dout(n * OC + o);
      db[o] += d;
      for (int64_t c = 0; c < C; c++) {
        dinp[n * C + c] += d * w[c * OC + o];
        dw[c * OC + o] += (double)inp[n * C + c] * d;
      }
    }
  if (has_dinp) assign(h.F("dinp"), dinp);
  if (accumulate) add_to(h.F("dweight"), dw);
  else assign(h.F("dweight"), dw);
  if (has_bias) add_to(h.F("dbias"), db);
}

// The weight gradient of a backward op: added to (random values before), or, with accumulate false,
// written over NaN (which it must never read).
void weight_grad(Host& h, const char* name, int64_t n, bool accumulate) {
  if (accumulate) h.uniform(name, n, -1, 1, Role::inout);
  else h.out(name, n);
}
std::string written(bool accumulate) { return accumulate ? "" : " weight gradient written"; }

void matmul_cases() {
  struct S {
    int64_t N, C, OC;
    bool bias, dinp;
    bool large;
  };
  for (S s : {S{37, 53, 71, true, true, false}, S{64, 32, 96, true, true, false}, S{5, 128, 1, true, true, false},
              S{45, 40, 72, false, false, false}, S{1, 1, 1, true, true, false}, S{130, 320, 1000, true, true, true},
              // the CPU's forward through a transposed copy of the weight (N >= 256, rows 4 KiB apart)
              S{260, 24, 1024, true, true, true}}) {
    int64_t N = s.N, C = s.C, OC = s.OC;
    bool has_bias = s.bias, has_dinp = s.dinp;
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + " OC" + std::to_string(OC);
    add("matmul_forward", shape + (has_bias ? "" : " no bias"),
        [=](Host& h) {
          h.uniform("inp", N * C);
          h.uniform("weight", C * OC);
          h.uniform("bias", OC);
          h.out("out", N * OC);
        },
        [=](Host& h) {
          const float* bias = has_bias ? h.F("bias").data() : nullptr;
          assign(h.F("out"), ref_matmul(h.F("inp").data(), h.F("weight").data(), bias, N, C, OC));
        },
        [=](auto& ops, auto& t) {
          ops.matmul_forward(t.F("out"), t.F("inp"), t.F("weight"), has_bias ? t.F("bias") : nullptr, N, C, OC);
        })
        .large = s.large;
    for (bool acc : {true, false}) {
      if (!acc && s.large && OC != 1000) continue;  // written: the small shapes and one large
      OpCase& b = add(
          "matmul_backward", shape + (has_bias ? "" : " no dbias") + (has_dinp ? "" : " no dinp") + written(acc),
          [=](Host& h) {
            h.uniform("inp", N * C);
            h.uniform("weight", C * OC);
            h.uniform("bias", OC);
            h.uniform("dout", N * OC);
            if (has_dinp) h.out("dinp", N * C);
            weight_grad(h, "dweight", C * OC, acc);
            h.uniform("dbias", OC, -1, 1, has_bias ? Role::inout : Role::in);
          },
          [=](Host& h) {
            const float* dout = h.F("dout").data();
            ref_matmul_backward(h, [&](int64_t i) { return (double)dout[i]; }, N, C, OC, has_dinp, has_bias, acc);
          },
          [=](auto& ops, auto& t) {
            ops.matmul_backward(has_dinp ? t.F("dinp") : nullptr, t.F("dweight"), has_bias ? t.F("dbias") : nullptr,
                                t.F("dout"), t.F("inp"), t.F("weight"), N, C, OC, acc);
          });
      b.large = s.large;
      if (!s.large) {
        b.loss = [=](const Host& h) {
          return dot(h.F("dout"), ref_matmul(h.F("inp").data(), h.F("weight").data(), h.F("bias").data(), N, C, OC));
        };
        b.grads = {{"weight", "dweight"}};
        if (has_dinp) b.grads.push_back({"inp", "dinp"});
        if (has_bias) b.grads.push_back({"bias", "dbias"});
      }
    }
  }
}

// GPT-2's MLP up-projection backward through GELU (gelu_matmul_backward): GELU's gradient at the
// layer's output, then the layer's three gradients, all in double from the definitions; dpre in
// place over dact as the composition passes it, and apart.
void gelu_matmul_cases() {
  struct S {
    int64_t N, C, OC;
    bool in_place, dinp;
  };
  for (S s : {S{37, 53, 71, true, true}, S{64, 32, 96, false, true}, S{5, 24, 130, true, false}, S{1, 1, 1, false, true},
              S{300, 48, 192, true, true}}) {
    int64_t N = s.N, C = s.C, OC = s.OC;
    bool in_place = s.in_place, has_dinp = s.dinp;
    const bool acc = N != 64;  // one shape writes dweight
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + " OC" + std::to_string(OC) +
                        (in_place ? " in place" : "") + (has_dinp ? "" : " no dinp") + written(acc);
    OpCase& b = add("gelu_matmul_backward", shape,
        [=](Host& h) {
          h.uniform("bias", OC);  // the layer's, for the finite differences' forward
          h.uniform("inp", N * C);
          h.uniform("weight", C * OC);
          h.uniform("pre", N * OC, -4, 4);
          h.uniform("dact", N * OC, -1, 1, in_place ? Role::scratch : Role::in);
          if (!in_place) h.scratch("dpre", N * OC);
          if (has_dinp) h.out("dinp", N * C);
          weight_grad(h, "dweight", C * OC, acc);
          h.uniform("dbias", OC, -1, 1, Role::inout);
        },
        [=](Host& h) {
          const float *pre = h.F("pre").data(), *dact = h.F("dact").data();
          ref_matmul_backward(h, [&](int64_t i) { return gelu_grad(pre[i]) * dact[i]; }, N, C, OC, has_dinp, true, acc);
        },
        [=](auto& ops, auto& t) {
          float* dpre = in_place ? t.F("dact") : t.F("dpre");
          ops.gelu_matmul_backward(has_dinp ? t.F("dinp") : nullptr, t.F("dweight"), t.F("dbias"), dpre, t.F("pre"),
                                   t.F("dact"), t.F("inp"), t.F("weight"), N, C, OC, acc);
        });
    if (N * C * OC < 100000) {
      // the layer's loss with GELU's gradient at its output held fixed
      b.loss = [=](const Host& h) {
        VecD out = ref_matmul(h.F("inp").data(), h.F("weight").data(), h.F("bias").data(), N, C, OC);
        double s = 0;
        for (int64_t i = 0; i < N * OC; i++) s += gelu_grad(h.F("pre")[i]) * h.F("dact")[i] * out[i];
        return s;
      };
      b.grads = {{"weight", "dweight"}, {"bias", "dbias"}};
      if (has_dinp) b.grads.push_back({"inp", "dinp"});
    }
  }
}

std::string attn_shape_name(const AttnShape& s) {
  return "B" + std::to_string(s.B) + " T" + std::to_string(s.T) + " NH" + std::to_string(s.NH) +
         (s.KVH < s.NH ? " KVH" + std::to_string(s.KVH) : "") + " hd" + std::to_string(s.hd);
}

void linear_cases() {
  struct S {
    int64_t N, C, OC;
    bool bias, dinp;
    bool large;
  };
  // 576 -> 192: SmolLM2-135M's k/v projection; odd sizes everywhere else
  for (S s : {S{37, 53, 71, true, true, false}, S{45, 40, 72, false, true, false}, S{33, 576, 192, true, false, false},
              S{5, 128, 1, false, false, false}, S{1, 1, 1, true, true, false}, S{130, 320, 1000, true, true, true},
              S{260, 1024, 24, false, true, true}}) {
    int64_t N = s.N, C = s.C, OC = s.OC;
    bool has_bias = s.bias, has_dinp = s.dinp;
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + " OC" + std::to_string(OC);
    add("linear_forward", shape + (has_bias ? "" : " no bias"),
        [=](Host& h) {
          h.uniform("inp", N * C);
          h.uniform("weight", OC * C);
          h.uniform("bias", OC);
          h.out("out", N * OC);
        },
        [=](Host& h) {
          const float* bias = has_bias ? h.F("bias").data() : nullptr;
          assign(h.F("out"), ref_linear(h.F("inp").data(), h.F("weight").data(), bias, N, C, OC));
        },
        [=](auto& ops, auto& t) {
          ops.linear_forward(t.F("out"), t.F("inp"), t.F("weight"), has_bias ? t.F("bias") : nullptr, N, C, OC);
        })
        .large = s.large;
    for (bool acc : {true, false}) {
      if (!acc && s.large && OC != 1000) continue;  // written: the small shapes and one large
      OpCase& b = add(
          "linear_backward", shape + (has_bias ? "" : " no dbias") + (has_dinp ? "" : " no dinp") + written(acc),
          [=](Host& h) {
            h.uniform("inp", N * C);
            h.uniform("weight", OC * C);
            h.uniform("bias", OC);
            h.uniform("dout", N * OC);
            if (has_dinp) h.out("dinp", N * C);
            weight_grad(h, "dweight", OC * C, acc);
            h.uniform("dbias", OC, -1, 1, has_bias ? Role::inout : Role::in);
          },
          [=](Host& h) {
            // out = inp W^T + b:  dinp = dout W, dW = dout^T inp, db = sum over rows of dout
            const float *inp = h.F("inp").data(), *w = h.F("weight").data(), *dout = h.F("dout").data();
            VecD dinp(N * C), dw(OC * C), db(OC);
            for (int64_t n = 0; n < N; n++)
              for (int64_t o = 0; o < OC; o++) {
                double d = dout[n * OC + o];
                db[o] += d;
                for (int64_t c = 0; c < C; c++) {
                  dinp[n * C + c] += d * w[o * C + c];
                  dw[o * C + c] += d * inp[n * C + c];
                }
              }
            if (has_dinp) assign(h.F("dinp"), dinp);
            if (acc) add_to(h.F("dweight"), dw);
            else assign(h.F("dweight"), dw);
            if (has_bias) add_to(h.F("dbias"), db);
          },
          [=](auto& ops, auto& t) {
            ops.linear_backward(has_dinp ? t.F("dinp") : nullptr, t.F("dweight"), has_bias ? t.F("dbias") : nullptr,
                                t.F("dout"), t.F("inp"), t.F("weight"), N, C, OC, acc);
          });
      b.large = s.large;
      if (!s.large) {
        b.loss = [=](const Host& h) {
          return dot(h.F("dout"), ref_linear(h.F("inp").data(), h.F("weight").data(), h.F("bias").data(), N, C, OC));
        };
        b.grads = {{"weight", "dweight"}};
        if (has_dinp) b.grads.push_back({"inp", "dinp"});
        if (has_bias) b.grads.push_back({"bias", "dbias"});
      }
    }
  }
}

void attention_cases() {
  struct S {
    AttnShape s;
    bool large;
  };
  // T = 21: under one warp; T = 150: the softmax loops past 32 lanes and the head-view GEMMs past one
  // tile (64 fp32, 128 bf16), neither a multiple of either; T = 1: one position. KVH < NH:
  // grouped-query attention (NH 9 KVH 3 hd 64: SmolLM2-135M's heads; KVH 1: multi-query)
  for (S c : {S{{2, 17, 3, 3, 8}, false}, S{{2, 21, 3, 3, 16}, false}, S{{1, 150, 3, 3, 16}, false},
              S{{3, 1, 2, 2, 4}, false}, S{{2, 9, 3, 3, 4}, false}, S{{2, 17, 6, 2, 8}, false},
              S{{2, 13, 9, 3, 64}, false}, S{{2, 21, 4, 1, 8}, false}, S{{1, 70, 6, 3, 16}, false},
              S{{3, 1, 4, 2, 8}, false}, S{{2, 256, 4, 4, 32}, true}, S{{2, 256, 8, 2, 64}, true},
              // over 4 MiB of fp32 squares: the CPU takes the batch rows in several groups
              S{{3, 300, 6, 6, 16}, true}, S{{3, 260, 8, 2, 8}, true},
              // head sizes the blocked kernels take (multiples of 32; AMX or AVX512-BF16), with a last
              // block of fewer than 32 rows, one position, head sizes of three and four 32-column
              // steps, GQA and MQA, and a T that the backward's blocked products take (a multiple of 32)
              S{{2, 45, 3, 3, 64}, false}, S{{1, 1, 2, 2, 32}, false}, S{{2, 70, 4, 2, 128}, false},
              S{{1, 97, 2, 1, 96}, false}, S{{2, 64, 6, 2, 32}, false}}) {
    AttnShape s = c.s;
    int B = s.B, T = s.T, NH = s.NH;
    size_t nqkv = (size_t)B * T * s.qkv_width(), natt = (size_t)B * NH * T * T, nout = (size_t)B * T * s.q_width();
    std::string shape = attn_shape_name(s);
    OpCase& f = add("attention_forward", shape,
        [=](Host& h) {
          h.uniform("qkv", nqkv, -2, 2);
          h.out("out", nout);
          h.out("att", natt);
        },
        [=](Host& h) {
          AttentionRef r = ref_gqa_attention(h.F("qkv").data(), s);
          assign(h.F("out"), r.out);
          assign(h.F("att"), r.att);
        },
        [=](auto& ops, auto& t) { ops.attention_forward(t.F("out"), t.F("att"), t.F("qkv"), s); });
    f.large = c.large;
    f.each_of["att"] = {1e-6, 1e-4};  // every probability on its own, zeros above the diagonal exactly
    OpCase& b = add("attention_backward", shape,
        [=](Host& h) {
          h.uniform("qkv", nqkv, -2, 2);
          h.uniform("dout", nout);
          h.scratch("out", nout);
          h.scratch("att", natt);
          h.scratch("datt", natt);
          h.out("dqkv", nqkv);
        },
        [=](Host& h) {
          // multi-head attention's gradient over repeat_kv's qkv [B, T, 3C], folded back through repeat_kv
          const int C = NH * s.hd, hs = s.hd;
          std::vector<float> qkv3 = repeat_kv(h.F("qkv").data(), s);
          const float *qkv = qkv3.data(), *dout = h.F("dout").data();
          double scale = 1.0 / std::sqrt((double)hs);
          AttentionRef f = ref_attention(qkv, B, T, C, NH);
          VecD dqkv(qkv3.size(), 0.0), da(T);
          auto at = [&](int b, int t, int part, int hh) { return ((size_t)b * T + t) * 3 * C + part * C + hh * hs; };
          for (int b = 0; b < B; b++)
            for (int hh = 0; hh < NH; hh++)
              for (int i = 0; i < T; i++) {
                const double* a = &f.att[(((size_t)b * NH + hh) * T + i) * T];
                const float* dO = dout + ((size_t)b * T + i) * C + hh * hs;
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                  da[j] = 0;
                  for (int d = 0; d < hs; d++) {
                    da[j] += (double)dO[d] * qkv[at(b, j, 2, hh) + d];
                    dqkv[at(b, j, 2, hh) + d] += a[j] * dO[d];
                  }
                  sum += a[j] * da[j];
                }
                for (int j = 0; j <= i; j++) {
                  double dpre = a[j] * (da[j] - sum) * scale;
                  for (int d = 0; d < hs; d++) {
                    dqkv[at(b, i, 0, hh) + d] += dpre * qkv[at(b, j, 1, hh) + d];
                    dqkv[at(b, j, 1, hh) + d] += dpre * qkv[at(b, i, 0, hh) + d];
                  }
                }
              }
          assign(h.F("dqkv"), fold_kv(dqkv, s));
        },
        [=](auto& ops, auto& t) {
          ops.attention_forward(t.F("out"), t.F("att"), t.F("qkv"), s);
          ops.attention_backward(t.F("dqkv"), t.F("datt"), t.F("dout"), t.F("qkv"), t.F("att"), s);
        });
    b.large = c.large;
    b.tol = {1e-5, 6e-5, 6e-2};
    if (!c.large) {
      b.loss = [=](const Host& h) { return dot(h.F("dout"), ref_gqa_attention(h.F("qkv").data(), s).out); };
      b.grads = {{"qkv", "dqkv"}};
    }
    // The same after a training forward, as a model runs it (keep_operands: the CPU keeps its bf16
    // copies for the backward, and where attention runs in blocks each row's softmax instead of the
    // probabilities, which the backward makes again), for the shapes whose backward runs in blocks.
    if (T % 32 == 0 && s.hd % 32 == 0) {
      OpCase& k = add("attention_backward", shape + " after a training forward", b.make, b.reference,
          [=](auto& ops, auto& t) {
            ops.keep_operands(true);
            ops.attention_forward(t.F("out"), t.F("att"), t.F("qkv"), s);
            ops.keep_operands(false);
            ops.attention_backward(t.F("dqkv"), t.F("datt"), t.F("dout"), t.F("qkv"), t.F("att"), s);
          });
      k.large = c.large;
      k.tol = b.tol;
    }
  }
}

// Copies the keys and values of positions t < count[b] of qkv [B, P, (NH + 2 KVH) hd] into caches
// [B, maxT, KVH hd] at first[b] + t (the reference of kv_cache_prefill, and of kv_cache_write with
// P = 1 at pos[b]).
void ref_kv_copy(Host& h, const Ints& first, const Ints& count, const AttnShape& s, int maxT) {
  const std::vector<float>& qkv = h.F("qkv");
  std::vector<float>&kc = h.F("kcache"), &vc = h.F("vcache");
  const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
  for (int b = 0; b < s.B; b++)
    for (int t = 0; t < count[b]; t++)
      for (int64_t c = 0; c < KW; c++) {
        size_t dst = ((size_t)b * maxT + first[b] + t) * KW + c, src = ((size_t)b * s.T + t) * W + c;
        kc[dst] = qkv[src + QW];
        vc[dst] = qkv[src + QW + KW];
      }
}

void kv_cache_cases() {
  struct D {
    int B, maxT, NH, KVH, hd;
    Ints pos;
    bool large;
  };
  // pos 66 of 70: more keys than the block's warps, and not a multiple of them; KVH < NH: query
  // heads sharing a cached key/value head
  for (const D& c : {D{3, 12, 4, 4, 8, {5, 2, 4}, false}, D{2, 70, 3, 3, 8, {66, 0}, false},
                     D{1, 1, 1, 1, 8, {0}, false}, D{3, 12, 6, 2, 8, {5, 2, 11}, false},
                     D{2, 70, 9, 3, 16, {66, 0}, false}, D{2, 9, 4, 1, 8, {8, 3}, false},
                     D{4, 512, 4, 4, 64, {511, 100, 3, 0}, true}, D{4, 512, 8, 2, 64, {511, 100, 3, 0}, true}}) {
    const AttnShape s{c.B, 1, c.NH, c.KVH, c.hd};
    int B = c.B, maxT = c.maxT, NH = c.NH, hd = c.hd, G = NH / c.KVH;
    const int64_t W = s.qkv_width(), QW = s.q_width(), KW = s.kv_width();
    Ints pos = c.pos;
    std::string shape = "B" + std::to_string(B) + " maxT" + std::to_string(maxT) + " NH" + std::to_string(NH) +
                        (G > 1 ? " KVH" + std::to_string(c.KVH) : "") + " hd" + std::to_string(hd);
    add("attention_decode", shape,
        [=](Host& h) {
          h.uniform("qkv", (size_t)B * W, -2, 2);
          h.uniform("kcache", (size_t)B * maxT * KW, -2, 2);
          h.uniform("vcache", (size_t)B * maxT * KW);
          h.ints("pos", pos);
          h.out("out", (size_t)B * QW);
        },
        [=](Host& h) {
          // row b's query heads attend to cache positions 0..pos[b]; query head hh reads key/value
          // head hh / G (repeat_kv)
          const float *q = h.F("qkv").data(), *kc = h.F("kcache").data(), *vc = h.F("vcache").data();
          VecD out((size_t)B * QW);
          for (int b = 0; b < B; b++)
            for (int hh = 0; hh < NH; hh++) {
              int n = pos[b] + 1;
              size_t kv = (size_t)(hh / G) * hd;
              VecD sc(n);
              for (int j = 0; j < n; j++) {
                for (int d = 0; d < hd; d++)
                  sc[j] += (double)q[(size_t)b * W + hh * hd + d] * kc[((size_t)b * maxT + j) * KW + kv + d];
                sc[j] /= std::sqrt((double)hd);
              }
              double mx = *std::max_element(sc.begin(), sc.end()), z = 0;
              for (double& x : sc) z += (x = std::exp(x - mx));
              for (int j = 0; j < n; j++)
                for (int d = 0; d < hd; d++)
                  out[(size_t)b * QW + hh * hd + d] += sc[j] / z * vc[((size_t)b * maxT + j) * KW + kv + d];
            }
          assign(h.F("out"), out);
        },
        [=](auto& ops, auto& t) {
          ops.attention_decode(t.F("out"), t.F("qkv"), t.F("kcache"), t.F("vcache"), t.I("pos"), maxT, s);
        })
        .large = c.large;
    // the rest of the caches must stay as they were: they start random
    add("kv_cache_write", shape,
        [=](Host& h) {
          h.uniform("qkv", (size_t)B * W);
          h.uniform("kcache", (size_t)B * maxT * KW, -1, 1, Role::inout);
          h.uniform("vcache", (size_t)B * maxT * KW, -1, 1, Role::inout);
          h.ints("pos", pos);
        },
        [=](Host& h) { ref_kv_copy(h, pos, Ints(B, 1), s, maxT); },
        [=](auto& ops, auto& t) { ops.kv_cache_write(t.F("kcache"), t.F("vcache"), t.F("qkv"), t.I("pos"), maxT, s); })
        .tol = kExact;
  }
  struct P {
    int B, P, maxT, NH, KVH, hd;
    Ints len;
  };
  for (const P& c : {P{3, 5, 12, 4, 4, 8, {5, 2, 4}}, P{4, 3, 3, 3, 3, 11, {3, 0, 1, 2}},
                     P{3, 5, 12, 6, 2, 8, {5, 2, 4}}, P{2, 4, 6, 9, 3, 5, {4, 1}}}) {
    const AttnShape s{c.B, c.P, c.NH, c.KVH, c.hd};
    int B = c.B, maxT = c.maxT;
    Ints len = c.len;
    add("kv_cache_prefill", attn_shape_name(s) + " maxT" + std::to_string(maxT),
        [=](Host& h) {
          h.uniform("qkv", (size_t)B * s.T * s.qkv_width());
          h.uniform("kcache", (size_t)B * maxT * s.kv_width(), -1, 1, Role::inout);
          h.uniform("vcache", (size_t)B * maxT * s.kv_width(), -1, 1, Role::inout);
          h.ints("len", len);
        },
        [=](Host& h) { ref_kv_copy(h, Ints(B, 0), len, s, maxT); },
        [=](auto& ops, auto& t) {
          ops.kv_cache_prefill(t.F("kcache"), t.F("vcache"), t.F("qkv"), t.I("len"), maxT, s);
        })
        .tol = kExact;
  }
}

void embedding_cases() {
  struct S {
    int B, T, C, V, maxT;
    Ints pos;  // per-row start positions (generation), or empty for none
    bool wpe;  // a learned position embedding (GPT-2), or none (Llama: rotary, in attention)
    bool large;
  };
  // few tokens: many repeats, so rows shared by several positions (the atomic scatter) are exercised
  for (const S& s : {S{3, 7, 40, 5, 7, {}, true, false}, S{2, 5, 37, 11, 9, {}, true, false},
                     S{2, 33, 257, 3, 33, {}, true, false}, S{3, 1, 24, 11, 16, {3, 0, 9}, true, false},
                     S{3, 4, 24, 11, 16, {3, 0, 9}, true, false}, S{3, 7, 40, 5, 7, {}, false, false},
                     S{2, 33, 257, 3, 33, {}, false, false}, S{3, 4, 24, 11, 16, {3, 0, 9}, false, false},
                     S{16, 256, 128, 7, 256, {}, true, true}}) {
    int B = s.B, T = s.T, C = s.C, V = s.V, maxT = s.maxT;
    Ints pos = s.pos;
    bool has_wpe = s.wpe;
    std::string shape = "B" + std::to_string(B) + " T" + std::to_string(T) + " C" + std::to_string(C) + " V" +
                        std::to_string(V) + (has_wpe ? "" : " no position embedding");
    add("embedding_forward", shape + (pos.empty() ? "" : " per-row positions"),
        [=](Host& h) {
          h.tokens("tokens", (size_t)B * T, V);
          h.uniform("wte", (size_t)V * C);
          h.uniform("wpe", (size_t)maxT * C);
          if (!pos.empty()) h.ints("pos", pos);
          h.out("out", (size_t)B * T * C);
        },
        [=](Host& h) {
          const float* wpe = has_wpe ? h.F("wpe").data() : nullptr;
          assign(h.F("out"), ref_embedding(h.I("tokens").data(), h.F("wte").data(), wpe,
                                           pos.empty() ? nullptr : pos.data(), B, T, C));
        },
        [=](auto& ops, auto& t) {
          ops.embedding_forward(t.F("out"), t.I("tokens"), t.F("wte"), has_wpe ? t.F("wpe") : nullptr, B, T, C,
                                pos.empty() ? nullptr : t.I("pos"));
        })
        .tol = kExact;
    if (!pos.empty()) continue;  // the backward has no positions: training starts every row at 0
    OpCase& b = add("embedding_backward", shape,
        [=](Host& h) {
          h.tokens("tokens", (size_t)B * T, V);
          h.uniform("wte", (size_t)V * C);
          h.uniform("wpe", (size_t)maxT * C);
          h.uniform("dout", (size_t)B * T * C);
          h.uniform("dwte", (size_t)V * C, -1, 1, Role::inout);
          h.uniform("dwpe", (size_t)maxT * C, -1, 1, has_wpe ? Role::inout : Role::in);
        },
        [=](Host& h) {
          const int32_t* tok = h.I("tokens").data();
          const float* dout = h.F("dout").data();
          VecD dwte((size_t)V * C), dwpe((size_t)maxT * C);
          for (int64_t bt = 0; bt < (int64_t)B * T; bt++)
            for (int c = 0; c < C; c++) {
              dwte[(size_t)tok[bt] * C + c] += dout[bt * C + c];
              dwpe[(size_t)(bt % T) * C + c] += dout[bt * C + c];
            }
          add_to(h.F("dwte"), dwte);
          if (has_wpe) add_to(h.F("dwpe"), dwpe);
        },
        [=](auto& ops, auto& t) {
          ops.embedding_backward(t.F("dwte"), has_wpe ? t.F("dwpe") : nullptr, t.F("dout"), t.I("tokens"), B, T, C);
        });
    b.large = s.large;
    // hundreds of rows into one (the large case): float sums drift further
    b.tol = s.large ? Tol{2e-5, 2e-5, 0} : Tol{1e-6, 2e-5, 0};
    b.loss = [=](const Host& h) {
      const float *wte = h.F("wte").data(), *wpe = has_wpe ? h.F("wpe").data() : nullptr;
      return dot(h.F("dout"), ref_embedding(h.I("tokens").data(), wte, wpe, nullptr, B, T, C));
    };
    b.grads = {{"wte", "dwte"}};
    if (has_wpe) b.grads.push_back({"wpe", "dwpe"});
  }
}

void layernorm_cases() {
  struct S {
    int64_t N;
    int C;
    bool large;
  };
  // N 70: rows past one block (8 rows a block forward, 32 backward); C 777: many passes of a warp
  for (S s : {S{45, 67, false}, S{70, 100, false}, S{9, 777, false}, S{3, 5, false}, S{1, 1, false},
              S{4096, 768, true}}) {
    int64_t N = s.N;
    int C = s.C;
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C);
    auto inputs = [=](Host& h) {
      h.uniform("inp", N * C, -2, 3);
      h.uniform("weight", C);
      h.uniform("bias", C);
    };
    add("layernorm_forward", shape,
        [=](Host& h) {
          inputs(h);
          h.out("out", N * C);
          h.out("mean", N);
          h.out("rstd", N);
        },
        [=](Host& h) {
          LayerNormRef r = ref_layernorm(h.F("inp").data(), h.F("weight").data(), h.F("bias").data(), N, C);
          assign(h.F("out"), r.out);
          assign(h.F("mean"), r.mean);
          assign(h.F("rstd"), r.rstd);
        },
        [=](auto& ops, auto& t) {
          ops.layernorm_forward(t.F("out"), t.F("mean"), t.F("rstd"), t.F("inp"), t.F("weight"), t.F("bias"), N, C);
        })
        .large = s.large;
    if (C == 1) continue;  // one channel: the normalised value is 0 whatever the input, nothing to differentiate
    OpCase& b = add("layernorm_backward", shape,
        [=](Host& h) {
          inputs(h);
          h.scratch("out", N * C);
          h.scratch("mean", N);
          h.scratch("rstd", N);
          h.uniform("dout", N * C);
          // all three gradients accumulate
          h.uniform("dinp", N * C, -1, 1, Role::inout);
          h.uniform("dweight", C, -1, 1, Role::inout);
          h.uniform("dbias", C, -1, 1, Role::inout);
        },
        [=](Host& h) {
          const float *x = h.F("inp").data(), *w = h.F("weight").data(), *dout = h.F("dout").data();
          LayerNormRef r = ref_layernorm(x, w, h.F("bias").data(), N, C);
          VecD dinp(N * C), dw(C), db(C);
          for (int64_t n = 0; n < N; n++) {
            // y = w xhat + b, xhat = (x - mean) rstd: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = w dy
            double mg = 0, mgx = 0;
            for (int c = 0; c < C; c++) {
              double xhat = (x[n * C + c] - r.mean[n]) * r.rstd[n], g = (double)w[c] * dout[n * C + c];
              mg += g / C;
              mgx += g * xhat / C;
              dw[c] += xhat * dout[n * C + c];
              db[c] += dout[n * C + c];
            }
            for (int c = 0; c < C; c++) {
              double xhat = (x[n * C + c] - r.mean[n]) * r.rstd[n], g = (double)w[c] * dout[n * C + c];
              dinp[n * C + c] = r.rstd[n] * (g - mg - xhat * mgx);
            }
          }
          add_to(h.F("dinp"), dinp);
          add_to(h.F("dweight"), dw);
          add_to(h.F("dbias"), db);
        },
        [=](auto& ops, auto& t) {
          ops.layernorm_forward(t.F("out"), t.F("mean"), t.F("rstd"), t.F("inp"), t.F("weight"), t.F("bias"), N, C);
          ops.layernorm_backward(t.F("dinp"), t.F("dweight"), t.F("dbias"), t.F("dout"), t.F("inp"), t.F("weight"),
                                 t.F("mean"), t.F("rstd"), N, C);
        });
    b.large = s.large;
    if (!s.large) {
      b.loss = [=](const Host& h) {
        return dot(h.F("dout"), ref_layernorm(h.F("inp").data(), h.F("weight").data(), h.F("bias").data(), N, C).out);
      };
      b.grads = {{"inp", "dinp"}, {"weight", "dweight"}, {"bias", "dbias"}};
    }
  }
}

void rmsnorm_cases() {
  struct S {
    int64_t N;
    int C;
    float eps;
    float range;  // inputs in [-range, 1.5 range)
    bool large;
  };
  // C 576: SmolLM2-135M's width; 67, 777, 5: not multiples of 8 (the vector loops' tails); range
  // 1e-3: mean(x^2) below eps, which then sets the scale
  for (S s : {S{45, 67, 1e-5f, 2, false}, S{70, 576, 1e-5f, 2, false}, S{9, 777, 1e-6f, 2, false},
              S{3, 5, 1e-6f, 2, false}, S{1, 1, 1e-5f, 2, false}, S{20, 96, 1e-6f, 1e-3f, false},
              S{7, 33, 1e-5f, 3e-3f, false}, S{4096, 2048, 1e-5f, 2, true}}) {
    int64_t N = s.N;
    int C = s.C;
    float eps = s.eps, range = s.range;
    char eps_name[48];
    std::snprintf(eps_name, sizeof eps_name, " eps%g%s", (double)eps, range < 1 ? " small inputs" : "");
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + eps_name;
    auto inputs = [=](Host& h) {
      h.uniform("inp", N * C, -range, 1.5f * range);
      h.uniform("weight", C);
    };
    auto forward = [=](const Host& h) { return ref_rmsnorm(h.F("inp").data(), h.F("weight").data(), N, C, eps); };
    add("rmsnorm_forward", shape,
        [=](Host& h) {
          inputs(h);
          h.out("out", N * C);
          h.out("rstd", N);
        },
        [=](Host& h) {
          RmsNormRef r = forward(h);
          assign(h.F("out"), r.out);
          assign(h.F("rstd"), r.rstd);
        },
        [=](auto& ops, auto& t) { ops.rmsnorm_forward(t.F("out"), t.F("rstd"), t.F("inp"), t.F("weight"), N, C, eps); })
        .large = s.large;
    // one channel: the output is w sign(x) but for eps, whose share of the gradient is all there is
    // (fp32 loses it to cancellation, as anyone's would)
    if (C == 1) continue;
    OpCase& b = add("rmsnorm_backward", shape,
        [=](Host& h) {
          inputs(h);
          h.scratch("out", N * C);
          h.scratch("rstd", N);
          h.uniform("dout", N * C);
          // both gradients accumulate
          h.uniform("dinp", N * C, -1, 1, Role::inout);
          h.uniform("dweight", C, -1, 1, Role::inout);
        },
        [=](Host& h) {
          // y = w x r, r = (mean(x^2) + eps)^-1/2, dr/dx_c = -r^3 x_c / C:
          // dx_c = r w_c dy_c - x_c r^3 / C sum_k w_k dy_k x_k;  dw_c = sum_n x_c r dy_c
          const float *x = h.F("inp").data(), *w = h.F("weight").data(), *dout = h.F("dout").data();
          RmsNormRef r = forward(h);
          VecD dinp(N * C), dw(C);
          for (int64_t n = 0; n < N; n++) {
            double rs = r.rstd[n], sum = 0;
            for (int c = 0; c < C; c++) sum += (double)w[c] * dout[n * C + c] * x[n * C + c];
            for (int c = 0; c < C; c++) {
              dinp[n * C + c] = rs * w[c] * dout[n * C + c] - x[n * C + c] * rs * rs * rs / C * sum;
              dw[c] += x[n * C + c] * rs * dout[n * C + c];
            }
          }
          add_to(h.F("dinp"), dinp);
          add_to(h.F("dweight"), dw);
        },
        [=](auto& ops, auto& t) {
          ops.rmsnorm_forward(t.F("out"), t.F("rstd"), t.F("inp"), t.F("weight"), N, C, eps);
          ops.rmsnorm_backward(t.F("dinp"), t.F("dweight"), t.F("dout"), t.F("inp"), t.F("weight"), t.F("rstd"), N, C);
        });
    b.large = s.large;
    // small inputs: against the reference only (the differences' step, 1e-3, is the inputs' own scale)
    if (!s.large && range >= 1) {
      b.loss = [=](const Host& h) { return dot(h.F("dout"), forward(h).out); };
      b.grads = {{"inp", "dinp"}, {"weight", "dweight"}};
    }
  }
}

void rope_cases() {
  struct S {
    const char* label;
    int B, T, NH, KVH, hd, maxT;
    Ints pos;  // per-row start positions, or empty for none
    double theta;
    bool qk_only;  // rows hold q, k and v (qkv) and only q and k rotate; else every head of the row
    bool large;
  };
  // rows of qkv: q and k rotate, v must stay as it was (the whole row is an inout); T = 1 with
  // positions: a decoding step; NH 9 KVH 3 hd 64: SmolLM2-135M's heads
  for (const S& s : {S{"qkv", 2, 7, 4, 2, 8, 7, {}, 1e4, true, false},
                     S{"qkv", 2, 9, 9, 3, 64, 9, {}, 1e4, true, false},
                     S{"qkv, decoding", 3, 1, 4, 2, 8, 16, {5, 0, 11}, 1e4, true, false},
                     S{"qkv, decoding", 3, 1, 6, 2, 64, 40, {37, 2, 19}, 1e6, true, false},
                     S{"qkv, continued rows", 2, 5, 2, 1, 64, 12, {7, 0}, 1e6, true, false},
                     S{"dense heads", 3, 6, 3, 3, 16, 6, {}, 1e6, false, false},
                     S{"qkv", 4, 512, 9, 3, 64, 512, {}, 1e4, true, true}}) {
    int B = s.B, T = s.T, hd = s.hd, maxT = s.maxT;
    int nheads = s.qk_only ? s.NH + s.KVH : s.NH;
    int64_t N = (int64_t)B * T, stride = (int64_t)(s.qk_only ? s.NH + 2 * s.KVH : s.NH) * hd;
    double theta = s.theta;
    Ints pos = s.pos;
    char theta_name[32];
    std::snprintf(theta_name, sizeof theta_name, " theta%g", theta);
    std::string shape = std::string(s.label) + " B" + std::to_string(B) + " T" + std::to_string(T) + " NH" +
                        std::to_string(s.NH) + (s.qk_only ? " KVH" + std::to_string(s.KVH) : "") + " hd" +
                        std::to_string(hd) + theta_name;
    auto inputs = [=](Host& h) {
      rope_tables(h, maxT, hd, theta);
      if (!pos.empty()) h.ints("pos", pos);
    };
    auto rotated = [=](const Host& h, const std::string& x) {
      return ref_rope(h.F(x).data(), h.F("cos").data(), h.F("sin").data(), pos.empty() ? nullptr : pos.data(), N, T,
                      stride, nheads, hd);
    };
    OpCase& f = add("rope_forward", shape,
        [=](Host& h) {
          inputs(h);
          h.uniform("x", N * stride, -2, 2, Role::inout);  // in place
        },
        [=](Host& h) { assign(h.F("x"), rotated(h, "x")); },
        [=](auto& ops, auto& t) {
          ops.rope_forward(t.F("x"), t.F("cos"), t.F("sin"), pos.empty() ? nullptr : t.I("pos"), N, T, stride, nheads,
                           hd);
        });
    f.large = s.large;
    f.each_of["x"] = {1e-6, 1e-5};  // each element, and the heads left alone exactly as they were
    // the gradient is taken in place: dx starts as a copy of dout (dout + 0, through the op set)
    OpCase& b = add("rope_backward", shape,
        [=](Host& h) {
          inputs(h);
          h.uniform("x", N * stride, -2, 2);
          h.uniform("dout", N * stride);
          h.floats("zero", std::vector<float>(N * stride, 0.0f));
          h.out("dx", N * stride);
        },
        [=](Host& h) {
          // the transpose of the forward's Jacobian: out[d] = x[d] cos + rotate_half(x)[d] sin, with
          // rotate_half(x)[d] = -x[d + hd/2] (d < hd/2), x[d - hd/2] (d >= hd/2)
          const float *dout = h.F("dout").data(), *cs = h.F("cos").data(), *sn = h.F("sin").data();
          const int half = hd / 2;
          VecD dx(dout, dout + N * stride);
          for (int64_t n = 0; n < N; n++) {
            int64_t p = rope_position(pos.empty() ? nullptr : pos.data(), n, T);
            for (int hh = 0; hh < nheads; hh++) {
              const float* g = dout + n * stride + (int64_t)hh * hd;
              double* o = &dx[n * stride + (int64_t)hh * hd];
              for (int d = 0; d < hd; d++) o[d] = g[d] * (double)cs[p * half + d % half];
              for (int d = 0; d < hd; d++) {
                double gs = g[d] * (double)sn[p * half + d % half];
                if (d < half) o[d + half] -= gs;
                else o[d - half] += gs;
              }
            }
          }
          assign(h.F("dx"), dx);
        },
        [=](auto& ops, auto& t) {
          ops.residual_forward(t.F("dx"), t.F("dout"), t.F("zero"), N * stride);
          ops.rope_backward(t.F("dx"), t.F("cos"), t.F("sin"), pos.empty() ? nullptr : t.I("pos"), N, T, stride,
                            nheads, hd);
        });
    b.large = s.large;
    if (!s.large) {
      b.loss = [=](const Host& h) { return dot(h.F("dout"), rotated(h, "x")); };
      b.grads = {{"x", "dx"}};
    }
  }
}

void swiglu_cases() {
  struct S {
    int64_t N, F;
    float range;
    bool large;
  };
  // F 1536: SmolLM2-135M's intermediate size; 53 and 1: not multiples of the vector width; range 20:
  // into silu's flat negative tail and its linear positive one
  for (S s : {S{37, 53, 4, false}, S{1, 1, 2, false}, S{16, 1536, 20, false}, S{7, 100, 8, false},
              S{512, 5632, 8, true}}) {
    int64_t N = s.N, F = s.F;
    float range = s.range;
    std::string shape = "N" + std::to_string(N) + " F" + std::to_string(F);
    auto forward = [=](const Host& h) {
      // LlamaMLP: act_fn(gate_proj(x)) * up_proj(x), gate in h[n, 0:F], up in h[n, F:2F]
      const float* hp = h.F("h").data();
      VecD out(N * F);
      for (int64_t n = 0; n < N; n++)
        for (int64_t f = 0; f < F; f++) out[n * F + f] = silu(hp[n * 2 * F + f]) * hp[n * 2 * F + F + f];
      return out;
    };
    add("swiglu_forward", shape,
        [=](Host& h) {
          h.uniform("h", N * 2 * F, -range, range);
          h.out("out", N * F);
        },
        [=](Host& h) { assign(h.F("out"), forward(h)); },
        [=](auto& ops, auto& t) { ops.swiglu_forward(t.F("out"), t.F("h"), N, F); })
        .large = s.large;
    OpCase& b = add("swiglu_backward", shape,
        [=](Host& h) {
          h.uniform("h", N * 2 * F, -range, range);
          h.uniform("dout", N * F);
          h.out("dh", N * 2 * F);
        },
        [=](Host& h) {
          const float *hp = h.F("h").data(), *dout = h.F("dout").data();
          VecD dh(N * 2 * F);
          for (int64_t n = 0; n < N; n++)
            for (int64_t f = 0; f < F; f++) {
              double g = hp[n * 2 * F + f], u = hp[n * 2 * F + F + f], d = dout[n * F + f];
              dh[n * 2 * F + f] = d * u * silu_grad(g);
              dh[n * 2 * F + F + f] = d * silu(g);
            }
          assign(h.F("dh"), dh);
        },
        [=](auto& ops, auto& t) { ops.swiglu_backward(t.F("dh"), t.F("dout"), t.F("h"), N, F); });
    b.large = s.large;
    if (!s.large) {
      b.loss = [=](const Host& h) { return dot(h.F("dout"), forward(h)); };
      b.grads = {{"h", "dh"}};
    }
  }
}

void elementwise_cases() {
  for (int64_t N : {1000, 1, 4099}) {
    std::string shape = "N" + std::to_string(N);
    // into both tails, where tanh saturates (one element: not so far that the normalised error
    // divides by the ~1e-7 of gelu(-5))
    float range = N == 4099 ? 10.0f : N == 1 ? 2.0f : 6.0f;
    add("gelu_forward", shape,
        [=](Host& h) {
          h.uniform("inp", N, -range, range);
          h.out("out", N);
        },
        [=](Host& h) {
          for (int64_t i = 0; i < N; i++) h.F("out")[i] = (float)gelu(h.F("inp")[i]);
        },
        [=](auto& ops, auto& t) { ops.gelu_forward(t.F("out"), t.F("inp"), N); });
    OpCase& b = add("gelu_backward", shape,
        [=](Host& h) {
          h.uniform("inp", N, -range, range);
          h.uniform("dout", N);
          h.out("dinp", N);
        },
        [=](Host& h) {
          for (int64_t i = 0; i < N; i++) h.F("dinp")[i] = (float)(gelu_grad(h.F("inp")[i]) * h.F("dout")[i]);
        },
        [=](auto& ops, auto& t) { ops.gelu_backward(t.F("dinp"), t.F("inp"), t.F("dout"), N); });
    b.loss = [=](const Host& h) {
      double s = 0;
      for (int64_t i = 0; i < N; i++) s += (double)h.F("dout")[i] * gelu(h.F("inp")[i]);
      return s;
    };
    b.grads = {{"inp", "dinp"}};
    add("residual_forward", shape,
        [=](Host& h) {
          h.uniform("a", N, -5, 5);
          h.uniform("b", N);
          h.out("out", N);
        },
        [=](Host& h) {
          for (int64_t i = 0; i < N; i++) h.F("out")[i] = (float)((double)h.F("a")[i] + h.F("b")[i]);
        },
        [=](auto& ops, auto& t) { ops.residual_forward(t.F("out"), t.F("a"), t.F("b"), N); })
        .tol = kExact;
  }
  // in place: dinp may alias dout (the MLP's backward does this)
  add("gelu_backward", "N1000 in place",
      [](Host& h) {
        h.uniform("inp", 1000, -6, 6);
        h.uniform("dout", 1000, -1, 1, Role::inout);
      },
      [](Host& h) {
        for (int i = 0; i < 1000; i++) h.F("dout")[i] = (float)(gelu_grad(h.F("inp")[i]) * h.F("dout")[i]);
      },
      [](auto& ops, auto& t) { ops.gelu_backward(t.F("dout"), t.F("inp"), t.F("dout"), 1000); });

  struct G {
    int64_t N, rows;
    int C;
    std::vector<int64_t> idx;
  };
  for (const G& s : {G{5, 20, 33, {19, 0, 7, 7, 3}}, G{1, 1, 1, {0}}, G{64, 300, 768, {}}}) {
    int64_t N = s.N, rows = s.rows;
    int C = s.C;
    std::vector<int64_t> idx = s.idx;
    for (int64_t n = (int64_t)idx.size(); n < N; n++) idx.push_back((n * 37 + 11) % rows);
    add("gather_rows", "N" + std::to_string(N) + " of " + std::to_string(rows) + " rows, C" + std::to_string(C),
        [=](Host& h) {
          h.uniform("src", rows * C);
          h.longs("idx", idx);
          h.out("dst", N * C);
        },
        [=](Host& h) {
          for (int64_t n = 0; n < N; n++)
            for (int c = 0; c < C; c++) h.F("dst")[n * C + c] = h.F("src")[idx[n] * C + c];
        },
        [=](auto& ops, auto& t) { ops.gather_rows(t.F("dst"), t.F("src"), t.L("idx"), N, C); })
        .tol = kExact;
  }
}

void classifier_cases() {
  struct S {
    int64_t N;
    int C, V;
    int64_t chunk;
    bool entropy, large;
  };
  // V 1543: more than one pass of the 512 threads over the vocabulary; chunks of 8 rows leave a
  // shorter last chunk
  for (const S& s : {S{23, 19, 301, 8, true, false}, S{37, 32, 1543, 8, true, false}, S{5, 16, 100, 2, false, false},
                     S{64, 64, 50257, 16, true, true}}) {
    for (bool keep : {true, false}) {
      int64_t N = s.N, chunk = s.chunk;
      int C = s.C, V = s.V;
      bool with_entropy = s.entropy;
      float inv_temp = 1.0f / 0.7f;
      std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + " V" + std::to_string(V) +
                          (keep ? " logits kept" : " chunks of " + std::to_string(chunk));
      auto inputs = [=](Host& h) {
        h.uniform("lnf", N * C, -2, 2);
        h.uniform("wte", (size_t)V * C, -0.5f, 0.5f);
        Ints& tg = h.tokens("targets", N, V);
        for (int64_t n = 3; n < N; n += 5) tg[n] = -1;  // positions without a target: log-prob 0, no gradient
        if (keep) {
          h.scratch("logits", N * V);
          h.scratch("chunk", 0);
        } else {
          h.scratch("logits", 0);
          h.scratch("chunk", chunk * V);
        }
      };
      auto args = [=](auto& ops, auto& t) {
        return ClassifierArgs{t.F("lnf"), t.F("wte"), t.I("targets"), N, C, V, inv_temp,
                              keep ? t.F("logits") : nullptr, t.F("chunk"), chunk, ops.precision()};
      };
      auto forward = [=](const Host& h) {
        return ref_classifier(h.F("lnf").data(), h.F("wte").data(), h.I("targets").data(), N, C, V, inv_temp);
      };
      OpCase& f = add("classifier_forward", shape + (with_entropy ? "" : " no entropy"),
          [=](Host& h) {
            inputs(h);
            h.out("logprob", N);
            if (with_entropy) h.out("entropy", N);
            h.out("lse", N);
          },
          [=](Host& h) {
            ClassifierRef r = forward(h);
            assign(h.F("logprob"), r.logprob);
            if (with_entropy) assign(h.F("entropy"), r.entropy);
            for (int64_t n = 0; n < N; n++)
              h.F("lse")[n] = (float)ref_lse(ref_logits(h.F("lnf").data(), h.F("wte").data(), n, C, V, inv_temp));
          },
          [=](auto& ops, auto& t) {
            ops.classifier_forward(args(ops, t), t.F("logprob"), with_entropy ? t.F("entropy") : nullptr, t.F("lse"));
          });
      f.large = s.large;
      f.each_of["logprob"] = {0, 1e-4};  // a position without a target gets exactly 0
      // dwte accumulates (the tied embedding's gradient), or is written over NaN by the first chunk
      const bool acc = V != 1543;
      OpCase& b = add("classifier_backward", shape + written(acc),
          [=](Host& h) {
            inputs(h);
            h.scratch("logprob", N);
            h.scratch("entropy", N);
            h.scratch("lse", N);
            h.uniform("dlogprob", N);
            h.out("dlnf", N * C);
            weight_grad(h, "dwte", (size_t)V * C, acc);
          },
          [=](Host& h) {
            const float *lnf = h.F("lnf").data(), *wte = h.F("wte").data(), *dlp = h.F("dlogprob").data();
            const int32_t* tg = h.I("targets").data();
            VecD dlnf(N * C), dwte((size_t)V * C);
            for (int64_t n = 0; n < N; n++) {
              if (tg[n] < 0) continue;
              VecD l = ref_logits(lnf, wte, n, C, V, inv_temp);
              double lse = ref_lse(l);
              for (int v = 0; v < V; v++) {
                // d logprob / d logit_v = [v == target] - softmax_v, times inv_temp for the lnf @ wte^T product
                double dl = dlp[n] * ((v == tg[n]) - std::exp(l[v] - lse)) * inv_temp;
                for (int c = 0; c < C; c++) {
                  dlnf[n * C + c] += dl * wte[(size_t)v * C + c];
                  dwte[(size_t)v * C + c] += dl * lnf[n * C + c];
                }
              }
            }
            assign(h.F("dlnf"), dlnf);
            if (acc) add_to(h.F("dwte"), dwte);
            else assign(h.F("dwte"), dwte);
          },
          [=](auto& ops, auto& t) {
            ClassifierArgs a = args(ops, t);
            ops.classifier_forward(a, t.F("logprob"), t.F("entropy"), t.F("lse"));
            ops.classifier_backward(a, t.F("dlnf"), t.F("dwte"), t.F("dlogprob"), t.F("lse"), acc);
          });
      b.large = s.large;
      b.tol = {1e-5, 1e-4, 2e-2};
      if (!s.large) {
        b.loss = [=](const Host& h) { return dot(h.F("dlogprob"), forward(h).logprob); };
        b.grads = {{"lnf", "dlnf"}, {"wte", "dwte"}};
      }
    }
  }
}

void value_head_cases() {
  struct S {
    int64_t N;
    int C;
  };
  for (S s : {S{31, 29}, S{300, 40}, S{1, 1}}) {
    int64_t N = s.N;
    int C = s.C;
    std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C);
    add("value_head_forward", shape,
        [=](Host& h) {
          h.uniform("lnf", N * C);
          h.uniform("weight", C);
          h.out("values", N);
        },
        [=](Host& h) { assign(h.F("values"), ref_value_head(h.F("lnf").data(), h.F("weight").data(), N, C)); },
        [=](auto& ops, auto& t) { ops.value_head_forward(t.F("values"), t.F("lnf"), t.F("weight"), N, C); })
        .tol = {1e-6, 2e-5, 0};
    OpCase& b = add("value_head_backward", shape,
        [=](Host& h) {
          h.uniform("lnf", N * C);
          h.uniform("weight", C);
          h.uniform("dvalues", N);
          h.uniform("dlnf", N * C, -1, 1, Role::inout);  // both accumulate
          h.uniform("dweight", C, -1, 1, Role::inout);
        },
        [=](Host& h) {
          const float *lnf = h.F("lnf").data(), *w = h.F("weight").data(), *dv = h.F("dvalues").data();
          VecD dlnf(N * C), dw(C);
          for (int64_t n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
              dlnf[n * C + c] = (double)dv[n] * w[c];
              dw[c] += (double)dv[n] * lnf[n * C + c];
            }
          add_to(h.F("dlnf"), dlnf);
          add_to(h.F("dweight"), dw);
        },
        [=](auto& ops, auto& t) {
          ops.value_head_backward(t.F("dlnf"), t.F("dweight"), t.F("dvalues"), t.F("lnf"), t.F("weight"), N, C);
        });
    b.tol = {1e-6, 2e-5, 0};
    b.loss = [=](const Host& h) {
      return dot(h.F("dvalues"), ref_value_head(h.F("lnf").data(), h.F("weight").data(), N, C));
    };
    b.grads = {{"lnf", "dlnf"}, {"weight", "dweight"}};
  }
}

void optimizer_cases() {
  struct S {
    size_t n;
    int steps;
    int64_t t0;
    float lr;
  };
  // one update per step from the float state the previous step left, as the device keeps it
  for (S s : {S{4099, 3, 1, 1e-2f}, S{100003, 1, 7, 1e-3f}, S{1, 2, 1, 1e-2f}}) {
    size_t n = s.n;
    int steps = s.steps;
    int64_t t0 = s.t0;
    float lr = s.lr, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    std::string shape =
        "n" + std::to_string(n) + ", " + std::to_string(steps) + " step(s) from t=" + std::to_string(t0);
    add("adamw_update", shape,
        [=](Host& h) {
          h.uniform("params", n, -1, 1, Role::inout);
          h.uniform("grads", n, -1, 1, Role::inout);
          h.uniform("m", n, 0, 0.1f, Role::inout);
          h.uniform("v", n, 0, 0.01f, Role::inout);
        },
        [=](Host& h) {
          // AdamW (torch.optim.AdamW): p -= lr wd p; p -= lr mhat / (sqrt(vhat) + eps), g scaled first
          // the step consumes the gradients: zero after the first update, so later steps see 0
          std::vector<float>&p = h.F("params"), &m = h.F("m"), &v = h.F("v"), &grads = h.F("grads");
          for (int64_t t = t0; t < t0 + steps; t++)
            for (size_t i = 0; i < n; i++) {
              double g = (double)grads[i] * scale;
              grads[i] = 0.0f;
              double mi = b1 * (double)m[i] + (1.0 - b1) * g, vi = b2 * (double)v[i] + (1.0 - b2) * g * g;
              m[i] = (float)mi;
              v[i] = (float)vi;
              double mhat = mi / (1.0 - std::pow((double)b1, (double)t));
              double vhat = vi / (1.0 - std::pow((double)b2, (double)t));
              double pi = p[i] * (1.0 - (double)lr * wd);
              p[i] = (float)(pi - lr * mhat / (std::sqrt(vhat) + eps));
            }
        },
        [=](auto& ops, auto& t) {
          for (int64_t step = t0; step < t0 + steps; step++)
            ops.adamw_update(t.F("params"), t.F("grads"), t.F("m"), t.F("v"), n, lr, b1, b2, eps, wd, step, scale);
        })
        .tol = {1e-6, 1e-6, 0};
  }
  // more elements than the CUDA grid covers in one pass (kSumSquaresBlocks blocks of 1024), whose
  // squares overflow a float: the norm stays finite and exact, and the same bits on a second run
  struct N {
    size_t n;
    float range;
  };
  for (N s : {N{4099, 1}, N{100003, 1}, N{(size_t)1024 * 4096 + 12345, 3e19f}}) {
    size_t n = s.n;
    float range = s.range;
    OpCase& c = add("grad_norm", "n" + std::to_string(n) + (range > 1 ? " squares past the float range" : ""),
        [=](Host& h) { h.uniform("grads", n, -range, range); },
        [=](Host& h) {
          double s2 = 0;
          for (float g : h.F("grads")) s2 += (double)g * g;
          h.scalar = std::sqrt(s2);
        },
        [=](auto& ops, auto& t) { t.scalar = ops.grad_norm(t.F("grads"), n); });
    c.scalar_rtol = 1e-9;
    c.repeat = range > 1;
  }
}

// argmax (first index on ties, as torch.argmax), then each batch row's first divergence and scores
void ref_divergence(Host& h, int64_t M, int V, int T, const Ints& spans, DivergenceRule rule, const std::string& sfx) {
  const Ints &row = h.I("row"), &pos = h.I("pos"), &tok = h.I("tokens");
  Ints& am = h.I("argmax" + sfx);
  for (int64_t m = 0; m < M; m++) {
    const float* l = h.F("logits").data() + m * V;
    am[(size_t)row[m] * T + pos[m]] = (int32_t)(std::max_element(l, l + V) - l);
  }
  for (size_t b = 0; b < spans.size() / 2; b++) {
    int first = -1;
    for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++) {
      size_t i = b * T + t;
      bool match = am[i] == tok[i];
      if (first < 0 && !match) first = t - spans[2 * b];
      h.F("scores" + sfx)[i] = first < 0 ? rule.positive : match ? rule.neutral : rule.negative;
    }
    h.I("first" + sfx)[b] = first;
  }
}

void divergence_cases() {
  struct S {
    const char* label;
    int B, T, V;
    Ints spans;
    int chunk;        // rows per call
    bool reverse;     // chunks from the last
    bool interleave;  // rows in round-robin order over the batch rows, not row by row
    bool again;       // then the whole batch in one call, into fresh outputs, on the same counters
  };
  // V 4099: past the unrolled part of the kernel's argmax (4 x 512 per pass); a span of length 0
  for (const S& s : {S{"chunks of 7 from the last, then again in one call", 4, 30, 4099, {1, 30, 5, 20, 7, 7, 2, 9}, 7,
                       true, false, true},
                     S{"rows interleaved, chunks of 4", 3, 9, 37, {0, 9, 3, 3, 4, 8}, 4, false, true, false},
                     S{"one call", 2, 6, 513, {0, 6, 2, 5}, 1 << 20, false, false, false}}) {
    int B = s.B, T = s.T, V = s.V, chunk = s.chunk;
    bool reverse = s.reverse, again = s.again;
    Ints spans = s.spans, row, pos;
    if (s.interleave) {
      for (int k = 0; k < T; k++)
        for (int b = 0; b < B; b++)
          if (spans[2 * b] + k < spans[2 * b + 1]) row.push_back(b), pos.push_back(spans[2 * b] + k);
    } else {
      for (int b = 0; b < B; b++)
        for (int t = spans[2 * b]; t < spans[2 * b + 1]; t++) row.push_back(b), pos.push_back(t);
    }
    int64_t M = (int64_t)row.size();
    DivergenceRule rule{1.0f, -1.0f, 0.0f};
    auto outputs = [=](Host& h, const std::string& sfx) {
      // prepared before a batch's first call: scores 0, argmax and first -1
      h.floats("scores" + sfx, std::vector<float>((size_t)B * T, 0.0f), Role::inout);
      h.ints("argmax" + sfx, Ints((size_t)B * T, -1), Role::inout);
      h.ints("first" + sfx, Ints(B, -1), Role::inout);
    };
    std::string shape = std::string(s.label) + " B" + std::to_string(B) + " T" + std::to_string(T) + " V" +
                        std::to_string(V);
    add("divergence_score", shape,
        [=](Host& h) {
          std::vector<float>& logits = h.uniform("logits", (size_t)M * V);
          // tied maxima: in different threads, in different warps, in one thread's later pass
          const int ties[3][2] = {{10, 522}, {100, 132}, {2000, 4048}};
          for (int64_t m = 0; m < M; m++)
            if (m % 4 != 3)
              for (int i : ties[m % 4])
                if (i < V) logits[(size_t)m * V + i] = 5.0f;
          h.ints("row", row);
          h.ints("pos", pos);
          // tokens agree with the argmax for a prefix of each row's span (and here and there after)
          Ints& tok = h.tokens("tokens", (size_t)B * T, V);
          for (int64_t m = 0; m < M; m++) {
            const float* l = logits.data() + m * V;
            if (pos[m] - spans[2 * row[m]] < 3 * row[m] + 1 || m % 5 == 0)
              tok[(size_t)row[m] * T + pos[m]] = (int32_t)(std::max_element(l, l + V) - l);
          }
          h.ints("spans", spans);
          outputs(h, "");
          if (again) outputs(h, "2");
          h.ints("counters", Ints(B, 0), Role::inout);  // zero before, and each row's back to zero after
        },
        [=](Host& h) {
          ref_divergence(h, M, V, T, spans, rule, "");
          if (again) ref_divergence(h, M, V, T, spans, rule, "2");
        },
        [=](auto& ops, auto& t) {
          auto score = [&](int64_t r0, int64_t rows, const std::string& sfx) {
            ops.divergence_score(t.F("logits") + r0 * V, rows, V, t.I("row") + r0, t.I("pos") + r0, t.I("tokens"), T,
                                 t.I("spans"), rule, t.I("argmax" + sfx), t.F("scores" + sfx), t.I("first" + sfx),
                                 t.I("counters"));
          };
          int64_t calls = (M + chunk - 1) / chunk;
          for (int64_t k = 0; k < calls; k++) {
            int64_t r0 = (reverse ? calls - 1 - k : k) * chunk;
            score(r0, std::min<int64_t>(chunk, M - r0), "");
          }
          if (again) score(0, M, "2");
        })
        .tol = kExact;
  }
}

std::deque<OpCase>& table() {
  static std::deque<OpCase> t;
  return t;
}

void build_table() {
  gemm_cases();
  matmul_cases();
  gelu_matmul_cases();
  linear_cases();
  attention_cases();
  kv_cache_cases();
  embedding_cases();
  layernorm_cases();
  rmsnorm_cases();
  rope_cases();
  swiglu_cases();
  elementwise_cases();
  classifier_cases();
  value_head_cases();
  optimizer_cases();
  divergence_cases();
}

#define S2S_OP_NAME(name) #name,
const std::set<std::string> kDeviceOps = {S2S_DEVICE_OPS(S2S_OP_NAME)};
const std::set<std::string> kMatmulOps = {S2S_MATMUL_OPS(S2S_OP_NAME)};
#undef S2S_OP_NAME
// Not in the op set's lists, but what every device also offers: the strided batched GEMM under
// attention and the LM head, and the gradient norm of the optimizer step.
const std::set<std::string> kOtherOps = {"gemm_batched", "grad_norm"};

// Whether a case runs at the device's matmul precision: the matmul family, the batched GEMM, and
// the LM head (its GEMMs run at the precision in ClassifierArgs).
[[maybe_unused]] bool at_precision(const OpCase& c) {
  return kMatmulOps.count(c.op) || c.op == "gemm_batched" || c.op.rfind("classifier_", 0) == 0;
}

}  // namespace

// The CPU's bf16 matmuls, native and emulated, against float64 products of the operands rounded
// to bf16 (the definition both implement): each within fp32 summation error of it, so the twin
// that runs on every machine stands for the native kernels; and both visibly apart from fp32, so
// neither quietly multiplies in fp32. Weights read through the weight cache and staged operands
// must agree. (The whole model cannot be compared this tightly: a difference in the last bit of
// one activation can flip the bf16 rounding of the next matmul's input.)
TEST(cpu_bf16_native_and_emulated_implement_the_same_products) {
  const CpuBf16Support& native = cpu_bf16_support();
  std::vector<CpuMatmul> modes = {CpuMatmul::bf16_emulated};
  if (native.native) modes.push_back(CpuMatmul::bf16);
  else std::printf("  (native bf16 not checked: %s)\n", native.reason.c_str());
  struct Shape { bool ta, tb; int64_t M, N, K; };
  for (Shape sh : {Shape{false, false, 64, 96, 256}, Shape{false, true, 300, 130, 77}, Shape{true, false, 128, 384, 256},
                   Shape{false, true, 4, 1000, 128}}) {
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    std::vector<float> A(M * K), B(K * N), exact(M * N), fp32(M * N), got(M * N);
    harness::fill_uniform(A.data(), A.size(), 11);
    harness::fill_uniform(B.data(), B.size(), 12);
    Strides sa = sh.ta ? dense_t(M, K) : dense(M, K), sb = sh.tb ? dense_t(K, N) : dense(K, N);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++)
          acc += (double)round_bf16(A[i * sa.row + k * sa.col]) * round_bf16(B[k * sb.row + j * sb.col]);
        exact[i * N + j] = (float)acc;
      }
    gemm(sh.ta, sh.tb, M, N, K, A.data(), B.data(), fp32.data(), 1.0f, false);
    std::string shape = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
    for (CpuMatmul mode : modes)
      for (bool cached : {false, true}) {
        WeightCache cache;
        cache.changed(B.data(), B.size());
        {
          MatmulScope scope(mode, cached ? &cache : nullptr);
          gemm(sh.ta, sh.tb, M, N, K, A.data(), B.data(), got.data(), 1.0f, false);
        }
        std::string what = std::string(cpu_matmul_name(mode)) + (cached ? " (cached B) " : " ") + shape;
        double e = harness::rel_error(got.data(), exact.data(), got.size());
        double apart = harness::rel_error(got.data(), fp32.data(), got.size());
        if (!(e <= 2e-6)) fail(what, "normalised error " + std::to_string(e) + " against bf16-rounded float64 products");
        if (!(apart >= 1e-4)) fail(what, "only " + std::to_string(apart) + " from fp32: the operands were not rounded");
      }
  }
}

// The weight cache's copy written by the optimizer's own sweep (fill_target): a sweep of slices in
// order, each once, makes the copy fresh without a conversion pass of its own (lookup then returns
// what the sweep wrote even when the parameters changed behind its back, which only a fresh copy
// does); a slice out of order or missing leaves the copy to lookup, which remakes it whole from the
// parameters as they are; fp32 gets no target.
TEST(the_optimizer_fills_the_weight_cache_in_one_ordered_sweep) {
  std::vector<CpuMatmul> modes = {CpuMatmul::bf16_emulated};
  if (cpu_bf16_support().native) modes.push_back(CpuMatmul::bf16);
  const size_t n = 1000;
  const size_t slices[] = {0, 300, 301, 1000};  // three slices, one of a single value
  for (CpuMatmul mode : modes) {
    const size_t esz = operand_size(mode);
    std::vector<float> params(n), later(n);
    harness::fill_uniform(params.data(), n, 21);
    harness::fill_uniform(later.data(), n, 22);
    auto converted = [&](const std::vector<float>& src) {
      std::vector<char> out(n * esz);
      to_operand(out.data(), src.data(), (int64_t)n, mode);
      return out;
    };
    const std::string name = cpu_matmul_name(mode);
    // in order: fresh after the last slice
    WeightCache cache;
    cache.changed(params.data(), n);
    EXPECT(cache.fill_target(params.data(), n, CpuMatmul::fp32) == nullptr);
    cache.changed(params.data(), n);
    for (int s = 0; s < 3; s++) {
      void* dst = cache.fill_target(params.data() + slices[s], slices[s + 1] - slices[s], mode);
      if (!dst) fail(name, "no target for slice " + std::to_string(s) + " of an ordered sweep");
      to_operand(dst, params.data() + slices[s], (int64_t)(slices[s + 1] - slices[s]), mode);
    }
    std::vector<char> want = converted(params);
    std::memcpy(params.data(), later.data(), n * sizeof(float));  // unannounced: a fresh copy ignores it
    const void* got = cache.lookup(params.data(), n, mode);
    if (std::memcmp(got, want.data(), n * esz) != 0) fail(name, "the swept copy was not used as it was written");
    // out of order (the middle slice skipped): lookup remakes the copy from the parameters as they are
    WeightCache skipped;
    skipped.changed(params.data(), n);
    EXPECT(skipped.fill_target(params.data(), 300, mode) != nullptr);
    EXPECT(skipped.fill_target(params.data() + 301, 699, mode) == nullptr);
    std::vector<char> now = converted(params);
    if (std::memcmp(skipped.lookup(params.data(), n, mode), now.data(), n * esz) != 0)
      fail(name, "an incomplete sweep's copy was used instead of a fresh conversion");
  }
}

TEST(every_op_of_the_op_set_has_cases) {
  std::map<std::string, int> count;
  for (const OpCase& c : table()) count[c.op]++;
  for (const std::set<std::string>* ops : {&kDeviceOps, &kMatmulOps, &kOtherOps})
    for (const std::string& op : *ops)
      if (count[op] < 2) {
        std::printf("  FAIL %s has %d case(s); every op needs several shapes\n", op.c_str(), count[op]);
        harness::failures()++;
      }
  for (const auto& [op, n] : count)
    if (!kDeviceOps.count(op) && !kMatmulOps.count(op) && !kOtherOps.count(op)) {
      std::printf("  FAIL cases name '%s', which is not an op of src/ops/op_set.h\n", op.c_str());
      harness::failures()++;
    }
}

TEST(every_backward_op_is_checked_by_finite_differences) {
  std::set<std::string> checked, backward;
  for (const OpCase& c : table()) {
    if (c.op.size() > 9 && c.op.compare(c.op.size() - 9, 9, "_backward") == 0) backward.insert(c.op);
    if (c.loss && !c.grads.empty()) checked.insert(c.op);
  }
  for (const std::string& op : backward)
    if (!checked.count(op)) {
      std::printf("  FAIL %s has no finite-difference case\n", op.c_str());
      harness::failures()++;
    }
  EXPECT(backward.size() >= 7);
}

int main() {
  build_table();
  static std::deque<std::string> names;  // the harness keeps the names' pointers
  auto reg = [&](std::string name, std::function<void()> fn) {
    names.push_back(std::move(name));
    harness::cases().push_back({names.back().c_str(), std::move(fn)});
  };
  size_t cpu = 0, gpu = 0;
  // The matmul family also at bf16 on the CPU: natively where the processor has it, and always as
  // the emulated twin, so every machine checks bf16's numbers against the same float64 references.
  const CpuBf16Support& bf16 = cpu_bf16_support();
  std::printf("CPU bf16: %s\n", bf16.native ? bf16.isa.c_str() : ("emulated only (" + bf16.reason + ")").c_str());
  for (const OpCase& c : table()) {
    reg("cpu " + c.name(), [&c] { run_case<CpuOps>(c, c.cpu, Precision::fp32, "cpu " + c.name()); });
    cpu++;
    if (!at_precision(c)) continue;
    for (bool emulated : {false, true}) {
      if (!emulated && !bf16.native) continue;
      std::string label = std::string(emulated ? "cpu-bf16-emulated " : "cpu-bf16 ") + c.name();
      reg(label, [&c, emulated, label] { run_case<CpuOps>(c, c.cpu, Precision::bf16, label, emulated); });
      cpu++;
    }
  }
#ifdef S2S_WITH_CUDA
  CudaStatus s = cuda_status();
  if (s.available) {
    // the emulator runs the large cases only when asked (S2S_OPS_LARGE=1: twice test_ops_emu's time)
#ifdef S2S_CUDA_EMULATION
    const char* large = std::getenv("S2S_OPS_LARGE");
    const bool skip_large = !(large && std::string(large) == "1");
#else
    const bool skip_large = false;
#endif
    std::printf("CUDA: %s; cuBLAS: %s%s\n", s.device.c_str(), cuda::have_cublas() ? "yes" : "no (built-in kernels)",
                skip_large ? "; large cases on the CPU only (S2S_OPS_LARGE=1 runs them here too)" : "");
    for (const OpCase& c : table()) {
      if (skip_large && c.large) continue;
      std::vector<Precision> ps = {Precision::fp32};
      if (at_precision(c)) ps.push_back(Precision::bf16);
      for (Precision p : ps) {
        std::string dev = at_precision(c) ? std::string("cuda-") + precision_name(p) : "cuda";
        std::string label = dev + " " + c.name();
        reg(label, [&c, p, label] { run_case<cuda::CudaOps>(c, c.cuda, p, label); });
        gpu++;
      }
    }
  } else {
    const char* filter = std::getenv("S2S_TEST_FILTER");
    std::printf("SKIP: the CUDA cases need a GPU: %s\n", s.reason.c_str());
    if (filter && std::strstr(filter, "cuda")) return 77;  // only CUDA cases asked for: all skipped
  }
#endif
  std::printf("%zu op cases: %zu on the CPU, %zu on CUDA\n", table().size(), cpu, gpu);
  return harness::run_all();
}

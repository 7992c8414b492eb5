// The CPU's op set: the kernels of src/cpu/ over host memory, in the shape every device offers to
// the one composition (src/model_impl.h, src/arch/). The composition is a template over this
// struct, so each op inlines to the kernel itself. Matmuls run at the op set's setting: fp32, or
// bf16 inputs with fp32 accumulation where the processor has it (S2S_CPU_PRECISION; cpu/matmul.h).
#pragma once

#include <cstdint>
#include <cstdlib>

#include "common.h"
#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/attention_blocks.h"
#include "cpu/classifier.h"
#include "cpu/divergence.h"
#include "cpu/embedding.h"
#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
#include "cpu/op_profile.h"
#include "cpu/residual.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/swiglu.h"
#include "cpu/value_head.h"
#include "ops/contracts.h"
#include "ops/op_set.h"

namespace s2s {

struct CpuOps {
  // Logits share the process's memory here, hence a smaller budget than CUDA's.
  static constexpr DeviceTraits kTraits{"cpu", true, false, 1024, 256, 256};
  template <typename T>
  using Array = HostArray<T>;

  CpuOps() : matmul_(cpu_default_matmul()) {}
  // bf16 for both bf16 settings (native and emulated): what the composition and the tests ask.
  Precision precision() const { return matmul_ == CpuMatmul::fp32 ? Precision::fp32 : Precision::bf16; }
  // bf16 runs natively or is refused (check_cpu_matmul says what to use instead).
  void set_precision(Precision p) { set_matmul(p == Precision::bf16 ? CpuMatmul::bf16 : CpuMatmul::fp32); }
  CpuMatmul matmul() const { return matmul_; }
  const char* precision_label() const { return cpu_matmul_name(matmul_); }
  void set_matmul(CpuMatmul m) {
    check_cpu_matmul(m);
    matmul_ = m;
  }
  // How many fp32 values attention_forward and attention_backward need in att (and datt) for shape
  // s at this setting: the B NH T T probabilities (and their gradient), or none where both run in
  // blocks (cpu/attention_blocks.h: bf16 on AMX or AVX512-BF16, head size and T multiples of 32;
  // any other T keeps the squares): the training forward keeps each row's softmax instead and the
  // backward makes the probabilities again. (att is then null: at SmolLM2's shape and T = 8192
  // the squares would be 69 GB of address space that nothing touches.)
  int64_t attention_probs_values(const AttnShape& s) const {
    return attention_blocks_backward_usable(s, matmul_) ? 0 : (int64_t)s.B * s.NH * s.T * s.T;
  }
  // The parameters changed (a step, a write) or moved: bf16 matmuls convert them again, once.
  void weights_changed(const float* base, size_t n) { weights_.changed(base, n); }
  void synchronize() {}
  // sqrt(sum of squares), accumulated in double.
  double grad_norm(const float* grads, size_t n) { return global_norm(grads, n); }

  // Every op runs in a MatmulScope of this op set's setting: the matmuls inside it (the linear
  // layers, attention's, the LM head's) multiply at it, with the weights from the cache. (OpTimer:
  // S2S_PROFILE_OPS=1 times each op.)
#define S2S_CPU_OP(name)                   \
  template <class... A>                    \
  void name(A&&... a) {                    \
    MatmulScope scope(matmul_, &weights_, &operands_); \
    OpTimer timer(#name);                  \
    ::s2s::name(std::forward<A>(a)...);    \
  }
  S2S_DEVICE_OPS_EXCEPT_ADAMW(S2S_CPU_OP)
  S2S_MATMUL_OPS(S2S_CPU_OP)
#undef S2S_CPU_OP

  // AdamW writes the weight cache's copy of what it updates as it goes (bf16 settings): the copy
  // the next forward's matmuls read is made without a pass of its own.
  void adamw_update(float* params, float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, int64_t t, float grad_scale) {
    OpTimer timer("adamw_update");
    void* copy = weights_.fill_target(params, n, matmul_);
    if (!::s2s::adamw_update_with_copy(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale,
                                       copy, matmul_))
      updates_finite_ = false;
  }
  // A training forward's matmul operands are kept as the matmuls read them, for its backward's
  // weight gradients (OperandCache, cpu/matmul.h): on around the forward, dropped with the
  // activations. S2S_OPERAND_CACHE_MB bounds the memory (default 512; 0 turns it off); attention's
  // row softmax, two floats a row, is kept whatever the budget (kept_state_room).
  void keep_operands(bool on) { operands_.record(on); }
  void drop_operands() { operands_.drop(); }
  // How many matmul operands were taken from kept copies (the tests check the path runs).
  uint64_t operand_cache_hits() const { return operands_.hits(); }
  // Whether every parameter the adamw_update calls since the last call wrote is finite (the update
  // checks as it writes them): when so, the next forward need not scan the parameters again.
  bool take_updates_finite() {
    bool r = updates_finite_;
    updates_finite_ = true;
    return r;
  }

 private:
  static size_t operand_budget() {
    const char* env = std::getenv("S2S_OPERAND_CACHE_MB");
    return (env ? (size_t)std::strtoull(env, nullptr, 10) : (size_t)512) << 20;
  }
  CpuMatmul matmul_;
  WeightCache weights_;
  OperandCache operands_{operand_budget()};
  bool updates_finite_ = true;
};

}  // namespace s2s

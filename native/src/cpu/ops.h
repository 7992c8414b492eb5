// The CPU's op set: the kernels of src/cpu/ over host memory, in the shape every device offers to
// the one composition (src/model_impl.h, src/arch/). The composition is a template over this
// struct, so each op inlines to the kernel itself.
#pragma once

#include <cstdint>

#include "common.h"
#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/classifier.h"
#include "cpu/divergence.h"
#include "cpu/embedding.h"
#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/matmul.h"
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

  Precision precision() const { return Precision::fp32; }
  void set_precision(Precision p) {
    if (p != Precision::fp32) throw Error("the CPU backend computes in fp32 only (bf16 matmuls on the CPU are not built yet)");
  }
  void synchronize() {}
  // sqrt(sum of squares), accumulated in double.
  double grad_norm(const float* grads, size_t n) { return global_norm(grads, n); }

#define S2S_CPU_OP(name) S2S_FORWARD_OP(::s2s, name)
  S2S_DEVICE_OPS(S2S_CPU_OP)
  S2S_MATMUL_OPS(S2S_CPU_OP)
#undef S2S_CPU_OP
};

}  // namespace s2s

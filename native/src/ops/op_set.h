// The op set every device offers the composition (src/model_impl.h, src/arch/): one list of names,
// each implemented by a kernel of that name with the same arguments in the device's namespace
// (src/cpu/*.h for the CPU, src/cuda/kernels.h for CUDA). A device's op struct forwards to its
// kernels with these macros, so the list is written once; a new op is one entry here, one kernel
// per device, and one case in tests/test_ops.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace s2s {

// What the runtime needs to know of a device beyond its ops.
struct DeviceTraits {
  const char* name;
  bool host_memory;        // buffers are host memory: results read in place, weights initialised in place
  bool samples_on_device;  // greedy and plain temperature sampling run on the device (top-k/top-p: host)
  // A forward keeps all its logits for backward while they fit this many MiB (S2S_LOGITS_MB
  // overrides); beyond it the LM head runs in chunks of classifier_chunk rows, recomputed in backward.
  size_t logits_budget_mb;
  int64_t classifier_chunk;
  int64_t score_chunk;  // logits rows per divergence-scoring call
};

}  // namespace s2s

// Ops whose arguments are the same on every device. (The CPU writes its own adamw_update, which
// also fills the bf16 weight cache, hence the list without it.)
#define S2S_DEVICE_OPS_EXCEPT_ADAMW(X)                                                                     \
  X(embedding_forward) X(embedding_backward) X(layernorm_forward) X(layernorm_backward) X(attention_decode) \
  X(kv_cache_write) X(kv_cache_prefill) X(gelu_forward) X(gelu_backward) X(residual_forward) X(gather_rows) \
  X(classifier_forward) X(classifier_backward) X(value_head_forward) X(value_head_backward)                 \
  X(divergence_score) X(rmsnorm_forward) X(rmsnorm_backward) X(rope_forward) X(rope_backward) X(swiglu_forward) \
  X(swiglu_backward)
#define S2S_DEVICE_OPS(X) S2S_DEVICE_OPS_EXCEPT_ADAMW(X) X(adamw_update)

// The matmul family: a device that multiplies at a precision of its own (CUDA: bf16 or fp32) takes
// it as one more, last argument; the composition never passes it.
#define S2S_MATMUL_OPS(X)                                                                                  \
  X(gemm) X(matmul_forward) X(matmul_backward) X(gelu_matmul_backward) X(linear_forward) X(linear_backward) \
  X(attention_forward) X(attention_backward)

// A member that calls NS::name with the same arguments (inlined: static dispatch).
#define S2S_FORWARD_OP(NS, name) \
  template <class... A>          \
  void name(A&&... a) {          \
    NS::name(std::forward<A>(a)...); \
  }

// The transformer runtime on the CPU (for the C++ tests, which use its buffers directly; the
// engine itself builds models through make_backend).
#pragma once

#include <memory>

#include "arch/gpt2.h"
#include "arch/llama.h"
#include "cpu/ops.h"
#include "model.h"

namespace s2s {

extern template class Transformer<arch::GPT2, CpuOps>;
extern template class Transformer<arch::Llama, CpuOps>;
using GPT = Transformer<arch::GPT2, CpuOps>;
using LlamaCpu = Transformer<arch::Llama, CpuOps>;

}  // namespace s2s

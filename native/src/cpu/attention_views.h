// The strided views of causal attention's four products per head, shared by the CPU and CUDA
// attention (both run them as batched GEMMs over [B, NH] without copying heads out of qkv).
#pragma once

#include "cpu/matmul.h"

namespace s2s {

// Head h of q, k or v inside qkv, as a [B, NH, T, hs] view.
inline Strides qkv_view(int T, int C, int hs) { return {(int64_t)T * 3 * C, hs, 3 * C, 1}; }
// The same view transposed to [B, NH, hs, T].
inline Strides qkv_view_t(int T, int C, int hs) { return {(int64_t)T * 3 * C, hs, 1, 3 * C}; }
// Head h of a [B,T,C] tensor as [B, NH, T, hs].
inline Strides heads_view(int T, int C, int hs) { return {(int64_t)T * C, hs, C, 1}; }
inline Strides att_view(int NH, int T) { return {(int64_t)NH * T * T, (int64_t)T * T, T, 1}; }
inline Strides att_view_t(int NH, int T) { return {(int64_t)NH * T * T, (int64_t)T * T, 1, T}; }

}  // namespace s2s

// Strided matrix views: the contract between the composition (attention, the LM head) and each
// device's batched GEMM. Both devices' gemm_batched read operands through these.
#pragma once

#include <cstdint>

namespace s2s {

// Row-major strides of a (possibly batched) matrix: element (b0, b1, r, c) of a matrix at p lies
// at p[b0*batch0 + b1*batch1 + r*row + c*col].
struct Strides {
  int64_t batch0, batch1, row, col;
};
inline Strides dense(int64_t rows, int64_t cols) { return {rows * cols, rows * cols, cols, 1}; }
inline Strides dense_t(int64_t rows, int64_t cols) { return {rows * cols, rows * cols, 1, rows}; }

// The views of causal attention's four products per head, run as batched GEMMs over [B, NH]
// without copying heads out of qkv.
// Head h of q, k or v inside qkv, as a [B, NH, T, hs] view.
inline Strides qkv_view(int T, int C, int hs) { return {(int64_t)T * 3 * C, hs, 3 * C, 1}; }
// The same view transposed to [B, NH, hs, T].
inline Strides qkv_view_t(int T, int C, int hs) { return {(int64_t)T * 3 * C, hs, 1, 3 * C}; }
// Head h of a [B,T,C] tensor as [B, NH, T, hs].
inline Strides heads_view(int T, int C, int hs) { return {(int64_t)T * C, hs, C, 1}; }
inline Strides att_view(int NH, int T) { return {(int64_t)NH * T * T, (int64_t)T * T, T, 1}; }
inline Strides att_view_t(int NH, int T) { return {(int64_t)NH * T * T, (int64_t)T * T, 1, T}; }

}  // namespace s2s

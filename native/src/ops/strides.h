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

// The views of causal attention's four products per head, run as batched GEMMs over [B, heads]
// without copying heads out of qkv.
// Heads of a [B, T, width] tensor (qkv, or the heads' output) as a [B, n, T, hd] view whose heads
// lie `step` floats apart (hd: each head; G hd: every G-th head, a grouped-query attention's query
// heads of one key/value head's turn).
inline Strides head_rows(int T, int64_t width, int64_t step) { return {(int64_t)T * width, step, width, 1}; }
// The same view transposed to [B, n, hd, T].
inline Strides head_rows_t(int T, int64_t width, int64_t step) { return {(int64_t)T * width, step, 1, width}; }
// Heads of att [B, NH, T, T] as [B, n, T, T], `step` heads apart.
inline Strides att_heads(int NH, int T, int64_t step) {
  return {(int64_t)NH * T * T, step * T * T, T, 1};
}
inline Strides att_heads_t(int NH, int T, int64_t step) {
  return {(int64_t)NH * T * T, step * T * T, 1, T};
}
// GPT-2's qkv [B, T, 3C] (NH heads of hs channels each in q, k and v): head h as [B, NH, T, hs].
inline Strides qkv_view(int T, int C, int hs) { return head_rows(T, 3 * (int64_t)C, hs); }
inline Strides qkv_view_t(int T, int C, int hs) { return head_rows_t(T, 3 * (int64_t)C, hs); }
// Head h of a [B,T,C] tensor as [B, NH, T, hs].
inline Strides heads_view(int T, int C, int hs) { return head_rows(T, C, hs); }
inline Strides att_view(int NH, int T) { return att_heads(NH, T, 1); }
inline Strides att_view_t(int NH, int T) { return att_heads_t(NH, T, 1); }

}  // namespace s2s

// WMMA (nvcuda::wmma) on the CPU emulator. Every lane keeps the whole 16 x 16 tile (the hardware
// spreads it over the warp in an unspecified layout, which correct code never depends on). Loads
// and stores check what the hardware requires: all 32 lanes pass the same pointer and stride, the
// pointer is 256-bit aligned and the stride a multiple of 16 bytes;
// mma_sync multiplies once per warp (fp32 products of the inputs, fp32 accumulation) and hands
// every lane the result.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../cuda_emu.h"
#include "cuda_bf16.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has the 16 x 16 x 16 shape");
  static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];
};

namespace detail {

// What the CUDA programming guide requires of every load and store: a 256-bit aligned pointer and
// a stride that is a multiple of 16 bytes (8 bf16 or half elements, 4 floats).
template <typename T>
void check_operand(const T* p, unsigned ldm) {
  if ((uintptr_t)p % 32 != 0) ::s2s_emu::fault("a WMMA load or store from a pointer that is not 256-bit aligned");
  if ((ldm * sizeof(T)) % 16 != 0) ::s2s_emu::fault("a WMMA load or store whose stride is not a multiple of 16 bytes");
}

// All 32 lanes must take part, with the same pointer and stride.
inline void same_across_warp(const void* p, unsigned ldm, const char* what) {
  uint64_t* slot = ::s2s_emu::warp_slots();
  unsigned lane = ::s2s_emu::lane_id();
  slot[lane] = (uint64_t)(uintptr_t)p ^ ((uint64_t)ldm << 48);
  ::s2s_emu::sync_warp(what);
  if (::s2s_emu::warp_live_lanes() != 0xffffffffu) ::s2s_emu::fault("a WMMA call without all 32 lanes of the warp");
  for (int i = 0; i < 32; i++)
    if (slot[i] != slot[lane]) ::s2s_emu::fault("a WMMA load or store with different pointers or strides across the warp");
  ::s2s_emu::sync_warp(what);
}

// Every lane's copy of a fragment must be the same: on the GPU the warp holds one tile between
// its lanes, so code that gives lanes different values (or reads x[] as if it were the whole
// tile) has no meaning there.
template <typename F>
void same_fragment_across_warp(const F& f, const char* what) {
  uint64_t* slot = ::s2s_emu::warp_slots();
  unsigned lane = ::s2s_emu::lane_id();
  slot[lane] = (uint64_t)(uintptr_t)&f;
  ::s2s_emu::sync_warp(what);
  if (::s2s_emu::warp_live_lanes() != 0xffffffffu) ::s2s_emu::fault("a WMMA call without all 32 lanes of the warp");
  if (std::memcmp(&f, reinterpret_cast<const F*>(slot[0]), sizeof(F)) != 0)
    ::s2s_emu::fault("a WMMA fragment whose lanes hold different values");
  ::s2s_emu::sync_warp(what);
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, T v) {
  for (auto& e : f.x) e = v;
}

// Loads of matrix_a / matrix_b fragments (the layout is the fragment's).
template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same<Use, accumulator>::value, "accumulator loads take a layout_t");
  detail::check_operand(p, ldm);
  detail::same_across_warp(p, ldm, "wmma::load_matrix_sync");
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int i = 0; i < F::rows; i++)
    for (int j = 0; j < F::cols; j++)
      f.x[i * F::cols + j] = std::is_same<Layout, col_major>::value ? p[i + (size_t)j * ldm] : p[(size_t)i * ldm + j];
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout) {
  detail::check_operand(p, ldm);
  detail::same_across_warp(p, ldm, "wmma::load_matrix_sync");
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) f.x[i * N + j] = layout == mem_col_major ? p[i + (size_t)j * ldm] : p[(size_t)i * ldm + j];
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  detail::check_operand(p, ldm);
  detail::same_across_warp(p, ldm, "wmma::store_matrix_sync");
  detail::same_fragment_across_warp(f, "wmma::store_matrix_sync");
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) (layout == mem_col_major ? p[i + (size_t)j * ldm] : p[(size_t)i * ldm + j]) = f.x[i * N + j];
}

// d = a b + c; lane 0 multiplies (the lanes' fragments having been checked the same) and every
// lane takes the result.
template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float* out = static_cast<float*>(::s2s_emu::warp_scratch());
  detail::same_fragment_across_warp(a, "wmma::mma_sync");
  detail::same_fragment_across_warp(b, "wmma::mma_sync");
  detail::same_fragment_across_warp(c, "wmma::mma_sync");
  if (::s2s_emu::lane_id() == 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        float acc = c.x[i * N + j];
        for (int k = 0; k < K; k++) acc += (float)a.x[i * K + k] * (float)b.x[k * N + j];
        out[i * N + j] = acc;
      }
  }
  ::s2s_emu::sync_warp("wmma::mma_sync");
  for (int e = 0; e < M * N; e++) d.x[e] = out[e];
  ::s2s_emu::sync_warp("wmma::mma_sync");
}

}  // namespace wmma
}  // namespace nvcuda

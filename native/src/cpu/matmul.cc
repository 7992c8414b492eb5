// Matrix multiplication through oneDNN, with the primitives cached by shape, and the loops that
// serve as its reference.
#include "cpu/matmul.h"
#include "cpu/vecmath.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#ifdef S2S_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "cpu/gelu.h"

namespace s2s {

namespace {

// The calling thread's matmul setting (MatmulScope).
thread_local CpuMatmul tl_mode = CpuMatmul::fp32;
thread_local WeightCache* tl_weights = nullptr;
thread_local OperandCache* tl_operands = nullptr;

// 16 values at a time with AVX512-BF16's vcvtneps2bf16 (round to nearest even, as to_bf16; it
// also flushes inputs below 2^-126 to zero, which no product here can tell). Every processor that
// multiplies bf16 natively has it (AMX machines too); the scalar loop serves the rest.
__attribute__((target("avx512f,avx512bf16,avx512vl"))) void convert_bf16_avx512(uint16_t* dst, const float* src,
                                                                                 int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)h);
  }
  for (; i < n; i++) dst[i] = to_bf16(src[i]);
}


// n values converted as `mode`'s matmuls read them (to_operand), in parallel chunks.
void convert(void* dst, const float* src, int64_t n, CpuMatmul mode) {
  const int64_t chunk = 1 << 14;  // per task: 64 KiB of source
  const size_t esz = operand_size(mode);
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t c = 0; c < n; c += chunk) to_operand(static_cast<char*>(dst) + c * esz, src + c, std::min(chunk, n - c), mode);
}

// How many values a strided operand spans, from its first to its last (strides are >= 0).
int64_t span(int64_t nb0, int64_t nb1, int64_t rows, int64_t cols, Strides s) {
  return (nb0 - 1) * s.batch0 + (nb1 - 1) * s.batch1 + (rows - 1) * s.row + (cols - 1) * s.col + 1;
}

// This thread's staging buffer `slot`, with room for n values of `mode`'s operands.
void* staging(int64_t n, CpuMatmul mode, int slot) {
  if (mode == CpuMatmul::bf16) {
    thread_local HostArray<uint16_t> staged[3];
    staged[slot].reserve((size_t)n);
    return staged[slot].data();
  }
  thread_local HostArray<float> staged[3];
  staged[slot].reserve((size_t)n);
  return staged[slot].data();
}

// The operand at p (n values from p, read through its strides) as a bf16 matmul reads it: the
// weight cache's copy when p is a parameter, else a conversion into this slot's staging buffer,
// laid out as p is (so the strides still apply).
const void* stage(const float* p, int64_t n, CpuMatmul mode, int slot) {
  if (tl_weights)
    if (const void* w = tl_weights->lookup(p, (size_t)n, mode)) return w;
  void* dst = nullptr;
  if (tl_operands) {
    if (tl_operands->recording()) {
      if (const void* made = tl_operands->made(p, (size_t)n, mode)) return made;
      dst = tl_operands->keep(p, (size_t)n, mode);
    } else if (const void* kept = tl_operands->find(p, (size_t)n, mode)) {
      return kept;
    }
  }
  if (!dst) dst = staging(n, mode, slot);
  convert(dst, p, n, mode);
  return dst;
}

#ifdef S2S_HAVE_ONEDNN
using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

memory::desc strided_md(int64_t nb0, int64_t nb1, int64_t rows, int64_t cols, Strides s,
                        memory::data_type t = memory::data_type::f32) {
  return memory::desc({nb0, nb1, rows, cols}, t, {s.batch0, s.batch1, s.row, s.col});
}

// A primitive is specific to shapes, strides, alpha, accumulation, bias, the operands' type and
// the thread count (oneDNN picks its blocking for the threads it will run on).
using Key = std::tuple<std::vector<int64_t>, float, bool, bool, bool, int>;

struct Gemm {
  dnnl::matmul prim;
  memory::desc a, b, c, bias;
};

std::mutex g_cache_mutex;
std::map<Key, std::shared_ptr<Gemm>> g_cache;

std::shared_ptr<Gemm> get_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, Strides sa,
                               Strides sb, Strides sc, float alpha, bool accumulate, bool bias, bool bf16) {
  Key key{{nb0, nb1, M, N, K, sa.batch0, sa.batch1, sa.row, sa.col, sb.batch0, sb.batch1, sb.row,
           sb.col, sc.batch0, sc.batch1, sc.row, sc.col},
          alpha, accumulate, bias, bf16, omp_get_max_threads()};
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return it->second;
  auto g = std::make_shared<Gemm>();
  const memory::data_type in = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  g->a = strided_md(nb0, nb1, M, K, sa, in);
  g->b = strided_md(nb0, nb1, K, N, sb, in);
  g->c = strided_md(nb0, nb1, M, N, sc);
  if (bias) g->bias = memory::desc({1, 1, 1, N}, memory::data_type::f32, memory::format_tag::abcd);
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  try {
    dnnl::matmul::desc d = bias ? dnnl::matmul::desc(g->a, g->b, g->bias, g->c)
                                : dnnl::matmul::desc(g->a, g->b, g->c);
    g->prim = dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, cpu_engine()));
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN could not build a") + (bf16 ? " bf16" : "n fp32") + " matmul for this shape: " + e.what());
  }
  if (g_cache.size() > 4096) g_cache.clear();  // shapes come from a few configs; this is a guard
  g_cache.emplace(key, g);
  return g;
}

#endif  // S2S_HAVE_ONEDNN

// Below this many FLOPs a GEMM runs on one thread: a microsecond or two of work is less than what
// keeping a second thread in step costs (and far less when another process holds a core). Set
// where a decoding step's GEMVs still gain from two threads on an idle machine: a 128-wide model's
// do not, a 384-wide one's do.
constexpr double kMinParallelGemmFlops = 1 << 18;

// Sets this thread's OpenMP thread count for one scope (oneDNN reads it when it executes).
struct ScopedThreads {
  int saved;
  explicit ScopedThreads(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(saved); }
};

// C = alpha * A @ B (+ C) (+ bias) with the operands as the multiplication reads them: bf16 values
// when `bf16`, else fp32 (bf16-rounded for the emulated twin).
void execute_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const void* a_in, Strides sa,
                  const void* b_in, Strides sb, float* C, Strides sc, float alpha, bool accumulate, const float* bias,
                  bool bf16) {
  if (M == 0 || N == 0 || nb0 == 0 || nb1 == 0) return;
  bool small = 2.0 * nb0 * nb1 * M * N * K < kMinParallelGemmFlops;
  ScopedThreads threads(small ? 1 : omp_get_max_threads());
#ifndef S2S_HAVE_ONEDNN
  // Without oneDNN (a machine that builds only the C++ tests): row-parallel loops, i-k-j order so
  // the inner loop runs along C's and B's rows. (bf16 operands need oneDNN: check_cpu_matmul.)
  if (bf16) throw Error("bf16 matmuls need the engine built with oneDNN");
  const float* A = static_cast<const float*>(a_in);
  const float* B = static_cast<const float*>(b_in);
  for (int64_t b0 = 0; b0 < nb0; b0++)
    for (int64_t b1 = 0; b1 < nb1; b1++) {
      const float* a = A + b0 * sa.batch0 + b1 * sa.batch1;
      const float* b = B + b0 * sb.batch0 + b1 * sb.batch1;
      float* c = C + b0 * sc.batch0 + b1 * sc.batch1;
#pragma omp parallel for schedule(static) if (!small)
      for (int64_t i = 0; i < M; i++) {
        std::vector<float> acc(N, 0.0f);
        for (int64_t k = 0; k < K; k++) {
          float av = a[i * sa.row + k * sa.col];
          const float* brow = b + k * sb.row;
          for (int64_t j = 0; j < N; j++) acc[j] += av * brow[j * sb.col];
        }
        for (int64_t j = 0; j < N; j++) {
          float& dst = c[i * sc.row + j * sc.col];
          dst = alpha * acc[j] + (bias ? bias[j] : 0.0f) + (accumulate ? dst : 0.0f);
        }
      }
    }
#else
  auto g = get_gemm(nb0, nb1, M, N, K, sa, sb, sc, alpha, accumulate, bias != nullptr, bf16);
  thread_local dnnl::stream strm(cpu_engine());
  auto& eng = cpu_engine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(g->a, eng, const_cast<void*>(a_in))},
      {DNNL_ARG_WEIGHTS, memory(g->b, eng, const_cast<void*>(b_in))},
      {DNNL_ARG_DST, memory(g->c, eng, C)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(g->bias, eng, const_cast<float*>(bias)));
  // (oneDNN's default library-managed scratchpad is shared by all primitives: matmuls must not run
  // on two threads at once, which the engine's one thread guarantees)
  g->prim.execute(strm, args);
  strm.wait();
#endif
}

// The same from fp32 operands, staged into the calling thread's matmul setting first, unless the
// caller staged one already (a_pre / b_pre: an operand two products share, converted once).
constexpr int kSharedSlot = 2;
void run_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
              const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate,
              const float* bias, const void* a_pre = nullptr, const void* b_pre = nullptr) {
  if (M == 0 || N == 0 || nb0 == 0 || nb1 == 0) return;
  const CpuMatmul mode = tl_mode;
  const void* a_in = A;
  const void* b_in = B;
  if (mode != CpuMatmul::fp32 && K > 0) {
    a_in = a_pre ? a_pre : stage(A, span(nb0, nb1, M, K, sa), mode, 0);
    b_in = b_pre ? b_pre : stage(B, span(nb0, nb1, K, N, sb), mode, 1);
  }
  execute_gemm(nb0, nb1, M, N, K, a_in, sa, b_in, sb, C, sc, alpha, accumulate, bias, mode == CpuMatmul::bf16);
}

}  // namespace

void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate) {
  run_gemm(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate, nullptr);
}

CpuMatmul current_matmul() { return tl_mode; }

size_t operand_size(CpuMatmul mode) { return mode == CpuMatmul::bf16 ? sizeof(uint16_t) : sizeof(float); }

void to_operand(void* dst, const float* src, int64_t n, CpuMatmul mode) {
  switch (mode) {
    case CpuMatmul::fp32:
      std::memcpy(dst, src, (size_t)n * sizeof(float));
      break;
    case CpuMatmul::bf16:
      if (have_avx512_bf16()) convert_bf16_avx512(static_cast<uint16_t*>(dst), src, n);
      else
        for (int64_t i = 0; i < n; i++) static_cast<uint16_t*>(dst)[i] = to_bf16(src[i]);
      break;
    case CpuMatmul::bf16_emulated:
      for (int64_t i = 0; i < n; i++) static_cast<float*>(dst)[i] = round_bf16(src[i]);
      break;
  }
}

const void* shared_operand(const float* p, int64_t n) {
  return tl_mode == CpuMatmul::fp32 || n == 0 ? p : stage(p, n, tl_mode, kSharedSlot);
}

namespace {
void* kept_room(const float* src, int layout, int64_t n, bool budgeted) {
  if (tl_mode == CpuMatmul::fp32 || !tl_operands || !tl_operands->recording()) return nullptr;
  return tl_operands->keep(src, (size_t)n, tl_mode, layout, budgeted);
}
}  // namespace

void* kept_operand_room(const float* src, int layout, int64_t n) { return kept_room(src, layout, n, true); }

void* kept_state_room(const float* src, int layout, int64_t n) { return kept_room(src, layout, n, false); }

const void* kept_operand(const float* src, int layout, int64_t n) {
  if (tl_mode == CpuMatmul::fp32 || !tl_operands || tl_operands->recording()) return nullptr;
  return tl_operands->find(src, (size_t)n, tl_mode, layout);
}

void* operand_made_here(const float* p, int64_t n) {
  if (tl_mode == CpuMatmul::fp32 || !tl_operands || !tl_operands->recording() || n == 0) return nullptr;
  return tl_operands->make(p, (size_t)n, tl_mode);
}

void* operand_instead_here(const float* p, int64_t n) { return operand_made_here(p, n); }

void* shared_operand_target(int64_t n) {
  return tl_mode == CpuMatmul::fp32 || n == 0 ? nullptr : staging(n, tl_mode, kSharedSlot);
}

void gemm_prepared(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const void* a_pre,
                   const float* B, const void* b_pre, float* C, float alpha, bool accumulate) {
  Strides sa = transA ? dense_t(M, K) : dense(M, K);
  Strides sb = transB ? dense_t(K, N) : dense(K, N);
  run_gemm(1, 1, M, N, K, A, sa, B, sb, C, dense(M, N), alpha, accumulate, nullptr, a_pre, b_pre);
}

void gemm_batched_prepared(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const void* A, Strides sa,
                           const void* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate) {
  execute_gemm(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate, nullptr, tl_mode == CpuMatmul::bf16);
}

void gemm_batched_naive(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                        Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha,
                        bool accumulate) {
  for (int64_t b0 = 0; b0 < nb0; b0++)
    for (int64_t b1 = 0; b1 < nb1; b1++) {
      const float* a = A + b0 * sa.batch0 + b1 * sa.batch1;
      const float* b = B + b0 * sb.batch0 + b1 * sb.batch1;
      float* c = C + b0 * sc.batch0 + b1 * sc.batch1;
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double acc = 0;
          for (int64_t k = 0; k < K; k++) acc += (double)a[i * sa.row + k * sa.col] * b[k * sb.row + j * sb.col];
          float& dst = c[i * sc.row + j * sc.col];
          dst = (float)(alpha * acc + (accumulate ? dst : 0.0f));
        }
    }
}

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
          float* C, float alpha, bool accumulate) {
  Strides sa = transA ? dense_t(M, K) : dense(M, K);
  Strides sb = transB ? dense_t(K, N) : dense(K, N);
  run_gemm(1, 1, M, N, K, A, sa, B, sb, C, dense(M, N), alpha, accumulate, nullptr);
}

namespace {

// A matrix operand stored row-major with rows a multiple of 4 KiB apart (1024, 2048, 3072 ...
// columns: GPT-2 124M's MLP width) makes oneDNN's kernel evict its own rows, which share cache
// sets: the MLP's forward ran at 120 GFLOP/s against 285 with the weight transposed to [OC, C],
// and its weight gradient at 98 against 267 with dout transposed (a Xeon with AVX-512). When
// enough rows share the operand, a transposed copy (2 ms for 768 x 3072) pays for itself; decoding
// (a few rows) multiplies by it as it is.
constexpr int64_t kTransposeRows = 256;
bool rows_alias(int64_t cols) { return cols * (int64_t)sizeof(float) % 4096 == 0; }
// In bf16 the operands are copies anyway (the weight cache's, the staged activations): the copy is
// made for fp32 only.
bool transpose_pays(int64_t rows, int64_t cols) {
  return tl_mode == CpuMatmul::fp32 && rows >= kTransposeRows && rows_alias(cols);
}

// src [R, K] transposed into a per-thread buffer ([K, R]), in tiles of 8 source rows (a taller
// tile would evict itself, for the reason above). Engine calls run one at a time on its thread.
const float* transposed(const float* src, int64_t R, int64_t K) {
  thread_local Buffer dst;
  dst.reserve(R * K);
  float* d = dst.data();
  const int64_t TR = 8, TK = 64;
#pragma omp parallel for schedule(static) collapse(2) if (R * K >= kMinParallelWork)
  for (int64_t r0 = 0; r0 < R; r0 += TR)
    for (int64_t k0 = 0; k0 < K; k0 += TK)
      for (int64_t k = k0; k < std::min(k0 + TK, K); k++)
        for (int64_t r = r0; r < std::min(r0 + TR, R); r++) d[k * R + r] = src[r * K + k];
  return d;
}

// One pass over a layer's output gradient [N, OC], each thread owning one contiguous range of
// columns (so no reduction races, and each column summed over the rows in order): rows(n, c0, c1,
// scratch) gives row n's values c0..c1 (a pointer to them, or to scratch where it computed them),
// dbias[c] += their sum over n (unless dbias is null) and, with `converted`, the same pass writes
// them as the matmuls read them (to_operand in `mode`), so the gradient is read once for both.
// (A range spans whole rows' worth of a thread's share: narrower blocks, read a few hundred bytes a
// row several KiB apart, defeat the prefetcher; even so it lags, so ahead(n, c0, c1) asks for what
// rows(n, ...) will read, kRowsAhead rows before it is read.)
template <class Rows, class Ahead>
void column_pass(float* dbias, int64_t N, int64_t OC, void* converted, CpuMatmul mode, Rows&& rows, Ahead&& ahead) {
  const size_t esz = operand_size(mode);
  const bool parallel = N * OC >= kMinParallelWork;
  const int64_t parts = parallel ? omp_get_max_threads() : 1;
  const int64_t width = ((OC + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t part = 0; part < parts; part++) {
    const int64_t c0 = part * width, c1 = c0 + width < OC ? c0 + width : OC;
    if (c0 >= c1) continue;
    std::vector<float> acc(dbias ? c1 - c0 : 0, 0.0f), scratch(c1 - c0);
    for (int64_t n = 0; n < std::min(N, kRowsAhead); n++) ahead(n, c0, c1);
    for (int64_t n = 0; n < N; n++) {
      if (n + kRowsAhead < N) ahead(n + kRowsAhead, c0, c1);
      const float* row = rows(n, c0, c1, scratch.data());
      if (dbias)
        for (int64_t c = 0; c < c1 - c0; c++) acc[c] += row[c];
      if (converted) to_operand(static_cast<char*>(converted) + (n * OC + c0) * esz, row, c1 - c0, mode);
    }
    if (dbias)
      for (int64_t c = c0; c < c1; c++) dbias[c] += acc[c - c0];
  }
}

// dbias[c] += sum over n of dout[n, c] (and dout converted, see column_pass).
void add_column_sums(float* dbias, const float* dout, int64_t N, int64_t OC, void* converted = nullptr,
                     CpuMatmul mode = CpuMatmul::fp32) {
  column_pass(
      dbias, N, OC, converted, mode, [=](int64_t n, int64_t c0, int64_t, float*) { return dout + n * OC + c0; },
      [=](int64_t n, int64_t c0, int64_t c1) { prefetch_floats(dout + n * OC + c0, c1 - c0); });
}

// A layer's output gradient as both its products read it (converted once), with the bias gradient
// summed in the same pass when there is a bias.
const void* dout_operand(float* dbias, const float* dout, int64_t N, int64_t OC) {
  if (!dbias) return shared_operand(dout, N * OC);
  void* target = shared_operand_target(N * OC);
  add_column_sums(dbias, dout, N, OC, target, tl_mode);
  return target ? target : dout;
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC) {
  if (transpose_pays(N, OC))
    run_gemm(1, 1, N, OC, C, inp, dense(N, C), transposed(weight, C, OC), dense_t(C, OC), out, dense(N, OC), 1.0f,
             false, bias);
  else
    run_gemm(1, 1, N, OC, C, inp, dense(N, C), weight, dense(C, OC), out, dense(N, OC), 1.0f, false, bias);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate) {
  const void* d = dout_operand(dbias, dout, N, OC);
  if (dinp) gemm_prepared(false, true, N, C, OC, dout, d, weight, nullptr, dinp, 1.0f, false);
  if (transpose_pays(N, OC))
    run_gemm(1, 1, C, OC, N, inp, dense_t(C, N), transposed(dout, N, OC), dense_t(N, OC), dweight, dense(C, OC), 1.0f,
             accumulate, nullptr);
  else
    gemm_prepared(true, false, C, OC, N, inp, nullptr, dout, d, dweight, 1.0f, accumulate);
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  // weight [OC, C] read as the K x N operand through transposed strides: the layout oneDNN
  // multiplies fastest (see rows_alias above), so no copy is ever needed here.
  run_gemm(1, 1, N, OC, C, inp, dense(N, C), weight, dense_t(C, OC), out, dense(N, OC), 1.0f, false, bias);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate) {
  const void* d = dout_operand(dbias, dout, N, OC);
  if (dinp) run_gemm(1, 1, N, C, OC, dout, dense(N, OC), weight, dense(OC, C), dinp, dense(N, C), 1.0f, false, nullptr, d);
  // dweight [OC, C] (+)= dout^T @ inp
  run_gemm(1, 1, OC, C, N, dout, dense_t(OC, N), inp, dense(N, C), dweight, dense(OC, C), 1.0f, accumulate, nullptr, d);
}

void gelu_matmul_backward(float* dinp, float* dweight, float* dbias, float* dpre, const float* pre, const float* dact,
                          const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate) {
  const CpuMatmul mode = tl_mode;
  if (mode == CpuMatmul::fp32) {  // the products read dpre itself: write it, then as matmul_backward
    gelu_backward(dpre, pre, dact, N * OC);
    matmul_backward(dinp, dweight, dbias, dpre, inp, weight, N, C, OC, accumulate);
    return;
  }
  // GELU's gradient made a block of a row at a time, summed into dbias and written as the products
  // read it: the fp32 gradient never reaches memory (dpre is left as it was)
  void* d = shared_operand_target(N * OC);
  column_pass(
      dbias, N, OC, d, mode,
      [=](int64_t n, int64_t c0, int64_t c1, float* out) {
        const float* x = pre + n * OC;
        const float* g = dact + n * OC;
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) out[c - c0] = gelu_grad_times(x[c], g[c]);
        return static_cast<const float*>(out);
      },
      [=](int64_t n, int64_t c0, int64_t c1) {
        prefetch_floats(pre + n * OC + c0, c1 - c0);
        prefetch_floats(dact + n * OC + c0, c1 - c0);
      });
  if (dinp) gemm_prepared(false, true, N, C, OC, dpre, d, weight, nullptr, dinp, 1.0f, false);
  gemm_prepared(true, false, C, OC, N, inp, nullptr, dpre, d, dweight, 1.0f, accumulate);
}

void linear_forward_naive(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                          int64_t C, int64_t OC) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; c++) acc += (double)inp[n * C + c] * weight[o * C + c];
      out[n * OC + o] = (float)acc;
    }
}

void matmul_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          int64_t N, int64_t C, int64_t OC) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; c++) acc += (double)inp[n * C + c] * weight[c * OC + o];
      out[n * OC + o] = (float)acc;
    }
}

double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int iters, CpuMatmul mode, int outputs) {
  check_cpu_matmul(mode);
  // A and B in one buffer the weight cache holds, so a bf16 run measures the multiplication and
  // not the conversion of its operands (as a model's weights are converted once per step). The
  // products write `outputs` results in turn, each touched before the clock starts.
  Buffer ab(M * K + K * N), c(M * N * outputs);
  std::memset(c.data(), 0, c.size() * sizeof(float));
  for (int64_t i = 0; i < M * K; i++) ab[i] = 0.001f * (float)(i % 97);
  for (int64_t i = 0; i < K * N; i++) ab[M * K + i] = 0.002f * (float)(i % 89);
  WeightCache cache;
  cache.changed(ab.data(), ab.size());
  MatmulScope scope(mode, &cache);
  const float* a = ab.data();
  const float* b = ab.data() + M * K;
  for (int i = 0; i < 2; i++) gemm(false, false, M, N, K, a, b, c.data(), 1.0f, false);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; i++) gemm(false, false, M, N, K, a, b, c.data() + (i % outputs) * M * N, 1.0f, false);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * M * N * K * iters / dt / 1e9;
}

// ---- precision ----

bool have_avx512_bf16() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return yes;
}

const char* cpu_matmul_name(CpuMatmul m) {
  return m == CpuMatmul::bf16 ? "bf16" : m == CpuMatmul::bf16_emulated ? "bf16-emulated" : "fp32";
}

const CpuBf16Support& cpu_bf16_support() {
  static const CpuBf16Support support = [] {
    CpuBf16Support r;
#ifndef S2S_HAVE_ONEDNN
    r.reason = "the engine was built without oneDNN";
#else
    __builtin_cpu_init();
    const bool amx = __builtin_cpu_supports("amx-bf16"), avx = __builtin_cpu_supports("avx512bf16");
    if (!amx && !avx) {
      r.reason = "the processor has neither AMX-BF16 nor AVX512-BF16";
      return r;
    }
    // oneDNN must also pick a bf16 kernel for it (an old kernel, or one without AMX permission,
    // would fall back to a reference implementation that is far slower than fp32)
    try {
      memory::desc a({64, 64}, memory::data_type::bf16, memory::format_tag::ab);
      memory::desc c({64, 64}, memory::data_type::f32, memory::format_tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, a, c), cpu_engine());
      std::string impl = pd.impl_info_str();
      if (impl.find("bf16") == std::string::npos) {
        r.reason = "oneDNN has no native bf16 matmul for this processor (it chose " + impl + ")";
        return r;
      }
    } catch (const dnnl::error& e) {
      r.reason = std::string("oneDNN could not build a bf16 matmul: ") + e.what();
      return r;
    }
    r.native = true;
    r.isa = amx ? "AMX-BF16" : "AVX512-BF16";
#endif
    return r;
  }();
  return support;
}

CpuMatmul cpu_default_matmul() {
  const char* env = std::getenv("S2S_CPU_PRECISION");
  std::string v = env ? env : "auto";
  CpuMatmul m;
  if (v == "auto" || v.empty()) return cpu_bf16_support().native ? CpuMatmul::bf16 : CpuMatmul::fp32;
  if (v == "fp32") m = CpuMatmul::fp32;
  else if (v == "bf16") m = CpuMatmul::bf16;
  else if (v == "bf16-emulated") m = CpuMatmul::bf16_emulated;
  else throw Error("S2S_CPU_PRECISION must be 'auto', 'fp32', 'bf16' or 'bf16-emulated', got '" + v + "'");
  check_cpu_matmul(m);
  return m;
}

void check_cpu_matmul(CpuMatmul m) {
  if (m != CpuMatmul::bf16) return;
  const CpuBf16Support& s = cpu_bf16_support();
  if (!s.native)
    throw Error("bf16 matmuls on the CPU need AMX-BF16 or AVX512-BF16 and oneDNN's kernels for them: " + s.reason +
                ". Use fp32 (S2S_CPU_PRECISION=fp32 or auto), or bf16-emulated to see bf16's numbers (slower than fp32)");
}

void* WeightCache::fill_target(const float* p, size_t n, CpuMatmul mode) {
  if (mode == CpuMatmul::fp32 || !base_ || p != base_ + filled_ || filled_ + n > n_) {
    filled_ = n_ + 1;  // out of order: this sweep fills nothing more
    return nullptr;
  }
  void* dst;
  if (mode == CpuMatmul::bf16) {
    rounded_.reset();
    bf16_.reserve(n_);
    dst = bf16_.data() + filled_;
  } else {
    bf16_.reset();
    rounded_.reserve(n_);
    dst = rounded_.data() + filled_;
  }
  filled_ += n;
  if (filled_ == n_) {
    fresh_ = true;
    made_for_ = mode;
  }
  return dst;
}

const void* WeightCache::lookup(const float* p, size_t n, CpuMatmul mode) {
  if (!base_ || p < base_ || p + n > base_ + n_) return nullptr;
  if (!fresh_ || made_for_ != mode) {
    if (mode == CpuMatmul::bf16) {
      rounded_.reset();
      bf16_.resize(n_);
      convert(bf16_.data(), base_, (int64_t)n_, mode);
    } else {
      bf16_.reset();
      rounded_.resize(n_);
      convert(rounded_.data(), base_, (int64_t)n_, mode);
    }
    fresh_ = true;
    made_for_ = mode;
  }
  const size_t off = (size_t)(p - base_);
  return mode == CpuMatmul::bf16 ? static_cast<const void*>(bf16_.data() + off)
                                 : static_cast<const void*>(rounded_.data() + off);
}

void OperandCache::record(bool on) {
  if (on == recording_) return;
  recording_ = on;
  if (on) {
    drop();
    pass_++;
    used_ = 0;
    return;
  }
  // copies this recording did not write belong to shapes no longer in use: their memory goes
  for (auto it = entries_.begin(); it != entries_.end();)
    it = it->second.pass == pass_ ? std::next(it) : entries_.erase(it);
}

void OperandCache::drop() {
  for (auto& [p, e] : entries_) e.valid = false;
}

void* OperandCache::keep(const float* p, size_t n, CpuMatmul mode, int layout, bool budgeted) {
  const size_t bytes = n * operand_size(mode);
  if (budgeted && used_ + bytes > budget_) return nullptr;
  Entry& e = entries_[Key{p, layout}];
  if (budgeted) used_ += bytes;
  e.budgeted = budgeted;
  e.n = n;
  e.mode = mode;
  e.valid = true;
  e.pass = pass_;
  e.made = 0;
  e.data.reserve(bytes);
  return e.data.data();
}

void* OperandCache::make(const float* p, size_t n, CpuMatmul mode) {
  void* dst = keep(p, n, mode);
  if (dst) entries_[Key{p, 0}].made = pass_;
  return dst;
}

const void* OperandCache::made(const float* p, size_t n, CpuMatmul mode) const {
  auto it = entries_.find(Key{p, 0});
  if (it == entries_.end()) return nullptr;
  const Entry& e = it->second;
  return e.valid && e.made == pass_ && e.n == n && e.mode == mode ? e.data.data() : nullptr;
}

const void* OperandCache::find(const float* p, size_t n, CpuMatmul mode, int layout) {
  auto it = entries_.find(Key{p, layout});
  if (it == entries_.end() || !it->second.valid || it->second.n != n || it->second.mode != mode) return nullptr;
  if (it->second.budgeted) hits_++;
  return it->second.data.data();
}

MatmulScope::MatmulScope(CpuMatmul mode, WeightCache* weights, OperandCache* operands)
    : saved_mode_(tl_mode), saved_weights_(tl_weights), saved_operands_(tl_operands) {
  tl_mode = mode;
  tl_weights = weights;
  tl_operands = operands;
}

MatmulScope::~MatmulScope() {
  tl_mode = saved_mode_;
  tl_weights = saved_weights_;
  tl_operands = saved_operands_;
}

}  // namespace s2s

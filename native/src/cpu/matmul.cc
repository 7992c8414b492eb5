// Matrix multiplication through oneDNN, with the primitives cached by shape, and the loops that
// serve as its reference.
#include "cpu/matmul.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
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

namespace s2s {

namespace {

#ifdef S2S_HAVE_ONEDNN
using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

memory::desc strided_md(int64_t nb0, int64_t nb1, int64_t rows, int64_t cols, Strides s) {
  return memory::desc({nb0, nb1, rows, cols}, memory::data_type::f32,
                      {s.batch0, s.batch1, s.row, s.col});
}

// A primitive is specific to shapes, strides, alpha, accumulation, bias and the thread count
// (oneDNN picks its blocking for the threads it will run on).
using Key = std::tuple<std::vector<int64_t>, float, bool, bool, int>;

struct Gemm {
  dnnl::matmul prim;
  memory::desc a, b, c, bias;
};

std::mutex g_cache_mutex;
std::map<Key, std::shared_ptr<Gemm>> g_cache;

std::shared_ptr<Gemm> get_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, Strides sa,
                               Strides sb, Strides sc, float alpha, bool accumulate, bool bias) {
  Key key{{nb0, nb1, M, N, K, sa.batch0, sa.batch1, sa.row, sa.col, sb.batch0, sb.batch1, sb.row,
           sb.col, sc.batch0, sc.batch1, sc.row, sc.col},
          alpha, accumulate, bias, omp_get_max_threads()};
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return it->second;
  auto g = std::make_shared<Gemm>();
  g->a = strided_md(nb0, nb1, M, K, sa);
  g->b = strided_md(nb0, nb1, K, N, sb);
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
    throw Error(std::string("oneDNN could not build a matmul for this shape: ") + e.what());
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

void run_gemm(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
              const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate,
              const float* bias) {
  if (M == 0 || N == 0 || nb0 == 0 || nb1 == 0) return;
  bool small = 2.0 * nb0 * nb1 * M * N * K < kMinParallelGemmFlops;
  ScopedThreads threads(small ? 1 : omp_get_max_threads());
#ifndef S2S_HAVE_ONEDNN
  // Without oneDNN (a machine that builds only the C++ tests): row-parallel loops, i-k-j order so
  // the inner loop runs along C's and B's rows.
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
  auto g = get_gemm(nb0, nb1, M, N, K, sa, sb, sc, alpha, accumulate, bias != nullptr);
  thread_local dnnl::stream strm(cpu_engine());
  auto& eng = cpu_engine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(g->a, eng, const_cast<float*>(A))},
      {DNNL_ARG_WEIGHTS, memory(g->b, eng, const_cast<float*>(B))},
      {DNNL_ARG_DST, memory(g->c, eng, C)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(g->bias, eng, const_cast<float*>(bias)));
  g->prim.execute(strm, args);
  strm.wait();
#endif
}

}  // namespace

void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate) {
  run_gemm(nb0, nb1, M, N, K, A, sa, B, sb, C, sc, alpha, accumulate, nullptr);
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

// dbias[c] += sum over n of dout[n, c], in blocks of 64 columns: each thread owns its columns, so
// no reduction races.
void add_column_sums(float* dbias, const float* dout, int64_t N, int64_t OC) {
  const int64_t BLK = 64;
  int64_t nblk = (OC + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if (N * OC >= kMinParallelWork)
  for (int64_t blk = 0; blk < nblk; blk++) {
    int64_t c0 = blk * BLK, c1 = c0 + BLK < OC ? c0 + BLK : OC;
    float acc[BLK] = {0};
    for (int64_t n = 0; n < N; n++) {
      const float* row = dout + n * OC;
      for (int64_t c = c0; c < c1; c++) acc[c - c0] += row[c];
    }
    for (int64_t c = c0; c < c1; c++) dbias[c] += acc[c - c0];
  }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC) {
  if (N >= kTransposeRows && rows_alias(OC))
    run_gemm(1, 1, N, OC, C, inp, dense(N, C), transposed(weight, C, OC), dense_t(C, OC), out, dense(N, OC), 1.0f,
             false, bias);
  else
    run_gemm(1, 1, N, OC, C, inp, dense(N, C), weight, dense(C, OC), out, dense(N, OC), 1.0f, false, bias);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) gemm(false, true, N, C, OC, dout, weight, dinp, 1.0f, false);
  if (N >= kTransposeRows && rows_alias(OC))
    run_gemm(1, 1, C, OC, N, inp, dense_t(C, N), transposed(dout, N, OC), dense_t(N, OC), dweight, dense(C, OC), 1.0f,
             true, nullptr);
  else
    gemm(true, false, C, OC, N, inp, dout, dweight, 1.0f, true);
  if (dbias) add_column_sums(dbias, dout, N, OC);
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  // weight [OC, C] read as the K x N operand through transposed strides: the layout oneDNN
  // multiplies fastest (see rows_alias above), so no copy is ever needed here.
  run_gemm(1, 1, N, OC, C, inp, dense(N, C), weight, dense_t(C, OC), out, dense(N, OC), 1.0f, false, bias);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) run_gemm(1, 1, N, C, OC, dout, dense(N, OC), weight, dense(OC, C), dinp, dense(N, C), 1.0f, false, nullptr);
  // dweight [OC, C] += dout^T @ inp
  run_gemm(1, 1, OC, C, N, dout, dense_t(OC, N), inp, dense(N, C), dweight, dense(OC, C), 1.0f, true, nullptr);
  if (dbias) add_column_sums(dbias, dout, N, OC);
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

double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int iters) {
  Buffer a(M * K), b(K * N), c(M * N);
  for (size_t i = 0; i < a.size(); i++) a[i] = 0.001f * (float)(i % 97);
  for (size_t i = 0; i < b.size(); i++) b[i] = 0.002f * (float)(i % 89);
  for (int i = 0; i < 2; i++) gemm(false, false, M, N, K, a.data(), b.data(), c.data(), 1.0f, false);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; i++) gemm(false, false, M, N, K, a.data(), b.data(), c.data(), 1.0f, false);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * M * N * K * iters / dt / 1e9;
}

}  // namespace s2s

// Matrix multiplication for the engine: linear layers (forward/backward) and a general strided,
// batched GEMM used by attention and the LM head. Optimised path: oneDNN; reference: plain loops.
// Every one of them multiplies at the calling thread's matmul setting (MatmulScope below).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "common.h"
#include "ops/strides.h"

namespace s2s {

// ---- precision ----

// How the CPU's matmuls multiply. fp32: fp32 throughout. bf16: the operands rounded to bf16, the
// products accumulated in fp32 and written as fp32 (weights, activations, gradients and optimizer
// state stay fp32), through oneDNN's AMX or AVX512-BF16 kernels. bf16_emulated: the same numbers
// (up to summation order) on any processor, as an fp32 sgemm over operands rounded to bf16 (a
// product of two bf16 values is exact in fp32): slower than fp32, for checking results only.
enum class CpuMatmul { fp32, bf16, bf16_emulated };
const char* cpu_matmul_name(CpuMatmul m);  // "fp32", "bf16", "bf16-emulated"

// Whether this processor multiplies bf16 natively (AMX-BF16 or AVX512-BF16, and oneDNN builds a
// bf16 matmul for it). Asked once.
struct CpuBf16Support {
  bool native = false;
  std::string isa;     // "AMX-BF16", "AVX512-BF16" or ""
  std::string reason;  // why not, when not
};
const CpuBf16Support& cpu_bf16_support();
// Whether the processor has AVX512-BF16 (every one that does has AVX-512 BW and VL too; AMX
// machines have it as well), whatever oneDNN makes of it. Asked once.
bool have_avx512_bf16();

// The setting of new CPU models: S2S_CPU_PRECISION = auto (the default: bf16 where the processor
// has it natively, else fp32) | fp32 | bf16 (refused where it is not native) | bf16-emulated.
CpuMatmul cpu_default_matmul();
// Checks that `m` can run here (bf16 needs native support); throws an Error that says what to use.
void check_cpu_matmul(CpuMatmul m);

// fp32 -> bf16, rounding to nearest even (NaN stays NaN), and bf16 -> fp32.
inline uint16_t to_bf16(float x) {
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  __builtin_memcpy(&x, &u, 4);
  return x;
}
inline float round_bf16(float x) { return from_bf16(to_bf16(x)); }

// A model's parameters as the bf16 matmuls read them, converted once after each change (a step, a
// write) rather than at every matmul: bf16 values for CpuMatmul::bf16, bf16-rounded fp32 for the
// emulated twin. A matmul operand that lies inside the tracked buffer is read from the copy.
class WeightCache {
 public:
  // The parameter buffer changed (or moved): the copy is remade when a matmul next needs it.
  void changed(const float* base, size_t n) {
    base_ = base;
    n_ = n;
    fresh_ = false;
    filled_ = 0;
  }
  // The copy of the n values from p (same layout), or null when they are not inside the tracked
  // buffer. The copy is remade here when the buffer changed since.
  const void* lookup(const float* p, size_t n, CpuMatmul mode);
  // Where an optimizer step that rewrites parameters [p, p + n) writes their copy itself (in
  // `mode`), so that no separate pass converts them: null in fp32, or when p is not the next slice
  // of a sweep from the buffer's start. A sweep that reaches the buffer's end, each slice once and
  // in order, leaves the copy fresh; anything else leaves it for lookup() to remake whole.
  void* fill_target(const float* p, size_t n, CpuMatmul mode);

 private:
  const float* base_ = nullptr;
  size_t n_ = 0;
  size_t filled_ = 0;  // values the current sweep has written, from base_
  bool fresh_ = false;
  CpuMatmul made_for_ = CpuMatmul::fp32;
  HostArray<uint16_t> bf16_;
  HostArray<float> rounded_;
};

// Activations as the bf16 matmuls read them, converted once for a training step rather than twice:
// while recording (a forward that a backward may follow), each matmul operand that is not a
// parameter is converted into a copy kept under its address; until the copies are dropped, a
// matmul that reads the same values (the backward's weight gradients read the forward's inputs
// again) takes the copy. The composition records only buffers that stay unchanged until the
// backward has read them (each layer's own, src/arch/) and drops the copies whenever activations
// are invalidated. At most budget_bytes are kept; operands past it are converted as before.
class OperandCache {
 public:
  explicit OperandCache(size_t budget_bytes) : budget_(budget_bytes) {}
  void record(bool on);
  void drop();
  bool recording() const { return recording_; }
  // While recording: where the n values from p are converted to (kept), or null past the budget.
  // `layout` tells apart copies of one buffer laid out differently (0: as p is; attention's
  // head-major copies of qkv have their own, cpu/attention.cc). `budgeted` false: kept whatever the
  // budget, and not counted against it (a small state, kept_state_room).
  void* keep(const float* p, size_t n, CpuMatmul mode, int layout = 0, bool budgeted = true);
  // Otherwise: the kept copy of the n values from p, or null.
  const void* find(const float* p, size_t n, CpuMatmul mode, int layout = 0);
  // While recording: keep(), for an op that writes the copy as it makes the values (made_here);
  // made() is then that copy, for the matmul that reads p next (null when none was made so).
  void* make(const float* p, size_t n, CpuMatmul mode);
  const void* made(const float* p, size_t n, CpuMatmul mode) const;
  // How many operand copies (not states) find() has returned.
  uint64_t hits() const { return hits_; }

 private:
  struct Entry {
    size_t n = 0;
    CpuMatmul mode = CpuMatmul::fp32;
    bool valid = false;
    uint64_t pass = 0;  // the recording that last wrote it
    uint64_t made = 0;  // the recording in which the op making the values wrote it (make)
    bool budgeted = true;  // an operand copy (counted in hits()), not a state
    HostArray<char> data;
  };
  struct Key {
    const float* p;
    int layout;
    bool operator==(const Key& o) const { return p == o.p && layout == o.layout; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<const float*>()(k.p) ^ (size_t)k.layout; }
  };
  std::unordered_map<Key, Entry, KeyHash> entries_;
  bool recording_ = false;
  uint64_t pass_ = 0;
  size_t used_ = 0;  // bytes the current recording has kept
  size_t budget_;
  uint64_t hits_ = 0;
};

// The calling thread's matmul setting for one scope (CpuOps opens one around every op it runs, as
// torch's autocast does); outside any scope matmuls run in fp32.
class MatmulScope {
 public:
  MatmulScope(CpuMatmul mode, WeightCache* weights, OperandCache* operands = nullptr);
  ~MatmulScope();
  MatmulScope(const MatmulScope&) = delete;
  MatmulScope& operator=(const MatmulScope&) = delete;

 private:
  CpuMatmul saved_mode_;
  WeightCache* saved_weights_;
  OperandCache* saved_operands_;
};

// C[b0,b1] = alpha * A[b0,b1] (M x K) @ B[b0,b1] (K x N), plus the old C when accumulate is true.
void gemm_batched(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A, Strides sa,
                  const float* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate);
void gemm_batched_naive(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const float* A,
                        Strides sa, const float* B, Strides sb, float* C, Strides sc, float alpha,
                        bool accumulate);

// Operands converted ahead of a GEMM (attention's head-major copies, made once and multiplied
// several times): in the calling thread's matmul setting a value takes operand_size() bytes (bf16:
// 2; fp32 and the emulated twin, whose values are rounded to bf16: 4). to_operand converts n
// contiguous fp32 values on the calling thread (callers parallelise over rows);
// gemm_batched_prepared multiplies such operands as gemm_batched does fp32 ones, without staging.
CpuMatmul current_matmul();
size_t operand_size(CpuMatmul mode);
void to_operand(void* dst, const float* src, int64_t n, CpuMatmul mode);
void gemm_batched_prepared(int64_t nb0, int64_t nb1, int64_t M, int64_t N, int64_t K, const void* A, Strides sa,
                           const void* B, Strides sb, float* C, Strides sc, float alpha, bool accumulate);

// An fp32 operand that two products share (a gradient both a layer's products read), converted
// once into the calling thread's setting: pass it with the fp32 pointer to gemm_prepared. Valid
// until the next shared_operand on this thread; in fp32 it is p itself.
const void* shared_operand(const float* p, int64_t n);
// Where a caller that computes such an operand writes it itself (n values, to_operand in the calling
// thread's setting) instead of writing fp32 and converting it: the buffer shared_operand would
// return, or null in fp32 (then the fp32 values are the operand). Valid as shared_operand's.
void* shared_operand_target(int64_t n);
// Operands derived from a buffer in a layout of their own (`layout` > 0 names it), kept from a
// training forward for its backward like the matmuls' own (OperandCache), in the calling thread's
// bf16 setting: kept_operand_room is where the forward writes such a copy (null when it is not
// kept: fp32, outside a training forward, past the budget), kept_operand the copy a backward finds
// (null when there is none: then it makes its own).
void* kept_operand_room(const float* src, int layout, int64_t n);
// The same for a state that is small next to what it spares (attention's softmax, two floats a
// row, which spare the backward the T x T probabilities): kept in any training forward of a bf16
// setting, past the budget too, so that a long context's forward never falls back to writing its
// squares because the operands filled the budget first.
void* kept_state_room(const float* src, int layout, int64_t n);
const void* kept_operand(const float* src, int layout, int64_t n);
// Where an op of a training forward that makes a matmul's input (a norm's output, GELU's or
// SwiGLU's) writes the values' copy in the matmuls' setting itself, n values laid out as p, while
// they are in its cache: the matmul that reads p then takes that copy instead of converting p, and
// keeps it for the backward as its own. Null where the matmul converts p itself (fp32, outside a
// training forward, past the OperandCache's budget). The op still writes p's fp32 values.
void* operand_made_here(const float* p, int64_t n);
// The same for a p that nothing but that matmul reads (its forward, and its backward through the
// kept copy): GELU's and SwiGLU's outputs, read by the MLP's second matmul, and attention's, read
// by the output projection. Where this returns a copy, the op writes the copy alone and leaves p
// unwritten: a training step then never moves p's fp32 values through memory. Where it returns
// null, the op writes p as usual.
void* operand_instead_here(const float* p, int64_t n);
// gemm with either operand already converted by shared_operand (null: converted as gemm does).
void gemm_prepared(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const void* a_pre,
                   const float* B, const void* b_pre, float* C, float alpha, bool accumulate);

// One matrix: C = alpha * op(A) @ op(B) (+ C). A is M x K (K x M when transA), B is K x N (N x K
// when transB), all dense row-major.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
          float* C, float alpha, bool accumulate);

// Linear layer with HF Conv1D's weight layout [C, OC]:  out[N,OC] = inp[N,C] @ weight + bias.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC);
// dinp = dout @ weight^T (overwritten; skipped when null), dweight += inp^T @ dout (with accumulate
// false: dweight = inp^T @ dout, its old values never read; a backward whose gradients are known to
// be zero passes false, and the product then writes them without reading memory it would add
// zeros from), dbias += column sums of dout (skipped when null; always added to).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate);

// The backward of a Conv1D layer whose output went through GELU (GPT-2's MLP up-projection): with
// dpre = gelu'(pre) * dact, the gradient at the layer's output, as matmul_backward(dinp, dweight,
// dbias, dpre, inp, weight, ..., accumulate). dpre is scratch [N, OC], and may be dact itself: its
// contents afterwards are unspecified (with bf16 matmuls the CPU never writes it: the gradient goes
// straight into the operand the products read).
void gelu_matmul_backward(float* dinp, float* dweight, float* dbias, float* dpre, const float* pre, const float* dact,
                          const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate);

// Linear layer with torch.nn.Linear's weight layout [OC, C] (Llama's projections):
// out[N,OC] = inp[N,C] @ weight^T + bias (bias may be null).
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
// dinp = dout @ weight (overwritten; skipped when null), dweight [OC, C] += dout^T @ inp (= with
// accumulate false, as matmul_backward), dbias += column sums of dout (skipped when null).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC, bool accumulate);

void linear_forward_naive(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                          int64_t C, int64_t OC);
void matmul_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          int64_t N, int64_t C, int64_t OC);

// Sustained GEMM rate of this machine through the same path the engine uses (GFLOP/s), at `mode`.
// With outputs > 1 the products write that many M x N results in turn: with more of them than the
// caches hold, each product writes to lines that are not in the cache, as a training step's
// products do (their outputs are activations and gradients, each written once a step).
double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int iters, CpuMatmul mode = CpuMatmul::fp32,
                            int outputs = 1);

}  // namespace s2s

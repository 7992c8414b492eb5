// Causal attention's products in 32 x 32 blocks (see attention_blocks.h).
//
// AMX tiles: palette 1, all eight 16 rows x 64 bytes. A 32 x 32 block of fp32 results is four
// accumulator tiles (0-3), fed by two tiles of the left operand (4, 5: 16 rows x 32 bf16 each) and
// two of the right (6, 7) in the "VNNI" form tdpbf16ps reads: 16 rows, each a pair of consecutive
// k values for 16 columns. A head's keys and values (and, in the backward, its values, keys,
// queries and output gradient) are put in that form once (pack_keys, pack_values); queries,
// probabilities and their gradients are read as left operands as they lie, row-major, except where
// a product reads a square transposed (dv = p^T dout, dk = dpre^T q): a 32-column strip of it is
// packed as transposed tiles first (pack_strip_t). Without AMX, AVX512-BF16's vdpbf16ps takes the
// same packed operands (Block below): a right operand's tile row is one zmm register of 16 pairs.
#include "cpu/attention_blocks.h"

#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"
#include "cpu/vecmath.h"

#define S2S_BLOCKS_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace s2s {

namespace {

bool amx_permitted() {
  static const bool ok = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return false;
    // Linux hands out the tiles' register state only to a process that asks (ARCH_REQ_XCOMP_PERM
    // for XFEATURE_XTILEDATA); oneDNN asks too, and asking twice is harmless.
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

// What multiplies the blocks here (S2S_ATTENTION_BLOCKS, attention_blocks.h): none means the oneDNN
// path.
enum class Isa { none, amx, avx512 };
Isa block_isa() {
  static const Isa isa = [] {
    if (std::getenv("S2S_ATTENTION_AMX"))
      throw Error("S2S_ATTENTION_AMX was renamed: S2S_ATTENTION_BLOCKS=off (or auto, amx, avx512) sets "
                  "attention's path");
    const char* env = std::getenv("S2S_ATTENTION_BLOCKS");
    const std::string want = env && *env ? env : "auto";
    if (want == "off") return Isa::none;
    if (want == "amx") return amx_permitted() ? Isa::amx : Isa::none;
    if (want == "avx512") return have_avx512_bf16() ? Isa::avx512 : Isa::none;
    if (want != "auto")
      throw Error("S2S_ATTENTION_BLOCKS must be 'auto', 'amx', 'avx512' or 'off', got '" + want + "'");
    return amx_permitted() ? Isa::amx : have_avx512_bf16() ? Isa::avx512 : Isa::none;
  }();
  return isa;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

S2S_BLOCKS_TARGET void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// One thread's buffers for a head (T rounded up to Tp, a multiple of 32).
struct Work {
  HostArray<uint32_t> keys;     // [Tp / 16][hd / 32] tiles of 16 x 16 pairs
  HostArray<uint16_t> values;   // [Tp / 32][hd / 16] tiles of 16 x 16 pairs
  HostArray<float> scores;      // [32][Tp]: a block of rows' scores, then probabilities
  HostArray<uint16_t> probs;    // [32][Tp]: the block's probabilities in bf16
  HostArray<uint16_t> qpad;     // [32][hd]: the last, partial block of queries, zero-padded
  HostArray<float> opad;        // [32][hd]: the last block's output before its valid rows are copied
  HostArray<uint32_t> square_t; // [Tp / 32][2][16 x 16]: a 32-column strip of a square, transposed
  HostArray<uint32_t> keys_v;   // backward: the values packed as pack_keys packs the keys
  HostArray<float> probs_f;     // backward: [32][T] a block's probabilities, made again
  HostArray<uint16_t> dout;     // backward: [T][hd] the head's output gradient in bf16
  HostArray<uint16_t> dpre;     // backward: [T][T] the gradient of the scores in bf16
  HostArray<uint16_t> probs_sq; // backward: [T][T] the probabilities in bf16, where none were kept
  void fit_backward(int T, int hd, bool need_probs) {
    keys_v.reserve((size_t)T * hd / 2);
    probs_f.reserve((size_t)32 * T);
    dout.reserve((size_t)T * hd);
    dpre.reserve((size_t)T * T);
    if (need_probs) probs_sq.reserve((size_t)T * T);
  }
  void fit(int Tp, int hd) {
    square_t.reserve((size_t)Tp * 16);
    keys.reserve((size_t)Tp * hd / 2);
    values.reserve((size_t)Tp * hd);
    scores.reserve((size_t)32 * Tp);
    probs.reserve((size_t)32 * Tp);
    qpad.reserve((size_t)32 * hd);
    opad.reserve((size_t)32 * hd);
  }
};

// GCC 12 takes the deliberately undefined filler inside AVX-512's shuffle and cast intrinsics
// (_mm512_undefined_epi32) for an uninitialised read (an error under the tests' -Werror).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The 16 x 16 matrix of 32-bit values in r[0..15] (a row each), transposed in place.
S2S_BLOCKS_TARGET inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
  }
}

// keys [T][hd] bf16 -> the right operand of scores = q k^T: tile (jb, s) holds, in row rr and
// column jj, the pair (k[j][d], k[j][d + 1]) of key j = 16 jb + jj at d = 32 s + 2 rr (zero past T):
// the transpose of the 16 x 16 block of pairs that keys 16 jb.. hold at pairs 16 s..
S2S_BLOCKS_TARGET void pack_keys(uint32_t* dst, const uint16_t* k, int T, int Tp, int hd) {
  const int S = hd / 32, half = hd / 2;
  const uint32_t* kd = reinterpret_cast<const uint32_t*>(k);  // a key's hd values as hd / 2 pairs
  __m512i r[16];
  for (int jb = 0; jb < Tp / 16; jb++)
    for (int s = 0; s < S; s++) {
      for (int jj = 0; jj < 16; jj++) {
        const int j = jb * 16 + jj;
        r[jj] = j < T ? _mm512_loadu_si512(kd + (int64_t)j * half + s * 16) : _mm512_setzero_si512();
      }
      transpose16(r);
      uint32_t* tile = dst + ((int64_t)jb * S + s) * 256;
      for (int rr = 0; rr < 16; rr++) _mm512_storeu_si512(tile + rr * 16, r[rr]);
    }
}

// values [T][hd] bf16 -> the right operand of out = p v: tile (ks, nb) holds, in row rr and column
// dd, the pair (v[j][d], v[j + 1][d]) at j = 32 ks + 2 rr, d = 16 nb + dd (zero past T): two rows'
// 16 values interleaved.
S2S_BLOCKS_TARGET void pack_values(uint16_t* dst, const uint16_t* v, int T, int Tp, int hd) {
  const int NB = hd / 16;
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                        8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  for (int j = 0; j < Tp; j += 2) {
    const int ks = j / 32, rr = (j % 32) / 2;
    const uint16_t* v0 = v + (int64_t)j * hd;
    for (int nb = 0; nb < NB; nb++) {
      const __m256i a = j < T ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + nb * 16)) : _mm256_setzero_si256();
      const __m256i b =
          j + 1 < T ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + hd + nb * 16)) : _mm256_setzero_si256();
      const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
      _mm512_storeu_si512(dst + ((int64_t)ks * NB + nb) * 512 + rr * 32, _mm512_permutexvar_epi16(idx, both));
    }
  }
}

// The left operand of x^T y for a lower-triangular square x [T][T] bf16 (zero above its diagonal,
// as the probabilities and their gradient are), for output rows j0 .. j0 + 31: for each block of 32
// rows i (ks, from the diagonal's down to T), two tiles of 16 rows j and 16 pairs (x[i][j],
// x[i + 1][j]): two rows of x interleaved, then transposed as 32-bit pairs.
S2S_BLOCKS_TARGET void pack_strip_t(uint32_t* dst, const uint16_t* x, int T, int j0) {
  alignas(64) static const uint16_t kLow[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                8,  40, 9,  41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static const uint16_t kHigh[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                                 24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i lo = _mm512_load_si512(kLow), hi = _mm512_load_si512(kHigh);
  __m512i a[16], b[16];
  for (int ks = j0 / 32; ks < T / 32; ks++) {
    for (int rr = 0; rr < 16; rr++) {
      const uint16_t* row = x + (int64_t)(ks * 32 + 2 * rr) * T + j0;
      const __m512i x0 = _mm512_loadu_si512(row), x1 = _mm512_loadu_si512(row + T);
      a[rr] = _mm512_permutex2var_epi16(x0, lo, x1);  // columns j0 .. j0 + 15
      b[rr] = _mm512_permutex2var_epi16(x0, hi, x1);  // columns j0 + 16 .. j0 + 31
    }
    transpose16(a);
    transpose16(b);
    uint32_t* tiles = dst + (int64_t)ks * 512;
    for (int r = 0; r < 16; r++) {
      _mm512_storeu_si512(tiles + r * 16, a[r]);
      _mm512_storeu_si512(tiles + 256 + r * 16, b[r]);
    }
  }
}

#pragma GCC diagnostic pop

// n (a multiple of 16) fp32 values to bf16, rounding to nearest even as to_bf16 does.
S2S_BLOCKS_TARGET inline void to_bf16_row(uint16_t* dst, const float* src, int n) {
  for (int j = 0; j < n; j += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + j)));
}

// One 32 x 32 block of fp32 results, stored as rows ldc apart: the sum over steps s < n of a 32 x 32
// bf16 product, step(s) giving its left operand (32 bf16 rows lda_bytes apart) and its right
// operand's two 16-column tiles (16 rows of 16 pairs each):
//   c[m][n] = sum over s, kk of a[m][2kk] b[kk][n][0] + a[m][2kk + 1] b[kk][n][1]   (tdpbf16ps's sum)
// On AMX the block is tiles 0-3 (fed by 4-7); with AVX512-BF16 it is eight rows at a time in
// registers, their sixteen accumulators and b's two rows held, a's pairs broadcast from memory.
struct Step {
  const uint16_t* a;
  int64_t lda_bytes;
  const void *b0, *b1;
};
template <Isa I>
struct Block;

template <>
struct Block<Isa::amx> {
  template <class F>
  S2S_BLOCKS_TARGET static void product(float* c, int64_t ldc, int n, F&& step) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int s = 0; s < n; s++) {
      const Step x = step(s);
      _tile_loadd(4, x.a, x.lda_bytes);
      _tile_loadd(5, reinterpret_cast<const char*>(x.a) + 16 * x.lda_bytes, x.lda_bytes);
      _tile_loadd(6, x.b0, 64);
      _tile_loadd(7, x.b1, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, ldc * 4);
    _tile_stored(1, c + 16, ldc * 4);
    _tile_stored(2, c + 16 * ldc, ldc * 4);
    _tile_stored(3, c + 16 * ldc + 16, ldc * 4);
  }
};

template <>
struct Block<Isa::avx512> {
  template <class F>
  S2S_BLOCKS_TARGET static void product(float* c, int64_t ldc, int n, F&& step) {
    for (int m0 = 0; m0 < 32; m0 += 8) {
      __m512 c0[8], c1[8];
      for (int r = 0; r < 8; r++) c0[r] = c1[r] = _mm512_setzero_ps();
      for (int s = 0; s < n; s++) {
        const Step x = step(s);
        const char* a = reinterpret_cast<const char*>(x.a) + m0 * x.lda_bytes;
        const char* b0 = static_cast<const char*>(x.b0);
        const char* b1 = static_cast<const char*>(x.b1);
        for (int kk = 0; kk < 16; kk++) {
          const __m512bh y0 = (__m512bh)_mm512_loadu_si512(b0 + kk * 64);
          const __m512bh y1 = (__m512bh)_mm512_loadu_si512(b1 + kk * 64);
          for (int r = 0; r < 8; r++) {
            int32_t pair;
            std::memcpy(&pair, a + r * x.lda_bytes + kk * 4, 4);
            const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            c0[r] = _mm512_dpbf16_ps(c0[r], av, y0);
            c1[r] = _mm512_dpbf16_ps(c1[r], av, y1);
          }
        }
      }
      for (int r = 0; r < 8; r++) {
        _mm512_storeu_ps(c + (m0 + r) * ldc, c0[r]);
        _mm512_storeu_ps(c + (m0 + r) * ldc + 16, c1[r]);
      }
    }
  }
};

// c[32][ncols] (row stride ldc) = a[32][hd] (bf16 rows lda apart) times the packed keys' columns
// j < ncols (pack_keys): scores against keys, or the gradient against values (packed the same way).
template <Isa I>
S2S_BLOCKS_TARGET inline void rows_times_keys(float* c, int64_t ldc, const uint16_t* a, int64_t lda,
                                              const uint32_t* keys, int ncols, int hd) {
  const int S = hd / 32;
  for (int j0 = 0; j0 < ncols; j0 += 32) {
    const uint32_t* kt = keys + (int64_t)(j0 / 16) * S * 256;
    Block<I>::product(c + j0, ldc, S,
                      [&](int s) { return Step{a + s * 32, lda * 2, kt + s * 256, kt + (S + s) * 256}; });
  }
}

// c[32][hd] (row stride ldc) = a[32][kcols] (bf16 rows lda apart: probabilities, or their
// gradient) times the packed rows j < kcols (pack_values) of values, or of keys.
template <Isa I>
S2S_BLOCKS_TARGET inline void rows_times_values(float* c, int64_t ldc, const uint16_t* a, int64_t lda,
                                             const uint16_t* values, int kcols, int hd) {
  const int NB = hd / 16;
  for (int d0 = 0; d0 < hd; d0 += 32)
    Block<I>::product(c + d0, ldc, kcols / 32, [&](int ks) {
      const uint16_t* vt = values + ((int64_t)ks * NB + d0 / 16) * 512;
      return Step{a + ks * 32, lda * 2, vt, vt + 512};
    });
}

// dst[0, n) <- src[0, upto) and zeros after, with non-temporal stores: the probabilities are read
// by the backward, after every later layer has been through the caches, so writing them around the
// caches spares each line's read for ownership. dst 64-byte aligned; upto and n multiples of 32.
S2S_BLOCKS_TARGET inline void stream_row(float* dst, const float* src, int upto, int n) {
  int j = 0;
  for (; j < upto; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
  for (; j < n; j += 16) _mm512_stream_ps(dst + j, _mm512_setzero_ps());
}
S2S_BLOCKS_TARGET inline void stream_row(uint16_t* dst, const uint16_t* src, int upto, int n) {
  int j = 0;
  for (; j < upto; j += 32) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + j), _mm512_loadu_si512(src + j));
  for (; j < n; j += 32) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + j), _mm512_setzero_si512());
}

// Asks for the lines of `rows` rows of `bytes` each, `ld` bytes apart from p, for writing: the
// products' tile stores to lines not in the cache (a gradient's rows in dqkv, written once) held
// the core up for each line's round trip to memory, so each block of 32 rows asks for the next
// block's lines first (dq: 73-90 -> 44-46 thousand cycles a head on the 10m shapes); the forward's
// output rows likewise.
inline void prefetch_rows_for_write(const void* p, int64_t ld, int rows, int bytes) {
  for (int r = 0; r < rows; r++)
    for (int b = 0; b < bytes; b += 64) __builtin_prefetch(static_cast<const char*>(p) + r * ld + b, 1);
}

// Row i of a block of scores (a: its first ncols), in place: the causal softmax of scale a[j] over
// j <= i, zeros after it; returns the max and 1 / sum it took.
S2S_BLOCKS_TARGET inline RowSoftmax softmax_row(float* a, int i, int ncols, float scale) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int j = 0; j <= i; j++) {
    a[j] *= scale;
    mx = a[j] > mx ? a[j] : mx;
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j <= i; j++) {
    a[j] = fast_exp(a[j] - mx);
    sum += a[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int j = 0; j <= i; j++) a[j] *= inv;
  for (int j = i + 1; j < ncols; j++) a[j] = 0.0f;
  return {mx, inv};
}

// The same row made again from the scores and what softmax_row returned: the same operations on
// the same values, so the same bits.
S2S_BLOCKS_TARGET inline void softmax_row_again(float* a, int i, int ncols, float scale, RowSoftmax st) {
#pragma omp simd
  for (int j = 0; j <= i; j++) a[j] *= scale;
#pragma omp simd
  for (int j = 0; j <= i; j++) a[j] = fast_exp(a[j] - st.max);
#pragma omp simd
  for (int j = 0; j <= i; j++) a[j] *= st.inv_sum;
  for (int j = i + 1; j < ncols; j++) a[j] = 0.0f;
}

// One head: out_h is its first output row's first column (rows QW apart), copy_h the same place in
// the output's bf16 copy (null: none is made; else it is made instead of out), att_h / p_h its
// T x T probabilities (p_h may be null), or, when stats_h is not null, its rows' softmax_row
// results there instead (neither square is written); att_h null: neither (no backward follows).
template <Isa I>
S2S_BLOCKS_TARGET void head_forward(float* out_h, uint16_t* copy_h, int64_t QW, float* att_h, uint16_t* p_h,
                                 RowSoftmax* stats_h, const uint16_t* q, const uint16_t* k, const uint16_t* v, int T,
                                 int hd, float scale, Work& w) {
  const int Tp = (T + 31) / 32 * 32;
  // rows of att (and of p) start 64 bytes apart and fill whole lines
  const bool stream = T % 32 == 0 && reinterpret_cast<uintptr_t>(att_h) % 64 == 0 &&
                      (!p_h || reinterpret_cast<uintptr_t>(p_h) % 64 == 0);
  pack_keys(w.keys.data(), k, T, Tp, hd);
  pack_values(w.values.data(), v, T, Tp, hd);
  float* sc = w.scores.data();
  uint16_t* pr = w.probs.data();
  // the rows each block writes: the output's bf16 copy, or the output
  char* dst = copy_h ? reinterpret_cast<char*>(copy_h) : reinterpret_cast<char*>(out_h);
  const int64_t dst_ld = QW * (copy_h ? (int64_t)sizeof(uint16_t) : (int64_t)sizeof(float));
  const int dst_bytes = hd * (copy_h ? (int)sizeof(uint16_t) : (int)sizeof(float));
  prefetch_rows_for_write(dst, dst_ld, std::min(32, T), dst_bytes);
  for (int i0 = 0; i0 < T; i0 += 32) {
    const int rows = std::min(32, T - i0);
    const int ncols = i0 + 32;  // causal: these rows attend to keys j < i0 + 32 only (ncols <= Tp)
    if (i0 + 32 < T) prefetch_rows_for_write(dst + (i0 + 32) * dst_ld, dst_ld, std::min(32, T - i0 - 32), dst_bytes);
    const uint16_t* qa = q + (int64_t)i0 * hd;
    if (rows < 32) {
      std::memset(w.qpad.data(), 0, (size_t)32 * hd * sizeof(uint16_t));
      std::memcpy(w.qpad.data(), qa, (size_t)rows * hd * sizeof(uint16_t));
      qa = w.qpad.data();
    }
    // scores = q k^T for the blocks of keys on or left of the diagonal
    rows_times_keys<I>(sc, Tp, qa, hd, w.keys.data(), ncols, hd);
    // softmax over j <= i, as forward_rows in attention.cc computes it
    for (int r = 0; r < rows; r++) {
      const int i = i0 + r;
      float* a = sc + (int64_t)r * Tp;
      const RowSoftmax st = softmax_row(a, i, ncols, scale);
      uint16_t* prow = pr + (int64_t)r * Tp;
      to_bf16_row(prow, a, ncols);
      if (stats_h) {  // the backward makes the row again from these
        stats_h[i] = st;
        continue;
      }
      if (!att_h) continue;
      float* att_row = att_h + (int64_t)i * T;
      const int upto = std::min(ncols, T);
      uint16_t* kept = p_h ? p_h + (int64_t)i * T : nullptr;
      if (stream) {
        stream_row(att_row, a, upto, T);
        if (kept) stream_row(kept, prow, upto, T);
      } else {
        std::memcpy(att_row, a, (size_t)upto * sizeof(float));
        if (upto < T) std::memset(att_row + upto, 0, (size_t)(T - upto) * sizeof(float));
        if (kept) {
          std::memcpy(kept, prow, (size_t)upto * sizeof(uint16_t));
          if (upto < T) std::memset(kept + upto, 0, (size_t)(T - upto) * sizeof(uint16_t));
        }
      }
    }
    for (int r = rows; r < 32; r++) std::memset(pr + (int64_t)r * Tp, 0, (size_t)ncols * sizeof(uint16_t));
    // out = p v over the same keys; with copy_h, the output projection's bf16 copy of these rows
    // alone, from the block in L1 (the projection is all that reads them)
    if (rows == 32 && !copy_h) {
      rows_times_values<I>(out_h + (int64_t)i0 * QW, QW, pr, Tp, w.values.data(), ncols, hd);
    } else {
      rows_times_values<I>(w.opad.data(), hd, pr, Tp, w.values.data(), ncols, hd);
      for (int r = 0; r < rows; r++) {
        const float* o = w.opad.data() + (int64_t)r * hd;
        if (copy_h)
          to_bf16_row(copy_h + (int64_t)(i0 + r) * QW, o, hd);
        else
          std::memcpy(out_h + (int64_t)(i0 + r) * QW, o, (size_t)hd * sizeof(float));
      }
    }
  }
}

// The end of a thread's share: its streamed stores are made visible (before the region's barrier
// lets another thread read them) and its tiles handed back.
S2S_BLOCKS_TARGET void finish_thread(Isa isa) {
  _mm_sfence();
  if (isa == Isa::amx) _tile_release();
}

// per_head(bh, work) for each of BH heads, spread over the threads, each with its tiles configured
// (AMX) and its buffers fit for Tp positions.
template <typename F>
void over_heads(Isa isa, int64_t BH, int Tp, int hd, int64_t work, F&& per_head) {
#pragma omp parallel if (work >= kMinParallelWork)
  {
    thread_local Work w;
    w.fit(Tp, hd);
    if (isa == Isa::amx) configure_tiles();
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; bh++) per_head(bh, w);
    finish_thread(isa);
  }
}

S2S_BLOCKS_TARGET void scale_block(float* c, int64_t ldc, int rows, int cols, float scale) {
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < cols; j += 16) {
      float* x = c + r * ldc + j;
      _mm512_storeu_ps(x, _mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(scale)));
    }
}

// c [T][hd] (rows ldc apart) = scale sq^T x, for a square sq [T][T] bf16 that is zero above its
// diagonal (only the blocks on and below it are read) and x's rows packed by pack_values in xv.
template <Isa I>
S2S_BLOCKS_TARGET void transposed_times(float* c, int64_t ldc, const uint16_t* sq, const uint16_t* xv, int T, int hd,
                                     float scale, Work& w) {
  const int NB = hd / 16;
  const int64_t ld = ldc * (int64_t)sizeof(float);
  prefetch_rows_for_write(c, ld, 32, hd * (int)sizeof(float));
  for (int j0 = 0; j0 < T; j0 += 32) {
    if (j0 + 32 < T) prefetch_rows_for_write(c + (int64_t)(j0 + 32) * ldc, ld, 32, hd * (int)sizeof(float));
    pack_strip_t(w.square_t.data(), sq, T, j0);
    float* cj = c + (int64_t)j0 * ldc;
    const int k0 = j0 / 32;  // rows i >= j only: above the diagonal is zero
    for (int d0 = 0; d0 < hd; d0 += 32)
      Block<I>::product(cj + d0, ldc, T / 32 - k0, [&](int s) {
        const int ks = k0 + s;
        const uint16_t* b = xv + ((int64_t)ks * NB + d0 / 16) * 512;
        return Step{reinterpret_cast<const uint16_t*>(w.square_t.data() + (int64_t)ks * 512), 64, b, b + 512};
      });
    if (scale != 1.0f) scale_block(cj, ldc, 32, hd, scale);
  }
}

// Where one head's three gradients go: its first row, and the distance between rows.
struct HeadGrads {
  float *dq, *dk, *dv;
  int64_t dq_row, dk_row, dv_row;
};

// One head's whole backward (T a multiple of 32), its squares in the thread's caches throughout:
// for each block of 32 query rows, the probabilities' gradient dout v^T, the softmax's backward
// (dpre, in bf16 as the products read it) and dq = scale dpre k; then dv = p^T dout and
// dk = scale dpre^T q. dout_h: the head's output gradient, fp32 rows ld apart; att_h: its fp32
// probabilities; p_h: the same in bf16 (null: made here from att_h).
template <Isa I>
S2S_BLOCKS_TARGET void head_backward(const HeadGrads& g, const float* dout_h, int64_t ld, const float* att_h,
                                  const uint16_t* p_h, const RowSoftmax* stats_h, const uint16_t* q, const uint16_t* k,
                                  const uint16_t* v, int T, int hd, float scale, Work& w) {
  uint16_t* dob = w.dout.data();
  for (int t = 0; t < T; t++) to_bf16_row(dob + (int64_t)t * hd, dout_h + t * ld, hd);
  if (!p_h && !stats_h) {  // each row up to the end of its diagonal block: all the products read
    uint16_t* ps = w.probs_sq.data();
    for (int i = 0; i < T; i++) to_bf16_row(ps + (int64_t)i * T, att_h + (int64_t)i * T, (i / 32 + 1) * 32);
    p_h = ps;
  }
  if (stats_h) pack_keys(w.keys.data(), k, T, T, hd);  // the scores made again, as the forward made them
  pack_keys(w.keys_v.data(), v, T, T, hd);  // v^T as the right operand, as k^T is in the forward
  pack_values(w.values.data(), k, T, T, hd);
  float* sc = w.scores.data();
  uint16_t* dp = w.dpre.data();
  uint16_t* ps = w.probs_sq.data();
  const int64_t dq_ld = g.dq_row * (int64_t)sizeof(float);
  prefetch_rows_for_write(g.dq, dq_ld, 32, hd * (int)sizeof(float));
  for (int i0 = 0; i0 < T; i0 += 32) {
    const int ncols = i0 + 32;
    if (i0 + 32 < T) prefetch_rows_for_write(g.dq + (int64_t)(i0 + 32) * g.dq_row, dq_ld, 32, hd * (int)sizeof(float));
    const float* probs = stats_h ? nullptr : att_h + (int64_t)i0 * T;  // the block's rows, T apart
    if (stats_h) {
      float* pf = w.probs_f.data();
      rows_times_keys<I>(pf, T, q + (int64_t)i0 * hd, hd, w.keys.data(), ncols, hd);
      for (int r = 0; r < 32; r++) {
        softmax_row_again(pf + (int64_t)r * T, i0 + r, ncols, scale, stats_h[i0 + r]);
        to_bf16_row(ps + (int64_t)(i0 + r) * T, pf + (int64_t)r * T, ncols);
      }
      probs = pf;
    }
    rows_times_keys<I>(sc, T, dob + (int64_t)i0 * hd, hd, w.keys_v.data(), ncols, hd);
    for (int r = 0; r < 32; r++) {
      const int i = i0 + r;
      softmax_backward_row(probs + (int64_t)r * T, sc + (int64_t)r * T, i, ncols);
      to_bf16_row(dp + (int64_t)i * T, sc + (int64_t)r * T, ncols);
    }
    float* c = g.dq + (int64_t)i0 * g.dq_row;
    rows_times_values<I>(c, g.dq_row, dp + (int64_t)i0 * T, T, w.values.data(), ncols, hd);
    scale_block(c, g.dq_row, 32, hd, scale);
  }
  pack_values(w.values.data(), dob, T, T, hd);
  transposed_times<I>(g.dv, g.dv_row, stats_h ? ps : p_h, w.values.data(), T, hd, 1.0f, w);
  pack_values(w.values.data(), q, T, T, hd);
  transposed_times<I>(g.dk, g.dk_row, dp, w.values.data(), T, hd, scale, w);
}

}  // namespace

bool attention_blocks_usable(const AttnShape& s, CpuMatmul mode) {
  return mode == CpuMatmul::bf16 && s.hd % 32 == 0 && s.hd > 0 && block_isa() != Isa::none;
}

void attention_forward_blocks(float* out, float* att, uint16_t* p, RowSoftmax* stats, const uint16_t* q,
                           const uint16_t* k, const uint16_t* v, const AttnShape& s) {
  const int T = s.T, NH = s.NH, hd = s.hd;
  const int64_t QW = s.q_width(), BH = (int64_t)s.B * NH, head = (int64_t)T * hd, square = (int64_t)T * T;
  const float scale = 1.0f / std::sqrt((float)hd);
  // in a training forward, only the next matmul's copy of out (operand_instead_here: bf16, out's layout)
  uint16_t* copy = static_cast<uint16_t*>(operand_instead_here(out, (int64_t)s.B * T * QW));
  const Isa isa = block_isa();
  over_heads(isa, BH, (T + 31) / 32 * 32, hd, BH * square * hd, [&](int64_t bh, Work& w) {
    const int64_t b = bh / NH, h = bh % NH, at = b * T * QW + h * hd;
    auto one_head = isa == Isa::amx ? head_forward<Isa::amx> : head_forward<Isa::avx512>;
    one_head(out + at, copy ? copy + at : nullptr, QW, att ? att + bh * square : nullptr, p ? p + bh * square : nullptr,
                 stats ? stats + bh * T : nullptr, q + bh * head, k + bh * head, v + bh * head, T, hd, scale, w);
  });
}

bool attention_blocks_backward_usable(const AttnShape& s, CpuMatmul mode) {
  return s.T % 32 == 0 && attention_blocks_usable(s, mode);
}

void attention_backward_blocks(const HeadRows& dq, const HeadRows& dk, const HeadRows& dv, const float* dout,
                            const float* att, const uint16_t* p, const RowSoftmax* stats, const uint16_t* q,
                            const uint16_t* k, const uint16_t* v, const AttnShape& s) {
  const int T = s.T, NH = s.NH, hd = s.hd;
  const int64_t QW = s.q_width(), BH = (int64_t)s.B * NH, head = (int64_t)T * hd, square = (int64_t)T * T;
  const float scale = 1.0f / std::sqrt((float)hd);
  const Isa isa = block_isa();
  over_heads(isa, BH, T, hd, BH * square * hd, [&](int64_t bh, Work& w) {
    w.fit_backward(T, hd, p == nullptr);  // a bf16 square of probabilities is made here then
    const HeadGrads g{dq.at(bh), dk.at(bh), dv.at(bh), dq.row, dk.row, dv.row};
    const float* dout_h = dout + (bh / NH) * T * QW + (bh % NH) * hd;
    auto one_head = isa == Isa::amx ? head_backward<Isa::amx> : head_backward<Isa::avx512>;
    one_head(g, dout_h, QW, att ? att + bh * square : nullptr, p ? p + bh * square : nullptr, stats ? stats + bh * T : nullptr,
                  q + bh * head, k + bh * head, v + bh * head, T, hd, scale, w);
  });
}

}  // namespace s2s

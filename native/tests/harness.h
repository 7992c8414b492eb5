// A small test harness for the engine's C++ tests (no external framework, so the GPU machines
// need nothing but CMake and a compiler): TEST registers a case, the EXPECT macros record
// failures, and main() runs every case and exits non-zero when one failed.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace harness {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { cases().push_back({name, std::move(fn)}); }
};

// Normalised error between a result and its reference: max |a - b| / max(max |b|, 1e-6); infinite
// where an element is NaN (fmax would skip it) or infinite.
inline double rel_error(const float* a, const float* b, size_t n) {
  double md = 0, mb = 0;
  for (size_t i = 0; i < n; i++) {
    double d = std::fabs((double)a[i] - b[i]);
    if (!std::isfinite(d)) return INFINITY;
    md = std::fmax(md, d);
    mb = std::fmax(mb, std::fabs((double)b[i]));
  }
  return md / std::fmax(mb, 1e-6);
}

inline void expect_close(const char* what, const float* a, const float* b, size_t n, double tol,
                         const char* file, int line) {
  double e = rel_error(a, b, n);
  if (!(e <= tol)) {
    std::printf("  FAIL %s:%d  %s: normalised error %.3g > %.3g\n", file, line, what, e, tol);
    failures()++;
  }
}

// Element by element: |a - b| <= atol + rtol * |b| everywhere (a small entry wrong by a lot cannot
// hide under the tensor's largest value, as it can in rel_error).
inline void expect_close_each(const char* what, const float* a, const float* b, size_t n, double atol, double rtol,
                              const char* file, int line) {
  for (size_t i = 0; i < n; i++) {
    double d = std::fabs((double)a[i] - b[i]);
    if (!(d <= atol + rtol * std::fabs((double)b[i]))) {
      std::printf("  FAIL %s:%d  %s: element %zu is %.9g, want %.9g\n", file, line, what, i, a[i], b[i]);
      failures()++;
      return;
    }
  }
}

// n token ids drawn uniformly from [0, V).
inline std::vector<int32_t> random_tokens(size_t n, int V, uint64_t seed) {
  s2s::Rng rng(seed, 3);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(rng.next_u64() % (uint64_t)V);
  return t;
}

// Fresh random values in [lo, hi), never all zeros.
inline void fill_uniform(float* p, size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  s2s::Rng rng(seed, 7);
  for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng.uniform();
}

// Runs every case, or those whose name contains S2S_TEST_FILTER when it is set.
//
// Models made by the cases multiply in fp32 on the CPU whatever S2S_CPU_PRECISION says (auto
// would pick bf16 on a processor with AMX or AVX512-BF16): the whole-model checks compare against
// fp32 and float64 references at fp32 tolerances. bf16 on the CPU is checked where it is asked
// for by name: test_ops' cpu-bf16 cases, and test_model's bf16 whole-model case.
inline int run_all() {
  setenv("S2S_CPU_PRECISION", "fp32", 1);
  const char* filter = std::getenv("S2S_TEST_FILTER");
  size_t ran = 0;
  for (auto& c : cases()) {
    if (filter && *filter && !std::strstr(c.name, filter)) continue;
    ran++;
    int before = failures();
    std::printf("[ RUN  ] %s\n", c.name);
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::printf("  FAIL unexpected exception: %s\n", e.what());
      failures()++;
    }
    std::printf("[ %s ] %s\n", failures() == before ? " OK " : "FAIL", c.name);
  }
  std::printf("%zu cases, %d failures\n", ran, failures());
  if (ran == 0) {
    std::printf("no case matches S2S_TEST_FILTER=%s\n", filter ? filter : "");
    return 1;
  }
  return failures() == 0 ? 0 : 1;
}

}  // namespace harness

#define TEST(name)                                                          \
  static void name();                                                       \
  static harness::Register name##_reg(#name, name);                         \
  static void name()
#define EXPECT_CLOSE(a, b, n, tol) harness::expect_close(#a " vs " #b, a, b, n, tol, __FILE__, __LINE__)
#define EXPECT_CLOSE_EACH(a, b, n, atol, rtol) \
  harness::expect_close_each(#a " vs " #b, a, b, n, atol, rtol, __FILE__, __LINE__)
#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::printf("  FAIL %s:%d  expected %s\n", __FILE__, __LINE__, #cond); \
      harness::failures()++;                                                \
    }                                                                       \
  } while (0)
#define EXPECT_THROWS_WITH(stmt, substr)                                                      \
  do {                                                                                        \
    bool thrown_ = false;                                                                     \
    try {                                                                                     \
      stmt;                                                                                   \
    } catch (const s2s::Error& e_) {                                                          \
      thrown_ = true;                                                                         \
      if (std::string(e_.what()).find(substr) == std::string::npos) {                         \
        std::printf("  FAIL %s:%d  message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, e_.what(), substr); \
        harness::failures()++;                                                                \
      }                                                                                       \
    }                                                                                         \
    if (!thrown_) {                                                                           \
      std::printf("  FAIL %s:%d  %s did not throw\n", __FILE__, __LINE__, #stmt);            \
      harness::failures()++;                                                                  \
    }                                                                                         \
  } while (0)

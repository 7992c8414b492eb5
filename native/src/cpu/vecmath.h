// exp and tanh written so that the compiler vectorises them inside `#pragma omp simd` loops
// (std::exp is a scalar libm call, and softmax over the vocabulary and attention rows spends most
// of its time there). Accuracy: within 2 ulp of expf over the float range; the kernel tests
// compare every user against the double-precision reference loops.
#pragma once

#include <cstdint>
#include <cstring>
#include <cmath>

namespace s2s {

#pragma omp declare simd notinbranch
inline float fast_exp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 split in two parts for accuracy
  float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  float y = p * scale;
  return x < lo ? 0.0f : y;  // below the float range: exp underflows to 0 (also for -inf)
}

#pragma omp declare simd notinbranch
inline float fast_tanh(float x) {
  // tanh(x) = 1 - 2 / (exp(2x) + 1); saturates correctly at both ends.
  return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f);
}

// Asks for the n floats from p (a line at a time) ahead of a loop that reads them once: streaming
// ops read their next block while computing this one (the hardware prefetcher lags them here).
inline void prefetch_floats(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}
// Row n + kRowsAhead of rows [N, C] at base, where a row loop is at row n (nothing past row N).
constexpr int64_t kRowsAhead = 2;
inline void prefetch_row_ahead(const float* base, int64_t n, int64_t N, int64_t C) {
  if (n + kRowsAhead < N) prefetch_floats(base + (n + kRowsAhead) * C, C);
}

}  // namespace s2s

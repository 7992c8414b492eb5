// Buffers, thread control and the RNG's normal draw.
#include "common.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

namespace s2s {

bool Buffer::reserve(size_t n) {
  if (n <= size_) return false;
  resize(n);
  return true;
}

void Buffer::resize(size_t n) {
  if (n == size_) return;
  release();
  if (n == 0) return;
  size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!data_) throw Error("out of memory allocating " + std::to_string(bytes >> 20) + " MiB");
  size_ = n;
}

void Buffer::resize_zeroed(size_t n) {
  release();
  if (n == 0) return;
  data_ = static_cast<float*>(std::calloc(n, sizeof(float)));
  if (!data_) throw Error("out of memory allocating " + std::to_string((n * sizeof(float)) >> 20) + " MiB");
  size_ = n;
}

void Buffer::release() {
  std::free(data_);
  data_ = nullptr;
  size_ = 0;
}

static int default_threads() {
  if (const char* env = std::getenv("S2S_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return omp_get_num_procs();
}

static std::atomic<int> g_threads{0};

void set_num_threads(int n) { g_threads.store(n > 0 ? n : default_threads()); }

int get_num_threads() {
  int n = g_threads.load();
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

ThreadScope::ThreadScope() { omp_set_num_threads(get_num_threads()); }

double Rng::normal() {
  double u1 = uniform_double(), u2 = uniform_double();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace s2s

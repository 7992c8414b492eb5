// Host allocation, thread control and the RNG's normal draw.
#include "common.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

namespace s2s {

void* host_alloc(size_t bytes, bool zeroed) {
  void* p = zeroed ? std::calloc(bytes, 1) : std::aligned_alloc(64, ((bytes + 63) / 64) * 64);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes >> 20) + " MiB");
  return p;
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

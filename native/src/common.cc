// Host allocation, thread control and the RNG's normal draw.
#include "common.h"

#include <omp.h>
#include <sys/mman.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

namespace s2s {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
size_t huge_length(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }
}  // namespace

void* host_alloc(size_t bytes, bool zeroed) {
  if (bytes >= kHugeFrom) {
    // anonymous pages are zero, so `zeroed` costs nothing here; over-map by a huge page and trim
    // both ends to get 2 MiB alignment
    const size_t len = huge_length(bytes);
    void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw Error("out of memory allocating " + std::to_string(bytes >> 20) + " MiB");
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const size_t tail = start + len + kHugePage - (aligned + len);
    if (tail) munmap(reinterpret_cast<void*>(aligned + len), tail);
#ifdef MADV_HUGEPAGE
    // advice only (failure is harmless); S2S_HUGE_PAGES=0 leaves the kernel's default
    static const bool huge = [] {
      const char* env = std::getenv("S2S_HUGE_PAGES");
      return !(env && std::strcmp(env, "0") == 0);
    }();
    if (huge) madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
#endif
    return reinterpret_cast<void*>(aligned);
  }
  void* p = zeroed ? std::calloc(bytes, 1) : std::aligned_alloc(64, ((bytes + 63) / 64) * 64);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes >> 20) + " MiB");
  return p;
}

void host_free(void* p, size_t bytes) {
  if (!p) return;
  if (bytes >= kHugeFrom) munmap(p, huge_length(bytes));
  else std::free(p);
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

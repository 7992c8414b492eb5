// The CUDA execution model, emulated on the CPU, so that the engine's kernels (src/cuda/*.cu, the
// same files nvcc compiles) run in CI, where there is no GPU, against the CPU reference.
//
// What it models: every thread of a block is a fiber with its own stack; __syncthreads() and
// every warp-synchronous call (shuffles, __syncwarp, WMMA) are rendezvous points that the
// scheduler releases only when every thread that must arrive has arrived, so a barrier or a
// shuffle reached by part of a block or warp is reported (with the kernel's name) instead of
// silently passing. Device memory comes from cudaMalloc (poisoned with 0xFF bytes, so a kernel
// that reads what nobody wrote sees NaN or -1), as does dynamic shared memory, and copies are
// checked against the allocations' bounds. Blocks run one after another, in a seeded order.
// Static __shared__ variables are function-local statics in one linker section, refilled with
// 0xFF bytes before each block (but not bounds-checked).
//
// What it does not model: timing, memory coalescing, bank conflicts, races between blocks, or the
// rounding of the GPU's approximate intrinsics (__expf is expf). It is a test of indexing,
// synchronisation and arithmetic; speed and the hardware's own rounding need a GPU
// (scripts/gpu-check.sh).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define S2S_CUDA_EMULATION 1

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace s2s_emu {

// The running thread's coordinates (valid inside a kernel).
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned lane_id();

// Rendezvous of the whole block (__syncthreads, at a source line: all threads must wait at the
// same one) and of the calling thread's warp; `what` names the call in an error.
void sync_block(const char* file, int line);
void sync_warp(const char* what);
// Stops the kernel with an error (a fault, as the GPU would report one at the next check).
[[noreturn]] void fault(const char* what);

// The 8-byte slot of each lane of the calling thread's warp, for exchanges.
uint64_t* warp_slots();
// After a warp rendezvous: the lanes that took part (bit i: lane i). Lanes that have exited, and
// lanes past the end of a block whose size is not a multiple of 32, never do.
uint32_t warp_live_lanes();
// A scratch area shared by the calling thread's warp (for WMMA), at least 4096 bytes.
void* warp_scratch();
// The launch's dynamic shared memory.
void* dynamic_shared_ptr();
template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_ptr());
}

// Runs body(ctx) as every thread of the grid; returns false (and records the error for
// cudaGetLastError) when the configuration is invalid or the kernel faulted.
bool run_grid(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, void (*body)(void*), void* ctx);

// Whether p lies inside (or just past the end of) memory from cudaMalloc.
bool is_device_pointer(const void* p);
// Whether [p, p + bytes) lies inside one allocation from cudaMalloc.
bool is_device_range(const void* p, size_t bytes);
// A kernel's pointer argument must be null or device memory (a host pointer faults on a GPU).
// (false, with the launch's error recorded, when it is neither: a host pointer faults on a GPU)
bool check_pointer_argument(const char* kernel, int index, const void* p);
template <typename T>
bool check_argument(const char* kernel, int index, const T& v) {
  if constexpr (std::is_pointer<T>::value) return check_pointer_argument(kernel, index, static_cast<const void*>(v));
  return true;
}

template <typename... P>
class Launch {
 public:
  Launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes = 0,
         void* stream = nullptr)
      : name_(name), kernel_(kernel), grid_(grid), block_(block), shared_(shared_bytes) {
    (void)stream;
  }
  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "a kernel launch takes exactly the kernel's arguments");
    // The arguments are copied once at launch, as CUDA copies them to the device; every thread
    // then gets its own by-value parameters from that copy.
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    bool ok = std::apply(
        [this](const auto&... p) {
          int i = 0;
          return (check_argument(name_, i++, p) && ...);
        },
        params);
    if (!ok) return;
    struct Ctx {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...>* params;
    } ctx{kernel_, &params};
    run_grid(name_, grid_, block_, shared_,
             [](void* c) {
               auto* x = static_cast<Ctx*>(c);
               std::apply(x->kernel, *x->params);
             },
             &ctx);
  }

 private:
  const char* name_;
  void (*kernel_)(P...);
  dim3 grid_, block_;
  size_t shared_;
};

template <typename T>
T shfl_xor(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move up to 8 bytes");
  if (mask != 0xffffffffu) fault("__shfl_xor_sync with a partial mask (the emulator supports full warps)");
  uint64_t* slot = warp_slots();
  unsigned lane = lane_id();
  std::memcpy(&slot[lane], &v, sizeof(T));
  sync_warp("__shfl_xor_sync");
  unsigned src = (lane ^ (unsigned)lane_mask) & 31u;
  // reading a lane that did not take part (exited, or past the block's end) is undefined on a GPU
  if (!(warp_live_lanes() >> src & 1u)) fault("__shfl_xor_sync reads a lane that has exited or does not exist");
  T r;
  std::memcpy(&r, &slot[src], sizeof(T));
  sync_warp("__shfl_xor_sync");  // every lane has read before a next exchange writes
  return r;
}

// Atomics (blocks run on one host thread, but the builtins keep them atomic should that change).
template <typename T>
T atomic_add(T* p, T v) {
  if constexpr (std::is_integral<T>::value) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
  } else {
    T old, sum;
    __atomic_load(p, &old, __ATOMIC_SEQ_CST);
    do {
      sum = old + v;
    } while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return old;
  }
}

}  // namespace s2s_emu

#define S2S_LAUNCH(kernel, ...) ::s2s_emu::Launch(#kernel, kernel, __VA_ARGS__)
#define S2S_DYNAMIC_SHARED(T, name) T* name = ::s2s_emu::dynamic_shared<T>()

// CUDA's qualifiers and built-in variables. A __shared__ variable is a function-local static that
// every thread of the block (all fibers of the one host thread) sees; they all live in one linker
// section, which the scheduler fills with 0xFF bytes before each block, as undefined as the GPU's.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static __attribute__((section("s2s_emu_shared")))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define threadIdx (::s2s_emu::thread_idx())
#define blockIdx (::s2s_emu::block_idx())
#define blockDim (::s2s_emu::block_dim())
#define gridDim (::s2s_emu::grid_dim())

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::s2s_emu::sync_block(file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) ::s2s_emu::fault("__syncwarp with a partial mask (the emulator supports full warps)");
  ::s2s_emu::sync_warp("__syncwarp");
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  return ::s2s_emu::shfl_xor(mask, v, lane_mask);
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  T v;
  __atomic_load(p, &v, __ATOMIC_SEQ_CST);
  return v;
}
inline float atomicAdd(float* p, float v) { return ::s2s_emu::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return ::s2s_emu::atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return ::s2s_emu::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::s2s_emu::atomic_add(p, v); }
inline int atomicMin(int* p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v > old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}

// The fast-math intrinsics, at the host's full precision.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

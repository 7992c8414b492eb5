// The emulator's scheduler and runtime (see cuda_emu.h for what it models).
//
// A block runs as one fiber per thread on the calling host thread; a fiber runs until it reaches a
// rendezvous (a block barrier or a warp exchange) or returns. The scheduler runs one warp at a
// time: it releases the warp's exchange once every lane that has not exited has reached the same
// one, until every lane waits at the block barrier or has exited; when all warps have got there,
// it releases the barrier if they all wait at the same one. Lanes that wait in different places,
// or a shuffle that reads a lane that has exited, would deadlock or be undefined on the GPU: the
// launch fails with a description.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "include/cuda_runtime.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// Under AddressSanitizer (the C++ tests' build), fiber switches are announced to it, and the
// padding after each device allocation is poisoned: a kernel that reads or writes past the end of
// a buffer (an illegal address on a GPU) stops the test with ASan's report of where.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define S2S_EMU_ASAN 1
#endif

// The section that holds every static __shared__ variable (see cuda_emu.h), bounded by the linker.
extern "C" unsigned char __start_s2s_emu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_s2s_emu_shared[] __attribute__((weak));

namespace s2s_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr unsigned kMaxThreads = 1024;
constexpr size_t kWarpScratchBytes = 4096;

enum class Wait : uint8_t { none, block, warp, done };

struct Fiber {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  char* stack = nullptr;  // its lowest address (kStackBytes)
  uint3 tid{0, 0, 0};
  Wait wait = Wait::none;
  const char* what = nullptr;  // the warp call it waits in, or the barrier's file
  int line = 0;                // the barrier's line
};

// The state of the launch in progress (one at a time; a kernel cannot launch another).
struct Launch {
  const char* kernel = nullptr;
  dim3 grid, block;
  uint3 block_idx{0, 0, 0};
  unsigned threads = 0;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;
  std::vector<unsigned char> warp_scratch;
  std::vector<uint32_t> live_lanes;  // per warp: the lanes that took part in its last exchange
  size_t shared_bytes = 0;           // of the launch's dynamic shared memory (in `shared_area`)
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  Fiber* current = nullptr;
  bool faulted = false;
  std::string fault;
#if defined(__x86_64__)
  void* scheduler_sp = nullptr;
#else
  ucontext_t scheduler;
#endif
  bool active = false;
  // the scheduler's stack, as AddressSanitizer reports it when a fiber starts
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
};

Launch g;

// Dynamic shared memory: one 48 KiB area, aligned as the GPU's, of which a launch gets the first
// `shared_bytes` (under ASan the rest is poisoned, so a kernel reading past its share stops).
constexpr size_t kSharedArea = 48 * 1024;
alignas(128) unsigned char shared_area[kSharedArea];

struct Stacks {
  std::vector<char*> bases;  // each kStackBytes with a guard page below
  std::vector<bool> dirty;   // left by a fiber that did not run to its end
  char* top(unsigned i) {
    while (bases.size() <= i) {
      size_t page = (size_t)sysconf(_SC_PAGESIZE);
      void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
      if (m == MAP_FAILED) {
        std::fprintf(stderr, "cuda_emu: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(m, page, PROT_NONE);  // an overflow faults instead of corrupting a neighbour
      bases.push_back(static_cast<char*>(m) + page);
      dirty.push_back(false);
    }
    return bases[i] + kStackBytes;
  }
};
Stacks stacks;

// ---- errors reported through cudaGetLastError ----
cudaError_t last_error = cudaSuccess;
std::string last_message;

cudaError_t fail(cudaError_t e, std::string message) {
  last_error = e;
  last_message = std::move(message);
  return e;
}

// ---- fibers ----
#if defined(__x86_64__)
extern "C" void s2s_emu_switch(void** save_sp, void* to_sp);
asm(R"(
  .text
  .globl s2s_emu_switch
  .hidden s2s_emu_switch
  .type s2s_emu_switch, @function
s2s_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size s2s_emu_switch, .-s2s_emu_switch
)");
#endif

// From a fiber back to the scheduler, to be resumed later.
void to_scheduler() {
  Fiber* f = g.current;
#ifdef S2S_EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, g.scheduler_stack, g.scheduler_stack_size);
#endif
#if defined(__x86_64__)
  s2s_emu_switch(&f->sp, g.scheduler_sp);
#else
  swapcontext(&f->ctx, &g.scheduler);
#endif
#ifdef S2S_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, &g.scheduler_stack, &g.scheduler_stack_size);
#endif
}

// From a fiber back to the scheduler for the last time. (No local of this frame has its address
// taken, so under ASan it leaves no poisoned red zone on the stack for the next fiber.)
[[noreturn]] void leave_fiber() {
#ifdef S2S_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, g.scheduler_stack, g.scheduler_stack_size);
#endif
#if defined(__x86_64__)
  s2s_emu_switch(&g.current->sp, g.scheduler_sp);
#else
  swapcontext(&g.current->ctx, &g.scheduler);
#endif
  std::abort();  // never resumed
}

[[noreturn]] void fiber_main() {
#ifdef S2S_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g.scheduler_stack, &g.scheduler_stack_size);
#endif
  g.body(g.ctx);
  g.current->wait = Wait::done;
  leave_fiber();
}

void start_fiber(Fiber& f, unsigned i) {
  char* top = stacks.top(i);
#ifdef S2S_EMU_ASAN
  // A fiber abandoned mid-kernel (its block faulted) leaves the poisoned red zones of frames that
  // never returned; a fiber that ran to its end leaves none.
  if (stacks.dirty[i]) ASAN_UNPOISON_MEMORY_REGION(top - kStackBytes, kStackBytes);
#endif
  stacks.dirty[i] = false;
  f.stack = top - kStackBytes;
#if defined(__x86_64__)
  // what s2s_emu_switch pops: six registers, then fiber_main as the return address, above which a
  // null return address leaves the stack aligned as at a call
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(&fiber_main);
  for (int r = 0; r < 6; r++) *--sp = nullptr;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = top - kStackBytes;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
  f.wait = Wait::none;
  f.what = nullptr;
}

void resume(Fiber& f) {
  g.current = &f;
#ifdef S2S_EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, f.stack, kStackBytes);
#endif
#if defined(__x86_64__)
  s2s_emu_switch(&g.scheduler_sp, f.sp);
#else
  swapcontext(&g.scheduler, &f.ctx);
#endif
#ifdef S2S_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  g.current = nullptr;
}

std::string coords(const uint3& v) {
  return "(" + std::to_string(v.x) + ", " + std::to_string(v.y) + ", " + std::to_string(v.z) + ")";
}

std::string where() { return "kernel " + std::string(g.kernel) + ", block " + coords(g.block_idx); }

// Describes the threads still waiting, grouped by what they wait for.
std::string waiting_summary() {
  std::map<std::string, std::vector<unsigned>> by;
  for (unsigned i = 0; i < g.threads; i++) {
    const Fiber& f = g.fibers[i];
    if (f.wait == Wait::block) {
      std::string file(f.what);
      by["__syncthreads at " + file.substr(file.find_last_of('/') + 1) + ":" + std::to_string(f.line)].push_back(i);
    }
    if (f.wait == Wait::warp) by[f.what].push_back(i);
    if (f.wait == Wait::done) by["(exited)"].push_back(i);
  }
  std::string s;
  for (auto& [what, ids] : by) {
    s += (s.empty() ? "" : "; ") + what + ": threads ";
    for (size_t k = 0; k < ids.size() && k < 6; k++) s += (k ? "," : "") + std::to_string(ids[k]);
    if (ids.size() > 6) s += ",... (" + std::to_string(ids.size()) + ")";
  }
  return s;
}

// The scheduling order, so that a missing barrier shows: each block runs its warps one at a time,
// each as far as it can go (to the block barrier or its end), in an order drawn per block (a
// seeded generator: S2S_EMU_SEED, default 1), with its lanes in rising or falling order. A warp
// that reads shared memory another warp writes, without a barrier between, then reads it before
// the write in some blocks and after it in others.
uint64_t rng_state = [] {
  const char* s = std::getenv("S2S_EMU_SEED");
  return s && *s ? std::strtoull(s, nullptr, 10) * 0x9E3779B97F4A7C15ull + 1 : 0x9E3779B97F4A7C15ull;
}();
uint64_t next_random() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

// Runs warp w until each lane waits at the block barrier or has exited; false on a fault.
// Returns with g.fault set when the warp is stuck (lanes in different or partial warp calls).
bool run_warp(unsigned w, bool reverse_lanes) {
  const unsigned w0 = w * 32, w1 = std::min(g.threads, w0 + 32), lanes = w1 - w0;
  for (;;) {
    for (unsigned k = 0; k < lanes; k++) {
      Fiber& f = g.fibers[reverse_lanes ? w1 - 1 - k : w0 + k];
      if (f.wait != Wait::none) continue;
      resume(f);
      if (g.faulted) return false;
    }
    unsigned at_warp = 0, exited = 0;
    const char* what = nullptr;
    bool same = true;
    for (unsigned i = w0; i < w1; i++) {
      const Fiber& f = g.fibers[i];
      if (f.wait == Wait::warp) {
        if (what && what != f.what && std::strcmp(what, f.what) != 0) same = false;
        what = f.what;
        at_warp++;
      }
      if (f.wait == Wait::done) exited++;
    }
    if (at_warp == 0) return true;  // every lane at the block barrier or exited
    // Released once every lane that has not exited is there, in the same call (the programming
    // guide's rule); the call learns which lanes took part (lanes past the block's end never do).
    if (at_warp + exited == lanes && same) {
      uint32_t live = 0;
      for (unsigned i = w0; i < w1; i++)
        if (g.fibers[i].wait == Wait::warp) {
          live |= 1u << (i - w0);
          g.fibers[i].wait = Wait::none;
        }
      g.live_lanes[w] = live;
      continue;
    }
    g.fault = "the lanes of warp " + std::to_string(w) +
              " wait in different places, at least one of them warp-synchronous (" + waiting_summary() + ")";
    return false;
  }
}

// Runs the current block to its end; false on a fault or a deadlock (g.fault says which).
bool run_block() {
  const unsigned n = g.threads, warps = (n + 31) / 32;
  for (unsigned i = 0; i < n; i++) start_fiber(g.fibers[i], i);
  // shared memory starts undefined: the dynamic area, and every static __shared__ variable (the
  // linker's bounds of their section; absent when no kernel declares one)
  std::memset(shared_area, 0xFF, g.shared_bytes);
  if (__start_s2s_emu_shared && __stop_s2s_emu_shared)
    std::memset(__start_s2s_emu_shared, 0xFF, (size_t)(__stop_s2s_emu_shared - __start_s2s_emu_shared));
  std::vector<unsigned> order(warps);
  for (;;) {
    for (unsigned w = 0; w < warps; w++) order[w] = w;
    for (unsigned w = warps; w > 1; w--) std::swap(order[w - 1], order[next_random() % w]);
    bool reverse = next_random() & 1;
    for (unsigned w : order)
      if (!run_warp(w, reverse)) return false;
    unsigned done = 0;
    for (unsigned i = 0; i < n; i++) done += g.fibers[i].wait == Wait::done;
    if (done == n) return true;
    // every live thread waits at a barrier: the same one, or the block has diverged
    const Fiber* first = nullptr;
    for (unsigned i = 0; i < n; i++) {
      const Fiber& f = g.fibers[i];
      if (f.wait != Wait::block) continue;
      if (first && (first->line != f.line || std::strcmp(first->what, f.what) != 0)) {
        g.fault = "the threads of the block wait at different __syncthreads (" + waiting_summary() + ")";
        return false;
      }
      first = &f;
    }
    for (unsigned i = 0; i < n; i++)
      if (g.fibers[i].wait == Wait::block) g.fibers[i].wait = Wait::none;
  }
}

std::mutex allocations_mutex;
std::map<uintptr_t, size_t> allocations;  // start -> bytes

// The allocation holding [p, p + bytes), or null.
const std::pair<const uintptr_t, size_t>* allocation_of(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(allocations_mutex);
  uintptr_t a = (uintptr_t)p;
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (a + bytes > it->first + it->second) return nullptr;
  return &*it;
}

}  // namespace

const uint3& thread_idx() { return g.current->tid; }
const uint3& block_idx() { return g.block_idx; }
const dim3& block_dim() { return g.block; }
const dim3& grid_dim() { return g.grid; }

static unsigned linear_id() {
  const uint3& t = g.current->tid;
  return t.x + g.block.x * (t.y + g.block.y * t.z);
}

unsigned lane_id() { return linear_id() % 32; }

void sync_block(const char* file, int line) {
  if (!g.current) {
    std::fprintf(stderr, "cuda_emu: __syncthreads outside a kernel (%s:%d)\n", file, line);
    std::abort();
  }
  g.current->wait = Wait::block;
  g.current->what = file;
  g.current->line = line;
  to_scheduler();
}

void sync_warp(const char* what) {
  g.current->wait = Wait::warp;
  g.current->what = what;
  to_scheduler();
}

void fault(const char* what) {
  if (!g.current) {
    std::fprintf(stderr, "cuda_emu: %s (outside a kernel)\n", what);
    std::abort();
  }
  if (!g.faulted) g.fault = std::string(what) + " (thread " + coords(g.current->tid) + ")";
  g.faulted = true;
  g.current->wait = Wait::done;
  leave_fiber();
}

uint64_t* warp_slots() { return &g.slots[(linear_id() / 32) * 32]; }

void* warp_scratch() { return &g.warp_scratch[(linear_id() / 32) * kWarpScratchBytes]; }

void* dynamic_shared_ptr() { return g.shared_bytes ? shared_area : nullptr; }

uint32_t warp_live_lanes() { return g.live_lanes[linear_id() / 32]; }

bool is_device_pointer(const void* p) { return p && allocation_of(p, 0) != nullptr; }

bool is_device_range(const void* p, size_t bytes) { return p && allocation_of(p, bytes) != nullptr; }

bool check_pointer_argument(const char* kernel, int index, const void* p) {
  if (p == nullptr || is_device_pointer(p)) return true;
  fail(cudaErrorInvalidValue, std::string("kernel ") + kernel + ": argument " + std::to_string(index) +
                                  " is a pointer to host memory (an illegal address on a GPU)");
  return false;
}

bool run_grid(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, void (*body)(void*), void* ctx) {
  if (g.active) {
    std::fprintf(stderr, "cuda_emu: kernel %s launched from inside kernel %s\n", kernel, g.kernel);
    std::abort();
  }
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration, std::string("invalid configuration argument (kernel ") + kernel + ", grid " +
                                            coords({grid.x, grid.y, grid.z}) + ", block " +
                                            coords({block.x, block.y, block.z}) + ")");
    return false;
  }
  if (shared_bytes > 48 * 1024) {
    fail(cudaErrorInvalidValue, std::string("invalid argument (kernel ") + kernel + " asks for " +
                                    std::to_string(shared_bytes) + " bytes of dynamic shared memory)");
    return false;
  }
  g.kernel = kernel;
  g.grid = grid;
  g.block = block;
  g.threads = (unsigned)threads;
  g.fibers.resize(g.threads);
  for (unsigned i = 0; i < g.threads; i++)
    g.fibers[i].tid = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
  unsigned warps = (g.threads + 31) / 32;
  g.slots.assign((size_t)warps * 32, 0);
  g.warp_scratch.assign((size_t)warps * kWarpScratchBytes, 0);
  g.live_lanes.assign(warps, 0);
  g.shared_bytes = shared_bytes;
#ifdef S2S_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(shared_area, shared_bytes);
  ASAN_POISON_MEMORY_REGION(shared_area + shared_bytes, kSharedArea - shared_bytes);
#endif
  g.body = body;
  g.ctx = ctx;
  g.faulted = false;
  g.fault.clear();
  g.active = true;
  // Blocks in an order drawn per launch (a random first block, then rising or falling), so that
  // which block runs last -- what "the last block to finish" protocols elect -- varies.
  bool ok = true;
  const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z, first = next_random() % blocks;
  const bool falling = next_random() & 1;
  for (uint64_t i = 0; i < blocks && ok; i++) {
    uint64_t b = falling ? (first + blocks - i) % blocks : (first + i) % blocks;
    g.block_idx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((uint64_t)grid.x * grid.y))};
    ok = run_block();
  }
  g.active = false;
  if (!ok)
    for (unsigned i = 0; i < g.threads; i++) stacks.dirty[i] = true;  // fibers left mid-kernel
  if (!ok) fail(cudaErrorLaunchFailure, "unspecified launch failure: " + g.fault + " in " + where());
  return ok;
}

}  // namespace s2s_emu

using namespace s2s_emu;

// ---- the runtime API ----

cudaError_t cudaGetLastError() {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

// The message of the last error of this code, which names the call and what was wrong.
const char* cudaGetErrorString(cudaError_t e) {
  if (e == cudaSuccess) return "no error";
  if (!last_message.empty()) return last_message.c_str();
  return cudaGetErrorName(e);
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "invalid device ordinal");
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "CUDA emulator on the CPU");
  p->totalGlobalMem = (size_t)8 << 30;
  p->sharedMemPerBlock = 48 * 1024;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidValue, "invalid device ordinal");
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  size_t rounded = (bytes + 255) / 256 * 256;
  void* m = std::aligned_alloc(256, rounded);
  if (!m) return fail(cudaErrorMemoryAllocation, "out of memory");
  std::memset(m, 0xFF, rounded);  // undefined contents: NaN as float, -1 as an integer
#ifdef S2S_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(m) + bytes, rounded - bytes);
#endif
  std::lock_guard<std::mutex> lock(allocations_mutex);
  allocations[(uintptr_t)m] = bytes;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(allocations_mutex);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end())
      return fail(cudaErrorInvalidDevicePointer, "cudaFree of a pointer cudaMalloc did not return");
#ifdef S2S_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, (it->second + 255) / 256 * 256);
#endif
    allocations.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}


cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_device && !is_device_range(dst, bytes))
    return fail(cudaErrorInvalidValue, "invalid argument: cudaMemcpy destination [" + std::to_string(bytes) +
                                           " bytes] is not inside one device allocation");
  if (src_device && !is_device_range(src, bytes))
    return fail(cudaErrorInvalidValue, "invalid argument: cudaMemcpy source [" + std::to_string(bytes) +
                                           " bytes] is not inside one device allocation");
  if (!dst_device && is_device_pointer(dst))
    return fail(cudaErrorInvalidValue, "invalid argument: cudaMemcpy to device memory with a host destination kind");
  if (!src_device && is_device_pointer(src))
    return fail(cudaErrorInvalidValue, "invalid argument: cudaMemcpy from device memory with a host source kind");
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_range(p, bytes))
    return fail(cudaErrorInvalidValue, "invalid argument: cudaMemset of [" + std::to_string(bytes) +
                                           " bytes] not inside one device allocation");
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  *total = (size_t)8 << 30;
  *free = *total;
  return cudaSuccess;
}

struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  if (!start->recorded || !stop->recorded) return fail(cudaErrorInvalidValue, "cudaEventElapsedTime of an unrecorded event");
  *ms = std::chrono::duration<float, std::milli>(stop->t - start->t).count();
  return cudaSuccess;
}

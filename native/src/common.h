// Shared pieces of the engine: the error type, aligned buffers, thread control and the RNG.
//
// Letters used for sizes throughout the engine (as in llm.c):
//   B  batch size          T  sequence length (positions)      C  channels (model width)
//   V  vocabulary size     L  number of layers                 NH number of attention heads
//   hs head size (C / NH)  OC output channels of a matmul      N  number of rows (B*T)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace s2s {

// Every error the engine reports to a user is an s2s::Error with a sentence they can act on.
struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Host memory that owns its allocation (64-byte aligned; allocate_zeroed: 16) and can grow
// (contents are not kept). Its interface is the CUDA backend's DeviceArray's, so that the model's
// composition, written once, holds either.
//
// Allocations of kHugeFrom bytes and more (parameters, gradients, optimizer state, activations)
// are their own mappings, 2 MiB aligned and advised for transparent huge pages: a first touch then
// costs one fault and at most one TLB shootdown per 2 MiB instead of per 4 KiB (a zeroed buffer
// read before it is written, as AdamW's moments and the gradients are in the first step, maps the
// zero page and takes a copy-on-write fault with an interprocessor interrupt on every page: 4 s of
// a 124M model's first step on a 2-core VM), and the streaming passes over them miss the TLB less.
void* host_alloc(size_t bytes, bool zeroed);  // throws s2s::Error when out of memory
void host_free(void* p, size_t bytes);        // bytes as given to host_alloc
constexpr size_t kHugeFrom = size_t(4) << 20;

template <typename T>
class HostArray {
 public:
  HostArray() = default;
  explicit HostArray(size_t n) { resize(n); }
  ~HostArray() { reset(); }
  HostArray(const HostArray&) = delete;
  HostArray& operator=(const HostArray&) = delete;
  HostArray(HostArray&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  HostArray& operator=(HostArray&& o) noexcept {
    if (this != &o) { reset(); data_ = o.data_; size_ = o.size_; o.data_ = nullptr; o.size_ = 0; }
    return *this;
  }
  // Makes room for at least n elements; returns true when it had to reallocate.
  bool reserve(size_t n) {
    if (n <= size_) return false;
    resize(n);
    return true;
  }
  // Exactly n elements (reallocates when the size differs).
  void resize(size_t n) {
    if (n == size_) return;
    reset();
    if (n) data_ = static_cast<T*>(host_alloc(n * sizeof(T), false));
    size_ = n;
  }
  // Exactly n zeros, from calloc: the OS hands out zeroed pages as they are touched, so this is
  // cheap even for a large model created on the JavaScript thread.
  void allocate_zeroed(size_t n) {
    reset();
    if (n) data_ = static_cast<T*>(host_alloc(n * sizeof(T), true));
    size_ = n;
  }
  void reset() {
    host_free(data_, size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }
  void zero(size_t n) { if (n) std::memset(data_, 0, n * sizeof(T)); }
  void zero() { zero(size_); }
  // Every byte 0xFF: -1 for signed integers.
  void fill_ones(size_t n) { if (n) std::memset(data_, 0xFF, n * sizeof(T)); }
  void upload(const T* src, size_t n, size_t offset = 0) { if (n) std::memcpy(data_ + offset, src, n * sizeof(T)); }
  void download(T* dst, size_t n, size_t offset = 0) const { if (n) std::memcpy(dst, data_ + offset, n * sizeof(T)); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

using Buffer = HostArray<float>;

// Thread count for every OpenMP region and oneDNN call the engine makes. OpenMP's thread count is
// per calling thread, so the engine thread (napi/engine_call.cc) and the C++ tests apply the
// global setting with ThreadScope before they compute.
void set_num_threads(int n);  // n <= 0 restores the default (S2S_NUM_THREADS, else all cores)
int get_num_threads();
struct ThreadScope {
  ThreadScope();
};

// Below this many elements a loop runs on one thread: waking the OpenMP team costs more than the
// work (it dominates a decoding step, whose loops touch only B rows).
constexpr int64_t kMinParallelWork = 1 << 15;

// Counter-based RNG (splitmix64 mixing): a stream is fixed by (seed, stream id), so results do
// not depend on thread count or scheduling.
struct Rng {
  uint64_t state;
  Rng(uint64_t seed, uint64_t stream) : state(mix(seed * 0x9E3779B97F4A7C15ull + mix(stream + 1))) {}
  static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t next_u64() { return mix(state++); }
  // uniform in [0, 1) with 24 random bits, as float
  float uniform() { return (next_u64() >> 40) * (1.0f / 16777216.0f); }
  // uniform in [0, 1) with 53 random bits
  double uniform_double() { return (next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  // standard normal (Box-Muller; one value per call keeps the stream position simple)
  double normal();
};

}  // namespace s2s

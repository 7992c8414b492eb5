// cub::BlockScan's inclusive sum with a block aggregate, on the CPU emulator: each thread's prefix
// summed in thread order (cub sums in a tree; the two differ in rounding only).
#pragma once

#include "../../../cuda_emu.h"

namespace cub {

template <typename T, int BLOCK_THREADS>
class BlockScan {
 public:
  struct TempStorage {
    T values[BLOCK_THREADS];
  };
  explicit BlockScan(TempStorage& storage) : s_(storage) {
    const dim3& d = ::s2s_emu::block_dim();
    if (d.x * d.y * d.z != (unsigned)BLOCK_THREADS) ::s2s_emu::fault("cub::BlockScan used by a block of another size");
  }
  void InclusiveSum(T input, T& output, T& block_aggregate) {
    const uint3& t = ::s2s_emu::thread_idx();
    const dim3& d = ::s2s_emu::block_dim();
    unsigned me = t.x + d.x * (t.y + d.y * t.z);
    s_.values[me] = input;
    ::s2s_emu::sync_block(__FILE__, __LINE__);
    T acc = T(0), total = T(0);
    for (int i = 0; i < BLOCK_THREADS; i++) {
      total += s_.values[i];
      if ((unsigned)i == me) acc = total;
    }
    output = acc;
    block_aggregate = total;
    // no barrier after it, as in cub: reusing the storage needs the caller's __syncthreads()
  }

 private:
  TempStorage& s_;
};

}  // namespace cub

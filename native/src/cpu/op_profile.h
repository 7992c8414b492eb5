// Where a CPU step's time goes, op by op: with S2S_PROFILE_OPS=1 every op of the CPU op set is
// timed and, when the process exits, a table of each op's calls, total milliseconds and share is
// written to stderr (benchmarks/profile/ reads it). Off, it costs one predictable branch per op.
#pragma once

#include <chrono>

namespace s2s {

bool op_profile_enabled();
void op_profile_add(const char* name, double ms);
// Forgets what was timed so far (the table then covers what runs after: steady steps, not the
// first ones that fault their memory in). Call it between engine calls.
void op_profile_reset();

class OpTimer {
 public:
  explicit OpTimer(const char* name) : name_(op_profile_enabled() ? name : nullptr) {
    if (name_) t0_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (name_) op_profile_add(name_, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count());
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  const char* name_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace s2s

#include "cpu/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace s2s {

namespace {

struct Totals {
  std::mutex mu;
  std::map<std::string, std::pair<long, double>> by_op;  // calls, milliseconds
  ~Totals() {
    if (by_op.empty()) return;
    std::vector<std::pair<std::string, std::pair<long, double>>> rows(by_op.begin(), by_op.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
    double total = 0;
    for (const auto& r : rows) total += r.second.second;
    std::fprintf(stderr, "op profile (S2S_PROFILE_OPS): %.1f ms in ops\n", total);
    for (const auto& r : rows)
      std::fprintf(stderr, "  %-28s %8ld calls %10.1f ms %5.1f%%\n", r.first.c_str(), r.second.first, r.second.second,
                   100.0 * r.second.second / total);
  }
};

Totals& totals() {
  static Totals t;
  return t;
}

}  // namespace

bool op_profile_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("S2S_PROFILE_OPS");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

void op_profile_reset() {
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  t.by_op.clear();
}

void op_profile_add(const char* name, double ms) {
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& r = t.by_op[name];
  r.first++;
  r.second += ms;
}

}  // namespace s2s

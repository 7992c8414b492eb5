// The process group as a JavaScript class (created by initProcessGroup, which forms it off the
// JavaScript thread), and the model's data-parallel calls that take one.
#pragma once

#include <napi.h>

#include <memory>

#include "comm/process_group.h"

namespace s2s {

class GroupWrap : public Napi::ObjectWrap<GroupWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit GroupWrap(const Napi::CallbackInfo& info);

  // The group of a ProcessGroup object (throws a TypeError for anything else, or a destroyed one).
  static std::shared_ptr<ProcessGroup> unwrap(Napi::Env env, const Napi::Value& v, const char* name);

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value Allreduce(const Napi::CallbackInfo& info);
  Napi::Value Broadcast(const Napi::CallbackInfo& info);
  Napi::Value Allgather(const Napi::CallbackInfo& info);
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  std::shared_ptr<ProcessGroup> group(Napi::Env env);

  std::shared_ptr<ProcessGroup> group_;
};

// initProcessGroup({rank, worldSize, masterAddr, masterPort, timeoutMs, iface}) -> Promise<ProcessGroup>
Napi::Value InitProcessGroup(const Napi::CallbackInfo& info);
// distSupport() -> {gloo, glooReason}
Napi::Value DistSupportJs(const Napi::CallbackInfo& info);

}  // namespace s2s

// The process group's binding. Collectives copy their input at call time, run on the engine thread
// (so they are ordered with the model calls made before them) and resolve with a new array.
#include "napi/group_wrap.h"

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "napi/engine_call.h"
#include "napi/util.h"

namespace s2s {

namespace {

// The ProcessGroup class of this thread's environment (the main thread's, or a worker's: each has
// its own JavaScript thread), set by Init and cleared by a cleanup hook before the environment goes.
thread_local Napi::FunctionReference* t_group_ctor = nullptr;

Napi::Function group_ctor(Napi::Env env) {
  if (!t_group_ctor) throw Napi::Error::New(env, "the s2s addon's ProcessGroup class is not initialised in this thread");
  return t_group_ctor->Value();
}

// Marks objects made by this class, so that an object merely shaped like one is refused.
const napi_type_tag kGroupTag = {0x5325c0de9a17e551ULL, 0x7072677270677270ULL};

// A typed array's contents, copied, with its kind (only Float32Array and Float64Array).
struct Values {
  bool f64 = false;
  std::vector<float> f;
  std::vector<double> d;
  size_t size() const { return f64 ? d.size() : f.size(); }
};

Values copy_values(Napi::Env env, const Napi::Value& v, const char* name, bool allow_f32 = true) {
  Values out;
  if (is_typed(v, napi_float64_array)) {
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    check_not_detached(env, a, name);
    out.f64 = true;
    out.d.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (allow_f32 && is_typed(v, napi_float32_array)) {
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    check_not_detached(env, a, name);
    out.f.assign(a.Data(), a.Data() + a.ElementLength());
  } else {
    throw Napi::TypeError::New(env, std::string(name) + (allow_f32 ? " must be a Float32Array or a Float64Array" : " must be a Float64Array"));
  }
  return out;
}

Napi::Value to_js(Napi::Env env, const Values& v) {
  if (!v.f64) return to_float32(env, v.f);
  Napi::Float64Array a = Napi::Float64Array::New(env, v.d.size());
  if (!v.d.empty()) std::memcpy(a.Data(), v.d.data(), v.d.size() * sizeof(double));
  return a;
}

}  // namespace

Napi::Function GroupWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "ProcessGroup",
                                    {
                                        InstanceAccessor("rank", &GroupWrap::Rank, nullptr),
                                        InstanceAccessor("size", &GroupWrap::Size, nullptr),
                                        InstanceAccessor("backend", &GroupWrap::Backend, nullptr),
                                        InstanceMethod("allreduce", &GroupWrap::Allreduce),
                                        InstanceMethod("broadcast", &GroupWrap::Broadcast),
                                        InstanceMethod("allgather", &GroupWrap::Allgather),
                                        InstanceMethod("barrier", &GroupWrap::Barrier),
                                        InstanceMethod("destroy", &GroupWrap::Destroy),
                                    });
  t_group_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.AddCleanupHook([] {
    delete t_group_ctor;
    t_group_ctor = nullptr;
  });
  return ctor;
}

// Made only by initProcessGroup, which passes the group in an External.
GroupWrap::GroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "ProcessGroup is made by initProcessGroup(options), not with new");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
  group_ = *holder;
  info.This().As<Napi::Object>().TypeTag(&kGroupTag);
}

std::shared_ptr<ProcessGroup> GroupWrap::group(Napi::Env env) {
  if (!group_) throw Napi::Error::New(env, "this process group was destroyed");
  return group_;
}

std::shared_ptr<ProcessGroup> GroupWrap::unwrap(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kGroupTag))
    throw Napi::TypeError::New(env, std::string(name) + " must be a ProcessGroup (from initProcessGroup)");
  return GroupWrap::Unwrap(v.As<Napi::Object>())->group(env);
}

Napi::Value GroupWrap::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group(info.Env())->rank()); }
Napi::Value GroupWrap::Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group(info.Env())->size()); }
Napi::Value GroupWrap::Backend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), group(info.Env())->backend());
}

Napi::Value GroupWrap::Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  auto v = std::make_shared<Values>(copy_values(env, info[0], "data"));
  return engine_call(
      env,
      [g, v] {
        if (v->f64)
          g->allreduce_sum(v->d.data(), v->d.size());
        else
          g->allreduce_sum(v->f.data(), v->f.size());
      },
      [v](Napi::Env env) { return to_js(env, *v); }, Value());
}

Napi::Value GroupWrap::Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  auto v = std::make_shared<Values>(copy_values(env, info[0], "data"));
  int root = get_int_arg(env, info, 1, "root", 0, g->size() - 1);
  return engine_call(
      env,
      [g, v, root] {
        // Every rank must pass the same length: the root's is checked against each rank's own.
        double n = (double)v->size();
        g->broadcast(&n, sizeof n, root);
        if ((size_t)n != v->size())
          throw Error("broadcast: rank " + std::to_string(g->rank()) + " passed " + std::to_string(v->size()) +
                      " values and the root (rank " + std::to_string(root) + ") " + std::to_string((size_t)n) +
                      ": every rank passes the same length");
        if (v->f64)
          g->broadcast(v->d.data(), v->d.size() * sizeof(double), root);
        else
          g->broadcast(v->f.data(), v->f.size() * sizeof(float), root);
      },
      [v](Napi::Env env) { return to_js(env, *v); }, Value());
}

Napi::Value GroupWrap::Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  auto v = std::make_shared<Values>(copy_values(env, info[0], "data", false));
  auto out = std::make_shared<Values>();
  out->f64 = true;
  return engine_call(
      env,
      [g, v, out] {
        out->d.resize(v->d.size() * (size_t)g->size());
        g->allgather(v->d.data(), v->d.size(), out->d.data());
      },
      [out](Napi::Env env) { return to_js(env, *out); }, Value());
}

Napi::Value GroupWrap::Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = group(env);
  return engine_call(env, [g] { g->barrier(); }, nullptr, Value());
}

// Closes this rank's connections (calls in flight finish first: they hold the group). The other
// ranks' next collective then fails, naming this rank as exited.
Napi::Value GroupWrap::Destroy(const Napi::CallbackInfo& info) {
  group_.reset();
  return info.Env().Undefined();
}

Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "initProcessGroup(options) needs an options object (rank, worldSize, masterAddr, masterPort)");
  Napi::Object o = info[0].As<Napi::Object>();
  check_keys(env, o, "initProcessGroup options", {"rank", "worldSize", "masterAddr", "masterPort", "timeoutMs", "iface"});
  GroupOptions g;
  g.world_size = get_int(env, o, "worldSize", -1, 1, 1 << 20);
  g.rank = get_int(env, o, "rank", -1, 0, g.world_size - 1);
  g.master_port = get_int(env, o, "masterPort", -1, 1, 65535);
  Napi::Value addr = o.Get("masterAddr");
  if (!addr.IsUndefined()) {
    if (!addr.IsString() || addr.As<Napi::String>().Utf8Value().empty())
      throw Napi::TypeError::New(env, "masterAddr must be a non-empty string (a host name or address)");
    g.master_addr = addr.As<Napi::String>().Utf8Value();
  }
  double timeout = get_number(env, o, "timeoutMs", (double)g.timeout.count());
  if (!(timeout >= 1 && timeout <= 1e9)) throw Napi::RangeError::New(env, "timeoutMs must be a number of milliseconds in [1, 1e9]");
  g.timeout = std::chrono::milliseconds((int64_t)timeout);
  Napi::Value iface = o.Get("iface");
  if (!iface.IsUndefined()) {
    if (!iface.IsString()) throw Napi::TypeError::New(env, "iface must be a string (a network interface name)");
    g.iface = iface.As<Napi::String>().Utf8Value();
  }
  auto made = std::make_shared<std::shared_ptr<ProcessGroup>>();
  return engine_call(
      env, [g, made] { *made = make_process_group(g); },
      [made](Napi::Env env) -> Napi::Value {
        auto holder = Napi::External<std::shared_ptr<ProcessGroup>>::New(env, made.get());
        return group_ctor(env).New({holder});
      });
}

Napi::Value DistSupportJs(const Napi::CallbackInfo& info) {
  DistSupport s = dist_support();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gloo", s.gloo);
  o.Set("glooReason", s.gloo_reason);
  return o;
}

}  // namespace s2s

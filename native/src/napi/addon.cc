// The addon's entry point: the NativeModel class and the engine-wide functions.
#include <napi.h>

#include <memory>

#include "backend.h"
#include "common.h"
#include "cpu/matmul.h"
#include "cpu/op_profile.h"
#include "napi/engine_call.h"
#include "napi/group_wrap.h"
#include "napi/model_wrap.h"
#include "napi/util.h"

namespace s2s {

namespace {

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = get_int_arg(info.Env(), info, 0, "threads", 0, 1 << 16);
  set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), get_num_threads()); }

CpuMatmul cpu_matmul_arg(Napi::Env env, const Napi::Value& v) {
  std::string p = v.IsUndefined() ? "fp32" : v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (p == "fp32") return CpuMatmul::fp32;
  if (p == "bf16") return CpuMatmul::bf16;
  if (p == "bf16-emulated") return CpuMatmul::bf16_emulated;
  throw Napi::TypeError::New(env, "precision must be 'fp32', 'bf16' or 'bf16-emulated'");
}

Napi::Value MeasureSgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int m = get_int_arg(env, info, 0, "M", 1, 1 << 16);
  int n = get_int_arg(env, info, 1, "N", 1, 1 << 16);
  int k = get_int_arg(env, info, 2, "K", 1, 1 << 16);
  int iters = get_int_arg(env, info, 3, "iters", 1, 1 << 20);
  CpuMatmul mode = cpu_matmul_arg(env, info[4]);
  const int outputs = info.Length() > 5 && !info[5].IsUndefined() ? get_int_arg(env, info, 5, "outputs", 1, 4096) : 1;
  const double gib = 4.0 * m * n * outputs / (1 << 30);
  if (gib > 4.0)
    throw Napi::RangeError::New(env, "outputs: " + std::to_string(outputs) + " results of " + std::to_string(m) + " x " +
                                         std::to_string(n) + " would take " + std::to_string(gib) +
                                         " GiB; at most 4 GiB is allowed");
  try {
    check_cpu_matmul(mode);
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  // Sustained GFLOP/s through the engine's own matmul path: the peak benchmarks compare against.
  auto gflops = std::make_shared<double>(0.0);
  return engine_call(
      env, [=] { *gflops = measure_sgemm_gflops(m, n, k, iters, mode, outputs); },
      [=](Napi::Env env) { return Napi::Number::New(env, *gflops); });
}

// The setting of new CPU models' matmuls, as the engine reads S2S_CPU_PRECISION (auto resolved).
Napi::Value CpuPrecisionJs(const Napi::CallbackInfo& info) {
  try {
    return Napi::String::New(info.Env(), cpu_matmul_name(cpu_default_matmul()));
  } catch (const Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// Whether this processor multiplies bf16 natively, with which instructions, and why not.
Napi::Value CpuBf16Js(const Napi::CallbackInfo& info) {
  const CpuBf16Support& s = cpu_bf16_support();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("native", s.native);
  o.Set("isa", s.isa);
  o.Set("reason", s.reason);
  return o;
}

// Whether the CUDA backend can run here (asked once: the first question initialises the driver).
Napi::Value CudaStatusJs(const Napi::CallbackInfo& info) {
  static const CudaStatus status = cuda_status();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("available", status.available);
  o.Set("reason", status.reason);
  o.Set("device", status.device);
  return o;
}

// The precision new CUDA models' matmuls use ('bf16' or 'fp32'), as the engine reads S2S_CUDA_PRECISION.
Napi::Value CudaPrecisionJs(const Napi::CallbackInfo& info) {
  try {
    return Napi::String::New(info.Env(), precision_name(cuda_default_precision()));
  } catch (const Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// The model config's keys (src/arch/config.cc): what NativeModel(config) reads and .config reports.
Napi::Value ConfigSchemaJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& fields = config_fields();
  Napi::Array out = Napi::Array::New(env, fields.size());
  for (size_t i = 0; i < fields.size(); i++) {
    const ConfigField& f = fields[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("key", f.key);
    static const char* const kinds[] = {"integer", "boolean", "number", "string"};
    o.Set("type", kinds[f.kind]);
    if (f.kind == ConfigField::integer) {
      o.Set("min", Napi::Number::New(env, (double)f.min));
      o.Set("max", Napi::Number::New(env, (double)f.max));
    }
    if (f.kind == ConfigField::string) {
      Napi::Array choices = Napi::Array::New(env);
      std::string all = f.choices;
      for (size_t at = 0, n = 0; at <= all.size(); n++) {
        size_t bar = all.find('|', at);
        if (bar == std::string::npos) bar = all.size();
        choices.Set((uint32_t)n, all.substr(at, bar - at));
        at = bar + 1;
      }
      o.Set("choices", choices);
    }
    o.Set("required", f.required);
    o.Set("doc", f.doc);
    out.Set((uint32_t)i, o);
  }
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  init_engine_calls(env);
  exports.Set("NativeModel", ModelWrap::Init(env));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("measureSgemm", Napi::Function::New(env, MeasureSgemm));
  exports.Set("opProfileReset", Napi::Function::New(env, [](const Napi::CallbackInfo&) { op_profile_reset(); }));
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatusJs));
  exports.Set("cudaPrecision", Napi::Function::New(env, CudaPrecisionJs));
  exports.Set("cpuPrecision", Napi::Function::New(env, CpuPrecisionJs));
  exports.Set("cpuBf16", Napi::Function::New(env, CpuBf16Js));
  exports.Set("configSchema", Napi::Function::New(env, ConfigSchemaJs));
  exports.Set("ProcessGroup", GroupWrap::Init(env));
  exports.Set("initProcessGroup", Napi::Function::New(env, InitProcessGroup));
  exports.Set("distSupport", Napi::Function::New(env, DistSupportJs));
  return exports;
}

}  // namespace s2s

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return s2s::Init(env, exports); }

NODE_API_MODULE(s2s, InitAddon)

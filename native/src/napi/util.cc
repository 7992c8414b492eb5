// Argument helpers for the binding.
#include "napi/util.h"

#include <cmath>
#include <cstring>

namespace s2s {

bool is_typed(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

int get_int(Napi::Env env, const Napi::Object& o, const char* key, int def, int lo, int hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (def < lo) throw Napi::TypeError::New(env, std::string(key) + " is required");
    return def;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < lo || d > hi)
    throw Napi::RangeError::New(env, std::string(key) + " must be an integer in [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "]");
  return (int)d;
}

bool get_bool(Napi::Env env, const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsBoolean()) throw Napi::TypeError::New(env, std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double get_number(Napi::Env env, const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int get_int_arg(Napi::Env env, const Napi::CallbackInfo& info, size_t i, const char* name, int lo, int hi) {
  double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < lo || d > hi)
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "]");
  return (int)d;
}

size_t get_size_arg(Napi::Env env, const Napi::CallbackInfo& info, size_t i, const char* name, size_t hi) {
  double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < 0 || d > (double)hi)
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in [0, " + std::to_string(hi) + "]");
  return (size_t)d;
}

uint64_t get_seed(Napi::Env env, const Napi::Value& v, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(name) + " must fit in 64 bits");
    return s;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < 0 || d > 9007199254740991.0)
    throw Napi::RangeError::New(env, std::string(name) + " must be a non-negative integer below 2^53 (or a BigInt)");
  return (uint64_t)d;
}

void check_keys(Napi::Env env, const Napi::Object& o, const char* what, std::initializer_list<const char*> known) {
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string k = names.Get(i).ToString().Utf8Value();
    bool ok = false;
    for (const char* n : known) ok = ok || k == n;
    if (ok) continue;
    std::string list;
    for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
    throw Napi::TypeError::New(env, std::string(what) + ": unknown key '" + k + "' (known: " + list + ")");
  }
}

void check_not_detached(Napi::Env env, const Napi::TypedArray& a, const char* name) {
  if (a.ArrayBuffer().IsDetached())
    throw Napi::TypeError::New(env, std::string(name) +
                                        "'s ArrayBuffer is detached (transferred or freed): there is nothing to read");
}

template <typename T, typename Arr>
static std::vector<T> copy_typed(Napi::Env env, const Napi::Value& v, const char* name, size_t expected,
                                 napi_typedarray_type type, const char* type_name) {
  if (!is_typed(v, type)) throw Napi::TypeError::New(env, std::string(name) + " must be " + type_name);
  Arr a = v.As<Arr>();
  check_not_detached(env, a, name);
  size_t n = a.ElementLength();
  if (expected && n != expected)
    throw Napi::RangeError::New(env, std::string(name) + " has " + std::to_string(n) + " elements; expected " +
                                         std::to_string(expected));
  return std::vector<T>(a.Data(), a.Data() + n);
}

std::vector<int32_t> copy_int32(Napi::Env env, const Napi::Value& v, const char* name, size_t expected) {
  return copy_typed<int32_t, Napi::Int32Array>(env, v, name, expected, napi_int32_array, "an Int32Array");
}

std::vector<float> copy_float32(Napi::Env env, const Napi::Value& v, const char* name, size_t expected) {
  return copy_typed<float, Napi::Float32Array>(env, v, name, expected, napi_float32_array, "a Float32Array");
}

Napi::Float32Array to_float32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

Napi::Float32Array adopt_float32(Napi::Env env, std::vector<float>&& v) {
  if (v.empty()) return Napi::Float32Array::New(env, 0);
  auto* owned = new std::vector<float>(std::move(v));
  napi_value buf;
  napi_status s = napi_create_external_arraybuffer(
      env, owned->data(), owned->size() * sizeof(float),
      [](napi_env, void*, void* hint) { delete static_cast<std::vector<float>*>(hint); }, owned, &buf);
  if (s != napi_ok) {  // a runtime without external buffers (a V8 sandbox): copy instead
    Napi::Float32Array a = to_float32(env, *owned);
    delete owned;
    return a;
  }
  return Napi::Float32Array::New(env, owned->size(), Napi::ArrayBuffer(env, buf), 0);
}

Napi::Int32Array to_int32(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

Napi::Uint8Array to_uint8(Napi::Env env, const std::vector<uint8_t>& v) {
  Napi::Uint8Array a = Napi::Uint8Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size());
  return a;
}

}  // namespace s2s

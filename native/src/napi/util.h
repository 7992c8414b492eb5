// Argument helpers for the binding: each check throws a JavaScript TypeError or RangeError that
// names the argument and what was expected.
#pragma once

#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace s2s {

bool is_typed(const Napi::Value& v, napi_typedarray_type type);

int get_int(Napi::Env env, const Napi::Object& o, const char* key, int def, int lo, int hi);
bool get_bool(Napi::Env env, const Napi::Object& o, const char* key, bool def);
double get_number(Napi::Env env, const Napi::Object& o, const char* key, double def);
int get_int_arg(Napi::Env env, const Napi::CallbackInfo& info, size_t i, const char* name, int lo, int hi);
size_t get_size_arg(Napi::Env env, const Napi::CallbackInfo& info, size_t i, const char* name, size_t hi);
// A seed: a non-negative safe integer (below 2^53) or a BigInt below 2^64.
uint64_t get_seed(Napi::Env env, const Napi::Value& v, const char* name);

// Refuses an options object with a key outside `known` (a misspelt option is an error, not a
// default): "step options: unknown key 'learningRate' (known: lr, beta1, ...)".
void check_keys(Napi::Env env, const Napi::Object& o, const char* what, std::initializer_list<const char*> known);
// Throws a TypeError when the typed array's ArrayBuffer was detached (transferred to another
// thread, say): its contents are gone, and reading it would see zero elements.
void check_not_detached(Napi::Env env, const Napi::TypedArray& a, const char* name);

// Copies of typed-array arguments, made at call time (expected = 0 accepts any length).
std::vector<int32_t> copy_int32(Napi::Env env, const Napi::Value& v, const char* name, size_t expected);
std::vector<float> copy_float32(Napi::Env env, const Napi::Value& v, const char* name, size_t expected);

Napi::Float32Array to_float32(Napi::Env env, const std::vector<float>& v);
// The array's storage becomes `v`'s own (no copy; freed when the array is collected).
Napi::Float32Array adopt_float32(Napi::Env env, std::vector<float>&& v);
Napi::Int32Array to_int32(Napi::Env env, const std::vector<int32_t>& v);
Napi::Uint8Array to_uint8(Napi::Env env, const std::vector<uint8_t>& v);

}  // namespace s2s

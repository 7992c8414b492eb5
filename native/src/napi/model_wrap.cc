// Model binding: argument checking on the JavaScript thread, engine work through engine_call.
#include "napi/model_wrap.h"
#include "napi/group_wrap.h"

#include <cmath>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "napi/util.h"

namespace s2s {

namespace {

size_t optional_size_arg(Napi::Env env, const Napi::CallbackInfo& info, size_t i, const char* name, size_t hi,
                         size_t def) {
  return info.Length() > i && !info[i].IsUndefined() ? get_size_arg(env, info, i, name, hi) : def;
}

void check_range(Napi::Env env, size_t offset, size_t length, size_t total) {
  if (offset + length > total)
    throw Napi::RangeError::New(env, "offset + length (" + std::to_string(offset + length) +
                                         ") exceeds the number of parameters (" + std::to_string(total) + ")");
}

BufferKind buffer_kind(Napi::Env env, const Napi::Value& v) {
  std::string k = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (k == "params") return BufferKind::params;
  if (k == "grads") return BufferKind::grads;
  if (k == "adam_m") return BufferKind::adam_m;
  if (k == "adam_v") return BufferKind::adam_v;
  throw Napi::TypeError::New(env, "buffer kind must be 'params', 'grads', 'adam_m' or 'adam_v'");
}

}  // namespace

Napi::Promise ModelWrap::Run(Napi::Env env, std::function<void(ModelBackend&)> work, EngineResult result) {
  // The call holds the model (a disposed wrap, or one whose environment is gone, frees it only
  // when the call is done) and the JavaScript object; the model's mutex serialises calls.
  std::shared_ptr<ModelBackend> m = model_;
  return engine_call(
      env,
      [m, work = std::move(work)] {
        std::lock_guard<std::mutex> lock(m->mu);
        work(*m);
      },
      std::move(result), Value());
}

Napi::Function ModelWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceMethod("layout", &ModelWrap::Layout),
                         InstanceMethod("flopsPerToken", &ModelWrap::FlopsPerToken),
                         InstanceMethod("initWeights", &ModelWrap::InitWeights),
                         InstanceMethod("forward", &ModelWrap::Forward),
                         InstanceMethod("backward", &ModelWrap::Backward),
                         InstanceMethod("step", &ModelWrap::Step),
                         InstanceMethod("zeroGrad", &ModelWrap::ZeroGrad),
                         InstanceMethod("generate", &ModelWrap::Generate),
                         InstanceMethod("greedyMatch", &ModelWrap::GreedyMatch),
                         InstanceMethod("divergence", &ModelWrap::Divergence),
                         InstanceMethod("readBuffer", &ModelWrap::ReadBuffer),
                         InstanceMethod("writeBuffer", &ModelWrap::WriteBuffer),
                         InstanceMethod("dispose", &ModelWrap::Dispose),
                         InstanceMethod("allreduceGrads", &ModelWrap::AllreduceGrads),
                         InstanceMethod("broadcastParams", &ModelWrap::BroadcastParams),
                         InstanceAccessor("numParams", &ModelWrap::NumParams, nullptr),
                         InstanceAccessor("device", &ModelWrap::Device, nullptr),
                         InstanceAccessor("precision", &ModelWrap::MatmulPrecision, nullptr),
                         InstanceAccessor("config", &ModelWrap::Config, nullptr),
                         InstanceAccessor("adamStep", &ModelWrap::GetAdamStep, &ModelWrap::SetAdamStep),
                     });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "NativeModel(config): config must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  ModelConfig c;
  for (const ConfigField& f : config_fields()) {
    if (!f.required && o.Get(f.key).IsUndefined()) continue;  // the ModelConfig default
    switch (f.kind) {
      case ConfigField::integer:
        c.*f.int_member = get_int(env, o, f.key, -1, (int)f.min, (int)f.max);
        break;
      case ConfigField::boolean:
        c.*f.bool_member = get_bool(env, o, f.key, c.*f.bool_member);
        break;
      case ConfigField::number: {
        double v = get_number(env, o, f.key, c.*f.number_member);
        if (!std::isfinite(v) || v <= 0) throw Napi::RangeError::New(env, std::string(f.key) + " must be a positive finite number");
        c.*f.number_member = v;
        break;
      }
      case ConfigField::string: {
        Napi::Value v = o.Get(f.key);
        std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
        std::string choices = f.choices;
        bool ok = v.IsString() && ("|" + choices + "|").find("|" + s + "|") != std::string::npos && !s.empty();
        if (!ok) throw Napi::TypeError::New(env, std::string(f.key) + " must be one of " + choices);
        c.*f.string_member = s;
        break;
      }
    }
  }
  Napi::Value dev = o.Get("device");
  std::string device = dev.IsUndefined() ? "auto" : dev.IsString() ? dev.As<Napi::String>().Utf8Value() : "";
  if (device != "auto" && device != "cpu" && device != "cuda") throw Napi::TypeError::New(env, "device must be 'auto', 'cpu' or 'cuda'");
  try {
    model_ = make_backend(c, device);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "out of memory allocating the model's parameters");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  external_bytes_ = (int64_t)model_->num_params() * (int64_t)sizeof(float);
  Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

ModelWrap::~ModelWrap() {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

ModelBackend* ModelWrap::model(Napi::Env env) {
  if (!model_) throw Napi::Error::New(env, "this model was disposed");
  return model_.get();
}

Napi::Value ModelWrap::Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& layout = model(env)->layout();
  Napi::Array out = Napi::Array::New(env, layout.size());
  for (size_t i = 0; i < layout.size(); i++) {
    const TensorInfo& t = layout[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    Napi::Array shape = Napi::Array::New(env, t.shape.size());
    for (size_t d = 0; d < t.shape.size(); d++) shape.Set((uint32_t)d, Napi::Number::New(env, (double)t.shape[d]));
    o.Set("shape", shape);
    o.Set("offset", Napi::Number::New(env, (double)t.offset));
    o.Set("numel", Napi::Number::New(env, (double)t.numel));
    o.Set("decay", Napi::Boolean::New(env, t.decay));
    out.Set((uint32_t)i, o);
  }
  return out;
}

Napi::Value ModelWrap::NumParams(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)model(info.Env())->num_params());
}

Napi::Value ModelWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ModelConfig& c = model(env)->config();
  Napi::Object o = Napi::Object::New(env);
  for (const ConfigField& f : config_fields()) {
    switch (f.kind) {
      case ConfigField::integer:
        o.Set(f.key, c.*f.int_member);
        break;
      case ConfigField::boolean:
        o.Set(f.key, c.*f.bool_member);
        break;
      case ConfigField::number:
        o.Set(f.key, c.*f.number_member);
        break;
      case ConfigField::string:
        o.Set(f.key, c.*f.string_member);
        break;
    }
  }
  return o;
}

Napi::Value ModelWrap::FlopsPerToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelBackend* m = model(env);
  int T = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : m->config().max_seq_len;
  return Napi::Number::New(env, m->flops_per_token(T));
}

Napi::Value ModelWrap::GetAdamStep(const Napi::CallbackInfo& info) {
  ModelBackend* m = model(info.Env());
  std::lock_guard<std::mutex> lock(m->mu);
  return Napi::Number::New(info.Env(), (double)m->optimizer_step());
}

void ModelWrap::SetAdamStep(const Napi::CallbackInfo& info, const Napi::Value& value) {
  Napi::Env env = info.Env();
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "adamStep must be a number");
  double v = value.As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0)
    throw Napi::RangeError::New(env, "adamStep must be a non-negative integer");
  ModelBackend* m = model(env);
  std::lock_guard<std::mutex> lock(m->mu);
  m->set_optimizer_step((int64_t)v);
}

Napi::Value ModelWrap::InitWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  uint64_t seed = get_seed(env, info[0], "seed");
  return Run(env, [seed](ModelBackend& m) { m.init_weights(seed); }, nullptr);
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  int B = get_int_arg(env, info, 2, "B", 1, std::numeric_limits<int>::max());
  int T = get_int_arg(env, info, 3, "T", 1, std::numeric_limits<int>::max());
  size_t n = (size_t)B * T;
  auto tokens = copy_int32(env, info[0], "tokens", n);
  bool has_targets = !(info[1].IsNull() || info[1].IsUndefined());
  std::vector<int32_t> targets = has_targets ? copy_int32(env, info[1], "targets", n) : std::vector<int32_t>();
  ForwardOptions o;
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object opts = info[4].As<Napi::Object>();
    check_keys(env, opts, "forward options", {"logprob", "values", "entropy", "temperature"});
    o.logprob = get_bool(env, opts, "logprob", true);
    o.values = get_bool(env, opts, "values", false);
    o.entropy = get_bool(env, opts, "entropy", false);
    o.temperature = (float)get_number(env, opts, "temperature", 1.0);
  }
  auto result = std::make_shared<ForwardResult>();
  return Run(env,
      [=](ModelBackend& m) { *result = m.forward(tokens.data(), has_targets ? targets.data() : nullptr, B, T, o); },
      [=](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        if (o.logprob) out.Set("logprob", to_float32(env, result->logprob));
        if (o.values) out.Set("values", to_float32(env, result->values));
        if (o.entropy) out.Set("entropy", to_float32(env, result->entropy));
        return out;
      });
}

Napi::Value ModelWrap::Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  // Copied now, at call time: changing the arrays after the call does not change the result.
  auto given = [&](size_t i) { return info.Length() > i && !info[i].IsNull() && !info[i].IsUndefined(); };
  bool has_dlogprob = given(0), has_dvalue = given(1);
  auto dlogprob = has_dlogprob ? copy_float32(env, info[0], "dlogprob", 0) : std::vector<float>();
  auto dvalue = has_dvalue ? copy_float32(env, info[1], "dvalue", 0) : std::vector<float>();
  return Run(env,
      [=](ModelBackend& m) {
        // The shapes are those of the last forward; check them here, under the model's lock. A
        // given array must have B*T values: an empty one is refused, not taken for "none".
        size_t n = m.last_batch_size();
        if (has_dlogprob && dlogprob.size() != n)
          throw Error("dlogprob has " + std::to_string(dlogprob.size()) + " elements; the last forward had B*T = " +
                      std::to_string(n));
        if (has_dvalue && dvalue.size() != n)
          throw Error("dvalue has " + std::to_string(dvalue.size()) + " elements; the last forward had B*T = " +
                      std::to_string(n));
        m.backward(has_dlogprob ? dlogprob.data() : nullptr, has_dvalue ? dvalue.data() : nullptr);
      },
      nullptr);
}

Napi::Value ModelWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  AdamWConfig c;
  // No defaults for the learning rate and no unknown keys: a misspelt option is not a default.
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "step(options) needs an options object with lr (known keys: lr, beta1, beta2, eps, "
                                    "weightDecay, maxGradNorm)");
  {
    Napi::Object o = info[0].As<Napi::Object>();
    check_keys(env, o, "step options", {"lr", "beta1", "beta2", "eps", "weightDecay", "maxGradNorm"});
    if (o.Get("lr").IsUndefined()) throw Napi::TypeError::New(env, "step options: lr is required (the learning rate)");
    c.lr = (float)get_number(env, o, "lr", c.lr);
    c.beta1 = (float)get_number(env, o, "beta1", c.beta1);
    c.beta2 = (float)get_number(env, o, "beta2", c.beta2);
    c.eps = (float)get_number(env, o, "eps", c.eps);
    c.weight_decay = (float)get_number(env, o, "weightDecay", c.weight_decay);
    c.max_grad_norm = (float)get_number(env, o, "maxGradNorm", c.max_grad_norm);
  }
  auto norm = std::make_shared<double>(0.0);
  return Run(env, [=](ModelBackend& m) { *norm = m.step(c); },
      [=](Napi::Env env) { return Napi::Number::New(env, *norm); });
}

Napi::Value ModelWrap::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  return Run(env, [](ModelBackend& m) { m.zero_grad(); }, nullptr);
}

Napi::Value ModelWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  auto flat = copy_int32(env, info[0], "prompts", 0);
  auto lengths = copy_int32(env, info[1], "promptLengths", 0);
  std::vector<std::vector<int32_t>> prompts;
  size_t at = 0;
  for (size_t b = 0; b < lengths.size(); b++) {
    if (lengths[b] < 0 || at + (size_t)lengths[b] > flat.size())
      throw Napi::RangeError::New(env, "promptLengths do not add up to the length of prompts");
    prompts.emplace_back(flat.begin() + at, flat.begin() + at + lengths[b]);
    at += lengths[b];
  }
  if (at != flat.size()) throw Napi::RangeError::New(env, "promptLengths do not add up to the length of prompts");
  GenerateOptions o;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object opts = info[2].As<Napi::Object>();
    check_keys(env, opts, "generate options", {"maxNewTokens", "temperature", "topK", "topP", "eos", "seed", "firstRow"});
    o.max_new_tokens = get_int(env, opts, "maxNewTokens", o.max_new_tokens, 1, 1 << 20);
    o.sampling.temperature = (float)get_number(env, opts, "temperature", 1.0);
    o.sampling.top_k = get_int(env, opts, "topK", 0, 0, std::numeric_limits<int>::max());
    o.sampling.top_p = (float)get_number(env, opts, "topP", 1.0);
    if (opts.Has("eos") && !opts.Get("eos").IsUndefined() && !opts.Get("eos").IsNull())
      o.eos = copy_int32(env, opts.Get("eos"), "eos", 0);
    if (opts.Has("seed")) o.seed = get_seed(env, opts.Get("seed"), "seed");
    if (opts.Has("firstRow") && !opts.Get("firstRow").IsUndefined()) o.first_row = get_seed(env, opts.Get("firstRow"), "firstRow");
  }
  auto result = std::make_shared<GenerateResult>();
  return Run(env, [=](ModelBackend& m) { *result = m.generate(prompts, o); },
      [=](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("tokens", to_int32(env, result->tokens));
        out.Set("logprobs", to_float32(env, result->logprobs));
        out.Set("lengths", to_int32(env, result->lengths));
        out.Set("eos", to_uint8(env, result->eos));
        out.Set("maxNewTokens", result->max_new);
        return out;
      });
}

namespace {
// (tokens, B, T, spans): the arguments greedyMatch and divergence share, copied for the worker.
struct SpanArgs {
  int B, T;
  std::vector<int32_t> tokens, spans;
};
SpanArgs span_args(Napi::Env env, const Napi::CallbackInfo& info) {
  SpanArgs a;
  a.B = get_int_arg(env, info, 1, "B", 1, std::numeric_limits<int>::max());
  a.T = get_int_arg(env, info, 2, "T", 1, std::numeric_limits<int>::max());
  a.tokens = copy_int32(env, info[0], "tokens", (size_t)a.B * a.T);
  a.spans = copy_int32(env, info[3], "spans", (size_t)a.B * 2);
  return a;
}
}  // namespace

Napi::Value ModelWrap::GreedyMatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  auto a = std::make_shared<SpanArgs>(span_args(env, info));
  auto result = std::make_shared<GreedyMatchResult>();
  return Run(env, [=](ModelBackend& m) { *result = m.greedy_match(a->tokens.data(), a->B, a->T, a->spans.data()); },
      [=](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("match", to_uint8(env, result->match));
        out.Set("argmax", to_int32(env, result->argmax));
        return out;
      });
}

Napi::Value ModelWrap::Divergence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  auto a = std::make_shared<SpanArgs>(span_args(env, info));
  DivergenceConfig c;
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object o = info[4].As<Napi::Object>();
    check_keys(env, o, "divergence scores", {"positive", "negative", "neutral"});
    c.positive = (float)get_number(env, o, "positive", c.positive);
    c.negative = (float)get_number(env, o, "negative", c.negative);
    c.neutral = (float)get_number(env, o, "neutral", c.neutral);
  }
  auto result = std::make_shared<DivergenceResult>();
  return Run(env, [=](ModelBackend& m) { *result = m.divergence(a->tokens.data(), a->B, a->T, a->spans.data(), c); },
      [=](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("scores", to_float32(env, result->scores));
        out.Set("firstDivergence", to_int32(env, result->first_divergence));
        out.Set("argmax", to_int32(env, result->argmax));
        return out;
      });
}

Napi::Value ModelWrap::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model(info.Env())->device());
}

Napi::Value ModelWrap::MatmulPrecision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model(info.Env())->matmul_precision());
}

Napi::Value ModelWrap::ReadBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelBackend* m = model(env);
  BufferKind kind = buffer_kind(env, info[0]);
  size_t total = m->num_params();
  size_t offset = optional_size_arg(env, info, 1, "offset", total, 0);
  size_t length = optional_size_arg(env, info, 2, "length", total, total - offset);
  check_range(env, offset, length, total);
  // Filled on the engine thread into memory the call owns (a JavaScript array could go with its
  // environment while the engine writes), then handed to JavaScript as the array's own storage:
  // one copy, as before.
  auto out = std::make_shared<std::vector<float>>();
  return Run(env,
      [=](ModelBackend& m) {
        out->resize(length);
        m.read_buffer(kind, offset, length, out->data());
      },
      [out](Napi::Env env) { return adopt_float32(env, std::move(*out)); });
}

Napi::Value ModelWrap::WriteBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelBackend* m = model(env);
  BufferKind kind = buffer_kind(env, info[0]);
  if (!is_typed(info[1], napi_float32_array)) throw Napi::TypeError::New(env, "data must be a Float32Array");
  Napi::Float32Array data = info[1].As<Napi::Float32Array>();
  check_not_detached(env, data, "data");
  size_t total = m->num_params();
  size_t offset = optional_size_arg(env, info, 2, "offset", total, 0);
  size_t length = data.ElementLength();
  check_range(env, offset, length, total);
  // Copied now, at call time, like every other array argument: changing (or transferring) the
  // array after the call does not change what is written.
  auto src = std::make_shared<std::vector<float>>(data.Data(), data.Data() + length);
  return Run(env, [=](ModelBackend& m) { m.write_buffer(kind, offset, length, src->data()); }, nullptr);
}

// allreduceGrads(group, scale): the gradients summed over the group's ranks, times scale.
Napi::Value ModelWrap::AllreduceGrads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  auto g = GroupWrap::unwrap(env, info[0], "group");
  double scale = info.Length() > 1 && !info[1].IsUndefined() ? (info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : NAN) : 1.0;
  if (!std::isfinite(scale)) throw Napi::TypeError::New(env, "scale must be a finite number");
  return Run(env, [g, scale](ModelBackend& m) { m.allreduce_grads(*g, (float)scale); }, nullptr);
}

// broadcastParams(group, root = 0, optimizer = false): root's parameters (and AdamW state) everywhere.
Napi::Value ModelWrap::BroadcastParams(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model(env);
  auto g = GroupWrap::unwrap(env, info[0], "group");
  int root = info.Length() > 1 && !info[1].IsUndefined() ? get_int_arg(env, info, 1, "root", 0, g->size() - 1) : 0;
  bool optimizer = false;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsBoolean()) throw Napi::TypeError::New(env, "optimizer must be a boolean");
    optimizer = info[2].As<Napi::Boolean>().Value();
  }
  return Run(env, [g, root, optimizer](ModelBackend& m) { m.broadcast_params(*g, root, optimizer); }, nullptr);
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  // Running calls hold their own reference; memory goes when the last of them finishes.
  model_.reset();
  if (external_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_bytes_);
    external_bytes_ = 0;
  }
  return info.Env().Undefined();
}

}  // namespace s2s

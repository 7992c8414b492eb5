// The engine's Model as a JavaScript class. Every heavy call returns a Promise (engine_call):
// arguments are checked and copied on the JavaScript thread, the work runs on the engine thread,
// and engine errors become rejections.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>

#include "backend.h"
#include "napi/engine_call.h"
#include "napi/util.h"

namespace s2s {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

  // The model, or a JavaScript error when it was disposed.
  ModelBackend* model(Napi::Env env);

 private:
  // Runs work(model) on the engine thread under the model's lock; see engine_call.
  Napi::Promise Run(Napi::Env env, std::function<void(ModelBackend&)> work, EngineResult result);

  Napi::Value Layout(const Napi::CallbackInfo& info);
  Napi::Value NumParams(const Napi::CallbackInfo& info);
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value FlopsPerToken(const Napi::CallbackInfo& info);
  Napi::Value GetAdamStep(const Napi::CallbackInfo& info);
  void SetAdamStep(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value InitWeights(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value GreedyMatch(const Napi::CallbackInfo& info);
  Napi::Value Divergence(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value MatmulPrecision(const Napi::CallbackInfo& info);
  Napi::Value ReadBuffer(const Napi::CallbackInfo& info);
  Napi::Value WriteBuffer(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value AllreduceGrads(const Napi::CallbackInfo& info);
  Napi::Value BroadcastParams(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelBackend> model_;
  int64_t external_bytes_ = 0;
};

}  // namespace s2s

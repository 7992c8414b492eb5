// The engine's Model as a JavaScript class. Every heavy call is an AsyncWorker that returns a
// Promise; arguments are checked on the JavaScript thread and engine errors become rejections.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>

#include "backend.h"
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
  // Runs work(model) on a worker thread under the model's lock; see PromiseWorker.
  Napi::Promise Run(Napi::Env env, std::function<void(ModelBackend&)> work, PromiseWorker::Result result);

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
  Napi::Value ReadBuffer(const Napi::CallbackInfo& info);
  Napi::Value WriteBuffer(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelBackend> model_;
  int64_t external_bytes_ = 0;
};

}  // namespace s2s

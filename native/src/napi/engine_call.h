// Engine calls from JavaScript: the work runs on the engine's one thread, and its Promise is
// settled on the JavaScript thread through the environment's thread-safe function. No libuv pool
// thread waits on the engine (fs and dns keep all four), and an environment that shuts down with
// calls in flight (worker.terminate(), process.exit() inside a worker) never sees them again.
#pragma once

#include <napi.h>

#include <functional>

namespace s2s {

using EngineWork = std::function<void()>;
// Builds the resolved value on the JavaScript thread once the work is done.
using EngineResult = std::function<Napi::Value(Napi::Env)>;

// Once per environment (the main thread's and each worker's), from the addon's Init.
void init_engine_calls(Napi::Env env);

// Queues `work` on the engine thread (calls run one at a time, in the order they were made) and
// returns a Promise: resolved with result(env) (undefined without one), or rejected with an Error
// carrying the message of whatever `work` threw. `keep_alive` stays referenced until then.
//
// If the environment shuts down first, the work still runs to its end (it owns what it touches)
// and the promise is dropped with the environment: nothing reaches into JavaScript after its
// environment has begun to go. So neither `work` nor anything it captures may hold JavaScript
// values; results are built by `result`, on the JavaScript thread.
Napi::Promise engine_call(Napi::Env env, EngineWork work, EngineResult result,
                          Napi::Object keep_alive = Napi::Object());

}  // namespace s2s

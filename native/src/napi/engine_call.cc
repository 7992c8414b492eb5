// Engine calls: the engine thread, and how a finished call finds its way back to JavaScript.
//
// Lifetimes, because an environment can go away while its calls run:
//   - a Call is owned by whoever holds it: the engine thread while it runs, the thread-safe
//     function's queue once handed over, call_js when it is delivered;
//   - a Channel (one per environment) outlives every Call that points at it (shared_ptr);
//   - Node frees an environment's thread-safe function during the environment's teardown, even
//     while other threads hold it (Node <= 25.3; see nodejs/node#55706). So the engine thread only
//     calls it under the Channel's lock while `open`, and a cleanup hook registered after the
//     function (cleanup hooks run last-in, first-out) clears `open` under that lock before Node
//     tears the function down. Calls still queued then come back with a null env and are freed
//     without touching JavaScript; their deferreds and references go with the environment.
#include "napi/engine_call.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>

#include "common.h"

namespace s2s {

namespace {

// Every engine call runs on this one thread. OpenMP keeps a team of worker threads for each
// thread that opens parallel regions, and once libgomp manages more threads than there are cores
// it stops spinning between regions and sleeps instead: a decoding step of small kernels then
// runs ~10x slower. Calls spread over several threads would each bring their own team.
class EngineThread {
 public:
  static EngineThread& get() {
    static EngineThread* t = new EngineThread();  // never destroyed: the thread lives as long as the process
    return *t;
  }

  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  EngineThread() { std::thread([this] { loop(); }).detach(); }

  void loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      ThreadScope threads;
      task();  // never throws: run() catches what the work throws
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

struct Channel {
  std::mutex mu;
  bool open = true;  // cleared by the environment's cleanup hook
  napi_threadsafe_function tsfn = nullptr;
  size_t pending = 0;  // JavaScript thread only: calls made and not yet settled
};

struct Call {
  std::shared_ptr<Channel> channel;
  EngineWork work;
  EngineResult result;
  napi_deferred deferred = nullptr;
  napi_ref keep_alive = nullptr;
  bool failed = false;
  std::string error;
};

void settle(napi_env raw, Call* c) {
  Napi::Env env(raw);
  try {
    if (c->failed) {
      napi_reject_deferred(raw, c->deferred, Napi::Error::New(env, c->error).Value());
    } else {
      Napi::Value v = c->result ? c->result(env) : env.Undefined();
      napi_resolve_deferred(raw, c->deferred, v);
    }
  } catch (const Napi::Error& e) {
    napi_reject_deferred(raw, c->deferred, e.Value());
  } catch (...) {
    // Nothing more can be done here (the environment is likely stopping: V8 refuses to run).
    // The deferred stays unsettled and goes with the environment; the process goes on.
  }
}

// On the JavaScript thread: a finished call comes back. env is null when the thread-safe
// function is being torn down with this call still queued.
void call_js(napi_env env, napi_value, void*, void* data) {
  std::unique_ptr<Call> c(static_cast<Call*>(data));
  if (env == nullptr) return;
  settle(env, c.get());
  if (c->keep_alive) napi_delete_reference(env, c->keep_alive);
  Channel& ch = *c->channel;
  if (--ch.pending == 0) napi_unref_threadsafe_function(env, ch.tsfn);
}

// On the engine thread.
void run(Call* c) {
  try {
    c->work();
  } catch (const std::bad_alloc&) {
    c->failed = true;
    c->error = "out of memory in the s2s engine";
  } catch (const std::exception& e) {
    c->failed = true;
    c->error = e.what();
  } catch (...) {
    c->failed = true;
    c->error = "the s2s engine failed with an unknown error";
  }
  std::shared_ptr<Channel> ch = c->channel;
  std::lock_guard<std::mutex> lock(ch->mu);
  if (ch->open && napi_call_threadsafe_function(ch->tsfn, c, napi_tsfn_nonblocking) == napi_ok) return;
  // The environment is gone or going: free what the call owns and touch none of its JavaScript.
  delete c;
}

std::shared_ptr<Channel>& channel_of(Napi::Env env) {
  auto* ch = env.GetInstanceData<std::shared_ptr<Channel>>();
  if (!ch) throw Napi::Error::New(env, "s2s: engine calls were not set up in this environment");
  return *ch;
}

void check(Napi::Env env, napi_status s, const char* what) {
  if (s != napi_ok) throw Napi::Error::New(env, std::string("s2s: ") + what + " failed (napi status " + std::to_string(s) + ")");
}

}  // namespace

void init_engine_calls(Napi::Env env) {
  auto ch = std::make_shared<Channel>();
  napi_value name = Napi::String::New(env, "s2s");
  check(env,
        napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, call_js,
                                        &ch->tsfn),
        "napi_create_threadsafe_function");
  // Unreferenced while no call is pending, so an idle model does not keep the process alive.
  check(env, napi_unref_threadsafe_function(env, ch->tsfn), "napi_unref_threadsafe_function");
  env.SetInstanceData<std::shared_ptr<Channel>>(new std::shared_ptr<Channel>(ch));
  auto* hook = new std::shared_ptr<Channel>(ch);
  check(env,
        napi_add_env_cleanup_hook(
            env,
            [](void* arg) {
              std::unique_ptr<std::shared_ptr<Channel>> held(static_cast<std::shared_ptr<Channel>*>(arg));
              std::lock_guard<std::mutex> lock((*held)->mu);
              (*held)->open = false;
            },
            hook),
        "napi_add_env_cleanup_hook");
}

Napi::Promise engine_call(Napi::Env env, EngineWork work, EngineResult result, Napi::Object keep_alive) {
  std::shared_ptr<Channel>& ch = channel_of(env);
  auto c = std::make_unique<Call>();
  c->channel = ch;
  c->work = std::move(work);
  c->result = std::move(result);
  napi_value promise;
  check(env, napi_create_promise(env, &c->deferred, &promise), "napi_create_promise");
  if (!keep_alive.IsEmpty()) check(env, napi_create_reference(env, keep_alive, 1, &c->keep_alive), "napi_create_reference");
  if (ch->pending++ == 0) napi_ref_threadsafe_function(env, ch->tsfn);
  Call* raw = c.release();
  EngineThread::get().post([raw] { run(raw); });
  return Napi::Promise(env, promise);
}

}  // namespace s2s

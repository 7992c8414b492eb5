// Process groups: forming one over the rendezvous store, failures that name the rank, and the Gloo
// implementation (compiled when the build found Gloo: S2S_HAVE_GLOO).
#include "comm/process_group.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "common.h"
#include "comm/tcp_store.h"

#ifdef S2S_HAVE_GLOO
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#endif

namespace s2s {

namespace {

// "600 s", "1.5 s"
std::string ms_text(std::chrono::milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", t.count() / 1000.0);
  return buf;
}

}  // namespace

DistSupport dist_support() {
  DistSupport s;
#ifdef S2S_HAVE_GLOO
  s.gloo = true;
#else
  s.gloo_reason = "this build of the addon has no Gloo: install libgloo-dev (scripts/setup.sh does) and rebuild";
#endif
  return s;
}

ProcessGroup::ProcessGroup(const GroupOptions& o, std::unique_ptr<TcpStoreServer> server,
                           std::unique_ptr<TcpStoreClient> store)
    : opts_(o), server_(std::move(server)), store_(std::move(store)) {}

// The store's client goes first: rank 0's server then sees its own connection close like the others'.
ProcessGroup::~ProcessGroup() {
  store_.reset();
  server_.reset();
}

std::string ProcessGroup::explain(const char* what, const std::string& lib_message) {
  std::vector<int> gone;
  bool store_lost = false;
  // The server notices a closed connection a moment after the collective library does.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (gone.empty() && !store_lost) {
    try {
      for (int r = 0; r < size(); r++) {
        std::vector<char> v;
        if (r != rank() && store_->get("s2s/gone/" + std::to_string(r), std::chrono::milliseconds(0), &v)) gone.push_back(r);
      }
    } catch (const Error&) {
      store_lost = true;  // rank 0, which serves the store, is gone
    }
    if (std::chrono::steady_clock::now() >= until) break;
    if (gone.empty() && !store_lost) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string who = "rank " + std::to_string(rank()) + " of " + std::to_string(size());
  std::string msg = std::string(what) + " failed on " + who + ": ";
  if (store_lost && rank() != 0) {
    msg += "rank 0 exited (its rendezvous store closed)";
  } else if (!gone.empty()) {
    msg += gone.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < gone.size(); i++) msg += (i ? ", " : "") + std::to_string(gone[i]);
    msg += " exited";
  } else if (lib_message.find("imed out") != std::string::npos) {
    msg += "a peer did not take part within the timeout of " + ms_text(opts_.timeout) +
           " (a rank is stuck, or much slower than the others; S2S_DIST_TIMEOUT sets the timeout in seconds)";
  } else {
    msg += "a peer's connection failed";
  }
  return msg + " [" + backend() + ": " + lib_message + "]";
}

template <class F>
void ProcessGroup::guarded(const char* what, F&& f) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_.empty())
    throw Error(std::string(what) + ": the process group failed earlier and cannot be used again (" + failed_ + ")");
  try {
    f();
  } catch (const std::exception& e) {
    failed_ = explain(what, e.what());
    throw Error(failed_);
  }
}

void ProcessGroup::allreduce_sum(float* data, size_t n) {
  if (n) guarded("all-reduce", [&] { do_allreduce(data, n); });
}
void ProcessGroup::allreduce_sum(double* data, size_t n) {
  if (n) guarded("all-reduce", [&] { do_allreduce(data, n); });
}
void ProcessGroup::broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size())
    throw Error("broadcast: root " + std::to_string(root) + " is not a rank of this group (0.." + std::to_string(size() - 1) + ")");
  if (bytes) guarded("broadcast", [&] { do_broadcast(data, bytes, root); });
}
void ProcessGroup::allgather(const double* in, size_t n, double* out) {
  if (n) guarded("all-gather", [&] { do_allgather(in, n, out); });
}
void ProcessGroup::barrier() {
  guarded("barrier", [&] { do_barrier(); });
}

namespace {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// The local address this machine uses to reach `host` (a UDP "connect" sends nothing).
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    throw Error("cannot resolve MASTER_ADDR '" + host + "'");
  std::string out;
  int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    char buf[INET6_ADDRSTRLEN] = {0};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
      else
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
      out = buf;
    }
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(res);
  if (out.empty()) throw Error("no network route to MASTER_ADDR '" + host + "' (set GLOO_SOCKET_IFNAME to the interface to use)");
  return out;
}


#ifdef S2S_HAVE_GLOO

// Gloo's rendezvous over our store, its keys under "gloo/".
class GlooStore : public gloo::rendezvous::Store {
 public:
  GlooStore(TcpStoreClient& c, std::chrono::milliseconds timeout) : c_(c), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { c_.set("gloo/" + key, data); }
  std::vector<char> get(const std::string& key) override {
    std::vector<char> v;
    if (!c_.get("gloo/" + key, timeout_, &v))
      throw Error("rendezvous: no rank set '" + key + "' within " + ms_text(timeout_));
    return v;
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const auto& k : keys) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      std::vector<char> v;
      if (!c_.get("gloo/" + k, std::max(left, std::chrono::milliseconds(0)), &v))
        throw Error("rendezvous: no rank set '" + k + "' within " + ms_text(timeout));
    }
  }

 private:
  TcpStoreClient& c_;
  std::chrono::milliseconds timeout_;
};

class GlooGroup final : public ProcessGroup {
 public:
  GlooGroup(const GroupOptions& o, std::unique_ptr<TcpStoreServer> server, std::unique_ptr<TcpStoreClient> store)
      : ProcessGroup(o, std::move(server), std::move(store)) {
    gloo::transport::tcp::attr attr;
    if (!o.iface.empty())
      attr.iface = o.iface;
    else
      attr.hostname = is_loopback(o.master_addr) ? "127.0.0.1" : local_address_towards(o.master_addr, o.master_port);
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.world_size);
      ctx->setTimeout(o.timeout);
      GlooStore gs(*store_, o.timeout);
      ctx->connectFullMesh(gs, device_);
      ctx_ = ctx;
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("forming the process group failed on rank " + std::to_string(o.rank) + " [gloo: " + e.what() + "]" +
                  (o.iface.empty() ? "" : " (GLOO_SOCKET_IFNAME=" + o.iface + ")"));
    }
  }

  const char* backend() const override { return "gloo"; }

 protected:
  template <typename T>
  void allreduce(T* data, size_t n) {
    gloo::AllreduceOptions opts(ctx_);
    opts.setOutput(data, n);
    opts.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<T>));
    opts.setTag(next_tag());
    gloo::allreduce(opts);
  }
  void do_allreduce(float* data, size_t n) override { allreduce(data, n); }
  void do_allreduce(double* data, size_t n) override { allreduce(data, n); }
  void do_broadcast(void* data, size_t bytes, int root) override {
    gloo::BroadcastOptions opts(ctx_);
    opts.setOutput(static_cast<char*>(data), bytes);
    opts.setRoot(root);
    opts.setTag(next_tag());
    gloo::broadcast(opts);
  }
  void do_allgather(const double* in, size_t n, double* out) override {
    gloo::AllgatherOptions opts(ctx_);
    opts.setInput(const_cast<double*>(in), n);
    opts.setOutput(out, n * (size_t)size());
    opts.setTag(next_tag());
    gloo::allgather(opts);
  }
  void do_barrier() override {
    gloo::BarrierOptions opts(ctx_);
    opts.setTag(next_tag());
    gloo::barrier(opts);
  }

 private:
  uint32_t next_tag() { return tag_++; }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 1;
};

#endif  // S2S_HAVE_GLOO

}  // namespace

std::unique_ptr<ProcessGroup> make_process_group(const GroupOptions& o) {
  if (o.world_size < 1) throw Error("WORLD_SIZE must be at least 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw Error("RANK must be in 0.." + std::to_string(o.world_size - 1) + " (WORLD_SIZE " + std::to_string(o.world_size) +
                "), got " + std::to_string(o.rank));
  if (o.master_port < 1 || o.master_port > 65535)
    throw Error("MASTER_PORT must be a TCP port (1..65535), got " + std::to_string(o.master_port));
  if (o.master_addr.empty()) throw Error("MASTER_ADDR is empty");
  if (o.timeout.count() <= 0) throw Error("the process group's timeout must be positive");
  DistSupport support = dist_support();
  if (!support.gloo) throw Error("cannot form a process group: " + support.gloo_reason);
#ifdef S2S_HAVE_GLOO
  std::unique_ptr<TcpStoreServer> server;
  if (o.rank == 0) server = std::make_unique<TcpStoreServer>(o.master_port);
  auto store = std::make_unique<TcpStoreClient>(o.master_addr, o.master_port, o.timeout);
  store->hello(o.rank);
  // Everyone says it has come, with the world size it was started with; a rank that never comes,
  // or came with another size, is named.
  std::string size_text = std::to_string(o.world_size);
  store->set("s2s/joined/" + std::to_string(o.rank), std::vector<char>(size_text.begin(), size_text.end()));
  auto deadline = std::chrono::steady_clock::now() + o.timeout;
  std::vector<int> missing;
  for (int r = 0; r < o.world_size; r++) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    std::vector<char> v;
    if (!store->get("s2s/joined/" + std::to_string(r), std::max(left, std::chrono::milliseconds(0)), &v)) {
      missing.push_back(r);
      continue;
    }
    std::string theirs(v.begin(), v.end());
    if (theirs != size_text)
      throw Error("rank " + std::to_string(r) + " was started with WORLD_SIZE=" + theirs + " and rank " +
                  std::to_string(o.rank) + " with WORLD_SIZE=" + size_text + ": every rank needs the same world size");
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); i++) list += (i ? ", " : "") + std::to_string(missing[i]);
    throw Error(std::string(missing.size() == 1 ? "rank " : "ranks ") + list + " of " + size_text + " did not join within " +
                ms_text(o.timeout) + " (rendezvous at " + o.master_addr + ":" + std::to_string(o.master_port) +
                "; was every rank started, with the same MASTER_ADDR and MASTER_PORT?)");
  }
  return std::make_unique<GlooGroup>(o, std::move(server), std::move(store));
#else
  return nullptr;
#endif
}

}  // namespace s2s

// A process group: the ranks of a data-parallel run and the collectives data parallelism needs
// (all-reduce of the gradient buffer and of small statistics, broadcast of the parameters,
// all-gather, barrier), over an existing collective library: Gloo (TCP) between CPU processes on
// one or many machines. The ranks meet through a rendezvous store that rank 0 serves at
// MASTER_ADDR:MASTER_PORT (torchrun's conventions).
//
// Every collective blocks until all ranks have joined it, or fails: a rank whose process ended
// (its connection closes) or that does not answer within the timeout makes the collective throw an
// s2s::Error naming that rank where it can be known. After a failure the group is unusable (the
// library's connections are in an unknown state) and every later call says so.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

namespace s2s {

class TcpStoreClient;
class TcpStoreServer;

struct GroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // How long a rank waits for the others: to join, and inside each collective.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // The network interface Gloo binds to (GLOO_SOCKET_IFNAME); empty: the address that reaches
  // MASTER_ADDR's side (the loopback when MASTER_ADDR is local, else this host's name).
  std::string iface;
};

// Which collective libraries this build has, and why not the others.
struct DistSupport {
  bool gloo = false;
  std::string gloo_reason;
};
DistSupport dist_support();

class ProcessGroup {
 public:
  virtual ~ProcessGroup();

  int rank() const { return opts_.rank; }
  int size() const { return opts_.world_size; }
  const GroupOptions& options() const { return opts_; }
  virtual const char* backend() const = 0;

  // In place: every rank ends with the element-wise sum over the ranks (bit-identical on all).
  void allreduce_sum(float* data, size_t n);
  void allreduce_sum(double* data, size_t n);
  // root's `bytes` bytes at `data` into every rank's `data`.
  void broadcast(void* data, size_t bytes, int root);
  // out [size() * n]: rank r's `in` at out + r * n.
  void allgather(const double* in, size_t n, double* out);
  void barrier();

 protected:
  ProcessGroup(const GroupOptions& o, std::unique_ptr<TcpStoreServer> server, std::unique_ptr<TcpStoreClient> store);

  virtual void do_allreduce(float* data, size_t n) = 0;
  virtual void do_allreduce(double* data, size_t n) = 0;
  virtual void do_broadcast(void* data, size_t bytes, int root) = 0;
  virtual void do_allgather(const double* in, size_t n, double* out) = 0;
  virtual void do_barrier() = 0;

  GroupOptions opts_;
  std::unique_ptr<TcpStoreServer> server_;  // rank 0 only
  std::unique_ptr<TcpStoreClient> store_;

 private:
  template <class F>
  void guarded(const char* what, F&& f);
  // The library's message, with the rank(s) whose process ended, as the store reports them.
  std::string explain(const char* what, const std::string& lib_message);

  std::mutex mu_;
  std::string failed_;  // the first failure, once there has been one
};

// Forms the group (every rank calls it with its own rank and the same world size, address and
// port); blocks until all ranks have joined or the timeout passes (naming the ranks that did not).
std::unique_ptr<ProcessGroup> make_process_group(const GroupOptions& o);

}  // namespace s2s

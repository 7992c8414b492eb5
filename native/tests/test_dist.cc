// Process groups over Gloo, with the ranks as threads of this one process (each with its own
// group, store connection and sockets, as separate processes would have): the collectives'
// results against sums computed here, the model's gradient all-reduce against one model that
// accumulated every rank's batch, the parameter broadcast, and the failures a run meets: a rank
// that exits, a rank that hangs, a rank that never starts, mismatched world sizes, a taken port.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "cpu/model_cpu.h"
#include "comm/process_group.h"
#include "harness.h"

using namespace s2s;
using Vec = std::vector<float>;
using ms = std::chrono::milliseconds;

namespace {

// A socket listening on a port the system chose (any interface); its port in *port.
int listening_socket(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 1);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A port nobody listens on right now.
int free_port() {
  int port = 0;
  ::close(listening_socket(&port));
  return port;
}

GroupOptions opts(int rank, int world, int port, ms timeout = ms(20000)) {
  GroupOptions o;
  o.rank = rank;
  o.world_size = world;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout = timeout;
  return o;
}

// Runs fn(rank, group) on `world` threads, each rank forming its own group; returns each rank's
// error message ("" when none).
template <class F>
std::vector<std::string> run_ranks(int world, F fn, ms timeout = ms(20000)) {
  int port = free_port();
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; r++)
    threads.emplace_back([&, r] {
      try {
        auto g = make_process_group(opts(r, world, port, timeout));
        fn(r, *g);
      } catch (const std::exception& e) {
        errors[r] = e.what();
        if (errors[r].empty()) errors[r] = "(empty message)";
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

bool skip_without_gloo() {
  DistSupport s = dist_support();
  if (!s.gloo) std::printf("  skipped: %s\n", s.gloo_reason.c_str());
  return !s.gloo;
}

void expect_no_errors(const std::vector<std::string>& errors) {
  for (size_t r = 0; r < errors.size(); r++)
    if (!errors[r].empty()) {
      std::printf("  FAIL rank %zu: %s\n", r, errors[r].c_str());
      harness::failures()++;
    }
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(collectives_sum_broadcast_gather_and_agree_bit_for_bit) {
  if (skip_without_gloo()) return;
  const int W = 3;
  const size_t n = 100003;  // not a multiple of the ring's slices
  std::vector<Vec> sums(W);
  std::vector<std::vector<double>> dsums(W), gathered(W);
  std::vector<std::vector<char>> bcast(W);
  auto errors = run_ranks(W, [&](int r, ProcessGroup& g) {
    EXPECT(g.rank() == r && g.size() == W && std::string(g.backend()) == "gloo");
    Vec x(n);
    harness::fill_uniform(x.data(), n, 100 + r);
    g.allreduce_sum(x.data(), n);
    sums[r] = x;
    std::vector<double> d = {1.0 * r, 0.25, 1e300 / W};
    g.allreduce_sum(d.data(), d.size());
    dsums[r] = d;
    std::vector<char> b(1000, (char)r);
    if (r == 1) b[999] = 42;
    g.broadcast(b.data(), b.size(), 1);
    bcast[r] = b;
    std::vector<double> mine = {(double)r, 10.0 * r};
    gathered[r].resize(2 * W);
    g.allgather(mine.data(), 2, gathered[r].data());
    g.barrier();
  });
  expect_no_errors(errors);
  // the reference: each element summed here, in double
  std::vector<Vec> inputs(W, Vec(n));
  for (int r = 0; r < W; r++) harness::fill_uniform(inputs[r].data(), n, 100 + r);
  Vec want(n);
  for (size_t i = 0; i < n; i++) want[i] = (float)((double)inputs[0][i] + inputs[1][i] + inputs[2][i]);
  for (int r = 0; r < W; r++) {
    if (sums[r].size() != n) continue;
    EXPECT_CLOSE_EACH(sums[r].data(), want.data(), n, 1e-6, 1e-6);
    EXPECT(std::memcmp(sums[r].data(), sums[0].data(), n * sizeof(float)) == 0);  // identical on every rank
    EXPECT(dsums[r] == (std::vector<double>{3.0, 0.75, 1e300}));
    EXPECT(bcast[r].size() == 1000 && bcast[r][0] == 1 && bcast[r][999] == 42);
    EXPECT(gathered[r] == (std::vector<double>{0, 0, 1, 10, 2, 20}));
  }
}

// Two ranks, each with its own batch, averaging their gradients, take the step a single model
// takes on both batches with each batch's loss weighted by one half; and rank 1's differently
// initialised parameters and optimizer state become rank 0's through the broadcast. On `device`
// ("cuda": the gradients go through host memory, Transformer::on_host).
//
// One rank computes at a time: oneDNN's library-managed scratchpad (its default) is shared by every
// primitive, so two threads may not run matmuls at once (wrong gradients under load, seen here),
// and the CUDA emulator runs one kernel at a time. The engine runs every call on its one thread,
// so only these thread-ranks meet this; real ranks are processes.
static std::mutex g_compute;

static void check_gradient_allreduce(const char* device) {
  GPTConfig c{61, 32, 2, 4, 48, true};
  const int B = 2, T = 12;
  std::vector<std::vector<int32_t>> tok = {harness::random_tokens(B * T, c.vocab_size, 1),
                                           harness::random_tokens(B * T, c.vocab_size, 2)};
  std::vector<std::vector<int32_t>> tgt = {harness::random_tokens(B * T, c.vocab_size, 3),
                                           harness::random_tokens(B * T, c.vocab_size, 4)};
  Vec dlogprob(B * T, -1.0f / (B * T)), dvalue(B * T, 0.3f / (B * T));
  ForwardOptions fo;
  fo.values = true;
  AdamWConfig adam;
  adam.lr = 1e-2f;
  adam.max_grad_norm = 1.0f;
  setenv("S2S_CUDA_PRECISION", "fp32", 1);

  // the reference: one model, both batches accumulated at weight 1/2
  auto ref = make_backend(c, device);
  const size_t P = ref->num_params();
  ref->init_weights(7);
  Vec half_dlp(dlogprob), half_dv(dvalue);
  for (auto& x : half_dlp) x *= 0.5f;
  for (auto& x : half_dv) x *= 0.5f;
  for (int r = 0; r < 2; r++) {
    ref->forward(tok[r].data(), tgt[r].data(), B, T, fo);
    ref->backward(half_dlp.data(), half_dv.data());
  }
  Vec ref_grads(P), ref_params(P);
  ref->read_buffer(BufferKind::grads, 0, P, ref_grads.data());
  double ref_norm = ref->step(adam);
  ref->read_buffer(BufferKind::params, 0, P, ref_params.data());

  std::vector<Vec> grads(2, Vec(P)), params(2, Vec(P)), moments(2, Vec(P));
  std::vector<double> norms(2);
  std::vector<int64_t> steps(2);
  auto errors = run_ranks(2, [&](int r, ProcessGroup& g) {
    std::shared_ptr<ModelBackend> m;
    {
      std::lock_guard<std::mutex> lock(g_compute);
      m = make_backend(c, device);
      m->init_weights(r == 0 ? 7 : 8);  // rank 1 starts elsewhere: the broadcast must fix that
      if (r == 1) {
        m->forward(tok[1].data(), tgt[1].data(), B, T, fo);
        m->backward(dlogprob.data(), dvalue.data());
        m->step(adam);  // and it has optimizer state of its own
      }
    }
    m->broadcast_params(g, 0, true);
    {
      std::lock_guard<std::mutex> lock(g_compute);
      m->forward(tok[r].data(), tgt[r].data(), B, T, fo);
      m->backward(dlogprob.data(), dvalue.data());
    }
    m->allreduce_grads(g, 0.5f);
    std::lock_guard<std::mutex> lock(g_compute);
    m->read_buffer(BufferKind::grads, 0, P, grads[r].data());
    norms[r] = m->step(adam);
    steps[r] = m->optimizer_step();
    m->read_buffer(BufferKind::params, 0, P, params[r].data());
    m->read_buffer(BufferKind::adam_m, 0, P, moments[r].data());
  });
  unsetenv("S2S_CUDA_PRECISION");
  expect_no_errors(errors);
  for (int r = 0; r < 2; r++) {
    EXPECT_CLOSE_EACH(grads[r].data(), ref_grads.data(), P, 1e-6, 1e-4);
    EXPECT(std::fabs(norms[r] - ref_norm) <= 1e-5 * ref_norm);
    EXPECT_CLOSE_EACH(params[r].data(), ref_params.data(), P, 1e-6, 1e-4);
    EXPECT(steps[r] == 1);  // rank 1's own step count was replaced by rank 0's (0), then one step
  }
  EXPECT(std::memcmp(params[0].data(), params[1].data(), P * sizeof(float)) == 0);
  EXPECT(std::memcmp(moments[0].data(), moments[1].data(), P * sizeof(float)) == 0);
}

TEST(model_gradients_average_over_ranks_and_parameters_broadcast_from_rank_0) {
  if (skip_without_gloo()) return;
  check_gradient_allreduce("cpu");
}

TEST(cuda_model_gradients_average_over_ranks_through_host_memory) {
  if (skip_without_gloo()) return;
  CudaStatus s = cuda_status();
  if (!s.available) {
    std::printf("  skipped: no CUDA device (%s)\n", s.reason.c_str());
    return;
  }
  check_gradient_allreduce("cuda");
}

TEST(a_rank_that_exits_is_named_by_the_others) {
  if (skip_without_gloo()) return;
  for (int dead : {1, 0}) {
    auto errors = run_ranks(3, [&](int r, ProcessGroup& g) {
      g.barrier();
      if (r == dead) return;  // its group goes: connections close, as when a process ends
      float x[4] = {1, 2, 3, 4};
      std::this_thread::sleep_for(ms(200));
      g.allreduce_sum(x, 4);
    });
    for (int r = 0; r < 3; r++) {
      if (r == dead) {
        EXPECT(errors[r].empty());
        continue;
      }
      std::printf("    rank %d's error: %s\n", r, errors[r].c_str());
      std::string want = dead == 0 ? "rank 0 exited" : "rank 1 exited";
      if (!contains(errors[r], want.c_str()) || !contains(errors[r], "all-reduce failed on rank")) {
        std::printf("  FAIL rank %d's error does not name the exited rank %d: \"%s\"\n", r, dead, errors[r].c_str());
        harness::failures()++;
      }
    }
  }
}

TEST(a_rank_that_hangs_stops_the_others_at_the_timeout_and_the_group_stays_failed) {
  if (skip_without_gloo()) return;
  std::atomic<bool> release{false};
  std::string second;
  double waited = 0;
  auto errors = run_ranks(2, [&](int r, ProcessGroup& g) {
    if (r == 1) {
      while (!release) std::this_thread::sleep_for(ms(10));  // alive, never joins the collective
      return;
    }
    float x[2] = {1, 2};
    auto t0 = std::chrono::steady_clock::now();
    try {
      g.allreduce_sum(x, 2);
    } catch (const Error&) {
      waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      try {
        g.barrier();
      } catch (const Error& e) {
        second = e.what();
      }
      release = true;
      throw;
    }
    release = true;
  }, ms(1500));
  std::printf("    rank 0's error: %s\n", errors[0].c_str());
  EXPECT(contains(errors[0], "within the timeout of 1.5 s"));
  EXPECT(waited >= 1.0 && waited < 10.0);
  EXPECT(contains(second, "failed earlier"));
}

TEST(joining_names_the_missing_rank_the_world_size_mismatch_and_a_taken_port) {
  if (skip_without_gloo()) return;
  int port = free_port();
  EXPECT_THROWS_WITH(make_process_group(opts(0, 2, port, ms(800))), "rank 1 of 2 did not join within");
  EXPECT_THROWS_WITH(make_process_group(opts(2, 2, port)), "RANK must be in 0..1");
  EXPECT_THROWS_WITH(make_process_group(opts(0, 0, port)), "WORLD_SIZE must be at least 1");
  EXPECT_THROWS_WITH(make_process_group(opts(0, 2, 70000)), "MASTER_PORT must be a TCP port");

  // rank 1 thinks the world has 3 ranks
  port = free_port();
  std::string e0, e1;
  std::thread t([&] {
    try {
      make_process_group(opts(1, 3, port, ms(3000)));
    } catch (const Error& e) {
      e1 = e.what();
    }
  });
  try {
    make_process_group(opts(0, 2, port, ms(3000)));
  } catch (const Error& e) {
    e0 = e.what();
  }
  t.join();
  EXPECT(contains(e0, "rank 1 was started with WORLD_SIZE=3 and rank 0 with WORLD_SIZE=2"));

  // the port is taken
  int taken = 0;
  int fd = listening_socket(&taken);
  EXPECT_THROWS_WITH(make_process_group(opts(0, 2, taken, ms(500))), "cannot listen on port");
  ::close(fd);
}

int main() { return harness::run_all(); }

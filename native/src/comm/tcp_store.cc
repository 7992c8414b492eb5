// The rendezvous store's server and client (see tcp_store.h for the wire format).
#include "comm/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common.h"

namespace s2s {

namespace {

std::string sys_error() { return std::strerror(errno); }

// false when the peer closed the connection (or a receive timeout passed) before `n` bytes came.
bool recv_all(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

bool send_all(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

bool send_u32(int fd, uint32_t v) {
  unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  return send_all(fd, b, 4);
}

bool recv_u32(int fd, uint32_t* v) {
  unsigned char b[4];
  if (!recv_all(fd, b, 4)) return false;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return true;
}

// Keys and values of a rendezvous are addresses and small records; anything larger is not ours.
constexpr uint32_t kMaxField = 1u << 24;

}  // namespace

// ---- server ----

TcpStoreServer::TcpStoreServer(int port) : port_(port) {
  listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = listen_fd_ >= 0;
  if (!v6) listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw Error("rendezvous store: cannot open a socket: " + sys_error());
  int one = 1, zero = 0;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons((uint16_t)port);
    rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons((uint16_t)port);
    rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(listen_fd_, 128) != 0) {
    std::string why = sys_error();
    ::close(listen_fd_);
    throw Error("rendezvous store: rank 0 cannot listen on port " + std::to_string(port) + " (MASTER_PORT): " + why +
                (errno == EADDRINUSE ? "; another run (or program) is using it: choose another port" : ""));
  }
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    throw Error("rendezvous store: pipe2 failed: " + sys_error());
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpStoreServer::~TcpStoreServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);  // ends the serving threads' reads
  }
  cv_.notify_all();  // and their waits
  char c = 0;
  while (::write(wake_[1], &c, 1) < 0 && errno == EINTR) {
  }
  acceptor_.join();
  for (auto& t : threads_) t.join();
  for (int fd : conns_) ::close(fd);
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpStoreServer::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    conns_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void TcpStoreServer::serve(int fd) {
  std::string rank;  // from the client's hello
  for (;;) {
    char op;
    uint32_t klen, vlen;
    bool ok = recv_all(fd, &op, 1) && recv_u32(fd, &klen) && klen <= kMaxField;
    std::string key(ok ? klen : 0, '\0');
    ok = ok && recv_all(fd, &key[0], klen) && recv_u32(fd, &vlen) && vlen <= kMaxField;
    std::vector<char> value(ok ? vlen : 0);
    ok = ok && (vlen == 0 || recv_all(fd, value.data(), vlen));
    if (!ok) {
      // The client went away (or the server is stopping): a rank that said hello is gone.
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_ || rank.empty()) return;
        table_["s2s/gone/" + rank] = {'1'};
      }
      cv_.notify_all();
      return;
    }
    if (op == 'H') {
      rank = key;
      char ack = 1;
      if (!send_all(fd, &ack, 1)) return;
    } else if (op == 'S') {
      {
        std::lock_guard<std::mutex> lock(mu_);
        table_[key] = std::move(value);
      }
      cv_.notify_all();
      char ok = 1;
      if (!send_all(fd, &ok, 1)) return;
    } else if (op == 'G' && vlen == 4) {
      uint32_t wait_ms = (uint32_t)(unsigned char)value[0] | (uint32_t)(unsigned char)value[1] << 8 |
                         (uint32_t)(unsigned char)value[2] << 16 | (uint32_t)(unsigned char)value[3] << 24;
      std::vector<char> found;
      char status = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return stopping_ || table_.count(key) > 0; });
        auto it = table_.find(key);
        if (it != table_.end()) {
          found = it->second;
          status = 1;
        }
      }
      if (!send_all(fd, &status, 1) || !send_u32(fd, (uint32_t)found.size()) ||
          (!found.empty() && !send_all(fd, found.data(), found.size())))
        return;
    } else {
      return;  // not a client of ours: drop the connection
    }
  }
}

// ---- client ----

TcpStoreClient::TcpStoreClient(const std::string& host, int port, std::chrono::milliseconds timeout)
    : where_(host + ":" + std::to_string(port)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no attempt";
  for (;;) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (gai != 0) throw Error("rendezvous store: cannot resolve MASTER_ADDR '" + host + "': " + gai_strerror(gai));
    for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = fd;
      } else {
        last = sys_error();
        ::close(fd);
      }
    }
    ::freeaddrinfo(res);
    if (fd_ >= 0) break;
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error("rendezvous store: could not reach rank 0 at " + where_ + " (MASTER_ADDR:MASTER_PORT) within " +
                  std::to_string(timeout.count() / 1000) + " s (" + last + "); is rank 0 running?");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

TcpStoreClient::~TcpStoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

void TcpStoreClient::hello(int rank) {
  std::string key = std::to_string(rank);
  char op = 'H', ok = 0;
  if (!send_all(fd_, &op, 1) || !send_u32(fd_, (uint32_t)key.size()) || !send_all(fd_, key.data(), key.size()) ||
      !send_u32(fd_, 0) || !recv_all(fd_, &ok, 1))
    throw Error("rendezvous store at " + where_ + ": connection lost (did rank 0 exit?)");
}

void TcpStoreClient::set(const std::string& key, const std::vector<char>& value) {
  char op = 'S', ok = 0;
  if (!send_all(fd_, &op, 1) || !send_u32(fd_, (uint32_t)key.size()) || !send_all(fd_, key.data(), key.size()) ||
      !send_u32(fd_, (uint32_t)value.size()) || (!value.empty() && !send_all(fd_, value.data(), value.size())) ||
      !recv_all(fd_, &ok, 1))
    throw Error("rendezvous store at " + where_ + ": connection lost while setting '" + key + "' (did rank 0 exit?)");
}

bool TcpStoreClient::get(const std::string& key, std::chrono::milliseconds wait, std::vector<char>* value) {
  uint32_t ms = (uint32_t)std::min<int64_t>(wait.count(), 0x7fffffff);
  unsigned char w[4] = {(unsigned char)ms, (unsigned char)(ms >> 8), (unsigned char)(ms >> 16), (unsigned char)(ms >> 24)};
  char op = 'G', status = 0;
  uint32_t len = 0;
  bool ok = send_all(fd_, &op, 1) && send_u32(fd_, (uint32_t)key.size()) && send_all(fd_, key.data(), key.size()) &&
            send_u32(fd_, 4) && send_all(fd_, w, 4) && recv_all(fd_, &status, 1) && recv_u32(fd_, &len) && len <= kMaxField;
  if (ok) {
    value->resize(len);
    ok = len == 0 || recv_all(fd_, value->data(), len);
  }
  if (!ok) throw Error("rendezvous store at " + where_ + ": connection lost while waiting for '" + key + "' (did rank 0 exit?)");
  return status == 1;
}

}  // namespace s2s

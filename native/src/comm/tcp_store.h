// The rendezvous store of a process group: a key-value table that rank 0 serves at
// MASTER_ADDR:MASTER_PORT over TCP (the role of torch's TCPStore), through which the ranks find
// each other and exchange the addresses of their collective library's endpoints. It is used only
// while the group forms; the collectives themselves run over Gloo's (or NCCL's) own transport.
//
// Rank 0 keeps serving while the group lives, and every rank keeps its connection open: when a
// rank's process ends, its connection closes and the server sets "s2s/gone/<rank>", so that a
// rank whose collective failed can say which peer went away.
//
// Wire format, one request at a time on a connection: op (1 byte: 'S' set, 'G' get, 'H' hello),
// key length (u32, little-endian), key, value length (u32), value. 'S' and 'H' (whose key is the
// client's rank) are answered with one byte; 'G' carries the wait in milliseconds as its 4-byte
// value and is answered with a status byte (1: found, 0: not set within the wait), then the
// value's length and bytes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace s2s {

class TcpStoreServer {
 public:
  // Listens on every interface at `port`; throws s2s::Error (naming the port) when it cannot.
  explicit TcpStoreServer(int port);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;

  int port() const { return port_; }

 private:
  void accept_loop();
  void serve(int fd);

  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe whose write end wakes accept_loop to stop
  bool stopping_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<char>> table_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

class TcpStoreClient {
 public:
  // Connects to host:port, retrying until `timeout` (rank 0 may start after the others).
  TcpStoreClient(const std::string& host, int port, std::chrono::milliseconds timeout);
  ~TcpStoreClient();
  TcpStoreClient(const TcpStoreClient&) = delete;
  TcpStoreClient& operator=(const TcpStoreClient&) = delete;

  // Tells the server which rank this connection is (see "s2s/gone/<rank>" above).
  void hello(int rank);
  void set(const std::string& key, const std::vector<char>& value);
  // The key's value, waiting up to `wait` for some rank to set it; false when none did.
  bool get(const std::string& key, std::chrono::milliseconds wait, std::vector<char>* value);

 private:
  std::string where_;
  int fd_ = -1;
};

}  // namespace s2s

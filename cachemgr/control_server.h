// ControlServer: the cache manager's control socket (proto/cachemgr.proto, framing in
// control_wire.h). Listens on a Unix stream socket (mode 0666: every local user may ask),
// identifies each asker by SO_PEERCRED (uid, gid, pid) and hands each request to the
// handler, which acts with that caller's credentials. One thread per connection, at most
// kMaxConnections at once; a malformed or oversized frame, or a client silent for
// kIdleTimeout, closes that connection only.
// Start and Stop from one thread (the daemon's main thread); the handler runs on the
// connection threads, concurrently.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cachemgr/heka_fs.h"
#include "proto/cachemgr.pb.h"
#include "util/status.h"

namespace heka::cm {

class ControlServer {
 public:
  using Handler = std::function<::heka::cachemgr::ControlReply(
      const Caller&, const ::heka::cachemgr::ControlRequest&)>;
  static constexpr int kMaxConnections = 64;
  static constexpr std::chrono::seconds kIdleTimeout{30};

  ControlServer(std::string path, Handler handler);
  ~ControlServer();  // Stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds `path`. A stale socket file there is replaced; a path some live process answers on
  // is left alone (kAlreadyExists), as is anything that is not a socket.
  Status Start();
  // Stops accepting, closes every connection and waits for running requests to finish;
  // removes the socket file if it is still ours.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);

  const std::string path_;
  const Handler handler_;
  int listen_fd_ = -1;
  ino_t socket_ino_ = 0;
  std::thread accept_thread_;

  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::set<int> connections_;  // mu_: open connection fds (each served by its own thread)
  bool stopping_ = false;      // mu_
};

}  // namespace heka::cm

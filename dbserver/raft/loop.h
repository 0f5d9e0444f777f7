// UvLoop: the libuv loop thread on which every raft_* call and every raft callback runs.
// Post() is the bridge from Asio threads into it (a queue drained by one uv_async).
// Thread-safe: Post() from any thread; everything else from the loop thread.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "dbserver/raft/raft.h"

namespace heka::db {

class UvLoop {
 public:
  UvLoop();
  ~UvLoop();  // REQUIRES: Stop() was called

  uv_loop_t* loop() { return &loop_; }
  // Runs `fn` on the loop thread, in order with other posted functions.
  void Post(std::function<void()> fn);
  void Start();
  // Runs `last` on the loop thread, then stops the loop once every handle has closed.
  void Stop(std::function<void(std::function<void()> done)> last);
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  static void OnAsync(uv_async_t* async);

  uv_loop_t loop_;
  uv_async_t async_;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::function<void()>> queue_;  // mu_
  bool stopping_ = false;                     // mu_: Post() drops work once set
};

}  // namespace heka::db

// Runtime: the threads of a process's network code. An io_context run by `io_threads`
// threads (sockets, timers, coroutines) and a separate pool for calls that may block
// (GSS-API, which can talk to a KDC; disk work of handlers). Never block an I/O thread.
// Thread-safe. Destroying it stops both pools and joins their threads.
#pragma once

#include <future>
#include <mutex>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "rpc/asio.h"

namespace heka::rpc {

struct RuntimeOptions {
  int io_threads = 2;        // Default: 2.
  int blocking_threads = 4;  // Default: 4.
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();
  // Stops both pools and joins their threads; pending handlers are dropped. Idempotent.
  // Call it before destroying objects that handlers may still reach.
  void Stop();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  asio::io_context& io() { return io_; }
  asio::any_io_executor executor() { return io_.get_executor(); }
  asio::thread_pool& blocking_pool() { return blocking_; }

  // The bridge from synchronous code (CLI tools, FUSE callbacks) into coroutines: runs the
  // awaitable on the I/O threads and blocks the calling thread until it finishes.
  // REQUIRES: not called from one of this runtime's I/O threads.
  template <typename T>
  T BlockOn(awaitable<T> task) {
    std::promise<T> promise;
    auto future = promise.get_future();
    asio::co_spawn(io_, std::move(task), [&promise](std::exception_ptr e, T value) {
      if (e) {
        promise.set_exception(e);
      } else {
        promise.set_value(std::move(value));
      }
    });
    return future.get();
  }

 private:
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  asio::thread_pool blocking_;
  std::mutex stop_mu_;
  bool stopped_ = false;  // stop_mu_
};

// Runs fn() on `pool` and resumes the awaiting coroutine on its own executor with the
// result. Use it for anything that may block (GSS-API calls, fsync). Deliberately not a
// coroutine itself: g++ 12 mishandles by-value coroutine parameters moved into lambdas.
template <typename F>
auto RunBlocking(asio::thread_pool& pool, F fn) {
  using T = decltype(fn());
  return asio::async_initiate<const asio::use_awaitable_t<>, void(T)>(
      [&pool](auto handler, F fn) {
        auto ex = asio::get_associated_executor(handler);
        asio::post(pool, [handler = std::move(handler), fn = std::move(fn), ex]() mutable {
          T result = fn();
          asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
            handler(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(fn));
}

}  // namespace heka::rpc

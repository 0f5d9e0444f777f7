#include "dbserver/raft/loop.h"

#include <future>

namespace heka::db {

UvLoop::UvLoop() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &async_, &UvLoop::OnAsync);
  async_.data = this;
}

UvLoop::~UvLoop() { uv_loop_close(&loop_); }

void UvLoop::Start() {
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

void UvLoop::Post(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  if (stopping_) return;  // the loop (and the async handle) are going away
  queue_.push_back(std::move(fn));
  uv_async_send(&async_);
}

void UvLoop::OnAsync(uv_async_t* async) {
  auto* self = static_cast<UvLoop*>(async->data);
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard lock(self->mu_);
    batch.swap(self->queue_);
  }
  for (auto& fn : batch) fn();
}

void UvLoop::Stop(std::function<void(std::function<void()> done)> last) {
  std::promise<void> stopped;
  Post([this, last = std::move(last), &stopped] {
    last([this, &stopped] {
      {
        std::lock_guard lock(mu_);
        stopping_ = true;
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      stopped.set_value();
    });
  });
  stopped.get_future().wait();
  if (thread_.joinable()) thread_.join();  // uv_run returns once no handle is left
}

}  // namespace heka::db

#include "rpc/runtime.h"

namespace heka::rpc {

Runtime::Runtime(RuntimeOptions options)
    : work_(asio::make_work_guard(io_)),
      blocking_(static_cast<size_t>(std::max(1, options.blocking_threads))) {
  for (int i = 0; i < std::max(1, options.io_threads); ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

Runtime::~Runtime() { Stop(); }

void Runtime::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  work_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
  blocking_.stop();
  blocking_.join();
}

}  // namespace heka::rpc

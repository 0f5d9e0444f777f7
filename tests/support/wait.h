// WaitFor: poll a condition until it holds or a deadline passes. The only way tests wait.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace heka::testing {

// Returns true as soon as pred() is true; false if `timeout` passes first.
inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval, not a sync point
  }
  return true;
}

}  // namespace heka::testing

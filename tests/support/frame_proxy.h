// FrameProxy: a TCP relay on loopback between a test client and a server that understands
// Heka's length-prefixed framing. It records every byte it relays (to prove nothing readable
// crosses the wire) and lets a test rewrite, drop, repeat or reorder client->server frames.
// Runs its own I/O thread. Thread-safe accessors.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/bytes.h"

namespace heka::testing {

class FrameProxy {
 public:
  // Decides what to send on for the index-th client->server frame of a connection (counting
  // handshake frames, from 0). `frame` includes its 4-byte length prefix. Return the frames
  // to send in its place: {} drops it, {frame, frame} replays it, a changed copy tampers.
  using Rewrite = std::function<std::vector<Bytes>(size_t index, const Bytes& frame)>;

  // Relays 127.0.0.1:<port()> to `target_host`:`target_port`.
  FrameProxy(std::string target_host, int target_port);
  ~FrameProxy();

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void set_rewrite(Rewrite rewrite);
  // While frozen, bytes in both directions are swallowed: the peers see a dead network.
  void set_frozen(bool frozen);
  // Everything relayed so far, both directions.
  Bytes recorded() const;
  bool Contains(std::string_view needle) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace heka::testing

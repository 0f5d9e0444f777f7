// Connection: one authenticated, encrypted RPC connection (either side of it).
// Both sides may call, reply and push: a server calls a client back to break a callback
// promise, and pushes one-way messages that arrive in order. Many calls may be in flight
// at once; replies come back in any order.
//
// Thread-safety: every public method may be called from any thread. Internally all socket
// work, both ciphers and the pending-call table belong to one strand, so nothing there
// needs a lock. Request handlers run on the I/O pool (in parallel); push handlers run on the
// strand, in arrival order.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "krb/identity.h"
#include "rpc/asio.h"
#include "rpc/cipher.h"
#include "rpc/frame.h"
#include "rpc/registry.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::rpc {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct ConnectionOptions {
  uint32_t max_frame_size = kDefaultMaxFrame;  // bytes; checked before allocating. Default 16 MiB+.
  milliseconds ping_interval{5000};   // send a PING after this much silence. Default 5 s.
  milliseconds dead_after{15000};     // close after this much silence (dead peer). Default 15 s.
  milliseconds frame_timeout{10000};  // max silence inside a started frame (stalled peer). 10 s.
  milliseconds default_call_timeout{30000};  // Call() without a timeout. Default 30 s.
  milliseconds tick{100};             // resolution of deadlines and the checks above. 100 ms.
  // Requests of the peer being handled at once; more are answered "busy" (kUnavailable)
  // instead of queueing without bound. Default 4096.
  int max_concurrent_requests = 4096;
  CipherFactory test_cipher;          // test/benchmark seam; empty = AES-256-GCM.
};

// What a completed handshake hands to a Connection.
struct Session {
  krb::Identity peer;
  krb::Identity self;
  uint32_t version = 0;
  bool is_client = false;
  std::unique_ptr<FrameCipher> send;  // seals what this side sends
  std::unique_ptr<FrameCipher> recv;  // opens what this side receives
  Clock::time_point expires_at;       // the GSS context's end time
};

// A received message body, owning the frame buffer it points into.
class Payload {
 public:
  Payload() = default;
  Payload(std::unique_ptr<uint8_t[]> buf, size_t offset, size_t size)
      : buf_(std::move(buf)), offset_(offset), size_(size) {}
  ByteView view() const { return {buf_.get() + offset_, size_}; }
  template <typename M>
  bool ParseInto(M* msg) const {
    return msg->ParseFromArray(buf_.get() + offset_, static_cast<int>(size_));
  }

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t offset_ = 0;
  size_t size_ = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // REQUIRES: `socket` is connected and `session` comes from a completed handshake on it.
  // `handlers` serves the peer's requests and pushes (may be null: every request then gets
  // kUnknownMethod). `remote` is for log lines.
  static std::shared_ptr<Connection> Create(tcp::socket socket, Session session,
                                            std::shared_ptr<const HandlerRegistry> handlers,
                                            ConnectionOptions options, std::string remote);
  ~Connection();

  // Starts reading and the watchdog. `on_close` (optional) runs once, on the I/O pool.
  void Start(std::function<void(const Status&)> on_close = nullptr);

  // Sends a request and waits for the reply body. timeout 0 = options.default_call_timeout.
  awaitable<Result<Payload>> CallRaw(std::string_view method,
                                     const google::protobuf::MessageLite& request,
                                     milliseconds timeout = milliseconds(0));

  // Coroutine: takes its arguments by value, since it may start after the caller's
  // temporaries are gone (e.g. when co_spawned).
  template <typename Rep, typename Req>
  awaitable<Result<Rep>> Call(std::string method, Req request,
                              milliseconds timeout = milliseconds(0)) {
    Result<Payload> raw = co_await CallRaw(method, request, timeout);
    if (!raw.ok()) co_return raw.status();
    Rep reply;
    if (!raw->ParseInto(&reply)) co_return Error(Code::kProtocolError, "malformed reply body");
    co_return reply;
  }

  // Queues a one-way message; pushes from one sender arrive in the order they were queued.
  Status Push(std::string_view method, const google::protobuf::MessageLite& message);

  // Closes the connection (idempotent); pending calls fail with `reason`.
  void Close(Status reason);
  // Runs `fn` (on the I/O pool) once the connection has closed; at once if it already has.
  void AddCloseObserver(std::function<void(const Status&)> fn);

  bool closed() const { return closed_.load(); }
  const krb::Identity& peer() const { return peer_; }
  const krb::Identity& self() const { return self_; }
  uint32_t protocol_version() const { return version_; }
  const std::string& remote() const { return remote_; }
  // The reason the connection closed; OK while open.
  Status close_reason() const;

 private:
  struct PendingCall;
  using Completion = std::function<void(Result<Payload>)>;

  Connection(tcp::socket socket, Session session, std::shared_ptr<const HandlerRegistry> handlers,
             ConnectionOptions options, std::string remote);

  Bytes BuildFrame(const FrameHeader& header, const google::protobuf::MessageLite* body) const;
  Bytes BuildFrame(const FrameHeader& header, ByteView body) const;
  void StartCall(uint64_t call_id, Bytes frame, Clock::time_point deadline, Completion done);
  void Enqueue(Bytes frame);  // REQUIRES: on strand_
  void WriteMore();           // REQUIRES: on strand_
  static awaitable<void> ReadLoop(std::shared_ptr<Connection> self);
  void Dispatch(MessageView msg, std::unique_ptr<uint8_t[]> buffer, size_t plaintext_offset);
  static awaitable<void> RunHandler(std::shared_ptr<Connection> self,
                                    const HandlerRegistry::RawHandler* handler, uint64_t call_id,
                                    Payload body, Clock::time_point deadline);
  void SendReply(uint64_t call_id, const Result<Bytes>& result);
  void CloseOnStrand(Status reason);
  void Tick();

  tcp::socket socket_;
  asio::strand<asio::any_io_executor> strand_;
  asio::any_io_executor pool_;  // where request handlers run
  asio::steady_timer watchdog_;
  std::shared_ptr<const HandlerRegistry> handlers_;
  const ConnectionOptions options_;
  const std::string remote_;
  const krb::Identity peer_;
  const krb::Identity self_;
  const uint32_t version_;
  const bool is_client_;
  const Clock::time_point expires_at_;
  std::unique_ptr<FrameCipher> send_;  // strand_
  std::unique_ptr<FrameCipher> recv_;  // strand_
  std::function<void(const Status&)> on_close_;
  std::vector<std::function<void(const Status&)>> close_observers_;  // strand_

  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> next_call_id_{1};
  std::atomic<int> requests_in_flight_{0};
  // Everything below belongs to strand_.
  mutable std::mutex reason_mu_;
  Status close_reason_;  // reason_mu_
  std::unordered_map<uint64_t, PendingCall> pending_;
  std::deque<Bytes> queue_;
  std::vector<Bytes> writing_;
  bool write_in_flight_ = false;
  Clock::time_point last_received_;
  Clock::time_point last_ping_;
  Clock::time_point frame_started_;  // last progress inside a frame; time_point{} between frames
};

}  // namespace heka::rpc

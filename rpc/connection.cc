#include "rpc/connection.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace heka::rpc {

namespace {
constexpr size_t kReadPiece = 1 << 20;  // bytes read before progress is noted
}  // namespace

struct Connection::PendingCall {
  Completion done;
  Clock::time_point deadline;
};

std::shared_ptr<Connection> Connection::Create(tcp::socket socket, Session session,
                                               std::shared_ptr<const HandlerRegistry> handlers,
                                               ConnectionOptions options, std::string remote) {
  return std::shared_ptr<Connection>(new Connection(std::move(socket), std::move(session),
                                                    std::move(handlers), std::move(options),
                                                    std::move(remote)));
}

Connection::Connection(tcp::socket socket, Session session,
                       std::shared_ptr<const HandlerRegistry> handlers, ConnectionOptions options,
                       std::string remote)
    : socket_(std::move(socket)),
      strand_(asio::make_strand(socket_.get_executor())),
      pool_(socket_.get_executor()),
      watchdog_(strand_),
      handlers_(std::move(handlers)),
      options_(std::move(options)),
      remote_(std::move(remote)),
      peer_(session.peer),
      self_(session.self),
      version_(session.version),
      is_client_(session.is_client),
      expires_at_(session.expires_at),
      send_(std::move(session.send)),
      recv_(std::move(session.recv)) {}

Connection::~Connection() = default;

void Connection::Start(std::function<void(const Status&)> on_close) {
  on_close_ = std::move(on_close);
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    self->last_received_ = Clock::now();
    self->last_ping_ = self->last_received_;
    asio::co_spawn(self->strand_, ReadLoop(self), asio::detached);
    self->Tick();
  });
}

Status Connection::close_reason() const {
  std::lock_guard lock(reason_mu_);
  return close_reason_;
}

// --- Sending -------------------------------------------------------------------------------

Bytes Connection::BuildFrame(const FrameHeader& header,
                             const google::protobuf::MessageLite* body) const {
  Bytes frame;
  EncodeMessageHeader(header, &frame);
  size_t header_len = frame.size();
  size_t body_len = body ? body->ByteSizeLong() : 0;
  size_t payload = header_len + body_len + send_->overhead();
  Bytes out(kLengthPrefixSize + payload);
  EncodeLength(static_cast<uint32_t>(payload), out.data());
  std::memcpy(out.data() + kLengthPrefixSize, frame.data(), header_len);
  if (body) body->SerializeWithCachedSizesToArray(out.data() + kLengthPrefixSize + header_len);
  return out;
}

Bytes Connection::BuildFrame(const FrameHeader& header, ByteView body) const {
  Bytes frame;
  EncodeMessageHeader(header, &frame);
  size_t header_len = frame.size();
  size_t payload = header_len + body.size() + send_->overhead();
  Bytes out(kLengthPrefixSize + payload);
  EncodeLength(static_cast<uint32_t>(payload), out.data());
  std::memcpy(out.data() + kLengthPrefixSize, frame.data(), header_len);
  if (!body.empty()) {
    std::memcpy(out.data() + kLengthPrefixSize + header_len, body.data(), body.size());
  }
  return out;
}

// Not a coroutine: g++ 12 destroys lambda temporaries inside co_await expressions twice, so
// the initiation gets everything as arguments instead of captures.
awaitable<Result<Payload>> Connection::CallRaw(std::string_view method,
                                               const google::protobuf::MessageLite& request,
                                               milliseconds timeout) {
  if (timeout.count() <= 0) timeout = options_.default_call_timeout;
  uint64_t call_id = next_call_id_.fetch_add(1);
  FrameHeader header;
  header.set_kind(FrameHeader::REQUEST);
  header.set_call_id(call_id);
  header.set_method(std::string(method));
  header.set_timeout_ms(static_cast<uint32_t>(timeout.count()));
  Bytes frame = BuildFrame(header, &request);
  Status early;
  if (frame.size() - kLengthPrefixSize > options_.max_frame_size) {
    early = Error(Code::kFrameTooLarge, "request of " + std::to_string(frame.size()) +
                                            " bytes exceeds the frame limit");
  }
  return asio::async_initiate<const asio::use_awaitable_t<>, void(Result<Payload>)>(
      [](auto handler, std::shared_ptr<Connection> self, uint64_t call_id, Bytes frame,
         Clock::time_point deadline, Status early) {
        auto ex = asio::get_associated_executor(handler, self->pool_);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        Completion done = [ex, shared](Result<Payload> r) {
          asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        };
        if (!early.ok()) {
          done(std::move(early));
          return;
        }
        self->StartCall(call_id, std::move(frame), deadline, std::move(done));
      },
      asio::use_awaitable, shared_from_this(), call_id, std::move(frame),
      Clock::now() + timeout, std::move(early));
}

void Connection::StartCall(uint64_t call_id, Bytes frame, Clock::time_point deadline,
                           Completion done) {
  auto self = shared_from_this();
  asio::post(strand_, [self, call_id, frame = std::move(frame), deadline,
                       done = std::move(done)]() mutable {
    if (self->closed_) {
      done(self->close_reason());
      return;
    }
    self->pending_.emplace(call_id, PendingCall{std::move(done), deadline});
    self->Enqueue(std::move(frame));
  });
}

Status Connection::Push(std::string_view method, const google::protobuf::MessageLite& message) {
  if (closed_) return close_reason();
  FrameHeader header;
  header.set_kind(FrameHeader::PUSH);
  header.set_method(std::string(method));
  Bytes frame = BuildFrame(header, &message);
  if (frame.size() - kLengthPrefixSize > options_.max_frame_size) {
    return Error(Code::kFrameTooLarge, "push message exceeds the frame limit");
  }
  auto self = shared_from_this();
  asio::post(strand_, [self, frame = std::move(frame)]() mutable {
    if (!self->closed_) self->Enqueue(std::move(frame));
  });
  return Status::Ok();
}

void Connection::SendReply(uint64_t call_id, const Result<Bytes>& result) {
  FrameHeader header;
  header.set_kind(FrameHeader::REPLY);
  header.set_call_id(call_id);
  if (!result.ok()) {
    header.set_status_code(static_cast<uint32_t>(result.status().code()));
    header.set_status_message(result.status().message());
  }
  Bytes frame = result.ok() ? BuildFrame(header, ByteView(*result)) : BuildFrame(header, ByteView());
  if (frame.size() - kLengthPrefixSize > options_.max_frame_size) {
    // Too big to send: fail this call only, not the whole connection.
    header.set_status_code(static_cast<uint32_t>(Code::kFrameTooLarge));
    header.set_status_message("reply of " + std::to_string(frame.size()) +
                              " bytes exceeds the frame limit");
    frame = BuildFrame(header, ByteView());
  }
  auto self = shared_from_this();
  asio::post(strand_, [self, frame = std::move(frame)]() mutable {
    if (!self->closed_) self->Enqueue(std::move(frame));
  });
}

void Connection::Enqueue(Bytes frame) {
  queue_.push_back(std::move(frame));
  if (!write_in_flight_) WriteMore();
}

void Connection::WriteMore() {
  // Seal frames in the order they are written: the receiver's counter expects exactly that.
  writing_.clear();
  std::vector<asio::const_buffer> buffers;
  size_t bytes = 0;
  while (!queue_.empty() && (writing_.empty() || bytes < 4 * 1024 * 1024)) {
    Bytes frame = std::move(queue_.front());
    queue_.pop_front();
    ByteView aad(frame.data(), kLengthPrefixSize);
    Status s = send_->Seal(aad, std::span<uint8_t>(frame.data() + kLengthPrefixSize,
                                                   frame.size() - kLengthPrefixSize));
    if (!s.ok()) {
      CloseOnStrand(s);
      return;
    }
    bytes += frame.size();
    writing_.push_back(std::move(frame));
  }
  if (writing_.empty()) return;
  for (const auto& f : writing_) buffers.emplace_back(asio::buffer(f));
  write_in_flight_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, buffers,
                    asio::bind_executor(strand_, [self](boost::system::error_code ec, size_t) {
                      self->write_in_flight_ = false;
                      if (ec) {
                        self->CloseOnStrand(Error(Code::kUnavailable, "write failed: " + ec.message()));
                        return;
                      }
                      if (!self->queue_.empty()) self->WriteMore();
                    }));
}

// --- Receiving -----------------------------------------------------------------------------

awaitable<void> Connection::ReadLoop(std::shared_ptr<Connection> self) {
  uint8_t prefix[kLengthPrefixSize];
  while (!self->closed_) {
    boost::system::error_code ec;
    co_await asio::async_read(self->socket_, asio::buffer(prefix),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      self->CloseOnStrand(ec == asio::error::eof
                        ? Error(Code::kConnectionClosed, "peer closed the connection")
                        : Error(Code::kUnavailable, "read failed: " + ec.message()));
      co_return;
    }
    self->frame_started_ = self->last_received_ = Clock::now();
    Result<uint32_t> length = DecodeLength(prefix, self->options_.max_frame_size);
    if (!length.ok()) {
      self->CloseOnStrand(length.status());
      co_return;
    }
    std::unique_ptr<uint8_t[]> buf(new uint8_t[*length]);
    // Read in pieces so a large frame on a slow link counts as progress, not as a stall.
    for (size_t got = 0; got < *length;) {
      size_t piece = std::min<size_t>(*length - got, kReadPiece);
      co_await asio::async_read(self->socket_, asio::buffer(buf.get() + got, piece),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        self->CloseOnStrand(Error(Code::kUnavailable, "read failed inside a frame: " + ec.message()));
        co_return;
      }
      got += piece;
      self->frame_started_ = self->last_received_ = Clock::now();
    }
    self->frame_started_ = Clock::time_point{};
    Status s = self->recv_->Open(ByteView(prefix, kLengthPrefixSize), std::span<uint8_t>(buf.get(), *length));
    if (!s.ok()) {
      self->CloseOnStrand(s);
      co_return;
    }
    ByteView plaintext(buf.get(), *length - self->recv_->overhead());
    Result<MessageView> msg = DecodeMessage(plaintext);
    if (!msg.ok()) {
      self->CloseOnStrand(msg.status());
      co_return;
    }
    size_t body_offset = static_cast<size_t>(msg->body.data() - buf.get());
    self->Dispatch(std::move(*msg), std::move(buf), body_offset);
  }
}

void Connection::Dispatch(MessageView msg, std::unique_ptr<uint8_t[]> buffer, size_t offset) {
  Payload body(std::move(buffer), offset, msg.body.size());
  const FrameHeader& h = msg.header;
  switch (h.kind()) {
    case FrameHeader::REPLY: {
      auto it = pending_.find(h.call_id());
      if (it == pending_.end()) return;  // timed out already
      Completion done = std::move(it->second.done);
      pending_.erase(it);
      if (h.status_code() != 0) {
        done(Status(CodeFromWire(h.status_code()), h.status_message()));
      } else {
        done(std::move(body));
      }
      return;
    }
    case FrameHeader::REQUEST: {
      const HandlerRegistry::RawHandler* handler = handlers_ ? handlers_->Find(h.method()) : nullptr;
      if (handler == nullptr) {
        SendReply(h.call_id(), Error(Code::kUnknownMethod, "no method " + h.method()));
        return;
      }
      if (requests_in_flight_.fetch_add(1) >= options_.max_concurrent_requests) {
        requests_in_flight_.fetch_sub(1);
        SendReply(h.call_id(), Error(Code::kUnavailable, "server busy: too many requests in "
                                                         "flight on this connection"));
        return;
      }
      Clock::time_point deadline = h.timeout_ms() ? Clock::now() + milliseconds(h.timeout_ms())
                                                  : Clock::time_point::max();
      asio::co_spawn(pool_, RunHandler(shared_from_this(), handler, h.call_id(), std::move(body), deadline),
                     asio::detached);
      return;
    }
    case FrameHeader::PUSH: {
      const HandlerRegistry::RawPushHandler* handler =
          handlers_ ? handlers_->FindPush(h.method()) : nullptr;
      if (handler == nullptr) {
        spdlog::debug("rpc: {}: ignoring push of unknown method {}", remote_, h.method());
        return;
      }
      (*handler)(*this, body.view());
      return;
    }
    case FrameHeader::PING: {
      FrameHeader pong;
      pong.set_kind(FrameHeader::PONG);
      Enqueue(BuildFrame(pong, ByteView()));
      return;
    }
    case FrameHeader::PONG:
    default:
      return;
  }
}

awaitable<void> Connection::RunHandler(std::shared_ptr<Connection> self,
                                       const HandlerRegistry::RawHandler* handler,
                                       uint64_t call_id, Payload body,
                                       Clock::time_point deadline) {
  Result<Bytes> result = Error(Code::kInternal, "handler failed");
  try {
    CallContext ctx{self->peer_, self, deadline};
    result = co_await (*handler)(ctx, body.view());
  } catch (const std::exception& e) {
    spdlog::error("rpc: handler for a call from {} threw: {}", self->peer_.principal(), e.what());
    result = Error(Code::kInternal, "the server failed to handle the call");
  }
  self->requests_in_flight_.fetch_sub(1);
  self->SendReply(call_id, result);
}

// --- Closing and the watchdog ---------------------------------------------------------------

void Connection::AddCloseObserver(std::function<void(const Status&)> fn) {
  auto self = shared_from_this();
  asio::post(strand_, [self, fn = std::move(fn)]() mutable {
    if (self->closed_) {
      asio::post(self->pool_, [fn = std::move(fn), reason = self->close_reason()] { fn(reason); });
    } else {
      self->close_observers_.push_back(std::move(fn));
    }
  });
}

void Connection::Close(Status reason) {
  auto self = shared_from_this();
  asio::post(strand_, [self, reason = std::move(reason)]() mutable {
    self->CloseOnStrand(std::move(reason));
  });
}

void Connection::CloseOnStrand(Status reason) {
  if (closed_.exchange(true)) return;
  if (reason.ok()) reason = Error(Code::kConnectionClosed, "closed locally");
  {
    std::lock_guard lock(reason_mu_);
    close_reason_ = reason;
  }
  const char* dir = is_client_ ? "to" : "from";
  if (reason.code() == Code::kConnectionClosed) {
    spdlog::debug("rpc: connection {} {} ({}) closed: {}", dir, peer_.principal(), remote_,
                 reason.ToString());
  } else {
    spdlog::warn("rpc: connection {} {} ({}) closed: {}", dir, peer_.principal(), remote_,
                 reason.ToString());
  }
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  watchdog_.cancel();
  // Calls in flight fail with the reason; a plain close means "try again" to a caller.
  // A ticket that expired under a live connection is retryable: the next call reconnects
  // with fresh credentials (or reports that there are none).
  Code code = (reason.code() == Code::kConnectionClosed || reason.code() == Code::kContextExpired)
                  ? Code::kUnavailable
                  : reason.code();
  Status failure(code, "connection " + std::string(dir) + " " + remote_ + " lost: " +
                           reason.message());
  for (auto& [id, call] : pending_) call.done(failure);
  pending_.clear();
  queue_.clear();
  if (on_close_) {
    asio::post(pool_, [cb = std::move(on_close_), reason] { cb(reason); });
    on_close_ = nullptr;
  }
  for (auto& fn : close_observers_) asio::post(pool_, [fn = std::move(fn), reason] { fn(reason); });
  close_observers_.clear();
}

void Connection::Tick() {
  if (closed_) return;
  Clock::time_point now = Clock::now();
  if (now >= expires_at_) {
    CloseOnStrand(Error(Code::kContextExpired,
                        "the Kerberos ticket behind this connection expired (" +
                            (is_client_ ? self_.principal() : peer_.principal()) + ")"));
    return;
  }
  if (frame_started_ != Clock::time_point{} && now - frame_started_ > options_.frame_timeout) {
    CloseOnStrand(Error(Code::kProtocolError, "no progress inside a frame in time (stalled peer)"));
    return;
  }
  if (now - last_received_ > options_.dead_after) {
    CloseOnStrand(Error(Code::kUnavailable, "peer not responding"));
    return;
  }
  if (now - last_received_ > options_.ping_interval && now - last_ping_ > options_.ping_interval) {
    last_ping_ = now;
    FrameHeader ping;
    ping.set_kind(FrameHeader::PING);
    Enqueue(BuildFrame(ping, ByteView()));
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now >= it->second.deadline) {
      it->second.done(Error(Code::kDeadlineExceeded, "no reply from " + remote_ + " in time"));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  watchdog_.expires_after(options_.tick);
  auto self = shared_from_this();
  watchdog_.async_wait([self](boost::system::error_code ec) {
    if (!ec) self->Tick();
  });
}

}  // namespace heka::rpc

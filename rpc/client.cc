#include "rpc/client.h"

#include <spdlog/spdlog.h>

namespace heka::rpc {

std::shared_ptr<Client> Client::Create(Runtime& runtime, ClientOptions options) {
  return std::shared_ptr<Client>(new Client(runtime, std::move(options)));
}

Client::Client(Runtime& runtime, ClientOptions options)
    : runtime_(runtime), options_(std::move(options)), strand_(asio::make_strand(runtime.io())) {}

Client::~Client() {
  if (conn_) conn_->Close(Error(Code::kConnectionClosed, "client shut down"));
}

void Client::Close() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->conn_) self->conn_->Close(Error(Code::kConnectionClosed, "closed by the client"));
    self->conn_.reset();
  });
}

// Not a coroutine, for the same g++ 12 reason as Connection::CallRaw.
awaitable<Result<std::shared_ptr<Connection>>> Client::GetConnection() {
  return asio::async_initiate<const asio::use_awaitable_t<>,
                              void(Result<std::shared_ptr<Connection>>)>(
      [](auto handler, std::shared_ptr<Client> self) {
        auto ex = asio::get_associated_executor(handler, self->runtime_.executor());
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        Waiter done = [ex, shared](Result<std::shared_ptr<Connection>> r) {
          asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        };
        asio::post(self->strand_, [self, done = std::move(done)]() mutable {
          if (self->conn_ && !self->conn_->closed()) {
            done(self->conn_);
            return;
          }
          self->conn_.reset();
          self->waiters_.push_back(std::move(done));
          if (!self->connecting_) {
            self->connecting_ = true;
            asio::co_spawn(self->strand_, Connect(self), asio::detached);
          }
        });
      },
      asio::use_awaitable, shared_from_this());
}

awaitable<void> Client::Connect(std::shared_ptr<Client> self) {
  Result<std::shared_ptr<Connection>> result = Error(Code::kInternal, "connect failed");
  try {
    result = co_await self->ConnectOnce();
  } catch (const std::exception& e) {
    // Never leave connecting_ set: every later call would wait for this one forever.
    result = Error(Code::kInternal, std::string("connecting failed: ") + e.what());
  }
  self->Finish(std::move(result));
}

void Client::Finish(Result<std::shared_ptr<Connection>> result) {
  connecting_ = false;
  if (result.ok()) conn_ = *result;
  std::vector<Waiter> waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& w : waiters) w(result);
}

awaitable<Result<std::shared_ptr<Connection>>> Client::ConnectOnce() {
  Result<Endpoint> ep = Endpoint::Parse(options_.address);
  if (!ep.ok()) co_return ep.status();
  std::string principal = options_.server_principal;
  if (principal.empty()) {
    Result<std::string> realm = krb::DefaultRealm();
    if (!realm.ok()) co_return realm.status();
    principal = "heka/" + ep->host + "@" + *realm;
  }

  // Resolve and connect, trying each address in turn, bounded by connect_timeout.
  tcp::resolver resolver(strand_);
  boost::system::error_code ec;
  auto results = co_await resolver.async_resolve(ep->host, std::to_string(ep->port),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return Error(Code::kUnavailable, "cannot resolve " + ep->host + ": " + ec.message());
  }
  tcp::socket socket(strand_);
  asio::steady_timer timer(strand_);
  HandshakeDeadline connect_deadline(socket);
  connect_deadline.Arm(timer, options_.connect_timeout);
  co_await asio::async_connect(socket, results, asio::redirect_error(asio::use_awaitable, ec));
  timer.cancel();
  if (ec || connect_deadline.fired()) {
    co_return Error(connect_deadline.fired() ? Code::kDeadlineExceeded : Code::kUnavailable,
                    "cannot connect to " + options_.address + ": " +
                        (connect_deadline.fired() ? std::string("timed out") : ec.message()));
  }
  socket.set_option(tcp::no_delay(true), ec);
  socket.set_option(asio::socket_base::keep_alive(true), ec);

  HandshakeOptions hs;
  hs.peer_name = principal;
  hs.test_cipher = options_.connection.test_cipher;
  if (options_.test_context) {
    hs.context = options_.test_context;
  } else {
    hs.context = [creds = options_.credentials, principal] {
      return krb::SecurityContext::Initiator(creds, principal);
    };
  }
  asio::steady_timer handshake_timer(strand_);
  HandshakeDeadline handshake_deadline(socket);
  handshake_deadline.Arm(handshake_timer, options_.handshake_timeout);
  Result<Session> session = co_await ClientHandshake(socket, hs, runtime_.blocking_pool());
  handshake_timer.cancel();
  if (handshake_deadline.fired()) {
    co_return Error(Code::kDeadlineExceeded,
                    "handshake with " + options_.address + " did not complete in time");
  }
  if (!session.ok()) {
    spdlog::warn("rpc: cannot connect to {} ({}): {}", principal, options_.address,
                 session.status().ToString());
    co_return session.status();
  }
  std::string remote = options_.address;
  auto conn = Connection::Create(std::move(socket), std::move(*session), options_.handlers,
                                 options_.connection, remote);
  spdlog::debug("rpc: connected to {} ({}) as {}", conn->peer().principal(), remote,
               conn->self().principal());
  conn->Start();
  co_return conn;
}

}  // namespace heka::rpc

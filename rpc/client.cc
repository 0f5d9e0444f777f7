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
  Result<std::shared_ptr<Connection>> result = co_await self->ConnectOnce();
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
  timer.expires_after(options_.connect_timeout);
  bool timed_out = false;
  timer.async_wait([&](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      socket.close();
    }
  });
  co_await asio::async_connect(socket, results, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || timed_out) {
    timer.cancel();
    co_return Error(timed_out ? Code::kDeadlineExceeded : Code::kUnavailable,
                    "cannot connect to " + options_.address + ": " +
                        (timed_out ? std::string("timed out") : ec.message()));
  }
  socket.set_option(tcp::no_delay(true));
  socket.set_option(asio::socket_base::keep_alive(true));

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
  timer.expires_after(options_.handshake_timeout);
  timer.async_wait([&](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      socket.close();
    }
  });
  Result<Session> session = co_await ClientHandshake(socket, hs, runtime_.blocking_pool());
  timer.cancel();
  if (timed_out) {
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

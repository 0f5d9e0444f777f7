#include "rpc/server.h"

#include <spdlog/spdlog.h>

namespace heka::rpc {

std::shared_ptr<Server> Server::Create(Runtime& runtime, ServerOptions options,
                                       std::shared_ptr<const HandlerRegistry> handlers) {
  return std::shared_ptr<Server>(new Server(runtime, std::move(options), std::move(handlers)));
}

Server::Server(Runtime& runtime, ServerOptions options,
               std::shared_ptr<const HandlerRegistry> handlers)
    : runtime_(runtime), options_(std::move(options)), handlers_(std::move(handlers)) {}

Server::~Server() { Stop(); }

Status Server::Start() {
  for (const std::string& text : options_.listen) {
    Result<Endpoint> ep = Endpoint::Parse(text);
    if (!ep.ok()) return ep.status();
    boost::system::error_code ec;
    auto address = asio::ip::make_address(ep->host, ec);
    if (ec) {
      return Error(Code::kInvalidArgument,
                   "listen address '" + text + "' is not an IP address: " + ec.message());
    }
    tcp::endpoint endpoint(address, ep->port);
    auto acceptor = std::make_shared<tcp::acceptor>(asio::make_strand(runtime_.io()));
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Error(Code::kUnavailable, "cannot listen on " + text + ": " + ec.message());
    Endpoint bound{ep->host, acceptor->local_endpoint().port()};
    spdlog::info("rpc: listening on {}", bound.ToString());
    {
      std::lock_guard lock(mu_);
      acceptors_.push_back(acceptor);
      endpoints_.push_back(bound);
    }
    asio::co_spawn(acceptor->get_executor(),
                   AcceptLoop(weak_from_this(), runtime_.io(), acceptor), asio::detached);
  }
  return Status::Ok();
}

void Server::Stop() {
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  std::vector<std::weak_ptr<Connection>> conns;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    acceptors.swap(acceptors_);
    conns.swap(connections_);
  }
  for (auto& a : acceptors) {
    asio::post(a->get_executor(), [a] {
      boost::system::error_code ignored;
      a->close(ignored);
    });
  }
  for (auto& w : conns) {
    if (auto c = w.lock()) c->Close(Error(Code::kConnectionClosed, "server shutting down"));
  }
}

std::vector<Endpoint> Server::endpoints() const {
  std::lock_guard lock(mu_);
  return endpoints_;
}

std::vector<std::shared_ptr<Connection>> Server::connections() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Connection>> out;
  for (const auto& w : connections_) {
    if (auto c = w.lock(); c && !c->closed()) out.push_back(c);
  }
  return out;
}

// Static, holding only a weak reference: the server may be destroyed while it waits.
awaitable<void> Server::AcceptLoop(std::weak_ptr<Server> weak, asio::io_context& io,
                                   std::shared_ptr<tcp::acceptor> acceptor) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(asio::make_strand(io));
    co_await acceptor->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      // Out of file descriptors and the like: back off instead of spinning.
      spdlog::warn("rpc: accept failed: {}", ec.message());
      asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto self = weak.lock();
    if (!self) co_return;
    auto ex = socket.get_executor();
    asio::co_spawn(ex, Serve(std::move(self), std::move(socket)), asio::detached);
  }
}

awaitable<void> Server::Serve(std::shared_ptr<Server> self, tcp::socket socket) {
  boost::system::error_code ec;
  auto remote_ep = socket.remote_endpoint(ec);
  std::string remote = ec ? std::string("?") : remote_ep.address().to_string() + ":" +
                                                    std::to_string(remote_ep.port());
  if (remote_ep.address().is_v6()) {
    remote = "[" + remote_ep.address().to_string() + "]:" + std::to_string(remote_ep.port());
  }
  socket.set_option(tcp::no_delay(true), ec);
  socket.set_option(asio::socket_base::keep_alive(true), ec);

  HandshakeOptions hs;
  hs.peer_name = remote;
  hs.authorize = self->options_.authorize;
  hs.test_cipher = self->options_.connection.test_cipher;
  if (self->options_.test_context) {
    hs.context = self->options_.test_context;
  } else {
    hs.context = [creds = self->options_.credentials] { return krb::SecurityContext::Acceptor(creds); };
  }
  asio::steady_timer timer(socket.get_executor());
  HandshakeDeadline deadline(socket);
  deadline.Arm(timer, self->options_.handshake_timeout);
  Result<Session> session = co_await ServerHandshake(socket, hs, self->runtime_.blocking_pool());
  timer.cancel();
  if (!session.ok() || deadline.fired()) {
    Status why = deadline.fired() ? Error(Code::kDeadlineExceeded, "handshake not completed in time")
                                  : session.status();
    spdlog::warn("rpc: refused connection from {}: {}", remote, why.ToString());
    boost::system::error_code ignored;
    socket.close(ignored);
    co_return;
  }
  auto conn = Connection::Create(std::move(socket), std::move(*session), self->handlers_,
                                 self->options_.connection, remote);
  {
    std::lock_guard lock(self->mu_);
    if (self->stopped_) co_return;
    // Drop entries of closed connections while we are here.
    std::erase_if(self->connections_, [](const std::weak_ptr<Connection>& w) {
      auto c = w.lock();
      return !c || c->closed();
    });
    self->connections_.push_back(conn);
  }
  spdlog::debug("rpc: accepted {} from {}", conn->peer().principal(), remote);
  if (self->options_.on_connect) self->options_.on_connect(conn);
  conn->Start();
}

}  // namespace heka::rpc

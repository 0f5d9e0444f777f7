// Server: accepts connections on one or more endpoints (IPv4 and/or IPv6), runs the
// server side of the handshake for each, and serves the registered handlers on them.
// A bad client (garbage, stalled handshake, bad frames) loses only its own connection.
// Thread-safe. Stop() (or the destructor) closes the listeners and every connection.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "krb/gss.h"
#include "rpc/connection.h"
#include "rpc/endpoint.h"
#include "rpc/handshake.h"
#include "rpc/runtime.h"

namespace heka::rpc {

struct ServerOptions {
  std::vector<std::string> listen;       // e.g. {"127.0.0.1:7003", "[::1]:7003"}; port 0 = any.
  krb::ServerCredentials credentials;    // the server's keytab. Required unless test_context.
  Authorizer authorize;                  // who may connect. Default: any authenticated principal.
  milliseconds handshake_timeout{10000}; // a client must finish the handshake within. 10 s.
  ConnectionOptions connection;
  ContextFactory test_context;           // test seam; empty = GSS-API with `credentials`.
  // Called (on the I/O pool) for each connection after its handshake, before it serves.
  std::function<void(const std::shared_ptr<Connection>&)> on_connect;
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  static std::shared_ptr<Server> Create(Runtime& runtime, ServerOptions options,
                                        std::shared_ptr<const HandlerRegistry> handlers);
  ~Server();

  // Binds and listens on every endpoint. Fails if any cannot be bound.
  Status Start();
  void Stop();
  // The endpoints actually bound (ports filled in), in the order of options.listen.
  std::vector<Endpoint> endpoints() const;
  // Connections currently open.
  std::vector<std::shared_ptr<Connection>> connections() const;

 private:
  Server(Runtime& runtime, ServerOptions options, std::shared_ptr<const HandlerRegistry> handlers);
  static awaitable<void> AcceptLoop(std::weak_ptr<Server> weak, asio::io_context& io,
                                    std::shared_ptr<tcp::acceptor> acceptor);
  static awaitable<void> Serve(std::shared_ptr<Server> self, tcp::socket socket);

  Runtime& runtime_;
  const ServerOptions options_;
  std::shared_ptr<const HandlerRegistry> handlers_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;   // mu_
  std::vector<Endpoint> endpoints_;                         // mu_
  std::vector<std::weak_ptr<Connection>> connections_;      // mu_
  bool stopped_ = false;                                    // mu_
};

}  // namespace heka::rpc

// Client: a connection to one server that (re)connects on demand. The first call opens a
// TCP connection (IPv4 or IPv6), runs the handshake with this client's current Kerberos
// credentials and keeps the connection; when it closes (peer gone, ticket expired), the next
// call connects again with fresh credentials, so a new `kinit` takes effect without restart.
// A call that was in flight when the connection broke fails (kUnavailable); retrying is the
// caller's decision, since only it knows whether the call is idempotent.
// Thread-safe; calls may come from any thread or coroutine.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "krb/gss.h"
#include "rpc/connection.h"
#include "rpc/endpoint.h"
#include "rpc/handshake.h"
#include "rpc/runtime.h"

namespace heka::rpc {

struct ClientOptions {
  std::string address;           // "host:port" or "[v6]:port". Required.
  // Server principal, e.g. "heka/db1.example@HEKA.TEST". Default: "heka/<host>@<default realm>".
  std::string server_principal;
  krb::ClientCredentials credentials;  // Default: the process's default ccache.
  milliseconds connect_timeout{5000};    // TCP connect. Default 5 s.
  milliseconds handshake_timeout{10000}; // whole handshake. Default 10 s.
  ConnectionOptions connection;
  // Serves requests and pushes the server sends us (callback breaks). May be null.
  std::shared_ptr<const HandlerRegistry> handlers;
  ContextFactory test_context;   // test seam; empty = GSS-API with `credentials`.
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  static std::shared_ptr<Client> Create(Runtime& runtime, ClientOptions options);
  ~Client();

  // The live connection, connecting (once, for all concurrent callers) if there is none.
  awaitable<Result<std::shared_ptr<Connection>>> GetConnection();

  // Coroutine: takes its arguments by value, since it may start after the caller's
  // temporaries are gone (e.g. when co_spawned).
  template <typename Rep, typename Req>
  awaitable<Result<Rep>> Call(std::string method, Req request,
                              milliseconds timeout = milliseconds(0)) {
    Result<std::shared_ptr<Connection>> conn = co_await GetConnection();
    if (!conn.ok()) co_return conn.status();
    co_return co_await (*conn)->Call<Rep>(method, request, timeout);
  }

  // Closes the current connection, if any; a later call reconnects.
  void Close();
  const ClientOptions& options() const { return options_; }

 private:
  using Waiter = std::function<void(Result<std::shared_ptr<Connection>>)>;
  Client(Runtime& runtime, ClientOptions options);
  static awaitable<void> Connect(std::shared_ptr<Client> self);
  awaitable<Result<std::shared_ptr<Connection>>> ConnectOnce();
  void Finish(Result<std::shared_ptr<Connection>> result);

  Runtime& runtime_;
  const ClientOptions options_;
  asio::strand<asio::any_io_executor> strand_;
  // strand_:
  std::shared_ptr<Connection> conn_;
  bool connecting_ = false;
  std::vector<Waiter> waiters_;
};

}  // namespace heka::rpc

// The connection handshake (docs/formats/rpc-wire.md): protocol version negotiation, a
// GSS-API (krb5) context with mutual authentication, per-direction keys derived with
// gss_pseudo_random from a hash of the whole handshake transcript (versions and both
// nonces included, so a downgrade or tampering makes the keys differ), then the server's
// encrypted verdict. GSS-API calls run on the blocking pool, never on an I/O thread.
// REQUIRES for both functions: the calling coroutine runs on the socket's strand.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "krb/gss.h"
#include "rpc/asio.h"
#include "rpc/cipher.h"
#include "rpc/connection.h"

namespace heka::rpc {

// Builds the local side's security context (may block). Production uses the GSS-API
// factories of krb/gss.h; tests can substitute another mechanism.
using ContextFactory = std::function<Result<std::unique_ptr<krb::SecurityContext>>()>;

// Decides whether an authenticated client may use this server. Default: everyone.
using Authorizer = std::function<Status(const krb::Identity& client)>;

struct HandshakeOptions {
  ContextFactory context;
  Authorizer authorize;         // server side only
  CipherFactory test_cipher;    // empty = AES-256-GCM
  std::string peer_name;        // for error messages: the server principal or client address
};

// Closes a socket when a timer fires, unless the coroutine that owns both has moved on: the
// timer's handler may already be queued when the handshake finishes, and must then not touch
// the (possibly destroyed) socket. REQUIRES: timer, socket and owner share one strand.
class HandshakeDeadline {
 public:
  explicit HandshakeDeadline(tcp::socket& socket)
      : state_(std::make_shared<State>(State{&socket, false, true})) {}
  ~HandshakeDeadline() { state_->alive = false; }
  HandshakeDeadline(const HandshakeDeadline&) = delete;
  HandshakeDeadline& operator=(const HandshakeDeadline&) = delete;

  void Arm(asio::steady_timer& timer, std::chrono::milliseconds after) {
    timer.expires_after(after);
    timer.async_wait([state = state_](boost::system::error_code e) {
      if (e || !state->alive) return;
      state->fired = true;
      boost::system::error_code ignored;
      state->socket->close(ignored);
    });
  }
  bool fired() const { return state_->fired; }

 private:
  struct State {
    tcp::socket* socket;
    bool fired;
    bool alive;
  };
  std::shared_ptr<State> state_;
};

awaitable<Result<Session>> ClientHandshake(tcp::socket& socket, const HandshakeOptions& options,
                                           asio::thread_pool& blocking);
awaitable<Result<Session>> ServerHandshake(tcp::socket& socket, const HandshakeOptions& options,
                                           asio::thread_pool& blocking);

}  // namespace heka::rpc

// GSS-API (Kerberos 5) security contexts for Heka's RPC handshake.
// A SecurityContext is one side of a context being set up or established. It is not
// thread-safe; one connection owns it. Every call may block (it can talk to the KDC or read
// a keytab), so callers in async code run it on a blocking pool, never on an I/O thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "krb/identity.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::krb {

// Where an initiator (client) finds its credentials.
struct ClientCredentials {
  // Credential cache, e.g. "FILE:/tmp/krb5cc_1000". Default: the process's default ccache.
  std::string ccache;
  // Client keytab for machine credentials (the cache manager's host/ key), e.g.
  // "FILE:/etc/heka/host.keytab". Default: none. When set, tickets are obtained from it.
  std::string keytab;
  // Principal to act as when using `keytab`. Default: the keytab's first entry.
  std::string principal;
};

// Where an acceptor (server) finds its key.
struct ServerCredentials {
  std::string keytab;     // e.g. "FILE:/etc/heka/heka.keytab". Required.
  std::string principal;  // e.g. "heka/db1@REALM". Default: any principal in the keytab.
};

// Maps a failed GSS-API call to a Status with a code a user can act on
// (kNoCredentials, kCredentialsExpired, kUnknownServer, kClockSkew, kBadServerKey, kAuthFailed).
Status GssError(const char* what, uint32_t major, uint32_t minor);

// One side of a security context. The GSS-API implementation comes from the two factories;
// tests may derive their own (e.g. a shared-secret fake for sanitizer runs without a KDC).
class SecurityContext {
 public:
  struct StepResult {
    Status status;  // OK, or why the context failed
    Bytes token;    // send this to the peer if non-empty (also on failure: it may carry a KRB-ERROR)
  };

  // GSS-API (krb5) initiator.
  // REQUIRES: target_principal is a full principal such as "heka/localhost@HEKA.TEST".
  static Result<std::unique_ptr<SecurityContext>> Initiator(const ClientCredentials& creds,
                                                            const std::string& target_principal);
  // GSS-API (krb5) acceptor.
  static Result<std::unique_ptr<SecurityContext>> Acceptor(const ServerCredentials& creds);

  virtual ~SecurityContext() = default;
  SecurityContext(const SecurityContext&) = delete;
  SecurityContext& operator=(const SecurityContext&) = delete;

  // Feeds the peer's token (empty on the initiator's first call) and returns the next token.
  virtual StepResult Step(ByteView in) = 0;

  virtual bool established() const = 0;

  // REQUIRES: established()
  virtual const Identity& peer() const = 0;
  virtual const Identity& self() const = 0;
  // Time until the context (i.e. the ticket behind it) expires; zero once expired.
  virtual std::chrono::seconds remaining() const = 0;
  // gss_pseudo_random with GSS_C_PRF_KEY_FULL: the same bytes on both sides for the same input.
  virtual Result<Bytes> PseudoRandom(ByteView input, size_t length) const = 0;

 protected:
  SecurityContext() = default;
};

// The realm of the local krb5 configuration (krb5_get_default_realm).
Result<std::string> DefaultRealm();

}  // namespace heka::krb

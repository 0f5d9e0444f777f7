// FakeContext: a shared-secret stand-in for the GSS-API security context, so the rpc/ unit
// tests (and the ThreadSanitizer run) exercise real sockets, framing and encryption without
// a KDC. Test-only: it authenticates nothing. Not thread-safe (like the real one).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "krb/gss.h"

namespace heka::testing {

struct FakeContextOptions {
  std::string self = "alice@FAKE.TEST";   // who this side claims to be
  std::string secret = "shared";          // both sides must agree or the keys differ
  std::chrono::seconds lifetime{3600};    // what remaining() starts from
  bool fail = false;                      // Step() fails with kAuthFailed
};

std::unique_ptr<krb::SecurityContext> MakeFakeInitiator(FakeContextOptions options);
std::unique_ptr<krb::SecurityContext> MakeFakeAcceptor(FakeContextOptions options);

}  // namespace heka::testing

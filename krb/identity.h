// Identity: an authenticated Kerberos principal, as the peer of a GSS-API context.
// Value type; thread-safe to copy.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace heka::krb {

class Identity {
 public:
  Identity() = default;

  // Parses "alice@HEKA.TEST" or "heka/db1.example@HEKA.TEST" (with krb5 '\' escapes).
  // A principal without a realm is refused: identities are always fully qualified.
  static Result<Identity> Parse(std::string_view principal);

  const std::string& principal() const { return principal_; }  // "alice@HEKA.TEST"
  const std::string& realm() const { return realm_; }          // "HEKA.TEST"
  const std::vector<std::string>& components() const { return components_; }
  // The principal without its realm: "alice", "heka/db1.example".
  std::string name() const;
  // Machine principals (host/..., heka/...) are never users (DESIGN.md §2).
  bool is_machine() const;
  bool empty() const { return principal_.empty(); }

  bool operator==(const Identity& o) const { return principal_ == o.principal_; }

 private:
  std::string principal_;
  std::string realm_;
  std::vector<std::string> components_;
};

}  // namespace heka::krb

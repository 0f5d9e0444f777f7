#include "krb/identity.h"

namespace heka::krb {

Result<Identity> Identity::Parse(std::string_view principal) {
  Identity id;
  std::string current;
  bool escaped = false;
  bool in_realm = false;
  for (char c : principal) {
    if (escaped) {
      current.push_back(c);
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '/' && !in_realm) {
      id.components_.push_back(std::move(current));
      current.clear();
    } else if (c == '@' && !in_realm) {
      id.components_.push_back(std::move(current));
      current.clear();
      in_realm = true;
    } else {
      current.push_back(c);
    }
  }
  if (!in_realm || current.empty() || escaped) {
    return Error(Code::kInvalidArgument,
                 "principal '" + std::string(principal) + "' has no realm");
  }
  for (const auto& c : id.components_) {
    if (c.empty()) {
      return Error(Code::kInvalidArgument,
                   "principal '" + std::string(principal) + "' has an empty component");
    }
  }
  id.realm_ = std::move(current);
  id.principal_ = std::string(principal);
  return id;
}

std::string Identity::name() const {
  auto at = principal_.rfind('@');
  return at == std::string::npos ? principal_ : principal_.substr(0, at);
}

bool Identity::is_machine() const {
  return components_.size() >= 2 && (components_[0] == "host" || components_[0] == "heka");
}

}  // namespace heka::krb

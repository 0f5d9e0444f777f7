// Endpoint: a host (DNS name, IPv4 or IPv6 literal) and a TCP port.
// Written "host:port", "1.2.3.4:port" or "[2001:db8::1]:port". Value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace heka::rpc {

struct Endpoint {
  std::string host;  // without brackets
  uint16_t port = 0;

  static Result<Endpoint> Parse(std::string_view text);
  std::string ToString() const;  // brackets IPv6 literals
  bool operator==(const Endpoint&) const = default;
};

}  // namespace heka::rpc

#include "rpc/endpoint.h"

#include <charconv>

namespace heka::rpc {

Result<Endpoint> Endpoint::Parse(std::string_view text) {
  auto bad = [&](const char* why) {
    return Error(Code::kInvalidArgument,
                 "bad endpoint '" + std::string(text) + "': " + why +
                     " (expected host:port or [ipv6]:port)");
  };
  Endpoint ep;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    ep.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing port");
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    if (text.find(':') != colon) return bad("IPv6 addresses need brackets");
    ep.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (ep.host.empty()) return bad("empty host");
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return bad("port is not a number from 0 to 65535");
  }
  ep.port = static_cast<uint16_t>(port);
  return ep;
}

std::string Endpoint::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace heka::rpc

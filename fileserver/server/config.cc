#include "fileserver/server/config.h"

#include <toml++/toml.h>

namespace heka::fs {
namespace {

Status Bad(const std::string& path, const std::string& what) {
  return Error(Code::kInvalidArgument, path + ": " + what);
}

std::vector<std::string> Strings(const toml::node_view<toml::node>& node) {
  std::vector<std::string> out;
  if (auto* array = node.as_array()) {
    for (auto& v : *array) out.push_back(v.value_or<std::string>(""));
  }
  return out;
}

}  // namespace

Result<FileServerConfig> FileServerConfig::Load(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Bad(path, std::string("not valid TOML: ") + std::string(e.description()));
  }
  FileServerConfig c;
  auto server = t["server"];
  c.listen = Strings(server["listen"]);
  c.advertise = Strings(server["advertise"]);
  c.partitions = Strings(server["partitions"]);
  c.principal = server["principal"].value_or<std::string>("");
  c.keytab = server["keytab"].value_or<std::string>("");
  c.state_dir = server["state_dir"].value_or<std::string>("");
  c.dbservers = server["dbservers"].value_or<std::string>("");
  c.break_bound_ms = server["break_bound_ms"].value_or<int64_t>(1000);
  c.callback_ttl_s = server["callback_ttl_s"].value_or<int64_t>(600);
  c.cps_ttl_ms = server["cps_ttl_ms"].value_or<int64_t>(2000);
  c.lock_lease_ms = server["lock_lease_ms"].value_or<int64_t>(30000);
  c.lock_grace_ms = server["lock_grace_ms"].value_or<int64_t>(15000);
  c.provider_admins = Strings(t["provider_admins"]);
  if (c.advertise.empty()) return Bad(path, "[server] advertise is required (host:port list)");
  if (c.principal.empty()) return Bad(path, "[server] principal is required");
  if (c.keytab.empty()) return Bad(path, "[server] keytab is required");
  if (c.state_dir.empty()) return Bad(path, "[server] state_dir is required");
  if (c.partitions.empty()) return Bad(path, "[server] partitions is required");
  if (c.dbservers.empty()) return Bad(path, "[server] dbservers is required");
  if (c.break_bound_ms < 10 || c.break_bound_ms > 60000) {
    return Bad(path, "[server] break_bound_ms must be between 10 and 60000");
  }
  if (c.callback_ttl_s < 1) return Bad(path, "[server] callback_ttl_s must be >= 1");
  if (c.lock_lease_ms < 100) return Bad(path, "[server] lock_lease_ms must be >= 100");
  if (c.listen.empty()) c.listen = c.advertise;
  return c;
}

}  // namespace heka::fs

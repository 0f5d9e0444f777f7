#include "dbserver/config.h"

#include <toml++/toml.h>

namespace heka::db {
namespace {

Status Bad(const std::string& path, const std::string& what) {
  return Error(Code::kInvalidArgument, path + ": " + what);
}

}  // namespace

Result<DbServerConfig> DbServerConfig::Load(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Bad(path, std::string("not valid TOML: ") + std::string(e.description()));
  }
  DbServerConfig c;
  c.id = t["member"]["id"].value_or<int64_t>(0);
  c.address = t["member"]["address"].value_or<std::string>("");
  c.principal = t["member"]["principal"].value_or<std::string>("");
  c.keytab = t["member"]["keytab"].value_or<std::string>("");
  c.data_dir = t["member"]["data_dir"].value_or<std::string>("");
  if (auto* listen = t["member"]["listen"].as_array()) {
    for (auto& v : *listen) c.listen.push_back(v.value_or<std::string>(""));
  }
  if (auto* admins = t["provider_admins"].as_array()) {
    for (auto& v : *admins) c.provider_admins.push_back(v.value_or<std::string>(""));
  }
  if (auto* peers = t["peers"].as_array()) {
    for (auto& p : *peers) {
      auto* tbl = p.as_table();
      if (!tbl) return Bad(path, "[[peers]] entries must be tables");
      PeerConfig pc;
      pc.id = (*tbl)["id"].value_or<int64_t>(0);
      pc.address = (*tbl)["address"].value_or<std::string>("");
      pc.principal = (*tbl)["principal"].value_or<std::string>("");
      if (pc.id == 0 || pc.address.empty() || pc.principal.empty()) {
        return Bad(path, "every [[peers]] entry needs id, address and principal");
      }
      c.peers.push_back(pc);
    }
  }
  c.election_timeout_ms = t["raft"]["election_timeout_ms"].value_or<unsigned>(400);
  c.heartbeat_timeout_ms = t["raft"]["heartbeat_timeout_ms"].value_or<unsigned>(60);
  c.snapshot_threshold = t["raft"]["snapshot_threshold"].value_or<unsigned>(8192);
  c.backup_chunk_bytes = t["member"]["backup_chunk_bytes"].value_or<int64_t>(8 << 20);
  if (c.backup_chunk_bytes < 1024 || c.backup_chunk_bytes > (16u << 20)) {
    return Bad(path, "[member] backup_chunk_bytes must be between 1 KiB and 16 MiB");
  }
  if (c.id == 0) return Bad(path, "[member] id is required and must be > 0");
  if (c.address.empty()) return Bad(path, "[member] address is required");
  if (c.principal.empty()) return Bad(path, "[member] principal is required");
  if (c.keytab.empty()) return Bad(path, "[member] keytab is required");
  if (c.data_dir.empty()) return Bad(path, "[member] data_dir is required");
  if (c.heartbeat_timeout_ms >= c.election_timeout_ms) {
    return Bad(path, "[raft] heartbeat_timeout_ms must be below election_timeout_ms");
  }
  if (c.listen.empty()) c.listen.push_back(c.address);
  return c;
}

}  // namespace heka::db

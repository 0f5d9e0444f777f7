// DbServerConfig: the TOML file of one heka-dbserver (etc/dbserver.toml.example).
//
//   [member]
//   id = 1                                  # this member's id (>0), never reused
//   address = "db1.example.org:7003"        # advertised RPC endpoint; also the raft address
//   listen = ["0.0.0.0:7003", "[::]:7003"]  # Default: [address]
//   principal = "heka/db1.example.org@EXAMPLE.ORG"
//   keytab = "/etc/heka/heka.keytab"
//   data_dir = "/var/lib/heka/db"           # db.sqlite and raft/ live here
//
//   provider_admins = ["admin@EXAMPLE.ORG"] # may create cells, change members, back up
//
//   [[peers]]                               # every member of the cluster, this one included
//   id = 1
//   address = "db1.example.org:7003"
//   principal = "heka/db1.example.org@EXAMPLE.ORG"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace heka::db {

struct PeerConfig {
  uint64_t id = 0;
  std::string address;
  std::string principal;
};

struct DbServerConfig {
  uint64_t id = 0;
  std::string address;
  std::vector<std::string> listen;        // Default: {address}
  std::string principal;
  std::string keytab;
  std::string data_dir;
  std::vector<std::string> provider_admins;
  std::vector<PeerConfig> peers;
  unsigned election_timeout_ms = 400;     // [raft] election_timeout_ms. Default 400.
  unsigned heartbeat_timeout_ms = 60;     // [raft] heartbeat_timeout_ms. Default 60.
  unsigned snapshot_threshold = 8192;     // [raft] snapshot_threshold (entries). Default 8192.
  size_t backup_chunk_bytes = 8 << 20;    // [member] backup_chunk_bytes: per Backup reply. 8 MiB.

  // Reads and checks a config file; errors name the file and the key.
  static Result<DbServerConfig> Load(const std::string& path);
};

}  // namespace heka::db

// FileServerConfig: the TOML file of one heka-fileserver (etc/fileserver.toml.example).
//
//   [server]
//   listen = ["0.0.0.0:7000"]                # Default: the advertised addresses
//   advertise = ["fs1.example.org:7000"]     # registered in the VLDB; clients use these
//   principal = "heka/fs1.example.org@EXAMPLE.ORG"
//   keytab = "/etc/heka/heka.keytab"
//   state_dir = "/var/lib/heka/fs"           # server.uuid, the clean-shutdown marker
//   partitions = ["/vicepa", "/vicepb"]
//   dbservers = "db1.example.org:7003,db2.example.org:7003,db3.example.org:7003"
//   break_bound_ms = 1000                    # how long a change waits for break acks
//   callback_ttl_s = 600                     # how long a callback promise lasts
//   cps_ttl_ms = 2000                        # how long a caller's CPS is cached
//   lock_lease_ms = 30000                    # advisory lock lease
//   lock_grace_ms = 15000                    # reclaim period after a restart
//
//   provider_admins = ["admin@EXAMPLE.ORG"]  # may run every volume-server RPC
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace heka::fs {

struct FileServerConfig {
  std::vector<std::string> listen;
  std::vector<std::string> advertise;
  std::string principal;
  std::string keytab;
  std::string state_dir;
  std::vector<std::string> partitions;
  std::string dbservers;
  std::vector<std::string> provider_admins;
  int64_t break_bound_ms = 1000;
  int64_t callback_ttl_s = 600;
  int64_t cps_ttl_ms = 2000;
  int64_t lock_lease_ms = 30000;
  int64_t lock_grace_ms = 15000;

  // Reads and checks a config file; errors name the file and the key.
  static Result<FileServerConfig> Load(const std::string& path);
};

}  // namespace heka::fs

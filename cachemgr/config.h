// CacheManagerConfig: the TOML file of heka-cachemgr (etc/cachemgr.toml.example).
//
//   [cachemgr]
//   mountpoint = "/heka"
//   dbservers = "db1.example.org:7003,..."      # the VLDB/PTDB members
//   cells = ["acme"]                           # listed in /heka; other cells resolve on lookup
//   keytab = "/etc/heka/host.keytab"           # the machine's own key: VLDB lookups and callers
//   principal = "host/client1.example.org@EXAMPLE.ORG"   # without tickets (system:anyuser)
//   state_dir = "/var/lib/heka/cachemgr"       # the cache manager's uuid, private ccache copies
//   private = false                            # true: one user's mount, long kernel caching
//   private_uid = 1000                         # that user (default: the mount point's owner)
//   control_socket = "/run/heka-cachemgr.sock"  # `heka fs` asks here (mode 0666); "" = none
//   cache_size_mb = 1024                       # the bound on cached file data
//   cache_dir = "/var/lib/heka/cachemgr/cache" # default: state_dir/cache; "" = in memory
//   chunk_size_kb = 1024                       # the unit of caching and of fetches
//   key_dir = "/etc/heka/keys"                 # cell keys of encrypted volumes: <cell>.key
//
//   [cachemgr.keys]                            # per-cell key files, overriding key_dir
//   acme = "/etc/heka/keys/acme-2024.key"
#pragma once

#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace heka::cm {

struct CacheManagerConfig {
  std::string mountpoint = "/heka";
  std::string dbservers;
  std::vector<std::string> cells;
  std::string keytab;
  std::string principal;
  std::string state_dir;
  bool private_mount = false;
  int64_t private_uid = -1;
  // The control socket `heka fs` talks to. Default "/run/heka-cachemgr.sock", where the CLI
  // looks unless -socket or $HEKA_CACHEMGR_SOCKET says otherwise; "" = no control socket.
  std::string control_socket = "/run/heka-cachemgr.sock";
  // The bound on cached file data. Default 1 GiB. Files up to half of it are fetched whole
  // (several chunks at a time) when opened for reading.
  uint64_t cache_bytes = 1024ull << 20;
  // Where file data is cached, surviving restarts (DiskChunkCache). Default:
  // state_dir + "/cache"; "" keeps it in memory only.
  std::string cache_dir;
  // The unit of caching, fetching and storing: 64 KiB to 16 MiB, a power of two. Default
  // 1 MiB. A cache directory made with another size is emptied at start.
  uint64_t chunk_bytes = 1 << 20;
  // Where the cell keys of encrypted volumes are: <key_dir>/<cell>.key (KeyStore). Default
  // "/etc/heka/keys".
  std::string key_dir = "/etc/heka/keys";
  // [cachemgr.keys]: cell -> its key file, instead of <key_dir>/<cell>.key. Default: none.
  std::map<std::string, std::string> key_files;

  static Result<CacheManagerConfig> Load(const std::string& path);
};

}  // namespace heka::cm

// FsCell: a small real cell for file-server integration tests: a DbCluster (one member by
// default) and real heka-fileserver processes on loopback, with their keys from a TestRealm.
// File server N is heka/fs<N>-<k>@REALM on 127.0.0.1:<free port>, with partitions
// <dir>/fs<N>/vicepa (and any extra partitions given). Not thread-safe: drive it from the test.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/db_cluster.h"
#include "tests/support/test_realm.h"

namespace heka::testing {

struct FsCellOptions {
  int db_members = 1;
  int fileservers = 1;
  std::vector<std::string> provider_admins;
  int64_t break_bound_ms = 1000;
  int64_t cps_ttl_ms = 1000;
  int64_t lock_lease_ms = 3000;
  int64_t lock_grace_ms = 5000;
  std::vector<std::string> extra_partitions;  // added to every file server's list
};

class FsCell {
 public:
  // Creates keys, configs and dirs and starts the DB members (waiting for a leader, asked
  // with `admin_ccache`); file servers are started with StartFileServer.
  static Result<std::unique_ptr<FsCell>> Create(TestRealm& realm, FsCellOptions options,
                                                const std::string& admin_ccache);
  ~FsCell();  // kills everything still running

  DbCluster& db() { return *db_; }
  Status StartFileServer(int n);
  // Starts it and waits until its log says it registered in the VLDB.
  Status StartFileServerAndWait(int n);
  void KillFileServer(int n);  // SIGKILL
  void StopFileServer(int n);  // SIGTERM
  pid_t fs_pid(int n) const { return servers_.at(n).pid; }
  std::string fs_address(int n) const;
  std::string fs_principal(int n) const { return servers_.at(n).principal; }
  std::string fs_partition(int n) const { return servers_.at(n).dir + "/vicepa"; }
  std::string fs_state_dir(int n) const { return servers_.at(n).dir + "/state"; }
  std::string fs_log(int n) const { return servers_.at(n).dir + ".log"; }
  std::string fs_config(int n) const { return servers_.at(n).dir + ".toml"; }
  // The uuid the server made on its first start ("" before).
  std::string fs_uuid(int n) const;
  std::string LogTail(int n, size_t lines = 30) const;

 private:
  struct Server {
    int port = 0;
    std::string principal;
    std::string keytab;
    std::string dir;
    pid_t pid = -1;
  };
  FsCell(TestRealm& realm, FsCellOptions options) : realm_(realm), options_(std::move(options)) {}
  Status WriteConfig(int n);

  TestRealm& realm_;
  FsCellOptions options_;
  std::unique_ptr<DbCluster> db_;
  std::map<int, Server> servers_;
};

}  // namespace heka::testing

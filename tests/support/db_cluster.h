// DbCluster: real heka-dbserver processes on loopback for integration tests, with their
// keys from a TestRealm. Members are heka/db<N>@REALM on 127.0.0.1:<free port>; every member
// is started with --bootstrap and the same peer list. Not thread-safe: drive it from the test.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proto/db.pb.h"
#include "rpc/client.h"
#include "rpc/runtime.h"
#include "tests/support/ports.h"
#include "tests/support/test_realm.h"

namespace heka::testing {

struct DbClusterOptions {
  int members = 3;
  std::vector<std::string> provider_admins;  // principals
  unsigned snapshot_threshold = 8192;
  size_t backup_chunk_bytes = 8 << 20;
};

class DbCluster {
 public:
  // Creates keys, configs and data dirs under realm.dir(); starts nothing yet.
  static Result<std::unique_ptr<DbCluster>> Create(TestRealm& realm, DbClusterOptions options);
  ~DbCluster();  // kills every member still running

  Status Start(int id);        // id from 1
  Status StartAll();
  void Kill(int id);           // SIGKILL, waits for the exit
  void Stop(int id);           // SIGTERM, waits for the exit
  bool running(int id) const;
  pid_t pid(int id) const;

  std::string address(int id) const;
  std::string principal(int id) const;
  std::string data_dir(int id) const;
  std::string config_path(int id) const;
  std::string log_path(int id) const;
  // The last lines of a member's log, for failure messages.
  std::string LogTail(int id, size_t lines = 20) const;
  // "127.0.0.1:p1=heka/db1-1@REALM,..." for -dbservers / HEKA_DBSERVERS.
  std::string dbservers() const;
  int size() const { return static_cast<int>(members_.size()); }

  // Adds (but does not start) one more member, configured like the others but without
  // --bootstrap. `keytab` overrides its key (to test a member with the wrong one).
  Result<int> AddMemberConfig(const std::string& keytab_override = "");

  // Status of member `id` as it reports itself (Db.Status), with `ccache`'s credentials.
  Result<db::StatusReply> StatusOf(int id, const std::string& ccache);
  // Waits until some running member reports itself leader; returns its id.
  Result<int> WaitForLeader(const std::string& ccache, std::chrono::milliseconds timeout);

 private:
  struct Member {
    int id = 0;
    int port = 0;
    std::string principal;
    std::string keytab;
    std::string dir;
    pid_t pid = -1;
    bool bootstrap = true;
  };
  DbCluster(TestRealm& realm, DbClusterOptions options);
  Status WriteConfig(const Member& m);

  TestRealm& realm_;
  DbClusterOptions options_;
  std::string root_;
  std::map<int, Member> members_;
  rpc::Runtime runtime_{{1, 2}};
};

}  // namespace heka::testing

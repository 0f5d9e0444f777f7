// DbService: the heka.db.Db RPC handlers of one member. Decodes, authorises, and hands
// writes to Raft (leader only) and reads to the StateMachine (any member; authorisation
// reads refused by a stale member). Provider administrators come from the config.
// Thread-safe: handlers run concurrently on the Asio threads.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "dbserver/config.h"
#include "dbserver/raft/node.h"
#include "dbserver/state/state_machine.h"
#include "rpc/registry.h"
#include "rpc/runtime.h"

namespace heka::db {

class DbService {
 public:
  DbService(const DbServerConfig& config, StateMachine& state, RaftNode& node,
            rpc::Runtime& runtime);

  void Register(rpc::HandlerRegistry& registry);
  // Called periodically: on a new cluster, the leader records the configured members in the
  // replicated member list (SetMember), which later admissions rely on.
  void MaybeSeedMembers();

  Caller CallerOf(const krb::Identity& peer) const;

 private:
  // Proposes `cmd` and waits for its result (as an RPC-level error when it did not apply).
  rpc::awaitable<Result<CommandResult>> Propose(Command cmd);
  Status NotLeader() const;
  // SetMember commands for every configured peer (the initial member list).
  std::vector<Command> SeedCommands() const;
  rpc::awaitable<Status> SeedMembersIfEmpty();

  const DbServerConfig& config_;
  StateMachine& state_;
  RaftNode& node_;
  rpc::Runtime& runtime_;
  std::set<std::string> admins_;
  // The image of the backup being fetched (one at a time; a new backup replaces it).
  struct PendingBackup {
    std::string token;
    uint64_t applied = 0;
    Bytes image;
  };
  std::mutex backup_mu_;
  std::shared_ptr<const PendingBackup> backup_;  // backup_mu_
};

}  // namespace heka::db

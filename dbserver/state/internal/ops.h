// The state machine's operations: one function per Command kind (applied inside the command's
// transaction) and one per read. Each returns a Status whose code is the operation's outcome;
// a storage failure is kIoError (IsStorageFailure) and stops the member. Not thread-safe
// (called under the StateMachine's mutex).
#pragma once

#include <string>
#include <vector>

#include "dbserver/state/internal/access.h"
#include "dbserver/state/internal/sqlite.h"
#include "dbserver/state/state_machine.h"
#include "proto/db.pb.h"

namespace heka::db::internal {

// One command being applied.
struct ApplyContext {
  Database& db;
  const Command& cmd;
  Actor actor;
  CommandResult* result;  // operations set id / generation here
};

// cells.cc
Status ApplyCreateCell(ApplyContext& ctx, const CreateCell& op);
Status ApplyDeleteCell(ApplyContext& ctx, const DeleteCell& op);
Status ApplyAddRealm(ApplyContext& ctx, const AddRealm& op);
Status ApplySetCellQuota(ApplyContext& ctx, const SetCellQuota& op);
Result<Cell> ReadCell(Database& db, const Actor& actor, const std::string& name);
Result<std::vector<Cell>> ReadCells(Database& db, const Actor& actor);

// ptdb.cc
Status ApplyCreateUser(ApplyContext& ctx, const CreateUser& op);
Status ApplyCreateGroup(ApplyContext& ctx, const CreateGroup& op);
Status ApplyDeleteEntry(ApplyContext& ctx, const DeleteEntry& op);
Status ApplyAddMember(ApplyContext& ctx, const AddMember& op);
Status ApplyRemoveMember(ApplyContext& ctx, const RemoveMember& op);
Status ApplyRenameEntry(ApplyContext& ctx, const RenameEntry& op);

// ptdb_reads.cc
Result<Entry> ReadEntry(Database& db, const Actor& actor, const std::string& cell,
                        const std::string& name, int64_t id);
Result<std::vector<Entry>> ReadEntries(Database& db, const Actor& actor, const std::string& cell,
                                       bool users, bool groups);
Result<std::vector<std::string>> ReadMembership(Database& db, const Actor& actor,
                                                const std::string& cell, const std::string& name);
Result<std::vector<Entry>> ReadOwned(Database& db, const Actor& actor, const std::string& cell,
                                     const std::string& owner);
Result<Cps> ReadCps(Database& db, const Actor& actor, const std::string& cell,
                    const std::string& principal);

// vldb.cc
Status ApplyRegisterServer(ApplyContext& ctx, const RegisterServer& op);
Status ApplyCreateVolume(ApplyContext& ctx, const CreateVolume& op);
Status ApplyDeleteVolume(ApplyContext& ctx, const DeleteVolume& op);
Status ApplyLockVolume(ApplyContext& ctx, const LockVolume& op);
Status ApplyUnlockVolume(ApplyContext& ctx, const UnlockVolume& op);
Status ApplySetVolumeSites(ApplyContext& ctx, const SetVolumeSites& op);
Status ApplySetMember(ApplyContext& ctx, const SetMember& op);
Result<Volume> ReadVolume(Database& db, const Actor& actor, const std::string& cell,
                          const std::string& name, uint64_t id);
Result<std::vector<Volume>> ReadVolumes(Database& db, const Actor& actor, const std::string& cell,
                                        const std::string& server_uuid);
Result<std::vector<FileServer>> ReadServers(Database& db, const Actor& actor);
Result<std::vector<SetMember>> ReadMembers(Database& db);

}  // namespace heka::db::internal

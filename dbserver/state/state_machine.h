// StateMachine: one DB member's copy of the VLDB and PTDB, in one SQLite file.
// Raft applies each committed Command through Apply(); everything it does depends only on
// the command and the database (timestamps and IDs come from the command), so every member
// ends up byte-for-byte equal. last_applied is committed in the same transaction as the
// command, so a restart never applies an entry twice, and request IDs make a retried write
// (after "outcome unknown") apply once.
//
// Thread-safety: all methods may be called from any thread; an internal mutex serialises
// them (Apply from the Raft loop thread, reads from RPC handlers).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/db.pb.h"
#include "util/bytes.h"
#include "util/status.h"

struct sqlite3;

namespace heka::db {

// The highest Command.version this build applies (docs/formats/db-schema.md §1):
//   1: the first;
//   2: CreateVolume checks key_fingerprint: 16 bytes when encrypted, else empty.
inline constexpr uint32_t kCommandVersion = 2;
inline constexpr uint32_t kCommandVersionVolumeKeys = 2;
inline constexpr size_t kKeyFingerprintBytes = 16;  // Volume.key_fingerprint of an encrypted volume
inline constexpr int64_t kAnyUserId = -101;     // system:anyuser
inline constexpr int64_t kAuthUserId = -102;    // system:authuser
inline constexpr int64_t kAdministratorsId = -204;  // system:administrators

// Who is asking, for authorisation of reads and writes.
struct Caller {
  std::string principal;          // authenticated, e.g. "alice@ACME.TEST"
  bool provider_admin = false;    // listed in the server's config
};

struct Cps {
  int64_t user_id = 0;            // 0: not registered in the cell
  std::vector<int64_t> group_ids; // always contains kAnyUserId
};

class StateMachine {
 public:
  // Opens (creating if needed) the database at `path`. SQLite in WAL mode, synchronous=FULL.
  static Result<std::unique_ptr<StateMachine>> Open(const std::string& path);
  ~StateMachine();

  // The index of the last command applied (0 for a new database).
  uint64_t last_applied() const;

  // Applies `cmd`, committed at log index `index`, in one transaction together with
  // last_applied = index. Entries with index <= last_applied() are skipped (result code kOk,
  // message "already applied"). A command whose request_id was applied before returns the
  // stored result without applying again. Failures of the operation itself (no such cell,
  // permission denied, ...) are returned inside the CommandResult and still advance
  // last_applied. A non-OK Status means the member must stop: an unknown command version
  // (newer than kCommandVersion) or a storage failure.
  Result<CommandResult> Apply(uint64_t index, const Command& cmd);

  // A consistent image of the whole database (sqlite3_serialize).
  Result<Bytes> Snapshot() const;
  // Replaces the database with `image`: written to a temp file, fsynced, renamed over the
  // database file, and reopened.
  Status Restore(ByteView image);
  // Disaster recovery into a new cluster: Restore(image), then restarts the log position at 0
  // (last_applied = 0, no remembered request ids, no member list) so a fresh Raft log applies
  // on top of it.
  // REQUIRES: the member is not running Raft.
  Status RestoreAsNewLog(ByteView image);

  // ---- Reads. Each checks that `caller` may see what it asks for; another cell's data is
  // refused with kPermissionDenied (or kNotFound) without revealing whether it exists.
  Result<Cell> GetCell(const Caller& caller, const std::string& name) const;
  Result<std::vector<Cell>> ListCells(const Caller& caller) const;  // only cells caller may see
  Result<Entry> GetEntry(const Caller& caller, const std::string& cell, const std::string& name,
                         int64_t id) const;  // by name, or by id when name is empty
  Result<std::vector<Entry>> ListEntries(const Caller& caller, const std::string& cell,
                                         bool users, bool groups) const;
  // Groups of a user, or members of a group (names).
  Result<std::vector<std::string>> Membership(const Caller& caller, const std::string& cell,
                                              const std::string& name) const;
  Result<std::vector<Entry>> ListOwned(const Caller& caller, const std::string& cell,
                                       const std::string& owner) const;
  // The CPS of `principal` in `cell`. Machine principals (host/..., heka/...) get only
  // system:anyuser; principals of a realm the cell trusts get system:authuser too; registered
  // users also get every group they are a member of. Callers: provider admins, machine
  // principals (file servers), or the principal itself.
  Result<Cps> GetCps(const Caller& caller, const std::string& cell,
                     const std::string& principal) const;

  Result<Volume> GetVolume(const Caller& caller, const std::string& cell, const std::string& name,
                           uint64_t id) const;
  Result<std::vector<Volume>> ListVolumes(const Caller& caller, const std::string& cell,
                                          const std::string& server_uuid) const;
  Result<std::vector<FileServer>> ListServers(const Caller& caller) const;
  // The replicated DB member list (SetMember commands).
  std::vector<SetMember> Members() const;

  // For tests: a deterministic dump of every table, to compare members.
  std::string test_DumpAll() const;

 private:
  explicit StateMachine(std::string path);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace heka::db

#include "dbserver/state/state_machine.h"

#include <atomic>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "dbserver/state/internal/ops.h"
#include "dbserver/state/internal/schema.h"

namespace heka::db {

using internal::Database;
using internal::Query;

namespace {

constexpr size_t kSqliteHeaderSize = 100;
constexpr char kSqliteMagic[] = "SQLite format 3";  // 16 bytes with its NUL

Status ErrnoStatus(const std::string& what) {
  return Error(Code::kIoError, what + ": " + std::strerror(errno));
}

Status WriteFileSynced(const std::string& path, ByteView data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("open " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = ErrnoStatus("write " + path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = ErrnoStatus("fsync " + path);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return ErrnoStatus("close " + path);
  return Status::Ok();
}

Status SyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + dir);
  int rc = ::fsync(fd);
  Status s = rc == 0 ? Status::Ok() : ErrnoStatus("fsync " + dir);
  ::close(fd);
  return s;
}

Status RemoveIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink " + path);
  return Status::Ok();
}

// Marks an image as a rollback-journal database (file format bytes 18/19 = 1), so that it can
// be deserialized, and opened from a file without looking for a WAL that is not its own.
void ClearWalFlag(Bytes& image) {
  if (image.size() >= kSqliteHeaderSize) image[18] = image[19] = 1;
}

// Checks that `image` is a sound database of this schema version, in a private in-memory copy.
Status CheckImage(const Bytes& image) {
  if (image.size() < kSqliteHeaderSize ||
      std::memcmp(image.data(), kSqliteMagic, sizeof(kSqliteMagic)) != 0) {
    return Error(Code::kInvalidArgument, "snapshot image is not a SQLite database");
  }
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(raw);
    return Error(Code::kIoError, "cannot open an in-memory database");
  }
  auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(image.size()));
  if (copy == nullptr) {
    sqlite3_close(raw);
    return Error(Code::kIoError, "out of memory");
  }
  std::memcpy(copy, image.data(), image.size());
  int rc = sqlite3_deserialize(raw, "main", copy, image.size(), image.size(),
                               SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
  const char* sql =
      "SELECT (SELECT group_concat(quick_check) FROM pragma_quick_check), "
      "(SELECT value FROM meta WHERE key = 'schema_version')";
  sqlite3_stmt* stmt = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(raw, sql, -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  Status s = Error(Code::kInvalidArgument, "snapshot image is unreadable");
  if (rc == SQLITE_ROW) {
    const char* check = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    int64_t version = sqlite3_column_int64(stmt, 1);
    if (check == nullptr || std::string(check) != "ok") {
      s = Error(Code::kInvalidArgument, "snapshot image fails its integrity check");
    } else if (version != internal::kSchemaVersion) {
      s = Error(Code::kInvalidArgument,
                "snapshot image has schema version " + std::to_string(version));
    } else {
      s = Status::Ok();
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return s;
}

}  // namespace

struct StateMachine::Impl {
  std::string path;
  mutable std::mutex mu;
  std::unique_ptr<Database> db;  // null only after a Restore that failed to reopen
  // Reads use their own connection (WAL lets it read while `db` writes), so a long read or
  // listing never holds up Apply on the Raft loop thread. Lock order: mu, then read_mu.
  mutable std::mutex read_mu;
  std::unique_ptr<Database> reader;  // read_mu
  std::atomic<uint64_t> last_applied{0};

  Status Reopen();
  Result<CommandResult> ApplyInTransaction(uint64_t index, const Command& cmd);
  Result<CommandResult> ApplyOnce(uint64_t index, const Command& cmd);
  Result<CommandResult> RunCommand(uint64_t index, const Command& cmd);
  Status CloseForRestore();

  // Runs `read` on the read connection.
  template <typename F>
  auto Read(F&& read) const -> decltype(read(*db)) {
    std::lock_guard lock(read_mu);
    if (!reader) return Error(Code::kUnavailable, "database closed after a failed restore");
    return read(*reader);
  }
};

StateMachine::StateMachine(std::string path) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
}

StateMachine::~StateMachine() = default;

Result<std::unique_ptr<StateMachine>> StateMachine::Open(const std::string& path) {
  std::unique_ptr<StateMachine> sm(new StateMachine(path));
  std::lock_guard lock(sm->impl_->mu);
  Status s = sm->impl_->Reopen();
  if (!s.ok()) return s;
  return sm;
}

Status StateMachine::Impl::Reopen() {
  db.reset();
  {
    std::lock_guard lock(read_mu);
    reader.reset();
  }
  auto opened = Database::Open(path);
  if (!opened.ok()) return opened.status();
  Status s = internal::InitSchema(**opened);
  if (!s.ok()) return s;
  auto applied = internal::GetMeta(**opened, internal::kMetaLastApplied);
  if (!applied.ok()) return applied.status();
  last_applied = static_cast<uint64_t>(*applied);
  db = std::move(*opened);
  auto read_conn = Database::Open(path);
  if (!read_conn.ok()) return read_conn.status();
  std::lock_guard lock(read_mu);
  reader = std::move(*read_conn);
  return Status::Ok();
}

uint64_t StateMachine::last_applied() const {
  return impl_->last_applied.load();
}

// --- Apply ---------------------------------------------------------------------------------

Result<CommandResult> StateMachine::Apply(uint64_t index, const Command& cmd) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->db) return Error(Code::kUnavailable, "database closed after a failed restore");
  if (index <= impl_->last_applied) {
    CommandResult skipped;
    skipped.set_message("already applied");
    skipped.set_index(index);
    return skipped;
  }
  if (cmd.version() > kCommandVersion) {
    return Error(Code::kVersionMismatch, "command version " + std::to_string(cmd.version()) +
                                             " at index " + std::to_string(index) +
                                             " is newer than this build (" +
                                             std::to_string(kCommandVersion) + ")");
  }
  return impl_->ApplyInTransaction(index, cmd);
}

Result<CommandResult> StateMachine::Impl::ApplyInTransaction(uint64_t index, const Command& cmd) {
  Status s = Query(*db, "BEGIN IMMEDIATE").Run();
  if (!s.ok()) return s;
  auto result = ApplyOnce(index, cmd);
  if (result.ok()) s = internal::SetMeta(*db, internal::kMetaLastApplied, int64_t(index));
  if (result.ok() && s.ok()) s = Query(*db, "COMMIT").Run();
  if (!result.ok() || !s.ok()) {
    (void)db->Exec("ROLLBACK");
    return result.ok() ? s : result.status();
  }
  last_applied = index;
  return result;
}

// Applies `cmd` unless its request id was applied before, in which case the stored result is
// returned. Request ids are scoped to the caller, so one principal cannot replay (or read)
// another's outcome; they are forgotten kDedupWindowNs of command time after their use.
Result<CommandResult> StateMachine::Impl::ApplyOnce(uint64_t index, const Command& cmd) {
  Query prune(*db, "DELETE FROM applied_requests WHERE time_ns < ?",
              cmd.time_ns() - internal::kDedupWindowNs);
  Status s = prune.Run();
  if (!s.ok()) return s;
  if (!cmd.request_id().empty()) {
    Query seen(*db, "SELECT result FROM applied_requests WHERE caller = ? AND request_id = ?",
               cmd.caller(), cmd.request_id());
    auto row = seen.Step();
    if (!row.ok()) return row.status();
    CommandResult stored;
    if (*row) {
      Bytes blob = seen.Blob(0);
      if (!stored.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return Error(Code::kInternal,
                     "stored result of request " + cmd.request_id() + " is corrupt");
      }
      return stored;
    }
  }
  auto result = RunCommand(index, cmd);
  if (!result.ok() || cmd.request_id().empty()) return result;
  std::string blob = result->SerializeAsString();
  Query store(*db,
              "INSERT INTO applied_requests (caller, request_id, time_ns, result) "
              "VALUES (?, ?, ?, ?)",
              cmd.caller(), cmd.request_id(), cmd.time_ns());
  store.BindBlob(AsBytes(blob));
  s = store.Run();
  if (!s.ok()) return s;
  return result;
}

namespace {

Status Dispatch(internal::ApplyContext& ctx) {
  using namespace internal;  // NOLINT: the Apply* functions
  const Command& c = ctx.cmd;
  switch (c.op_case()) {
    case Command::kCreateCell:
      return ApplyCreateCell(ctx, c.create_cell());
    case Command::kDeleteCell:
      return ApplyDeleteCell(ctx, c.delete_cell());
    case Command::kAddRealm:
      return ApplyAddRealm(ctx, c.add_realm());
    case Command::kSetCellQuota:
      return ApplySetCellQuota(ctx, c.set_cell_quota());
    case Command::kCreateUser:
      return ApplyCreateUser(ctx, c.create_user());
    case Command::kCreateGroup:
      return ApplyCreateGroup(ctx, c.create_group());
    case Command::kDeleteEntry:
      return ApplyDeleteEntry(ctx, c.delete_entry());
    case Command::kAddMember:
      return ApplyAddMember(ctx, c.add_member());
    case Command::kRemoveMember:
      return ApplyRemoveMember(ctx, c.remove_member());
    case Command::kRenameEntry:
      return ApplyRenameEntry(ctx, c.rename_entry());
    case Command::kRegisterServer:
      return ApplyRegisterServer(ctx, c.register_server());
    case Command::kCreateVolume:
      return ApplyCreateVolume(ctx, c.create_volume());
    case Command::kDeleteVolume:
      return ApplyDeleteVolume(ctx, c.delete_volume());
    case Command::kLockVolume:
      return ApplyLockVolume(ctx, c.lock_volume());
    case Command::kUnlockVolume:
      return ApplyUnlockVolume(ctx, c.unlock_volume());
    case Command::kSetVolumeSites:
      return ApplySetVolumeSites(ctx, c.set_volume_sites());
    case Command::kSetMember:
      return ApplySetMember(ctx, c.set_member());
    case Command::kNoop:
      return Status::Ok();
    case Command::OP_NOT_SET:
      break;
  }
  return Error(Code::kInvalidArgument, "command without a known operation");
}

}  // namespace

// Runs the operation inside a savepoint: a failed operation leaves no partial change behind,
// while the surrounding transaction still records last_applied and the request id.
Result<CommandResult> StateMachine::Impl::RunCommand(uint64_t index, const Command& cmd) {
  CommandResult result;
  result.set_index(index);
  Status op;
  if (cmd.version() == 0) {
    op = Error(Code::kInvalidArgument, "command version 0");
  } else {
    Status s = Query(*db, "SAVEPOINT op").Run();
    if (!s.ok()) return s;
    internal::ApplyContext ctx{
        *db, cmd, internal::MakeActor(cmd.caller(), cmd.caller_is_provider_admin()), &result};
    op = Dispatch(ctx);
    if (internal::IsStorageFailure(op)) return op;
    if (!op.ok()) {
      s = Query(*db, "ROLLBACK TO op").Run();
      if (!s.ok()) return s;
      result.clear_id();
      result.clear_generation();
    }
    s = Query(*db, "RELEASE op").Run();
    if (!s.ok()) return s;
  }
  result.set_code(static_cast<uint32_t>(op.code()));
  result.set_message(op.message());
  return result;
}

// --- Snapshots -----------------------------------------------------------------------------

Result<Bytes> StateMachine::Snapshot() const {
  std::lock_guard lock(impl_->mu);
  Database* db = impl_->db.get();
  if (db == nullptr) return Error(Code::kUnavailable, "database closed after a failed restore");
  // Fold the WAL into the main file first; the image is then read inside one read transaction.
  Status s = db->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  if (s.ok()) s = db->Exec("BEGIN; SELECT count(*) FROM meta");
  if (!s.ok()) return s;
  sqlite3_int64 size = 0;
  unsigned char* data = sqlite3_serialize(db->handle(), "main", &size, 0);
  s = db->Exec("COMMIT");
  if (data == nullptr) return Error(Code::kIoError, "sqlite3_serialize failed");
  Bytes image(data, data + size);
  sqlite3_free(data);
  if (!s.ok()) return s;
  ClearWalFlag(image);
  return image;
}

Status StateMachine::Impl::CloseForRestore() {
  if (db) {
    (void)db->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    db.reset();
  }
  {
    std::lock_guard lock(read_mu);
    reader.reset();
  }
  // The old database's WAL must never be replayed onto the new file.
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    Status s = RemoveIfPresent(path + suffix);
    if (!s.ok()) return s;
  }
  return SyncDirectoryOf(path);
}

Status StateMachine::Restore(ByteView image) {
  Bytes copy(image.begin(), image.end());
  ClearWalFlag(copy);
  Status s = CheckImage(copy);
  if (!s.ok()) return s;
  std::lock_guard lock(impl_->mu);
  std::string temp = impl_->path + ".restore";
  s = WriteFileSynced(temp, copy);
  if (!s.ok()) return s;
  s = impl_->CloseForRestore();
  if (s.ok() && std::rename(temp.c_str(), impl_->path.c_str()) != 0) {
    s = ErrnoStatus("rename " + temp);
  }
  if (s.ok()) s = SyncDirectoryOf(impl_->path);
  if (!s.ok()) (void)RemoveIfPresent(temp);
  // On failure this reopens the old database, which CloseForRestore left consistent.
  Status reopened = impl_->Reopen();
  return s.ok() ? reopened : s;
}

Status StateMachine::RestoreAsNewLog(ByteView image) {
  Status s = Restore(image);
  if (!s.ok()) return s;
  std::lock_guard lock(impl_->mu);
  Database& db = *impl_->db;
  s = Query(db, "BEGIN IMMEDIATE").Run();
  if (s.ok()) s = internal::SetMeta(db, internal::kMetaLastApplied, int64_t{0});
  if (s.ok()) s = Query(db, "DELETE FROM applied_requests").Run();
  // The member list belongs to the old cluster; the new one seeds its own from its config.
  if (s.ok()) s = Query(db, "DELETE FROM db_members").Run();
  if (s.ok()) s = Query(db, "COMMIT").Run();
  if (!s.ok()) {
    (void)db.Exec("ROLLBACK");
    return s;
  }
  impl_->last_applied = 0;
  return Status::Ok();
}

// --- Reads ---------------------------------------------------------------------------------

namespace {
internal::Actor ActorOf(const Caller& caller) {
  return internal::MakeActor(caller.principal, caller.provider_admin);
}
}  // namespace

Result<Cell> StateMachine::GetCell(const Caller& caller, const std::string& name) const {
  return impl_->Read([&](Database& db) { return internal::ReadCell(db, ActorOf(caller), name); });
}

Result<std::vector<Cell>> StateMachine::ListCells(const Caller& caller) const {
  return impl_->Read([&](Database& db) { return internal::ReadCells(db, ActorOf(caller)); });
}

Result<Entry> StateMachine::GetEntry(const Caller& caller, const std::string& cell,
                                     const std::string& name, int64_t id) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadEntry(db, ActorOf(caller), cell, name, id); });
}

Result<std::vector<Entry>> StateMachine::ListEntries(const Caller& caller, const std::string& cell,
                                                     bool users, bool groups) const {
  return impl_->Read([&](Database& db) {
    return internal::ReadEntries(db, ActorOf(caller), cell, users, groups);
  });
}

Result<std::vector<std::string>> StateMachine::Membership(const Caller& caller,
                                                          const std::string& cell,
                                                          const std::string& name) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadMembership(db, ActorOf(caller), cell, name); });
}

Result<std::vector<Entry>> StateMachine::ListOwned(const Caller& caller, const std::string& cell,
                                                   const std::string& owner) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadOwned(db, ActorOf(caller), cell, owner); });
}

Result<Cps> StateMachine::GetCps(const Caller& caller, const std::string& cell,
                                 const std::string& principal) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadCps(db, ActorOf(caller), cell, principal); });
}

Result<Volume> StateMachine::GetVolume(const Caller& caller, const std::string& cell,
                                       const std::string& name, uint64_t id) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadVolume(db, ActorOf(caller), cell, name, id); });
}

Result<std::vector<Volume>> StateMachine::ListVolumes(const Caller& caller, const std::string& cell,
                                                      const std::string& server_uuid) const {
  return impl_->Read(
      [&](Database& db) { return internal::ReadVolumes(db, ActorOf(caller), cell, server_uuid); });
}

Result<std::vector<FileServer>> StateMachine::ListServers(const Caller& caller) const {
  return impl_->Read([&](Database& db) { return internal::ReadServers(db, ActorOf(caller)); });
}

std::vector<SetMember> StateMachine::Members() const {
  auto members = impl_->Read([](Database& db) { return internal::ReadMembers(db); });
  return members.ok() ? std::move(*members) : std::vector<SetMember>();
}

// --- Test hooks ----------------------------------------------------------------------------

namespace {

std::string FormatValue(const Query& q, int col) {
  switch (q.column_type(col)) {
    case SQLITE_NULL:
      return "NULL";
    case SQLITE_INTEGER:
      return std::to_string(q.Int(col));
    case SQLITE_BLOB: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "x'";
      for (uint8_t b : q.Blob(col)) {
        out += kHex[b >> 4];
        out += kHex[b & 15];
      }
      return out + "'";
    }
    default:
      return "'" + q.Text(col) + "'";
  }
}

Result<std::string> DumpTable(Database& db, const std::string& table) {
  std::string select = "SELECT * FROM \"" + table + "\"";
  int columns = 0;
  {
    Query probe(db, select.c_str());
    auto row = probe.Step();
    if (!row.ok()) return row.status();
    columns = probe.columns();
  }
  std::string order;
  for (int i = 1; i <= columns; ++i) order += (i == 1 ? " ORDER BY " : ", ") + std::to_string(i);
  std::string sql = select + order;
  Query q(db, sql.c_str());
  std::string out = "table " + table + "\n";
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out += " ";
    for (int i = 0; i < columns; ++i)
      out += std::string(" ") + q.column_name(i) + "=" + FormatValue(q, i);
    out += "\n";
  }
}

}  // namespace

std::string StateMachine::test_DumpAll() const {
  auto dump = impl_->Read([](Database& db) -> Result<std::string> {
    std::vector<std::string> tables;
    Query q(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      tables.push_back(q.Text(0));
    }
    std::string out;
    for (const auto& table : tables) {
      auto text = DumpTable(db, table);
      if (!text.ok()) return text.status();
      out += *text;
    }
    return out;
  });
  return dump.ok() ? *dump : "error: " + dump.status().ToString();
}

}  // namespace heka::db

// Volume: creation, opening, the transaction helper and the namespace operations.
// Stores, reads, SetAttr and clones are in volume_store.cc.
#include "fileserver/volume/volume.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace heka::fs {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE header(
  k INTEGER PRIMARY KEY CHECK (k = 1), format INTEGER NOT NULL, id INTEGER NOT NULL,
  name TEXT NOT NULL, type INTEGER NOT NULL, parent_id INTEGER NOT NULL,
  quota INTEGER NOT NULL, usage INTEGER NOT NULL, next_vnode INTEGER NOT NULL,
  next_uniq INTEGER NOT NULL, serial INTEGER NOT NULL, stores INTEGER NOT NULL,
  bytes_stored INTEGER NOT NULL, chunk_size INTEGER NOT NULL, ops INTEGER NOT NULL,
  reads INTEGER NOT NULL, bytes_read INTEGER NOT NULL, inline_limit INTEGER NOT NULL);
CREATE TABLE vnodes(
  vnode INTEGER PRIMARY KEY, uniq INTEGER NOT NULL, type INTEGER NOT NULL,
  mode INTEGER NOT NULL, owner INTEGER NOT NULL, grp INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, dv INTEGER NOT NULL,
  links INTEGER NOT NULL, parent INTEGER NOT NULL, serial INTEGER NOT NULL,
  attr BLOB NOT NULL, target BLOB);
CREATE INDEX vnodes_by_serial ON vnodes(serial);
CREATE TABLE dirents(
  dir INTEGER NOT NULL, name BLOB NOT NULL, child INTEGER NOT NULL,
  child_uniq INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID;
CREATE TABLE chunks(
  vnode INTEGER NOT NULL, idx INTEGER NOT NULL, dv INTEGER NOT NULL, len INTEGER NOT NULL,
  PRIMARY KEY (vnode, idx)) WITHOUT ROWID;
CREATE TABLE inline_data(vnode INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE acls(
  dir INTEGER NOT NULL, principal INTEGER NOT NULL, negative INTEGER NOT NULL,
  rights INTEGER NOT NULL, PRIMARY KEY (dir, principal, negative)) WITHOUT ROWID;
)sql";

constexpr const char* kVnodeColumns =
    "SELECT vnode, uniq, type, mode, owner, grp, size, mtime_ns, ctime_ns, dv, links, parent, "
    "serial, attr FROM vnodes WHERE vnode = ?";

VolumeOptions WithDefaults(VolumeOptions o) {
  if (o.env == nullptr) o.env = DefaultEnv();
  if (!o.now_ns) {
    o.now_ns = [] {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  return o;
}

// The id in a volume directory name "V<decimal>", if it is one.
std::optional<uint64_t> ParseVolumeDirName(const std::string& name) {
  if (name.size() < 2 || name.size() > 21 || name[0] != 'V') return std::nullopt;
  uint64_t id = 0;
  for (size_t i = 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(name[i] - '0');
    if (id > (UINT64_MAX - digit) / 10) return std::nullopt;
    id = id * 10 + digit;
  }
  return id;
}

}  // namespace

std::string VolumeDir(const VolumeOptions& o, uint64_t id) {
  return o.partition + "/V" + std::to_string(id);
}

Result<std::vector<uint64_t>> ListVolumeIds(const VolumeOptions& options) {
  Env* env = options.env != nullptr ? options.env : DefaultEnv();
  auto names = env->ListDir(options.partition);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> ids;
  for (const std::string& name : *names) {
    auto id = ParseVolumeDirName(name);
    if (id && VolumeDir(options, *id) == options.partition + "/" + name) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

bool VolumeNeedsSalvage(const VolumeOptions& options, uint64_t id) {
  Env* env = options.env != nullptr ? options.env : DefaultEnv();
  std::string dir = VolumeDir(options, id);
  return env->FileExists(dir + "/" + kDirtyMarkerName) || !env->FileExists(dir + "/meta.sqlite");
}

Status CheckEntryName(std::string_view name) {
  if (name.size() > kMaxNameLength) return Error(Code::kInvalidArgument, "name too long");
  if (name.empty() || name == "." || name == "..")
    return Error(Code::kInvalidArgument, "invalid name");
  return Status::Ok();
}

std::string PrintableName(std::string_view name) {
  constexpr size_t kShown = 64;
  std::string out;
  for (unsigned char c : name.substr(0, kShown)) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  if (name.size() > kShown) out += "...";
  return out;
}

Volume::Volume(VolumeOptions options, uint64_t id, std::unique_ptr<SqliteDb> db)
    : options_(std::move(options)),
      id_(id),
      dir_(VolumeDir(options_, id)),
      db_(std::move(db)),
      chunks_(options_.env, dir_ + "/c") {}

Volume::~Volume() { (void)TryMarkClean(); }

Result<std::unique_ptr<Volume>> Volume::Create(VolumeOptions options, uint64_t id, std::string name,
                                               VolumeType type, uint64_t quota_bytes,
                                               ByteView root_client_attr) {
  options = WithDefaults(std::move(options));
  if (options.chunk_size == 0) return Error(Code::kInvalidArgument, "chunk size 0");
  options.inline_limit = std::min(options.inline_limit, options.chunk_size);
  std::string dir = VolumeDir(options, id);
  Env* env = options.env;
  if (Status s = env->MkDir(dir); !s.ok()) return s;
  if (Status s = env->MkDir(dir + "/c"); !s.ok()) return s;
  auto db = SqliteDb::Open(dir + "/meta.sqlite", /*create=*/true);
  if (!db.ok()) return db.status();
  SqliteDb& m = **db;
  int64_t now = options.now_ns();
  if (Status s = m.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = m.Exec(kSchema);
  if (s.ok()) {
    s = SqliteQuery(m, "INSERT INTO header VALUES (1, ?, ?, ?, ?, 0, ?, 0, 2, 2, 1, 0, 0, ?, 0, 0, 0, ?)",
              kVolumeFormatVersion, id, name, static_cast<int>(type), quota_bytes,
              options.chunk_size, options.inline_limit)
            .Run();
  }
  if (s.ok()) {
    // The mode is bound, not written in the SQL: SQLite reads 0755 as decimal.
    s = SqliteQuery(m, "INSERT INTO vnodes VALUES (1, 1, ?, ?, 0, 0, 0, ?, ?, 1, 2, 1, 1, ?, NULL)",
                    static_cast<int>(VnodeType::kDir), 0755, now, now, root_client_attr)
            .Run();
  }
  if (s.ok()) {
    s = SqliteQuery(m, "INSERT INTO acls VALUES (1, ?, 0, ?)", kSystemAdministrators,
              static_cast<uint32_t>(kAllRights))
            .Run();
  }
  if (s.ok()) s = m.Exec("COMMIT");
  if (!s.ok()) return s;
  if (Status sync = env->SyncDir(options.partition); !sync.ok()) return sync;
  if (Status sync = env->SyncDir(dir); !sync.ok()) return sync;
  return std::unique_ptr<Volume>(new Volume(std::move(options), id, std::move(*db)));
}

Result<std::unique_ptr<Volume>> Volume::Open(VolumeOptions options, uint64_t id) {
  options = WithDefaults(std::move(options));
  std::string dir = VolumeDir(options, id);
  if (!options.env->FileExists(dir + "/meta.sqlite"))
    return Error(Code::kNotFound, "no volume " + std::to_string(id) + " in " + options.partition);
  auto db = SqliteDb::Open(dir + "/meta.sqlite", /*create=*/false);
  if (!db.ok()) return db.status();
  SqliteQuery q(**db, "SELECT format, id, chunk_size, inline_limit FROM header");
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing in " + dir);
  if (q.Int(0) != kVolumeFormatVersion)
    return Error(Code::kIoError, "unknown volume format " + std::to_string(q.Int(0)));
  if (q.Uint(1) != id) return Error(Code::kIoError, "volume id mismatch in " + dir);
  options.chunk_size = q.Uint(2);
  options.inline_limit = std::min(q.Uint(3), options.chunk_size);
  bool marked = options.env->FileExists(dir + "/" + kDirtyMarkerName);
  std::unique_ptr<Volume> volume(new Volume(std::move(options), id, std::move(*db)));
  if (marked) spdlog::warn("volume {}: opened with its dirty marker; it needs a salvage", id);
  volume->dirty_ = volume->needs_salvage_ = marked;
  return volume;
}

// --- helpers ---------------------------------------------------------------------------------

Status Volume::RunTxn(const std::function<Status()>& body, std::vector<ChunkKey>* dead_chunks) {
  if (Status s = MarkDirty(); !s.ok()) return s;
  if (Status s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = body();
  Result<std::array<uint64_t, 3>> folded = s.ok() ? FoldCountersInTxn() : s;
  if (folded.ok()) s = db_->Exec("COMMIT");
  if (!folded.ok() || !s.ok()) {
    (void)db_->Exec("ROLLBACK");  // fails harmlessly if SQLite already rolled back
    return s.ok() ? folded.status() : s;
  }
  ForgetFolded(*folded);
  if (dead_chunks != nullptr) DropChunks(*dead_chunks);
  return Status::Ok();
}

void Volume::DropChunks(const std::vector<ChunkKey>& keys) {
  // After the commit: failures leave orphans for the salvager, never visible data.
  if (keys.empty()) return;
  bool clean = true;
  for (const ChunkKey& key : keys) clean = chunks_.Remove(key).ok() && clean;
  clean = chunks_.SyncDir().ok() && clean;
  if (!clean) needs_salvage_ = true;
}

// --- dirty marker and counters ---------------------------------------------------------------

Status Volume::MarkDirty() {
  if (dirty_) return Status::Ok();
  Env* env = options_.env;
  auto file = env->NewWritableFile(dir_ + "/" + kDirtyMarkerName);
  if (!file.ok()) return file.status();
  Status s = (*file)->Sync();
  Status closed = (*file)->Close();
  if (s.ok()) s = closed;
  if (s.ok()) s = env->SyncDir(dir_);
  if (!s.ok()) return s.WithContext("volume " + std::to_string(id_) + ": dirty marker");
  dirty_ = true;
  return Status::Ok();
}

Result<std::array<uint64_t, 3>> Volume::FoldCountersInTxn() {
  std::array<uint64_t, 3> add = {pending_ops_.load(), pending_reads_.load(),
                                 pending_bytes_read_.load()};
  if (add == std::array<uint64_t, 3>{}) return add;
  Status s = SqliteQuery(*db_,
                   "UPDATE header SET ops = ops + ?, reads = reads + ?, "
                   "bytes_read = bytes_read + ?",
                   add[0], add[1], add[2])
                 .Run();
  if (!s.ok()) return s;
  return add;
}

void Volume::ForgetFolded(const std::array<uint64_t, 3>& folded) {
  pending_ops_.fetch_sub(folded[0]);
  pending_reads_.fetch_sub(folded[1]);
  pending_bytes_read_.fetch_sub(folded[2]);
}

Status Volume::FlushCountersLocked() {
  if (pending_ops_.load() == 0 && pending_reads_.load() == 0 && pending_bytes_read_.load() == 0)
    return Status::Ok();
  if (Status s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto folded = FoldCountersInTxn();
  Status s = folded.ok() ? db_->Exec("COMMIT") : folded.status();
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  ForgetFolded(*folded);
  return Status::Ok();
}

Status Volume::FlushCounters() {
  std::lock_guard lock(mu_);
  return FlushCountersLocked();
}

bool Volume::TryMarkClean() {
  std::lock_guard lock(mu_);
  if (Status s = FlushCountersLocked(); !s.ok()) {
    spdlog::warn("volume {}: counters not flushed: {}", id_, s.ToString());
    return false;
  }
  if (!storing_.empty() || needs_salvage_) return false;
  if (!dirty_) return true;
  Env* env = options_.env;
  Status s = env->Unlink(dir_ + "/" + kDirtyMarkerName);
  if (s.ok() || s.code() == Code::kNotFound) s = env->SyncDir(dir_);
  if (!s.ok()) return false;  // still marked: at worst a needless salvage
  dirty_ = false;
  return true;
}

Result<VnodeStatus> Volume::LoadVnode(uint64_t vnode) {
  SqliteQuery q(*db_, kVnodeColumns, vnode);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kNotFound, "no vnode " + std::to_string(vnode));
  VnodeStatus v;
  v.vnode = q.Uint(0);
  v.uniq = q.Uint(1);
  v.type = static_cast<VnodeType>(q.Int(2));
  v.mode = static_cast<uint32_t>(q.Int(3));
  v.owner = q.Int(4);
  v.group = q.Int(5);
  v.size = q.Uint(6);
  v.mtime_ns = q.Int(7);
  v.ctime_ns = q.Int(8);
  v.data_version = q.Uint(9);
  v.link_count = static_cast<uint32_t>(q.Int(10));
  v.parent = q.Uint(11);
  v.serial = q.Uint(12);
  v.client_attr = q.Blob(13);
  return v;
}

Result<VnodeStatus> Volume::LoadDir(uint64_t dir) {
  auto v = LoadVnode(dir);
  if (v.ok() && v->type != VnodeType::kDir)
    return Error(Code::kNotDirectory, "vnode " + std::to_string(dir) + " is not a directory");
  return v;
}

Result<DirEntry> Volume::LookupInTxn(uint64_t dir, std::string_view name) {
  if (auto d = LoadDir(dir); !d.ok()) return d.status();
  if (Status s = CheckEntryName(name); !s.ok()) return s;
  SqliteQuery q(*db_, "SELECT child, child_uniq FROM dirents WHERE dir = ? AND name = ?", dir, name);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kNotFound, "no entry '" + PrintableName(name) + "'");
  return DirEntry{std::string(name), q.Uint(0), q.Uint(1)};
}

Result<uint64_t> Volume::BumpSerial() {
  SqliteQuery q(*db_, "UPDATE header SET serial = serial + 1 RETURNING serial");
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing");
  uint64_t serial = q.Uint(0);
  if (auto done = q.Step(); !done.ok()) return done.status();
  return serial;
}

Status Volume::AddUsage(int64_t delta, bool check_quota) {
  SqliteQuery q(*db_, "UPDATE header SET usage = MAX(0, usage + ?) RETURNING usage, quota", delta);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing");
  uint64_t usage = q.Uint(0), quota = q.Uint(1);
  if (auto done = q.Step(); !done.ok()) return done.status();
  if (check_quota && quota != 0 && delta > 0 && usage > quota)
    return Error(Code::kQuotaExceeded, "volume " + std::to_string(id_) + " over quota");
  return Status::Ok();
}

Status Volume::TouchDir(uint64_t dir, uint64_t serial, int link_delta) {
  int64_t now = options_.now_ns();
  return SqliteQuery(*db_,
               "UPDATE vnodes SET mtime_ns = ?, ctime_ns = ?, serial = ?, dv = dv + 1, "
               "links = links + ? WHERE vnode = ?",
               now, now, serial, link_delta, dir)
      .Run();
}

Status Volume::DeleteVnode(const VnodeStatus& v, std::vector<ChunkKey>* dead) {
  {
    SqliteQuery q(*db_, "SELECT idx, dv FROM chunks WHERE vnode = ?", v.vnode);
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      dead->push_back({v.vnode, v.uniq, q.Uint(0), q.Uint(1)});
    }
  }
  for (const char* sql :
       {"DELETE FROM chunks WHERE vnode = ?", "DELETE FROM inline_data WHERE vnode = ?",
        "DELETE FROM acls WHERE dir = ?", "DELETE FROM vnodes WHERE vnode = ?"}) {
    if (Status s = SqliteQuery(*db_, sql, v.vnode).Run(); !s.ok()) return s;
  }
  if (v.type == VnodeType::kDir) return Status::Ok();
  return AddUsage(-static_cast<int64_t>(v.size), false);
}

Status Volume::DropLink(const VnodeStatus& v, uint64_t serial, std::vector<ChunkKey>* dead) {
  if (v.link_count > 1) {
    return SqliteQuery(*db_,
                 "UPDATE vnodes SET links = links - 1, ctime_ns = ?, serial = ? "
                 "WHERE vnode = ?",
                 options_.now_ns(), serial, v.vnode)
        .Run();
  }
  return DeleteVnode(v, dead);
}

Status Volume::IsEmptyDir(uint64_t dir) {
  SqliteQuery q(*db_, "SELECT 1 FROM dirents WHERE dir = ? LIMIT 1", dir);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (*row) return Error(Code::kNotEmpty, "directory not empty");
  return Status::Ok();
}

// --- reads -----------------------------------------------------------------------------------

Result<VolumeHeader> Volume::Header() {
  std::lock_guard lock(mu_);
  SqliteQuery q(*db_,
          "SELECT id, name, type, parent_id, quota, usage, next_vnode, next_uniq, serial, "
          "stores, bytes_stored, ops, reads, bytes_read, (SELECT count(*) FROM vnodes) "
          "FROM header");
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing");
  VolumeHeader h;
  h.id = q.Uint(0);
  h.name = q.Str(1);
  h.type = static_cast<VolumeType>(q.Int(2));
  h.parent_id = q.Uint(3);
  h.quota_bytes = q.Uint(4);
  h.usage_bytes = q.Uint(5);
  h.next_vnode = q.Uint(6);
  h.next_uniq = q.Uint(7);
  h.serial = q.Uint(8);
  h.files = q.Uint(14);
  h.stores = q.Uint(9);
  h.bytes_stored = q.Uint(10);
  h.ops = q.Uint(11) + pending_ops_.load();
  h.reads = q.Uint(12) + pending_reads_.load();
  h.bytes_read = q.Uint(13) + pending_bytes_read_.load();
  return h;
}

Status Volume::SetQuota(uint64_t quota_bytes) {
  CountOp();
  std::lock_guard lock(mu_);
  return RunTxn(
      [&]() -> Status {
        if (auto serial = BumpSerial(); !serial.ok()) return serial.status();
        return SqliteQuery(*db_, "UPDATE header SET quota = ?", quota_bytes).Run();
      },
      nullptr);
}

Result<VnodeStatus> Volume::GetVnode(uint64_t vnode) {
  CountOp();
  std::lock_guard lock(mu_);
  return LoadVnode(vnode);
}

Result<DirEntry> Volume::Lookup(uint64_t dir, std::string_view name) {
  CountOp();
  std::lock_guard lock(mu_);
  return LookupInTxn(dir, name);
}

Result<std::vector<DirEntry>> Volume::List(uint64_t dir, std::string_view after_name,
                                           size_t limit) {
  CountOp();
  std::lock_guard lock(mu_);
  if (auto d = LoadDir(dir); !d.ok()) return d.status();
  SqliteQuery q(*db_,
          "SELECT name, child, child_uniq FROM dirents WHERE dir = ? AND name > ? "
          "ORDER BY name LIMIT ?",
          dir, after_name, static_cast<int64_t>(limit));
  std::vector<DirEntry> out;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({q.Str(0), q.Uint(1), q.Uint(2)});
  }
  return out;
}

Result<std::string> Volume::ReadLink(uint64_t vnode) {
  CountOp();
  std::lock_guard lock(mu_);
  SqliteQuery q(*db_, "SELECT type, target FROM vnodes WHERE vnode = ?", vnode);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kNotFound, "no vnode " + std::to_string(vnode));
  if (q.Int(0) != static_cast<int>(VnodeType::kSymlink))
    return Error(Code::kInvalidArgument, "not a symlink");
  return q.Str(1);
}

Result<std::vector<AclEntry>> Volume::GetAcl(uint64_t dir) {
  CountOp();
  std::lock_guard lock(mu_);
  if (auto d = LoadDir(dir); !d.ok()) return d.status();
  SqliteQuery q(*db_,
          "SELECT principal, rights, negative FROM acls WHERE dir = ? ORDER BY negative, "
          "principal",
          dir);
  std::vector<AclEntry> out;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({q.Int(0), static_cast<uint32_t>(q.Int(1)), q.Int(2) != 0});
  }
  return out;
}

Status Volume::SetAcl(uint64_t dir, const std::vector<AclEntry>& acl) {
  CountOp();
  for (const AclEntry& e : acl) {
    if ((e.rights & ~static_cast<uint32_t>(kAllRights)) != 0)
      return Error(Code::kInvalidArgument, "unknown rights bits");
  }
  std::lock_guard lock(mu_);
  return RunTxn(
      [&]() -> Status {
        if (auto d = LoadDir(dir); !d.ok()) return d.status();
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        if (Status s = SqliteQuery(*db_, "DELETE FROM acls WHERE dir = ?", dir).Run(); !s.ok()) return s;
        for (const AclEntry& e : acl) {
          Status s = SqliteQuery(*db_, "INSERT OR REPLACE INTO acls VALUES (?, ?, ?, ?)", dir,
                           e.principal, e.negative ? 1 : 0, e.rights)
                         .Run();
          if (!s.ok()) return s;
        }
        return SqliteQuery(*db_, "UPDATE vnodes SET serial = ?, ctime_ns = ? WHERE vnode = ?", *serial,
                     options_.now_ns(), dir)
            .Run();
      },
      nullptr);
}

}  // namespace heka::fs

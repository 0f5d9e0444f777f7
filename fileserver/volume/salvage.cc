// Salvager: the per-volume checks and repairs, and the partition lock.
#include "fileserver/volume/salvage.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "util/sqlite.h"

namespace heka::fs {
namespace {

struct Node {
  uint64_t uniq = 0;
  VnodeType type = VnodeType::kFile;
  uint64_t size = 0;
  uint32_t links = 0;
  uint64_t parent = 0;
};

struct Entry {
  uint64_t dir = 0;
  std::string name;
  uint64_t child = 0;
  uint64_t child_uniq = 0;
};

// The metadata repairs of the directory tree, decided before anything is changed.
struct TreePlan {
  std::vector<size_t> drop;              // indexes into the entries
  std::set<uint64_t> orphans;            // vnodes not reachable from the root
  std::map<uint64_t, uint32_t> links;    // vnode → right link count, where it differs
  std::map<uint64_t, uint64_t> parents;  // vnode → right parent, where it differs
};

// A chunk file name "<vnode>.<uniq>.<index>.<dv>" or a temp file: something the volume
// store wrote, and so the salvager's to remove when nothing references it.
bool IsStoreFile(const std::string& name) {
  if (name.ends_with(".tmp")) return true;
  int fields = 1;
  bool digit_seen = false;
  for (char c : name) {
    if (c == '.' && digit_seen) {
      fields++;
      digit_seen = false;
    } else if (c >= '0' && c <= '9') {
      digit_seen = true;
    } else {
      return false;
    }
  }
  return fields == 4 && digit_seen;
}

std::string ChunkName(uint64_t vnode, uint64_t uniq, uint64_t index, uint64_t dv) {
  return fmt::format("{}.{}.{}.{}", vnode, uniq, index, dv);
}

// Removes `path` and everything under it, through the Env.
Status RemoveTree(Env* env, const std::string& path) {
  auto names = env->ListDir(path);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    std::string child = path + "/" + name;
    if (Status s = env->Unlink(child); s.ok()) continue;
    if (Status s = RemoveTree(env, child); !s.ok()) return s;
  }
  return env->RemoveDir(path);
}

class VolumeSalvager {
 public:
  VolumeSalvager(Env* env, std::string dir, SalvageReport* report)
      : env_(env), dir_(std::move(dir)), report_(*report) {}

  Status Run();

 private:
  void Note(std::string line);
  Status CheckIntegrity();
  Status ReadHeader();
  Status ListChunkDir();
  Status LoadTree();
  const char* InvalidEntry(const Entry& e) const;
  void Drop(TreePlan& plan, size_t i, const char* why);
  void PlanTree(TreePlan& plan);
  void PlanFile(TreePlan& plan, uint64_t vnode, const std::vector<size_t>& entries);
  Status ApplyTree(const TreePlan& plan, uint64_t serial);
  Status RemoveOrphan(uint64_t vnode);
  Status CheckInlineRows();
  Status CheckChunkRows();
  Status CheckHeaderTotals();
  Status RepairMetadata();
  Status RemoveGarbageFiles();
  Status ClearDirtyMarker();

  Env* const env_;
  const std::string dir_;
  SalvageReport& report_;
  std::unique_ptr<SqliteDb> db_;
  uint64_t chunk_size_ = 0;
  uint64_t inline_limit_ = 0;
  std::set<std::string> files_;     // names in c/ when the salvage began
  std::set<std::string> expected_;  // names the chunks rows reference after the repairs
  std::map<uint64_t, Node> vnodes_;
  std::vector<Entry> entries_;  // ordered by (dir, name)
};

void VolumeSalvager::Note(std::string line) {
  if (report_.details.size() < SalvageReport::kMaxDetails) report_.details.push_back(line);
}

Status VolumeSalvager::CheckIntegrity() {
  SqliteQuery q(*db_, "PRAGMA integrity_check");
  std::string problems;
  for (int n = 0;; ++n) {
    auto row = q.Step();
    if (!row.ok()) {
      return Error(Code::kIoError,
                   "metadata integrity check failed: " + std::string(row.status().message()));
    }
    if (!*row) break;
    std::string line = q.Str(0);
    if (line == "ok") return Status::Ok();
    if (n < 5) problems += (problems.empty() ? "" : "; ") + line;
  }
  return Error(Code::kIoError, "metadata integrity check failed: " + problems);
}

Status VolumeSalvager::ReadHeader() {
  SqliteQuery q(*db_, "SELECT format, id, chunk_size, inline_limit FROM header");
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing");
  if (q.Int(0) != kVolumeFormatVersion)
    return Error(Code::kIoError, "unknown volume format " + std::to_string(q.Int(0)));
  if (q.Uint(1) != report_.volume_id) return Error(Code::kIoError, "volume id mismatch");
  chunk_size_ = q.Uint(2);
  if (chunk_size_ == 0) return Error(Code::kIoError, "chunk size 0 in the header");
  inline_limit_ = std::min(q.Uint(3), chunk_size_);
  return Status::Ok();
}

Status VolumeSalvager::ListChunkDir() {
  auto names = env_->ListDir(dir_ + "/c");
  if (names.status().code() == Code::kNotFound) {
    Note("chunk directory c/ was missing: recreated");
    return env_->MkDir(dir_ + "/c");
  }
  if (!names.ok()) return names.status();
  files_.insert(names->begin(), names->end());
  return Status::Ok();
}

Status VolumeSalvager::LoadTree() {
  SqliteQuery v(*db_, "SELECT vnode, uniq, type, size, links, parent FROM vnodes");
  for (;;) {
    auto row = v.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    vnodes_[v.Uint(0)] = {v.Uint(1), static_cast<VnodeType>(v.Int(2)), v.Uint(3),
                          static_cast<uint32_t>(v.Int(4)), v.Uint(5)};
  }
  auto root = vnodes_.find(kRootVnode);
  if (root == vnodes_.end() || root->second.type != VnodeType::kDir)
    return Error(Code::kIoError, "root directory missing");
  SqliteQuery d(*db_, "SELECT dir, name, child, child_uniq FROM dirents ORDER BY dir, name");
  for (;;) {
    auto row = d.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    entries_.push_back({d.Uint(0), d.Str(1), d.Uint(2), d.Uint(3)});
  }
  return Status::Ok();
}

// Why entry `e` cannot stand whatever the rest of the tree looks like; nullptr if it can.
const char* VolumeSalvager::InvalidEntry(const Entry& e) const {
  auto dir = vnodes_.find(e.dir);
  if (dir == vnodes_.end()) return "is in a missing directory";
  if (dir->second.type != VnodeType::kDir) return "is in a non-directory";
  if (e.child == kRootVnode) return "names the root";
  auto child = vnodes_.find(e.child);
  if (child == vnodes_.end()) return "names a missing vnode";
  if (child->second.uniq != e.child_uniq) return "has the wrong uniquifier";
  return nullptr;
}

void VolumeSalvager::Drop(TreePlan& plan, size_t i, const char* why) {
  const Entry& e = entries_[i];
  plan.drop.push_back(i);
  Note(fmt::format("entry '{}' in directory {} (vnode {}) {}: removed", PrintableName(e.name),
                   e.dir, e.child, why));
}

// Walks the tree from the root through valid entries. A directory is kept under the first
// entry that reaches it; all links of a file stay in one directory (its parent if it has an
// entry there). What the walk does not reach is an orphan.
void VolumeSalvager::PlanTree(TreePlan& plan) {
  std::map<uint64_t, std::vector<size_t>> by_dir, file_entries;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (const char* why = InvalidEntry(entries_[i])) {
      Drop(plan, i, why);
    } else {
      by_dir[entries_[i].dir].push_back(i);
    }
  }
  std::map<uint64_t, uint64_t> dir_parent = {{kRootVnode, kRootVnode}};
  std::map<uint64_t, uint32_t> subdirs;
  std::deque<uint64_t> queue = {kRootVnode};
  while (!queue.empty()) {
    uint64_t dir = queue.front();
    queue.pop_front();
    for (size_t i : by_dir[dir]) {
      uint64_t child = entries_[i].child;
      if (vnodes_[child].type != VnodeType::kDir) {
        file_entries[child].push_back(i);
      } else if (!dir_parent.emplace(child, dir).second) {
        Drop(plan, i, "names a directory that already has an entry");
      } else {
        subdirs[dir]++;
        queue.push_back(child);
      }
    }
  }
  for (const auto& [vnode, entries] : file_entries) PlanFile(plan, vnode, entries);
  for (const auto& [vnode, parent] : dir_parent) {
    const Node& node = vnodes_[vnode];
    if (node.parent != parent) plan.parents[vnode] = parent;
    if (node.links != 2 + subdirs[vnode]) plan.links[vnode] = 2 + subdirs[vnode];
  }
  for (const auto& [vnode, node] : vnodes_) {
    if (vnode != kRootVnode && !dir_parent.contains(vnode) && !file_entries.contains(vnode))
      plan.orphans.insert(vnode);
  }
}

void VolumeSalvager::PlanFile(TreePlan& plan, uint64_t vnode, const std::vector<size_t>& entries) {
  const Node& node = vnodes_[vnode];
  uint64_t keep_dir = entries_[entries.front()].dir;
  for (size_t i : entries) {
    if (entries_[i].dir == node.parent) keep_dir = node.parent;
  }
  uint32_t kept = 0;
  for (size_t i : entries) {
    if (entries_[i].dir == keep_dir) {
      kept++;
    } else {
      Drop(plan, i, "is a link outside the file's directory");
    }
  }
  if (node.parent != keep_dir) plan.parents[vnode] = keep_dir;
  if (node.links != kept) plan.links[vnode] = kept;
}

Status VolumeSalvager::RemoveOrphan(uint64_t vnode) {
  const Node& node = vnodes_[vnode];
  Note(fmt::format("orphan vnode {} (type {}, {} bytes): removed with its data", vnode,
                   static_cast<int>(node.type), node.size));
  for (const char* sql :
       {"DELETE FROM chunks WHERE vnode = ?", "DELETE FROM inline_data WHERE vnode = ?",
        "DELETE FROM acls WHERE dir = ?", "DELETE FROM dirents WHERE dir = ?",
        "DELETE FROM vnodes WHERE vnode = ?"}) {
    if (Status s = SqliteQuery(*db_, sql, vnode).Run(); !s.ok()) return s;
  }
  return Status::Ok();
}

Status VolumeSalvager::ApplyTree(const TreePlan& plan, uint64_t serial) {
  std::set<uint64_t> changed_dirs;
  for (size_t i : plan.drop) {
    const Entry& e = entries_[i];
    Status s = SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND name = ?", e.dir, e.name).Run();
    if (!s.ok()) return s;
    changed_dirs.insert(e.dir);
  }
  for (uint64_t vnode : plan.orphans) {
    if (Status s = RemoveOrphan(vnode); !s.ok()) return s;
  }
  std::set<uint64_t> fixed;
  for (const auto& [vnode, links] : plan.links) fixed.insert(vnode);
  for (const auto& [vnode, parent] : plan.parents) fixed.insert(vnode);
  for (uint64_t vnode : fixed) {
    const Node& node = vnodes_[vnode];
    auto links = plan.links.contains(vnode) ? plan.links.at(vnode) : node.links;
    auto parent = plan.parents.contains(vnode) ? plan.parents.at(vnode) : node.parent;
    if (links != node.links)
      Note(fmt::format("vnode {}: link count {} → {}", vnode, node.links, links));
    if (parent != node.parent)
      Note(fmt::format("vnode {}: parent {} → {}", vnode, node.parent, parent));
    Status s = SqliteQuery(*db_, "UPDATE vnodes SET links = ?, parent = ?, serial = ? WHERE vnode = ?",
                     links, parent, serial, vnode)
                   .Run();
    if (!s.ok()) return s;
  }
  // Clients cache directories by data version: one whose entries changed gets a new one.
  for (uint64_t dir : changed_dirs) {
    if (plan.orphans.contains(dir) || !vnodes_.contains(dir)) continue;
    Status s =
        SqliteQuery(*db_, "UPDATE vnodes SET dv = dv + 1, serial = ? WHERE vnode = ?", serial, dir).Run();
    if (!s.ok()) return s;
  }
  report_.dirents_removed += plan.drop.size();
  report_.orphans_removed += plan.orphans.size();
  report_.link_counts_fixed += plan.links.size();
  report_.parents_fixed += plan.parents.size();
  return Status::Ok();
}

// Inline data must belong to a file, lie within its size, and be its only data: a file with
// both inline bytes and chunk rows keeps what its size says (inline up to the inline limit,
// chunks beyond) and loses the other.
Status VolumeSalvager::CheckInlineRows() {
  struct Row {
    uint64_t vnode, len, size, chunk_rows;
    bool file;
  };
  std::vector<Row> rows;
  {
    SqliteQuery q(*db_,
            "SELECT i.vnode, length(i.data), v.size, v.type IS NOT NULL AND v.type = ?, "
            "(SELECT count(*) FROM chunks c WHERE c.vnode = i.vnode) "
            "FROM inline_data i LEFT JOIN vnodes v ON v.vnode = i.vnode",
            static_cast<int>(VnodeType::kFile));
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rows.push_back({q.Uint(0), q.Uint(1), q.Uint(2), q.Uint(4), q.Int(3) != 0});
    }
  }
  for (const Row& r : rows) {
    Status s;
    if (!r.file || (r.chunk_rows > 0 && r.size > inline_limit_)) {
      Note(fmt::format("vnode {}: inline data ({} bytes) of a {}: dropped", r.vnode, r.len,
                       r.file ? "file with chunks past the inline limit" : "missing or non-file"));
      s = SqliteQuery(*db_, "DELETE FROM inline_data WHERE vnode = ?", r.vnode).Run();
    } else if (r.chunk_rows > 0) {
      Note(fmt::format("vnode {}: {} chunk rows beside its inline data ({} bytes): dropped",
                       r.vnode, r.chunk_rows, r.size));
      s = SqliteQuery(*db_, "DELETE FROM chunks WHERE vnode = ?", r.vnode).Run();
    } else if (uint64_t keep = std::min({r.len, r.size, inline_limit_});
               keep != r.len || keep == 0) {
      Note(fmt::format("vnode {}: inline data ({} bytes) past its size {}: cut to {}", r.vnode,
                       r.len, r.size, keep));
      s = keep == 0
              ? SqliteQuery(*db_, "DELETE FROM inline_data WHERE vnode = ?", r.vnode).Run()
              : SqliteQuery(*db_, "UPDATE inline_data SET data = substr(data, 1, ?) WHERE vnode = ?",
                      keep, r.vnode)
                    .Run();
    } else {
      continue;
    }
    if (!s.ok()) return s;
    report_.inline_fixed++;
  }
  return Status::Ok();
}

// Drops rows that cannot be read (their vnode is gone or not a file, or they lie past the
// end of the file) and rows whose file is missing, which turns those chunks into holes.
Status VolumeSalvager::CheckChunkRows() {
  struct Row {
    uint64_t vnode, index, dv, uniq, size;
    bool file;
  };
  std::vector<Row> rows;
  {
    SqliteQuery q(*db_,
            "SELECT c.vnode, c.idx, c.dv, v.uniq, v.size, v.type IS NOT NULL AND v.type = ? "
            "FROM chunks c LEFT JOIN vnodes v ON v.vnode = c.vnode",
            static_cast<int>(VnodeType::kFile));
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rows.push_back({q.Uint(0), q.Uint(1), q.Uint(2), q.Uint(3), q.Uint(4), q.Int(5) != 0});
    }
  }
  for (const Row& r : rows) {
    std::string name = ChunkName(r.vnode, r.uniq, r.index, r.dv);
    bool readable = r.file && r.index < (r.size + chunk_size_ - 1) / chunk_size_;
    if (readable && files_.contains(name)) {
      expected_.insert(name);
      continue;
    }
    if (readable) {
      report_.missing_chunks++;
      Note(
          fmt::format("vnode {} chunk {} (data version {}): file missing; bytes {}..{} now "
                      "read as zeros (data lost)",
                      r.vnode, r.index, r.dv, r.index * chunk_size_,
                      std::min(r.size, (r.index + 1) * chunk_size_)));
    } else {
      report_.chunk_rows_dropped++;
      Note(fmt::format("chunk row vnode {} chunk {}: no such file or past its end: dropped",
                       r.vnode, r.index));
    }
    Status s =
        SqliteQuery(*db_, "DELETE FROM chunks WHERE vnode = ? AND idx = ?", r.vnode, r.index).Run();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// usage is the sum of file and symlink sizes; next_vnode / next_uniq lie past every vnode.
Status VolumeSalvager::CheckHeaderTotals() {
  SqliteQuery q(*db_,
          "SELECT h.usage, h.next_vnode, h.next_uniq, "
          "(SELECT COALESCE(SUM(size), 0) FROM vnodes WHERE type != ?), "
          "(SELECT MAX(vnode) FROM vnodes), (SELECT MAX(uniq) FROM vnodes) FROM header h",
          static_cast<int>(VnodeType::kDir));
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kIoError, "volume header missing");
  uint64_t usage = q.Uint(0), next_vnode = q.Uint(1), next_uniq = q.Uint(2), sum = q.Uint(3);
  uint64_t want_vnode = std::max(next_vnode, q.Uint(4) + 1);
  uint64_t want_uniq = std::max(next_uniq, q.Uint(5) + 1);
  if (auto done = q.Step(); !done.ok()) return done.status();
  if (usage != sum) {
    report_.usage_fixed = 1;
    Note(fmt::format("usage {} → {} bytes", usage, sum));
  }
  if (want_vnode != next_vnode || want_uniq != next_uniq) {
    report_.header_fixed = 1;
    Note(fmt::format("next vnode {} → {}, next uniquifier {} → {}", next_vnode, want_vnode,
                     next_uniq, want_uniq));
  }
  if (usage == sum && report_.header_fixed == 0) return Status::Ok();
  return SqliteQuery(*db_, "UPDATE header SET usage = ?, next_vnode = ?, next_uniq = ?", sum, want_vnode,
               want_uniq)
      .Run();
}

// All metadata repairs in one transaction: a crash during the salvage leaves the database
// as it was, and the next salvage starts over.
Status VolumeSalvager::RepairMetadata() {
  if (Status s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = [&]() -> Status {
    SqliteQuery q(*db_, "SELECT serial + 1 FROM header");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    uint64_t serial = q.Uint(0);
    if (auto done = q.Step(); !done.ok()) return done.status();
    TreePlan plan;
    PlanTree(plan);
    if (Status st = ApplyTree(plan, serial); !st.ok()) return st;
    if (Status st = CheckInlineRows(); !st.ok()) return st;
    if (Status st = CheckChunkRows(); !st.ok()) return st;
    if (Status st = CheckHeaderTotals(); !st.ok()) return st;
    if (report_.fixes() == 0) return Status::Ok();
    return SqliteQuery(*db_, "UPDATE header SET serial = ?", serial).Run();
  }();
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) (void)db_->Exec("ROLLBACK");
  return s;
}

// After the metadata commit: every store file no row references is garbage (temp files,
// chunks of stores that did not commit, replaced chunks, chunks of removed orphans).
Status VolumeSalvager::RemoveGarbageFiles() {
  uint64_t removed = 0;
  for (const std::string& name : files_) {
    if (expected_.contains(name)) continue;
    if (!IsStoreFile(name)) {
      spdlog::warn("salvage: volume {}: unknown file {}/c/{} left in place", report_.volume_id,
                   dir_, name);
      continue;
    }
    Status s = env_->Unlink(dir_ + "/c/" + name);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
    removed++;
    Note("garbage chunk file c/" + name + ": removed");
  }
  report_.chunk_files_removed += removed;
  return removed == 0 ? Status::Ok() : env_->SyncDir(dir_ + "/c");
}

Status VolumeSalvager::ClearDirtyMarker() {
  Status s = env_->Unlink(dir_ + "/" + kDirtyMarkerName);
  if (s.code() == Code::kNotFound) return Status::Ok();
  if (!s.ok()) return s;
  return env_->SyncDir(dir_);
}

Status VolumeSalvager::Run() {
  auto db = SqliteDb::Open(dir_ + "/meta.sqlite", /*create=*/false);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  for (Status (VolumeSalvager::*step)() :
       {&VolumeSalvager::CheckIntegrity, &VolumeSalvager::ReadHeader, &VolumeSalvager::ListChunkDir,
        &VolumeSalvager::LoadTree, &VolumeSalvager::RepairMetadata,
        &VolumeSalvager::RemoveGarbageFiles, &VolumeSalvager::ClearDirtyMarker}) {
    if (Status s = (this->*step)(); !s.ok()) return s;
  }
  return Status::Ok();
}

// A volume directory without meta.sqlite: a clone (or create) that did not finish.
Status RemoveUnfinishedClone(Env* env, const std::string& partition, const std::string& dir,
                             SalvageReport& report) {
  if (Status s = RemoveTree(env, dir); !s.ok()) return s;
  if (Status s = env->SyncDir(partition); !s.ok()) return s;
  report.unfinished_clone_removed = 1;
  report.details.push_back("no meta.sqlite: unfinished clone " + dir + " removed");
  return Status::Ok();
}

}  // namespace

// --- PartitionLock ---------------------------------------------------------------------------

Result<std::unique_ptr<PartitionLock>> PartitionLock::Acquire(const std::string& partition) {
  std::string path = partition + "/.salvage.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error(Code::kIoError, "open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return Error(Code::kLocked, "another salvager is running on " + partition);
    return Error(Code::kIoError, "flock " + path + ": " + std::strerror(err));
  }
  return std::unique_ptr<PartitionLock>(new PartitionLock(partition, fd));
}

PartitionLock::~PartitionLock() { ::close(fd_); }  // releases the flock

// --- reports ---------------------------------------------------------------------------------

uint64_t SalvageReport::fixes() const {
  return unfinished_clone_removed + dirents_removed + orphans_removed + link_counts_fixed +
         parents_fixed + usage_fixed + header_fixed + inline_fixed + chunk_rows_dropped +
         missing_chunks + chunk_files_removed;
}

std::string SalvageReport::Summary() const {
  std::string out = fmt::format("volume {}: ", volume_id);
  if (!status.ok()) return out + "FAILED, stays offline: " + status.ToString();
  if (fixes() == 0) return out + "clean";
  std::string parts;
  auto add = [&](uint64_t n, const char* what) {
    if (n != 0) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", n, what);
  };
  auto flag = [&](uint64_t n, const char* what) {
    if (n != 0) parts += fmt::format("{}{}", parts.empty() ? "" : ", ", what);
  };
  flag(unfinished_clone_removed, "unfinished clone removed");
  add(dirents_removed, "bad directory entries removed");
  add(orphans_removed, "orphan vnodes removed");
  add(link_counts_fixed, "link counts fixed");
  add(parents_fixed, "parents fixed");
  flag(usage_fixed, "usage recomputed");
  flag(header_fixed, "next vnode/uniquifier raised");
  add(inline_fixed, "inline data repaired");
  add(chunk_rows_dropped, "stray chunk rows dropped");
  add(missing_chunks, "missing chunk files (now holes: data lost)");
  add(chunk_files_removed, "garbage chunk files removed");
  return out + parts;
}

// --- salvage ---------------------------------------------------------------------------------

Result<SalvageReport> SalvageVolume(const VolumeOptions& options, uint64_t id,
                                    const PartitionLock& lock) {
  if (lock.partition() != options.partition)
    return Error(Code::kInvalidArgument, "the lock is on another partition");
  Env* env = options.env != nullptr ? options.env : DefaultEnv();
  std::string dir = VolumeDir(options, id);
  SalvageReport report;
  report.volume_id = id;
  if (!env->FileExists(dir))
    return Error(Code::kNotFound, "no volume " + std::to_string(id) + " in " + options.partition);
  Status s = env->FileExists(dir + "/meta.sqlite")
                 ? VolumeSalvager(env, dir, &report).Run()
                 : RemoveUnfinishedClone(env, options.partition, dir, report);
  if (!s.ok()) {
    s = s.WithContext("salvage of volume " + std::to_string(id));
    spdlog::error("salvage: volume {}: {}; it stays offline", id, s.ToString());
    return s;
  }
  spdlog::info("salvage: {}", report.Summary());
  return report;
}

Result<std::vector<SalvageReport>> SalvagePartition(
    const VolumeOptions& options, SalvageScope scope,
    const std::function<void(const SalvageReport&)>& progress) {
  auto lock = PartitionLock::Acquire(options.partition);
  if (!lock.ok()) return lock.status();
  auto ids = ListVolumeIds(options);
  if (!ids.ok()) return ids.status();
  std::vector<SalvageReport> reports;
  size_t failed = 0;
  for (uint64_t id : *ids) {
    if (scope == SalvageScope::kNeeded && !VolumeNeedsSalvage(options, id)) continue;
    auto report = SalvageVolume(options, id, **lock);
    if (!report.ok()) {
      SalvageReport failure;
      failure.volume_id = id;
      failure.status = report.status();
      report = std::move(failure);
      failed++;
    }
    if (progress) progress(*report);
    reports.push_back(std::move(*report));
  }
  spdlog::info("salvage: partition {}: {} volumes salvaged, {} failed", options.partition,
               reports.size(), failed);
  return reports;
}

}  // namespace heka::fs

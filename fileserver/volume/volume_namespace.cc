// Volume: operations that change the directory tree (create, remove, rename, link).
#include "fileserver/volume/volume.h"

namespace heka::fs {

Result<VnodeStatus> Volume::CreateNode(uint64_t dir, std::string_view name, VnodeType type,
                                       const NewVnodeAttrs& a, std::string_view target) {
  if (auto d = LoadDir(dir); !d.ok()) return d.status();
  auto existing = LookupInTxn(dir, name);
  if (existing.ok()) return Error(Code::kAlreadyExists, "'" + PrintableName(name) + "' exists");
  if (existing.status().code() != Code::kNotFound) return existing.status();
  {
    SqliteQuery q(*db_, "SELECT usage, quota FROM header");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (*row && q.Uint(1) != 0 && q.Uint(0) >= q.Uint(1))
      return Error(Code::kQuotaExceeded, "volume " + std::to_string(id_) + " is at its quota");
  }
  auto serial = BumpSerial();
  if (!serial.ok()) return serial.status();
  SqliteQuery ids(*db_,
            "UPDATE header SET next_vnode = next_vnode + 1, next_uniq = next_uniq + 1 "
            "RETURNING next_vnode - 1, next_uniq - 1");
  auto row = ids.Step();
  if (!row.ok()) return row.status();
  uint64_t vnode = ids.Uint(0), uniq = ids.Uint(1);
  if (auto done = ids.Step(); !done.ok()) return done.status();
  bool is_dir = type == VnodeType::kDir;
  int64_t now = options_.now_ns();
  SqliteQuery insert(*db_, "INSERT INTO vnodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
               vnode, uniq, static_cast<int>(type), a.mode, a.owner, a.group,
               static_cast<uint64_t>(target.size()), now, now, is_dir ? 2 : 1, dir, *serial);
  insert.Bind(ByteView(a.client_attr));
  if (type == VnodeType::kSymlink) {
    insert.Bind(target);
  } else {
    insert.Bind(std::string_view());
  }
  if (Status s = insert.Run(); !s.ok()) return s;
  if (Status s =
          SqliteQuery(*db_, "INSERT INTO dirents VALUES (?, ?, ?, ?)", dir, name, vnode, uniq).Run();
      !s.ok())
    return s;
  if (is_dir) {
    Status s = SqliteQuery(*db_,
                     "INSERT INTO acls SELECT ?, principal, negative, rights FROM acls "
                     "WHERE dir = ?",
                     vnode, dir)
                   .Run();
    if (!s.ok()) return s;
  }
  if (Status s = TouchDir(dir, *serial, is_dir ? 1 : 0); !s.ok()) return s;
  if (Status s = AddUsage(static_cast<int64_t>(target.size()), true); !s.ok()) return s;
  return LoadVnode(vnode);
}

Result<VnodeStatus> Volume::CreateFile(uint64_t dir, std::string_view name,
                                       const NewVnodeAttrs& a) {
  CountOp();
  std::lock_guard lock(mu_);
  Result<VnodeStatus> out;
  Status s = RunTxn(
      [&] {
        out = CreateNode(dir, name, VnodeType::kFile, a, {});
        return out.status();
      },
      nullptr);
  if (!s.ok()) return s;
  return out;
}

Result<VnodeStatus> Volume::MakeDir(uint64_t dir, std::string_view name, const NewVnodeAttrs& a) {
  CountOp();
  std::lock_guard lock(mu_);
  Result<VnodeStatus> out;
  Status s = RunTxn(
      [&] {
        out = CreateNode(dir, name, VnodeType::kDir, a, {});
        return out.status();
      },
      nullptr);
  if (!s.ok()) return s;
  return out;
}

Result<VnodeStatus> Volume::Symlink(uint64_t dir, std::string_view name, std::string_view target,
                                    const NewVnodeAttrs& a) {
  CountOp();
  if (target.empty()) return Error(Code::kInvalidArgument, "empty symlink target");
  std::lock_guard lock(mu_);
  Result<VnodeStatus> out;
  Status s = RunTxn(
      [&] {
        out = CreateNode(dir, name, VnodeType::kSymlink, a, target);
        return out.status();
      },
      nullptr);
  if (!s.ok()) return s;
  return out;
}

Status Volume::Remove(uint64_t dir, std::string_view name) {
  CountOp();
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  return RunTxn(
      [&]() -> Status {
        auto entry = LookupInTxn(dir, name);
        if (!entry.ok()) return entry.status();
        auto child = LoadVnode(entry->vnode);
        if (!child.ok()) return child.status();
        if (child->type == VnodeType::kDir)
          return Error(Code::kIsDirectory, "'" + PrintableName(name) + "' is a directory");
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        Status s = SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND name = ?", dir, name).Run();
        if (s.ok()) s = DropLink(*child, *serial, &dead);
        if (s.ok()) s = TouchDir(dir, *serial, 0);
        return s;
      },
      &dead);
}

Status Volume::RemoveDir(uint64_t dir, std::string_view name) {
  CountOp();
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  return RunTxn(
      [&]() -> Status {
        auto entry = LookupInTxn(dir, name);
        if (!entry.ok()) return entry.status();
        auto child = LoadDir(entry->vnode);
        if (!child.ok()) return child.status();
        if (Status s = IsEmptyDir(child->vnode); !s.ok()) return s;
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        Status s = SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND name = ?", dir, name).Run();
        if (s.ok()) s = DeleteVnode(*child, &dead);
        if (s.ok()) s = TouchDir(dir, *serial, -1);
        return s;
      },
      &dead);
}

Status Volume::CheckNotAncestor(uint64_t moving, uint64_t dst_dir) {
  uint64_t at = dst_dir;
  for (int depth = 0; depth < 100000; ++depth) {
    if (at == moving) return Error(Code::kInvalidArgument, "cannot move a directory into itself");
    if (at == kRootVnode) return Status::Ok();
    auto v = LoadVnode(at);
    if (!v.ok()) return v.status();
    at = v->parent;
  }
  return Error(Code::kInternal, "directory parent chain does not reach the root");
}

// Removes the existing `target` entry of `dst_dir` that a rename of `src` replaces.
Status Volume::ReplaceTarget(const VnodeStatus& src, const DirEntry& target, uint64_t dst_dir,
                             uint64_t serial, std::vector<ChunkKey>* dead) {
  auto victim = LoadVnode(target.vnode);
  if (!victim.ok()) return victim.status();
  bool src_dir = src.type == VnodeType::kDir, victim_dir = victim->type == VnodeType::kDir;
  if (src_dir && !victim_dir) return Error(Code::kNotDirectory, "target is not a directory");
  if (!src_dir && victim_dir) return Error(Code::kIsDirectory, "target is a directory");
  if (victim_dir) {
    if (Status s = IsEmptyDir(victim->vnode); !s.ok()) return s;
  }
  Status s =
      SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND name = ?", dst_dir, target.name).Run();
  if (!s.ok()) return s;
  if (!victim_dir) return DropLink(*victim, serial, dead);
  if (s = DeleteVnode(*victim, dead); !s.ok()) return s;
  return TouchDir(dst_dir, serial, -1);
}

Status Volume::RenameInTxn(uint64_t src_dir, std::string_view src_name, uint64_t dst_dir,
                           std::string_view dst_name, std::vector<ChunkKey>* dead) {
  auto entry = LookupInTxn(src_dir, src_name);
  if (!entry.ok()) return entry.status();
  if (Status s = CheckEntryName(dst_name); !s.ok()) return s;
  if (auto d = LoadDir(dst_dir); !d.ok()) return d.status();
  if (src_dir == dst_dir && src_name == dst_name) return Status::Ok();
  auto src = LoadVnode(entry->vnode);
  if (!src.ok()) return src.status();
  bool is_dir = src->type == VnodeType::kDir;
  bool moves = src_dir != dst_dir;
  if (moves && is_dir) {
    if (Status s = CheckNotAncestor(src->vnode, dst_dir); !s.ok()) return s;
  }
  if (moves && !is_dir && src->link_count > 1)
    return Error(Code::kCrossDevice, "a file with several links stays in its directory");
  auto serial = BumpSerial();
  if (!serial.ok()) return serial.status();
  auto target = LookupInTxn(dst_dir, dst_name);
  if (target.ok()) {
    if (target->vnode == src->vnode) return Status::Ok();  // two links to one file: rename(2)
    if (Status s = ReplaceTarget(*src, *target, dst_dir, *serial, dead); !s.ok()) return s;
  } else if (target.status().code() != Code::kNotFound) {
    return target.status();
  }
  Status s = SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND name = ?", src_dir, src_name).Run();
  if (s.ok()) {
    s = SqliteQuery(*db_, "INSERT INTO dirents VALUES (?, ?, ?, ?)", dst_dir, dst_name, src->vnode,
              src->uniq)
            .Run();
  }
  if (s.ok()) {
    s = SqliteQuery(*db_, "UPDATE vnodes SET parent = ?, ctime_ns = ?, serial = ? WHERE vnode = ?",
              dst_dir, options_.now_ns(), *serial, src->vnode)
            .Run();
  }
  int link_delta = moves && is_dir ? 1 : 0;
  if (s.ok()) s = TouchDir(src_dir, *serial, -link_delta);
  if (s.ok() && moves) s = TouchDir(dst_dir, *serial, link_delta);
  return s;
}

Status Volume::Rename(uint64_t src_dir, std::string_view src_name, uint64_t dst_dir,
                      std::string_view dst_name) {
  CountOp();
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  return RunTxn([&] { return RenameInTxn(src_dir, src_name, dst_dir, dst_name, &dead); }, &dead);
}

Result<VnodeStatus> Volume::Link(uint64_t dir, uint64_t vnode, std::string_view name) {
  CountOp();
  std::lock_guard lock(mu_);
  Status s = RunTxn(
      [&]() -> Status {
        auto v = LoadVnode(vnode);
        if (!v.ok()) return v.status();
        if (v->type == VnodeType::kDir) return Error(Code::kIsDirectory, "cannot link a directory");
        if (v->parent != dir)
          return Error(Code::kCrossDevice, "hard links only within the file's own directory");
        auto existing = LookupInTxn(dir, name);
        if (existing.ok())
          return Error(Code::kAlreadyExists, "'" + PrintableName(name) + "' exists");
        if (existing.status().code() != Code::kNotFound) return existing.status();
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        Status st =
            SqliteQuery(*db_, "INSERT INTO dirents VALUES (?, ?, ?, ?)", dir, name, vnode, v->uniq).Run();
        if (st.ok()) {
          st = SqliteQuery(*db_,
                     "UPDATE vnodes SET links = links + 1, ctime_ns = ?, serial = ? "
                     "WHERE vnode = ?",
                     options_.now_ns(), *serial, vnode)
                   .Run();
        }
        if (st.ok()) st = TouchDir(dir, *serial, 0);
        return st;
      },
      nullptr);
  if (!s.ok()) return s;
  return LoadVnode(vnode);
}

}  // namespace heka::fs

// HekaFs: what the control socket (`heka fs`) needs beyond the FUSE operations: paths,
// ACLs, volume status, mount points, flush and unlog. See heka_fs.h.
#include <spdlog/spdlog.h>

#include "cachemgr/heka_fs.h"
#include "cachemgr/internal/heka_fs_types.h"
#include "cachemgr/mount_point.h"

namespace heka::cm {

// ---- Paths ------------------------------------------------------------------------------------

namespace {

// The components of `path` below `mountpoint`; kInvalidArgument when it is not below it.
Result<std::vector<std::string>> ComponentsUnder(const std::string& mountpoint,
                                                 const std::string& path) {
  std::string mount = mountpoint;
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();
  if (path.compare(0, mount.size(), mount) != 0 ||
      (path.size() > mount.size() && path[mount.size()] != '/')) {
    return Error(Code::kInvalidArgument, "'" + path + "' is not in the Heka mount " + mount);
  }
  std::vector<std::string> out;
  size_t pos = mount.size();
  while (pos < path.size()) {
    size_t next = path.find('/', pos + 1);
    if (next == std::string::npos) next = path.size();
    std::string part = path.substr(pos + 1, next - pos - 1);
    pos = next;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Error(Code::kInvalidArgument, "'..' in '" + path + "'");
    out.push_back(std::move(part));
  }
  return out;
}

}  // namespace

Result<uint64_t> HekaFs::ResolvePath(const Caller& c, const std::string& path) {
  auto parts = ComponentsUnder(options_.config->mountpoint, path);
  if (!parts.ok()) return parts.status();
  Who who = WhoIs(c);
  uint64_t ino = kRootIno;
  for (const std::string& part : *parts) {
    auto e = LookupAs(who, ino, part);
    if (!e.ok()) return Error(e.status().code(), path + ": " + e.status().message());
    ino = e->ino;
  }
  return ino;
}

Result<std::pair<uint64_t, std::string>> HekaFs::ResolveParent(const Caller& c,
                                                               const std::string& path) {
  auto parts = ComponentsUnder(options_.config->mountpoint, path);
  if (!parts.ok()) return parts.status();
  if (parts->size() < 2) {
    return Error(Code::kInvalidArgument, "'" + path + "' is not inside a volume");
  }
  Who who = WhoIs(c);
  uint64_t ino = kRootIno;
  for (size_t i = 0; i + 1 < parts->size(); ++i) {
    auto e = LookupAs(who, ino, (*parts)[i]);
    if (!e.ok()) return Error(e.status().code(), path + ": " + e.status().message());
    ino = e->ino;
  }
  return std::make_pair(ino, parts->back());
}

// ---- ACLs and volumes ---------------------------------------------------------------------

Result<pb::FetchAclReply> HekaFs::FetchAcl(const Caller& c, uint64_t ino) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::FetchAclRequest req;
  *req.mutable_dir() = *fid;
  return Call<pb::FetchAclReply>(WhoIs(c), fid->cell(), fid->volume(), "FetchAcl", req);
}

Status HekaFs::StoreAcl(const Caller& c, uint64_t ino, const std::vector<pb::AclEntry>& entries) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::StoreAclRequest req;
  *req.mutable_dir() = *fid;
  for (const pb::AclEntry& e : entries) *req.add_entries() = e;
  auto r = Call<pb::StoreAclReply>(WhoIs(c), fid->cell(), fid->volume(), "StoreAcl", req);
  if (!r.ok()) return r.status();
  // As if the server had broken our promise: the directory and the rights of what it holds.
  pb::BreakRequest changed;
  *changed.add_fids() = *fid;
  OnBreak(changed);
  return Status::Ok();
}

Result<pb::VolumeStatus> HekaFs::VolumeStatusOf(const Caller& c, uint64_t ino) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::GetVolumeStatusRequest req;
  req.set_cell(fid->cell());
  req.set_volume(fid->volume());
  auto r = Call<pb::GetVolumeStatusReply>(WhoIs(c), fid->cell(), fid->volume(), "GetVolumeStatus",
                                          req);
  if (!r.ok()) return r.status();
  return r->status();
}

Result<std::string> HekaFs::ServerAddressOf(uint64_t ino) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  auto server = ServerOf(fid->cell(), fid->volume());
  if (!server.ok()) return server.status();
  return server->address;
}

Result<uint64_t> HekaFs::VolumeByName(const std::string& cell, const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = named_volumes_.find({cell, name});
    if (it != named_volumes_.end()) return it->second;
  }
  db::GetVolumeRequest req;
  req.set_cell(cell);
  req.set_name(name);
  auto r = options_.runtime->BlockOn(options_.db->GetVolume(req));
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound || r.status().code() == Code::kPermissionDenied) {
      return Error(Code::kNotFound, "no volume '" + name + "' in cell '" + cell + "'");
    }
    return r.status();
  }
  std::lock_guard lock(mu_);
  named_volumes_[{cell, name}] = r->volume().id();
  return r->volume().id();
}

// ---- Cache and credentials ----------------------------------------------------------------

void HekaFs::FlushCached(uint64_t ino) {
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end()) {
      Node& n = *it->second;
      n.valid = false;
      ++n.generation;
      n.rights.clear();
      chunk_cache_->Drop(FileKeyOf(n.status.fid()));
      n.entries.clear();
      n.listed = false;
    }
  }
  {
    std::lock_guard lock(inval_mu_);
    inval_queue_.emplace_back(ino, "");
  }
  inval_cv_.notify_one();
}

void HekaFs::ForgetName(uint64_t parent, const std::string& name) {
  {
    std::lock_guard lock(inval_mu_);
    inval_queue_.emplace_back(parent, name);
  }
  inval_cv_.notify_one();
}

std::string HekaFs::PrincipalOf(const Caller& c) { return WhoIs(c).principal; }

void HekaFs::Unlog(const Caller& c) {
  Who who = WhoIs(c);
  options_.resolver->Forget(c.uid);
  if (who.ccache.empty()) return;  // anonymous: the machine's connections stay
  size_t closed = 0;
  std::lock_guard lock(mu_);
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->first.second == who.ccache) {
      it = clients_.erase(it);
      ++closed;
    } else {
      ++it;
    }
  }
  for (auto& [ino, node] : nodes_) node->rights.erase(who.principal);
  spdlog::info("unlog: uid {} ({}): {} connections closed", c.uid, who.principal, closed);
}

// ---- Mount points -------------------------------------------------------------------------

std::optional<pb::Fid> HekaFs::MountRootOf(const Who& who, uint64_t ino,
                                           const pb::FileStatus& st) {
  if (st.type() != pb::SYMLINK || (st.mode() & 07777) != kMountPointMode) return std::nullopt;
  auto target = ReadLinkAs(who, ino);
  if (!target.ok()) return std::nullopt;
  auto mp = ParseMountPoint(*target, st.mode());
  if (!mp) return std::nullopt;
  std::string cell = mp->cell.empty() ? st.fid().cell() : mp->cell;
  auto volume = VolumeByName(cell, mp->volume);
  if (!volume.ok()) {
    spdlog::warn("mount point {} in volume {}: {}", *target, st.fid().volume(),
                 volume.status().ToString());
    return std::nullopt;  // shown as the symlink it is
  }
  pb::Fid root;
  root.set_cell(cell);
  root.set_volume(*volume);
  root.set_vnode(1);
  root.set_uniq(1);
  return root;
}

Result<std::string> HekaFs::MountTarget(const Caller& c, uint64_t parent,
                                        const std::string& name) {
  Who who = WhoIs(c);
  auto dir = StatusOf(who, parent);
  if (!dir.ok()) return dir.status();
  if (dir->type() != pb::DIRECTORY) return Error(Code::kNotDirectory, "not a directory");
  if (!(dir->caller_rights() & 8)) return Error(Code::kPermissionDenied, "no l right");
  auto fid = LookupFid(who, parent, name);
  if (!fid.ok()) return fid.status();
  uint64_t ino = InoOf(*fid);
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  if (st->type() != pb::SYMLINK) return Error(Code::kInvalidArgument, "not a mount point");
  auto target = ReadLinkAs(who, ino);
  if (!target.ok()) return target.status();
  if (!ParseMountPoint(*target, st->mode())) {
    return Error(Code::kInvalidArgument, "not a mount point");
  }
  return *target;
}

Result<std::string> HekaFs::MakeMountPoint(const Caller& c, uint64_t parent,
                                           const std::string& name, const std::string& cell,
                                           const std::string& volume, bool rw) {
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto id = VolumeByName(cell.empty() ? dir->cell() : cell, volume);
  if (!id.ok()) return id.status();
  MountPointTarget t{cell, volume, rw};
  std::string target = MountPointString(t);
  if (!ParseMountPoint(target, kMountPointMode)) {
    return Error(Code::kInvalidArgument, "bad volume or cell name in '" + target + "'");
  }
  auto made = MakeSymlink(WhoIs(c), parent, name, target, kMountPointMode);
  if (!made.ok()) return made.status();
  return target;
}

}  // namespace heka::cm

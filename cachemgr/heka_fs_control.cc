// HekaFs: what the control socket (`heka fs`) needs beyond the FUSE operations: paths,
// ACLs, volume status and quota, mount points, flushes, the cache's size, server probes,
// cells and unlog. See heka_fs.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <future>
#include <set>

#include "cachemgr/heka_fs.h"
#include "cachemgr/internal/heka_fs_types.h"
#include "cachemgr/mount_point.h"
#include "proto/diag.pb.h"
#include "rpc/client.h"
#include "rpc/diag.h"

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

Result<pb::VolumeStatus> HekaFs::SetQuotaOf(const Caller& c, uint64_t ino,
                                            uint64_t quota_bytes) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::SetQuotaRequest req;
  req.set_cell(fid->cell());
  req.set_volume(fid->volume());
  req.set_quota_bytes(quota_bytes);
  auto r = Call<pb::SetQuotaReply>(WhoIs(c), fid->cell(), fid->volume(), "SetQuota", req);
  if (r.ok()) return r->status();
  if (r.status().code() == Code::kPermissionDenied) {
    return Error(Code::kPermissionDenied, "only administrators of cell '" + fid->cell() +
                                              "' may change a volume's quota");
  }
  return r.status();
}

Result<std::string> HekaFs::ServerAddressOf(uint64_t ino) {
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  auto server = ServerOf(fid->cell(), fid->volume());
  if (!server.ok()) return server.status();
  return server->address;
}

void HekaFs::CheckVolumes() {
  std::vector<std::string> cells;
  size_t n = 0;
  {
    std::lock_guard lock(mu_);
    n = named_volumes_.size() + servers_.size();
    named_volumes_.clear();
    servers_.clear();
    replicated_.clear();
    for (const auto& [cell, id] : root_volumes_) cells.push_back(cell);
  }
  for (const std::string& cell : cells) {  // whether each root.cell is replicated now
    db::GetVolumeRequest req;
    req.set_cell(cell);
    req.set_name("root.cell");
    auto r = options_.runtime->BlockOn(options_.db->GetVolume(req));
    if (r.ok()) NoteReplicated(r->volume());
  }
  spdlog::info("checkvolumes: forgot {} volume locations; the VLDB is asked again", n);
}

Result<uint64_t> HekaFs::VolumeByName(const std::string& cell, const std::string& name,
                                      bool remember) {
  {
    std::lock_guard lock(mu_);
    auto it = named_volumes_.find({cell, name});
    if (it != named_volumes_.end() && std::chrono::steady_clock::now() - it->second.second < kVolumeNameTtl) {
      return it->second.first;
    }
  }
  db::GetVolumeRequest req;
  req.set_cell(cell);
  req.set_name(name);
  // (A volume made a moment ago that a follower does not know yet: DbClient asks the leader.)
  auto r = options_.runtime->BlockOn(options_.db->GetVolume(req));
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound || r.status().code() == Code::kPermissionDenied) {
      return Error(Code::kNotFound, "no volume '" + name + "' in cell '" + cell + "'");
    }
    return r.status();
  }
  NoteReplicated(r->volume());
  // "x.backup" is the BK instance (id + 2), "x.readonly" an RO one (id + 1), if the VLDB
  // lists such a site (`vos backup`, `vos release`).
  uint64_t id = r->volume().id();
  for (auto [suffix, offset, type] : {std::tuple{".backup", 2, db::VolumeSite::BK},
                                      std::tuple{".readonly", 1, db::VolumeSite::RO}}) {
    if (!name.ends_with(suffix) || name.size() == std::strlen(suffix)) continue;
    bool listed = false;
    for (const db::VolumeSite& site : r->volume().sites()) listed |= site.type() == type;
    if (!listed) {
      return Error(Code::kNotFound, "volume '" + r->volume().name() + "' of cell '" + cell +
                                        "' has no " + (offset == 2 ? "backup (vos backup)"
                                                                   : "read-only site (vos release)"));
    }
    id += static_cast<uint64_t>(offset);
  }
  if (!remember) return id;
  std::lock_guard lock(mu_);
  named_volumes_[{cell, name}] = {id, std::chrono::steady_clock::now()};
  return id;
}

// ---- Cache and credentials ----------------------------------------------------------------

void HekaFs::FlushCached(uint64_t ino) {
  DrainPuts();
  std::vector<std::pair<uint64_t, std::string>> inval;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end()) {
      it->second->Invalidate(ino, &inval);
      chunk_cache_->Drop(FileKeyOf(it->second->status.fid()));
    } else {
      inval.emplace_back(ino, "");
    }
  }
  QueueInvalidations(std::move(inval));
}

namespace {

// flushvolume works (and takes mu_) this many objects at a time, and logs progress every
// kFlushLogEvery objects.
constexpr size_t kFlushBatch = 1000;
constexpr size_t kFlushLogEvery = 10000;

}  // namespace

Result<uint64_t> HekaFs::FlushVolume(uint64_t ino) {
  DrainPuts();
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  std::vector<uint64_t> inos;
  {
    std::lock_guard lock(mu_);
    // inos_ is ordered by (cell, volume, vnode, uniq): the volume's objects are adjacent.
    for (auto it = inos_.lower_bound({fid->cell(), fid->volume(), 0, 0});
         it != inos_.end() && std::get<0>(it->first) == fid->cell() &&
         std::get<1>(it->first) == fid->volume();
         ++it) {
      inos.push_back(it->second);
    }
  }
  const size_t total = inos.size();
  for (size_t done = 0; done < total;) {
    std::vector<std::pair<uint64_t, std::string>> inval;
    size_t end = std::min(total, done + kFlushBatch);
    {
      std::lock_guard lock(mu_);
      for (; done < end; ++done) {
        auto it = nodes_.find(inos[done]);
        if (it == nodes_.end()) continue;
        it->second->Invalidate(inos[done], &inval);
      }
    }
    QueueInvalidations(std::move(inval));
    if (done % kFlushLogEvery == 0 && done < total) {
      spdlog::info("flushvolume: {} of {} objects (volume {} of cell {})", done, total,
                   fid->volume(), fid->cell());
    }
  }
  // File data of files no longer tracked (the kernel forgot them) goes too.
  chunk_cache_->DropVolume(fid->cell(), fid->volume());
  spdlog::info("flushvolume: {} of {} objects (volume {} of cell {}): done", total, total,
               fid->volume(), fid->cell());
  return total;
}

uint64_t HekaFs::SetCacheSize(uint64_t bytes) {
  uint64_t bound = bytes == 0 ? options_.config->cache_bytes : bytes;
  chunk_cache_->SetCapacity(bound);
  return bound;
}

void HekaFs::ForgetName(uint64_t parent, const std::string& name) {
  QueueInvalidations({{parent, name}});
}

std::string HekaFs::PrincipalOf(const Caller& c) { return WhoIs(c).principal; }

void HekaFs::Unlog(const Caller& c) {
  Who who = WhoIs(c);
  options_.resolver->Forget(c.uid);
  if (who.ccache.empty()) return;  // anonymous: the machine's connections stay
  size_t closed = 0;
  std::lock_guard lock(mu_);
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (std::get<1>(it->first) == who.ccache) {
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
  // The AFS rule: a regular mount point in a read-only volume leads to the read-only instance
  // of a replicated volume; a read-write one ('%'), or one in a read-write volume, to the RW.
  uint64_t id = *volume;
  if (!mp->rw) {
    auto here = ServerOf(st.fid().cell(), st.fid().volume());
    if (here.ok() && here->replica) id = ReadOnlyIfReplicated(cell, id);
  }
  pb::Fid root;
  root.set_cell(cell);
  root.set_volume(id);
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
  // Only a check: the first crossing asks the VLDB, after any vos release made meanwhile.
  auto id = VolumeByName(cell.empty() ? dir->cell() : cell, volume, /*remember=*/false);
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

// ---- Servers and cells ------------------------------------------------------------------

namespace {

constexpr std::chrono::seconds kProbeDeadline{5};

}  // namespace

Result<std::vector<HekaFs::ServerProbe>> HekaFs::CheckServers(
    const std::vector<std::string>& cells, bool all) {
  const std::vector<std::string>& wanted = cells.empty() ? options_.config->cells : cells;
  all = all || wanted.empty();
  std::set<std::string> uuids;  // of the servers holding the cells' volumes
  for (size_t i = 0; !all && i < wanted.size(); ++i) {
    auto known = CellStatus(wanted[i]);
    if (!known.ok()) return known.status();
    db::ListVolumesRequest req;
    req.set_cell(wanted[i]);
    auto vols = options_.runtime->BlockOn(options_.db->ListVolumes(req));
    if (!vols.ok()) return vols.status().WithContext("volumes of cell " + wanted[i]);
    for (const db::Volume& v : vols->volumes()) {
      for (const db::VolumeSite& site : v.sites()) uuids.insert(site.server_uuid());
    }
  }
  auto servers = options_.runtime->BlockOn(options_.db->ListServers(db::ListServersRequest()));
  if (!servers.ok()) return servers.status().WithContext("file servers");
  std::vector<ServerProbe> out;
  for (const db::FileServer& s : servers->servers()) {
    if (s.addresses_size() == 0 || (!all && !uuids.count(s.uuid()))) continue;
    out.push_back({s.addresses(0), s.principal(), s.uuid(), Status::Ok()});
  }
  // All at once, on connections of their own: a dead server costs one deadline in all.
  std::vector<std::shared_ptr<rpc::Client>> clients;
  std::vector<std::future<Result<diag::PingReply>>> pings;
  for (const ServerProbe& p : out) {
    rpc::ClientOptions o;
    o.address = p.address;
    o.server_principal = p.principal;
    o.credentials.keytab = "FILE:" + options_.config->keytab;
    o.credentials.principal = options_.config->principal;
    o.credentials.ccache = "MEMORY:heka-cachemgr-machine";
    o.connect_timeout = kProbeDeadline;
    o.handshake_timeout = kProbeDeadline;
    clients.push_back(rpc::Client::Create(*options_.runtime, o));
    pings.push_back(rpc::asio::co_spawn(
        options_.runtime->io(),
        clients.back()->Call<diag::PingReply>(rpc::kDiagPing, diag::PingRequest(),
                                              kProbeDeadline),
        rpc::asio::use_future));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].status = pings[i].get().status();
    clients[i]->Close();
    if (!out[i].status.ok()) {
      spdlog::warn("checkservers: {} ({}) is unavailable: {}", out[i].address, out[i].uuid,
                   out[i].status.ToString());
    }
  }
  return out;
}

std::vector<HekaFs::KnownCell> HekaFs::Cells() {
  std::vector<KnownCell> out;
  std::lock_guard lock(mu_);
  for (const std::string& name : options_.config->cells) {
    auto it = root_volumes_.find(name);
    out.push_back({name, true, it == root_volumes_.end() ? 0 : it->second});
  }
  for (const auto& [name, root] : root_volumes_) {
    const auto& configured = options_.config->cells;
    if (std::find(configured.begin(), configured.end(), name) == configured.end()) {
      out.push_back({name, false, root});
    }
  }
  return out;
}

Result<HekaFs::KnownCell> HekaFs::CellStatus(const std::string& cell) {
  auto root = RootVolume(cell);
  if (!root.ok()) {
    if (root.status().code() == Code::kNotFound) {
      return Error(Code::kNotFound, "no such cell '" + cell + "'");
    }
    return root.status();
  }
  const auto& configured = options_.config->cells;
  bool listed = std::find(configured.begin(), configured.end(), cell) != configured.end();
  return KnownCell{cell, listed, *root};
}

}  // namespace heka::cm

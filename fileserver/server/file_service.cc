#include "fileserver/server/file_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace heka::fs {
namespace {

using rpc::awaitable;
using rpc::CallContext;
namespace asio = rpc::asio;

constexpr uint64_t kMaxFetch = 8 << 20;  // bytes per FetchData reply
constexpr uint32_t kDefaultPage = 256;
constexpr uint32_t kMaxPage = 4096;
constexpr size_t kMaxAclEntries = 100;
constexpr size_t kMaxBulk = 1024;

Status Denied() { return Error(Code::kPermissionDenied, "permission denied"); }

// Present from start to a clean stop at which no advisory lock was held. Finding it at start
// means locks may have been held (a crash, or a stop with locks): grant a grace period for
// reclaims. A brand-new server, or one stopped cleanly without locks, needs none.
std::string LocksMarker(const FileServerConfig& config) {
  return config.state_dir + "/locks-may-be-held";
}

std::chrono::milliseconds GraceAfterStart(const FileServerConfig& config) {
  std::error_code ec;
  bool grace = std::filesystem::exists(LocksMarker(config), ec);
  std::ofstream(LocksMarker(config)) << "heka-fileserver is running or stopped with locks held\n";
  if (!grace) return std::chrono::milliseconds(0);
  spdlog::info("advisory locks: grace period of {} ms for clients to reclaim their locks",
               config.lock_grace_ms);
  return std::chrono::milliseconds(config.lock_grace_ms);
}

pb::FileType TypeOf(VnodeType t) {
  switch (t) {
    case VnodeType::kFile: return pb::FileType::FILE;
    case VnodeType::kDir: return pb::FileType::DIRECTORY;
    case VnodeType::kSymlink: return pb::FileType::SYMLINK;
  }
  return pb::FileType::FILE_TYPE_UNSPECIFIED;
}

Status CheckName(const std::string& name) {
  if (name.size() > kMaxNameLength) {
    return Error(Code::kNameTooLong, std::to_string(name.size()) + "-byte name (the limit is " +
                                         std::to_string(kMaxNameLength) + ")");
  }
  return CheckEntryName(name);
}

}  // namespace

// ---- VolumeTable -----------------------------------------------------------------------------

void VolumeTable::Put(uint64_t id, std::shared_ptr<ServedVolume> volume) {
  std::unique_lock lock(mu_);
  volumes_[id] = std::move(volume);
}

std::shared_ptr<ServedVolume> VolumeTable::Find(uint64_t id) const {
  std::shared_lock lock(mu_);
  auto it = volumes_.find(id);
  return it == volumes_.end() ? nullptr : it->second;
}

std::shared_ptr<ServedVolume> VolumeTable::Take(uint64_t id) {
  std::unique_lock lock(mu_);
  auto it = volumes_.find(id);
  if (it == volumes_.end()) return nullptr;
  auto v = std::move(it->second);
  volumes_.erase(it);
  return v;
}

std::vector<std::pair<uint64_t, std::shared_ptr<ServedVolume>>> VolumeTable::All() const {
  std::shared_lock lock(mu_);
  return {volumes_.begin(), volumes_.end()};
}

// ---- CpsCache --------------------------------------------------------------------------------

CpsCache::CpsCache(rpc::Runtime& runtime, db::DbClient& db, std::chrono::milliseconds ttl)
    : runtime_(runtime), db_(db), ttl_(ttl) {}

Result<Cps> CpsCache::Get(const std::string& cell, const std::string& principal) {
  auto key = std::make_pair(cell, principal);
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && now - it->second.fetched < ttl_) return it->second.cps;
  }
  db::GetCpsRequest req;
  req.set_cell(cell);
  req.set_principal(principal);
  Result<db::GetCpsReply> rep = runtime_.BlockOn(db_.GetCps(req));
  if (!rep.ok()) {
    if (rep.status().code() == Code::kNotFound) return Cps::AnyUser();
    return Error(Code::kUnavailable, "cannot read the caller's groups from the PTDB: " +
                                         rep.status().ToString());
  }
  Cps cps;
  cps.user_id = rep->user_id();
  cps.groups.assign(rep->group_ids().begin(), rep->group_ids().end());
  std::lock_guard lock(mu_);
  entries_[key] = Entry{cps, now};
  return cps;
}

// ---- FileService: plumbing -------------------------------------------------------------------

// A chunk this store has written only part of. It is kept in memory until the store covers
// all of it (then it is written once, with no read of the old content) or until the commit
// (then the old content fills the gaps). Pieces that straddle chunks, as an encrypted file's
// sealed chunks do, arrive in any order; writing a chunk as soon as its last byte arrived
// would write many chunks twice.
struct FileService::PartialChunk {
  Bytes data;                            // the written bytes at their offsets, zeros between
  std::map<uint64_t, uint64_t> ranges;   // written [start, end), disjoint and not touching
  bool complete_below = false;           // data already holds the old content under it

  void Add(uint64_t within, const uint8_t* src, uint64_t n) {
    if (data.size() < within + n) data.resize(within + n, 0);
    std::memcpy(data.data() + within, src, n);
    uint64_t start = within, end = within + n;
    auto it = ranges.upper_bound(start);
    if (it != ranges.begin() && std::prev(it)->second >= start) --it;
    while (it != ranges.end() && it->first <= end) {
      start = std::min(start, it->first);
      end = std::max(end, it->second);
      it = ranges.erase(it);
    }
    ranges.emplace(start, end);
  }
  bool Covers(uint64_t chunk_size) const {
    return complete_below ||
           (ranges.size() == 1 && ranges.begin()->first == 0 && ranges.begin()->second >= chunk_size);
  }
};

struct FileService::Store {
  std::mutex mu;
  const rpc::Connection* conn = nullptr;
  std::shared_ptr<ServedVolume> vol;
  pb::Fid fid;
  std::unique_ptr<StoreTransaction> txn;
  std::map<uint64_t, PartialChunk> partial;  // chunks written in part so far
};

FileService::FileService(FileServiceDeps deps)
    : deps_(std::move(deps)),
      config_(*deps_.config),
      callbacks_(*deps_.runtime,
                 CallbacksOptions{std::chrono::milliseconds(config_.break_bound_ms),
                                  std::chrono::seconds(config_.callback_ttl_s)}),
      cps_(*deps_.runtime, *deps_.db, std::chrono::milliseconds(config_.cps_ttl_ms)),
      locks_(std::chrono::milliseconds(config_.lock_lease_ms), GraceAfterStart(config_)),
      provider_admins_(config_.provider_admins.begin(), config_.provider_admins.end()) {}

void FileService::Shutdown() {
  disk_.join();
  std::error_code ec;
  if (locks_.empty()) std::filesystem::remove(LocksMarker(config_), ec);
}

void FileService::MarkIdleVolumesClean() {
  std::set<uint64_t> ids;
  {
    std::lock_guard lock(touched_mu_);
    ids.swap(touched_);
  }
  for (uint64_t id : ids) {
    auto vol = volumes_.Find(id);
    if (!vol || !vol->volume) continue;
    asio::post(disk_, [this, vol, id] {
      if (vol->volume->TryMarkClean()) return;
      std::lock_guard lock(touched_mu_);
      touched_.insert(id);  // a store is still open: try again next time
    });
  }
}

FileService::~FileService() {
  {
    std::lock_guard lock(stores_mu_);
    stores_.clear();
  }
  disk_.join();
}

VolumeOptions FileService::OptionsFor(const std::string& partition) const {
  VolumeOptions o;
  o.env = deps_.env;
  o.partition = partition;
  return o;
}

bool FileService::IsProviderAdmin(const krb::Identity& peer) const {
  return provider_admins_.count(peer.principal()) > 0;
}

template <typename Req, typename Rep>
void FileService::Add(rpc::HandlerRegistry& registry, std::string_view method,
                      Result<Rep> (FileService::*fn)(Op&, const Req&)) {
  // The file methods that change a volume: a backup volume refuses them (kReadOnly).
  static const std::set<std::string_view> kChanging = {
      "heka.fileserver.File.BeginStore", "heka.fileserver.File.StoreData",
      "heka.fileserver.File.CommitStore", "heka.fileserver.File.CreateFile",
      "heka.fileserver.File.MakeDir",    "heka.fileserver.File.Symlink",
      "heka.fileserver.File.Link",       "heka.fileserver.File.Rename",
      "heka.fileserver.File.Remove",     "heka.fileserver.File.RemoveDir",
      "heka.fileserver.File.SetAttr",    "heka.fileserver.File.StoreAcl",
      "heka.fileserver.File.SetQuota"};
  const bool changes = kChanging.count(method) > 0;
  registry.Register<Req, Rep>(
      method, [this, fn, changes](CallContext& ctx, const Req& req) -> awaitable<Result<Rep>> {
        auto op = std::make_shared<Op>();
        op->changes = changes;
        op->peer = ctx.peer;
        op->conn = ctx.connection;
        op->client = callbacks_.ClientOf(ctx.connection.get());
        auto work = [this, fn, op, &req]() { return (this->*fn)(*op, req); };
        Result<Rep> rep = co_await rpc::RunBlocking(disk_, std::move(work));
        if (!op->breaks.empty()) {
          {
            std::lock_guard lock(touched_mu_);
            touched_.insert(op->volume);
          }
          std::vector<pb::Fid> changed = std::move(op->breaks);
          co_await callbacks_.Break(std::move(changed), op->client);
        }
        co_return rep;
      });
}

void FileService::Register(rpc::HandlerRegistry& r) {
  r.Register<pb::HelloRequest, pb::HelloReply>(
      "heka.fileserver.File.Hello",
      [this](CallContext& ctx, const pb::HelloRequest& req) -> awaitable<Result<pb::HelloReply>> {
        if (req.client_uuid().empty() || req.client_uuid().size() > 64) {
          co_return Error(Code::kInvalidArgument, "a client uuid of 1 to 64 bytes is required");
        }
        pb::HelloReply rep;
        rep.set_revalidate(callbacks_.Hello(req.client_uuid(), ctx.connection));
        rep.set_server_uuid(deps_.server_uuid);
        rep.set_server_epoch_ns(deps_.epoch_ns);
        co_return rep;
      });
  Add(r, "heka.fileserver.File.FetchStatus", &FileService::FetchStatus);
  Add(r, "heka.fileserver.File.BulkStatus", &FileService::BulkStatus);
  Add(r, "heka.fileserver.File.Lookup", &FileService::Lookup);
  Add(r, "heka.fileserver.File.ListDir", &FileService::ListDir);
  Add(r, "heka.fileserver.File.FetchData", &FileService::FetchData);
  Add(r, "heka.fileserver.File.BeginStore", &FileService::BeginStore);
  Add(r, "heka.fileserver.File.StoreData", &FileService::StoreData);
  Add(r, "heka.fileserver.File.CommitStore", &FileService::CommitStore);
  Add(r, "heka.fileserver.File.AbortStore", &FileService::AbortStore);
  Add(r, "heka.fileserver.File.CreateFile", &FileService::CreateFile);
  Add(r, "heka.fileserver.File.MakeDir", &FileService::MakeDir);
  Add(r, "heka.fileserver.File.Symlink", &FileService::Symlink);
  Add(r, "heka.fileserver.File.Link", &FileService::Link);
  Add(r, "heka.fileserver.File.Rename", &FileService::Rename);
  Add(r, "heka.fileserver.File.Remove", &FileService::RemoveFile);
  Add(r, "heka.fileserver.File.RemoveDir", &FileService::RemoveDir);
  Add(r, "heka.fileserver.File.SetAttr", &FileService::SetAttr);
  Add(r, "heka.fileserver.File.FetchAcl", &FileService::FetchAcl);
  Add(r, "heka.fileserver.File.StoreAcl", &FileService::StoreAcl);
  Add(r, "heka.fileserver.File.GetVolumeStatus", &FileService::GetVolumeStatus);
  Add(r, "heka.fileserver.File.SetQuota", &FileService::SetQuota);
  Add(r, "heka.fileserver.File.SetLock", &FileService::SetLock);
  Add(r, "heka.fileserver.File.ReleaseLock", &FileService::ReleaseLock);
  Add(r, "heka.fileserver.File.RenewLocks", &FileService::RenewLocks);
  Add(r, "heka.fileserver.VolumeServer.CreateVolume", &FileService::CreateVolume);
  Add(r, "heka.fileserver.VolumeServer.DeleteVolume", &FileService::DeleteVolume);
  Add(r, "heka.fileserver.VolumeServer.ListVolumes", &FileService::ListVolumes);
  Add(r, "heka.fileserver.VolumeServer.ExamineVolume", &FileService::ExamineVolume);
  Add(r, "heka.fileserver.VolumeServer.SetQuota", &FileService::VolSetQuota);
  Add(r, "heka.fileserver.VolumeServer.SetOnline", &FileService::SetOnline);
  Add(r, "heka.fileserver.VolumeServer.CloneVolume", &FileService::CloneVolume);
  Add(r, "heka.fileserver.VolumeServer.DumpVolume", &FileService::DumpVolume);
  Add(r, "heka.fileserver.VolumeServer.RestoreVolume", &FileService::RestoreVolume);
  Add(r, "heka.fileserver.VolumeServer.FreezeVolume", &FileService::FreezeVolume);
  Add(r, "heka.fileserver.VolumeServer.VolumeMoved", &FileService::VolumeMoved);
}

// ---- Rights and status -----------------------------------------------------------------------

Status FileService::Enter(Op& op, const std::string& cell, uint64_t volume) {
  auto vol = volumes_.Find(volume);
  if (!vol || cell.empty() || vol->cell != cell) return Denied();
  op.in_flight.Hold(vol);  // before the checks: a freeze either is seen or waits for this
  if (Status s = Available(volume, *vol); !s.ok()) {
    op.in_flight.Release();
    return s;
  }
  if (op.changes && vol->type != VolumeType::kReadWrite) {
    return Error(Code::kReadOnly, "volume " + std::to_string(volume) + " is a read-only " +
                                      (vol->type == VolumeType::kBackup ? "backup" : "replica"));
  }
  auto cps = cps_.Get(cell, op.peer.principal());
  if (!cps.ok()) return cps.status();
  op.vol = std::move(vol);
  op.cell = cell;
  op.volume = volume;
  op.cps = std::move(*cps);
  return Status::Ok();
}

Status FileService::Hide(Op& op, Status s) {
  if (s.code() != Code::kNotFound && s.code() != Code::kStaleFid) return s;
  auto root = LoadVnode(op, kRootVnode);
  if (root.ok() && MayLookup(root->dir_rights)) return s;
  return Denied();
}

Result<FileService::Node> FileService::LoadVnode(Op& op, uint64_t vnode) {
  Volume& vol = *op.vol->volume;
  auto v = vol.GetVnode(vnode);
  if (!v.ok()) return v.status();
  uint64_t dir = v->type == VnodeType::kDir ? v->vnode : v->parent;
  auto acl = vol.GetAcl(dir);
  if (!acl.ok()) return acl.status();
  bool volume_owner = false;
  if (op.cps.user_id != 0) {
    auto root = vnode == kRootVnode ? v : vol.GetVnode(kRootVnode);
    volume_owner = root.ok() && root->owner == op.cps.user_id;
  }
  Node n;
  n.dir_rights = DirectoryRights(*acl, op.cps, volume_owner);
  uint32_t any = DirectoryRights(*acl, Cps::AnyUser(), false);
  if (v->type == VnodeType::kDir) {
    n.rights = n.dir_rights;
    n.anyuser = any;
  } else {
    n.rights = FileRights(n.dir_rights, v->mode);
    n.anyuser = FileRights(any, v->mode);
  }
  n.v = std::move(*v);
  return n;
}

Result<FileService::Node> FileService::Load(Op& op, const pb::Fid& fid) {
  Status s = Enter(op, fid.cell(), fid.volume());
  if (!s.ok()) return s;
  auto n = LoadVnode(op, fid.vnode());
  if (!n.ok()) return Hide(op, n.status());
  if (n->v.uniq != fid.uniq()) {
    return Hide(op, Error(Code::kStaleFid, "vnode " + std::to_string(fid.vnode()) +
                                               " was deleted"));
  }
  return n;
}

Result<FileService::Node> FileService::LoadDir(Op& op, const pb::Fid& fid) {
  auto n = Load(op, fid);
  if (!n.ok()) return n;
  if (n->v.type != VnodeType::kDir) {
    if (!MayLookup(n->dir_rights)) return Denied();
    return Error(Code::kNotDirectory, "not a directory");
  }
  return n;
}

pb::Fid FileService::FidOf(const Op& op, uint64_t vnode, uint64_t uniq) const {
  pb::Fid f;
  f.set_cell(op.cell);
  f.set_volume(op.volume);
  f.set_vnode(vnode);
  f.set_uniq(uniq);
  return f;
}

pb::Fid FileService::FidOf(const Op& op, const VnodeStatus& v) const {
  return FidOf(op, v.vnode, v.uniq);
}

void FileService::Fill(const Op& op, const Node& n, pb::FileStatus* out) const {
  const VnodeStatus& v = n.v;
  *out->mutable_fid() = FidOf(op, v);
  out->set_type(TypeOf(v.type));
  out->set_mode(v.mode);
  out->set_owner(v.owner);
  out->set_group(v.group);
  out->set_size(v.size);
  out->set_mtime_ns(v.mtime_ns);
  out->set_ctime_ns(v.ctime_ns);
  out->set_data_version(v.data_version);
  out->set_link_count(v.link_count);
  out->set_parent_vnode(v.parent);
  out->set_caller_rights(n.rights);
  out->set_anyuser_rights(n.anyuser);
  out->set_client_attr(v.client_attr.data(), v.client_attr.size());
}

void FileService::Grant(Op& op, const Node& n, pb::Callback* out) {
  out->set_expires_ns(callbacks_.Grant(op.client, op.volume, n.v.vnode));
}

Result<pb::FileStatus> FileService::StatusOf(Op& op, uint64_t vnode) {
  auto n = LoadVnode(op, vnode);
  if (!n.ok()) return n.status();
  pb::FileStatus st;
  Fill(op, *n, &st);
  return st;
}

// ---- Reads -----------------------------------------------------------------------------------

Result<pb::FetchStatusReply> FileService::FetchStatus(Op& op, const pb::FetchStatusRequest& req) {
  auto n = Load(op, req.fid());
  if (!n.ok()) return n.status();
  if (!MayLookup(n->dir_rights)) return Denied();
  pb::FetchStatusReply rep;
  Fill(op, *n, rep.mutable_status());
  Grant(op, *n, rep.mutable_callback());
  return rep;
}

Result<pb::BulkStatusReply> FileService::BulkStatus(Op& op, const pb::BulkStatusRequest& req) {
  if (req.fids_size() > static_cast<int>(kMaxBulk)) {
    return Error(Code::kInvalidArgument, "at most " + std::to_string(kMaxBulk) + " fids per call");
  }
  pb::BulkStatusReply rep;
  for (const pb::Fid& fid : req.fids()) {
    pb::BulkStatusItem* item = rep.add_items();
    Op one;
    one.peer = op.peer;
    one.client = op.client;
    pb::FetchStatusRequest single;
    *single.mutable_fid() = fid;
    auto r = FetchStatus(one, single);
    if (!r.ok()) {
      item->set_code(static_cast<uint32_t>(r.status().code()));
      item->set_message(r.status().message());
      continue;
    }
    *item->mutable_status() = r->status();
    *item->mutable_callback() = r->callback();
  }
  return rep;
}

Result<pb::LookupReply> FileService::Lookup(Op& op, const pb::LookupRequest& req) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayLookup(dir->dir_rights)) return Denied();
  if (Status s = CheckName(req.name()); !s.ok()) return s;
  auto entry = op.vol->volume->Lookup(dir->v.vnode, req.name());
  if (!entry.ok()) return entry.status();
  auto child = LoadVnode(op, entry->vnode);
  if (!child.ok()) return child.status();
  pb::LookupReply rep;
  Fill(op, *child, rep.mutable_status());
  Grant(op, *child, rep.mutable_callback());
  Fill(op, *dir, rep.mutable_dir_status());
  return rep;
}

Result<pb::ListDirReply> FileService::ListDir(Op& op, const pb::ListDirRequest& req) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayLookup(dir->dir_rights)) return Denied();
  uint32_t limit = req.limit() == 0 ? kDefaultPage : std::min(req.limit(), kMaxPage);
  auto entries = op.vol->volume->List(dir->v.vnode, req.after(), limit);
  if (!entries.ok()) return entries.status();
  pb::ListDirReply rep;
  for (const DirEntry& e : *entries) {
    auto* out = rep.add_entries();
    out->set_name(e.name);
    pb::Fid* f = out->mutable_fid();
    f->set_cell(op.cell);
    f->set_volume(op.volume);
    f->set_vnode(e.vnode);
    f->set_uniq(e.uniq);
  }
  rep.set_done(entries->size() < limit);
  Fill(op, *dir, rep.mutable_dir_status());
  Grant(op, *dir, rep.mutable_callback());
  return rep;
}

Result<pb::FetchDataReply> FileService::FetchData(Op& op, const pb::FetchDataRequest& req) {
  auto n = Load(op, req.fid());
  if (!n.ok()) return n.status();
  pb::FetchDataReply rep;
  if (!MayLookup(n->dir_rights) && !MayRead(n->dir_rights, 0777, true)) return Denied();
  if (n->v.type == VnodeType::kDir) return Error(Code::kIsDirectory, "is a directory");
  if (n->v.type == VnodeType::kSymlink) {
    if (!MayLookup(n->dir_rights)) return Denied();
    auto target = op.vol->volume->ReadLink(n->v.vnode);
    if (!target.ok()) return target.status();
    rep.set_data(*target);
  } else {
    if (!MayRead(n->dir_rights, n->v.mode, op.cps.user_id != 0 && op.cps.user_id == n->v.owner)) {
      return Denied();
    }
    auto data = op.vol->volume->Read(n->v.vnode, req.offset(), std::min(req.length(), kMaxFetch));
    if (!data.ok()) return data.status();
    rep.set_data(data->data(), data->size());
  }
  Fill(op, *n, rep.mutable_status());
  Grant(op, *n, rep.mutable_callback());
  return rep;
}

// ---- Stores ----------------------------------------------------------------------------------

Result<pb::BeginStoreReply> FileService::BeginStore(Op& op, const pb::BeginStoreRequest& req) {
  auto n = Load(op, req.fid());
  if (!n.ok()) return n.status();
  // Type errors only for callers who may see the vnode: the rest learn nothing.
  if (!MayLookup(n->dir_rights) && !MayWrite(n->dir_rights, 0777, true)) return Denied();
  if (n->v.type == VnodeType::kDir) return Error(Code::kIsDirectory, "is a directory");
  if (n->v.type != VnodeType::kFile) return Error(Code::kInvalidArgument, "not a regular file");
  if (!MayWrite(n->dir_rights, n->v.mode, op.cps.user_id != 0 && op.cps.user_id == n->v.owner)) {
    return Denied();
  }
  auto txn = op.vol->volume->BeginStore(n->v.vnode);
  if (!txn.ok()) return txn.status();
  auto store = std::make_shared<Store>();
  store->conn = op.conn.get();
  store->vol = op.vol;
  store->fid = req.fid();
  store->txn = std::move(*txn);
  uint64_t id;
  bool observe;
  {
    std::lock_guard lock(stores_mu_);
    id = next_store_++;
    stores_[id] = store;
    observe = op.conn && observed_.insert(op.conn.get()).second;
  }
  if (observe) {
    const rpc::Connection* raw = op.conn.get();
    op.conn->AddCloseObserver([this, raw](const Status&) { DropStoresOf(raw); });
  }
  pb::BeginStoreReply rep;
  rep.set_store_id(id);
  rep.set_chunk_size(op.vol->volume->chunk_size());
  Fill(op, *n, rep.mutable_status());
  return rep;
}

void FileService::DropStoresOf(const rpc::Connection* conn) {
  std::vector<std::shared_ptr<Store>> dropped;
  {
    std::lock_guard lock(stores_mu_);
    observed_.erase(conn);
    for (auto it = stores_.begin(); it != stores_.end();) {
      if (it->second->conn == conn) {
        dropped.push_back(std::move(it->second));
        it = stores_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (dropped.empty()) return;
  // Aborting deletes chunk files: do it on the disk pool.
  asio::post(disk_, [dropped = std::move(dropped)]() mutable {
    for (auto& s : dropped) {
      std::lock_guard lock(s->mu);
      if (s->txn) (void)s->txn->Abort();
      s->txn.reset();
    }
  });
}

Result<std::shared_ptr<FileService::Store>> FileService::FindStore(const Op& op, uint64_t id) {
  std::lock_guard lock(stores_mu_);
  auto it = stores_.find(id);
  if (it == stores_.end() || it->second->conn != op.conn.get()) {
    return Error(Code::kNotFound, "no store " + std::to_string(id) + " on this connection");
  }
  return it->second;
}

Result<pb::StoreDataReply> FileService::StoreData(Op& op, const pb::StoreDataRequest& req) {
  auto found = FindStore(op, req.store_id());
  if (!found.ok()) return found.status();
  Store& store = **found;
  std::lock_guard lock(store.mu);
  if (!store.txn) return Error(Code::kNotFound, "store " + std::to_string(req.store_id()) + " ended");
  op.in_flight.Hold(store.vol);
  if (Status s = Available(store.fid.volume(), *store.vol); !s.ok()) return EndStore(store, req.store_id(), s);
  Volume& vol = *store.vol->volume;
  const uint64_t cs = vol.chunk_size();
  const std::string& data = req.data();
  uint64_t pos = req.offset();
  size_t done = 0;
  while (done < data.size()) {
    uint64_t index = pos / cs;
    uint64_t within = pos % cs;
    size_t n = std::min<uint64_t>(cs - within, data.size() - done);
    const uint8_t* src = reinterpret_cast<const uint8_t*>(data.data()) + done;
    auto it = store.partial.find(index);
    if (within == 0 && n == cs && it == store.partial.end()) {
      Status s = store.txn->WriteChunk(index, ByteView(src, n));
      if (!s.ok()) return s;
    } else {
      if (it == store.partial.end()) {
        if (store.partial.size() >= kMaxPartialChunks) {  // bound the memory: write one out
          if (Status s = FlushChunk(store, store.partial.begin()->first); !s.ok()) return s;
        }
        PartialChunk chunk;
        // What this store already wrote there holds the old content below it already.
        auto mine = store.txn->Written(index);
        if (!mine.ok()) return mine.status();
        if (*mine) {
          chunk.data = std::move(**mine);
          chunk.complete_below = true;
        }
        it = store.partial.emplace(index, std::move(chunk)).first;
      }
      it->second.Add(within, src, n);
      if (it->second.Covers(cs) && it->second.data.size() == cs) {
        if (Status s = FlushChunk(store, index); !s.ok()) return s;
      }
    }
    pos += n;
    done += n;
  }
  return pb::StoreDataReply();
}

Status FileService::FlushChunk(Store& store, uint64_t index) {
  auto node = store.partial.extract(index);
  PartialChunk& chunk = node.mapped();
  Volume& vol = *store.vol->volume;
  const uint64_t cs = vol.chunk_size();
  if (chunk.Covers(cs)) return store.txn->WriteChunk(index, chunk.data);
  auto old = vol.Read(store.txn->vnode(), index * cs, cs);  // the gaps keep the old content
  if (!old.ok()) return old.status();
  Bytes& out = *old;
  if (out.size() < chunk.data.size()) out.resize(chunk.data.size(), 0);
  for (const auto& [start, end] : chunk.ranges)
    std::memcpy(out.data() + start, chunk.data.data() + start, end - start);
  return store.txn->WriteChunk(index, out);
}

Status FileService::EndStore(Store& store, uint64_t id, Status why) {
  // The volume froze or moved under the store: it is aborted, the client stores again.
  {
    std::lock_guard lock(stores_mu_);
    stores_.erase(id);
  }
  if (store.txn) (void)store.txn->Abort();
  store.txn.reset();
  store.partial.clear();
  return why;
}

Status FileService::FlushPartial(Store& store) {
  while (!store.partial.empty()) {
    if (Status s = FlushChunk(store, store.partial.begin()->first); !s.ok()) return s;
  }
  return Status::Ok();
}

Result<pb::CommitStoreReply> FileService::CommitStore(Op& op, const pb::CommitStoreRequest& req) {
  auto found = FindStore(op, req.store_id());
  if (!found.ok()) return found.status();
  std::shared_ptr<Store> store = *found;
  {
    std::lock_guard lock(stores_mu_);
    stores_.erase(req.store_id());
  }
  std::lock_guard lock(store->mu);
  if (!store->txn) return Error(Code::kNotFound, "store " + std::to_string(req.store_id()) + " ended");
  op.in_flight.Hold(store->vol);
  if (Status s = Available(store->fid.volume(), *store->vol); !s.ok()) {
    return EndStore(*store, req.store_id(), s);
  }
  Status s = FlushPartial(*store);
  if (s.ok()) s = store->txn->Commit(req.size());
  uint64_t vnode = store->txn->vnode();
  store->txn.reset();
  if (!s.ok()) return s;
  if (req.mtime_ns() != 0) {
    SetAttrRequest set;
    set.mtime_ns = req.mtime_ns();
    auto r = store->vol->volume->SetAttr(vnode, set);
    if (!r.ok()) return r.status();
  }
  if (Status e = Enter(op, store->fid.cell(), store->fid.volume()); !e.ok()) return e;
  op.breaks.push_back(store->fid);
  auto st = StatusOf(op, vnode);
  if (!st.ok()) return st.status();
  pb::CommitStoreReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

Result<pb::AbortStoreReply> FileService::AbortStore(Op& op, const pb::AbortStoreRequest& req) {
  auto found = FindStore(op, req.store_id());
  if (!found.ok()) return found.status();
  {
    std::lock_guard lock(stores_mu_);
    stores_.erase(req.store_id());
  }
  std::lock_guard lock((*found)->mu);
  if ((*found)->txn) (void)(*found)->txn->Abort();
  (*found)->txn.reset();
  return pb::AbortStoreReply();
}

// ---- Namespace -------------------------------------------------------------------------------

Result<pb::CreateReply> FileService::Create(Op& op, const pb::CreateRequest& req, VnodeType type) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayInsert(dir->dir_rights)) return Denied();
  if (Status s = CheckName(req.name()); !s.ok()) return s;
  NewVnodeAttrs attrs;
  uint32_t default_mode = type == VnodeType::kDir ? 0755 : type == VnodeType::kSymlink ? 0777 : 0644;
  attrs.mode = (req.mode() == 0 ? default_mode : req.mode()) & 07777;
  attrs.owner = op.cps.user_id;
  attrs.client_attr.assign(req.client_attr().begin(), req.client_attr().end());
  Volume& vol = *op.vol->volume;
  ByteView data(reinterpret_cast<const uint8_t*>(req.data().data()), req.data().size());
  Result<VnodeStatus> made = type == VnodeType::kFile  ? vol.CreateFile(dir->v.vnode, req.name(), attrs, data)
                             : type == VnodeType::kDir ? vol.MakeDir(dir->v.vnode, req.name(), attrs)
                                                       : vol.Symlink(dir->v.vnode, req.name(), req.target(), attrs);
  if (!made.ok()) return made.status();
  op.breaks.push_back(req.dir());
  auto child = LoadVnode(op, made->vnode);
  if (!child.ok()) return child.status();
  pb::CreateReply rep;
  Fill(op, *child, rep.mutable_status());
  Grant(op, *child, rep.mutable_callback());
  auto d = StatusOf(op, dir->v.vnode);
  if (d.ok()) *rep.mutable_dir_status() = std::move(*d);
  return rep;
}

Result<pb::CreateReply> FileService::CreateFile(Op& op, const pb::CreateRequest& req) {
  return Create(op, req, VnodeType::kFile);
}
Result<pb::CreateReply> FileService::MakeDir(Op& op, const pb::CreateRequest& req) {
  return Create(op, req, VnodeType::kDir);
}
Result<pb::CreateReply> FileService::Symlink(Op& op, const pb::CreateRequest& req) {
  if (req.target().empty()) return Error(Code::kInvalidArgument, "empty symlink target");
  return Create(op, req, VnodeType::kSymlink);
}

Result<pb::CreateReply> FileService::Link(Op& op, const pb::LinkRequest& req) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayInsert(dir->dir_rights)) return Denied();
  if (req.target().cell() != req.dir().cell() || req.target().volume() != req.dir().volume()) {
    return Error(Code::kCrossDevice, "hard links stay within one directory of one volume");
  }
  if (Status s = CheckName(req.name()); !s.ok()) return s;
  auto target = LoadVnode(op, req.target().vnode());
  if (!target.ok()) return Hide(op, target.status());
  if (target->v.uniq != req.target().uniq()) return Error(Code::kStaleFid, "stale target");
  auto linked = op.vol->volume->Link(dir->v.vnode, target->v.vnode, req.name());
  if (!linked.ok()) return linked.status();
  op.breaks.push_back(req.dir());
  op.breaks.push_back(req.target());
  auto child = LoadVnode(op, target->v.vnode);
  if (!child.ok()) return child.status();
  pb::CreateReply rep;
  Fill(op, *child, rep.mutable_status());
  Grant(op, *child, rep.mutable_callback());
  auto d = StatusOf(op, dir->v.vnode);
  if (d.ok()) *rep.mutable_dir_status() = std::move(*d);
  return rep;
}

Result<pb::RenameReply> FileService::Rename(Op& op, const pb::RenameRequest& req) {
  if (req.src_dir().cell() != req.dst_dir().cell() ||
      req.src_dir().volume() != req.dst_dir().volume()) {
    // Only after checking the caller may see the source: EXDEV reveals nothing then.
    auto src = LoadDir(op, req.src_dir());
    if (!src.ok()) return src.status();
    return Error(Code::kCrossDevice, "rename across volumes");
  }
  auto src = LoadDir(op, req.src_dir());
  if (!src.ok()) return src.status();
  auto dst = req.dst_dir().vnode() == req.src_dir().vnode() ? src : LoadDir(op, req.dst_dir());
  if (!dst.ok()) return dst.status();
  if (!MayDelete(src->dir_rights) || !MayInsert(dst->dir_rights)) return Denied();
  if (Status s = CheckName(req.src_name()); !s.ok()) return s;
  if (Status s = CheckName(req.dst_name()); !s.ok()) return s;
  Volume& vol = *op.vol->volume;
  auto moving = vol.Lookup(src->v.vnode, req.src_name());
  if (!moving.ok()) return moving.status();
  auto replaced = vol.Lookup(dst->v.vnode, req.dst_name());
  if (replaced.ok() && !MayDelete(dst->dir_rights)) return Denied();
  Status s = vol.Rename(src->v.vnode, req.src_name(), dst->v.vnode, req.dst_name());
  if (!s.ok()) return s;
  op.breaks.push_back(req.src_dir());
  if (dst->v.vnode != src->v.vnode) op.breaks.push_back(req.dst_dir());
  op.breaks.push_back(FidOf(op, moving->vnode, moving->uniq));
  if (replaced.ok()) {
    op.breaks.push_back(FidOf(op, replaced->vnode, replaced->uniq));
  }
  pb::RenameReply rep;
  if (auto st = StatusOf(op, src->v.vnode); st.ok()) *rep.mutable_src_dir_status() = *st;
  if (auto st = StatusOf(op, dst->v.vnode); st.ok()) *rep.mutable_dst_dir_status() = *st;
  return rep;
}

Result<pb::RemoveReply> FileService::Remove(Op& op, const pb::RemoveRequest& req, bool is_dir) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayDelete(dir->dir_rights)) return Denied();
  if (Status s = CheckName(req.name()); !s.ok()) return s;
  Volume& vol = *op.vol->volume;
  auto entry = vol.Lookup(dir->v.vnode, req.name());
  if (!entry.ok()) return entry.status();
  Status s = is_dir ? vol.RemoveDir(dir->v.vnode, req.name()) : vol.Remove(dir->v.vnode, req.name());
  if (!s.ok()) return s;
  op.breaks.push_back(req.dir());
  op.breaks.push_back(FidOf(op, entry->vnode, entry->uniq));
  pb::RemoveReply rep;
  if (auto st = StatusOf(op, dir->v.vnode); st.ok()) *rep.mutable_dir_status() = *st;
  return rep;
}

Result<pb::RemoveReply> FileService::RemoveFile(Op& op, const pb::RemoveRequest& req) {
  return Remove(op, req, false);
}
Result<pb::RemoveReply> FileService::RemoveDir(Op& op, const pb::RemoveRequest& req) {
  return Remove(op, req, true);
}

Result<pb::SetAttrReply> FileService::SetAttr(Op& op, const pb::SetAttrRequest& req) {
  auto n = Load(op, req.fid());
  if (!n.ok()) return n.status();
  bool owner = op.cps.user_id != 0 && op.cps.user_id == n->v.owner;
  bool is_dir = n->v.type == VnodeType::kDir;
  // A directory's own attributes follow its ACL's w (or a); a file's its mode and directory.
  bool may_write = is_dir ? (n->dir_rights & (kWrite | kAdminister)) != 0
                          : MayWrite(n->dir_rights, n->v.mode, owner);
  if (!MayLookup(n->dir_rights) && !may_write) return Denied();
  if (req.has_owner() && req.owner() != n->v.owner && !op.cps.cell_admin()) return Denied();
  if (req.has_group() && req.group() != n->v.group && !owner && !op.cps.cell_admin()) {
    return Denied();
  }
  if ((req.has_mode() || req.has_mtime_ns() || req.has_client_attr()) && !may_write && !owner) {
    return Denied();
  }
  if (req.has_size()) {
    if (is_dir) return Error(Code::kIsDirectory, "is a directory");
    if (!may_write) return Denied();
  }
  fs::SetAttrRequest set;
  if (req.has_mode()) set.mode = req.mode() & 07777;
  if (req.has_owner()) set.owner = req.owner();
  if (req.has_group()) set.group = req.group();
  if (req.has_mtime_ns()) set.mtime_ns = req.mtime_ns();
  if (req.has_size()) set.size = req.size();
  if (req.has_client_attr()) set.client_attr = Bytes(req.client_attr().begin(), req.client_attr().end());
  auto r = op.vol->volume->SetAttr(n->v.vnode, set);
  if (!r.ok()) return r.status();
  op.breaks.push_back(req.fid());
  auto st = StatusOf(op, n->v.vnode);
  if (!st.ok()) return st.status();
  pb::SetAttrReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

// ---- ACLs and volume status ------------------------------------------------------------------

Result<pb::FetchAclReply> FileService::FetchAcl(Op& op, const pb::FetchAclRequest& req) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayLookup(dir->dir_rights) && !MayAdminister(dir->dir_rights)) return Denied();
  auto acl = op.vol->volume->GetAcl(dir->v.vnode);
  if (!acl.ok()) return acl.status();
  pb::FetchAclReply rep;
  for (const AclEntry& e : *acl) {
    auto* out = rep.add_entries();
    out->set_principal(e.principal);
    out->set_rights(e.rights);
    out->set_negative(e.negative);
  }
  Fill(op, *dir, rep.mutable_status());
  return rep;
}

Result<pb::StoreAclReply> FileService::StoreAcl(Op& op, const pb::StoreAclRequest& req) {
  auto dir = LoadDir(op, req.dir());
  if (!dir.ok()) return dir.status();
  if (!MayAdminister(dir->dir_rights)) return Denied();
  if (req.entries_size() > static_cast<int>(kMaxAclEntries)) {
    return Error(Code::kInvalidArgument, "an ACL holds at most " + std::to_string(kMaxAclEntries) +
                                             " entries");
  }
  std::vector<AclEntry> acl;
  for (const auto& e : req.entries()) {
    if (e.principal() == 0 || (e.rights() & ~static_cast<uint32_t>(kAllRights))) {
      return Error(Code::kInvalidArgument, "invalid ACL entry for " + std::to_string(e.principal()));
    }
    acl.push_back(AclEntry{e.principal(), e.rights(), e.negative()});
  }
  Status s = op.vol->volume->SetAcl(dir->v.vnode, acl);
  if (!s.ok()) return s;
  op.breaks.push_back(req.dir());
  auto after = LoadVnode(op, dir->v.vnode);
  if (!after.ok()) return after.status();
  pb::StoreAclReply rep;
  Fill(op, *after, rep.mutable_status());
  return rep;
}

Result<pb::GetVolumeStatusReply> FileService::GetVolumeStatus(Op& op,
                                                          const pb::GetVolumeStatusRequest& req) {
  Status s = Enter(op, req.cell(), req.volume());
  if (!s.ok()) return s;
  auto root = LoadVnode(op, kRootVnode);
  if (!root.ok()) return root.status();
  if (!MayLookup(root->dir_rights)) return Denied();
  auto st = Describe(req.volume(), *op.vol);
  if (!st.ok()) return st.status();
  pb::GetVolumeStatusReply rep;
  *rep.mutable_status() = std::move(*st);
  *rep.mutable_root() = FidOf(op, root->v);
  return rep;
}

Result<pb::SetQuotaReply> FileService::SetQuota(Op& op, const pb::SetQuotaRequest& req) {
  return VolSetQuota(op, req);
}

// ---- Advisory locks --------------------------------------------------------------------------

static Status NeedsClient(const std::string& client) {
  if (!client.empty()) return Status::Ok();
  return Error(Code::kInvalidArgument, "locks are held by cache managers: say Hello first");
}

Result<pb::SetLockReply> FileService::SetLock(Op& op, const pb::SetLockRequest& req) {
  if (Status s = NeedsClient(op.client); !s.ok()) return s;
  auto n = Load(op, req.fid());
  if (!n.ok()) return n.status();
  if (!MayLock(n->dir_rights)) return Denied();
  if (n->v.type == VnodeType::kDir) return Error(Code::kIsDirectory, "is a directory");
  Status s = locks_.Set(op.client, {op.volume, n->v.vnode}, req.start(), req.length(), req.owner(),
                        req.exclusive(), req.reclaim());
  if (!s.ok()) return s;
  pb::SetLockReply rep;
  rep.set_lease_ms(locks_.lease().count());
  return rep;
}

Result<pb::ReleaseLockReply> FileService::ReleaseLock(Op& op, const pb::ReleaseLockRequest& req) {
  if (Status s = NeedsClient(op.client); !s.ok()) return s;
  Status s = Enter(op, req.fid().cell(), req.fid().volume());
  if (!s.ok()) return s;
  s = locks_.Release(op.client, {op.volume, req.fid().vnode()}, req.start(), req.length(),
                     req.owner());
  if (!s.ok()) return s;
  return pb::ReleaseLockReply();
}

Result<pb::RenewLocksReply> FileService::RenewLocks(Op& op, const pb::RenewLocksRequest&) {
  if (Status s = NeedsClient(op.client); !s.ok()) return s;
  pb::RenewLocksReply rep;
  rep.set_lease_ms(locks_.lease().count());
  auto renewed = locks_.Renew(op.client);
  for (auto [keys, out] : {std::pair{&renewed.lost, rep.mutable_lost()},
                           std::pair{&renewed.moved, rep.mutable_moved()}}) {
    for (const LockTable::Key& key : *keys) {
      pb::Fid* f = out->Add();
      f->set_volume(key.volume);
      f->set_vnode(key.vnode);
      auto vol = volumes_.Find(key.volume);
      if (vol) f->set_cell(vol->cell);
    }
  }
  return rep;
}

}  // namespace heka::fs

#include "cachemgr/heka_fs.h"

#include "cachemgr/internal/heka_fs_types.h"
#include "cachemgr/mount_point.h"

#include <fcntl.h>
#include <krb5.h>
#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace heka::cm {
namespace {

constexpr uint32_t kR = 1, kW = 2, kI = 4, kL = 8;
constexpr double kLongTimeout = 60.0;
constexpr const char* kFile = "heka.fileserver.File.";

bool Idempotent(const std::string& method) {
  for (const char* m : {"FetchStatus", "FetchData", "Lookup", "ListDir", "BulkStatus",
                        "GetVolumeStatus", "FetchAcl", "SetQuota"}) {
    if (method == m) return true;
  }
  return false;
}

mode_t TypeBits(pb::FileType t) {
  switch (t) {
    case pb::DIRECTORY: return S_IFDIR;
    case pb::SYMLINK: return S_IFLNK;
    default: return S_IFREG;
  }
}

}  // namespace

HekaFs::HekaFs(HekaFsOptions options)
    : options_(std::move(options)), chunk_size_(options_.config->chunk_bytes) {
  put_thread_ = std::thread([this] { CacheWriterLoop(); });
  chunk_cache_ = options_.chunk_cache;
  if (!chunk_cache_) chunk_cache_ = std::make_shared<MemoryChunkCache>(options_.config->cache_bytes);
  inval_thread_ = std::thread([this] { InvalidationLoop(); });
}

HekaFs::~HekaFs() {
  {
    std::unique_lock gone(life_->mu);  // waits for callbacks running now
    life_->alive = false;
  }
  {
    std::lock_guard lock(inval_mu_);
    stopping_ = true;
  }
  inval_cv_.notify_all();
  inval_thread_.join();
  {
    std::lock_guard lock(put_mu_);
    put_stop_ = true;
  }
  put_cv_.notify_all();
  put_thread_.join();
  if (revalidate_thread_.joinable()) revalidate_thread_.join();
}

void HekaFs::QueuePuts(std::vector<PendingPut> puts) {
  if (puts.empty()) return;
  {
    std::lock_guard lock(put_mu_);
    for (auto& p : puts) {
      // Beyond the bound, written data is simply not cached: a read fetches it.
      if (put_bytes_ + p.bytes.size() > kMaxQueuedPutBytes) break;
      put_bytes_ += p.bytes.size();
      put_queue_.push_back(std::move(p));
    }
  }
  put_cv_.notify_one();
}

void HekaFs::CacheWriterLoop() {
  for (;;) {
    PendingPut p;
    {
      std::unique_lock lock(put_mu_);
      put_cv_.wait(lock, [&] { return put_stop_ || !put_queue_.empty(); });
      if (put_stop_) return;
      p = std::move(put_queue_.front());
      put_queue_.pop_front();
      put_bytes_ -= p.bytes.size();
      put_busy_ = true;
    }
    chunk_cache_->Put(p.file, p.version, p.index, std::move(p.bytes));
    {
      std::lock_guard lock(put_mu_);
      put_busy_ = false;
    }
    put_cv_.notify_all();
  }
}

void HekaFs::DrainPuts() {
  std::unique_lock lock(put_mu_);
  put_cv_.wait_for(lock, std::chrono::seconds(30),
                   [&] { return put_stop_ || (put_queue_.empty() && !put_busy_); });
}

void HekaFs::StartRevalidation() {
  revalidate_thread_ = std::thread([this] { RevalidateCache(); });
}

void HekaFs::RevalidateCache() {
  auto versions = chunk_cache_->Versions();
  if (versions.empty()) return;
  // By volume, as BulkStatus asks one file server about one volume's files.
  std::map<std::pair<std::string, uint64_t>, std::vector<std::pair<FileKey, uint64_t>>> by_volume;
  for (auto& v : versions) {
    by_volume[{std::get<0>(v.first), std::get<1>(v.first)}].push_back(std::move(v));
  }
  spdlog::info("cache revalidation: {} cached files in {} volumes", versions.size(),
               by_volume.size());
  Who machine;  // anonymous: the machine's own connection
  size_t checked = 0, dropped = 0, unknown = 0, next_report = 10000;
  constexpr size_t kBatch = 1024;
  for (const auto& [volume, files] : by_volume) {
    for (size_t start = 0; start < files.size(); start += kBatch) {
      {
        std::lock_guard lock(inval_mu_);
        if (stopping_) return;
      }
      size_t end = std::min(files.size(), start + kBatch);
      pb::BulkStatusRequest req;
      for (size_t i = start; i < end; ++i) {
        pb::Fid* fid = req.add_fids();
        fid->set_cell(std::get<0>(files[i].first));
        fid->set_volume(std::get<1>(files[i].first));
        fid->set_vnode(std::get<2>(files[i].first));
        fid->set_uniq(std::get<3>(files[i].first));
      }
      auto r = Call<pb::BulkStatusReply>(machine, volume.first, volume.second, "BulkStatus", req);
      for (size_t i = start; i < end; ++i) {
        const auto& [file, version] = files[i];
        Code code = Code::kUnavailable;
        uint64_t current = 0;
        if (!r.ok()) {
          code = r.status().code() == Code::kNotFound ? Code::kNotFound : Code::kUnavailable;
        } else if (i - start < static_cast<size_t>(r->items_size())) {
          const pb::BulkStatusItem& item = r->items(static_cast<int>(i - start));
          code = static_cast<Code>(item.code());
          current = item.status().data_version();
        }
        bool gone = code == Code::kNotFound || code == Code::kStaleFid;
        if (gone || (code == Code::kOk && current != version)) {
          chunk_cache_->Drop(file);
          ++dropped;
        } else if (code != Code::kOk) {
          ++unknown;  // no rights as the machine, or the server is away: checked at first use
        }
      }
      checked = end == files.size() ? checked + (end - start) : checked + kBatch;
      if (checked >= next_report) {
        spdlog::info("cache revalidation: {} of {} files checked", checked, versions.size());
        next_report += 10000;
      }
    }
  }
  spdlog::info("cache revalidation done: {} files checked, {} changed or gone (dropped), {} "
               "left to check at first use",
               versions.size(), dropped, unknown);
}

// ---- Identities, servers, connections ------------------------------------------------------

HekaFs::Who HekaFs::WhoIs(const Caller& c) {
  CallerCreds creds = options_.resolver->Resolve(c.uid, c.gid, c.pid);
  Who who;
  who.ccache = creds.ccache;
  who.principal = creds.principal;
  who.uid = c.uid;
  who.source = creds.source;
  who.ticket_end = creds.expires_unix;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (!creds.ccache.empty() && creds.expires_unix > 0 && creds.expires_unix <= now) {
    who.expired = true;
    std::lock_guard lock(mu_);
    // One line per expired ticket, not one per request.
    if (expired_logged_.insert({c.uid, creds.expires_unix}).second) {
      spdlog::warn("uid {}: the ticket of {} in {} has expired: access denied until kinit",
                   c.uid, creds.principal, creds.source);
    }
  }
  return who;
}

Status HekaFs::Expired(const Who& who) {
  return Error(Code::kCredentialsExpired, "the ticket of " + who.principal + " has expired: run kinit");
}

std::shared_ptr<fs::FileClient> HekaFs::ClientFor(const Who& who, const Server& server) {
  std::lock_guard lock(mu_);
  auto key = std::make_tuple(server.address, who.ccache, who.Kinit());
  auto it = clients_.find(key);
  if (it != clients_.end()) return it->second;
  fs::FileClientOptions o;
  o.address = server.address;
  o.server_principal = server.principal;
  if (who.ccache.empty()) {
    o.credentials.keytab = "FILE:" + options_.config->keytab;
    o.credentials.principal = options_.config->principal;
    o.credentials.ccache = "MEMORY:heka-cachemgr-machine";
  } else {
    o.credentials.ccache = who.ccache;
  }
  o.client_uuid = options_.client_uuid;
  // Connections may outlive this HekaFs (a close observer runs as they go): their callbacks
  // reach it only while it lives.
  o.on_break = [this, life = life_](const pb::BreakRequest& req) {
    std::shared_lock alive(life->mu);
    if (life->alive) OnBreak(req);
  };
  o.on_revalidate = [this, life = life_] {
    std::shared_lock alive(life->mu);
    if (life->alive) OnRevalidate();
  };
  // Locks that moved with their volume: the client for its new server renews them (looked
  // up off the I/O thread, since that asks the VLDB).
  o.on_locks_moved = [this, life = life_, who](std::vector<pb::SetLockRequest> locks,
                                                int64_t lease_ms) {
    std::thread([this, life, who, locks = std::move(locks), lease_ms] {
      std::shared_lock alive(life->mu);
      if (life->alive) AdoptMovedLocks(who, locks, lease_ms);
    }).detach();
  };
  auto client = fs::FileClient::Create(*options_.runtime, o);
  clients_[key] = client;
  return client;
}

void HekaFs::AdoptMovedLocks(const Who& who, const std::vector<pb::SetLockRequest>& locks,
                             int64_t lease_ms) {
  std::map<std::pair<std::string, uint64_t>, std::vector<pb::SetLockRequest>> by_volume;
  for (const pb::SetLockRequest& l : locks) by_volume[{l.fid().cell(), l.fid().volume()}].push_back(l);
  for (const auto& [where, held] : by_volume) {
    ForgetServer(where.first, where.second);
    auto server = ServerOf(where.first, where.second);
    if (!server.ok()) {
      spdlog::warn("{} advisory locks on volume {} moved, but its new server is unknown: {}",
                   held.size(), where.second, server.status().ToString());
      continue;
    }
    ClientFor(who, *server)->Adopt(held, lease_ms);
    spdlog::info("{} advisory locks on volume {} of cell {} now renewed with {}", held.size(),
                 where.second, where.first, server->address);
  }
}

Result<uint64_t> HekaFs::RootVolume(const std::string& cell) {
  {
    std::lock_guard lock(mu_);
    auto it = root_volumes_.find(cell);
    if (it != root_volumes_.end()) return it->second;
  }
  db::GetVolumeRequest req;
  req.set_cell(cell);
  req.set_name("root.cell");
  auto r = options_.runtime->BlockOn(options_.db->GetVolume(req));
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound || r.status().code() == Code::kPermissionDenied) {
      return Error(Code::kNotFound, "no cell '" + cell + "' (or it has no root.cell volume)");
    }
    return r.status();
  }
  NoteReplicated(r->volume());
  std::lock_guard lock(mu_);
  root_volumes_[cell] = r->volume().id();
  return r->volume().id();
}

void HekaFs::NoteReplicated(const db::Volume& v) {
  bool ro = false;
  for (const auto& site : v.sites()) ro |= site.type() == db::VolumeSite::RO;
  std::lock_guard lock(mu_);
  if (ro) {
    replicated_.insert({v.cell(), v.id()});
  } else {
    replicated_.erase({v.cell(), v.id()});
  }
}

uint64_t HekaFs::ReadOnlyIfReplicated(const std::string& cell, uint64_t id) {
  std::lock_guard lock(mu_);
  return replicated_.count({cell, id}) ? id + 1 : id;
}

void HekaFs::SiteDown(const std::string& cell, uint64_t volume, const Server& server) {
  std::lock_guard lock(mu_);
  down_sites_[server.uuid] = std::chrono::steady_clock::now() + kSiteDownFor;
  servers_.erase({cell, volume});
  spdlog::warn("file server {} ({}) does not answer for read-only volume {} of cell {}: trying "
               "its other sites",
               server.address, server.uuid, volume, cell);
}

bool HekaFs::ThroughMove(MoveWait& w, Code code, const std::string& cell, uint64_t volume) {
  if ((code != Code::kVolumeBusy && code != Code::kVolumeMoved) ||
      std::chrono::steady_clock::now() > w.give_up) {
    return false;
  }
  if (code == Code::kVolumeMoved) {
    ForgetServer(cell, volume);
  } else {
    std::this_thread::sleep_for(w.pause);
    w.pause = std::min(w.pause * 2, std::chrono::milliseconds(200));
  }
  return true;
}

void HekaFs::ForgetServer(const std::string& cell, uint64_t volume) {
  std::lock_guard lock(mu_);
  moved_.insert({cell, volume});
  if (servers_.erase({cell, volume}) > 0) {
    spdlog::info("volume {} of cell {} moved: asking the VLDB where it is now", volume, cell);
  }
}

Result<HekaFs::Server> HekaFs::ServerOf(const std::string& cell, uint64_t volume) {
  bool moved = false;
  {
    std::lock_guard lock(mu_);
    auto it = servers_.find({cell, volume});
    if (it != servers_.end()) return it->second;
    moved = moved_.count({cell, volume}) > 0;
  }
  db::GetVolumeRequest req;
  req.set_cell(cell);
  req.set_id(volume);
  // A member of the VLDB may lag behind its leader by a moment; after a move it would still
  // name the old server, so the leader answers then.
  req.mutable_options()->set_leader_only(moved);
  auto v = options_.runtime->BlockOn(options_.db->GetVolume(req));
  if (!v.ok()) return v.status();
  if (moved) {
    std::lock_guard lock(mu_);
    moved_.erase({cell, volume});
  }
  // The instance's sites: RW for the id, RO for id + 1, BK for id + 2 (on the RW's server).
  const uint64_t offset = volume - v->volume().id();
  const auto want = offset == 1 ? db::VolumeSite::RO : offset == 2 ? db::VolumeSite::BK : db::VolumeSite::RW;
  std::vector<std::string> uuids;
  for (const auto& site : v->volume().sites()) {
    if (site.type() == want) uuids.push_back(site.server_uuid());
  }
  if (uuids.empty() && want == db::VolumeSite::BK) {
    for (const auto& site : v->volume().sites()) {
      if (site.type() == db::VolumeSite::RW) uuids.push_back(site.server_uuid());
    }
  }
  if (want == db::VolumeSite::RO) {  // sites that did not answer lately come last
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    std::stable_partition(uuids.begin(), uuids.end(), [&](const std::string& u) {
      auto it = down_sites_.find(u);
      return it == down_sites_.end() || it->second < now;
    });
  }
  auto servers = options_.runtime->BlockOn(options_.db->ListServers(db::ListServersRequest()));
  if (!servers.ok()) return servers.status();
  for (const std::string& uuid : uuids) {
    const db::FileServer* found = nullptr;
    for (const db::FileServer& s : servers->servers()) {
      if (s.uuid() == uuid && s.addresses_size() > 0) found = &s;
    }
    if (found == nullptr) continue;
    const db::FileServer& s = *found;
    Server out;
    out.address = s.addresses(0);
    out.principal = s.principal();
    out.uuid = s.uuid();
    out.read_only = offset != 0;  // id + 1 (RO) or id + 2 (BK)
    out.replica = offset == 1;
    out.encrypted = v->volume().encrypted();
    if (out.encrypted) {
      if (v->volume().key_fingerprint().size() != out.fingerprint.size()) {
        return Error(Code::kIoError, "the VLDB entry of encrypted volume " + std::to_string(volume) +
                                         " has no valid key fingerprint");
      }
      std::memcpy(out.fingerprint.data(), v->volume().key_fingerprint().data(), out.fingerprint.size());
    }
    std::lock_guard lock(mu_);
    servers_[{cell, volume}] = out;
    return out;
  }
  return Error(Code::kUnavailable, "no file server holds volume " + std::to_string(volume));
}

template <typename Rep, typename Req>
Result<Rep> HekaFs::Call(const Who& who, const std::string& cell, uint64_t volume,
                         const std::string& method, const Req& req) {
  if (who.expired) return Expired(who);
  auto server = ServerOf(cell, volume);
  if (!server.ok()) return server.status();
  auto client = ClientFor(who, *server);
  Result<Rep> r = client->CallSync<Rep>(kFile + method, req);
  // A connection that died with its server (a restart) fails the first call on it; reads are
  // safe to send once more on a fresh connection.
  if (!r.ok() && r.status().code() == Code::kUnavailable && Idempotent(method)) {
    r = client->CallSync<Rep>(kFile + method, req);
  }
  // A read-only instance whose server does not answer: another RO site serves the same
  // release (every call on one is a read), and the user does not notice.
  for (int tries = 0; tries < 8 && !r.ok() && server->replica &&
                      (r.status().code() == Code::kUnavailable ||
                       r.status().code() == Code::kDeadlineExceeded ||
                       r.status().code() == Code::kConnectionClosed);
       ++tries) {
    const Server down = *server;
    SiteDown(cell, volume, down);
    server = ServerOf(cell, volume);
    if (!server.ok()) return server.status();
    if (server->uuid == down.uuid) break;  // no other site
    client = ClientFor(who, *server);
    r = client->CallSync<Rep>(kFile + method, req);
  }
  // A volume being moved: busy during the move's short freeze (ask again shortly), then moved
  // (ask the VLDB where it is now). Both answers come before any change is made, so any call
  // may be sent again, except the parts of a store, which StoreDirty begins again.
  const bool store_part = method == "StoreData" || method == "CommitStore" || method == "AbortStore";
  MoveWait moving;
  while (!r.ok() && !store_part && ThroughMove(moving, r.status().code(), cell, volume)) {
    server = ServerOf(cell, volume);
    if (!server.ok()) return server.status();
    client = ClientFor(who, *server);
    r = client->CallSync<Rep>(kFile + method, req);
  }
  if (r.ok() && server->encrypted) PlainSizes(&*r);
  if (!r.ok() && !who.ccache.empty()) {
    switch (r.status().code()) {
      case Code::kCredentialsExpired:
      case Code::kContextExpired:
      case Code::kBadServerKey:
      case Code::kAuthFailed:
      case Code::kNoCredentials:
        return CredentialsRefused(who, server->principal, r.status());
      default:
        break;
    }
  }
  return r;
}

Status HekaFs::CredentialsRefused(const Who& who, const std::string& server, Status s) {
  options_.resolver->Recheck(who.uid);
  {
    std::lock_guard lock(mu_);
    // One line per kinit, not one per request.
    if (expired_logged_.insert({who.uid, who.ticket_end}).second) {
      spdlog::warn("uid {}: {} refused the ticket of {} from {} ({}): access denied until kinit",
                   who.uid, server, who.principal, who.source, s.ToString());
    }
  }
  // A server key the user's ticket does not match is, from here, a ticket from an earlier
  // incarnation of the realm (the machine's own connections would fail too otherwise).
  if (s.code() == Code::kBadServerKey) {
    return Error(Code::kAuthFailed, "the ticket of " + who.principal + " from " + who.source +
                                        " was refused by " + server + ": run kinit again");
  }
  return s;
}

// ---- Owners as local users ----------------------------------------------------------------

namespace {

// The local user a principal maps to (krb5_aname_to_localname, then the password file).
uid_t MapPrincipal(const std::string& principal) {
  krb5_context ctx = nullptr;
  if (krb5_init_context(&ctx) != 0) return HekaFs::kNobody;
  uid_t uid = HekaFs::kNobody;
  krb5_principal p = nullptr;
  if (krb5_parse_name(ctx, principal.c_str(), &p) == 0) {
    char name[256];
    if (krb5_aname_to_localname(ctx, p, sizeof name, name) == 0) {
      struct passwd pw, *found = nullptr;
      std::vector<char> buf(16384);
      if (getpwnam_r(name, &pw, buf.data(), buf.size(), &found) == 0 && found) uid = pw.pw_uid;
    }
    krb5_free_principal(ctx, p);
  }
  krb5_free_context(ctx);
  return uid;
}

}  // namespace

std::shared_ptr<db::DbClient> HekaFs::DbFor(const Who& who) {
  std::lock_guard lock(mu_);
  KinitDb& db = user_dbs_[who.ccache];
  if (!db.client || db.kinit != who.Kinit()) {
    db::DbClientOptions o;
    o.members = *db::ParseMembers(options_.config->dbservers);
    o.credentials.ccache = who.ccache;
    db = KinitDb{who.Kinit(), std::make_shared<db::DbClient>(*options_.runtime, o)};
  }
  return db.client;
}

int64_t HekaFs::SelfId(const Who& who, const std::string& cell) {
  if (who.principal.empty() || who.expired) return 0;
  {
    std::lock_guard lock(mu_);
    auto it = self_ids_.find({cell, who.principal});
    if (it != self_ids_.end()) return it->second;
  }
  db::GetCpsRequest req;
  req.set_cell(cell);
  req.set_principal(who.principal);
  auto db = DbFor(who);
  auto r = options_.runtime->BlockOn(db->GetCps(req));
  if (!r.ok()) return 0;
  std::lock_guard lock(mu_);
  self_ids_[{cell, who.principal}] = r->user_id();
  return r->user_id();
}

uid_t HekaFs::LocalUid(const Who& who, const std::string& cell, int64_t owner) {
  if (owner <= 0) return kNobody;
  // The caller's own files are the caller's, whatever local name its principal maps to.
  if (owner == SelfId(who, cell)) return who.uid;
  {
    std::lock_guard lock(mu_);
    auto it = owners_.find({cell, owner});
    if (it != owners_.end()) return it->second;
  }
  // PTDB entries are for the cell's users to read: ask with the caller's own ticket.
  if (who.ccache.empty() || who.expired) return kNobody;
  db::GetEntryRequest req;
  req.set_cell(cell);
  req.set_id(owner);
  auto db = DbFor(who);
  auto r = options_.runtime->BlockOn(db->GetEntry(req));
  if (!r.ok() && r.status().code() != Code::kNotFound) return kNobody;  // ask again later
  uid_t uid = r.ok() && !r->entry().principal().empty() ? MapPrincipal(r->entry().principal())
                                                        : kNobody;
  std::lock_guard lock(mu_);
  owners_[{cell, owner}] = uid;
  return uid;
}

// ---- Inodes and the cache ------------------------------------------------------------------

uint64_t HekaFs::InoOf(const pb::Fid& fid) {
  std::lock_guard lock(mu_);
  auto key = std::make_tuple(fid.cell(), fid.volume(), fid.vnode(), fid.uniq());
  auto it = inos_.find(key);
  if (it != inos_.end()) return it->second;
  uint64_t ino = next_ino_++;
  inos_[key] = ino;
  fids_[ino] = fid;
  return ino;
}

Result<pb::Fid> HekaFs::FidOf(uint64_t ino) {
  std::lock_guard lock(mu_);
  auto it = fids_.find(ino);
  if (it == fids_.end()) return Error(Code::kStaleFid, "unknown inode " + std::to_string(ino));
  return it->second;
}

void HekaFs::Remember(const Who& who, const pb::FileStatus& st, int64_t callback_expires,
                      uint64_t breaks_before) {
  uint64_t ino = InoOf(st.fid());
  std::lock_guard lock(mu_);
  auto& node = nodes_[ino];
  if (!node) node = std::make_unique<Node>();
  if (node->status.data_version() != st.data_version() || !node->valid) {
    node->entries.clear();
    node->listed = false;
  }
  // Chunks belong to a data version: those of an unchanged version stay good; those of an
  // old one go, unless the file is open (a handle may still be reading that version; the LRU
  // takes them later).
  if (node->status.has_fid() && node->status.data_version() != st.data_version()) {
    bool open = std::any_of(handles_.begin(), handles_.end(),
                            [&](const auto& kv) { return kv.second->ino == ino; });
    if (!open) chunk_cache_->Drop(FileKeyOf(st.fid()));
  }
  node->status = st;
  node->rights[who.principal] = st.caller_rights();
  // A break that arrived while the answer was on its way may be about this very object (and
  // be older than it, or newer): such an answer is not trusted to stay valid.
  bool raced = breaks_before != kNoBreakCheck && breaks_.load() != breaks_before;
  if (callback_expires > 0 && !raced) {
    node->valid = true;
    node->expires_ns = std::max(node->expires_ns, callback_expires);
  }
}

Result<pb::FileStatus> HekaFs::StatusOf(const Who& who, uint64_t ino) {
  if (who.expired) return Expired(who);  // nothing from the cache either
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end()) {
      Node& n = *it->second;
      if (n.Fresh() && n.rights.count(who.principal)) return n.status;
      generation = n.generation;
    }
  }
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::FetchStatusRequest req;
  *req.mutable_fid() = *fid;
  uint64_t breaks = breaks_.load();
  auto r = Call<pb::FetchStatusReply>(who, fid->cell(), fid->volume(), "FetchStatus", req);
  if (!r.ok()) return r.status();
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    // A break that arrived while we asked makes this answer untrustworthy for the cache.
    if (it != nodes_.end() && it->second->generation != generation) {
      it->second->rights[who.principal] = r->status().caller_rights();
      return r->status();
    }
  }
  Remember(who, r->status(), r->callback().expires_ns(), breaks);
  return r->status();
}

uint32_t HekaFs::RightsOf(const Who& who, uint64_t ino) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return 0;
  auto r = it->second->rights.find(who.principal);
  return r == it->second->rights.end() ? 0 : r->second;
}

double HekaFs::Timeout(const pb::FileStatus& st) const {
  if (options_.config->private_mount) return kLongTimeout;
  // A shared mount lets the kernel answer without asking us only for what everybody may see.
  return (st.anyuser_rights() & kL) ? kLongTimeout : 0.0;
}

struct stat HekaFs::StatOf(const Who& who, const pb::FileStatus& st, uint64_t ino) {
  struct stat s {};
  s.st_ino = ino;
  s.st_mode = TypeBits(st.type()) | (st.mode() & 07777);
  s.st_uid = LocalUid(who, st.fid().cell(), st.owner());
  s.st_gid = kNobody;
  s.st_nlink = st.link_count() == 0 ? 1 : st.link_count();
  s.st_size = static_cast<off_t>(st.size());
  s.st_blksize = 4096;
  s.st_blocks = static_cast<blkcnt_t>((st.size() + 511) / 512);
  s.st_mtim.tv_sec = st.mtime_ns() / 1000000000;
  s.st_mtim.tv_nsec = st.mtime_ns() % 1000000000;
  s.st_atim = s.st_mtim;
  s.st_ctim.tv_sec = st.ctime_ns() / 1000000000;
  s.st_ctim.tv_nsec = st.ctime_ns() % 1000000000;
  return s;
}

EntryOut HekaFs::EntryFor(const Who& who, const pb::FileStatus& st) {
  EntryOut e;
  e.ino = InoOf(st.fid());
  e.fid = st.fid();
  e.st = StatOf(who, st, e.ino);
  e.entry_timeout = Timeout(st);
  e.attr_timeout = Timeout(st);
  return e;
}

void HekaFs::Forget(const pb::Fid& fid) {
  uint64_t ino = InoOf(fid);
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  it->second->valid = false;
  ++it->second->generation;
}

// ---- Callbacks -------------------------------------------------------------------------------

void HekaFs::OnBreak(const pb::BreakRequest& req) {
  ++breaks_;  // before anything: answers already on their way are not trusted
  if (req.all()) {
    OnRevalidate();
    return;
  }
  std::vector<std::pair<uint64_t, std::string>> inval;
  {
    std::lock_guard lock(mu_);
    for (const pb::Fid& fid : req.fids()) {
      auto key = std::make_tuple(fid.cell(), fid.volume(), fid.vnode(), fid.uniq());
      auto ino_it = inos_.find(key);
      if (ino_it == inos_.end()) continue;
      uint64_t ino = ino_it->second;
      auto it = nodes_.find(ino);
      if (it == nodes_.end()) continue;
      Node& n = *it->second;
      n.Invalidate(ino, &inval);
      if (n.status.type() == pb::DIRECTORY) {
        // Its ACL may have changed: the rights of what it holds must be asked again.
        for (auto& [child_ino, child] : nodes_) {
          if (child->status.fid().volume() == fid.volume() &&
              child->status.parent_vnode() == fid.vnode() && child_ino != ino) {
            child->rights.clear();
          }
        }
      }
    }
  }
  QueueInvalidations(std::move(inval));
}

void HekaFs::QueueInvalidations(std::vector<std::pair<uint64_t, std::string>> inval) {
  if (inval.empty()) return;
  {
    std::lock_guard lock(inval_mu_);
    for (auto& i : inval) inval_queue_.push_back(std::move(i));
  }
  inval_cv_.notify_one();
}

void HekaFs::OnRevalidate() {
  ++breaks_;
  std::vector<std::pair<uint64_t, std::string>> inval;
  {
    std::lock_guard lock(mu_);
    for (auto& [ino, n] : nodes_) {
      if (n->valid) n->Invalidate(ino, &inval, /*listing=*/false);
    }
  }
  spdlog::info("revalidating {} cached objects", inval.size());
  QueueInvalidations(std::move(inval));
}

void HekaFs::InvalidationLoop() {
  for (;;) {
    std::pair<uint64_t, std::string> item;
    {
      std::unique_lock lock(inval_mu_);
      inval_cv_.wait(lock, [&] { return stopping_ || !inval_queue_.empty(); });
      if (stopping_) return;
      item = std::move(inval_queue_.front());
      inval_queue_.pop_front();
    }
    if (item.second.empty()) {
      if (inval_inode) inval_inode(item.first);
    } else if (inval_entry) {
      inval_entry(item.first, item.second);
    }
  }
}

// ---- Namespace -------------------------------------------------------------------------------

Result<pb::Fid> HekaFs::LookupFid(const Who& who, uint64_t parent, const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(parent);
    if (it != nodes_.end() && it->second->Fresh()) {
      auto e = it->second->entries.find(name);
      if (e != it->second->entries.end()) return e->second;
      if (it->second->listed) return Error(Code::kNotFound, "no such file or directory");
    }
  }
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  pb::LookupRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  uint64_t breaks = breaks_.load();
  auto r = Call<pb::LookupReply>(who, dir->cell(), dir->volume(), "Lookup", req);
  if (!r.ok()) return r.status();
  Remember(who, r->status(), r->callback().expires_ns(), breaks);
  std::lock_guard lock(mu_);
  auto it = nodes_.find(parent);
  if (it != nodes_.end() && it->second->Fresh()) it->second->entries[name] = r->status().fid();
  return r->status().fid();
}

Result<EntryOut> HekaFs::Lookup(const Caller& c, uint64_t parent, const std::string& name) {
  auto e = LookupAs(WhoIs(c), parent, name);
  if (!e.ok()) return e.status();
  return Reference(*e);
}

Result<EntryOut> HekaFs::LookupAs(const Who& who, uint64_t parent, const std::string& name) {
  pb::Fid fid;
  if (parent == kRootIno) {
    // "<cell>": the cell's root.cell, read-only if it is replicated (AFS); ".<cell>": its
    // read-write instance, where changes are made before a vos release.
    const bool rw_path = name.size() > 1 && name[0] == '.';
    const std::string cell = rw_path ? name.substr(1) : name;
    auto volume = RootVolume(cell);
    if (!volume.ok()) return volume.status();
    fid.set_cell(cell);
    fid.set_volume(rw_path ? *volume : ReadOnlyIfReplicated(cell, *volume));
    fid.set_vnode(1);
    fid.set_uniq(1);
  } else {
    auto dir = StatusOf(who, parent);
    if (!dir.ok()) return dir.status();
    if (dir->type() != pb::DIRECTORY) return Error(Code::kNotDirectory, "not a directory");
    if (!(dir->caller_rights() & kL)) return Error(Code::kPermissionDenied, "no l right");
    auto found = LookupFid(who, parent, name);
    if (!found.ok()) return found.status();
    fid = *found;
  }
  uint64_t ino = InoOf(fid);
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  if (parent != kRootIno && st->type() == pb::SYMLINK) {
    if (auto root = MountRootOf(who, ino, *st)) {  // a mount point shows the other volume
      ino = InoOf(*root);
      st = StatusOf(who, ino);
      if (!st.ok()) return st.status();
    }
  }
  if (parent != kRootIno) {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(parent);
    if (it != nodes_.end()) it->second->kernel_names.insert(name);
  }
  EntryOut e = EntryFor(who, *st);
  // Unstored writes show in the size here too: the kernel takes a lookup's size as the
  // file's, and an O_APPEND write of another process would land on the unstored bytes.
  ApplyPendingSize(e.ino, e.st, st->data_version());
  return e;
}

Result<AttrOut> HekaFs::GetAttr(const Caller& c, uint64_t ino) {
  AttrOut out;
  if (ino == kRootIno) {
    out.st.st_ino = kRootIno;
    out.st.st_mode = S_IFDIR | 0755;
    out.st.st_nlink = 2;
    out.timeout = 1.0;
    return out;
  }
  Who who = WhoIs(c);
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  out.st = StatOf(who, *st, ino);
  out.timeout = Timeout(*st);
  ApplyPendingSize(ino, out.st, st->data_version());
  return out;
}

void HekaFs::ApplyPendingSize(uint64_t ino, struct stat& st, uint64_t data_version) {
  for (const auto& h : HandlesOf(ino)) {
    std::lock_guard hl(h->mu);  // waits for a store of this handle in progress
    if (h->Pending()) {
      st.st_size = static_cast<off_t>(h->size);
      return;
    }
  }
  // A store that committed while `st` was being found (the wait above) made a newer version:
  // its size is the file's. An older one would make the next O_APPEND write of another
  // process land on what that store wrote.
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second->status.data_version() > data_version) {
    st.st_size = static_cast<off_t>(it->second->status.size());
  }
}

Result<std::vector<DirEntryOut>> HekaFs::ReadDir(const Caller& c, uint64_t ino) {
  std::vector<DirEntryOut> out;
  if (ino == kRootIno) {
    for (const std::string& cell : options_.config->cells) {
      auto volume = RootVolume(cell);
      if (!volume.ok()) continue;
      pb::Fid fid;
      fid.set_cell(cell);
      fid.set_volume(ReadOnlyIfReplicated(cell, *volume));
      fid.set_vnode(1);
      fid.set_uniq(1);
      out.push_back(DirEntryOut{cell, InoOf(fid), S_IFDIR, {}});
      fid.set_volume(*volume);
      out.push_back(DirEntryOut{"." + cell, InoOf(fid), S_IFDIR, {}});
    }
    return out;
  }
  Who who = WhoIs(c);
  auto listing = ListAs(who, ino);
  if (!listing.ok()) return listing.status();
  for (const auto& [name, fid] : *listing) out.push_back(DirEntryOut{name, InoOf(fid), 0, {}});
  return out;
}

Result<std::map<std::string, pb::Fid>> HekaFs::ListAs(const Who& who, uint64_t ino) {
  auto dir = StatusOf(who, ino);
  if (!dir.ok()) return dir.status();
  if (dir->type() != pb::DIRECTORY) return Error(Code::kNotDirectory, "not a directory");
  if (!(dir->caller_rights() & kL)) return Error(Code::kPermissionDenied, "no l right");
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end() && it->second->Fresh() && it->second->listed) {
      return it->second->entries;
    }
    if (it != nodes_.end()) generation = it->second->generation;
  }
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  std::map<std::string, pb::Fid> listing;
  std::string after;
  auto encrypted = Encrypted(fid->cell(), fid->volume());
  if (!encrypted.ok()) return encrypted.status();
  std::shared_ptr<const crypto::CellKey> key;
  crypto::Id dir_id{};
  if (*encrypted) {
    auto k = VolumeKey(fid->cell(), fid->volume());
    if (!k.ok()) return k.status();
    key = *k;
    auto id = DirId(*dir);
    if (!id.ok()) return id.status();
    dir_id = *id;
  }
  uint64_t undecryptable = 0;
  for (;;) {
    pb::ListDirRequest req;
    *req.mutable_dir() = *fid;
    req.set_after(after);
    req.set_limit(4096);
    auto r = Call<pb::ListDirReply>(who, fid->cell(), fid->volume(), "ListDir", req);
    if (!r.ok()) return r.status();
    for (const auto& e : r->entries()) {
      if (!key) {
        listing[e.name()] = e.fid();
        continue;
      }
      auto name = crypto::OpenName(*key, dir_id, e.name());
      if (name.ok() && !name->empty() && name->size() <= 255 &&
          name->find_first_of(std::string_view("/\0", 2)) == std::string::npos && *name != "." &&
          *name != "..") {
        listing[*name] = e.fid();
      } else {
        ++undecryptable;
      }
    }
    if (r->entries_size() > 0) after = r->entries(r->entries_size() - 1).name();
    if (r->done()) break;
  }
  if (undecryptable > 0) {
    spdlog::warn("directory {}.{}.{} of cell {}: {} names do not decrypt with the cell key "
                 "(damaged or tampered on the server): left out of the listing",
                 fid->volume(), fid->vnode(), fid->uniq(), fid->cell(), undecryptable);
  }
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second->Fresh() && it->second->generation == generation) {
    it->second->entries = listing;
    it->second->listed = true;
  }
  return listing;
}

Result<std::vector<DirEntryOut>> HekaFs::ReadDirPlus(const Caller& c, uint64_t ino) {
  if (ino == kRootIno) return ReadDir(c, ino);  // the cells: the kernel looks them up
  Who who = WhoIs(c);
  auto listing = ListAs(who, ino);
  if (!listing.ok()) return listing.status();
  auto dir = FidOf(ino);
  if (!dir.ok()) return dir.status();
  // Statuses from the cache where `who`'s rights on them are confirmed; the rest in batches.
  std::map<std::string, pb::FileStatus> statuses;
  std::vector<std::pair<std::string, pb::Fid>> ask;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, fid] : *listing) {
      auto i = inos_.find(std::make_tuple(fid.cell(), fid.volume(), fid.vnode(), fid.uniq()));
      auto n = i == inos_.end() ? nodes_.end() : nodes_.find(i->second);
      if (n != nodes_.end() && n->second->Fresh() && n->second->rights.count(who.principal)) {
        statuses[name] = n->second->status;
      } else {
        ask.emplace_back(name, fid);
      }
    }
  }
  constexpr size_t kBatch = 1024;  // the file server's limit per BulkStatus
  for (size_t start = 0; start < ask.size(); start += kBatch) {
    size_t end = std::min(ask.size(), start + kBatch);
    pb::BulkStatusRequest req;
    for (size_t i = start; i < end; ++i) *req.add_fids() = ask[i].second;
    uint64_t breaks = breaks_.load();
    auto r = Call<pb::BulkStatusReply>(who, dir->cell(), dir->volume(), "BulkStatus", req);
    if (!r.ok()) break;  // the kernel looks the rest up one by one
    for (int k = 0; k < r->items_size() && start + k < end; ++k) {
      const pb::BulkStatusItem& item = r->items(k);
      if (item.code() != static_cast<uint32_t>(Code::kOk)) continue;
      Remember(who, item.status(), item.callback().expires_ns(), breaks);
      statuses[ask[start + k].first] = item.status();
    }
  }
  std::vector<DirEntryOut> out;
  std::vector<std::string> attributed;
  for (const auto& [name, fid] : *listing) {
    DirEntryOut d{name, InoOf(fid), 0, {}};
    auto st = statuses.find(name);
    bool mount_point = st != statuses.end() && st->second.type() == pb::SYMLINK &&
                       (st->second.mode() & 07777) == kMountPointMode;
    if (st != statuses.end() && !mount_point) {
      EntryOut e = EntryFor(who, st->second);
      ApplyPendingSize(e.ino, e.st, st->second.data_version());
      d.ino = e.ino;
      d.type = e.st.st_mode & S_IFMT;
      d.entry = std::move(e);
      attributed.push_back(name);
    }
    out.push_back(std::move(d));
  }
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) it->second->kernel_names.insert(attributed.begin(), attributed.end());
  return out;
}

// ---- Kernel references -------------------------------------------------------------------------

EntryOut HekaFs::Reference(EntryOut e) {
  std::lock_guard lock(mu_);
  auto key = std::make_tuple(e.fid.cell(), e.fid.volume(), e.fid.vnode(), e.fid.uniq());
  auto it = inos_.find(key);
  if (it == inos_.end()) {  // forgotten since: its number comes back (numbers are not reused)
    inos_[key] = e.ino;
    fids_[e.ino] = e.fid;
  } else if (it->second != e.ino) {  // forgotten and numbered anew since: use the new number
    e.ino = it->second;
    e.st.st_ino = static_cast<ino_t>(e.ino);
  }
  ++lookups_[e.ino];
  return e;
}

void HekaFs::ForgetInode(uint64_t ino, uint64_t n) {
  if (ino == kRootIno) return;
  std::lock_guard lock(mu_);
  auto it = lookups_.find(ino);
  if (it == lookups_.end()) return;
  if (it->second > n) {
    it->second -= n;
    return;
  }
  lookups_.erase(it);
  for (const auto& [fh, h] : handles_) {
    if (h->ino == ino) return;  // still open (the kernel forgets after release; be safe)
  }
  for (const auto& [locked_ino, owner] : lockers_) {
    if (locked_ino == ino) return;
  }
  auto f = fids_.find(ino);
  if (f != fids_.end()) {
    auto key = std::make_tuple(f->second.cell(), f->second.volume(), f->second.vnode(),
                               f->second.uniq());
    auto k = inos_.find(key);
    if (k != inos_.end() && k->second == ino) inos_.erase(k);
    fids_.erase(f);
  }
  nodes_.erase(ino);
}

HekaFs::CacheStats HekaFs::Stats() {
  CacheStats out;
  out.chunks = chunk_cache_->Usage();
  std::lock_guard lock(mu_);
  out.kernel_inodes = lookups_.size();
  out.objects = nodes_.size();
  return out;
}

Result<std::string> HekaFs::ReadLink(const Caller& c, uint64_t ino) {
  return ReadLinkAs(WhoIs(c), ino);
}

Result<std::string> HekaFs::ReadLinkAs(const Who& who, uint64_t ino) {
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  if (st->type() != pb::SYMLINK) return Error(Code::kInvalidArgument, "not a symlink");
  auto raw = RawLinkTarget(who, ino, *st);
  if (!raw.ok()) return raw.status();
  auto encrypted = Encrypted(st->fid().cell(), st->fid().volume());
  if (!encrypted.ok()) return encrypted.status();
  auto attr = crypto::DecodeAttr(st->client_attr());
  if (!*encrypted) {
    if (attr.ok() && *attr) return DowngradeRefused(st->fid());
    return raw;
  }
  if (!attr.ok()) return attr.status();
  if (!*attr) {
    // Mount points carry no attribute and a plain target; nothing else may.
    bool mount_point = (st->mode() & 07777) == kMountPointMode && !raw->empty() &&
                       ((*raw)[0] == '#' || (*raw)[0] == '%');
    if (mount_point) return raw;
    return Error(Code::kIoError, "a symlink of an encrypted volume without its attribute");
  }
  if ((*attr)->kind != crypto::Kind::kSymlink) return Error(Code::kIoError, "not a symlink's attribute");
  auto key = VolumeKey(st->fid().cell(), st->fid().volume());
  if (!key.ok()) return key.status();
  auto target = crypto::OpenTarget(**key, (*attr)->id, *raw);
  if (!target.ok()) {
    spdlog::warn("symlink {}.{}.{} of cell {}: {}", st->fid().volume(), st->fid().vnode(),
                 st->fid().uniq(), st->fid().cell(), target.status().message());
  }
  return target;
}

Result<std::string> HekaFs::RawLinkTarget(const Who& who, uint64_t ino, const pb::FileStatus& status) {
  const pb::FileStatus* st = &status;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end() && it->second->Fresh()) {
      auto target = chunk_cache_->Get(FileKeyOf(st->fid()), it->second->status.data_version(), 0);
      if (target) return *target;
    }
  }
  pb::FetchDataRequest req;
  *req.mutable_fid() = st->fid();
  req.set_length(65536);
  uint64_t breaks = breaks_.load();
  auto r = Call<pb::FetchDataReply>(who, st->fid().cell(), st->fid().volume(), "FetchData", req);
  if (!r.ok()) return r.status();
  Remember(who, r->status(), r->callback().expires_ns(), breaks);
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second->Fresh() &&
      it->second->status.data_version() == r->status().data_version()) {
    chunk_cache_->Put(FileKeyOf(st->fid()), r->status().data_version(), 0, r->data());
  }
  return r->data();
}

Result<struct statvfs> HekaFs::StatFs(const Caller& c, uint64_t ino) {
  struct statvfs out {};
  out.f_bsize = out.f_frsize = 4096;
  out.f_namemax = 1024;
  if (ino == kRootIno) return out;
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  pb::GetVolumeStatusRequest req;
  req.set_cell(fid->cell());
  req.set_volume(fid->volume());
  auto r = Call<pb::GetVolumeStatusReply>(WhoIs(c), fid->cell(), fid->volume(), "GetVolumeStatus",
                                          req);
  if (!r.ok()) return r.status();
  const pb::VolumeStatus& v = r->status();
  uint64_t total = v.quota_bytes() != 0 ? v.quota_bytes() : v.usage_bytes() + v.partition_free_bytes();
  uint64_t free = total > v.usage_bytes() ? total - v.usage_bytes() : 0;
  if (v.quota_bytes() != 0) free = std::min(free, v.partition_free_bytes());
  out.f_blocks = total / 4096;
  out.f_bfree = out.f_bavail = free / 4096;
  out.f_files = v.files() + 1000000;
  out.f_ffree = out.f_favail = 1000000;
  return out;
}

// ---- Changes ---------------------------------------------------------------------------------

void HekaFs::OwnChange(uint64_t dir_ino, const pb::FileStatus* dir_status,
                       const std::string& name, const pb::Fid* fid) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(dir_ino);
  if (it == nodes_.end()) return;
  Node& dir = *it->second;
  if (dir_status) dir.status = *dir_status;
  if (fid) {
    dir.entries[name] = *fid;
    dir.kernel_names.insert(name);
  } else {
    dir.entries.erase(name);
  }
}

Result<EntryOut> HekaFs::Created(const Who& who, uint64_t parent, const std::string& name,
                                 const pb::CreateReply& r) {
  Remember(who, r.status(), r.callback().expires_ns(), kNoBreakCheck);  // ours, just made
  OwnChange(parent, r.has_dir_status() ? &r.dir_status() : nullptr, name, &r.status().fid());
  if (r.status().type() == pb::DIRECTORY) {
    // A directory this cache manager just made is empty, and its promise says it stays so
    // until a break: names looked up in it (untar, make) need not go to the server.
    std::lock_guard lock(mu_);
    auto it = inos_.find(std::make_tuple(r.status().fid().cell(), r.status().fid().volume(),
                                         r.status().fid().vnode(), r.status().fid().uniq()));
    auto n = it == inos_.end() ? nodes_.end() : nodes_.find(it->second);
    if (n != nodes_.end() && n->second->Fresh() && n->second->entries.empty()) {
      n->second->listed = true;
    }
  }
  return EntryFor(who, r.status());
}

Result<EntryOut> HekaFs::MkDir(const Caller& c, uint64_t parent, const std::string& name,
                               mode_t mode) {
  Who who = WhoIs(c);
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  auto fresh = NewVnodeIn(*dir, pb::DIRECTORY, nullptr, mode);
  if (!fresh.ok()) return fresh.status();
  pb::CreateRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  req.set_mode(mode & 07777);
  req.set_client_attr(fresh->client_attr);
  auto r = Call<pb::CreateReply>(who, dir->cell(), dir->volume(), "MakeDir", req);
  if (!r.ok()) return r.status();
  auto e = Created(who, parent, name, *r);
  if (!e.ok()) return e.status();
  return Reference(*e);
}

Result<EntryOut> HekaFs::Symlink(const Caller& c, uint64_t parent, const std::string& name,
                                 const std::string& target) {
  // 0777: a symlink made through the mount is never taken for a mount point (0644).
  auto e = MakeSymlink(WhoIs(c), parent, name, target, 0777);
  if (!e.ok()) return e.status();
  return Reference(*e);
}

Result<EntryOut> HekaFs::MakeSymlink(const Who& who, uint64_t parent, const std::string& name,
                                     const std::string& target, mode_t mode) {
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  std::string stored_target = target;
  auto fresh = NewVnodeIn(*dir, pb::SYMLINK, &stored_target, mode);
  if (!fresh.ok()) return fresh.status();
  pb::CreateRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  req.set_target(stored_target);
  req.set_mode(mode & 07777);
  req.set_client_attr(fresh->client_attr);
  auto r = Call<pb::CreateReply>(who, dir->cell(), dir->volume(), "Symlink", req);
  if (!r.ok()) return r.status();
  return Created(who, parent, name, *r);
}

Result<EntryOut> HekaFs::Link(const Caller& c, uint64_t ino, uint64_t parent,
                              const std::string& name) {
  Who who = WhoIs(c);
  auto dir = FidOf(parent);
  auto target = FidOf(ino);
  if (!dir.ok()) return dir.status();
  if (!target.ok()) return target.status();
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  pb::LinkRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  *req.mutable_target() = *target;
  auto r = Call<pb::CreateReply>(who, dir->cell(), dir->volume(), "Link", req);
  if (!r.ok()) return r.status();
  auto e = Created(who, parent, name, *r);
  if (!e.ok()) return e.status();
  return Reference(*e);
}

Status HekaFs::RemoveEntry(const Caller& c, uint64_t parent, const std::string& name,
                           const std::string& method) {
  Who who = WhoIs(c);
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto victim = LookupFid(who, parent, name);
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  pb::RemoveRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  auto r = Call<pb::RemoveReply>(who, dir->cell(), dir->volume(), method, req);
  if (!r.ok()) return r.status();
  if (victim.ok()) Forget(*victim);
  OwnChange(parent, r->has_dir_status() ? &r->dir_status() : nullptr, name, nullptr);
  return Status::Ok();
}

Status HekaFs::Unlink(const Caller& c, uint64_t parent, const std::string& name) {
  return RemoveEntry(c, parent, name, "Remove");
}

Status HekaFs::RmDir(const Caller& c, uint64_t parent, const std::string& name) {
  return RemoveEntry(c, parent, name, "RemoveDir");
}

Status HekaFs::Rename(const Caller& c, uint64_t parent, const std::string& name,
                      uint64_t new_parent, const std::string& new_name) {
  Who who = WhoIs(c);
  auto src = FidOf(parent);
  auto dst = FidOf(new_parent);
  if (!src.ok()) return src.status();
  if (!dst.ok()) return dst.status();
  auto moving = LookupFid(who, parent, name);
  auto replaced = LookupFid(who, new_parent, new_name);
  auto src_wire = WireName(who, parent, name);
  if (!src_wire.ok()) return src_wire.status();
  auto dst_wire = WireName(who, new_parent, new_name);
  if (!dst_wire.ok()) return dst_wire.status();
  pb::RenameRequest req;
  *req.mutable_src_dir() = *src;
  req.set_src_name(*src_wire);
  *req.mutable_dst_dir() = *dst;
  req.set_dst_name(*dst_wire);
  auto r = Call<pb::RenameReply>(who, src->cell(), src->volume(), "Rename", req);
  if (!r.ok()) return r.status();
  if (moving.ok()) Forget(*moving);  // its parent changed
  if (replaced.ok()) Forget(*replaced);
  OwnChange(parent, r->has_src_dir_status() ? &r->src_dir_status() : nullptr, name, nullptr);
  if (moving.ok()) {
    OwnChange(new_parent, r->has_dst_dir_status() ? &r->dst_dir_status() : nullptr, new_name,
              &*moving);
  } else {  // we do not know what moved: the target directory's listing is unknown now
    std::lock_guard lock(mu_);
    auto d = nodes_.find(new_parent);
    if (d != nodes_.end()) {
      if (r->has_dst_dir_status()) d->second->status = r->dst_dir_status();
      d->second->entries.clear();
      d->second->listed = false;
      d->second->kernel_names.insert(new_name);
    }
  }
  return Status::Ok();
}

Result<AttrOut> HekaFs::SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in,
                                std::optional<uint64_t> fh) {
  // Owner and group are the file server's business (chown is accepted without effect), as
  // is atime: nothing to ask the server.
  if (!in.mode && !in.size && !in.mtime_ns) return GetAttr(c, ino);
  Who who = WhoIs(c);
  if (in.size && fh) {
    // Truncating an open file: stores what it wrote first, so the truncation applies last.
    Status s = Flush(*fh);
    if (!s.ok()) return s;
  }
  auto fid = FidOf(ino);
  if (!fid.ok()) return fid.status();
  auto encrypted = Encrypted(fid->cell(), fid->volume());
  if (!encrypted.ok()) return encrypted.status();
  Result<pb::SetAttrReply> r = Error(Code::kInternal, "no change");
  if (in.size && *encrypted) {
    // Sealed blocks cannot be cut by the server: the last one is sealed again (a store).
    auto st = TruncateEncrypted(who, ino, *in.size);
    if (!st.ok()) return st.status();
    r = pb::SetAttrReply();
    *r->mutable_status() = *st;
  }
  if (in.mode || in.mtime_ns || (in.size && !*encrypted)) {
    pb::SetAttrRequest req;
    *req.mutable_fid() = *fid;
    if (in.mode) req.set_mode(*in.mode & 07777);
    if (in.size && !*encrypted) req.set_size(*in.size);
    if (in.mtime_ns) req.set_mtime_ns(*in.mtime_ns);
    r = Call<pb::SetAttrReply>(who, fid->cell(), fid->volume(), "SetAttr", req);
  }
  if (!r.ok()) return r.status();
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end()) {
      if (it->second->status.data_version() != r->status().data_version()) {
        chunk_cache_->Drop(FileKeyOf(*fid));
      }
      it->second->status = r->status();
      it->second->rights[who.principal] = r->status().caller_rights();
    }
  }
  if (in.size) {
    // The truncation made a new version: every open handle reads (and writes onto) that one.
    for (const auto& h : HandlesOf(ino)) {
      std::lock_guard hl(h->mu);
      h->size = h->base_size = *in.size;
      h->version = r->status().data_version();
      h->memo.reset();
      h->served = false;
    }
  }
  AttrOut out;
  out.st = StatOf(who, r->status(), ino);
  out.timeout = Timeout(r->status());
  return out;
}

Status HekaFs::SetLock(uint64_t fh, uint64_t owner, bool exclusive, bool unlock, uint64_t start,
                       uint64_t length, bool wait, const std::function<bool()>& interrupted) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return Error(Code::kInvalidArgument, "bad file handle");
    h = it->second;
  }
  auto server = ServerOf(h->fid.cell(), h->fid.volume());
  if (!server.ok()) return server.status();
  auto client = ClientFor(h->who, *server);
  // Through a move of the volume: wait while it is frozen, follow it when it moved.
  MoveWait moving;
  auto follow = [&](const Status& s) {
    if (!ThroughMove(moving, s.code(), h->fid.cell(), h->fid.volume())) return false;
    server = ServerOf(h->fid.cell(), h->fid.volume());
    if (!server.ok()) return false;
    client = ClientFor(h->who, *server);
    return true;
  };
  if (unlock) {
    {
      // No RPC for owners that never locked this file (every close unlocks).
      std::lock_guard lock(mu_);
      if (!lockers_.count({h->ino, owner})) return Status::Ok();
      if (start == 0 && length == 0) lockers_.erase({h->ino, owner});
    }
    {
      std::lock_guard hl(h->mu);
      Status s = StoreDirty(*h);  // what the lock protected reaches the server first
      if (!s.ok()) return s;
    }
    Status s = options_.runtime->BlockOn(client->Unlock(h->fid, start, length, owner));
    while (follow(s)) s = options_.runtime->BlockOn(client->Unlock(h->fid, start, length, owner));
    if (!server.ok()) return server.status();
    return s.code() == Code::kNotFound ? Status::Ok() : s;
  }
  auto pause = std::chrono::milliseconds(20);
  for (;;) {
    Status s = options_.runtime->BlockOn(client->Lock(h->fid, exclusive, start, length, owner));
    if (follow(s)) continue;
    if (!server.ok()) return server.status();
    if (s.ok()) {
      {
        std::lock_guard hl(h->mu);
        h->lock_owners.insert(owner);
      }
      {
        std::lock_guard lock(mu_);
        lockers_.insert({h->ino, owner});
      }
      Forget(h->fid);  // read what the previous holder wrote
      for (const auto& open : HandlesOf(h->ino)) {
        std::lock_guard hl(open->mu);
        Repin(*open);
      }
      return s;
    }
    if (s.code() != Code::kLockConflict || !wait) return s;
    if (interrupted && interrupted()) return Error(Code::kCancelled, "interrupted");
    // The server has no waiting queue: ask again, a little less often each time.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

Result<bool> HekaFs::LockFree(uint64_t fh, uint64_t owner, bool exclusive, uint64_t start,
                              uint64_t length) {
  // A probe owner of our own, so the caller's existing locks are left as they are.
  uint64_t probe = owner ^ 0x5a5a5a5a5a5a5a5aull;
  Status s = SetLock(fh, probe, exclusive, false, start, length, false, {});
  if (s.code() == Code::kLockConflict) return false;
  if (!s.ok()) return s;
  (void)SetLock(fh, probe, false, true, start, length, false, {});
  return true;
}

Status HekaFs::LockState(const Handle& h) {
  if (h.lock_owners.empty()) return Status::Ok();
  auto server = ServerOf(h.fid.cell(), h.fid.volume());
  if (!server.ok()) return Status::Ok();
  auto client = ClientFor(h.who, *server);
  for (uint64_t owner : h.lock_owners) {
    Status s = client->LockState(h.fid, owner);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

std::vector<std::shared_ptr<HekaFs::Handle>> HekaFs::HandlesOf(uint64_t ino) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Handle>> out;
  for (auto& [fh, h] : handles_) {
    if (h->ino == ino) out.push_back(h);
  }
  return out;
}

// ---- Files -----------------------------------------------------------------------------------

Result<uint64_t> HekaFs::Open(const Caller& c, uint64_t ino, int flags) {
  Who who = WhoIs(c);
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  if (st->type() == pb::DIRECTORY) return Error(Code::kIsDirectory, "is a directory");
  int acc = flags & O_ACCMODE;
  uint32_t rights = st->caller_rights();
  if ((acc == O_RDONLY || acc == O_RDWR) && !(rights & kR)) {
    return Error(Code::kPermissionDenied, "no r right");
  }
  bool writable = acc == O_WRONLY || acc == O_RDWR;
  if (writable) {
    auto server = ServerOf(st->fid().cell(), st->fid().volume());
    if (!server.ok()) return server.status();
    if (server->read_only) return Error(Code::kReadOnly, "a backup or read-only volume takes no changes");
  }
  if (writable && !(rights & (kW | kI))) return Error(Code::kPermissionDenied, "no w right");
  auto h = std::make_shared<Handle>();
  h->ino = ino;
  h->fid = st->fid();
  h->who = who;
  h->writable = writable;
  h->readable = acc != O_WRONLY;
  h->size = h->base_size = st->size();
  h->version = st->data_version();
  if (Status s = SetUpCipher(*h, *st); !s.ok()) return s;
  if (writable && (flags & O_TRUNC)) {
    h->truncated = true;
    h->size = 0;
  }
  // A file that fits comfortably in the cache is all there once open returns, fetched several
  // chunks at a time: reading it is then local, and it reads as one version even if another
  // client stores a new one meanwhile.
  if (h->readable && !h->truncated && h->size > 0 &&
      h->size <= chunk_cache_->Usage().capacity / 2) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto complete = Prefetch(*h);
      if (!complete.ok()) return complete.status();
      if (*complete) break;
      Forget(h->fid);  // it changed meanwhile: open the new version
      auto now = StatusOf(who, ino);
      if (!now.ok()) return now.status();
      h->version = now->data_version();
      h->size = h->base_size = now->size();
    }
  }
  std::lock_guard lock(mu_);
  uint64_t fh = next_fh_++;
  handles_[fh] = h;
  return fh;
}

Result<std::pair<EntryOut, uint64_t>> HekaFs::Create(const Caller& c, uint64_t parent,
                                                     const std::string& name, mode_t mode,
                                                     int flags) {
  Who who = WhoIs(c);
  auto dir = FidOf(parent);
  if (!dir.ok()) return dir.status();
  auto wire = WireName(who, parent, name);
  if (!wire.ok()) return wire.status();
  auto fresh = NewVnodeIn(*dir, pb::FILE, nullptr, mode);
  if (!fresh.ok()) return fresh.status();
  pb::CreateRequest req;
  *req.mutable_dir() = *dir;
  req.set_name(*wire);
  req.set_mode(mode & 07777);
  req.set_client_attr(fresh->client_attr);
  req.set_data(fresh->data);
  auto r = Call<pb::CreateReply>(who, dir->cell(), dir->volume(), "CreateFile", req);
  if (!r.ok()) return r.status();
  auto created = Created(who, parent, name, *r);
  if (!created.ok()) return created.status();
  EntryOut e = Reference(*created);
  auto h = std::make_shared<Handle>();
  h->ino = e.ino;
  h->fid = r->status().fid();
  h->version = r->status().data_version();
  h->readable = (flags & O_ACCMODE) != O_WRONLY;
  h->who = who;
  h->writable = (flags & O_ACCMODE) != O_RDONLY;
  h->size = h->base_size = r->status().size();
  if (Status s = SetUpCipher(*h, r->status()); !s.ok()) return s;
  std::lock_guard lock(mu_);
  uint64_t fh = next_fh_++;
  handles_[fh] = h;
  return std::make_pair(e, fh);
}

Result<std::shared_ptr<const std::string>> HekaFs::ChunkFor(const Who& who, Handle& h,
                                                             uint64_t index) {
  // A handle opened for reading had its rights checked at open: it reads its version from
  // the chunk it read last (FUSE reads 128 KiB at a time), then the cache. A write-only one
  // only gets what the server gives it.
  if (h.readable) {
    if (h.memo && h.memo_index == index && h.memo_version == h.version) return h.memo;
    if (auto chunk = chunk_cache_->Get(FileKeyOf(h.fid), h.version, index)) {
      if (h.cipher) {
        auto plain = OpenChunk(h, index, *chunk, h.base_size);
        if (!plain.ok()) return plain.status();
        *chunk = std::move(*plain);
      }
      h.memo = std::make_shared<const std::string>(std::move(*chunk));
      h.memo_index = index;
      h.memo_version = h.version;
      h.served = true;
      return h.memo;
    }
  }
  pb::FetchDataRequest req;
  *req.mutable_fid() = h.fid;
  SetChunkRange(h.cipher != nullptr, index, &req);
  uint64_t breaks = breaks_.load();
  auto r = Call<pb::FetchDataReply>(who, h.fid.cell(), h.fid.volume(), "FetchData", req);
  if (!r.ok()) return r.status();
  Remember(who, r->status(), r->callback().expires_ns(), breaks);
  if (r->status().data_version() != h.version) {
    if (h.served || h.Pending()) {
      spdlog::info("{}.{}.{}: changed on its server while open (version {} -> {}), chunk {} "
                   "not cached: the read fails with ESTALE",
                   h.fid.volume(), h.fid.vnode(), h.fid.uniq(), h.version,
                   r->status().data_version(), index);
      return Error(Code::kStaleFid, "the file changed on its server while open here (data "
                                    "version " + std::to_string(h.version) + " -> " +
                                    std::to_string(r->status().data_version()) +
                                    "): open it again");
    }
    h.version = r->status().data_version();  // nothing read yet: read the new one
    h.base_size = r->status().size();
  }
  h.served = true;
  bool keep = false;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(h.ino);
    keep = it != nodes_.end() && it->second->Fresh() &&
           it->second->status.data_version() == r->status().data_version();
  }
  if (keep) chunk_cache_->Put(FileKeyOf(h.fid), r->status().data_version(), index, r->data());
  if (!h.Pending()) h.size = r->status().size();
  if (h.cipher) {
    auto plain = OpenChunk(h, index, r->data(), r->status().size());
    if (!plain.ok()) return plain.status();
    *r->mutable_data() = std::move(*plain);
  }
  h.memo = std::make_shared<const std::string>(std::move(*r->mutable_data()));
  h.memo_index = index;
  h.memo_version = r->status().data_version();
  return h.memo;
}

HekaFs::KernelCaching HekaFs::KernelCachingFor(uint64_t fh) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return {};
    h = it->second;
  }
  std::lock_guard hl(h->mu);
  std::lock_guard lock(mu_);
  // The kernel has one page cache per file. While another open of it still reads an older
  // version, its reads may put old pages there: this open goes around the page cache.
  uint64_t mine = h->version;
  for (const auto& [other_fh, other] : handles_) {
    if (other->ino == h->ino && other != h && other->version != mine) {
      auto it = nodes_.find(h->ino);
      if (it != nodes_.end()) it->second->kernel_version = 0;
      return KernelCaching{false, true};
    }
  }
  auto it = nodes_.find(h->ino);
  if (it == nodes_.end()) return {};
  Node& n = *it->second;
  if (!n.Fresh() || n.status.data_version() != mine || h->Pending()) {
    n.kernel_version = 0;
    return {};
  }
  bool keep = n.kernel_version == mine;
  n.kernel_version = mine;  // what the kernel reads through this open is of it
  if (keep) h->served = true;  // pages of this version may be served without asking us
  return KernelCaching{keep, false};
}

void HekaFs::Repin(Handle& h) {
  if (h.Pending() || !h.readable) return;
  auto st = StatusOf(h.who, h.ino);
  // Moving on needs the right to read what it moves to, confirmed for this caller.
  if (!st.ok() || st->data_version() == h.version || !(st->caller_rights() & kR)) return;
  h.version = st->data_version();
  h.size = h.base_size = st->size();
  h.served = false;
  h.memo.reset();
}

Result<bool> HekaFs::Prefetch(Handle& h) {
  FileKey key = FileKeyOf(h.fid);
  std::vector<uint64_t> missing;
  for (uint64_t i = 0; i * chunk_size_ < h.size || (i == 0 && h.cipher); ++i) {
    if (!chunk_cache_->Contains(key, h.version, i)) missing.push_back(i);
  }
  if (missing.empty()) return true;
  std::atomic<size_t> next{0};
  std::atomic<bool> changed{false};
  std::mutex failed_mu;
  Status failed;
  auto fetch = [&] {
    for (size_t k; !changed && (k = next++) < missing.size();) {
      {
        std::lock_guard lock(failed_mu);
        if (!failed.ok()) return;
      }
      pb::FetchDataRequest req;
      *req.mutable_fid() = h.fid;
      SetChunkRange(h.cipher != nullptr, missing[k], &req);
      auto r = Call<pb::FetchDataReply>(h.who, h.fid.cell(), h.fid.volume(), "FetchData", req);
      if (!r.ok()) {
        std::lock_guard lock(failed_mu);
        failed = r.status();
        return;
      }
      if (r->status().data_version() != h.version) {
        changed = true;
        return;
      }
      chunk_cache_->Put(key, h.version, missing[k], std::move(*r->mutable_data()));
    }
  };
  constexpr size_t kInFlight = 4;
  std::vector<std::thread> workers;
  for (size_t i = 1; i < std::min(kInFlight, missing.size()); ++i) workers.emplace_back(fetch);
  fetch();
  for (auto& w : workers) w.join();
  if (!failed.ok()) return failed;
  return !changed;
}

Result<std::string> HekaFs::Read(uint64_t fh, uint64_t offset, size_t size) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return Error(Code::kInvalidArgument, "bad file handle");
    h = it->second;
  }
  // Another open's unstored writes to this file are its content too, and a read must not end
  // before them: the kernel takes a short read as the end of the file, and another process's
  // next O_APPEND write would land on them. They are stored first (each handle under its own
  // lock, none held at once).
  for (const auto& other : HandlesOf(h->ino)) {
    if (other == h) continue;
    std::lock_guard ol(other->mu);
    if (other->Pending()) {
      if (Status s = StoreDirty(*other); !s.ok()) return s;
    }
  }
  std::lock_guard hl(h->mu);
  if (Status lost = LockState(*h); !lost.ok()) return lost;
  // A read from the start, or past the end, may take a newer version (a reader reading the
  // file again, `tail -f`); a read in the middle does not mix versions of other clients. A
  // version this client's own store made is taken at once (a short read would make the kernel
  // take the file as shorter, and another process's next O_APPEND write land there).
  bool local_change = false;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(h->ino);
    local_change = it != nodes_.end() && it->second->local_version != 0 &&
                   it->second->local_version == it->second->status.data_version() &&
                   it->second->local_version != h->version;
  }
  if (offset == 0 || offset >= h->size || local_change) Repin(*h);
  std::string out;
  uint64_t end = std::min<uint64_t>(offset + size, h->size);
  for (uint64_t pos = offset; pos < end;) {
    uint64_t index = pos / chunk_size_;
    uint64_t within = pos % chunk_size_;
    uint64_t n = std::min<uint64_t>(chunk_size_ - within, end - pos);
    static const std::string kZeros;
    const std::string* chunk = &kZeros;  // zeros: the old content is gone for this handle
    std::shared_ptr<const std::string> fetched;
    auto d = h->dirty.find(index);
    bool memo = h->memo && h->memo_index == index && h->memo_version == h->version;
    if (d == h->dirty.end() && !h->truncated && h->cipher && h->readable && !memo) {
      auto part = SealedPart(*h, index, within, n);  // a small read opens only its blocks
      if (!part.ok()) return part.status();
      if (*part) {
        out.append(**part);
        out.append(n - (*part)->size(), '\0');
        pos += n;
        continue;
      }
    }
    if (d != h->dirty.end()) {
      chunk = &d->second;
    } else if (!h->truncated) {
      auto f = ChunkFor(h->who, *h, index);
      if (!f.ok()) return f.status();
      fetched = std::move(*f);
      chunk = fetched.get();
      end = std::min<uint64_t>(end, h->size);
      if (pos >= end) break;
      n = std::min<uint64_t>(n, end - pos);
    }
    // What the chunk holds of [within, within + n), zeros after its end.
    uint64_t have = chunk->size() > within ? std::min<uint64_t>(n, chunk->size() - within) : 0;
    out.append(*chunk, have > 0 ? within : 0, have);
    out.append(n - have, '\0');
    pos += n;
  }
  return out;
}

Result<size_t> HekaFs::Write(uint64_t fh, uint64_t offset, const char* data, size_t size) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return Error(Code::kInvalidArgument, "bad file handle");
    h = it->second;
  }
  std::lock_guard hl(h->mu);
  if (!h->writable) return Error(Code::kPermissionDenied, "not open for writing");
  if (Status lost = LockState(*h); !lost.ok()) return lost;
  for (size_t done = 0; done < size;) {
    uint64_t pos = offset + done;
    uint64_t index = pos / chunk_size_;
    uint64_t within = pos % chunk_size_;
    size_t n = std::min<uint64_t>(chunk_size_ - within, size - done);
    auto d = h->dirty.find(index);
    if (d == h->dirty.end()) {
      std::string base;
      if (!h->truncated && index * chunk_size_ < h->size && !(within == 0 && n == chunk_size_)) {
        auto fetched = ChunkFor(h->who, *h, index);
        if (!fetched.ok()) return fetched.status();
        base = **fetched;
      }
      uint64_t valid = h->size > index * chunk_size_ ? h->size - index * chunk_size_ : 0;
      if (base.size() > valid) base.resize(valid);
      d = h->dirty.emplace(index, std::move(base)).first;
    }
    if (d->second.size() < within + n) d->second.resize(within + n, '\0');
    d->second.replace(within, n, data + done, n);
    done += n;
  }
  h->size = std::max<uint64_t>(h->size, offset + size);
  return size;
}

Status HekaFs::StoreDirty(Handle& h) {
  // A store that meets a volume's move (busy, or moved away with the store half done) is
  // aborted by the server and begins again, on the new server if it moved.
  for (MoveWait moving;;) {
    Status s = StoreDirtyOnce(h);
    if (s.ok() || !ThroughMove(moving, s.code(), h.fid.cell(), h.fid.volume())) return s;
  }
}

Status HekaFs::StoreDirtyOnce(Handle& h) {
  if (!h.Pending()) return Status::Ok();
  if (h.cipher) {
    if (Status s = AddResealedChunks(h); !s.ok()) return s;
  }
  // Encrypted: chunk 0 holds the header, so an empty file has it too.
  const uint64_t last_chunk = h.size == 0 ? 0 : (h.size - 1) / chunk_size_;
  pb::BeginStoreRequest begin;
  *begin.mutable_fid() = h.fid;
  auto b = Call<pb::BeginStoreReply>(h.who, h.fid.cell(), h.fid.volume(), "BeginStore", begin);
  // Another store of this file is in progress (another client's close, or the remains of one
  // whose client died): wait for it, as a close would wait for a lock.
  auto pause = std::chrono::milliseconds(20);
  for (auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       !b.ok() && b.status().code() == Code::kLocked && std::chrono::steady_clock::now() < give_up;) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
    b = Call<pb::BeginStoreReply>(h.who, h.fid.cell(), h.fid.volume(), "BeginStore", begin);
  }
  if (!b.ok()) return b.status();
  uint64_t base_dv = b->status().data_version();
  auto abort = [&] {
    pb::AbortStoreRequest a;
    a.set_store_id(b->store_id());
    (void)Call<pb::AbortStoreReply>(h.who, h.fid.cell(), h.fid.volume(), "AbortStore", a);
  };
  // Every chunk it wrote; a truncated file is rewritten whole (chunks it did not write are
  // zeros), so a refused store leaves the old content intact.
  static const std::string kNone;
  std::map<uint64_t, const std::string*> chunks;
  for (const auto& [index, bytes] : h.dirty) chunks[index] = &bytes;
  for (uint64_t index = 0; h.truncated && index * chunk_size_ < h.size; ++index) {
    chunks.emplace(index, &kNone);
  }
  std::vector<std::pair<uint64_t, const std::string*>> sends;
  for (const auto& [index, chunk] : chunks) {
    if (index * chunk_size_ < h.size || (h.cipher && index <= last_chunk)) {
      sends.emplace_back(index, chunk);
    }
  }
  constexpr size_t kInFlight = 4;
  // Runs `work` on kInFlight threads (this one included) for items 0 .. n-1.
  auto in_parallel = [&](size_t n, const std::function<void(std::atomic<size_t>&)>& work) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (size_t i = 1; i < std::min(kInFlight, n); ++i) threads.emplace_back([&] { work(next); });
    work(next);
    for (auto& t : threads) t.join();
  };
  // Several chunks in flight at once, all inside the one store transaction: nobody sees any
  // of them before the commit, in whatever order they arrive. Encrypted: each sender seals
  // its chunk (a cipher per thread) and sends it where it is stored; a sealed chunk straddles
  // two of the file server's chunks, whose parts the server joins (kept for the cache too).
  std::vector<std::string> sealed(h.cipher ? sends.size() : 0);
  std::mutex failed_mu;
  Status failed;
  in_parallel(sends.size(), [&](std::atomic<size_t>& next) {
    std::unique_ptr<crypto::FileCipher> cipher;
    if (h.cipher) cipher = std::make_unique<crypto::FileCipher>(*h.key, h.file_id);
    for (size_t k; (k = next++) < sends.size();) {
      {
        std::lock_guard lock(failed_mu);
        if (!failed.ok()) return;
      }
      if (options_.test_hook) options_.test_hook("store", k + 1);
      uint64_t start = sends[k].first * chunk_size_;
      uint64_t length = std::min<uint64_t>(chunk_size_, h.size - std::min(h.size, start));
      pb::StoreDataRequest put;
      put.set_store_id(b->store_id());
      if (cipher) {
        const std::string& dirty = *sends[k].second;
        std::string padded;  // a chunk written only in part: zeros up to its length
        if (dirty.size() != length) {
          padded = dirty;
          padded.resize(length, '\0');
        }
        sealed[k] = cipher->SealChunk(sends[k].first, chunk_size_,
                                      dirty.size() == length ? dirty : padded, h.size);
        put.set_offset(crypto::FileCipher::ChunkBegin(sends[k].first, chunk_size_));
        put.set_data(std::move(sealed[k]));  // taken back below, for the cache
      } else {
        std::string bytes = *sends[k].second;
        bytes.resize(length, '\0');
        put.set_offset(start);
        put.set_data(std::move(bytes));
      }
      auto p = Call<pb::StoreDataReply>(h.who, h.fid.cell(), h.fid.volume(), "StoreData", put);
      if (cipher) sealed[k] = std::move(*put.mutable_data());
      if (!p.ok()) {
        std::lock_guard lock(failed_mu);
        if (failed.ok()) failed = p.status();
        return;
      }
    }
  });
  if (!failed.ok()) {
    abort();
    return failed;
  }
  if (options_.test_hook) options_.test_hook("commit", 1);
  std::vector<PendingPut> written;  // into the cache, off the close path
  pb::CommitStoreRequest commit;
  commit.set_store_id(b->store_id());
  commit.set_size(h.cipher ? crypto::CipherSize(h.size) : h.size);
  auto done = Call<pb::CommitStoreReply>(h.who, h.fid.cell(), h.fid.volume(), "CommitStore", commit);
  if (!done.ok()) return done.status();
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(h.ino);
    if (it != nodes_.end()) {
      Node& n = *it->second;
      bool only_ours = !h.truncated && n.status.data_version() == base_dv &&
                       done->status().data_version() == base_dv + 1;
      FileKey file = FileKeyOf(h.fid);
      uint64_t new_dv = done->status().data_version();
      bool others_open = std::any_of(handles_.begin(), handles_.end(), [&](const auto& kv) {
        return kv.second->ino == h.ino && kv.second.get() != &h;
      });
      if (others_open) {
        // Other handles may still read the old version: its chunks stay (the LRU takes them).
      } else if (only_ours && n.Fresh()) {
        // The new version is the old one plus our chunks: keep the rest of the cache.
        std::set<uint64_t> rewritten;
        for (const auto& [index, bytes] : h.dirty) rewritten.insert(index);
        chunk_cache_->Advance(file, base_dv, new_dv, (h.size + chunk_size_ - 1) / chunk_size_,
                              rewritten);
      } else {
        chunk_cache_->Drop(file);
      }
      if (new_dv == base_dv + 1 && h.cipher) {  // the cache holds what the server does
        for (size_t k = 0; k < sends.size(); ++k) {
          written.push_back(PendingPut{file, new_dv, sends[k].first, std::move(sealed[k])});
        }
      } else if (new_dv == base_dv + 1) {  // the version is ours alone: what we wrote is its content
        for (auto& [index, bytes] : h.dirty) {
          uint64_t start = index * chunk_size_;
          if (start >= h.size) continue;
          bytes.resize(std::min<uint64_t>(chunk_size_, h.size - start), '\0');
          written.push_back(PendingPut{file, new_dv, index, std::move(bytes)});
        }
      }
      n.status = done->status();
      n.local_version = done->status().data_version();
      n.rights[h.who.principal] = done->status().caller_rights();
    }
  }
  QueuePuts(std::move(written));
  h.dirty.clear();
  h.truncated = false;
  h.version = done->status().data_version();
  h.base_size = h.size;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(h.ino);
    if (it != nodes_.end()) it->second->kernel_version = 0;  // the next open starts afresh
  }
  return Status::Ok();
}

Status HekaFs::Flush(uint64_t fh) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return Status::Ok();
    h = it->second;
  }
  std::lock_guard hl(h->mu);
  if (Status lost = LockState(*h); !lost.ok()) return lost;
  return StoreDirty(*h);
}

Status HekaFs::Fsync(uint64_t fh) { return Flush(fh); }

void HekaFs::Release(uint64_t fh) {
  std::shared_ptr<Handle> h;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return;
    h = it->second;
    handles_.erase(it);
  }
  std::lock_guard hl(h->mu);
  if (h->Pending()) {
    spdlog::warn("file {}.{}: unstored changes dropped at release (flush failed)",
                 h->fid.volume(), h->fid.vnode());
  }
}

// Used by heka_fs_control.cc.
template Result<pb::FetchAclReply> HekaFs::Call(const Who&, const std::string&, uint64_t,
                                                const std::string&, const pb::FetchAclRequest&);
template Result<pb::StoreAclReply> HekaFs::Call(const Who&, const std::string&, uint64_t,
                                                const std::string&, const pb::StoreAclRequest&);
template Result<pb::GetVolumeStatusReply> HekaFs::Call(const Who&, const std::string&, uint64_t,
                                                       const std::string&,
                                                       const pb::GetVolumeStatusRequest&);
template Result<pb::SetQuotaReply> HekaFs::Call(const Who&, const std::string&, uint64_t,
                                                const std::string&, const pb::SetQuotaRequest&);

}  // namespace heka::cm

// The heka.fileserver.VolumeServer handlers (`vos create|remove|examine|listvol`, quotas, offline).
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fileserver/server/file_service.h"
#include "fileserver/volume/volume_dump.h"

namespace heka::fs {
namespace {

Status Denied() { return Error(Code::kPermissionDenied, "permission denied"); }

std::string CellFile(const std::string& volume_dir) { return volume_dir + "/cell"; }

constexpr size_t kDumpPiece = 4 << 20;  // stream bytes per DumpVolume reply

// Where dumps and restores keep their clones and half-built volumes: a directory of the
// partition that is not a volume (ListVolumeIds skips it), emptied at start.
std::string StagingDir(const std::string& partition, const char* kind) {
  static std::atomic<uint64_t> next{1};
  return partition + "/" + kStagingDirName + "/" + kind + "-" + std::to_string(next++);
}

}  // namespace

Status FileService::SaveCell(Env& env, const std::string& volume_dir, const std::string& cell) {
  std::string tmp = CellFile(volume_dir) + ".tmp";
  auto file = env.NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(
      ByteView(reinterpret_cast<const uint8_t*>(cell.data()), cell.size()));
  if (s.ok()) s = (*file)->Sync();
  if (s.ok()) s = (*file)->Close();
  if (!s.ok()) return s;
  s = env.Rename(tmp, CellFile(volume_dir));
  if (!s.ok()) return s;
  return env.SyncDir(volume_dir);
}

Result<std::string> FileService::LoadCell(const std::string& volume_dir) {
  std::ifstream in(CellFile(volume_dir));
  std::string cell;
  if (!std::getline(in, cell) || cell.empty()) {
    return Error(Code::kNotFound, volume_dir + " has no cell file");
  }
  return cell;
}

Status FileService::RequireVolumeAdmin(Op& op, const std::string& cell) {
  if (IsProviderAdmin(op.peer)) return Status::Ok();
  if (cell.empty()) return Denied();
  auto cps = cps_.Get(cell, op.peer.principal());
  if (!cps.ok()) return cps.status();
  if (!cps->cell_admin()) return Denied();
  op.cps = std::move(*cps);
  return Status::Ok();
}

Result<pb::VolumeStatus> FileService::Describe(uint64_t id, const ServedVolume& vol) const {
  if (!vol.volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(id) + " is being salvaged");
  }
  auto h = vol.volume->Header();
  if (!h.ok()) return h.status();
  pb::VolumeStatus st;
  st.set_id(id);
  st.set_name(h->name);
  st.set_cell(vol.cell);
  st.set_type(static_cast<uint32_t>(h->type));
  st.set_quota_bytes(h->quota_bytes);
  st.set_usage_bytes(h->usage_bytes);
  st.set_files(h->files);
  st.set_ops(h->ops);
  st.set_reads(h->reads);
  st.set_bytes_read(h->bytes_read);
  st.set_stores(h->stores);
  st.set_bytes_stored(h->bytes_stored);
  st.set_online(vol.online.load());
  st.set_partition(vol.partition);
  st.set_serial(h->serial);
  struct statvfs fs;
  if (statvfs(vol.partition.c_str(), &fs) == 0) {
    st.set_partition_free_bytes(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize);
  }
  return st;
}

Result<pb::CreateVolumeReply> FileService::CreateVolume(Op& op, const pb::CreateVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  // The VLDB must already name this server as the volume's site: that is where the volume
  // id, name and cell come from, so nobody can plant a volume of another cell here.
  db::GetVolumeRequest get;
  get.set_cell(req.cell());
  get.set_id(req.id());
  get.mutable_options()->set_leader_only(true);
  auto entry = deps_.runtime->BlockOn(deps_.db->GetVolume(get));
  if (!entry.ok()) return entry.status().WithContext("VLDB");
  const db::Volume& v = entry->volume();
  if (v.id() != req.id() || v.cell() != req.cell()) return Denied();
  std::string partition;
  for (const db::VolumeSite& site : v.sites()) {
    if (site.server_uuid() == deps_.server_uuid && site.type() == db::VolumeSite::RW &&
        (req.partition().empty() || req.partition() == site.partition())) {
      partition = site.partition();
    }
  }
  if (partition.empty()) {
    return Error(Code::kInvalidArgument, "the VLDB does not place volume " +
                                             std::to_string(req.id()) + " on this server" +
                                             (req.partition().empty() ? "" : " in " + req.partition()));
  }
  if (std::find(config_.partitions.begin(), config_.partitions.end(), partition) ==
      config_.partitions.end()) {
    return Error(Code::kNotFound, "this server has no partition " + partition);
  }
  if (volumes_.Find(req.id())) {
    return Error(Code::kAlreadyExists, "volume " + std::to_string(req.id()) + " exists here");
  }
  uint64_t quota = req.quota_bytes() != 0 ? req.quota_bytes() : v.quota_bytes();
  auto created = Volume::Create(OptionsFor(partition), req.id(), v.name(), VolumeType::kReadWrite,
                                quota, AsBytes(req.root_client_attr()));
  if (!created.ok()) return created.status();
  s = SaveCell(*deps_.env, (*created)->dir(), req.cell());
  if (!s.ok()) return s;
  auto served = std::make_shared<ServedVolume>();
  served->volume = std::move(*created);
  served->cell = req.cell();
  served->partition = partition;
  volumes_.Put(req.id(), served);
  spdlog::info("created volume {} '{}' of cell {} on {} for {}", req.id(), v.name(), req.cell(),
               partition, op.peer.principal());
  auto st = Describe(req.id(), *served);
  if (!st.ok()) return st.status();
  pb::CreateVolumeReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

Result<pb::DeleteVolumeReply> FileService::DeleteVolume(Op& op, const pb::DeleteVolumeRequest& req) {
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell() || vol->moved) {  // a moved one's tombstone stays
    Status s = RequireVolumeAdmin(op, req.cell());
    if (!s.ok()) return s;
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  Status s = RequireVolumeAdmin(op, vol->cell);
  if (!s.ok()) return s;
  if (Status fenced = Fenced(req.cell(), req.id(), req.lock_generation()); !fenced.ok()) return fenced;
  vol = volumes_.Take(req.id());
  if (!vol) return Error(Code::kNotFound, "volume " + std::to_string(req.id()) + " vanished");
  vol->online = false;
  if (!vol->volume) {
    volumes_.Put(req.id(), vol);
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.id()) + " is being salvaged");
  }
  std::string dir = vol->volume->dir();
  vol->volume.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return Error(Code::kIoError, "removing " + dir + ": " + ec.message());
  (void)deps_.env->SyncDir(vol->partition);
  spdlog::info("deleted volume {} of cell {} from {} for {}", req.id(), vol->cell, vol->partition,
               op.peer.principal());
  return pb::DeleteVolumeReply();
}

Result<pb::ListVolumesReply> FileService::ListVolumes(Op& op, const pb::ListVolumesRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  pb::ListVolumesReply rep;
  for (const auto& [id, vol] : volumes_.All()) {
    if (!req.cell().empty() && vol->cell != req.cell()) continue;
    if (!req.partition().empty() && vol->partition != req.partition()) continue;
    if (!vol->volume) continue;
    auto st = Describe(id, *vol);
    if (st.ok()) *rep.add_volumes() = std::move(*st);
  }
  return rep;
}

Result<pb::ExamineVolumeReply> FileService::ExamineVolume(Op& op, const pb::ExamineVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  auto vol = volumes_.Find(req.id());
  if (!vol || (vol->cell != req.cell() && !req.cell().empty())) {
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  auto st = Describe(req.id(), *vol);
  if (!st.ok()) return st.status();
  pb::ExamineVolumeReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

Result<pb::SetQuotaReply> FileService::VolSetQuota(Op& op, const pb::SetQuotaRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  auto vol = volumes_.Find(req.volume());
  if (!vol || vol->cell != req.cell()) return Denied();
  if (!vol->volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.volume()) + " is being salvaged");
  }
  s = vol->volume->SetQuota(req.quota_bytes());
  if (!s.ok()) return s;
  spdlog::info("volume {} quota set to {} bytes by {}", req.volume(), req.quota_bytes(),
               op.peer.principal());
  auto st = Describe(req.volume(), *vol);
  if (!st.ok()) return st.status();
  pb::SetQuotaReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

namespace {

void ToProto(const std::vector<LockTable::Record>& records,
             google::protobuf::RepeatedPtrField<pb::HeldLockRecord>* out) {
  for (const LockTable::Record& r : records) {
    pb::HeldLockRecord* p = out->Add();
    p->set_client(r.client);
    p->set_vnode(r.vnode);
    p->set_owner(r.owner);
    p->set_start(r.start);
    p->set_end(r.end);
    p->set_exclusive(r.exclusive);
  }
}

std::vector<LockTable::Record> FromProto(
    const google::protobuf::RepeatedPtrField<pb::HeldLockRecord>& in) {
  std::vector<LockTable::Record> out;
  for (const pb::HeldLockRecord& p : in) {
    out.push_back({p.client(), p.vnode(), p.owner(), p.start(), p.end(), p.exclusive()});
  }
  return out;
}

}  // namespace

Result<pb::SetVolumeOnlineReply> FileService::SetOnline(Op& op, const pb::SetVolumeOnlineRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  if (Status fenced = Fenced(req.cell(), req.id(), req.lock_generation()); !fenced.ok()) return fenced;
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell()) return Denied();
  if (!vol->volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.id()) + " is being salvaged");
  }
  // A move's destination takes over the source's advisory locks before it serves anyone.
  if (req.online()) locks_.Import(req.id(), FromProto(req.locks()));
  vol->online = req.online();
  if (req.online()) vol->frozen_generation = 0;
  spdlog::info("volume {} is now {} ({})", req.id(), req.online() ? "online" : "offline",
               op.peer.principal());
  auto st = Describe(req.id(), *vol);
  if (!st.ok()) return st.status();
  pb::SetVolumeOnlineReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

Result<std::string> FileService::RwPartitionHere(const std::string& cell, uint64_t id,
                                                 std::string* name) {
  db::GetVolumeRequest get;
  get.set_cell(cell);
  get.set_id(id);
  get.mutable_options()->set_leader_only(true);
  auto entry = deps_.runtime->BlockOn(deps_.db->GetVolume(get));
  if (!entry.ok()) return entry.status().WithContext("VLDB");
  const db::Volume& v = entry->volume();
  if (v.id() != id || v.cell() != cell) return Denied();
  for (const db::VolumeSite& site : v.sites()) {
    if (site.server_uuid() == deps_.server_uuid && site.type() == db::VolumeSite::RW) {
      *name = v.name();
      return site.partition();
    }
  }
  return Error(Code::kInvalidArgument,
               "the VLDB does not place volume " + std::to_string(id) + " on this server");
}

// Stops serving `old`, an instance about to be replaced or removed: new operations on it get
// kVolumeBusy (clients retry), the running ones end first. Returns its directory ("" if none).
std::string FileService::Retire(ServedVolume& old) {
  old.swapping = true;
  if (!WaitIdle(old)) {
    spdlog::warn("volume instance in {}: operations still running after 30 s; replacing it anyway",
                 old.partition);
  }
  std::string dir = old.volume ? old.volume->dir() : "";
  old.volume.reset();
  return dir;
}

Result<pb::CloneVolumeReply> FileService::CloneVolume(Op& op, const pb::CloneVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  if (Status fenced = Fenced(req.cell(), req.id(), req.lock_generation()); !fenced.ok()) return fenced;
  std::string name;
  auto partition = RwPartitionHere(req.cell(), req.id(), &name);
  if (!partition.ok()) return partition.status();
  auto rw = volumes_.Find(req.id());
  if (!rw || rw->cell != req.cell()) {
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  if (!rw->volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.id()) + " is being salvaged");
  }
  if (rw->type != VolumeType::kReadWrite) {
    return Error(Code::kInvalidArgument, "volume " + std::to_string(req.id()) + " is not read-write");
  }
  // The VLDB's numbering: RO = id + 1, BK = id + 2.
  const bool ro = req.read_only();
  const uint64_t target = req.id() + (ro ? 1 : 2);
  const VolumeType type = ro ? VolumeType::kReadOnly : VolumeType::kBackup;
  const char* what = ro ? "read-only clone" : "backup";
  auto start = std::chrono::steady_clock::now();
  // Small files move out of the database first, so that the clone shares them too.
  auto spilled = rw->volume->SpillInline();
  if (!spilled.ok()) return spilled.status().WithContext("moving small files into chunks");
  if (*spilled > 0) {
    spdlog::info("volume {}: {} small files moved into chunk files for its {} in {:.2f} s",
                 req.id(), *spilled, what,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  auto old = volumes_.Find(target);
  if (old) {  // the previous clone goes; its clients wait meanwhile, then revalidate
    std::string dir = Retire(*old);
    if (dir.empty()) dir = VolumeDir(OptionsFor(old->partition), target);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) {
      volumes_.Take(target);
      return Error(Code::kIoError, std::string("removing the old ") + what + " " + dir + ": " + ec.message());
    }
  }
  auto clone = rw->volume->Clone(target, name + (ro ? ".readonly" : ".backup"), type);
  if (!clone.ok()) {
    if (old) volumes_.Take(target);
    return clone.status().WithContext("cloning volume " + std::to_string(req.id()));
  }
  s = SaveCell(*deps_.env, (*clone)->dir(), req.cell());
  if (!s.ok()) {
    if (old) volumes_.Take(target);
    return s;
  }
  auto served = std::make_shared<ServedVolume>();
  served->volume = std::move(*clone);
  served->type = type;
  served->cell = req.cell();
  served->partition = *partition;
  volumes_.Put(target, served);
  if (old) callbacks_.BreakVolume(target);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("{} {} of volume {} '{}' of cell {} made in {:.2f} s for {}", what, target, req.id(),
               name, req.cell(), seconds, op.peer.principal());
  auto st = Describe(target, *served);
  if (!st.ok()) return st.status();
  pb::CloneVolumeReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

// ---- dumps and restores ---------------------------------------------------------------------

struct DumpSession {
  const rpc::Connection* conn = nullptr;
  std::mutex mu;
  std::string cell;
  uint64_t id = 0;
  std::string partition;
  std::string staging;                 // removed with the session
  std::unique_ptr<Volume> volume;      // the clone dumped, or the volume being restored
  std::unique_ptr<VolumeDumper> dumper;
  std::unique_ptr<VolumeRestorer> restorer;
  uint64_t lock_generation = 0;  // a move's destination: fenced, and swapped in offline
  bool read_only = false;        // a release's RO site: fenced, swapped in online
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  ~DumpSession() {
    volume.reset();
    if (!staging.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(staging, ec);
    }
  }
};

Result<std::shared_ptr<DumpSession>> FileService::FindSession(const Op& op, uint64_t id) {
  std::lock_guard lock(sessions_mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->conn != op.conn.get()) {
    return Error(Code::kNotFound, "no dump or restore session " + std::to_string(id) +
                                      " on this connection");
  }
  return it->second;
}

// Registers `s` and arranges for it to go when its connection closes.
uint64_t FileService::RegisterSession(Op& op, std::shared_ptr<DumpSession> s) {
  uint64_t id;
  {
    std::lock_guard lock(sessions_mu_);
    id = next_session_++;
    sessions_[id] = std::move(s);
  }
  if (op.conn) {
    op.conn->AddCloseObserver([this, id](const Status&) {
      std::shared_ptr<DumpSession> gone;  // destroyed (staging removed) outside the lock
      std::lock_guard lock(sessions_mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return;
      spdlog::warn("dump or restore session {} of volume {}: its connection closed; nothing of "
                   "it is kept",
                   id, it->second->id);
      gone = std::move(it->second);
      sessions_.erase(it);
    });
  }
  return id;
}

Result<std::shared_ptr<DumpSession>> FileService::OpenSession(
    Op& op, uint64_t* id, const std::function<Result<std::shared_ptr<DumpSession>>()>& start) {
  if (*id != 0) return FindSession(op, *id);
  auto started = start();
  if (!started.ok()) return started.status();
  *id = RegisterSession(op, *started);
  return started;
}

Result<std::shared_ptr<DumpSession>> FileService::StartDump(Op& op, const pb::DumpVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  if (Status fenced = Fenced(req.cell(), req.id(), req.lock_generation()); !fenced.ok()) return fenced;
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell()) {
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  if (!vol->volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.id()) + " is being salvaged");
  }
  auto session = std::make_shared<DumpSession>();
  session->conn = op.conn.get();
  session->cell = req.cell();
  session->id = req.id();
  session->partition = vol->partition;
  session->staging = StagingDir(vol->partition, "dump");
  std::error_code ec;
  std::filesystem::create_directories(session->staging, ec);
  if (ec) return Error(Code::kIoError, "creating " + session->staging + ": " + ec.message());
  auto header = vol->volume->Header();
  if (!header.ok()) return header.status();
  auto clone = vol->volume->Clone(req.id(), header->name, header->type, session->staging);
  if (!clone.ok()) return clone.status().WithContext("cloning volume " + std::to_string(req.id()));
  session->volume = std::move(*clone);
  dump::DumpHeader h;
  h.set_cell(req.cell());
  h.set_encrypted(req.encrypted());
  h.set_key_fingerprint(req.key_fingerprint());
  auto dumper = VolumeDumper::Start(*session->volume, req.from_serial(), std::move(h));
  if (!dumper.ok()) return dumper.status();
  session->dumper = std::move(*dumper);
  spdlog::info("dump of volume {} '{}' of cell {} ({}, {} vnodes) started for {}", req.id(),
               header->name, req.cell(),
               req.from_serial() == 0 ? std::string("full")
                                      : "changes after serial " + std::to_string(req.from_serial()),
               session->dumper->progress().vnodes_total, op.peer.principal());
  return session;
}

Result<pb::DumpVolumeReply> FileService::DumpVolume(Op& op, const pb::DumpVolumeRequest& req) {
  uint64_t id = req.session();
  auto opened = OpenSession(op, &id, [&] { return StartDump(op, req); });
  if (!opened.ok()) return opened.status();
  std::shared_ptr<DumpSession> session = *opened;
  std::lock_guard lock(session->mu);
  if (!session->dumper) return Error(Code::kInvalidArgument, "session " + std::to_string(id) + " is a restore");
  pb::DumpVolumeReply rep;
  rep.set_session(id);
  auto done = session->dumper->Next(kDumpPiece, rep.mutable_data());
  if (!done.ok()) return done.status().WithContext("dumping volume " + std::to_string(session->id));
  rep.set_done(*done);
  rep.set_vnodes_total(session->dumper->progress().vnodes_total);
  rep.set_vnodes_done(session->dumper->progress().vnodes_done);
  rep.set_serial(session->dumper->header().serial());
  if (*done) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - session->start).count();
    spdlog::info("dump of volume {} done: {} vnodes, {} bytes, serial {}, in {:.2f} s",
                 session->id, session->dumper->progress().vnodes_done,
                 session->dumper->progress().bytes, session->dumper->header().serial(), seconds);
    std::lock_guard lock2(sessions_mu_);
    sessions_.erase(id);  // the clone goes with the last reference
  }
  return rep;
}

Result<std::shared_ptr<DumpSession>> FileService::StartRestore(Op& op,
                                                               const pb::RestoreVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  std::string vldb_name;
  Result<std::string> partition = Error(Code::kInvalidArgument, "no partition");
  if (req.read_only()) {  // a release's RO site
    if (req.lock_generation() == 0) {
      return Error(Code::kInvalidArgument, "a read-only instance is restored only by vos release");
    }
    auto locked = CheckLock(req.cell(), req.id(), req.lock_generation());
    if (!locked.ok()) return locked.status();
    if (locked->id() + 1 != req.id()) {
      return Error(Code::kInvalidArgument, "volume " + std::to_string(req.id()) +
                                               " is not the read-only id of volume " +
                                               std::to_string(locked->id()));
    }
    vldb_name = locked->name() + ".readonly";
    for (const db::VolumeSite& site : locked->sites()) {
      if ((site.type() == db::VolumeSite::RO || site.type() == db::VolumeSite::RO_UNRELEASED) &&
          site.server_uuid() == deps_.server_uuid) {
        partition = site.partition();
      }
    }
    if (!partition.ok()) {
      return Error(Code::kInvalidArgument, "the VLDB lists no read-only site of volume " +
                                               locked->name() + " on this server");
    }
  } else if (req.lock_generation() != 0) {  // a move's destination
    auto locked = CheckLock(req.cell(), req.id(), req.lock_generation());
    if (!locked.ok()) return locked.status();
    vldb_name = locked->name();
    partition = req.partition();
    if (std::find(config_.partitions.begin(), config_.partitions.end(), req.partition()) ==
        config_.partitions.end()) {
      return Error(Code::kInvalidArgument, "this server has no partition " + req.partition());
    }
  } else {
    partition = RwPartitionHere(req.cell(), req.id(), &vldb_name);
  }
  if (!partition.ok()) return partition.status();
  auto header = ReadDumpHeader(req.data());
  if (!header.ok()) return header.status();
  auto session = std::make_shared<DumpSession>();
  session->conn = op.conn.get();
  session->cell = req.cell();
  session->id = req.id();
  session->partition = *partition;
  session->staging = StagingDir(*partition, "restore");
  std::error_code ec;
  std::filesystem::create_directories(session->staging, ec);
  if (ec) return Error(Code::kIoError, "creating " + session->staging + ": " + ec.message());
  VolumeOptions options = OptionsFor(session->staging);
  const std::string name = req.name().empty() || req.read_only() ? vldb_name : req.name();
  const VolumeType type = req.read_only() ? VolumeType::kReadOnly : VolumeType::kReadWrite;
  if (header->from_serial() == 0) {
    options.chunk_size = header->chunk_size();
    options.inline_limit = header->inline_limit();
    auto created = Volume::Create(options, req.id(), name, type, 0);
    if (!created.ok()) return created.status();
    session->volume = std::move(*created);
  } else {
    auto vol = volumes_.Find(req.id());
    if (!vol || vol->cell != req.cell() || !vol->volume) {
      return Error(Code::kNotFound, "an incremental dump applies to an existing volume, and volume " +
                                        std::to_string(req.id()) + " is not served here");
    }
    auto clone = vol->volume->Clone(req.id(), name, type, session->staging);
    if (!clone.ok()) return clone.status().WithContext("copying volume " + std::to_string(req.id()));
    session->volume = std::move(*clone);
  }
  session->restorer = std::make_unique<VolumeRestorer>(*session->volume);
  session->lock_generation = req.lock_generation();
  session->read_only = req.read_only();
  spdlog::info("restore of volume {} '{}' of cell {} ({} dump of volume {}) started for {}",
               req.id(), name, req.cell(),
               header->from_serial() == 0 ? std::string("full")
                                          : "incremental after serial " +
                                                std::to_string(header->from_serial()),
               header->volume_id(), op.peer.principal());
  return session;
}

// Puts the restored volume in place of the one with its id (if any), atomically for clients:
// the old instance goes offline, the new directory is renamed in, the clients revalidate.
Result<pb::VolumeStatus> FileService::SwapInRestored(Op& op, DumpSession& s) {
  if (Status st = s.restorer->Finish(); !st.ok()) return st;
  // The last moment a paused move could do harm.
  if (Status fenced = Fenced(s.cell, s.id, s.lock_generation); !fenced.ok()) return fenced;
  auto header = s.volume->Header();
  if (!header.ok()) return header.status();
  s.restorer.reset();
  s.volume.reset();
  if (Status st = SaveCell(*deps_.env, VolumeDir(OptionsFor(s.staging), s.id), s.cell); !st.ok())
    return st;
  const std::string dir = VolumeDir(OptionsFor(s.partition), s.id);
  // The instance in place (if any) is retired: its clients wait (kVolumeBusy) until the new
  // one serves them, then revalidate.
  auto old = volumes_.Find(s.id);
  if (old) Retire(*old);
  auto drop_old = [&] {
    if (old) volumes_.Take(s.id);
  };
  std::error_code ec;
  if (std::filesystem::exists(dir)) std::filesystem::rename(dir, s.staging + "/old", ec);
  if (!ec) std::filesystem::rename(VolumeDir(OptionsFor(s.staging), s.id), dir, ec);
  if (ec) {
    drop_old();
    return Error(Code::kIoError, "putting the restored volume in place at " + dir + ": " +
                                     ec.message() + " (the old volume is in " + s.staging +
                                     "/old; run the salvager)");
  }
  (void)deps_.env->SyncDir(s.partition);
  auto opened = Volume::Open(OptionsFor(s.partition), s.id);
  if (!opened.ok()) {
    drop_old();
    return opened.status();
  }
  auto served = std::make_shared<ServedVolume>();
  served->volume = std::move(*opened);
  served->type = s.read_only ? VolumeType::kReadOnly : VolumeType::kReadWrite;
  served->cell = s.cell;
  served->partition = s.partition;
  // A move's destination waits offline for the VLDB switch; if the move never finishes, the
  // first request after the lock's expiry finds that out (Available).
  if (s.lock_generation != 0 && !s.read_only) Freeze(*served, s.cell, s.id, s.lock_generation);
  volumes_.Put(s.id, served);
  if (old) callbacks_.BreakVolume(s.id);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.start).count();
  spdlog::info("restore of volume {} '{}' of cell {} done: {} files, serial {}, in {:.2f} s for {}",
               s.id, header->name, s.cell, header->files, header->serial, seconds,
               op.peer.principal());
  return Describe(s.id, *served);
}

Result<pb::RestoreVolumeReply> FileService::RestoreVolume(Op& op, const pb::RestoreVolumeRequest& req) {
  uint64_t id = req.session();
  auto opened = OpenSession(op, &id, [&] { return StartRestore(op, req); });
  if (!opened.ok()) return opened.status();
  std::shared_ptr<DumpSession> session = *opened;
  std::lock_guard lock(session->mu);
  auto fail = [&](Status s) {
    std::lock_guard lock2(sessions_mu_);
    sessions_.erase(id);  // the staging volume goes; the volume in place is untouched
    spdlog::warn("restore of volume {} failed, nothing changed: {}", session->id, s.ToString());
    return s;
  };
  if (!session->restorer) return Error(Code::kInvalidArgument, "session " + std::to_string(id) + " is a dump");
  if (Status s = session->restorer->Feed(req.data()); !s.ok()) return fail(s);
  pb::RestoreVolumeReply rep;
  rep.set_session(id);
  rep.set_vnodes_done(session->restorer->progress().vnodes_done);
  if (req.last()) {
    auto st = SwapInRestored(op, *session);
    if (!st.ok()) return fail(st.status());
    *rep.mutable_status() = std::move(*st);
    std::lock_guard lock2(sessions_mu_);
    sessions_.erase(id);
  }
  return rep;
}

// ---- moves -----------------------------------------------------------------------------------

Result<db::Volume> FileService::CheckLock(const std::string& cell, uint64_t id, uint64_t generation) {
  db::GetVolumeRequest get;
  get.set_cell(cell);
  get.set_id(id);
  get.mutable_options()->set_leader_only(true);
  auto entry = deps_.runtime->BlockOn(deps_.db->GetVolume(get));
  if (!entry.ok()) return entry.status().WithContext("VLDB");
  const db::VolumeLock& lock = entry->volume().lock();
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  if (lock.generation() != generation || lock.expires_ns() < now) {
    return Error(Code::kFenced,
                 "volume " + std::to_string(id) + ": the operation lock of generation " +
                     std::to_string(generation) + " is no longer held" +
                     (lock.generation() != generation
                          ? " (now generation " + std::to_string(lock.generation()) + ", " +
                                lock.owner() + ")"
                          : " (expired)") +
                     "; this operation was taken over and must stop");
  }
  return std::move(*entry->mutable_volume());
}

Status FileService::Fenced(const std::string& cell, uint64_t id, uint64_t generation) {
  if (generation == 0) return Status::Ok();
  auto locked = CheckLock(cell, id, generation);
  return locked.ok() ? Status::Ok() : locked.status();
}

bool FileService::WaitIdle(ServedVolume& vol) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (vol.in_flight.load() > 0) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void FileService::Freeze(ServedVolume& vol, const std::string& cell, uint64_t id,
                         uint64_t generation) {
  auto entry = CheckLock(cell, id, generation);
  int64_t until = std::chrono::steady_clock::now().time_since_epoch().count() +
                  std::chrono::nanoseconds(std::chrono::seconds(60)).count();
  if (entry.ok()) {  // the lock's expiry, in steady-clock time
    const int64_t left = entry->lock().expires_ns() -
                         std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    until = std::chrono::steady_clock::now().time_since_epoch().count() + std::max<int64_t>(left, 0);
  }
  vol.frozen_generation = generation;
  vol.frozen_until_ns = until;
  vol.online = false;
}

Status FileService::Available(uint64_t id, ServedVolume& vol) {
  if (vol.moved.load()) {
    return Error(Code::kVolumeMoved, "volume " + std::to_string(id) + " moved to another server");
  }
  if (vol.swapping.load()) {
    return Error(Code::kVolumeBusy, "volume " + std::to_string(id) +
                                        " is being replaced by a restore or release: retry shortly");
  }
  if (vol.online.load()) return Status::Ok();
  const uint64_t generation = vol.frozen_generation.load();
  if (generation != 0 &&
      std::chrono::steady_clock::now().time_since_epoch().count() > vol.frozen_until_ns.load()) {
    // The move that froze it did not finish in time: whether it stays depends on the VLDB.
    db::GetVolumeRequest get;
    get.set_cell(vol.cell);
    get.set_id(id);
    get.mutable_options()->set_leader_only(true);
    auto entry = deps_.runtime->BlockOn(deps_.db->GetVolume(get));
    if (entry.ok() && entry->volume().lock().generation() != generation) {
      bool here = false;
      for (const db::VolumeSite& site : entry->volume().sites()) {
        here |= site.type() == db::VolumeSite::RW && site.server_uuid() == deps_.server_uuid &&
                site.partition() == vol.partition;
      }
      uint64_t expected = generation;
      if (here && vol.frozen_generation.compare_exchange_strong(expected, 0)) {
        vol.online = true;
        spdlog::warn("volume {}: the move that froze it (lock generation {}) did not finish "
                     "before its lock expired; the VLDB still places the volume here, so it "
                     "is back online",
                     id, generation);
        return Status::Ok();
      }
    }
  }
  if (generation != 0) {
    return Error(Code::kVolumeBusy, "volume " + std::to_string(id) + " is being moved: retry shortly");
  }
  return Error(Code::kVolumeOffline, "volume " + std::to_string(id) + " is offline");
}

Result<pb::FreezeVolumeReply> FileService::FreezeVolume(Op& op, const pb::FreezeVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  auto locked = CheckLock(req.cell(), req.id(), req.lock_generation());
  if (!locked.ok()) return locked.status();
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell() || !vol->volume || vol->moved) {
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  if (req.freeze()) {
    Freeze(*vol, req.cell(), req.id(), req.lock_generation());
    // The operations that passed their check before the freeze end first (a store's commit
    // included), so what the final increment reads is all there is.
    if (!WaitIdle(*vol)) {
      vol->frozen_generation = 0;
      vol->online = true;
      return Error(Code::kUnavailable, "volume " + std::to_string(req.id()) +
                                           ": operations still running after 30 s; not frozen");
    }
    spdlog::info("volume {} frozen for the move of lock generation {} ({})", req.id(),
                 req.lock_generation(), op.peer.principal());
    pb::FreezeVolumeReply rep;
    ToProto(locks_.Export(req.id()), rep.mutable_locks());  // none change while frozen
    auto st = Describe(req.id(), *vol);
    if (!st.ok()) return st.status();
    *rep.mutable_status() = std::move(*st);
    return rep;
  } else if (vol->frozen_generation.exchange(0) != 0) {
    vol->online = true;
    spdlog::info("volume {} thawed for the move of lock generation {} ({})", req.id(),
                 req.lock_generation(), op.peer.principal());
  }
  auto st = Describe(req.id(), *vol);
  if (!st.ok()) return st.status();
  pb::FreezeVolumeReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

Result<pb::VolumeMovedReply> FileService::VolumeMoved(Op& op, const pb::VolumeMovedRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  auto locked = CheckLock(req.cell(), req.id(), req.lock_generation());
  if (!locked.ok()) return locked.status();
  for (const db::VolumeSite& site : locked->sites()) {
    if (site.type() == db::VolumeSite::RW && site.server_uuid() == deps_.server_uuid) {
      return Error(Code::kInvalidArgument, "the VLDB still places volume " +
                                               std::to_string(req.id()) + " here: not removed");
    }
  }
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell()) return pb::VolumeMovedReply();  // gone already
  vol->moved = true;  // first: clients now ask the VLDB again
  pb::VolumeMovedReply rep;
  ToProto(locks_.MoveOut(req.id()), rep.mutable_locks());  // their holders renew them there
  vol->online = false;
  callbacks_.BreakVolume(req.id());
  std::string dir = vol->volume ? vol->volume->dir() : "";
  (void)WaitIdle(*vol);  // new operations see `moved`; those running end first
  vol->volume.reset();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) return Error(Code::kIoError, "removing " + dir + ": " + ec.message());
    (void)deps_.env->SyncDir(vol->partition);
  }
  spdlog::info("volume {} of cell {} moved away; its instance on {} is removed ({})", req.id(),
               req.cell(), vol->partition, op.peer.principal());
  return rep;
}

}  // namespace heka::fs

// The heka.fileserver.VolumeServer handlers (`vos create|remove|examine|listvol`, quotas, offline).
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "fileserver/server/file_service.h"

namespace heka::fs {
namespace {

Status Denied() { return Error(Code::kPermissionDenied, "permission denied"); }

std::string CellFile(const std::string& volume_dir) { return volume_dir + "/cell"; }

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
  if (!vol || vol->cell != req.cell()) {
    Status s = RequireVolumeAdmin(op, req.cell());
    if (!s.ok()) return s;
    return Error(Code::kNotFound, "no volume " + std::to_string(req.id()) + " on this server");
  }
  Status s = RequireVolumeAdmin(op, vol->cell);
  if (!s.ok()) return s;
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

Result<pb::SetVolumeOnlineReply> FileService::SetOnline(Op& op, const pb::SetVolumeOnlineRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
  auto vol = volumes_.Find(req.id());
  if (!vol || vol->cell != req.cell()) return Denied();
  if (!vol->volume) {
    return Error(Code::kVolumeOffline, "volume " + std::to_string(req.id()) + " is being salvaged");
  }
  vol->online = req.online();
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

Result<pb::CloneVolumeReply> FileService::CloneVolume(Op& op, const pb::CloneVolumeRequest& req) {
  Status s = RequireVolumeAdmin(op, req.cell());
  if (!s.ok()) return s;
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
  const uint64_t bk = req.id() + 2;  // the VLDB's numbering: RO = id + 1, BK = id + 2
  auto start = std::chrono::steady_clock::now();
  if (auto old = volumes_.Take(bk)) {  // the previous backup goes; its clients revalidate
    old->online = false;
    callbacks_.BreakVolume(bk);
    std::string dir = old->volume ? old->volume->dir() : partition.value() + "/V" + std::to_string(bk);
    old->volume.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) return Error(Code::kIoError, "removing the old backup " + dir + ": " + ec.message());
  }
  auto clone = rw->volume->Clone(bk, name + ".backup", VolumeType::kBackup);
  if (!clone.ok()) return clone.status().WithContext("cloning volume " + std::to_string(req.id()));
  s = SaveCell(*deps_.env, (*clone)->dir(), req.cell());
  if (!s.ok()) return s;
  auto served = std::make_shared<ServedVolume>();
  served->volume = std::move(*clone);
  served->type = VolumeType::kBackup;
  served->cell = req.cell();
  served->partition = *partition;
  volumes_.Put(bk, served);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("backup {} of volume {} '{}' of cell {} made in {:.2f} s for {}", bk, req.id(), name,
               req.cell(), seconds, op.peer.principal());
  auto st = Describe(bk, *served);
  if (!st.ok()) return st.status();
  pb::CloneVolumeReply rep;
  *rep.mutable_status() = std::move(*st);
  return rep;
}

}  // namespace heka::fs

#include "cachemgr/control.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>

namespace heka::cm {
namespace {

namespace cpb = ::heka::cachemgr;

void FillVolume(const pb::VolumeStatus& v, cpb::VolumeInfo* out) {
  out->set_name(v.name());
  out->set_id(v.id());
  out->set_cell(v.cell());
  out->set_quota_bytes(v.quota_bytes());
  out->set_usage_bytes(v.usage_bytes());
  out->set_partition_free_bytes(v.partition_free_bytes());
  out->set_partition(v.partition());
  out->set_online(v.online());
  out->set_files(v.files());
}

void FillCacheParms(const HekaFs::CacheStats& stats, cpb::CacheParms* p) {
  p->set_used_bytes(stats.chunks.bytes);
  p->set_capacity_bytes(stats.chunks.capacity);
  p->set_chunks(stats.chunks.chunks);
  p->set_evicted_chunks(stats.chunks.evicted);
  p->set_kernel_inodes(stats.kernel_inodes);
  p->set_objects(stats.objects);
}

// A number: "-204", "1001".
bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

}  // namespace

// PTDB names <-> ids in one cell, with the caller's credentials (the machine's when the
// caller has none).
struct ControlHandler::Names {
  rpc::Runtime* runtime;
  std::string cell;
  std::unique_ptr<db::DbClient> own;
  db::DbClient* db;

  Names(const ControlHandlerOptions& o, const CallerCreds& creds, std::string cell_name)
      : runtime(o.runtime), cell(std::move(cell_name)), db(o.machine_db) {
    if (!creds.ccache.empty()) {
      db::DbClientOptions dbo;
      dbo.members = o.db_members;
      dbo.credentials.ccache = creds.ccache;
      own = std::make_unique<db::DbClient>(*runtime, dbo);
      db = own.get();
    }
  }

  std::string NameOf(int64_t id) {
    db::GetEntryRequest req;
    req.set_cell(cell);
    req.set_id(id);
    auto r = runtime->BlockOn(db->GetEntry(req));
    return r.ok() ? r->entry().name() : std::to_string(id);
  }

  Result<int64_t> IdOf(const std::string& name) {
    if (IsNumber(name)) return std::strtoll(name.c_str(), nullptr, 10);
    db::GetEntryRequest req;
    req.set_cell(cell);
    req.set_name(name);
    auto r = runtime->BlockOn(db->GetEntry(req));
    if (!r.ok()) {
      if (r.status().code() == Code::kNotFound) {
        return Error(Code::kNotFound, "no user or group '" + name + "' in cell '" + cell + "'");
      }
      return Error(r.status().code(), name + ": " + r.status().message());
    }
    return r->entry().id();
  }
};

cpb::ControlReply ControlHandler::Handle(const Caller& c, const cpb::ControlRequest& req) {
  cpb::ControlReply rep;
  Status s;
  switch (req.op()) {
    case cpb::LIST_ACL: s = ListAcl(c, req, &rep); break;
    case cpb::SET_ACL: s = SetAcl(c, req, &rep); break;
    case cpb::EXAMINE: s = Examine(c, req, &rep); break;
    case cpb::WHERE_IS: s = WhereIs(c, req, &rep); break;
    case cpb::FLUSH: {
      auto ino = options_.fs->ResolvePath(c, req.path());
      if (ino.ok()) options_.fs->FlushCached(*ino);
      s = ino.status();
      break;
    }
    case cpb::WHOAMI: rep.set_principal(options_.fs->PrincipalOf(c)); break;
    case cpb::UNLOG: options_.fs->Unlog(c); break;
    case cpb::MAKE_MOUNT: s = MakeMount(c, req, &rep); break;
    case cpb::LIST_MOUNT: s = ListMount(c, req, &rep); break;
    case cpb::REMOVE_MOUNT: s = RemoveMount(c, req, &rep); break;
    case cpb::GET_CACHE_PARMS: FillCacheParms(options_.fs->Stats(), rep.mutable_cache()); break;
    case cpb::SET_QUOTA: s = SetQuota(c, req, &rep); break;
    case cpb::FLUSH_VOLUME: s = FlushVolume(c, req, &rep); break;
    case cpb::CHECK_SERVERS: s = CheckServers(req, &rep); break;
    case cpb::SET_CACHE_SIZE: s = SetCacheSize(c, req, &rep); break;
    case cpb::GET_CELL_STATUS: s = CellStatus(req, &rep); break;
    case cpb::LIST_CELLS: ListCells(&rep); break;
    case cpb::KEY_UNLOCK: s = KeyUnlock(c, req, &rep); break;
    case cpb::KEY_STATUS: s = KeyStatus(&rep); break;
    case cpb::CHECK_VOLUMES: options_.fs->CheckVolumes(); break;
    default: s = Error(Code::kUnimplemented, "unknown control operation"); break;
  }
  if (!s.ok()) {
    rep.set_code(static_cast<uint32_t>(s.code()));
    rep.set_message(s.message());
  }
  return rep;
}

Status ControlHandler::ListAcl(const Caller& c, const Request& req, Reply* rep) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto acl = options_.fs->FetchAcl(c, *ino);
  if (!acl.ok()) return acl.status();
  Names names(options_, options_.resolver->Resolve(c.uid, c.gid, c.pid),
              acl->status().fid().cell());
  for (const pb::AclEntry& e : acl->entries()) {
    cpb::NamedAclEntry* out = rep->add_acl();
    out->set_name(names.NameOf(e.principal()));
    out->set_rights(e.rights());
    out->set_negative(e.negative());
  }
  return Status::Ok();
}

Status ControlHandler::SetAcl(const Caller& c, const Request& req, Reply*) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto fid = options_.fs->FidOf(*ino);
  if (!fid.ok()) return fid.status();
  std::vector<pb::AclEntry> entries;
  if (!req.clear()) {
    auto acl = options_.fs->FetchAcl(c, *ino);
    if (!acl.ok()) return acl.status();
    entries.assign(acl->entries().begin(), acl->entries().end());
  }
  Names names(options_, options_.resolver->Resolve(c.uid, c.gid, c.pid), fid->cell());
  for (const cpb::NamedAclEntry& change : req.acl()) {
    auto id = names.IdOf(change.name());
    if (!id.ok()) return id.status();
    std::erase_if(entries, [&](const pb::AclEntry& e) {
      return e.principal() == *id && e.negative() == req.negative();
    });
    if (change.rights() == 0) continue;  // "none": the entry goes
    pb::AclEntry e;
    e.set_principal(*id);
    e.set_rights(change.rights());
    e.set_negative(req.negative());
    entries.push_back(e);
  }
  return options_.fs->StoreAcl(c, *ino, entries);
}

Status ControlHandler::Examine(const Caller& c, const Request& req, Reply* rep) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto v = options_.fs->VolumeStatusOf(c, *ino);
  if (!v.ok()) return v.status();
  FillVolume(*v, rep->mutable_volume());
  return Status::Ok();
}

Status ControlHandler::WhereIs(const Caller& c, const Request& req, Reply* rep) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto fid = options_.fs->FidOf(*ino);
  if (!fid.ok()) return fid.status();
  auto address = options_.fs->ServerAddressOf(*ino);
  if (!address.ok()) return address.status();
  rep->mutable_volume()->set_id(fid->volume());
  rep->mutable_volume()->set_cell(fid->cell());
  rep->add_servers(*address);
  return Status::Ok();
}

Status ControlHandler::MakeMount(const Caller& c, const Request& req, Reply* rep) {
  if (req.volume().empty()) return Error(Code::kInvalidArgument, "no volume given");
  auto where = options_.fs->ResolveParent(c, req.path());
  if (!where.ok()) return where.status();
  auto target = options_.fs->MakeMountPoint(c, where->first, where->second, req.cell(),
                                            req.volume(), req.rw());
  if (!target.ok()) return target.status();
  rep->set_target(*target);
  return Status::Ok();
}

Status ControlHandler::ListMount(const Caller& c, const Request& req, Reply* rep) {
  auto where = options_.fs->ResolveParent(c, req.path());
  if (!where.ok()) return where.status();
  auto target = options_.fs->MountTarget(c, where->first, where->second);
  if (!target.ok()) return target.status();
  rep->set_target(*target);
  return Status::Ok();
}

Status ControlHandler::RemoveMount(const Caller& c, const Request& req, Reply* rep) {
  auto where = options_.fs->ResolveParent(c, req.path());
  if (!where.ok()) return where.status();
  auto target = options_.fs->MountTarget(c, where->first, where->second);
  if (!target.ok()) return target.status();
  rep->set_target(*target);
  Status s = options_.fs->Unlink(c, where->first, where->second);
  if (s.ok()) options_.fs->ForgetName(where->first, where->second);
  return s;
}

Status ControlHandler::SetQuota(const Caller& c, const Request& req, Reply* rep) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto v = options_.fs->SetQuotaOf(c, *ino, req.quota_bytes());
  if (!v.ok()) return v.status();
  FillVolume(*v, rep->mutable_volume());
  return Status::Ok();
}

Status ControlHandler::FlushVolume(const Caller& c, const Request& req, Reply* rep) {
  auto ino = options_.fs->ResolvePath(c, req.path());
  if (!ino.ok()) return ino.status();
  auto flushed = options_.fs->FlushVolume(*ino);
  if (!flushed.ok()) return flushed.status();
  rep->set_flushed_objects(*flushed);
  return Status::Ok();
}

Status ControlHandler::CheckServers(const Request& req, Reply* rep) {
  if (req.fast()) {  // no probe: what the last ones found (OpenAFS: the cache manager's record)
    std::lock_guard lock(mu_);
    for (const auto& [address, down] : down_) *rep->add_servers_checked() = down;
    return Status::Ok();
  }
  std::vector<std::string> cells;
  if (!req.cell().empty()) cells.push_back(req.cell());
  auto probes = options_.fs->CheckServers(cells, req.all());
  if (!probes.ok()) return probes.status();
  std::lock_guard lock(mu_);
  for (const HekaFs::ServerProbe& p : *probes) {
    cpb::ServerCheck* out = rep->add_servers_checked();
    out->set_address(p.address);
    out->set_principal(p.principal);
    out->set_uuid(p.uuid);
    out->set_up(p.status.ok());
    if (p.status.ok()) {
      down_.erase(p.address);
    } else {
      out->set_error(p.status.ToString());
      down_[p.address] = *out;
    }
  }
  return Status::Ok();
}

Status ControlHandler::SetCacheSize(const Caller& c, const Request& req, Reply* rep) {
  if (c.uid != 0) return Error(Code::kPermissionDenied, "only root may change the cache size");
  uint64_t bound = options_.fs->SetCacheSize(req.cache_bytes());
  spdlog::info("setcachesize: the bound on cached file data is now {} bytes (pid {})", bound,
               c.pid);
  FillCacheParms(options_.fs->Stats(), rep->mutable_cache());
  return Status::Ok();
}

void ControlHandler::FillCell(const HekaFs::KnownCell& cell, cpb::CellInfo* out) const {
  out->set_name(cell.name);
  out->set_configured(cell.configured);
  out->set_root_volume(cell.root_volume);
  out->set_setuid(false);
  // One VLDB/PTDB serves every cell of this cache manager.
  for (const db::DbMember& m : options_.db_members) out->add_dbservers(m.address);
}

Status ControlHandler::CellStatus(const Request& req, Reply* rep) {
  if (req.cell().empty()) return Error(Code::kInvalidArgument, "no cell given");
  auto cell = options_.fs->CellStatus(req.cell());
  if (!cell.ok()) return cell.status();
  FillCell(*cell, rep->add_cells());
  return Status::Ok();
}

Status ControlHandler::KeyUnlock(const Caller& c, const Request& req, Reply* rep) {
  if (!options_.keys) return Error(Code::kUnimplemented, "this cache manager holds no cell keys");
  bool owner = options_.private_uid >= 0 && c.uid == static_cast<uid_t>(options_.private_uid);
  if (c.uid != 0 && !owner) {
    spdlog::warn("key unlock of cell {} refused to uid {} (pid {})", req.cell(), c.uid, c.pid);
    return Error(Code::kPermissionDenied,
                 "only root (or the user of a private mount) may unlock a cell key");
  }
  if (Status s = CheckCellName(req.cell()); !s.ok()) return s;
  auto key = crypto::CellKey::FromBytes(req.key());
  if (!key.ok()) return key.status();
  std::string by = "uid " + std::to_string(c.uid) + " pid " + std::to_string(c.pid);
  if (Status s = options_.keys->Install(req.cell(), *key, by); !s.ok()) {
    spdlog::warn("key unlock of cell {} by {} refused: {}", req.cell(), by, s.message());
    return s;
  }
  cpb::KeyInfo* out = rep->add_keys();
  out->set_cell(req.cell());
  out->set_fingerprint(crypto::Hex((*key)->fingerprint()));
  out->set_source("unlocked");
  return Status::Ok();
}

Status ControlHandler::KeyStatus(Reply* rep) {
  if (!options_.keys) return Error(Code::kUnimplemented, "this cache manager holds no cell keys");
  for (const KeyStore::Loaded& k : options_.keys->Status()) {
    cpb::KeyInfo* out = rep->add_keys();
    out->set_cell(k.cell);
    out->set_fingerprint(crypto::Hex(k.fingerprint));
    out->set_source(k.source);
  }
  return Status::Ok();
}

void ControlHandler::ListCells(Reply* rep) {
  for (const HekaFs::KnownCell& cell : options_.fs->Cells()) FillCell(cell, rep->add_cells());
}

}  // namespace heka::cm

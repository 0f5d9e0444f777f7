// heka vos backup — a backup (BK) clone of a volume, as OpenAFS's: volume id + 2, named
// "<name>.backup", on the RW's partition, sharing its data until either changes (cheap), a
// snapshot for users to read (`heka fs mkmount -dir D -vol <name>.backup`). An earlier backup
// is replaced. The operation holds the VLDB operation lock of the volume while it runs.

#include <chrono>
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/vos_common.h"
#include "cmd/vos_operation.h"

namespace heka::cli {
namespace {

constexpr int64_t kLockTtlMs = 120000;  // a clone of a large volume takes seconds, not minutes

// The VLDB lists the backup as a BK site beside the RW one.
Status RecordBackupSite(DbCommand& c, const db::Volume& v, const db::VolumeSite& rw,
                        uint64_t generation) {
  for (const db::VolumeSite& site : v.sites()) {
    if (site.type() == db::VolumeSite::BK) return Status::Ok();
  }
  db::Command cmd;
  db::SetVolumeSites* set = cmd.mutable_set_volume_sites();
  set->set_id(v.id());
  set->set_generation(generation);
  *set->mutable_sites() = v.sites();
  db::VolumeSite* bk = set->add_sites();
  *bk = rw;
  bk->set_type(db::VolumeSite::BK);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace

// heka vos backup -id NAME_OR_ID -cell C
int VosBackup(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos backup", argc, argv,
                               {{"id", true, "volume name or id (required)"},
                                {"cell", true, "the cell (required)"}},
                               {"id", "cell"});
  if (c.exit) return *c.exit;
  auto start = std::chrono::steady_clock::now();
  auto entry = c.db->Run(
      c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"), /*leader_only=*/true)));
  if (!entry.ok()) return c.Fail(entry.status());
  const db::Volume& v = entry->volume();
  const db::VolumeSite* rw = nullptr;
  for (const db::VolumeSite& site : v.sites()) {
    if (site.type() == db::VolumeSite::RW) rw = &site;
  }
  if (rw == nullptr) {
    return c.Fail(Error(Code::kNotFound, "volume " + v.name() + " has no RW site in the VLDB"));
  }
  auto server = ServerByUuid(*c.db, rw->server_uuid());
  if (!server.ok()) return c.Fail(server.status());
  OperationLock lock(c, "backup", kLockTtlMs, /*verbose=*/false);
  if (Status s = lock.Lock(v.cell(), v.id(), v.name()); !s.ok()) {
    return c.Fail(s.WithContext("locking volume " + v.name()));
  }
  fs::pb::CloneVolumeRequest req;
  req.set_cell(v.cell());
  req.set_id(v.id());
  VolumeServerClient fs(*c.db, *server);
  auto cloned = fs.Clone(req);
  Status s = cloned.ok() ? RecordBackupSite(c, v, *rw, lock.generation())
                         : cloned.status().WithContext("file server " + server->address);
  lock.Unlock();
  if (!s.ok()) return c.Fail(s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("Created backup volume for %s (id %llu, %llu files) in %.2f s\n", v.name().c_str(),
              static_cast<unsigned long long>(v.id() + 2),
              static_cast<unsigned long long>(cloned->status().files()), seconds);
  return kExitOk;
}

}  // namespace heka::cli

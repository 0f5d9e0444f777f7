// heka vos create — a new RW volume: the VLDB entry first (which allocates the id and names
// the site), then the volume on the file server, which checks that the VLDB names it. When
// the file server step fails the VLDB entry is deleted again, so nothing half-made remains.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

// The VLDB entry; returns the allocated volume id.
Result<uint64_t> CreateEntry(DbCommand& c, const NamedServer& server, uint64_t quota) {
  db::Command cmd;
  db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
  v->set_name(c.Get("name"));
  v->set_cell(c.Get("cell"));
  v->set_quota_bytes(quota);
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(server.server.uuid());
  site->set_partition(c.Get("partition"));
  site->set_type(db::VolumeSite::RW);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  if (!r.ok()) return r.status().WithContext("VLDB");
  return static_cast<uint64_t>(r->id());
}

// After a failed file server step: deletes the VLDB entry again and says what is left. When
// the server may have created the volume after all (no answer in time, connection lost), it
// is asked to delete it first, best effort.
Status Undo(DbCommand& c, VolumeServerClient& fs, uint64_t id, const Status& why) {
  if (why.code() == Code::kDeadlineExceeded || why.code() == Code::kConnectionClosed) {
    fs::pb::DeleteVolumeRequest del;
    del.set_cell(c.Get("cell"));
    del.set_id(id);
    (void)fs.Delete(del);
  }
  db::Command cmd;
  cmd.mutable_delete_volume()->set_cell(c.Get("cell"));
  cmd.mutable_delete_volume()->set_id(id);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  std::string vol = "volume " + std::to_string(id);
  if (r.ok()) return why.WithContext("the VLDB entry of " + vol + " was deleted again");
  return why.WithContext("deleting the VLDB entry of " + vol + " failed too (" +
                         r.status().ToString() + "; run heka vos remove -id " + std::to_string(id) +
                         " -cell " + c.Get("cell") + ")");
}

}  // namespace

// heka vos create -server S -partition P -name N -cell C [-maxquota SIZE]
int VosCreate(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos create", argc, argv,
      {{"server", true, "file server: UUID, host:port or host (required)"},
       {"partition", true, "partition on that server, e.g. /vicepa (required)"},
       {"name", true, "volume name (required)"},
       {"cell", true, "the cell (required)"},
       {"maxquota", true, "quota: KiB as in OpenAFS (10240), or with K/M/G/T (500M); 0 = none"}},
      {"server", "partition", "name", "cell"});
  if (c.exit) return *c.exit;
  uint64_t quota = 0;
  if (c.Has("maxquota")) {
    auto q = ParseQuota(c.Get("maxquota"));
    if (!q.ok()) return UsageError(c.name, q.status());
    quota = *q;
  }
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return c.Fail(s);

  auto id = CreateEntry(c, *server, quota);
  if (!id.ok()) return c.Fail(id.status());
  fs::pb::CreateVolumeRequest req;
  req.set_cell(c.Get("cell"));
  req.set_id(*id);
  req.set_partition(c.Get("partition"));
  req.set_quota_bytes(quota);
  VolumeServerClient fs(*c.db, *server);
  auto r = fs.Create(req);
  if (!r.ok()) {
    return c.Fail(Undo(c, fs, *id, r.status().WithContext("file server " + server->address)));
  }
  std::printf("Volume %llu created on partition %s of %s\n", static_cast<unsigned long long>(*id),
              c.Get("partition").c_str(), server->address.c_str());
  return kExitOk;
}

}  // namespace heka::cli

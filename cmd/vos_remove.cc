// heka vos remove — deletes a volume (and its backup) from the file server of its RW site,
// then its VLDB entry. A file server that no longer has the volume only earns a warning (the VLDB entry
// goes anyway); one that cannot be asked keeps the VLDB entry, so the volume is not lost
// track of. With -server and no VLDB entry, a numeric -id removes a stray volume from that
// server.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

void Warn(const DbCommand& c, const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "heka %s: warning: %s\n", c.name.c_str(), what.c_str());
}

// Deletes volume `id` from `server`. A volume the server does not have is a warning.
Status DeleteOnServer(DbCommand& c, const NamedServer& server, const std::string& partition,
                      uint64_t id) {
  VolumeServerClient fs(*c.db, server);
  fs::pb::DeleteVolumeRequest req;
  req.set_cell(c.Get("cell"));
  req.set_id(id);
  auto r = fs.Delete(req);
  std::string where = "partition " + partition + " of " + server.address;
  if (r.ok()) {
    std::printf("Volume %llu on %s deleted\n", U(id), where.c_str());
    return Status::Ok();
  }
  if (r.status().code() == Code::kNotFound) {
    Warn(c, "volume " + std::to_string(id) + " was not on " + where + " (" + r.status().message() +
                ")");
    return Status::Ok();
  }
  return r.status().WithContext("file server " + server.address);
}

// The RW sites to delete from: all of them, or the one -server/-partition name.
Result<std::vector<db::VolumeSite>> Targets(DbCommand& c, const db::Volume& v) {
  std::vector<db::VolumeSite> out;
  std::string uuid;
  if (c.Has("server")) {
    auto s = ResolveServer(*c.db, c.Get("server"));
    if (!s.ok()) return s.status();
    uuid = s->server.uuid();
  }
  for (const db::VolumeSite& site : v.sites()) {
    if (site.type() != db::VolumeSite::RW) continue;
    if (!uuid.empty() && site.server_uuid() != uuid) continue;
    if (c.Has("partition") && site.partition() != c.Get("partition")) continue;
    out.push_back(site);
  }
  if (out.empty() && c.Has("server")) {
    return Error(Code::kNotFound, "the VLDB has no RW site of volume " + std::to_string(v.id()) +
                                      " on " + c.Get("server") +
                                      (c.Has("partition") ? " " + c.Get("partition") : ""));
  }
  return out;
}

// Deletes the volume from each target; the first failure stops (and keeps the VLDB entry).
Status DeleteSites(DbCommand& c, const db::Volume& v) {
  auto targets = Targets(c, v);
  if (!targets.ok()) return targets.status();
  for (const db::VolumeSite& site : *targets) {
    auto server = ServerByUuid(*c.db, site.server_uuid());
    if (!server.ok() && server.status().code() == Code::kNotFound) {
      Warn(c, server.status().message() + "; nothing to delete there");
      continue;
    }
    if (!server.ok()) return server.status();
    Status s = DeleteOnServer(c, *server, site.partition(), v.id());
    if (!s.ok()) return s;
    // Its backup (`vos backup`) lives beside it and goes with it.
    for (const db::VolumeSite& bk : v.sites()) {
      if (bk.type() != db::VolumeSite::BK || bk.server_uuid() != site.server_uuid()) continue;
      s = DeleteOnServer(c, *server, bk.partition(), v.id() + 2);
      if (!s.ok()) return s;
    }
  }
  // The whole volume goes: its read-only instances (vos release) too.
  if (!c.Has("server")) {
    for (const db::VolumeSite& ro : v.sites()) {
      if (!IsRoSite(ro.type())) continue;
      auto server = ServerByUuid(*c.db, ro.server_uuid());
      Status s = server.ok() ? DeleteOnServer(c, *server, ro.partition(), v.id() + 1) : server.status();
      if (!s.ok()) {
        Warn(c, "the read-only instance on " + ro.server_uuid() + " stays (" + s.ToString() +
                    "); remove it later with heka vos zap");
      }
    }
  }
  return Status::Ok();
}

// No VLDB entry: with -server and a numeric -id, the stray volume on that server.
int RemoveStray(DbCommand& c, const Status& lookup) {
  char* end = nullptr;
  const std::string id = c.Get("id");
  unsigned long long n = std::strtoull(id.c_str(), &end, 10);
  if (!c.Has("server") || id.empty() || *end != '\0') return c.Fail(lookup);
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  Warn(c, "volume " + id + " has no VLDB entry; removing it from " + server->address + " only");
  fs::pb::DeleteVolumeRequest req;
  req.set_cell(c.Get("cell"));
  req.set_id(n);
  VolumeServerClient fs(*c.db, *server);
  auto r = fs.Delete(req);
  if (!r.ok()) return c.Fail(r.status().WithContext("file server " + server->address));
  std::printf("Volume %llu deleted from %s\n", n, server->address.c_str());
  return kExitOk;
}

}  // namespace

// heka vos remove -id NAME_OR_ID -cell C [-server S [-partition P]]
int VosRemove(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos remove", argc, argv,
      {{"id", true, "volume name or id (required)"},
       {"cell", true, "the cell (required)"},
       {"server", true, "only the site on this file server (UUID, host:port or host)"},
       {"partition", true, "only the site on this partition (needs -server)"}},
      {"id", "cell"});
  if (c.exit) return *c.exit;
  if (c.Has("partition") && !c.Has("server")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-partition needs -server"));
  }
  auto r = c.db->Run(
      c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"), /*leader_only=*/true)));
  if (!r.ok() && r.status().code() == Code::kNotFound) return RemoveStray(c, r.status());
  if (!r.ok()) return c.Fail(r.status());
  const db::Volume& v = r->volume();
  if (Status s = DeleteSites(c, v); !s.ok()) {
    return c.Fail(Status(s.code(), s.message() + "; the VLDB entry of volume " +
                                       std::to_string(v.id()) + " is kept"));
  }
  db::Command cmd;
  cmd.mutable_delete_volume()->set_cell(v.cell());
  cmd.mutable_delete_volume()->set_id(v.id());
  auto w = c.db->Run(c.db->client->Write(std::move(cmd)));
  if (!w.ok()) return c.Fail(w.status().WithContext("VLDB"));
  std::printf("VLDB entry for volume %s (%llu) deleted\n", v.name().c_str(), U(v.id()));
  return kExitOk;
}

}  // namespace heka::cli

// heka vos addsite / remsite — the read-only sites of a volume, as OpenAFS's. `addsite` lists
// a new RO site in the VLDB, "not released" (clients do not use it) until the next `vos
// release` puts an instance there; `remsite` takes one
// out of the VLDB and removes its instance from that server. A server holds at most one RO
// instance of a volume, and one on the RW's server must be on the RW's partition: there the
// RO instance is a clone that shares the RW's data.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

struct SiteCommand {
  db::Volume volume;
  NamedServer server;
  std::string partition;
};

Result<SiteCommand> Resolve(DbCommand& c) {
  auto entry = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"), true)));
  if (!entry.ok()) return entry.status();
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return server.status();
  if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return s;
  return SiteCommand{entry->volume(), *server, c.Get("partition")};
}

std::vector<Switch> SiteSwitches(const char* which) {
  return {{"server", true, which},
          {"partition", true, "its partition (required)"},
          {"id", true, "volume name or id (required)"},
          {"cell", true, "the cell (required)"}};
}

}  // namespace

// heka vos addsite -server S -partition P -id V -cell C
int VosAddSite(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos addsite", argc, argv,
                               SiteSwitches("file server of the new RO site (required)"),
                               {"server", "partition", "id", "cell"});
  if (c.exit) return *c.exit;
  auto r = Resolve(c);
  if (!r.ok()) return c.Fail(r.status());
  const db::Volume& v = r->volume;
  const std::string& uuid = r->server.server.uuid();
  for (const db::VolumeSite& s : v.sites()) {
    if (s.server_uuid() != uuid) continue;
    if (IsRoSite(s.type())) {
      return c.Fail(Error(Code::kAlreadyExists, "volume " + v.name() + " already has a read-only site on " +
                                                    r->server.address + " " + s.partition()));
    }
    if (s.type() == db::VolumeSite::RW && s.partition() != r->partition) {
      return c.Fail(Error(Code::kInvalidArgument,
                          "the read-only site on the RW's server must be on the RW's partition " +
                              s.partition() + " (there it shares the RW's data)"));
    }
  }
  auto sites = v.sites();
  db::VolumeSite* ro = sites.Add();
  ro->set_server_uuid(uuid);
  ro->set_partition(r->partition);
  ro->set_type(db::VolumeSite::RO_UNRELEASED);
  if (Status s = WriteVolumeSites(c, v.id(), sites); !s.ok()) return c.Fail(s);
  std::printf("Added replication site %s %s for volume %s (run heka vos release -id %s)\n",
              r->server.address.c_str(), r->partition.c_str(), v.name().c_str(), v.name().c_str());
  return kExitOk;
}

// heka vos remsite -server S -partition P -id V -cell C
int VosRemSite(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos remsite", argc, argv,
                               SiteSwitches("file server of the RO site (required)"),
                               {"server", "partition", "id", "cell"});
  if (c.exit) return *c.exit;
  auto r = Resolve(c);
  if (!r.ok()) return c.Fail(r.status());
  const db::Volume& v = r->volume;
  google::protobuf::RepeatedPtrField<db::VolumeSite> kept;
  bool found = false;
  for (const db::VolumeSite& s : v.sites()) {
    if (IsRoSite(s.type()) && s.server_uuid() == r->server.server.uuid() &&
        s.partition() == r->partition) {
      found = true;
    } else {
      *kept.Add() = s;
    }
  }
  if (!found) {
    return c.Fail(Error(Code::kNotFound, "volume " + v.name() + " has no read-only site on " +
                                             r->server.address + " " + r->partition));
  }
  if (Status s = WriteVolumeSites(c, v.id(), kept); !s.ok()) return c.Fail(s);
  std::printf("Removed replication site %s %s for volume %s\n", r->server.address.c_str(),
              r->partition.c_str(), v.name().c_str());
  VolumeServerClient fs(*c.db, r->server);
  fs::pb::DeleteVolumeRequest del;
  del.set_cell(v.cell());
  del.set_id(v.id() + 1);
  auto d = fs.Delete(del);
  if (!d.ok() && d.status().code() != Code::kNotFound) {
    std::fprintf(stderr,
                 "heka vos remsite: warning: its instance %llu on %s stays (%s); remove it later "
                 "with heka vos zap\n",
                 static_cast<unsigned long long>(v.id() + 1), r->server.address.c_str(),
                 d.status().ToString().c_str());
  }
  return kExitOk;
}

}  // namespace heka::cli

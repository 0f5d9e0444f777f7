// heka vos listvldb — the VLDB side of volumes: sites, operation lock, encryption. (What
// the file servers hold is `vos listvol` and `vos examine`.)
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

// The entries listvldb shows: one named volume, or a listing.
Result<db::ListVolumesReply> ListVldb(DbCommand& c) {
  db::ListVolumesReply out;
  if (c.Has("name")) {
    auto r = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("name"))));
    if (!r.ok()) return r.status();
    *out.add_volumes() = r->volume();
    return out;
  }
  db::ListVolumesRequest req;
  req.set_cell(c.Get("cell"));
  if (c.Has("server")) {
    auto server = ResolveServer(*c.db, c.Get("server"));
    if (!server.ok()) return server.status();
    req.set_server_uuid(server->server.uuid());
  }
  auto r = c.db->Run(c.db->client->ListVolumes(req));
  if (!r.ok()) return r.status();
  r->clear_header();
  return std::move(*r);
}

}  // namespace

// heka vos listvldb [-cell C] [-server S] [-name V] [-format json]
int VosListVldb(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos listvldb", argc, argv,
                               {{"cell", true, "only this cell's volumes (default: every cell)"},
                                {"server", true,
                                 "only volumes with a site on this file server (UUID, host:port "
                                 "or host)"},
                                {"name", true, "only this volume (name or id; needs -cell)"}},
                               {}, true);
  if (c.exit) return *c.exit;
  if (c.Has("name") && !c.Has("cell")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-name needs -cell"));
  }
  auto r = ListVldb(c);
  if (!r.ok()) return c.Fail(r.status());
  if (c.json) {
    Status s = PrintVolumesJson(*r);
    return s.ok() ? kExitOk : c.Fail(s);
  }
  ServerNames names = LoadServerNames(*c.db);
  std::printf("VLDB entries for %s%s\n\n",
              c.Has("cell") ? ("cell " + c.Get("cell")).c_str() : "all cells",
              c.Has("server") ? (", server " + c.Get("server")).c_str() : "");
  for (const db::Volume& v : r->volumes()) {
    PrintEntry(v, names);
    std::printf("\n");
  }
  std::printf("Total entries: %d\n", r->volumes_size());
  return kExitOk;
}

}  // namespace heka::cli

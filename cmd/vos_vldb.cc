// heka vos listvldb | examine — the VLDB side of volumes: sites, operation lock, encryption.
// (What the file servers hold, `vos listvol` and the volume header, come with the file
// server's client library.)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "cmd/commands.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

using ServerNames = std::map<std::string, std::string>;  // uuid -> "host:port"

// Best effort: a caller who may not list the servers sees their UUIDs.
ServerNames LoadServerNames(DbSession& db) {
  ServerNames names;
  auto r = db.Run(db.client->ListServers(db::ListServersRequest()));
  if (!r.ok()) return names;
  for (const db::FileServer& s : r->servers()) {
    if (s.addresses_size() > 0) names[s.uuid()] = s.addresses(0);
  }
  return names;
}

const char* SiteType(db::VolumeSite::Type t) {
  switch (t) {
    case db::VolumeSite::RW:
      return "RW";
    case db::VolumeSite::RO:
      return "RO";
    case db::VolumeSite::BK:
      return "BK";
    default:
      return "??";
  }
}

void PrintIds(const db::Volume& v) {
  bool ro = false, bk = false;
  for (const auto& s : v.sites()) {
    ro |= s.type() == db::VolumeSite::RO;
    bk |= s.type() == db::VolumeSite::BK;
  }
  std::printf("    RWrite: %llu", static_cast<unsigned long long>(v.id()));
  if (ro) std::printf("    ROnly: %llu", static_cast<unsigned long long>(v.id() + 1));
  if (bk) std::printf("    Backup: %llu", static_cast<unsigned long long>(v.id() + 2));
  std::printf("\n");
}

void PrintLock(const db::Volume& v) {
  if (!v.has_lock() || v.lock().owner().empty()) return;
  const db::VolumeLock& l = v.lock();
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::printf("    Volume is %s by %s (operation %s, phase %s, generation %llu, expires %s)\n",
              l.expires_ns() > now ? "currently LOCKED" : "left locked (lock expired)",
              l.owner().c_str(), l.operation().c_str(), l.phase().empty() ? "-" : l.phase().c_str(),
              static_cast<unsigned long long>(l.generation()), FormatTime(l.expires_ns()).c_str());
}

void PrintEntry(const db::Volume& v, const ServerNames& names) {
  std::printf("%s   (cell %s)\n", v.name().c_str(), v.cell().c_str());
  PrintIds(v);
  std::printf("    number of sites -> %d\n", v.sites_size());
  for (const db::VolumeSite& s : v.sites()) {
    auto it = names.find(s.server_uuid());
    std::printf("       server %s partition %s %s Site\n",
                it == names.end() ? s.server_uuid().c_str() : it->second.c_str(),
                s.partition().c_str(), SiteType(s.type()));
  }
  if (v.encrypted()) {
    std::printf("    encrypted: yes (key fingerprint %s)\n", v.key_fingerprint().c_str());
  }
  PrintLock(v);
}

int PrintOrFail(const DbCommand& c, const google::protobuf::Message& m) {
  Status s = PrintJson(m);
  return s.ok() ? kExitOk : c.Fail(s);
}

db::GetVolumeRequest VolumeRequest(const std::string& cell, const std::string& name_or_id) {
  db::GetVolumeRequest req;
  req.set_cell(cell);
  char* end = nullptr;
  unsigned long long id = std::strtoull(name_or_id.c_str(), &end, 10);
  if (!name_or_id.empty() && *end == '\0') {
    req.set_id(id);
  } else {
    req.set_name(name_or_id);
  }
  return req;
}

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
  req.set_server_uuid(c.Get("server"));
  auto r = c.db->Run(c.db->client->ListVolumes(req));
  if (!r.ok()) return r.status();
  r->clear_header();
  return std::move(*r);
}

}  // namespace

// heka vos listvldb [-cell C] [-server UUID] [-name V] [-format json]
int VosListVldb(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos listvldb", argc, argv,
                               {{"cell", true, "only this cell's volumes (default: every cell)"},
                                {"server", true, "only volumes with a site on this server UUID"},
                                {"name", true, "only this volume (name or id; needs -cell)"}},
                               {}, true);
  if (c.exit) return *c.exit;
  if (c.Has("name") && !c.Has("cell")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-name needs -cell"));
  }
  auto r = ListVldb(c);
  if (!r.ok()) return c.Fail(r.status());
  if (c.json) return PrintOrFail(c, *r);
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

// heka vos examine -id NAME_OR_ID -cell C [-format json]
int VosExamine(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos examine", argc, argv,
      {{"id", true, "volume name or id (required)"}, {"cell", true, "the cell (required)"}},
      {"id", "cell"}, true);
  if (c.exit) return *c.exit;
  auto r = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"))));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  const db::Volume& v = r->volume();
  PrintEntry(v, LoadServerNames(*c.db));
  std::printf(
      "    quota: %s, created: %s\n",
      v.quota_bytes() == 0 ? "unlimited" : (std::to_string(v.quota_bytes()) + " bytes").c_str(),
      FormatTime(v.created_ns()).c_str());
  return kExitOk;
}

}  // namespace heka::cli

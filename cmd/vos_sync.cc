// heka vos syncvldb / syncserv — reconcile the VLDB with a file server after a disaster (a lost
// VLDB entry, an instance lost with its disk), as OpenAFS's:
//   syncvldb  every instance on the server gets its VLDB site: a RW instance without an entry
//             gets a new entry with its id and name; RO and BK instances of a known volume get
//             their RO or BK site. A RW instance of a volume the VLDB places elsewhere is only
//             reported (one of them is stray: remove it with vos zap).
//   syncserv  every VLDB site on the server must have its instance: RO and BK sites without
//             one leave the VLDB; a RW site without one is only reported (restore the volume
//             from a dump, or remove the entry with vos remove).
// Each change is one line; volumes locked by a running operation are skipped and said so.
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

unsigned long long U(uint64_t n) { return static_cast<unsigned long long>(n); }

// The instances on -server (of -partition, if given).
Result<fs::pb::ListVolumesReply> Instances(DbCommand& c, const NamedServer& server) {
  VolumeServerClient fs(*c.db, server);
  fs::pb::ListVolumesRequest req;
  req.set_cell(c.Get("cell"));
  if (c.Has("partition")) req.set_partition(c.Get("partition"));
  auto r = fs.List(req);
  if (!r.ok()) return r.status().WithContext("file server " + server.address);
  return r;
}

struct Tally {
  int checked = 0, changed = 0, problems = 0;
};

void Problem(Tally& t, const std::string& line) {
  ++t.problems;
  std::printf("  %s\n", line.c_str());
}

// One instance of syncvldb.
void SyncInstance(DbCommand& c, const NamedServer& server, const fs::pb::VolumeStatus& st, Tally& t) {
  ++t.checked;
  const uint64_t offset = st.type() <= 2 ? st.type() : 0;  // RW 0, RO 1, BK 2
  const uint64_t base = st.id() - offset;
  const auto type = static_cast<db::VolumeSite::Type>(st.type());
  auto entry = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), std::to_string(base), true)));
  if (!entry.ok() && entry.status().code() != Code::kNotFound) {
    return Problem(t, "volume " + std::to_string(st.id()) + ": " + entry.status().ToString());
  }
  if (!entry.ok() || entry->volume().id() != base) {
    if (type != db::VolumeSite::RW) {
      return Problem(t, std::string(SiteType(type)) + " instance " + std::to_string(st.id()) + " (" +
                            st.name() + ") belongs to no VLDB entry: remove it with heka vos zap");
    }
    db::Command cmd;
    db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
    v->set_id(base);
    v->set_name(st.name());
    v->set_cell(c.Get("cell"));
    v->set_quota_bytes(st.quota_bytes());
    db::VolumeSite* site = v->add_sites();
    site->set_server_uuid(server.server.uuid());
    site->set_partition(st.partition());
    site->set_type(db::VolumeSite::RW);
    auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
    if (!r.ok()) return Problem(t, "volume " + st.name() + " (" + std::to_string(base) + "): " + r.status().ToString());
    ++t.changed;
    std::printf("  created the VLDB entry of volume %s (%llu) on %s %s (it is recorded as "
                "unencrypted: if it was encrypted, recreate its entry with vos restore of a dump)\n",
                st.name().c_str(), U(base), server.address.c_str(), st.partition().c_str());
    return;
  }
  const db::Volume& v = entry->volume();
  for (const db::VolumeSite& s : v.sites()) {
    const bool same_type = s.type() == type || (type == db::VolumeSite::RO && IsRoSite(s.type()));
    if (!same_type) continue;
    if (s.server_uuid() == server.server.uuid() && s.partition() == st.partition()) {
      if (s.type() != db::VolumeSite::RO_UNRELEASED) return;  // in order
    } else if (type == db::VolumeSite::RW) {
      return Problem(t, "volume " + v.name() + ": the VLDB places it on " + s.server_uuid() + " " +
                            s.partition() + "; the instance on " + server.address + " " +
                            st.partition() + " is left as it is (if it is stray: heka vos zap)");
    }
  }
  auto sites = v.sites();
  bool replaced = false;
  for (db::VolumeSite& s : sites) {  // an unreleased RO site here that holds an instance
    if (s.type() == db::VolumeSite::RO_UNRELEASED && s.server_uuid() == server.server.uuid()) {
      s.set_type(db::VolumeSite::RO);
      replaced = true;
    }
  }
  if (!replaced) {
    db::VolumeSite* site = sites.Add();
    site->set_server_uuid(server.server.uuid());
    site->set_partition(st.partition());
    site->set_type(type);
  }
  if (Status s = WriteVolumeSites(c, v.id(), sites); !s.ok()) {
    return Problem(t, "volume " + v.name() + ": " + s.ToString());
  }
  ++t.changed;
  std::printf("  added the %s site %s %s of volume %s to the VLDB\n", SiteType(type),
              server.address.c_str(), st.partition().c_str(), v.name().c_str());
}

int Summary(const DbCommand& c, const std::string& what, const Tally& t) {
  std::printf("%s: %d %s checked, %d changed, %d left for you (above)\n", c.name.c_str(), t.checked,
              what.c_str(), t.changed, t.problems);
  return t.problems == 0 ? kExitOk : 1;
}

std::vector<Switch> SyncSwitches() {
  return {{"server", true, "the file server (required)"},
          {"partition", true, "only this partition of it"},
          {"cell", true, "the cell (required)"}};
}

}  // namespace

// heka vos syncvldb -server S [-partition P] -cell C
int VosSyncVldb(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos syncvldb", argc, argv, SyncSwitches(), {"server", "cell"});
  if (c.exit) return *c.exit;
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  auto instances = Instances(c, *server);
  if (!instances.ok()) return c.Fail(instances.status());
  Tally t;
  for (const fs::pb::VolumeStatus& st : instances->volumes()) SyncInstance(c, *server, st, t);
  return Summary(c, "instances", t);
}

// heka vos syncserv -server S [-partition P] -cell C
int VosSyncServ(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos syncserv", argc, argv, SyncSwitches(), {"server", "cell"});
  if (c.exit) return *c.exit;
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  auto instances = Instances(c, *server);
  if (!instances.ok()) return c.Fail(instances.status());
  std::set<uint64_t> here;
  for (const fs::pb::VolumeStatus& st : instances->volumes()) here.insert(st.id());
  db::ListVolumesRequest list;
  list.set_cell(c.Get("cell"));
  list.set_server_uuid(server->server.uuid());
  list.mutable_options()->set_leader_only(true);
  auto entries = c.db->Run(c.db->client->ListVolumes(list));
  if (!entries.ok()) return c.Fail(entries.status());
  Tally t;
  for (const db::Volume& v : entries->volumes()) {
    ++t.checked;
    google::protobuf::RepeatedPtrField<db::VolumeSite> kept;
    std::vector<std::string> gone;
    for (const db::VolumeSite& s : v.sites()) {
      const bool mine = s.server_uuid() == server->server.uuid() &&
                        (!c.Has("partition") || s.partition() == c.Get("partition"));
      const uint64_t id = v.id() + (IsRoSite(s.type()) ? 1 : s.type() == db::VolumeSite::BK ? 2 : 0);
      if (!mine || s.type() == db::VolumeSite::RO_UNRELEASED || here.count(id)) {
        *kept.Add() = s;
        continue;
      }
      if (s.type() == db::VolumeSite::RW) {
        Problem(t, "volume " + v.name() + " has no instance on its RW site " + server->address + " " +
                       s.partition() + ": restore it from a dump (heka vos restore) or remove "
                       "its entry (heka vos remove)");
        *kept.Add() = s;
        continue;
      }
      gone.push_back(std::string(SiteType(s.type())) + " site " + s.partition());
    }
    if (gone.empty()) continue;
    if (Status s = WriteVolumeSites(c, v.id(), kept); !s.ok()) {
      Problem(t, "volume " + v.name() + ": " + s.ToString());
      continue;
    }
    ++t.changed;
    for (const std::string& g : gone) {
      std::printf("  removed the %s of volume %s on %s from the VLDB (no instance there)\n",
                  g.c_str(), v.name().c_str(), server->address.c_str());
    }
  }
  return Summary(c, "VLDB entries", t);
}

}  // namespace heka::cli

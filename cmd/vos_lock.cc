// heka vos lock / unlock / zap — as OpenAFS's. `lock` takes a volume's VLDB operation lock so
// that no operation (move, backup, ...) runs on it; `unlock` releases it, also one left by an
// operation that died (its generation is bumped by the next lock, so that operation is fenced
// if it comes back); `zap` removes an instance from a file server that the VLDB does not name
// (a stray one), without touching the VLDB.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

// The VLDB entry named by -id, for a command that takes -id and -cell.
Result<db::Volume> EntryOf(DbCommand& c) {
  auto entry = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"), true)));
  if (!entry.ok()) return entry.status();
  return entry->volume();
}

std::vector<Switch> IdSwitches() {
  return {{"id", true, "volume name or id (required)"}, {"cell", true, "the cell (required)"}};
}

}  // namespace

// heka vos lock -id V -cell C
int VosLock(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos lock", argc, argv, IdSwitches(), {"id", "cell"});
  if (c.exit) return *c.exit;
  auto entry = EntryOf(c);
  if (!entry.ok()) return c.Fail(entry.status());
  db::Command cmd;
  db::LockVolume* lock = cmd.mutable_lock_volume();
  lock->set_id(entry->id());
  lock->set_owner("vos lock pid " + std::to_string(::getpid()));
  lock->set_ttl_ms(365LL * 24 * 3600 * 1000);  // until vos unlock
  lock->set_operation("lock");
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  if (!r.ok()) return c.Fail(r.status());
  std::printf("Locked VLDB entry for volume %s (generation %llu)\n", entry->name().c_str(),
              static_cast<unsigned long long>(r->generation()));
  return kExitOk;
}

// heka vos unlock -id V -cell C
int VosUnlock(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos unlock", argc, argv, IdSwitches(), {"id", "cell"});
  if (c.exit) return *c.exit;
  auto entry = EntryOf(c);
  if (!entry.ok()) return c.Fail(entry.status());
  db::Command cmd;
  cmd.mutable_unlock_volume()->set_id(entry->id());
  cmd.mutable_unlock_volume()->set_force(true);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  if (!r.ok()) return c.Fail(r.status());
  std::printf("Released lock on VLDB entry for volume %s\n", entry->name().c_str());
  return kExitOk;
}

// heka vos zap -server S -partition P -id ID -cell C
int VosZap(int argc, char** argv) {
  DbCommand c = StartDbCommand("vos zap", argc, argv,
                               {{"server", true, "file server (required)"},
                                {"partition", true, "its partition (required)"},
                                {"id", true, "the instance's volume id (required)"},
                                {"cell", true, "the cell (required)"}},
                               {"server", "partition", "id", "cell"});
  if (c.exit) return *c.exit;
  char* end = nullptr;
  const std::string text = c.Get("id");
  const uint64_t id = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || id == 0) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-id wants a volume id (a number)"));
  }
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return c.Fail(s);
  // The VLDB's instances stay: vos remove is for those. An entry's ids are RW, RW + 1 (RO)
  // and RW + 2 (BK).
  for (uint64_t base : {id, id - 1, id - 2}) {
    if (base == 0 || base > id) continue;
    auto entry = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), std::to_string(base), true)));
    if (!entry.ok()) continue;
    for (const db::VolumeSite& s : entry->volume().sites()) {
      const uint64_t site_id = base + (IsRoSite(s.type()) ? 1 : s.type() == db::VolumeSite::BK ? 2 : 0);
      if (site_id == id && s.server_uuid() == server->server.uuid() && s.partition() == c.Get("partition")) {
        return c.Fail(Error(Code::kInvalidArgument,
                            "the VLDB names this instance (volume " + entry->volume().name() +
                                "): vos zap removes only stray ones; use heka vos remove"));
      }
    }
  }
  VolumeServerClient fs(*c.db, *server);
  fs::pb::DeleteVolumeRequest del;
  del.set_cell(c.Get("cell"));
  del.set_id(id);
  auto r = fs.Delete(del);
  if (!r.ok()) return c.Fail(r.status().WithContext("file server " + server->address));
  std::printf("Volume %llu deleted from %s %s\n", static_cast<unsigned long long>(id),
              server->address.c_str(), c.Get("partition").c_str());
  return kExitOk;
}

}  // namespace heka::cli

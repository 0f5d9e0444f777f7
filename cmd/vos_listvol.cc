// heka vos listvol — the volumes a file server holds, per partition, as OpenAFS's vos listvol
// prints them (name, id, type, usage, on-line), with totals. Cell administrators see their
// cell's volumes (-cell); provider administrators may leave -cell out and see every cell's.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

// The partitions to print: -partition, else the server's, then any others the reply names.
std::vector<std::string> Partitions(const DbCommand& c, const NamedServer& server,
                                    const fs::pb::ListVolumesReply& rep) {
  std::vector<std::string> out;
  if (c.Has("partition")) return {c.Get("partition")};
  for (const std::string& p : server.server.partitions()) out.push_back(p);
  for (const fs::pb::VolumeStatus& v : rep.volumes()) {
    if (std::find(out.begin(), out.end(), v.partition()) == out.end()) {
      out.push_back(v.partition());
    }
  }
  return out;
}

void PrintTable(const DbCommand& c, const NamedServer& server, fs::pb::ListVolumesReply rep) {
  std::sort(rep.mutable_volumes()->begin(), rep.mutable_volumes()->end(),
            [](const fs::pb::VolumeStatus& a, const fs::pb::VolumeStatus& b) {
              return a.name() != b.name() ? a.name() < b.name() : a.id() < b.id();
            });
  int online = 0, offline = 0;
  uint64_t usage = 0;
  for (const std::string& p : Partitions(c, server, rep)) {
    int n = 0;
    for (const fs::pb::VolumeStatus& v : rep.volumes()) n += v.partition() == p;
    std::printf("Total number of volumes on server %s partition %s: %d\n", server.address.c_str(),
                p.c_str(), n);
    for (const fs::pb::VolumeStatus& v : rep.volumes()) {
      if (v.partition() != p) continue;
      std::printf("%-32s %10llu %s %10s K  %s\n", v.name().c_str(),
                  static_cast<unsigned long long>(v.id()), VolumeTypeName(v.type()),
                  Kib(v.usage_bytes()).c_str(), v.online() ? "On-line" : "Off-line");
      (v.online() ? online : offline)++;
      usage += v.usage_bytes();
    }
    std::printf("\n");
  }
  std::printf("Total volumes: %d on-line, %d off-line; total usage %s K\n", online, offline,
              Kib(usage).c_str());
}

}  // namespace

// heka vos listvol -server S [-partition P] [-cell C] [-format json]
int VosListVol(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos listvol", argc, argv,
      {{"server", true, "file server: UUID, host:port or host (required)"},
       {"partition", true, "only this partition (default: all of the server's)"},
       {"cell", true, "only this cell's volumes (required unless provider administrator)"}},
      {"server"}, true);
  if (c.exit) return *c.exit;
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  if (c.Has("partition")) {
    if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return c.Fail(s);
  }
  fs::pb::ListVolumesRequest req;
  req.set_partition(c.Get("partition"));
  req.set_cell(c.Get("cell"));
  VolumeServerClient fs(*c.db, *server);
  auto r = fs.List(req);
  if (!r.ok()) {
    Status s = r.status().WithContext("file server " + server->address);
    if (s.code() == Code::kPermissionDenied && !c.Has("cell")) {
      s = Status(s.code(), s.message() + " (cell administrators give -cell)");
    }
    return c.Fail(s);
  }
  if (c.json) return PrintOrFail(c, *r);
  PrintTable(c, *server, std::move(*r));
  return kExitOk;
}

}  // namespace heka::cli

// heka vos examine — one volume as OpenAFS's vos examine shows it: the volume header from the
// file server of its RW site (size, quota, files, counters, partition), then the VLDB entry.
// When that file server cannot answer, the VLDB entry is still printed and the command fails.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

// The RW site of `v` ("" uuid when it has none).
db::VolumeSite RwSite(const db::Volume& v) {
  for (const db::VolumeSite& s : v.sites()) {
    if (s.type() == db::VolumeSite::RW) return s;
  }
  return db::VolumeSite();
}

// The file server's view of `v`; the error says which server could not answer and why.
Result<fs::pb::VolumeStatus> ExamineOnServer(DbSession& db, const db::Volume& v,
                                             std::string* server_name) {
  db::VolumeSite site = RwSite(v);
  if (site.server_uuid().empty()) {
    return Error(Code::kNotFound, "the VLDB entry has no RW site to examine");
  }
  auto server = ServerByUuid(db, site.server_uuid());
  if (!server.ok()) return server.status();
  *server_name = server->address;
  VolumeServerClient fs(db, *server);
  fs::pb::ExamineVolumeRequest req;
  req.set_cell(v.cell());
  req.set_id(v.id());
  auto r = fs.Examine(req);
  if (!r.ok()) return r.status().WithContext("file server " + server->address);
  return r->status();
}

void PrintHeader(const fs::pb::VolumeStatus& st, const std::string& server) {
  std::printf("%-32s %10llu %s %10s K  %s\n", st.name().c_str(), U(st.id()),
              VolumeTypeName(st.type()), Kib(st.usage_bytes()).c_str(),
              st.online() ? "On-line" : "Off-line");
  std::printf("    %s %s\n", server.c_str(), st.partition().c_str());
  if (st.quota_bytes() == 0) {
    std::printf("    MaxQuota      unlimited\n");
  } else {
    std::printf("    MaxQuota %10s K  (%llu bytes)\n", Kib(st.quota_bytes()).c_str(),
                U(st.quota_bytes()));
  }
  std::printf("    Usage    %10s K  (%llu bytes), %llu files\n", Kib(st.usage_bytes()).c_str(),
              U(st.usage_bytes()), U(st.files()));
  std::printf("    Partition %s: %s K free\n", st.partition().c_str(),
              Kib(st.partition_free_bytes()).c_str());
  std::printf("    %llu operations: %llu reads (%llu bytes), %llu stores (%llu bytes)\n",
              U(st.ops()), U(st.reads()), U(st.bytes_read()), U(st.stores()), U(st.bytes_stored()));
  std::printf("    Change serial %llu\n", U(st.serial()));
  std::printf("\n");
}

void PrintVldb(DbSession& db, const db::Volume& v) {
  PrintEntry(v, LoadServerNames(db));
  std::printf(
      "    quota: %s, created: %s\n",
      v.quota_bytes() == 0 ? "unlimited" : (std::to_string(v.quota_bytes()) + " bytes").c_str(),
      FormatTime(v.created_ns()).c_str());
}

// {"volume": <VLDB entry>, "status": <volume header>} or, without the header,
// {"volume": ..., "server_error": "..."}.
int PrintJsonBoth(const DbCommand& c, const db::Volume& v, const Result<fs::pb::VolumeStatus>& st) {
  auto vj = VolumeToJson(v);
  if (!vj.ok()) return c.Fail(vj.status());
  std::string out = "{\"volume\": " + *vj;
  if (st.ok()) {
    auto sj = ToJson(*st);
    if (!sj.ok()) return c.Fail(sj.status());
    out += ", \"status\": " + *sj;
  } else {
    out += ", \"server_error\": " + JsonQuote(st.status().ToString());
  }
  std::printf("%s}\n", out.c_str());
  return kExitOk;
}

}  // namespace

// heka vos examine -id NAME_OR_ID -cell C [-format json]
int VosExamine(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos examine", argc, argv,
      {{"id", true, "volume name or id (required)"}, {"cell", true, "the cell (required)"}},
      {"id", "cell"}, true);
  if (c.exit) return *c.exit;
  auto r = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("id"))));
  if (!r.ok()) return c.Fail(r.status());
  const db::Volume& v = r->volume();
  std::string server;
  Result<fs::pb::VolumeStatus> st = ExamineOnServer(*c.db, v, &server);
  if (c.json) {
    int rc = PrintJsonBoth(c, v, st);
    if (rc != kExitOk || st.ok()) return rc;
  } else {
    if (st.ok()) PrintHeader(*st, server);
    PrintVldb(*c.db, v);
  }
  if (st.ok()) return kExitOk;
  std::fflush(stdout);
  return c.Fail(st.status().WithContext("volume header not shown"));
}

}  // namespace heka::cli

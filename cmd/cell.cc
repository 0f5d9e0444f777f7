// heka cell create | list | show | delete | addrealm
// Tenants' cells in the PTDB (provider administrators create and delete them).
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

const Switch kName = {"name", true, "cell name (required)"};

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

std::string Quota(uint64_t bytes) {
  return bytes == 0 ? "unlimited" : std::to_string(bytes) + " bytes";
}

int WriteOrFail(DbCommand& c, db::Command cmd) {
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  return r.ok() ? kExitOk : c.Fail(r.status());
}

int PrintOrFail(const DbCommand& c, const google::protobuf::Message& m) {
  Status s = PrintJson(m);
  return s.ok() ? kExitOk : c.Fail(s);
}

}  // namespace

// heka cell create -name C [-realm R ...] [-quota BYTES]
int CellCreate(int argc, char** argv) {
  std::vector<Switch> switches = {
      kName,
      {"realm", true, "Kerberos realm it trusts; repeat or comma-separate for several"},
      {"quota", true, "cell quota in bytes (default 0 = unlimited)"}};
  DbCommand c = StartDbCommand("cell create", argc, argv, switches, {"name"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  auto* op = cmd.mutable_create_cell();
  op->set_name(c.Get("name"));
  for (const std::string& realm : Repeated(argc, argv, DbSwitches(switches), "realm")) {
    op->add_realms(realm);
  }
  if (c.Has("quota")) {
    auto quota = IntSwitch(c.sw, "quota");
    if (!quota.ok() || *quota < 0) {
      return UsageError(c.name, Error(Code::kInvalidArgument, "-quota wants a number of bytes"));
    }
    op->set_quota_bytes(static_cast<uint64_t>(*quota));
  }
  int rc = WriteOrFail(c, std::move(cmd));
  if (rc == kExitOk) std::printf("Cell %s created\n", c.Get("name").c_str());
  return rc;
}

// heka cell list [-format json]
int CellList(int argc, char** argv) {
  DbCommand c = StartDbCommand("cell list", argc, argv, {}, {}, true);
  if (c.exit) return *c.exit;
  auto r = c.db->Run(c.db->client->ListCells(db::ListCellsRequest()));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  std::printf("%-24s %-9s %-20s %s\n", "Cell", "Status", "Quota", "Realms");
  for (const db::Cell& cell : r->cells()) {
    std::printf("%-24s %-9s %-20s %s\n", cell.name().c_str(), cell.status().c_str(),
                Quota(cell.quota_bytes()).c_str(), Join(cell.realms()).c_str());
  }
  return kExitOk;
}

// heka cell show -name C [-format json]
int CellShow(int argc, char** argv) {
  DbCommand c = StartDbCommand("cell show", argc, argv, {kName}, {"name"}, true);
  if (c.exit) return *c.exit;
  db::GetCellRequest req;
  req.set_name(c.Get("name"));
  auto r = c.db->Run(c.db->client->GetCell(req));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  const db::Cell& cell = r->cell();
  std::printf("Cell %s\n", cell.name().c_str());
  std::printf("  status:  %s\n", cell.status().c_str());
  std::printf("  realms:  %s\n", Join(cell.realms()).c_str());
  std::printf("  quota:   %s\n", Quota(cell.quota_bytes()).c_str());
  std::printf("  created: %s\n", FormatTime(cell.created_ns()).c_str());
  return kExitOk;
}

// heka cell delete -name C
int CellDelete(int argc, char** argv) {
  DbCommand c = StartDbCommand("cell delete", argc, argv, {kName}, {"name"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  cmd.mutable_delete_cell()->set_name(c.Get("name"));
  return WriteOrFail(c, std::move(cmd));
}

// heka cell addrealm -name C -realm R
int CellAddRealm(int argc, char** argv) {
  DbCommand c = StartDbCommand("cell addrealm", argc, argv,
                               {kName, {"realm", true, "Kerberos realm to trust (required)"}},
                               {"name", "realm"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  cmd.mutable_add_realm()->set_cell(c.Get("name"));
  cmd.mutable_add_realm()->set_realm(c.Get("realm"));
  return WriteOrFail(c, std::move(cmd));
}

}  // namespace heka::cli

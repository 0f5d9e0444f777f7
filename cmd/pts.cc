// heka pts createuser | creategroup | delete | adduser | removeuser | rename
// The PTDB changes, with OpenAFS's switch names. Like `pts`, the commands that only change
// something print nothing on success; the ones that create an entry print its id.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

const Switch kCell = {"cell", true, "the cell (required)"};

Result<db::CommandResult> Write(DbCommand& c, db::Command cmd) {
  return c.db->Run(c.db->client->Write(std::move(cmd)));
}

// "alice" for "alice@ACME.TEST" or "alice/admin@ACME.TEST": the default PTDB name.
std::string FirstComponent(const std::string& principal) {
  return principal.substr(0, principal.find_first_of("/@"));
}

}  // namespace

// heka pts createuser -name <principal> [-id N] -cell C
int PtsCreateUser(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("pts createuser", argc, argv,
                     {{"name", true, "Kerberos principal, e.g. alice@ACME.TEST (required)"},
                      {"id", true, "user id to use (default: the next free one)"},
                      kCell},
                     {"name", "cell"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  auto* op = cmd.mutable_create_user();
  op->set_cell(c.Get("cell"));
  op->set_principal(c.Get("name"));
  if (c.Has("id")) {
    auto id = IntSwitch(c.sw, "id");
    if (!id.ok()) return UsageError(c.name, id.status());
    op->set_id(*id);
  }
  auto r = Write(c, std::move(cmd));
  if (!r.ok()) return c.Fail(r.status());
  std::printf("User %s has id %lld\n", FirstComponent(c.Get("name")).c_str(),
              static_cast<long long>(r->id()));
  return kExitOk;
}

// heka pts creategroup -name G [-owner O] [-id N] -cell C
int PtsCreateGroup(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("pts creategroup", argc, argv,
                     {{"name", true, "group name, e.g. alice:friends (required)"},
                      {"owner", true, "owner's name (default: you)"},
                      {"id", true, "group id to use, negative (default: the next free one)"},
                      kCell},
                     {"name", "cell"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  auto* op = cmd.mutable_create_group();
  op->set_cell(c.Get("cell"));
  op->set_name(c.Get("name"));
  op->set_owner(c.Get("owner"));
  if (c.Has("id")) {
    auto id = IntSwitch(c.sw, "id");
    if (!id.ok()) return UsageError(c.name, id.status());
    op->set_id(*id);
  }
  auto r = Write(c, std::move(cmd));
  if (!r.ok()) return c.Fail(r.status());
  std::printf("group %s has id %lld\n", c.Get("name").c_str(), static_cast<long long>(r->id()));
  return kExitOk;
}

// heka pts delete -nameorid X -cell C
int PtsDelete(int argc, char** argv) {
  DbCommand c = StartDbCommand("pts delete", argc, argv,
                               {{"nameorid", true, "user or group name or id (required)"}, kCell},
                               {"nameorid", "cell"});
  if (c.exit) return *c.exit;
  // DeleteEntry names the entry; an id is resolved at the leader first.
  auto entry = LookupEntry(*c.db, c.Get("cell"), c.Get("nameorid"), true);
  if (!entry.ok()) return c.Fail(entry.status());
  db::Command cmd;
  cmd.mutable_delete_entry()->set_cell(c.Get("cell"));
  cmd.mutable_delete_entry()->set_name(entry->name());
  auto r = Write(c, std::move(cmd));
  return r.ok() ? kExitOk : c.Fail(r.status());
}

namespace {

int ChangeMembership(const std::string& name, bool add, int argc, char** argv) {
  DbCommand c = StartDbCommand(
      name, argc, argv,
      {{"user", true, "user name (required)"}, {"group", true, "group name (required)"}, kCell},
      {"user", "group", "cell"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  if (add) {
    cmd.mutable_add_member()->set_cell(c.Get("cell"));
    cmd.mutable_add_member()->set_user(c.Get("user"));
    cmd.mutable_add_member()->set_group(c.Get("group"));
  } else {
    cmd.mutable_remove_member()->set_cell(c.Get("cell"));
    cmd.mutable_remove_member()->set_user(c.Get("user"));
    cmd.mutable_remove_member()->set_group(c.Get("group"));
  }
  auto r = Write(c, std::move(cmd));
  return r.ok() ? kExitOk : c.Fail(r.status());
}

}  // namespace

// heka pts adduser -user U -group G -cell C
int PtsAddUser(int argc, char** argv) { return ChangeMembership("pts adduser", true, argc, argv); }

// heka pts removeuser -user U -group G -cell C
int PtsRemoveUser(int argc, char** argv) {
  return ChangeMembership("pts removeuser", false, argc, argv);
}

// heka pts rename -oldname A -newname B -cell C
int PtsRename(int argc, char** argv) {
  DbCommand c = StartDbCommand("pts rename", argc, argv,
                               {{"oldname", true, "current name (required)"},
                                {"newname", true, "new name (required)"},
                                kCell},
                               {"oldname", "newname", "cell"});
  if (c.exit) return *c.exit;
  db::Command cmd;
  cmd.mutable_rename_entry()->set_cell(c.Get("cell"));
  cmd.mutable_rename_entry()->set_old_name(c.Get("oldname"));
  cmd.mutable_rename_entry()->set_new_name(c.Get("newname"));
  auto r = Write(c, std::move(cmd));
  return r.ok() ? kExitOk : c.Fail(r.status());
}

}  // namespace heka::cli

// heka pts examine | membership | listowned | listentries
// PTDB reads, printed as OpenAFS's `pts` prints them, or as JSON with -format json.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

const Switch kCell = {"cell", true, "the cell (required)"};
const Switch kNameOrId = {"nameorid", true, "user or group name or id (required)"};

// The name of entry `id` for display: "-" for none, the number if it cannot be looked up.
std::string NameOf(DbSession& db, const std::string& cell, int64_t id) {
  if (id == 0) return "-";
  auto e = LookupEntry(db, cell, std::to_string(id));
  return e.ok() ? e->name() : std::to_string(id);
}

int PrintOrFail(const DbCommand& c, const google::protobuf::Message& m) {
  Status s = PrintJson(m);
  return s.ok() ? kExitOk : c.Fail(s);
}

}  // namespace

// heka pts examine -nameorid X -cell C [-format json]
int PtsExamine(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("pts examine", argc, argv, {kNameOrId, kCell}, {"nameorid", "cell"}, true);
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell");
  auto r = c.db->Run(c.db->client->GetEntry(EntryRequest(cell, c.Get("nameorid"))));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  const db::Entry& e = r->entry();
  std::printf("Name: %s, id: %lld, owner: %s, creator: %s,\n", e.name().c_str(),
              static_cast<long long>(e.id()), NameOf(*c.db, cell, e.owner_id()).c_str(),
              e.creator_id() == 0 ? "a provider administrator"
                                  : NameOf(*c.db, cell, e.creator_id()).c_str());
  std::printf("  membership: %d, cell: %s, created: %s\n", r->groups_size(), e.cell().c_str(),
              FormatTime(e.created_ns()).c_str());
  if (!e.principal().empty()) std::printf("  principal: %s\n", e.principal().c_str());
  return kExitOk;
}

// heka pts membership -nameorid X -cell C [-format json]
// A user's groups, or a group's members.
int PtsMembership(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("pts membership", argc, argv, {kNameOrId, kCell}, {"nameorid", "cell"}, true);
  if (c.exit) return *c.exit;
  auto entry = LookupEntry(*c.db, c.Get("cell"), c.Get("nameorid"));
  if (!entry.ok()) return c.Fail(entry.status());
  db::MembershipRequest req;
  req.set_cell(c.Get("cell"));
  req.set_name(entry->name());
  auto r = c.db->Run(c.db->client->Membership(req));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  if (entry->id() > 0) {
    std::printf("Groups %s (id: %lld) is a member of:\n", entry->name().c_str(),
                static_cast<long long>(entry->id()));
  } else {
    std::printf("Members of %s (id: %lld) are:\n", entry->name().c_str(),
                static_cast<long long>(entry->id()));
  }
  for (const std::string& n : r->names()) std::printf("  %s\n", n.c_str());
  return kExitOk;
}

// heka pts listowned -nameorid X -cell C [-format json]
int PtsListOwned(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("pts listowned", argc, argv, {kNameOrId, kCell}, {"nameorid", "cell"}, true);
  if (c.exit) return *c.exit;
  auto entry = LookupEntry(*c.db, c.Get("cell"), c.Get("nameorid"));
  if (!entry.ok()) return c.Fail(entry.status());
  db::ListOwnedRequest req;
  req.set_cell(c.Get("cell"));
  req.set_owner(entry->name());
  auto r = c.db->Run(c.db->client->ListOwned(req));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  std::printf("Groups owned by %s (id: %lld) are:\n", entry->name().c_str(),
              static_cast<long long>(entry->id()));
  for (const db::Entry& e : r->entries()) std::printf("  %s\n", e.name().c_str());
  return kExitOk;
}

// heka pts listentries [-users] [-groups] -cell C [-format json]   (default: users)
int PtsListEntries(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "pts listentries", argc, argv,
      {{"users", false, "list users (the default)"}, {"groups", false, "list groups"}, kCell},
      {"cell"}, true);
  if (c.exit) return *c.exit;
  db::ListEntriesRequest req;
  req.set_cell(c.Get("cell"));
  req.set_groups(c.Has("groups"));
  req.set_users(c.Has("users") || !c.Has("groups"));
  auto r = c.db->Run(c.db->client->ListEntries(req));
  if (!r.ok()) return c.Fail(r.status());
  r->clear_header();
  if (c.json) return PrintOrFail(c, *r);
  std::printf("%-32s %8s %8s %8s\n", "Name", "ID", "Owner", "Creator");
  for (const db::Entry& e : r->entries()) {
    std::printf("%-32s %8lld %8lld %8lld\n", e.name().c_str(), static_cast<long long>(e.id()),
                static_cast<long long>(e.owner_id()), static_cast<long long>(e.creator_id()));
  }
  return kExitOk;
}

}  // namespace heka::cli

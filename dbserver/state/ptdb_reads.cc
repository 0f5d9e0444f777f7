// PTDB reads. Only provider administrators and registered users of a cell may look into its
// PTDB; machine principals get CPSs but may not enumerate users.
#include "dbserver/state/internal/ops.h"
#include "krb/identity.h"

namespace heka::db::internal {

namespace {

Status RequireReader(Database& db, const Actor& actor, const std::string& cell) {
  auto access = AccessTo(db, actor, cell);
  if (!access.ok()) return access.status();
  if (actor.provider_admin && !access->exists) {
    return Error(Code::kNotFound, "no cell '" + cell + "'");
  }
  if (!actor.provider_admin && access->user_id == 0) {
    return Error(Code::kPermissionDenied,
                 actor.principal + " is not a user of cell '" + cell + "'");
  }
  return Status::Ok();
}

Result<std::vector<Entry>> CollectEntries(Query& q) {
  std::vector<Entry> entries;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return entries;
    entries.push_back(EntryFromRow(q));
  }
}

Result<std::vector<std::string>> CollectNames(Query& q) {
  std::vector<std::string> names;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return names;
    names.push_back(q.Text(0));
  }
}

Result<Entry> ExistingEntry(Database& db, const std::string& cell, const std::string& name,
                            int64_t id) {
  auto entry = name.empty() ? FindEntryById(db, cell, id) : FindEntry(db, cell, name);
  if (!entry.ok()) return entry.status();
  if (!entry->has_value()) {
    std::string what = name.empty() ? "id " + std::to_string(id) : "'" + name + "'";
    return Error(Code::kNotFound, "no entry " + what + " in cell '" + cell + "'");
  }
  return **entry;
}

}  // namespace

Result<Entry> ReadEntry(Database& db, const Actor& actor, const std::string& cell,
                        const std::string& name, int64_t id) {
  Status s = RequireReader(db, actor, cell);
  if (!s.ok()) return s;
  return ExistingEntry(db, cell, name, id);
}

Result<std::vector<Entry>> ReadEntries(Database& db, const Actor& actor, const std::string& cell,
                                       bool users, bool groups) {
  Status s = RequireReader(db, actor, cell);
  if (!s.ok()) return s;
  if (!users && !groups) users = groups = true;
  Query q(db,
          "SELECT cell, id, name, principal, owner_id, creator_id, created_ns FROM entries "
          "WHERE cell = ? AND ((? AND id > 0) OR (? AND id < 0)) ORDER BY id",
          cell, users, groups);
  return CollectEntries(q);
}

Result<std::vector<std::string>> ReadMembership(Database& db, const Actor& actor,
                                                const std::string& cell, const std::string& name) {
  Status s = RequireReader(db, actor, cell);
  if (!s.ok()) return s;
  auto entry = ExistingEntry(db, cell, name, 0);
  if (!entry.ok()) return entry.status();
  Query q(db,
          entry->id() > 0 ? "SELECT e.name FROM members m JOIN entries e ON e.cell = m.cell AND "
                            "e.id = m.group_id WHERE m.cell = ? AND m.user_id = ? ORDER BY e.name"
                          : "SELECT e.name FROM members m JOIN entries e ON e.cell = m.cell AND "
                            "e.id = m.user_id WHERE m.cell = ? AND m.group_id = ? ORDER BY e.name",
          cell, entry->id());
  return CollectNames(q);
}

Result<std::vector<Entry>> ReadOwned(Database& db, const Actor& actor, const std::string& cell,
                                     const std::string& owner) {
  Status s = RequireReader(db, actor, cell);
  if (!s.ok()) return s;
  auto entry = ExistingEntry(db, cell, owner, 0);
  if (!entry.ok()) return entry.status();
  Query q(db,
          "SELECT cell, id, name, principal, owner_id, creator_id, created_ns FROM entries "
          "WHERE cell = ? AND owner_id = ? ORDER BY name",
          cell, entry->id());
  return CollectEntries(q);
}

Result<Cps> ReadCps(Database& db, const Actor& actor, const std::string& cell,
                    const std::string& principal) {
  if (!actor.provider_admin && !actor.machine && actor.principal != principal) {
    return Error(Code::kPermissionDenied,
                 actor.principal + " may not read the CPS of " + principal);
  }
  auto exists = CellExists(db, cell);
  if (!exists.ok()) return exists.status();
  if (!*exists) return Error(Code::kNotFound, "no cell '" + cell + "'");
  auto id = krb::Identity::Parse(principal);
  if (!id.ok()) return id.status();
  Cps cps;
  cps.group_ids.push_back(kAnyUserId);
  if (id->is_machine()) return cps;  // machines are never users, whatever their realm
  auto trusted = TrustsRealm(db, cell, id->realm());
  if (!trusted.ok()) return trusted.status();
  if (*trusted) cps.group_ids.push_back(kAuthUserId);
  auto user = FindUserByPrincipal(db, cell, principal);
  if (!user.ok()) return user.status();
  if (!user->has_value()) return cps;
  cps.user_id = (*user)->id();
  Query q(db, "SELECT group_id FROM members WHERE cell = ? AND user_id = ? ORDER BY group_id DESC",
          cell, cps.user_id);
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return cps;
    cps.group_ids.push_back(q.Int(0));
  }
}

}  // namespace heka::db::internal

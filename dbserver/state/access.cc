#include "dbserver/state/internal/access.h"

#include <algorithm>

#include "dbserver/state/state_machine.h"
#include "krb/identity.h"

namespace heka::db::internal {

Actor MakeActor(const std::string& principal, bool provider_admin) {
  Actor actor;
  actor.principal = principal;
  actor.provider_admin = provider_admin;
  auto id = krb::Identity::Parse(principal);
  if (id.ok()) {
    actor.valid = true;
    actor.machine = id->is_machine();
    actor.realm = id->realm();
    actor.first_component = id->components().empty() ? "" : id->components()[0];
  }
  return actor;
}

Result<CellAccess> AccessTo(Database& db, const Actor& actor, std::string_view cell) {
  CellAccess access;
  auto exists = CellExists(db, cell);
  if (!exists.ok()) return exists.status();
  access.exists = *exists;
  if (!access.exists) return access;
  if (actor.valid && !actor.machine) {
    auto user = FindUserByPrincipal(db, cell, actor.principal);
    if (!user.ok()) return user.status();
    if (user->has_value()) access.user_id = (*user)->id();
  }
  access.admin = actor.provider_admin;
  if (!access.admin && access.user_id != 0) {
    auto member = IsMember(db, cell, kAdministratorsId, access.user_id);
    if (!member.ok()) return member.status();
    access.admin = *member;
  }
  return access;
}

Status RequireCellAdmin(Database& db, const Actor& actor, std::string_view cell, CellAccess* out) {
  auto access = AccessTo(db, actor, cell);
  if (!access.ok()) return access.status();
  if (!access->exists && actor.provider_admin) {
    return Error(Code::kNotFound, "no cell '" + std::string(cell) + "'");
  }
  if (!access->exists || !access->admin) {
    return Error(Code::kPermissionDenied,
                 actor.principal + " is not an administrator of cell '" + std::string(cell) + "'");
  }
  if (out != nullptr) *out = *access;
  return Status::Ok();
}

Entry EntryFromRow(const Query& q) {
  Entry e;
  e.set_cell(q.Text(0));
  e.set_id(q.Int(1));
  e.set_name(q.Text(2));
  e.set_principal(q.Text(3));
  e.set_owner_id(q.Int(4));
  e.set_creator_id(q.Int(5));
  e.set_created_ns(q.Int(6));
  return e;
}

namespace {
Result<std::optional<Entry>> OneEntry(Query& q) {
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Entry>();
  return std::optional<Entry>(EntryFromRow(q));
}
}  // namespace

Result<std::optional<Entry>> FindEntry(Database& db, std::string_view cell, std::string_view name) {
  Query q(db,
          "SELECT cell, id, name, principal, owner_id, creator_id, created_ns FROM entries "
          "WHERE cell = ? AND name = ?",
          cell, name);
  return OneEntry(q);
}

Result<std::optional<Entry>> FindEntryById(Database& db, std::string_view cell, int64_t id) {
  Query q(db,
          "SELECT cell, id, name, principal, owner_id, creator_id, created_ns FROM entries "
          "WHERE cell = ? AND id = ?",
          cell, id);
  return OneEntry(q);
}

Result<std::optional<Entry>> FindUserByPrincipal(Database& db, std::string_view cell,
                                                 std::string_view principal) {
  Query q(db,
          "SELECT cell, id, name, principal, owner_id, creator_id, created_ns FROM entries "
          "WHERE cell = ? AND principal = ?",
          cell, principal);
  return OneEntry(q);
}

Result<bool> IsMember(Database& db, std::string_view cell, int64_t group_id, int64_t user_id) {
  Query q(db, "SELECT 1 FROM members WHERE cell = ? AND group_id = ? AND user_id = ?", cell,
          group_id, user_id);
  return q.Step();
}

Result<bool> TrustsRealm(Database& db, std::string_view cell, std::string_view realm) {
  Query q(db, "SELECT 1 FROM cell_realms WHERE cell = ? AND realm = ?", cell, realm);
  return q.Step();
}

Result<bool> CellExists(Database& db, std::string_view cell) {
  Query q(db, "SELECT 1 FROM cells WHERE name = ?", cell);
  return q.Step();
}

Result<bool> OwnsGroup(Database& db, const Entry& group, int64_t user_id) {
  if (user_id == 0) return false;
  if (group.owner_id() == user_id) return true;
  if (group.owner_id() >= 0) return false;
  return IsMember(db, group.cell(), group.owner_id(), user_id);
}

// --- Name rules ----------------------------------------------------------------------------

namespace {
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// pts accepts numeric ids wherever it accepts names, so a name may not look like one.
bool LooksNumeric(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
}  // namespace

bool ValidCellName(std::string_view name) {
  if (name.empty() || name.size() > 63 || !IsLowerAlnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '.' || c == '-'; });
}

bool ValidEntryName(std::string_view name, bool group) {
  if (name.empty() || name.size() > 63 || LooksNumeric(name)) return false;
  bool printable = std::all_of(name.begin(), name.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '@' && c != '/' && c != '\\';
  });
  if (!printable) return false;
  size_t colons = std::count(name.begin(), name.end(), ':');
  if (!group) return colons == 0;
  if (colons == 0) return true;
  size_t colon = name.find(':');
  return colons == 1 && colon > 0 && colon + 1 < name.size();
}

bool ValidRealm(std::string_view realm) {
  if (realm.empty() || realm.size() > 255) return false;
  return std::all_of(realm.begin(), realm.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '-' || c == '_'; });
}

bool ValidVolumeName(std::string_view name) {
  if (name.empty() || name.size() > 22 || LooksNumeric(name)) return false;
  if (name.ends_with(".readonly") || name.ends_with(".backup")) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '-' || c == '_'; });
}

}  // namespace heka::db::internal

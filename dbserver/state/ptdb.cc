// PTDB commands: users, groups, membership, renames. Rules: docs/formats/db-schema.md.
#include <algorithm>

#include "dbserver/state/internal/ops.h"
#include "dbserver/state/internal/schema.h"
#include "krb/identity.h"

namespace heka::db::internal {

namespace {

bool IsBuiltinGroup(int64_t id) {
  return id == kAdministratorsId || id == kAnyUserId || id == kAuthUserId;
}

// The caller must be a registered user of `cell` or an administrator of it.
Result<CellAccess> RequireCellUser(Database& db, const Actor& actor, const std::string& cell) {
  auto access = AccessTo(db, actor, cell);
  if (!access.ok()) return access.status();
  if (!access->exists && actor.provider_admin) {
    return Error(Code::kNotFound, "no cell '" + cell + "'");
  }
  if (!access->exists || (!access->admin && access->user_id == 0)) {
    return Error(Code::kPermissionDenied,
                 actor.principal + " is not a user of cell '" + cell + "'");
  }
  return access;
}

Result<Entry> RequireEntry(Database& db, const std::string& cell, const std::string& name) {
  auto entry = FindEntry(db, cell, name);
  if (!entry.ok()) return entry.status();
  if (!entry->has_value()) {
    return Error(Code::kNotFound, "no entry '" + name + "' in cell '" + cell + "'");
  }
  return **entry;
}

// Hands out an id: `requested` if non-zero (it must have the right sign, be free and never
// used before), else the cell's counter. Either way the counter moves past the id, so the
// counter never hands out an id twice.
Result<int64_t> AllocateId(Database& db, const std::string& cell, bool group, int64_t requested) {
  Query q(db, "SELECT next_user_id, next_group_id FROM cells WHERE name = ?", cell);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kNotFound, "no cell '" + cell + "'");
  int64_t next = group ? q.Int(1) : q.Int(0);
  int64_t id = requested != 0 ? requested : next;
  if (requested != 0) {
    if (group ? requested >= 0 : requested <= 0) {
      return Error(Code::kInvalidArgument, std::string(group ? "group" : "user") + " id " +
                                               std::to_string(requested) + " has the wrong sign");
    }
    Query used(db,
               "SELECT 1 FROM entries WHERE cell = ?1 AND id = ?2 "
               "UNION ALL SELECT 1 FROM retired_ids WHERE cell = ?1 AND id = ?2",
               cell, id);
    auto taken = used.Step();
    if (!taken.ok()) return taken.status();
    if (*taken) {
      return Error(Code::kAlreadyExists, "id " + std::to_string(id) + " is or was in use");
    }
  }
  int64_t new_next = group ? std::min(next, id - 1) : std::max(next, id + 1);
  Query update(db,
               group ? "UPDATE cells SET next_group_id = ? WHERE name = ?"
                     : "UPDATE cells SET next_user_id = ? WHERE name = ?",
               new_next, cell);
  Status s = update.Run();
  if (!s.ok()) return s;
  return id;
}

Status InsertEntry(ApplyContext& ctx, const Entry& e) {
  Query q(ctx.db,
          "INSERT INTO entries (cell, id, name, principal, owner_id, creator_id, created_ns) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)",
          e.cell(), e.id(), e.name());
  if (e.principal().empty()) {
    q.BindNull();
  } else {
    q.Bind(e.principal());
  }
  q.Bind(e.owner_id()).Bind(e.creator_id()).Bind(e.created_ns());
  return q.Run();
}

Status RequireFreeName(Database& db, const std::string& cell, const std::string& name) {
  auto existing = FindEntry(db, cell, name);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return Error(Code::kAlreadyExists, "'" + name + "' exists in cell '" + cell + "'");
  }
  return Status::Ok();
}

// Who may use a group name: "owner:x" the user `owner` (who must exist) or an administrator;
// plain names and "system:x" administrators only. Returns the prefix user's id, or 0.
Result<int64_t> CheckGroupName(Database& db, const std::string& cell, const CellAccess& access,
                               const std::string& name) {
  if (!ValidEntryName(name, true)) {
    return Error(Code::kInvalidArgument, "invalid group name '" + name + "'");
  }
  size_t colon = name.find(':');
  std::string prefix = colon == std::string::npos ? "" : name.substr(0, colon);
  if (prefix.empty() || prefix == "system") {
    if (access.admin) return int64_t{0};
    return Error(Code::kPermissionDenied,
                 "only administrators of cell '" + cell + "' may name a group '" + name + "'");
  }
  auto owner = FindEntry(db, cell, prefix);
  if (!owner.ok()) return owner.status();
  bool is_user = owner->has_value() && (*owner)->id() > 0;
  if (!access.admin && (!is_user || (*owner)->id() != access.user_id)) {
    return Error(Code::kPermissionDenied,
                 "group names with prefix '" + prefix + ":' belong to user '" + prefix + "'");
  }
  if (!is_user) return Error(Code::kInvalidArgument, "no user '" + prefix + "' in cell " + cell);
  return (*owner)->id();
}

// The owner of a new group: the named entry, else the prefix user, else the caller's entry,
// else system:administrators. Non-administrators may only give a group to themselves.
Result<int64_t> ChooseOwner(Database& db, const CreateGroup& op, const CellAccess& access,
                            int64_t prefix_user) {
  int64_t owner = prefix_user != 0 ? prefix_user : access.user_id;
  if (owner == 0) owner = kAdministratorsId;
  if (op.owner().empty()) return owner;
  auto named = RequireEntry(db, op.cell(), op.owner());
  if (!named.ok()) return named.status();
  if (!access.admin && named->id() != owner) {
    return Error(Code::kPermissionDenied,
                 "only administrators may create a group owned by '" + op.owner() + "'");
  }
  return named->id();
}

}  // namespace

Status ApplyCreateUser(ApplyContext& ctx, const CreateUser& op) {
  CellAccess access;
  Status s = RequireCellAdmin(ctx.db, ctx.actor, op.cell(), &access);
  if (!s.ok()) return s;
  auto id = krb::Identity::Parse(op.principal());
  if (!id.ok()) return id.status();
  if (id->is_machine()) {
    return Error(Code::kInvalidArgument,
                 "machine principal " + op.principal() + " cannot be a user");
  }
  auto trusted = TrustsRealm(ctx.db, op.cell(), id->realm());
  if (!trusted.ok()) return trusted.status();
  if (!*trusted) {
    return Error(Code::kInvalidArgument,
                 "cell '" + op.cell() + "' does not trust realm " + id->realm());
  }
  std::string name = op.name().empty() ? id->components()[0] : op.name();
  if (!ValidEntryName(name, false)) {
    return Error(Code::kInvalidArgument, "invalid user name '" + name + "'");
  }
  auto existing = FindUserByPrincipal(ctx.db, op.cell(), op.principal());
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return Error(Code::kAlreadyExists, op.principal() + " is already user '" + (*existing)->name() +
                                           "' of cell '" + op.cell() + "'");
  }
  s = RequireFreeName(ctx.db, op.cell(), name);
  if (!s.ok()) return s;
  auto uid = AllocateId(ctx.db, op.cell(), false, op.id());
  if (!uid.ok()) return uid.status();
  Entry e;
  e.set_cell(op.cell());
  e.set_id(*uid);
  e.set_name(name);
  e.set_principal(op.principal());
  e.set_creator_id(access.user_id);
  e.set_created_ns(ctx.cmd.time_ns());
  ctx.result->set_id(*uid);
  return InsertEntry(ctx, e);
}

Status ApplyCreateGroup(ApplyContext& ctx, const CreateGroup& op) {
  auto access = RequireCellUser(ctx.db, ctx.actor, op.cell());
  if (!access.ok()) return access.status();
  auto prefix_user = CheckGroupName(ctx.db, op.cell(), *access, op.name());
  if (!prefix_user.ok()) return prefix_user.status();
  auto owner = ChooseOwner(ctx.db, op, *access, *prefix_user);
  if (!owner.ok()) return owner.status();
  Status s = RequireFreeName(ctx.db, op.cell(), op.name());
  if (!s.ok()) return s;
  auto gid = AllocateId(ctx.db, op.cell(), true, op.id());
  if (!gid.ok()) return gid.status();
  Entry e;
  e.set_cell(op.cell());
  e.set_id(*gid);
  e.set_name(op.name());
  e.set_owner_id(*owner);
  e.set_creator_id(access->user_id);
  e.set_created_ns(ctx.cmd.time_ns());
  ctx.result->set_id(*gid);
  return InsertEntry(ctx, e);
}

Status ApplyDeleteEntry(ApplyContext& ctx, const DeleteEntry& op) {
  auto access = RequireCellUser(ctx.db, ctx.actor, op.cell());
  if (!access.ok()) return access.status();
  auto entry = RequireEntry(ctx.db, op.cell(), op.name());
  if (!entry.ok()) return entry.status();
  if (IsBuiltinGroup(entry->id())) {
    return Error(Code::kPermissionDenied, "system group '" + op.name() + "' cannot be deleted");
  }
  if (!access->admin) {
    auto owns = entry->id() < 0 ? OwnsGroup(ctx.db, *entry, access->user_id) : Result<bool>(false);
    if (!owns.ok()) return owns.status();
    if (!*owns) {
      return Error(Code::kPermissionDenied,
                   ctx.actor.principal + " may not delete '" + op.name() + "'");
    }
  }
  // Groups the entry owned fall to system:administrators; its id is retired for good.
  for (const char* sql : {"DELETE FROM members WHERE cell = ?1 AND (user_id = ?2 OR group_id = ?2)",
                          "DELETE FROM entries WHERE cell = ?1 AND id = ?2",
                          "UPDATE entries SET owner_id = -204 WHERE cell = ?1 AND owner_id = ?2",
                          "INSERT INTO retired_ids (cell, id) VALUES (?1, ?2)"}) {
    Query q(ctx.db, sql, op.cell(), entry->id());
    Status s = q.Run();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

namespace {

struct MemberChange {
  Entry user;
  Entry group;
};

// Resolves and authorises a membership change: group owners (directly or through the owning
// group) and cell administrators may change a group's members; members are users.
Result<MemberChange> CheckMemberChange(ApplyContext& ctx, const std::string& cell,
                                       const std::string& user, const std::string& group) {
  auto access = RequireCellUser(ctx.db, ctx.actor, cell);
  if (!access.ok()) return access.status();
  MemberChange change;
  auto g = RequireEntry(ctx.db, cell, group);
  if (!g.ok()) return g.status();
  if (g->id() > 0) return Error(Code::kInvalidArgument, "'" + group + "' is not a group");
  if (!access->admin) {
    auto owns = OwnsGroup(ctx.db, *g, access->user_id);
    if (!owns.ok()) return owns.status();
    if (!*owns) {
      return Error(Code::kPermissionDenied,
                   ctx.actor.principal + " does not own group '" + group + "'");
    }
  }
  if (g->id() == kAnyUserId || g->id() == kAuthUserId) {
    return Error(Code::kInvalidArgument, "membership of '" + group + "' is implicit");
  }
  auto u = RequireEntry(ctx.db, cell, user);
  if (!u.ok()) return u.status();
  if (u->id() < 0) return Error(Code::kInvalidArgument, "groups cannot be members of groups");
  change.user = std::move(*u);
  change.group = std::move(*g);
  return change;
}

}  // namespace

Status ApplyAddMember(ApplyContext& ctx, const AddMember& op) {
  auto change = CheckMemberChange(ctx, op.cell(), op.user(), op.group());
  if (!change.ok()) return change.status();
  auto member = IsMember(ctx.db, op.cell(), change->group.id(), change->user.id());
  if (!member.ok()) return member.status();
  if (*member) {
    return Error(Code::kAlreadyExists, "'" + op.user() + "' is a member of '" + op.group() + "'");
  }
  Query q(ctx.db, "INSERT INTO members (cell, group_id, user_id) VALUES (?, ?, ?)", op.cell(),
          change->group.id(), change->user.id());
  return q.Run();
}

Status ApplyRemoveMember(ApplyContext& ctx, const RemoveMember& op) {
  auto change = CheckMemberChange(ctx, op.cell(), op.user(), op.group());
  if (!change.ok()) return change.status();
  Query q(ctx.db, "DELETE FROM members WHERE cell = ? AND group_id = ? AND user_id = ?", op.cell(),
          change->group.id(), change->user.id());
  Status s = q.Run();
  if (!s.ok()) return s;
  if (q.changes() == 0) {
    return Error(Code::kNotFound, "'" + op.user() + "' is not a member of '" + op.group() + "'");
  }
  return Status::Ok();
}

namespace {

Status SetName(Database& db, const std::string& cell, int64_t id, const std::string& name) {
  Status s = RequireFreeName(db, cell, name);
  if (!s.ok()) return s;
  Query q(db, "UPDATE entries SET name = ? WHERE cell = ? AND id = ?", name, cell, id);
  return q.Run();
}

// A renamed user's groups "old:x" become "new:x" (those it owns, as in AFS).
Status RenamePrefixGroups(Database& db, const Entry& user, const std::string& new_name) {
  std::vector<std::pair<int64_t, std::string>> groups;
  Query q(db, "SELECT id, name FROM entries WHERE cell = ? AND owner_id = ? ORDER BY id",
          user.cell(), user.id());
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string name = q.Text(1);
    if (name.starts_with(user.name() + ":")) {
      groups.emplace_back(q.Int(0), new_name + name.substr(user.name().size()));
    }
  }
  for (const auto& [id, name] : groups) {
    if (!ValidEntryName(name, true)) {
      return Error(Code::kInvalidArgument, "renamed group name '" + name + "' is invalid");
    }
    Status s = SetName(db, user.cell(), id, name);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ApplyRenameEntry(ApplyContext& ctx, const RenameEntry& op) {
  auto access = RequireCellUser(ctx.db, ctx.actor, op.cell());
  if (!access.ok()) return access.status();
  auto entry = RequireEntry(ctx.db, op.cell(), op.old_name());
  if (!entry.ok()) return entry.status();
  if (IsBuiltinGroup(entry->id())) {
    return Error(Code::kPermissionDenied, "system group '" + op.old_name() + "' cannot be renamed");
  }
  if (entry->id() > 0) {
    if (!access->admin) {
      return Error(Code::kPermissionDenied, "only administrators may rename users");
    }
    if (!ValidEntryName(op.new_name(), false)) {
      return Error(Code::kInvalidArgument, "invalid user name '" + op.new_name() + "'");
    }
    Status s = SetName(ctx.db, op.cell(), entry->id(), op.new_name());
    if (!s.ok()) return s;
    return RenamePrefixGroups(ctx.db, *entry, op.new_name());
  }
  if (!access->admin) {
    auto owns = OwnsGroup(ctx.db, *entry, access->user_id);
    if (!owns.ok()) return owns.status();
    if (!*owns) {
      return Error(Code::kPermissionDenied,
                   ctx.actor.principal + " does not own group '" + op.old_name() + "'");
    }
  }
  auto prefix_user = CheckGroupName(ctx.db, op.cell(), *access, op.new_name());
  if (!prefix_user.ok()) return prefix_user.status();
  return SetName(ctx.db, op.cell(), entry->id(), op.new_name());
}

}  // namespace heka::db::internal

// Cells: create, delete, trusted realms, quota, and reading them.
#include <algorithm>
#include <set>

#include "dbserver/state/internal/ops.h"
#include "dbserver/state/internal/schema.h"

namespace heka::db::internal {

namespace {

Status RequireProviderAdmin(const Actor& actor, std::string_view what) {
  if (actor.provider_admin) return Status::Ok();
  return Error(Code::kPermissionDenied,
               std::string(what) + " needs a provider administrator, not " + actor.principal);
}

Status InsertSystemGroups(ApplyContext& ctx, const std::string& cell) {
  struct Group {
    int64_t id;
    const char* name;
  };
  for (Group g : {Group{kAdministratorsId, "system:administrators"},
                  Group{kAnyUserId, "system:anyuser"}, Group{kAuthUserId, "system:authuser"}}) {
    Query q(ctx.db,
            "INSERT INTO entries (cell, id, name, principal, owner_id, creator_id, created_ns) "
            "VALUES (?, ?, ?, NULL, ?, 0, ?)",
            cell, g.id, std::string_view(g.name), kAdministratorsId, ctx.cmd.time_ns());
    Status s = q.Run();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status InsertRealm(Database& db, const std::string& cell, const std::string& realm) {
  Query q(db, "INSERT OR IGNORE INTO cell_realms (cell, realm) VALUES (?, ?)", cell, realm);
  return q.Run();
}

Result<Cell> LoadCell(Database& db, const std::string& name) {
  Query q(db, "SELECT name, quota_bytes, status, created_ns FROM cells WHERE name = ?", name);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kNotFound, "no cell '" + name + "'");
  Cell cell;
  cell.set_name(q.Text(0));
  cell.set_quota_bytes(q.Uint(1));
  cell.set_status(q.Text(2));
  cell.set_created_ns(q.Int(3));
  Query realms(db, "SELECT realm FROM cell_realms WHERE cell = ? ORDER BY realm", name);
  for (;;) {
    auto r = realms.Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    cell.add_realms(realms.Text(0));
  }
  return cell;
}

}  // namespace

Status ApplyCreateCell(ApplyContext& ctx, const CreateCell& op) {
  Status s = RequireProviderAdmin(ctx.actor, "creating a cell");
  if (!s.ok()) return s;
  if (!ValidCellName(op.name())) {
    return Error(Code::kInvalidArgument, "invalid cell name '" + op.name() + "'");
  }
  for (const auto& realm : op.realms()) {
    if (!ValidRealm(realm)) return Error(Code::kInvalidArgument, "invalid realm '" + realm + "'");
  }
  auto exists = CellExists(ctx.db, op.name());
  if (!exists.ok()) return exists.status();
  if (*exists) return Error(Code::kAlreadyExists, "cell '" + op.name() + "' exists");
  Query q(ctx.db,
          "INSERT INTO cells (name, quota_bytes, status, created_ns, next_user_id, next_group_id) "
          "VALUES (?, ?, 'active', ?, ?, ?)",
          op.name(), op.quota_bytes(), ctx.cmd.time_ns(), kFirstUserId, kFirstGroupId);
  s = q.Run();
  if (!s.ok()) return s;
  for (const auto& realm : op.realms()) {
    s = InsertRealm(ctx.db, op.name(), realm);
    if (!s.ok()) return s;
  }
  return InsertSystemGroups(ctx, op.name());
}

Status ApplyDeleteCell(ApplyContext& ctx, const DeleteCell& op) {
  Status s = RequireProviderAdmin(ctx.actor, "deleting a cell");
  if (!s.ok()) return s;
  auto exists = CellExists(ctx.db, op.name());
  if (!exists.ok()) return exists.status();
  if (!*exists) return Error(Code::kNotFound, "no cell '" + op.name() + "'");
  Query volumes(ctx.db, "SELECT count(*) FROM volumes WHERE cell = ?", op.name());
  auto row = volumes.Step();
  if (!row.ok()) return row.status();
  if (volumes.Int(0) > 0) {
    return Error(Code::kInvalidArgument, "cell '" + op.name() + "' still has " +
                                             std::to_string(volumes.Int(0)) + " volumes");
  }
  for (const char* sql :
       {"DELETE FROM members WHERE cell = ?", "DELETE FROM entries WHERE cell = ?",
        "DELETE FROM retired_ids WHERE cell = ?", "DELETE FROM cell_realms WHERE cell = ?",
        "DELETE FROM cells WHERE name = ?"}) {
    Query del(ctx.db, sql, op.name());
    s = del.Run();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status ApplyAddRealm(ApplyContext& ctx, const AddRealm& op) {
  Status s = RequireCellAdmin(ctx.db, ctx.actor, op.cell());
  if (!s.ok()) return s;
  if (!ValidRealm(op.realm())) {
    return Error(Code::kInvalidArgument, "invalid realm '" + op.realm() + "'");
  }
  auto trusted = TrustsRealm(ctx.db, op.cell(), op.realm());
  if (!trusted.ok()) return trusted.status();
  if (*trusted) {
    return Error(Code::kAlreadyExists,
                 "cell '" + op.cell() + "' already trusts realm " + op.realm());
  }
  return InsertRealm(ctx.db, op.cell(), op.realm());
}

Status ApplySetCellQuota(ApplyContext& ctx, const SetCellQuota& op) {
  Status s = RequireProviderAdmin(ctx.actor, "setting a cell quota");
  if (!s.ok()) return s;
  Query q(ctx.db, "UPDATE cells SET quota_bytes = ? WHERE name = ?", op.quota_bytes(), op.cell());
  s = q.Run();
  if (!s.ok()) return s;
  if (q.changes() == 0) return Error(Code::kNotFound, "no cell '" + op.cell() + "'");
  return Status::Ok();
}

// Provider administrators and machine principals (file servers) see every cell; anyone else
// only the cells where they are a registered user.
Result<Cell> ReadCell(Database& db, const Actor& actor, const std::string& name) {
  if (!actor.provider_admin && !actor.machine) {
    auto access = AccessTo(db, actor, name);
    if (!access.ok()) return access.status();
    if (access->user_id == 0) {
      return Error(Code::kPermissionDenied, actor.principal + " may not see cell '" + name + "'");
    }
  }
  return LoadCell(db, name);
}

Result<std::vector<Cell>> ReadCells(Database& db, const Actor& actor) {
  bool all = actor.provider_admin || actor.machine;
  Query q(db, all ? "SELECT name FROM cells ORDER BY name"
                  : "SELECT DISTINCT cell FROM entries WHERE principal = ? ORDER BY cell");
  if (!all) q.Bind(actor.principal);
  std::vector<Cell> cells;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto cell = LoadCell(db, q.Text(0));
    if (!cell.ok()) return cell.status();
    cells.push_back(std::move(*cell));
  }
  return cells;
}

}  // namespace heka::db::internal

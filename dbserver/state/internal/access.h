// Who is asking, what they may do in a cell, and lookups of PTDB rows shared by the command
// and read code of the state machine. Not thread-safe (called under the StateMachine's mutex).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dbserver/state/internal/sqlite.h"
#include "proto/db.pb.h"

namespace heka::db::internal {

// The authenticated caller of a command or read.
struct Actor {
  std::string principal;
  bool provider_admin = false;
  bool valid = false;    // the principal parses as a fully qualified Kerberos principal
  bool machine = false;  // host/... or heka/...
  std::string realm;
  std::string first_component;
};
Actor MakeActor(const std::string& principal, bool provider_admin);

// What the caller is in one cell.
struct CellAccess {
  bool exists = false;
  int64_t user_id = 0;  // the caller's user entry in the cell; 0 if not registered
  bool admin = false;   // provider administrator, or member of the cell's system:administrators
};
Result<CellAccess> AccessTo(Database& db, const Actor& actor, std::string_view cell);

// Succeeds when the caller administers `cell` (fills `out` if given). A missing cell is
// kNotFound for provider administrators and kPermissionDenied for everyone else, the same
// answer as an existing cell they do not administer.
Status RequireCellAdmin(Database& db, const Actor& actor, std::string_view cell,
                        CellAccess* out = nullptr);

// Reads an entry from a row of `SELECT cell, id, name, principal, owner_id, creator_id,
// created_ns FROM entries ...`.
Entry EntryFromRow(const Query& q);

// PTDB lookups; std::nullopt when there is no such row.
Result<std::optional<Entry>> FindEntry(Database& db, std::string_view cell, std::string_view name);
Result<std::optional<Entry>> FindEntryById(Database& db, std::string_view cell, int64_t id);
Result<std::optional<Entry>> FindUserByPrincipal(Database& db, std::string_view cell,
                                                 std::string_view principal);
Result<bool> IsMember(Database& db, std::string_view cell, int64_t group_id, int64_t user_id);
Result<bool> TrustsRealm(Database& db, std::string_view cell, std::string_view realm);
Result<bool> CellExists(Database& db, std::string_view cell);

// True when `user_id` owns group `group`: directly, or as a member of the owning group.
Result<bool> OwnsGroup(Database& db, const Entry& group, int64_t user_id);

// Name rules (docs/formats/db-schema.md).
bool ValidCellName(std::string_view name);
bool ValidEntryName(std::string_view name, bool group);
bool ValidRealm(std::string_view realm);
bool ValidVolumeName(std::string_view name);

}  // namespace heka::db::internal

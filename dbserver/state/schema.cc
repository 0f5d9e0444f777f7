#include "dbserver/state/internal/schema.h"

#include <string>

namespace heka::db::internal {

namespace {

// Version 1. Never edit: a new version adds a migration step in InitSchema.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE cells (
  name TEXT PRIMARY KEY,
  quota_bytes INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  next_user_id INTEGER NOT NULL,
  next_group_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE cell_realms (
  cell TEXT NOT NULL,
  realm TEXT NOT NULL,
  PRIMARY KEY (cell, realm)
) WITHOUT ROWID;
CREATE TABLE entries (
  cell TEXT NOT NULL,
  id INTEGER NOT NULL,
  name TEXT NOT NULL,
  principal TEXT,
  owner_id INTEGER NOT NULL,
  creator_id INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  PRIMARY KEY (cell, id),
  UNIQUE (cell, name),
  UNIQUE (cell, principal)
) WITHOUT ROWID;
CREATE INDEX entries_by_principal ON entries (principal);
CREATE INDEX entries_by_owner ON entries (cell, owner_id);
CREATE TABLE members (
  cell TEXT NOT NULL,
  group_id INTEGER NOT NULL,
  user_id INTEGER NOT NULL,
  PRIMARY KEY (cell, group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (cell, user_id);
CREATE TABLE retired_ids (
  cell TEXT NOT NULL,
  id INTEGER NOT NULL,
  PRIMARY KEY (cell, id)
) WITHOUT ROWID;
CREATE TABLE servers (
  uuid TEXT PRIMARY KEY,
  principal TEXT NOT NULL,
  addresses TEXT NOT NULL,
  partitions TEXT NOT NULL,
  registered_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE volumes (
  id INTEGER PRIMARY KEY,
  cell TEXT NOT NULL,
  name TEXT NOT NULL,
  encrypted INTEGER NOT NULL,
  key_fingerprint TEXT NOT NULL,
  quota_bytes INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  lock_generation INTEGER NOT NULL,
  lock_held INTEGER NOT NULL,
  lock_owner TEXT NOT NULL,
  lock_expires_ns INTEGER NOT NULL,
  lock_operation TEXT NOT NULL,
  lock_phase TEXT NOT NULL,
  UNIQUE (cell, name)
);
CREATE TABLE volume_sites (
  volume_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  server_uuid TEXT NOT NULL,
  partition TEXT NOT NULL,
  type INTEGER NOT NULL,
  PRIMARY KEY (volume_id, position)
) WITHOUT ROWID;
CREATE INDEX volume_sites_by_server ON volume_sites (server_uuid);
CREATE TABLE db_members (
  id INTEGER PRIMARY KEY,
  principal TEXT NOT NULL,
  address TEXT NOT NULL
);
CREATE TABLE applied_requests (
  caller TEXT NOT NULL,
  request_id TEXT NOT NULL,
  time_ns INTEGER NOT NULL,
  result BLOB NOT NULL,
  PRIMARY KEY (caller, request_id)
) WITHOUT ROWID;
CREATE INDEX applied_requests_by_time ON applied_requests (time_ns);
)sql";

Result<bool> HasMetaTable(Database& db) {
  Query q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  return q.Step();
}

Status CreateV1(Database& db) {
  Status s = db.Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = db.Exec(kSchemaV1);
  if (s.ok()) {
    Query q(db, "INSERT INTO meta (key, value) VALUES (?, ?), (?, 0), (?, ?)", kMetaSchemaVersion,
            kSchemaVersion, kMetaLastApplied, kMetaNextVolumeId, kFirstVolumeId);
    s = q.Run();
  }
  if (s.ok()) return db.Exec("COMMIT");
  (void)db.Exec("ROLLBACK");
  return s;
}

}  // namespace

Status InitSchema(Database& db) {
  auto exists = HasMetaTable(db);
  if (!exists.ok()) return exists.status();
  if (!*exists) return CreateV1(db);
  auto version = GetMeta(db, kMetaSchemaVersion);
  if (!version.ok()) return version.status();
  if (*version != kSchemaVersion) {
    return Error(Code::kUnimplemented, "database schema version " + std::to_string(*version) +
                                           " is not " + std::to_string(kSchemaVersion));
  }
  return Status::Ok();
}

Result<int64_t> GetMeta(Database& db, const char* key) {
  Query q(db, "SELECT value FROM meta WHERE key = ?", std::string_view(key));
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Error(Code::kInternal, std::string("meta key missing: ") + key);
  return q.Int(0);
}

Status SetMeta(Database& db, const char* key, int64_t value) {
  Query q(db, "UPDATE meta SET value = ? WHERE key = ?", value, std::string_view(key));
  return q.Run();
}

}  // namespace heka::db::internal

#include "util/sqlite.h"

namespace heka {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  std::string message = std::string(what) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc)
    message += " (" + std::string(sqlite3_errmsg(db)) + ")";
  return Error((rc & 0xff) == SQLITE_FULL ? Code::kNoSpace : Code::kIoError, std::move(message));
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, bool create,
                                                 bool durable) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  if (rc == SQLITE_CANTOPEN && !create) return Error(Code::kNotFound, "no database at " + path);
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "open " + path);
  sqlite3_extended_result_codes(raw, 1);
  for (const char* pragma : {"PRAGMA journal_mode=WAL",
                             durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                             "PRAGMA foreign_keys=OFF", "PRAGMA busy_timeout=5000"}) {
    sqlite3_stmt* stmt = nullptr;
    rc = sqlite3_prepare_v2(raw, pragma, -1, &stmt, nullptr);
    if (rc == SQLITE_OK) {
      do {
        rc = sqlite3_step(stmt);
      } while (rc == SQLITE_ROW);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_OK) return SqliteStatus(raw, rc, pragma);
  }
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close(db_);
}

Status SqliteDb::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, sql);
  return Status::Ok();
}

Status SqliteDb::BackupTo(SqliteDb& dest) {
  sqlite3_backup* backup = sqlite3_backup_init(dest.db_, "main", db_, "main");
  if (backup == nullptr) return SqliteStatus(dest.db_, sqlite3_errcode(dest.db_), "backup");
  int rc = sqlite3_backup_step(backup, -1);
  int finish = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return SqliteStatus(dest.db_, rc, "backup step");
  if (finish != SQLITE_OK) return SqliteStatus(dest.db_, finish, "backup finish");
  return Status::Ok();
}

Result<sqlite3_stmt*> SqliteDb::Acquire(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !sqlite3_stmt_busy(it->second)) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, std::string("prepare ") + sql);
  if (it == cache_.end()) cache_.emplace(sql, stmt);
  return stmt;
}

void SqliteDb::Release(sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  auto it = cache_.find(sqlite3_sql(stmt));
  if (it == cache_.end() || it->second != stmt) sqlite3_finalize(stmt);
}

SqliteQuery::SqliteQuery(SqliteDb& db, const char* sql) : db_(db) {
  auto stmt = db.Acquire(sql);
  if (stmt.ok()) {
    stmt_ = *stmt;
  } else {
    status_ = stmt.status();
  }
}

SqliteQuery::~SqliteQuery() {
  if (stmt_ != nullptr) db_.Release(stmt_);
}

SqliteQuery& SqliteQuery::Check(int rc) {
  if (rc != SQLITE_OK && status_.ok()) status_ = SqliteStatus(db_.handle(), rc, "bind");
  return *this;
}

SqliteQuery& SqliteQuery::BindInt(int64_t value) {
  if (stmt_ == nullptr) return *this;
  return Check(sqlite3_bind_int64(stmt_, next_param_++, value));
}

SqliteQuery& SqliteQuery::Bind(std::string_view text) { return Bind(AsBytes(text)); }

SqliteQuery& SqliteQuery::Bind(ByteView blob) {
  if (stmt_ == nullptr) return *this;
  // A zero-length blob with a null pointer would bind NULL; names are never NULL.
  static const uint8_t kEmpty = 0;
  const void* p = blob.empty() ? &kEmpty : blob.data();
  return Check(
      sqlite3_bind_blob(stmt_, next_param_++, p, static_cast<int>(blob.size()), SQLITE_TRANSIENT));
}

Result<bool> SqliteQuery::Step() {
  if (!status_.ok()) return status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  status_ = SqliteStatus(db_.handle(), rc, sqlite3_sql(stmt_));
  return status_;
}

Status SqliteQuery::Run() {
  auto row = Step();
  if (!row.ok()) return row.status();
  if (*row) return Error(Code::kInternal, std::string("unexpected row from ") + sqlite3_sql(stmt_));
  return Status::Ok();
}

std::string SqliteQuery::Str(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(p, n);
}

Bytes SqliteQuery::Blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? Bytes() : Bytes(p, p + n);
}

}  // namespace heka

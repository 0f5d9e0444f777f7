#include "dbserver/state/internal/sqlite.h"

namespace heka::db::internal {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  std::string message = std::string(what) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc)
    message += " (" + std::string(sqlite3_errmsg(db)) + ")";
  int primary = rc & 0xff;
  bool deterministic = primary == SQLITE_CONSTRAINT || primary == SQLITE_MISMATCH ||
                       primary == SQLITE_RANGE || primary == SQLITE_TOOBIG;
  return Error(deterministic ? Code::kInternal : Code::kIoError, std::move(message));
}

// --- Database ------------------------------------------------------------------------------

Result<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Database> db(new Database(raw));
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "open " + path);
  sqlite3_extended_result_codes(raw, 1);
  // journal_mode answers with a row, so it goes through a statement rather than Exec.
  // synchronous=NORMAL: in WAL mode a commit is atomic and survives a process crash; only an
  // OS crash can lose the newest commits, and those entries are still in the Raft log (which
  // is fsynced before anything commits), so the member re-applies them at start. Snapshots
  // checkpoint (and so sync) the WAL before Raft may truncate its log.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
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

Database::~Database() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  cache_.clear();
  if (db_ != nullptr) sqlite3_close(db_);
}

Status Database::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, sql);
  return Status::Ok();
}

Result<sqlite3_stmt*> Database::Acquire(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !sqlite3_stmt_busy(it->second)) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, std::string("prepare ") + sql);
  if (it == cache_.end()) cache_.emplace(sql, stmt);
  return stmt;
}

void Database::Release(sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  auto it = cache_.find(sqlite3_sql(stmt));
  if (it == cache_.end() || it->second != stmt) sqlite3_finalize(stmt);
}

// --- Query ---------------------------------------------------------------------------------

Query::Query(Database& db, const char* sql) : db_(db) {
  auto stmt = db.Acquire(sql);
  if (stmt.ok()) {
    stmt_ = *stmt;
  } else {
    status_ = stmt.status();
  }
}

Query::~Query() {
  if (stmt_ != nullptr) db_.Release(stmt_);
}

Query& Query::Check(int rc, const char* what) {
  if (rc != SQLITE_OK && status_.ok()) status_ = SqliteStatus(db_.handle(), rc, what);
  return *this;
}

Query& Query::BindInt(int64_t value) {
  if (stmt_ == nullptr) return *this;
  return Check(sqlite3_bind_int64(stmt_, next_param_++, value), "bind");
}

Query& Query::Bind(std::string_view text) {
  if (stmt_ == nullptr) return *this;
  return Check(sqlite3_bind_text(stmt_, next_param_++, text.data(), static_cast<int>(text.size()),
                                 SQLITE_TRANSIENT),
               "bind");
}

Query& Query::BindBlob(ByteView blob) {
  if (stmt_ == nullptr) return *this;
  // A null pointer would bind NULL; an empty blob is a value (key_fingerprint NOT NULL).
  static const uint8_t kEmpty = 0;
  const void* p = blob.empty() ? &kEmpty : blob.data();
  return Check(
      sqlite3_bind_blob(stmt_, next_param_++, p, static_cast<int>(blob.size()), SQLITE_TRANSIENT),
      "bind");
}

Query& Query::BindNull() {
  if (stmt_ == nullptr) return *this;
  return Check(sqlite3_bind_null(stmt_, next_param_++), "bind");
}

Result<bool> Query::Step() {
  if (!status_.ok()) return status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  status_ = SqliteStatus(db_.handle(), rc, sqlite3_sql(stmt_));
  return status_;
}

Status Query::Run() {
  auto row = Step();
  if (!row.ok()) return row.status();
  if (*row) return Error(Code::kInternal, std::string("unexpected row from ") + sqlite3_sql(stmt_));
  return Status::Ok();
}

std::string Query::Text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}

Bytes Query::Blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? Bytes() : Bytes(p, p + n);
}

}  // namespace heka::db::internal

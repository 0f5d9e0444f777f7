// Thin RAII helpers over the SQLite C API for the state machine: a connection that caches its
// prepared statements, and Query, one use of a cached statement with bound parameters.
// Not thread-safe: the StateMachine's mutex serialises every use.
#pragma once

#include <sqlite3.h>

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/bytes.h"
#include "util/status.h"

namespace heka::db::internal {

// Maps a SQLite failure to a Status. Constraint violations are deterministic (every member
// hits them alike): kInternal, recorded in the command's result. Everything else (I/O, full
// disk, out of memory) is particular to this member: kIoError, which Apply treats as fatal.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

// True for a Status that must stop the member rather than be recorded as a command's result.
inline bool IsStorageFailure(const Status& s) { return s.code() == Code::kIoError; }

class Database {
 public:
  // Opens (creating) `path` in WAL mode with synchronous=FULL.
  static Result<std::unique_ptr<Database>> Open(const std::string& path);
  ~Database();  // finalizes every statement and closes the connection
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() const { return db_; }
  // Runs SQL without parameters or result rows (pragmas, DDL, BEGIN/COMMIT). Not cached.
  Status Exec(const char* sql);

  // Returns the cached statement for `sql`, or a fresh uncached one when the cached one is
  // in use (a nested query on the same SQL). Pair every successful call with Release().
  Result<sqlite3_stmt*> Acquire(const char* sql);
  void Release(sqlite3_stmt* stmt);

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One execution of a statement. Bind failures are kept and reported by Step()/Run().
class Query {
 public:
  Query(Database& db, const char* sql);
  template <typename... Args>
  Query(Database& db, const char* sql, const Args&... args) : Query(db, sql) {
    (Bind(args), ...);
  }
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  template <std::integral T>
  Query& Bind(T value) {
    return BindInt(static_cast<int64_t>(value));
  }
  Query& Bind(std::string_view text);
  Query& BindBlob(ByteView blob);  // an empty blob binds x'', never NULL
  Query& BindNull();

  // Advances to the next row: true while there is one, false when done.
  Result<bool> Step();
  // Executes a statement that returns no rows.
  Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  uint64_t Uint(int col) const { return static_cast<uint64_t>(Int(col)); }
  std::string Text(int col) const;
  Bytes Blob(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int columns() const { return sqlite3_column_count(stmt_); }
  int column_type(int col) const { return sqlite3_column_type(stmt_, col); }
  const char* column_name(int col) const { return sqlite3_column_name(stmt_, col); }
  // Rows changed by the last Run() of an INSERT/UPDATE/DELETE.
  int changes() const { return sqlite3_changes(db_.handle()); }

 private:
  Query& BindInt(int64_t value);
  Query& Check(int rc, const char* what);

  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
  int next_param_ = 1;
};

}  // namespace heka::db::internal

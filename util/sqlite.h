// SqliteDb: thin RAII helpers over the SQLite C API: a connection that caches prepared
// statements, and SqliteQuery, one use of a statement with bound parameters. Used by the file
// server's volume metadata and the cache manager's cache index. (dbserver's state machine has
// its own variant, dbserver/state/internal/sqlite.h, which records constraint failures as
// deterministic command results.)
// Not thread-safe: the owner serialises every use (a volume's or the cache's mutex).
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

namespace heka {

// Maps a SQLite failure to a Status: SQLITE_FULL → kNoSpace, everything else → kIoError.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

class SqliteDb {
 public:
  // Opens `path` in WAL mode with synchronous=FULL: a commit is durable when it returns
  // (`durable` false: synchronous=NORMAL, a commit survives a crash of the process but
  // maybe not of the machine). `create`: create the file if missing (otherwise kNotFound).
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path, bool create,
                                                bool durable = true);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* handle() const { return db_; }
  Status Exec(const char* sql);  // no parameters, no rows; not cached
  // Copies the whole database into `dest` (SQLite online backup API).
  Status BackupTo(SqliteDb& dest);

  Result<sqlite3_stmt*> Acquire(const char* sql);  // pair with Release()
  void Release(sqlite3_stmt* stmt);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One execution of a statement. Bind failures are kept and reported by Step()/Run().
class SqliteQuery {
 public:
  SqliteQuery(SqliteDb& db, const char* sql);
  template <typename... Args>
  SqliteQuery(SqliteDb& db, const char* sql, const Args&... args) : SqliteQuery(db, sql) {
    (Bind(args), ...);
  }
  ~SqliteQuery();
  SqliteQuery(const SqliteQuery&) = delete;
  SqliteQuery& operator=(const SqliteQuery&) = delete;

  template <std::integral T>
  SqliteQuery& Bind(T value) {
    return BindInt(static_cast<int64_t>(value));
  }
  SqliteQuery& Bind(std::string_view text);  // bound as a BLOB: names are bytes, not text
  SqliteQuery& Bind(ByteView blob);

  Result<bool> Step();  // true while there is a row
  Status Run();         // a statement that returns no rows

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  uint64_t Uint(int col) const { return static_cast<uint64_t>(Int(col)); }
  std::string Str(int col) const;  // a BLOB or TEXT column as bytes
  Bytes Blob(int col) const;
  int changes() const { return sqlite3_changes(db_.handle()); }

 private:
  SqliteQuery& BindInt(int64_t value);
  SqliteQuery& Check(int rc);

  SqliteDb& db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
  int next_param_ = 1;
};

}  // namespace heka

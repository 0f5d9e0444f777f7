// MetaDb: thin RAII helpers over the SQLite C API for a volume's metadata database: a
// connection that caches prepared statements, and Query, one use of a statement with bound
// parameters. (Same approach as dbserver's helpers; the file server keeps its own copy so it
// does not depend on dbserver internals.)
// Not thread-safe: the owning Volume's mutex serialises every use.
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

namespace heka::fs {

// Maps a SQLite failure to a Status: SQLITE_FULL → kNoSpace, everything else → kIoError.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

class MetaDb {
 public:
  // Opens `path` in WAL mode with synchronous=FULL: a commit is durable when it returns.
  // `create`: create the file if missing (otherwise kNotFound).
  static Result<std::unique_ptr<MetaDb>> Open(const std::string& path, bool create);
  ~MetaDb();
  MetaDb(const MetaDb&) = delete;
  MetaDb& operator=(const MetaDb&) = delete;

  sqlite3* handle() const { return db_; }
  Status Exec(const char* sql);  // no parameters, no rows; not cached
  // Copies the whole database into `dest` (SQLite online backup API).
  Status BackupTo(MetaDb& dest);

  Result<sqlite3_stmt*> Acquire(const char* sql);  // pair with Release()
  void Release(sqlite3_stmt* stmt);

 private:
  explicit MetaDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One execution of a statement. Bind failures are kept and reported by Step()/Run().
class Query {
 public:
  Query(MetaDb& db, const char* sql);
  template <typename... Args>
  Query(MetaDb& db, const char* sql, const Args&... args) : Query(db, sql) {
    (Bind(args), ...);
  }
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  template <std::integral T>
  Query& Bind(T value) {
    return BindInt(static_cast<int64_t>(value));
  }
  Query& Bind(std::string_view text);  // bound as a BLOB: names are bytes, not text
  Query& Bind(ByteView blob);

  Result<bool> Step();  // true while there is a row
  Status Run();         // a statement that returns no rows

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  uint64_t Uint(int col) const { return static_cast<uint64_t>(Int(col)); }
  std::string Str(int col) const;  // a BLOB or TEXT column as bytes
  Bytes Blob(int col) const;
  int changes() const { return sqlite3_changes(db_.handle()); }

 private:
  Query& BindInt(int64_t value);
  Query& Check(int rc);

  MetaDb& db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
  int next_param_ = 1;
};

}  // namespace heka::fs

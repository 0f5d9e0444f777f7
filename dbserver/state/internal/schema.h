// The SQLite schema of the state machine and its `meta` counters. Format and upgrade rules:
// docs/formats/db-schema.md. Not thread-safe (called under the StateMachine's mutex).
#pragma once

#include <cstdint>

#include "dbserver/state/internal/sqlite.h"

namespace heka::db::internal {

inline constexpr int64_t kSchemaVersion = 1;          // meta.schema_version this build writes
inline constexpr int64_t kFirstVolumeId = 536870912;  // RW ids step by 3: id, id+1 (RO), id+2 (BK)
inline constexpr int64_t kVolumeIdStep = 3;
inline constexpr int64_t kFirstUserId = 1;      // users count up from here
inline constexpr int64_t kFirstGroupId = -205;  // groups count down from here (below -204)
inline constexpr int64_t kDedupWindowNs = 24LL * 3600 * 1000 * 1000 * 1000;  // by command time

// meta keys.
inline constexpr const char* kMetaSchemaVersion = "schema_version";
inline constexpr const char* kMetaLastApplied = "last_applied";
inline constexpr const char* kMetaNextVolumeId = "next_volume_id";

// Creates the tables of a new database, or checks that an existing one has a schema version
// this build knows (kUnimplemented otherwise).
Status InitSchema(Database& db);

// Reads / writes one integer of `meta`. A missing key reads as kInternal.
Result<int64_t> GetMeta(Database& db, const char* key);
Status SetMeta(Database& db, const char* key, int64_t value);

}  // namespace heka::db::internal

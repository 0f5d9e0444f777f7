// VLDB row helpers shared by the volume commands, lock commands and reads.
// Not thread-safe (called under the StateMachine's mutex).
#pragma once

#include <optional>
#include <string>

#include "dbserver/state/internal/ops.h"

namespace heka::db::internal {

// A volume row. Volume.lock is set only while lock_held; `generation` survives unlocks.
struct VolumeRow {
  Volume volume;
  bool lock_held = false;
  uint64_t generation = 0;  // the last generation handed out; never reset
};

Result<std::optional<VolumeRow>> LoadVolume(Database& db, uint64_t id);

// A lock is live while held and not expired at the command's time.
inline bool LockLive(const VolumeRow& row, int64_t now_ns) {
  return row.lock_held && row.volume.lock().expires_ns() > now_ns;
}

// Checks sites: registered servers, their listed partitions, known types, at most one RW site,
// no duplicates.
Status ValidateSites(Database& db, const google::protobuf::RepeatedPtrField<VolumeSite>& sites);
// Replaces the volume's sites with `sites`, in order.
Status WriteSites(Database& db, uint64_t id,
                  const google::protobuf::RepeatedPtrField<VolumeSite>& sites);

}  // namespace heka::db::internal

// Volume operation locks with fencing generations, and site changes fenced by them.
// Every time comparison uses Command.time_ns, never this member's clock.
#include <limits>

#include "dbserver/state/internal/volumes.h"

namespace heka::db::internal {

namespace {

// Loads a volume for a command addressed by id alone. Callers who do not administer its cell
// get the same answer whether or not the id exists (DESIGN.md §2: an id reveals nothing).
Result<VolumeRow> VolumeForAdmin(ApplyContext& ctx, uint64_t id) {
  auto row = LoadVolume(ctx.db, id);
  if (!row.ok()) return row.status();
  std::string denied =
      "volume " + std::to_string(id) + " is not in a cell " + ctx.actor.principal + " administers";
  if (!row->has_value()) {
    if (ctx.actor.provider_admin) {
      return Error(Code::kNotFound, "no volume " + std::to_string(id));
    }
    return Error(Code::kPermissionDenied, denied);
  }
  Status s = RequireCellAdmin(ctx.db, ctx.actor, (*row)->volume.cell());
  if (!s.ok()) return Error(Code::kPermissionDenied, denied);
  return std::move(**row);
}

Status LockedError(const VolumeRow& row) {
  const VolumeLock& lock = row.volume.lock();
  return Error(Code::kLocked, "volume " + std::to_string(row.volume.id()) + " is locked by " +
                                  lock.owner() + " for " + lock.operation() + " (generation " +
                                  std::to_string(lock.generation()) + ", expires at " +
                                  std::to_string(lock.expires_ns()) + " ns)");
}

Status FencedError(const VolumeRow& row, uint64_t generation) {
  std::string current = row.lock_held ? "current generation is " + std::to_string(row.generation)
                                      : "the volume is not locked";
  return Error(Code::kFenced, "lock generation " + std::to_string(generation) + " of volume " +
                                  std::to_string(row.volume.id()) + " is not current: " + current);
}

int64_t ExpiryFrom(int64_t now_ns, int64_t ttl_ms) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (ttl_ms > (kMax - now_ns) / 1000000) return kMax;
  return now_ns + ttl_ms * 1000000;
}

}  // namespace

// expect_generation 0 takes a free or expired lock with a new generation; otherwise it must
// be the holder's generation, and renews the lock (and records a new phase if given).
Status ApplyLockVolume(ApplyContext& ctx, const LockVolume& op) {
  auto row = VolumeForAdmin(ctx, op.id());
  if (!row.ok()) return row.status();
  if (op.ttl_ms() <= 0) return Error(Code::kInvalidArgument, "lock ttl must be positive");
  int64_t now = ctx.cmd.time_ns();
  int64_t expires = ExpiryFrom(now, op.ttl_ms());
  if (op.expect_generation() == 0) {
    if (op.owner().empty()) return Error(Code::kInvalidArgument, "a lock needs an owner");
    if (LockLive(*row, now)) return LockedError(*row);
    uint64_t generation = row->generation + 1;
    Query q(ctx.db,
            "UPDATE volumes SET lock_generation = ?, lock_held = 1, lock_owner = ?, "
            "lock_expires_ns = ?, lock_operation = ?, lock_phase = ? WHERE id = ?",
            generation, op.owner(), expires, op.operation(), op.phase(), op.id());
    ctx.result->set_generation(generation);
    return q.Run();
  }
  if (!row->lock_held || row->generation != op.expect_generation()) {
    return FencedError(*row, op.expect_generation());
  }
  Query q(ctx.db,
          "UPDATE volumes SET lock_expires_ns = ?1, "
          "lock_phase = CASE WHEN ?2 = '' THEN lock_phase ELSE ?2 END WHERE id = ?3",
          expires, op.phase(), op.id());
  ctx.result->set_generation(row->generation);
  return q.Run();
}

Status ApplyUnlockVolume(ApplyContext& ctx, const UnlockVolume& op) {
  auto row = VolumeForAdmin(ctx, op.id());
  if (!row.ok()) return row.status();
  if (!op.force() && (!row->lock_held || row->generation != op.generation())) {
    return FencedError(*row, op.generation());
  }
  Query q(ctx.db,
          "UPDATE volumes SET lock_held = 0, lock_owner = '', lock_expires_ns = 0, "
          "lock_operation = '', lock_phase = '' WHERE id = ?",
          op.id());
  ctx.result->set_generation(row->generation);
  return q.Run();
}

// Generation 0 writes only while no live lock is held; any other generation must be the
// holder's (an expired but untaken lock still fences everyone else's stale tokens).
Status ApplySetVolumeSites(ApplyContext& ctx, const SetVolumeSites& op) {
  auto row = VolumeForAdmin(ctx, op.id());
  if (!row.ok()) return row.status();
  bool allowed = op.generation() == 0 ? !LockLive(*row, ctx.cmd.time_ns())
                                      : row->lock_held && row->generation == op.generation();
  if (!allowed) return FencedError(*row, op.generation());
  Status s = ValidateSites(ctx.db, op.sites());
  if (!s.ok()) return s;
  return WriteSites(ctx.db, op.id(), op.sites());
}

}  // namespace heka::db::internal

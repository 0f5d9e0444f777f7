// The VLDB operation lock that a long `heka vos` operation (move, release) holds: an owner, an
// expiry renewed as the operation goes, a generation the file servers check on every volume
// operation RPC (fencing), and the operation's phase, which `vos examine` shows.
//
// A lock whose owner is a `vos` of this host that is gone is taken over once it expires, so
// running the same command again finishes or rolls back what the dead one left.
// Tests stop the command at a phase: HEKA_VOS_TEST_KILL_AT=<phase> (SIGKILL) and
// HEKA_VOS_TEST_STOP_AT=<phase> (SIGSTOP).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <functional>

#include "cmd/db_common.h"
#include "cmd/vos_common.h"

namespace heka::cli {

class OperationLock {
 public:
  // `operation` names it in the owner ("vos release pid 12 on host") and in the VLDB.
  OperationLock(DbCommand& c, std::string operation, int64_t ttl_ms, bool verbose);
  OperationLock(const OperationLock&) = delete;
  OperationLock& operator=(const OperationLock&) = delete;

  // Takes the lock of volume `id` of `cell` (named `name` in messages). kLocked, saying what
  // to do, when a live operation holds it.
  Status Lock(const std::string& cell, uint64_t id, const std::string& name);
  // Records `phase` and renews the lock (kFenced once another operation took it over).
  Status SetPhase(const std::string& phase);
  // Renews the lock if a third of its time has passed (long copies call it between pieces).
  Status RenewIfDue();
  // Releases it (best effort: an expired lock goes by itself).
  void Unlock();

  uint64_t generation() const { return generation_; }
  const std::string& phase() const { return phase_; }
  // Seconds since the operation began.
  double Elapsed() const;
  // With -verbose: `line` on stderr.
  void Say(const std::string& line) const;

 private:
  DbCommand& c_;
  const std::string operation_;
  const int64_t ttl_ms_;
  const bool verbose_;
  uint64_t id_ = 0;
  uint64_t generation_ = 0;
  std::string phase_;
  std::chrono::steady_clock::time_point renewed_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Streams a dump of `src` (named `src_name` in errors) into a restore on `dst`: the next
// dump piece is fetched while the current one is restored, so both servers work at once.
// After each piece `each(piece, bytes so far)` runs (progress, lock renewal); its failure
// stops the transfer. Returns the last piece (its data moved out).
struct Endpoint {
  VolumeServerClient* client;
  std::string name;  // "host:port", for errors
};
Result<fs::pb::DumpVolumeReply> PumpDump(
    const Endpoint& src, fs::pb::DumpVolumeRequest dump, const Endpoint& dst,
    fs::pb::RestoreVolumeRequest restore,
    const std::function<Status(const fs::pb::DumpVolumeReply&, uint64_t)>& each);

// -locktime: seconds the lock lasts between renewals (default 60), in ms; kInvalidArgument for
// anything but a positive number.
Result<int64_t> LockTimeMs(const DbCommand& c);

}  // namespace heka::cli

// LockTable: advisory locks (whole-file and byte-range, shared and exclusive) that this file
// server holds for cache managers, as leases (DESIGN.md §5). A lock belongs to a client (its
// cache-manager UUID) and an owner number the client chooses (e.g. per open file). Set and
// Renew extend the lease of all the client's locks; a lease that runs out releases them,
// and the client learns which it lost from its next Renew. The table lives in memory: after
// a restart the server is in a grace period in which only reclaims of locks held before are
// granted (as NFSv4 does), then normal locking resumes and late reclaims are refused.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "util/status.h"

namespace heka::fs {

class LockTable {
 public:
  using Clock = std::chrono::steady_clock;
  struct Key {
    uint64_t volume = 0;
    uint64_t vnode = 0;
    auto operator<=>(const Key&) const = default;
  };

  LockTable(std::chrono::milliseconds lease, std::chrono::milliseconds grace);

  // Grants the lock or fails: kLockConflict (someone else's overlapping lock, one of them
  // exclusive; or the grace period, when not a reclaim), kLockLost (a reclaim after the grace
  // period). length 0: to the end of the file. As with fcntl, the new lock replaces the same
  // client's and owner's locks on that range (upgrade, downgrade, splitting them).
  Status Set(const std::string& client, Key key, uint64_t start, uint64_t length, uint64_t owner,
             bool exclusive, bool reclaim);
  // Releases the client's and owner's locks on this range, splitting those that reach past
  // it, as fcntl(F_UNLCK) does (kNotFound if it held none there).
  Status Release(const std::string& client, Key key, uint64_t start, uint64_t length,
                 uint64_t owner);
  // Renews the client's lease; returns the locks it lost since its last Renew, and those
  // whose volume moved away (MoveOut) since then.
  struct Renewed {
    std::vector<Key> lost, moved;
  };
  Renewed Renew(const std::string& client);
  // A volume's move: its locks as records (Export), taken into another server's table with
  // fresh leases (Import), and dropped here, each client told at its next Renew (MoveOut,
  // which returns them too).
  struct Record {
    std::string client;
    uint64_t vnode = 0, owner = 0, start = 0, end = 0;
    bool exclusive = false;
  };
  std::vector<Record> Export(uint64_t volume);
  void Import(uint64_t volume, const std::vector<Record>& records);
  std::vector<Record> MoveOut(uint64_t volume);
  std::chrono::milliseconds lease() const { return lease_; }
  bool empty();  // no lock held by anyone
  bool in_grace() const { return Clock::now() < grace_end_; }

 private:
  struct Lock {
    std::string client;
    uint64_t owner = 0;
    uint64_t start = 0;
    uint64_t end = 0;  // exclusive; UINT64_MAX for "to the end"
    bool exclusive = false;
  };
  void ExpireLocked(Clock::time_point now);
  // Removes [start, end) from the locks of (client, owner) in `held`. True if any overlapped.
  static bool CutLocked(std::vector<Lock>& held, const std::string& client, uint64_t owner,
                        uint64_t start, uint64_t end);

  const std::chrono::milliseconds lease_;
  const Clock::time_point grace_end_;
  std::mutex mu_;
  std::map<Key, std::vector<Lock>> locks_;                     // mu_
  std::map<std::string, Clock::time_point> lease_end_;         // mu_: clients holding locks
  std::map<std::string, std::set<Key>> lost_;                  // mu_
  std::map<std::string, std::set<Key>> moved_;                 // mu_
};

}  // namespace heka::fs

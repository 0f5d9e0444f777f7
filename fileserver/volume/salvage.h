// Salvager: checks and repairs volume instances after an unclean stop (DESIGN.md §5;
// docs/formats/volume.md, "Salvage"). It works on closed volumes only, directly on their
// metadata database and chunk directory, and makes the volume consistent again: SQLite
// integrity, directory tree, link counts, orphans, usage, inline data, chunk files. What it repairs
// never loses acknowledged data, except where the data was already gone (a chunk row whose file is
// missing becomes a hole, and the report says so).
// Thread safety: free functions without shared state; PartitionLock keeps two salvagers
// (in this or another process) off one partition. Errors: kLocked (another salvager),
// kIoError (a damaged database: the volume stays offline), kNoSpace / kIoError (storage).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fileserver/volume/volume.h"
#include "util/status.h"

namespace heka::fs {

// An exclusive flock(2) on <partition>/.salvage.lock, held until destruction. The lock is
// taken directly on the file system (not through Env): it protects against other processes,
// and a crash releases it.
class PartitionLock {
 public:
  // Does not wait: kLocked "another salvager is running on <partition>" if it is held.
  static Result<std::unique_ptr<PartitionLock>> Acquire(const std::string& partition);
  ~PartitionLock();
  PartitionLock(const PartitionLock&) = delete;
  PartitionLock& operator=(const PartitionLock&) = delete;

  const std::string& partition() const { return partition_; }

 private:
  PartitionLock(std::string partition, int fd) : partition_(std::move(partition)), fd_(fd) {}
  std::string partition_;
  int fd_;
};

// What one salvage found and did. Each count is a number of repairs; all zero means the
// volume was consistent.
struct SalvageReport {
  uint64_t volume_id = 0;
  Status status;                          // not OK: the volume must stay offline
  uint64_t unfinished_clone_removed = 0;  // 1 if the directory was an unfinished clone
  // Entries naming a missing vnode, the wrong uniquifier or the root, in a missing
  // directory, naming a directory a second time, or a file's link outside its directory.
  uint64_t dirents_removed = 0;
  uint64_t orphans_removed = 0;  // vnodes not reachable from the root, with their data
  uint64_t link_counts_fixed = 0;
  uint64_t parents_fixed = 0;
  uint64_t usage_fixed = 0;   // 1 if header.usage was wrong
  uint64_t header_fixed = 0;  // next_vnode / next_uniq behind the vnodes in use
  // Inline data of a missing vnode or non-file, past a file's size, or beside chunk rows
  // (the file keeps what its size says: inline up to the inline limit, else its chunks).
  uint64_t inline_fixed = 0;
  uint64_t chunk_rows_dropped = 0;   // rows of missing vnodes or past a file's end
  uint64_t missing_chunks = 0;       // rows whose file was missing: now holes (data lost)
  uint64_t chunk_files_removed = 0;  // garbage: temp files, chunks without a row
  std::vector<std::string> details;  // one line per repair (at most kMaxDetails)

  static constexpr size_t kMaxDetails = 100;
  uint64_t fixes() const;
  bool clean() const { return status.ok() && fixes() == 0; }
  // One line: "volume 7: clean", "volume 7: 2 link counts fixed, usage recomputed", or
  // "volume 7: FAILED, stays offline: <error>".
  std::string Summary() const;
};

// Salvages volume `id` (see the file comment). Removes a volume directory without
// meta.sqlite (an unfinished clone). On success the volume is consistent, its dirty marker
// is removed, and the report lists the repairs; a second salvage reports it clean. Errors
// (the volume must stay offline; nothing was deleted): kIoError for a failed SQLite
// integrity check or a missing header or root, and storage errors.
// REQUIRES: `lock` is held on options.partition; no Volume object has `id` open.
Result<SalvageReport> SalvageVolume(const VolumeOptions& options, uint64_t id,
                                    const PartitionLock& lock);

enum class SalvageScope {
  kAll,     // every volume on the partition
  kNeeded,  // only those with VolumeNeedsSalvage() (after an unclean stop)
};

// Takes the partition lock and salvages the volumes in `scope`, in id order, calling
// `progress` after each. A volume that fails appears with its error in `status`; the others
// are still salvaged. Errors: kLocked, or the partition cannot be listed.
Result<std::vector<SalvageReport>> SalvagePartition(
    const VolumeOptions& options, SalvageScope scope = SalvageScope::kAll,
    const std::function<void(const SalvageReport&)>& progress = {});

}  // namespace heka::fs

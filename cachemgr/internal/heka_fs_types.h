// HekaFs's cache records (heka_fs.h), shared by its implementation files only.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "cachemgr/heka_fs.h"

namespace heka::cm {

inline FileKey FileKeyOf(const pb::Fid& fid) {
  return FileKey{fid.cell(), fid.volume(), fid.vnode(), fid.uniq()};
}

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the cache knows about one vnode.
struct HekaFs::Node {
  pb::FileStatus status;
  bool valid = false;       // a callback promise holds and was not broken
  int64_t expires_ns = 0;
  uint64_t generation = 0;  // bumped by every break: a fetch that raced a break is not trusted
  std::map<std::string, uint32_t> rights;  // identity -> rights the server confirmed
  std::map<std::string, pb::Fid> entries;  // directories: what is known of the listing
  bool listed = false;                     // entries is the whole listing
  std::set<std::string> kernel_names;      // directories: names the kernel may cache
  bool Fresh() const { return valid && expires_ns > NowNs(); }
};

// One open file.
struct HekaFs::Handle {
  std::mutex mu;
  uint64_t ino = 0;
  pb::Fid fid;
  Who who;                                // the opener's credentials: stores use them
  bool writable = false;
  uint64_t size = 0;                      // the file's size as this handle sees it
  std::map<uint64_t, std::string> dirty;  // chunk index -> new bytes
  // Opened with O_TRUNC: nothing of the old content shows through, and the next store
  // replaces the whole file (so a store refused at close keeps the old content intact).
  bool truncated = false;
  std::set<uint64_t> lock_owners;  // owners that took locks through this handle
  // The chunk read last (index, data version), so the reads within one chunk go to the
  // cache once; served only after the same checks as the cache (fresh, rights, version).
  std::shared_ptr<const std::string> memo;
  uint64_t memo_index = 0;
  uint64_t memo_version = 0;
  bool Pending() const { return truncated || !dirty.empty(); }
};

}  // namespace heka::cm

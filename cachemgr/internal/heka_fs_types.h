// HekaFs's cache records (heka_fs.h), shared by its implementation files only.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

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
  // Files: the data version the kernel's page cache holds (0: none known). An open of the
  // same version, with the promise holding, keeps those pages (KeepKernelCache).
  uint64_t kernel_version = 0;
  // The data version this client's own last store made (0: none): local writes, which every
  // open of the file here sees at once, as on a local file system.
  uint64_t local_version = 0;
  bool Fresh() const { return valid && expires_ns > NowNs(); }
  // Stops trusting what is cached of it (a break, a flush, a lost promise): `inval` gets
  // the kernel invalidations to queue, the inode and the names the kernel may cache in it.
  // `listing` false keeps the entries (checked against the next status's data version).
  void Invalidate(uint64_t ino, std::vector<std::pair<uint64_t, std::string>>* inval,
                  bool listing = true) {
    valid = false;
    ++generation;
    rights.clear();
    kernel_version = 0;  // the invalidation below drops the kernel's pages
    if (listing) {
      entries.clear();
      listed = false;
    }
    inval->emplace_back(ino, "");
    for (const std::string& name : kernel_names) inval->emplace_back(ino, name);
    kernel_names.clear();
  }
};

// One open file.
struct HekaFs::Handle {
  std::mutex mu;
  uint64_t ino = 0;
  pb::Fid fid;
  Who who;                                // the opener's credentials: stores use them
  bool writable = false;
  bool readable = false;
  uint64_t size = 0;                      // the file's size as this handle sees it
  uint64_t base_size = 0;                 // the size of `version` (plaintext)
  // Encrypted volumes: the cell key and the file's ID, and a cipher for them (used under mu).
  std::shared_ptr<const crypto::CellKey> key;
  crypto::Id file_id{};
  std::unique_ptr<crypto::FileCipher> cipher;
  // Encrypted: the sealed chunk read last (small reads open only the blocks they need).
  std::shared_ptr<const std::string> sealed_memo;
  uint64_t sealed_memo_index = 0;
  uint64_t sealed_memo_version = 0;
  // The data version this handle reads: the one it was opened with (or last stored itself).
  // A chunk of another version is never mixed in: a read that would need one fails (ESTALE).
  // Written under `mu`; read without it by other opens of the file (KernelCaching).
  std::atomic<uint64_t> version{0};
  bool served = false;                    // a chunk of `version` was read through it
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

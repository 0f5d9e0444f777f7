// DiskChunkCache: the ChunkCache on local disk (DESIGN.md §6), so a restarted cache manager
// comes back warm. Layout of its directory (docs/formats/cachemgr-cache.md):
//   index.sqlite      one row per chunk: file, data version, index, length, SHA-256, last use
//   chunks/NN/ID      the chunk's bytes (ID a number, NN = ID % 256 in hex)
// A chunk file is written whole under a temporary name and renamed before its row is
// inserted, and every read checks length and SHA-256, so a cache manager killed at any point
// never serves a torn or corrupt chunk: such a chunk is dropped (one log line) and fetched
// again. Files without a row (a crash between rename and insert) and temporary files are
// deleted at Open.
//
// Thread-safe. File reads and writes run outside the index lock; the index and the LRU
// order are kept in memory too; a Get costs one file read (and the order of use reaches the
// index in batches).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cachemgr/chunk_cache.h"
#include "util/sqlite.h"
#include "util/status.h"

namespace heka::cm {

class DiskChunkCache : public ChunkCache {
 public:
  // Opens (creating) the cache in `dir` with a bound of `capacity_bytes`; evicts down to it.
  // Its chunks are of `chunk_bytes`: a cache of another chunk size is emptied.
  static Result<std::unique_ptr<DiskChunkCache>> Open(const std::string& dir,
                                                      uint64_t capacity_bytes,
                                                      uint64_t chunk_bytes = 1 << 20);
  ~DiskChunkCache() override;

  std::optional<std::string> Get(const FileKey& file, uint64_t version, uint64_t index) override;
  void Put(const FileKey& file, uint64_t version, uint64_t index, std::string bytes) override;
  void Advance(const FileKey& file, uint64_t from, uint64_t to, uint64_t end_index,
               const std::set<uint64_t>& rewritten) override;
  void Drop(const FileKey& file) override;
  void DropVolume(const std::string& cell, uint64_t volume) override;
  ChunkCacheUsage Usage() const override;
  void SetCapacity(uint64_t capacity_bytes) override;
  std::vector<std::pair<FileKey, uint64_t>> Versions() const override;
  bool Contains(const FileKey& file, uint64_t version, uint64_t index) const override;

  // Crash tests: called with the step about to be taken ("write" half way through a chunk
  // file, "rename" before its row is inserted) and the number of chunks put so far.
  std::function<void(const char* step, uint64_t puts)> test_hook;

 private:
  using Key = std::tuple<FileKey, uint64_t, uint64_t>;  // (file, version, index)
  struct Entry {
    uint64_t id = 0;
    uint64_t length = 0;
    std::array<uint8_t, 32> digest{};
    std::list<Key>::iterator lru;
  };
  DiskChunkCache(std::string dir, uint64_t capacity, std::unique_ptr<SqliteDb> db);
  Status Load(uint64_t chunk_bytes);
  std::string PathOf(uint64_t id) const;
  // Removes the entry from the maps and the index; its file goes into `unlink`.
  void EraseLocked(std::map<Key, Entry>::iterator it, std::vector<uint64_t>* unlink);
  void EvictLocked(std::vector<uint64_t>* unlink);
  void Unlink(const std::vector<uint64_t>& ids);
  void IndexFailed(const Status& s);
  void FlushUsedLocked();  // writes used_ to the index
  static constexpr size_t kUsedBatch = 64;

  const std::string dir_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> puts_{0};
  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // mu_
  uint64_t capacity_;             // mu_
  std::map<Key, Entry> chunks_;   // mu_
  std::list<Key> lru_;            // mu_; front = least recently used
  uint64_t bytes_ = 0;            // mu_
  uint64_t evicted_ = 0;          // mu_
  uint64_t use_clock_ = 0;        // mu_; the index's last-use order
  std::map<uint64_t, uint64_t> used_;  // mu_; id -> last use, not yet in the index
  bool index_broken_logged_ = false;  // mu_
};

}  // namespace heka::cm

// ChunkCache: the file data the cache manager keeps (DESIGN.md §6), by file, data version
// and chunk index. HekaFs decides when a chunk may be served (a callback promise holds and
// the caller's rights were confirmed); the cache only stores bytes, within a size bound,
// evicting what was least recently used.
//
// MemoryChunkCache (this file) keeps them in memory; DiskChunkCache (disk_chunk_cache.h)
// on disk, surviving restarts. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace heka::cm {

// A file: (cell, volume, vnode, uniquifier).
using FileKey = std::tuple<std::string, uint64_t, uint64_t, uint64_t>;

struct ChunkCacheUsage {
  uint64_t bytes = 0;     // chunk bytes held
  uint64_t chunks = 0;
  uint64_t capacity = 0;  // the bound on bytes
  uint64_t evicted = 0;   // chunks evicted to stay within the bound, since start
};

class ChunkCache {
 public:
  virtual ~ChunkCache() = default;
  // Chunk `index` of `file` at `version`, if held (and then it becomes the most recent).
  virtual std::optional<std::string> Get(const FileKey& file, uint64_t version,
                                         uint64_t index) = 0;
  // Holds `bytes` as chunk `index` of `file` at `version`; evicts least recently used
  // chunks to stay within the bound. A chunk larger than the whole bound is not held.
  virtual void Put(const FileKey& file, uint64_t version, uint64_t index, std::string bytes) = 0;
  // This cache manager stored version `to` of `file` itself, as `from` with the chunks in
  // `rewritten` replaced: the other chunks of `from` below `end_index` are also chunks of
  // `to`; every other chunk of the file is dropped.
  virtual void Advance(const FileKey& file, uint64_t from, uint64_t to, uint64_t end_index,
                       const std::set<uint64_t>& rewritten) = 0;
  // Drops every chunk of `file`, all versions.
  virtual void Drop(const FileKey& file) = 0;
  // Drops every chunk of every file of `volume` of `cell` (`heka fs flushvolume`).
  virtual void DropVolume(const std::string& cell, uint64_t volume) = 0;
  virtual ChunkCacheUsage Usage() const = 0;
  // A new bound (`heka fs setcachesize`); evicts at once down to it.
  virtual void SetCapacity(uint64_t capacity_bytes) = 0;
  // Each file with chunks held, with the data version they are of (a file whose chunks are
  // of several versions appears once per version). For revalidation after a restart.
  virtual std::vector<std::pair<FileKey, uint64_t>> Versions() const = 0;
  // Whether the chunk is held (without reading it).
  virtual bool Contains(const FileKey& file, uint64_t version, uint64_t index) const = 0;
};

class MemoryChunkCache : public ChunkCache {
 public:
  explicit MemoryChunkCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

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

 private:
  using Key = std::tuple<FileKey, uint64_t, uint64_t>;  // (file, version, index)
  struct Entry {
    std::string bytes;
    std::list<Key>::iterator lru;  // position in lru_
  };
  void EraseLocked(std::map<Key, Entry>::iterator it);
  void EvictLocked();

  mutable std::mutex mu_;
  uint64_t capacity_;            // mu_
  std::map<Key, Entry> chunks_;  // mu_; ordered: a file's chunks are adjacent
  std::list<Key> lru_;           // mu_; front = least recently used
  uint64_t bytes_ = 0;           // mu_
  uint64_t evicted_ = 0;         // mu_
};

}  // namespace heka::cm

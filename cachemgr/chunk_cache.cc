#include "cachemgr/chunk_cache.h"

#include <vector>

namespace heka::cm {

std::optional<std::string> MemoryChunkCache::Get(const FileKey& file, uint64_t version,
                                                 uint64_t index) {
  std::lock_guard lock(mu_);
  auto it = chunks_.find(Key{file, version, index});
  if (it == chunks_.end()) return std::nullopt;
  lru_.splice(lru_.end(), lru_, it->second.lru);
  return it->second.bytes;
}

void MemoryChunkCache::Put(const FileKey& file, uint64_t version, uint64_t index,
                           std::string bytes) {
  std::lock_guard lock(mu_);
  Key key{file, version, index};
  if (auto it = chunks_.find(key); it != chunks_.end()) EraseLocked(it);
  if (bytes.size() > capacity_) return;
  bytes_ += bytes.size();
  lru_.push_back(key);
  chunks_.emplace(std::move(key), Entry{std::move(bytes), std::prev(lru_.end())});
  EvictLocked();
}

void MemoryChunkCache::Advance(const FileKey& file, uint64_t from, uint64_t to,
                               uint64_t end_index, const std::set<uint64_t>& rewritten) {
  std::lock_guard lock(mu_);
  auto first = chunks_.lower_bound(Key{file, 0, 0});
  std::vector<std::pair<uint64_t, std::string>> kept;
  while (first != chunks_.end() && std::get<0>(first->first) == file) {
    auto [f, version, index] = first->first;
    auto next = std::next(first);
    bytes_ -= first->second.bytes.size();
    if (version == from && index < end_index && !rewritten.count(index)) {
      kept.emplace_back(index, std::move(first->second.bytes));
    }
    first->second.bytes.clear();
    EraseLocked(first);
    first = next;
  }
  for (auto& [index, bytes] : kept) {
    Key key{file, to, index};
    bytes_ += bytes.size();
    lru_.push_back(key);
    chunks_.emplace(std::move(key), Entry{std::move(bytes), std::prev(lru_.end())});
  }
}

void MemoryChunkCache::Drop(const FileKey& file) {
  std::lock_guard lock(mu_);
  auto it = chunks_.lower_bound(Key{file, 0, 0});
  while (it != chunks_.end() && std::get<0>(it->first) == file) {
    auto next = std::next(it);
    EraseLocked(it);
    it = next;
  }
}

void MemoryChunkCache::DropVolume(const std::string& cell, uint64_t volume) {
  std::lock_guard lock(mu_);
  auto it = chunks_.lower_bound(Key{FileKey{cell, volume, 0, 0}, 0, 0});
  while (it != chunks_.end() && std::get<0>(std::get<0>(it->first)) == cell &&
         std::get<1>(std::get<0>(it->first)) == volume) {
    auto next = std::next(it);
    EraseLocked(it);
    it = next;
  }
}

ChunkCacheUsage MemoryChunkCache::Usage() const {
  std::lock_guard lock(mu_);
  return ChunkCacheUsage{bytes_, chunks_.size(), capacity_, evicted_};
}

void MemoryChunkCache::SetCapacity(uint64_t capacity_bytes) {
  std::lock_guard lock(mu_);
  capacity_ = capacity_bytes;
  EvictLocked();
}

std::vector<std::pair<FileKey, uint64_t>> MemoryChunkCache::Versions() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<FileKey, uint64_t>> out;
  for (const auto& [key, entry] : chunks_) {
    std::pair<FileKey, uint64_t> v{std::get<0>(key), std::get<1>(key)};
    if (out.empty() || out.back() != v) out.push_back(std::move(v));
  }
  return out;
}

bool MemoryChunkCache::Contains(const FileKey& file, uint64_t version, uint64_t index) const {
  std::lock_guard lock(mu_);
  return chunks_.count(Key{file, version, index}) > 0;
}

void MemoryChunkCache::EraseLocked(std::map<Key, Entry>::iterator it) {
  bytes_ -= it->second.bytes.size();
  lru_.erase(it->second.lru);
  chunks_.erase(it);
}

void MemoryChunkCache::EvictLocked() {
  while (bytes_ > capacity_ && !lru_.empty()) {
    EraseLocked(chunks_.find(lru_.front()));
    ++evicted_;
  }
}

}  // namespace heka::cm

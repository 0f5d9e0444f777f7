#include "cachemgr/disk_chunk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace heka::cm {
namespace {

constexpr int kFormat = 1;  // PRAGMA user_version of index.sqlite

std::array<uint8_t, 32> Sha256(std::string_view bytes) {
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

Status ErrnoError(const std::string& what) {
  int e = errno;
  return Error(e == ENOSPC || e == EDQUOT ? Code::kNoSpace : Code::kIoError,
               what + ": " + std::strerror(e));
}

Status WriteWhole(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// The whole file, or nullopt if it cannot be read (gone, or an I/O error).
std::optional<std::string> ReadWhole(const std::string& path, uint64_t expected) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out(expected + 1, '\0');  // one more: a longer file shows as such
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace

Result<std::unique_ptr<DiskChunkCache>> DiskChunkCache::Open(const std::string& dir,
                                                             uint64_t capacity_bytes,
                                                             uint64_t chunk_bytes) {
  for (const std::string& d : {dir, dir + "/chunks"}) {
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + d);
  }
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    std::snprintf(sub, sizeof sub, "/%02x", i);
    std::string d = dir + "/chunks" + sub;
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + d);
  }
  // The index survives a crash of this process at any point (WAL); not necessarily of the
  // machine, which is fine: what it lost, it fetches again.
  auto db = SqliteDb::Open(dir + "/index.sqlite", true, /*durable=*/false);
  if (!db.ok()) return db.status();
  std::unique_ptr<DiskChunkCache> cache(
      new DiskChunkCache(dir, capacity_bytes, std::move(*db)));
  if (Status s = cache->Load(chunk_bytes); !s.ok()) return s;
  return cache;
}

DiskChunkCache::DiskChunkCache(std::string dir, uint64_t capacity, std::unique_ptr<SqliteDb> db)
    : dir_(std::move(dir)), db_(std::move(db)), capacity_(capacity) {}

DiskChunkCache::~DiskChunkCache() {
  std::lock_guard lock(mu_);
  FlushUsedLocked();
}

void DiskChunkCache::FlushUsedLocked() {
  if (used_.empty()) return;
  (void)db_->Exec("BEGIN");
  for (const auto& [id, use] : used_) {
    (void)SqliteQuery(*db_, "UPDATE chunks SET used = ? WHERE id = ?", use, id).Run();
  }
  (void)db_->Exec("COMMIT");
  used_.clear();
}

std::string DiskChunkCache::PathOf(uint64_t id) const {
  char sub[8];
  std::snprintf(sub, sizeof sub, "%02x", static_cast<unsigned>(id % 256));
  return dir_ + "/chunks/" + sub + "/" + std::to_string(id);
}

Status DiskChunkCache::Load(uint64_t chunk_bytes) {
  std::lock_guard lock(mu_);
  {
    SqliteQuery q(*db_, "PRAGMA user_version");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    int64_t format = *row ? q.Int(0) : 0;
    if (format != 0 && format != kFormat) {
      return Error(Code::kInvalidArgument, dir_ + "/index.sqlite has format " +
                                               std::to_string(format) + ", this build knows " +
                                               std::to_string(kFormat) +
                                               ": delete the cache directory to start afresh");
    }
  }
  if (Status s = db_->Exec(
          "CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, cell BLOB NOT NULL,"
          " volume INTEGER NOT NULL, vnode INTEGER NOT NULL, uniq INTEGER NOT NULL,"
          " version INTEGER NOT NULL, idx INTEGER NOT NULL, length INTEGER NOT NULL,"
          " digest BLOB NOT NULL, used INTEGER NOT NULL);"
          "CREATE UNIQUE INDEX IF NOT EXISTS chunks_key"
          " ON chunks(cell, volume, vnode, uniq, version, idx);"
          "CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
          "PRAGMA user_version = 1;");
      !s.ok()) {
    return s;
  }
  {  // Chunk numbers mean nothing under another chunk size: start afresh.
    SqliteQuery q(*db_, "SELECT value FROM settings WHERE name = 'chunk_bytes'");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    uint64_t was = *row ? q.Uint(0) : chunk_bytes;
    if (was != chunk_bytes) {
      spdlog::warn("cache {}: made with {} KiB chunks, now {} KiB: emptied", dir_, was >> 10,
                   chunk_bytes >> 10);
      if (Status s = db_->Exec("DELETE FROM chunks"); !s.ok()) return s;
    }
  }
  if (Status s = SqliteQuery(*db_,
                             "INSERT OR REPLACE INTO settings(name, value) VALUES ('chunk_bytes', ?)",
                             chunk_bytes)
                     .Run();
      !s.ok()) {
    return s;
  }
  // What is on disk: chunk files by id; temporary files of a write that never finished go.
  std::map<uint64_t, std::string> on_disk;  // id -> where it is
  uint64_t removed_files = 0;
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    std::snprintf(sub, sizeof sub, "%02x", i);
    std::string d = dir_ + "/chunks/" + sub;
    DIR* dp = ::opendir(d.c_str());
    if (dp == nullptr) continue;
    while (dirent* e = ::readdir(dp)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      char* end = nullptr;
      uint64_t id = std::strtoull(name.c_str(), &end, 10);
      if (end == nullptr || *end != '\0' || id == 0) {
        ::unlink((d + "/" + name).c_str());
        ++removed_files;
        continue;
      }
      on_disk.emplace(id, d + "/" + name);
    }
    ::closedir(dp);
  }
  std::set<uint64_t> indexed;
  std::vector<uint64_t> missing;
  SqliteQuery q(*db_,
                "SELECT id, cell, volume, vnode, uniq, version, idx, length, digest, used"
                " FROM chunks ORDER BY used");
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    uint64_t id = q.Uint(0);
    if (!on_disk.count(id)) {
      missing.push_back(id);
      continue;
    }
    indexed.insert(id);
    Key key{FileKey{q.Str(1), q.Uint(2), q.Uint(3), q.Uint(4)}, q.Uint(5), q.Uint(6)};
    Entry e;
    e.id = id;
    e.length = q.Uint(7);
    Bytes digest = q.Blob(8);
    if (digest.size() == e.digest.size()) std::copy(digest.begin(), digest.end(), e.digest.begin());
    use_clock_ = std::max(use_clock_, q.Uint(9));
    lru_.push_back(key);
    e.lru = std::prev(lru_.end());
    bytes_ += e.length;
    chunks_.emplace(std::move(key), e);
    next_id_ = std::max<uint64_t>(next_id_, id + 1);
  }
  for (uint64_t id : missing) {
    (void)SqliteQuery(*db_, "DELETE FROM chunks WHERE id = ?", id).Run();
  }
  for (const auto& [id, path] : on_disk) {
    next_id_ = std::max<uint64_t>(next_id_, id + 1);
    if (!indexed.count(id) || path != PathOf(id)) {  // its row never went in (or misplaced)
      ::unlink(path.c_str());
      ++removed_files;
    }
  }
  std::vector<uint64_t> unlink;
  EvictLocked(&unlink);
  for (uint64_t id : unlink) ::unlink(PathOf(id).c_str());
  spdlog::info("cache {}: {} chunks, {} MiB of {} MiB{}", dir_, chunks_.size(), bytes_ >> 20,
               capacity_ >> 20,
               removed_files + missing.size() > 0
                   ? " (" + std::to_string(removed_files) + " stray files and " +
                         std::to_string(missing.size()) + " rows without a file removed)"
                   : std::string());
  return Status::Ok();
}

std::optional<std::string> DiskChunkCache::Get(const FileKey& file, uint64_t version,
                                               uint64_t index) {
  Key key{file, version, index};
  Entry e;
  {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(key);
    if (it == chunks_.end()) return std::nullopt;
    lru_.splice(lru_.end(), lru_, it->second.lru);
    // The order of use reaches the index in batches: losing the last few to a crash only
    // makes the LRU order after a restart slightly less exact.
    used_[it->second.id] = ++use_clock_;
    if (used_.size() >= kUsedBatch) FlushUsedLocked();
    e = it->second;
  }
  auto bytes = ReadWhole(PathOf(e.id), e.length);
  if (bytes && bytes->size() == e.length && Sha256(*bytes) == e.digest) return bytes;
  // Torn, truncated or corrupt (or evicted meanwhile): never served; fetched again.
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(key);
    if (it == chunks_.end() || it->second.id != e.id) return std::nullopt;  // evicted, replaced
    spdlog::warn("cache: chunk {} of {}:{}.{}.{} (file {}) is {}: dropped, it will be fetched "
                 "again",
                 index, std::get<0>(file), std::get<1>(file), std::get<2>(file),
                 std::get<3>(file), PathOf(e.id),
                 !bytes ? "unreadable"
                        : bytes->size() != e.length ? "of the wrong length" : "corrupt");
    EraseLocked(it, &unlink);
  }
  Unlink(unlink);
  return std::nullopt;
}

void DiskChunkCache::Put(const FileKey& file, uint64_t version, uint64_t index,
                         std::string bytes) {
  {
    std::lock_guard lock(mu_);
    if (bytes.size() > capacity_) return;
  }
  uint64_t id = next_id_++;
  uint64_t n = ++puts_;
  std::string path = PathOf(id);
  std::string tmp = path + ".tmp";
  std::array<uint8_t, 32> digest = Sha256(bytes);
  Status written = [&]() -> Status {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError("create " + tmp);
    std::string_view all(bytes);
    Status s = WriteWhole(fd, all.substr(0, all.size() / 2));
    if (s.ok() && test_hook) test_hook("write", n);
    if (s.ok()) s = WriteWhole(fd, all.substr(all.size() / 2));
    if (::close(fd) != 0 && s.ok()) s = ErrnoError("close " + tmp);
    if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoError("rename " + tmp);
    return s;
  }();
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    std::lock_guard lock(mu_);
    IndexFailed(written);
    return;
  }
  if (test_hook) test_hook("rename", n);
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    Key key{file, version, index};
    if (auto it = chunks_.find(key); it != chunks_.end()) EraseLocked(it, &unlink);
    Status s = SqliteQuery(*db_,
                           "INSERT INTO chunks(id, cell, volume, vnode, uniq, version, idx,"
                           " length, digest, used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           id, std::string_view(std::get<0>(file)), std::get<1>(file),
                           std::get<2>(file), std::get<3>(file), version, index,
                           static_cast<uint64_t>(bytes.size()), ByteView(digest.data(), digest.size()),
                           ++use_clock_)
                   .Run();
    if (!s.ok()) {
      IndexFailed(s);
      unlink.push_back(id);
    } else {
      index_broken_logged_ = false;
      lru_.push_back(key);
      Entry e;
      e.id = id;
      e.length = bytes.size();
      e.digest = digest;
      e.lru = std::prev(lru_.end());
      bytes_ += e.length;
      chunks_.emplace(std::move(key), e);
      EvictLocked(&unlink);
    }
  }
  Unlink(unlink);
}

void DiskChunkCache::Advance(const FileKey& file, uint64_t from, uint64_t to,
                             uint64_t end_index, const std::set<uint64_t>& rewritten) {
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    (void)db_->Exec("BEGIN");
    std::vector<std::pair<Key, Entry>> kept;
    auto it = chunks_.lower_bound(Key{file, 0, 0});
    while (it != chunks_.end() && std::get<0>(it->first) == file) {
      auto next = std::next(it);
      auto [f, version, index] = it->first;
      if (version == from && index < end_index && from != to && !rewritten.count(index)) {
        Entry e = it->second;
        lru_.erase(e.lru);
        (void)SqliteQuery(*db_, "UPDATE chunks SET version = ? WHERE id = ?", to, e.id).Run();
        kept.emplace_back(Key{file, to, index}, e);
        chunks_.erase(it);
      } else if (!(version == to && from == to && index < end_index)) {
        EraseLocked(it, &unlink);
      }
      it = next;
    }
    for (auto& [key, e] : kept) {
      lru_.push_back(key);
      e.lru = std::prev(lru_.end());
      chunks_.emplace(key, e);
    }
    (void)db_->Exec("COMMIT");
  }
  Unlink(unlink);
}

void DiskChunkCache::Drop(const FileKey& file) {
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    auto it = chunks_.lower_bound(Key{file, 0, 0});
    if (it == chunks_.end() || std::get<0>(it->first) != file) return;
    (void)db_->Exec("BEGIN");
    while (it != chunks_.end() && std::get<0>(it->first) == file) {
      auto next = std::next(it);
      EraseLocked(it, &unlink);
      it = next;
    }
    (void)db_->Exec("COMMIT");
  }
  Unlink(unlink);
}

void DiskChunkCache::DropVolume(const std::string& cell, uint64_t volume) {
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    (void)db_->Exec("BEGIN");
    auto it = chunks_.lower_bound(Key{FileKey{cell, volume, 0, 0}, 0, 0});
    while (it != chunks_.end() && std::get<0>(std::get<0>(it->first)) == cell &&
           std::get<1>(std::get<0>(it->first)) == volume) {
      auto next = std::next(it);
      EraseLocked(it, &unlink);
      it = next;
    }
    (void)db_->Exec("COMMIT");
  }
  Unlink(unlink);
}

ChunkCacheUsage DiskChunkCache::Usage() const {
  std::lock_guard lock(mu_);
  return ChunkCacheUsage{bytes_, chunks_.size(), capacity_, evicted_};
}

void DiskChunkCache::SetCapacity(uint64_t capacity_bytes) {
  std::vector<uint64_t> unlink;
  {
    std::lock_guard lock(mu_);
    capacity_ = capacity_bytes;
    EvictLocked(&unlink);
  }
  Unlink(unlink);
}

std::vector<std::pair<FileKey, uint64_t>> DiskChunkCache::Versions() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<FileKey, uint64_t>> out;
  for (const auto& [key, entry] : chunks_) {
    std::pair<FileKey, uint64_t> v{std::get<0>(key), std::get<1>(key)};
    if (out.empty() || out.back() != v) out.push_back(std::move(v));
  }
  return out;
}

bool DiskChunkCache::Contains(const FileKey& file, uint64_t version, uint64_t index) const {
  std::lock_guard lock(mu_);
  return chunks_.count(Key{file, version, index}) > 0;
}

void DiskChunkCache::EraseLocked(std::map<Key, Entry>::iterator it, std::vector<uint64_t>* unlink) {
  (void)SqliteQuery(*db_, "DELETE FROM chunks WHERE id = ?", it->second.id).Run();
  unlink->push_back(it->second.id);
  bytes_ -= it->second.length;
  lru_.erase(it->second.lru);
  chunks_.erase(it);
}

void DiskChunkCache::EvictLocked(std::vector<uint64_t>* unlink) {
  if (bytes_ <= capacity_) return;
  (void)db_->Exec("BEGIN");
  while (bytes_ > capacity_ && !lru_.empty()) {
    EraseLocked(chunks_.find(lru_.front()), unlink);
    ++evicted_;
  }
  (void)db_->Exec("COMMIT");
}

void DiskChunkCache::Unlink(const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) ::unlink(PathOf(id).c_str());
}

void DiskChunkCache::IndexFailed(const Status& s) {
  if (index_broken_logged_) return;
  index_broken_logged_ = true;
  spdlog::error("cache {}: cannot keep a chunk ({}); reads go to the file servers until this "
                "is fixed (free space in the cache's file system?)",
                dir_, s.ToString());
}

}  // namespace heka::cm

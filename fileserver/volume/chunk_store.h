// ChunkStore: the file data of one volume instance, as immutable chunk objects in one
// directory (<partition>/V<volid>/c). A chunk is named by vnode, uniquifier, chunk index and
// the data version that wrote it: "<vnode>.<uniq>.<index>.<dv>" (docs/formats/volume.md).
// A chunk file is never modified in place: a new data version writes a new file, so clones
// may share files through hard links (copy on write by construction).
// Thread safety: stateless apart from the Env; safe from several threads as long as no two
// threads write the same key at once (the Volume serialises stores per vnode).
#pragma once

#include <cstdint>
#include <string>

#include "fileserver/volume/env.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::fs {

struct ChunkKey {
  uint64_t vnode = 0;
  uint64_t uniq = 0;
  uint64_t index = 0;  // chunk number: bytes [index * chunk_size, (index + 1) * chunk_size)
  uint64_t dv = 0;     // the data version whose store wrote this chunk
};

class ChunkStore {
 public:
  // `env` is not owned and must outlive the store. `dir` must exist.
  ChunkStore(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string PathOf(const ChunkKey& key) const;

  // Durably writes a chunk: temp file, fsync, rename over the final name, fsync directory.
  // When it returns OK the chunk survives a crash; on error no final name was created
  // (a temp file may be left behind; it ends in ".tmp").
  Status Write(const ChunkKey& key, ByteView data);
  // Write without syncing, for a volume that is made durable as a whole later (a restore in
  // staging): SyncWritten makes these chunks and the directory durable, one sync each.
  Status WriteUnsynced(const ChunkKey& key, ByteView data);
  Status SyncWritten(const std::vector<ChunkKey>& keys);
  // A hint that the chunk will be read soon (a dump reads ahead).
  void WillNeed(const ChunkKey& key) { env_->WillNeed(PathOf(key)); }
  // Reads up to `len` bytes at `offset` inside the chunk: fewer past the chunk's end.
  // kNotFound if the chunk file does not exist.
  Result<Bytes> Read(const ChunkKey& key, uint64_t offset, uint64_t len);
  // Removes a chunk; OK if it was absent. Not durable until SyncDir().
  Status Remove(const ChunkKey& key);
  // Hard-links the chunk into `other` under the same name (clones). Not durable until
  // other.SyncDir().
  Status LinkInto(const ChunkKey& key, const ChunkStore& other);
  Status SyncDir();

 private:
  Env* env_;
  std::string dir_;
};

}  // namespace heka::fs

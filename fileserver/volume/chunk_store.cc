#include "fileserver/volume/chunk_store.h"

namespace heka::fs {

std::string ChunkStore::PathOf(const ChunkKey& key) const {
  return dir_ + "/" + std::to_string(key.vnode) + "." + std::to_string(key.uniq) + "." +
         std::to_string(key.index) + "." + std::to_string(key.dv);
}

Status ChunkStore::Write(const ChunkKey& key, ByteView data) {
  std::string path = PathOf(key);
  std::string tmp = path + ".tmp";
  auto file = env_->NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(data);
  if (s.ok()) s = (*file)->Sync();
  Status closed = (*file)->Close();
  if (s.ok()) s = closed;
  if (s.ok()) s = env_->Rename(tmp, path);
  if (!s.ok()) {
    (void)env_->Unlink(tmp);  // best effort; a crash leaves it for the salvager
    return s;
  }
  return env_->SyncDir(dir_);
}

Status ChunkStore::WriteUnsynced(const ChunkKey& key, ByteView data) {
  std::string path = PathOf(key);
  std::string tmp = path + ".tmp";
  auto file = env_->NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(data);
  Status closed = (*file)->Close();
  if (s.ok()) s = closed;
  if (s.ok()) s = env_->Rename(tmp, path);
  if (!s.ok()) (void)env_->Unlink(tmp);
  return s;
}

Status ChunkStore::SyncWritten(const std::vector<ChunkKey>& keys) {
  for (const ChunkKey& key : keys) {
    if (Status s = env_->SyncFile(PathOf(key)); !s.ok() && s.code() != Code::kNotFound) return s;
  }
  return env_->SyncDir(dir_);
}

Result<Bytes> ChunkStore::Read(const ChunkKey& key, uint64_t offset, uint64_t len) {
  return env_->ReadAt(PathOf(key), offset, len);
}

Status ChunkStore::Remove(const ChunkKey& key) {
  Status s = env_->Unlink(PathOf(key));
  return s.code() == Code::kNotFound ? Status::Ok() : s;
}

Status ChunkStore::LinkInto(const ChunkKey& key, const ChunkStore& other) {
  return env_->Link(PathOf(key), other.PathOf(key));
}

Status ChunkStore::SyncDir() { return env_->SyncDir(dir_); }

}  // namespace heka::fs

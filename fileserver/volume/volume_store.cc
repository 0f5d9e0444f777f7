// Volume: file data (stores, reads, size changes) and clones.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "fileserver/volume/volume.h"

namespace heka::fs {

// --- size changes ----------------------------------------------------------------------------

Status Volume::ResizeInTxn(const VnodeStatus& v, uint64_t new_size, std::vector<ChunkKey>* dead) {
  auto inline_data = LoadInline(v.vnode);
  if (!inline_data.ok()) return inline_data.status();
  if (inline_data->has_value()) {
    // Bytes past the inline ones read as zeros: extending changes nothing stored.
    Bytes& bytes = **inline_data;
    if (bytes.size() <= new_size) return Status::Ok();
    bytes.resize(new_size);
    return SetInlineInTxn(v.vnode, bytes);
  }
  if (new_size > 0 && new_size <= options_.inline_limit)
    return ChunksToInlineInTxn(v, new_size, dead);
  const uint64_t cs = options_.chunk_size;
  const uint64_t first_gone = (new_size + cs - 1) / cs;  // chunks wholly past the end
  {
    SqliteQuery q(*db_, "SELECT idx, dv FROM chunks WHERE vnode = ? AND idx >= ?", v.vnode, first_gone);
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      dead->push_back({v.vnode, v.uniq, q.Uint(0), q.Uint(1)});
    }
  }
  Status s =
      SqliteQuery(*db_, "DELETE FROM chunks WHERE vnode = ? AND idx >= ?", v.vnode, first_gone).Run();
  if (!s.ok() || new_size % cs == 0) return s;
  // The last chunk keeps its file; only its valid length shrinks, so bytes past the end read
  // as zeros if the file grows again.
  return SqliteQuery(*db_, "UPDATE chunks SET len = MIN(len, ?) WHERE vnode = ? AND idx = ?",
               new_size % cs, v.vnode, new_size / cs)
      .Run();
}

Result<VnodeStatus> Volume::SetAttr(uint64_t vnode, const SetAttrRequest& r) {
  CountOp();
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  Status s = RunTxn(
      [&]() -> Status {
        auto v = LoadVnode(vnode);
        if (!v.ok()) return v.status();
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        int64_t now = options_.now_ns();
        int64_t mtime = r.mtime_ns.value_or(v->mtime_ns);
        uint64_t dv = v->data_version;
        if (r.size && *r.size != v->size) {
          if (v->type == VnodeType::kDir) return Error(Code::kIsDirectory, "size of a directory");
          if (v->type == VnodeType::kSymlink)
            return Error(Code::kInvalidArgument, "size of a symlink");
          if (Status st = ResizeInTxn(*v, *r.size, &dead); !st.ok()) return st;
          int64_t delta = static_cast<int64_t>(*r.size) - static_cast<int64_t>(v->size);
          if (Status st = AddUsage(delta, true); !st.ok()) return st;
          dv++;
          if (!r.mtime_ns) mtime = now;
        }
        SqliteQuery q(*db_,
                "UPDATE vnodes SET mode = ?, owner = ?, grp = ?, mtime_ns = ?, ctime_ns = ?, "
                "size = ?, dv = ?, serial = ?, attr = ? WHERE vnode = ?",
                r.mode.value_or(v->mode), r.owner.value_or(v->owner), r.group.value_or(v->group),
                mtime, now, r.size.value_or(v->size), dv, *serial);
        q.Bind(ByteView(r.client_attr ? *r.client_attr : v->client_attr));
        q.Bind(vnode);
        return q.Run();
      },
      &dead);
  if (!s.ok()) return s;
  return LoadVnode(vnode);
}

// --- stores ----------------------------------------------------------------------------------

Result<std::unique_ptr<StoreTransaction>> Volume::BeginStore(uint64_t vnode) {
  CountOp();
  std::lock_guard lock(mu_);
  auto v = LoadVnode(vnode);
  if (!v.ok()) return v.status();
  if (v->type == VnodeType::kDir) return Error(Code::kIsDirectory, "store to a directory");
  if (v->type == VnodeType::kSymlink) return Error(Code::kInvalidArgument, "store to a symlink");
  if (storing_.contains(vnode))
    return Error(Code::kLocked,
                 "another store to vnode " + std::to_string(vnode) + " is in progress");
  if (Status s = MarkDirty(); !s.ok()) return s;  // before any chunk file is written
  storing_.insert(vnode);
  return std::unique_ptr<StoreTransaction>(
      new StoreTransaction(this, vnode, v->uniq, v->data_version));
}

Status Volume::CommitStore(StoreTransaction& store, uint64_t new_size) {
  const uint64_t cs = options_.chunk_size;
  for (const auto& [index, len] : store.written_) {
    if (index * cs >= new_size && len > 0)
      return Error(Code::kInvalidArgument, "chunk " + std::to_string(index) + " past new size");
  }
  if (new_size == 0 && store.chunk0_ && !store.chunk0_->empty())
    return Error(Code::kInvalidArgument, "chunk 0 past new size");
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  return RunTxn([&] { return CommitStoreInTxn(store, new_size, &dead); }, &dead);
}

Status Volume::CommitStoreInTxn(StoreTransaction& store, uint64_t new_size,
                                std::vector<ChunkKey>* dead) {
  auto v = LoadVnode(store.vnode_);
  if (!v.ok()) return v.status();
  if (v->data_version != store.base_dv_)
    return Error(Code::kUnavailable, "file changed during the store; retry");
  auto serial = BumpSerial();
  if (!serial.ok()) return serial.status();
  const uint64_t new_dv = store.base_dv_ + 1;
  if (store.chunk0_) {
    // No chunk file written (PrepareChunkedCommit made chunk0_ a file otherwise): the new
    // data is chunk 0 alone, inline; every old chunk goes.
    if (Status s = ChunksToInlineInTxn(*v, 0, dead); !s.ok()) return s;
    ByteView data(*store.chunk0_);
    if (Status s = SetInlineInTxn(v->vnode, data.first(std::min<uint64_t>(data.size(), new_size)));
        !s.ok())
      return s;
  } else if (!store.written_.empty()) {
    if (Status s = DropInlineInTxn(v->vnode); !s.ok()) return s;  // carried into chunk 0
  }
  for (const auto& [index, len] : store.written_) {
    SqliteQuery old(*db_, "SELECT dv FROM chunks WHERE vnode = ? AND idx = ?", v->vnode, index);
    auto row = old.Step();
    if (!row.ok()) return row.status();
    if (*row) dead->push_back({v->vnode, v->uniq, index, old.Uint(0)});
    Status s = SqliteQuery(*db_, "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", v->vnode, index,
                     new_dv, len)
                   .Run();
    if (!s.ok()) return s;
  }
  if (Status s = ResizeInTxn(*v, new_size, dead); !s.ok()) return s;
  int64_t now = options_.now_ns();
  Status s = SqliteQuery(*db_,
                   "UPDATE vnodes SET size = ?, dv = ?, mtime_ns = ?, ctime_ns = ?, "
                   "serial = ? WHERE vnode = ?",
                   new_size, new_dv, now, now, *serial, v->vnode)
                 .Run();
  if (s.ok()) {
    s = SqliteQuery(*db_, "UPDATE header SET stores = stores + 1, bytes_stored = bytes_stored + ?",
              store.bytes_written_)
            .Run();
  }
  if (!s.ok()) return s;
  return AddUsage(static_cast<int64_t>(new_size) - static_cast<int64_t>(v->size), true);
}

StoreTransaction::~StoreTransaction() {
  if (!finished_) (void)Abort();
}

Status StoreTransaction::WriteChunk(uint64_t index, ByteView data) {
  if (finished_) return Error(Code::kInvalidArgument, "store already finished");
  if (data.size() > volume_->options_.chunk_size)
    return Error(Code::kInvalidArgument, "chunk larger than the chunk size");
  if (index >= UINT64_MAX / volume_->options_.chunk_size)
    return Error(Code::kInvalidArgument, "chunk index out of range");
  if (index == 0) chunk0_.reset();
  if (index == 0 && data.size() <= volume_->options_.inline_limit && !written_.contains(0)) {
    chunk0_.emplace(data.begin(), data.end());  // may go inline: no file yet
  } else if (Status s = WriteChunkFile(index, data); !s.ok()) {
    failure_ = s;
    return s;
  }
  bytes_written_ += data.size();
  return Status::Ok();
}

Result<std::optional<Bytes>> StoreTransaction::Written(uint64_t index) {
  if (index == 0 && chunk0_) return std::optional<Bytes>(*chunk0_);
  auto it = written_.find(index);
  if (it == written_.end()) return std::optional<Bytes>();
  auto bytes = volume_->chunks_.Read(Key(index), 0, it->second);
  if (!bytes.ok()) return bytes.status();
  return std::optional<Bytes>(std::move(*bytes));
}

Status StoreTransaction::WriteChunkFile(uint64_t index, ByteView data) {
  written_[index] = 0;  // recorded first, so Abort() removes whatever got written
  Status s = volume_->chunks_.Write(Key(index), data);
  if (s.ok()) written_[index] = data.size();
  return s;
}

Status StoreTransaction::Commit(uint64_t new_size) {
  if (finished_) return Error(Code::kInvalidArgument, "store already finished");
  Status s = failure_;
  if (s.ok()) s = volume_->PrepareChunkedCommit(*this);
  if (s.ok()) s = volume_->CommitStore(*this, new_size);
  if (!s.ok()) {
    (void)Abort();
    return s;
  }
  Finish(/*clean=*/true);
  return Status::Ok();
}

Status StoreTransaction::Abort() {
  if (finished_) return Status::Ok();
  Status result;
  chunk0_.reset();
  for (const auto& [index, len] : written_) {
    Status s = volume_->chunks_.Remove(Key(index));
    if (result.ok()) result = s;
  }
  if (!written_.empty()) {
    Status s = volume_->chunks_.SyncDir();
    if (result.ok()) result = s;
  }
  // A failed write may have left a temp file, a failed removal a chunk: the salvager's job.
  Finish(result.ok() && failure_.ok());
  return result;
}

void StoreTransaction::Finish(bool clean) {
  std::lock_guard lock(volume_->mu_);
  volume_->storing_.erase(vnode_);
  if (!clean) volume_->needs_salvage_ = true;
  finished_ = true;
}

// --- reads -----------------------------------------------------------------------------------

Result<Bytes> Volume::Read(uint64_t vnode, uint64_t offset, uint64_t len) {
  CountOp();
  auto out = ReadUncounted(vnode, offset, len);
  if (out.ok()) {
    pending_reads_.fetch_add(1, std::memory_order_relaxed);
    pending_bytes_read_.fetch_add(out->size(), std::memory_order_relaxed);
  }
  return out;
}

Result<Bytes> Volume::ReadUncounted(uint64_t vnode, uint64_t offset, uint64_t len) {
  std::lock_guard lock(mu_);
  auto v = LoadVnode(vnode);
  if (!v.ok()) return v.status();
  if (v->type == VnodeType::kDir) return Error(Code::kIsDirectory, "read of a directory");
  if (v->type == VnodeType::kSymlink) return Error(Code::kInvalidArgument, "read of a symlink");
  if (offset >= v->size || len == 0) return Bytes();
  const uint64_t end = offset + std::min(len, v->size - offset);  // no overflow
  const uint64_t cs = options_.chunk_size;
  Bytes out(end - offset, 0);
  auto inline_data = LoadInline(vnode);
  if (!inline_data.ok()) return inline_data.status();
  if (inline_data->has_value()) {  // bytes past the inline ones are zeros
    const Bytes& bytes = **inline_data;
    if (offset < bytes.size()) {
      std::memcpy(out.data(), bytes.data() + offset,
                  std::min<uint64_t>(end, bytes.size()) - offset);
    }
    return out;
  }
  for (uint64_t index = offset / cs; index <= (end - 1) / cs; ++index) {
    SqliteQuery q(*db_, "SELECT dv, len FROM chunks WHERE vnode = ? AND idx = ?", vnode, index);
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) continue;  // a hole
    const uint64_t start = index * cs;
    const uint64_t from = std::max(offset, start) - start;
    const uint64_t to = std::min({end - start, cs, q.Uint(1)});
    if (from >= to) continue;
    ChunkKey key{vnode, v->uniq, index, q.Uint(0)};
    auto data = chunks_.Read(key, from, to - from);
    if (!data.ok()) {
      if (data.status().code() == Code::kNotFound)
        return Error(Code::kIoError, "chunk missing: " + chunks_.PathOf(key));
      return data.status();
    }
    std::memcpy(out.data() + (start + from - offset), data->data(), data->size());
  }
  return out;
}

// --- clones ----------------------------------------------------------------------------------

Status Volume::LinkChunksInto(ChunkStore& dest) {
  SqliteQuery q(*db_,
          "SELECT c.vnode, v.uniq, c.idx, c.dv FROM chunks c JOIN vnodes v "
          "ON v.vnode = c.vnode");
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ChunkKey key{q.Uint(0), q.Uint(1), q.Uint(2), q.Uint(3)};
    if (Status s = chunks_.LinkInto(key, dest); !s.ok()) return s;
  }
  return dest.SyncDir();
}

Result<std::unique_ptr<Volume>> Volume::Clone(uint64_t new_id, std::string name, VolumeType type,
                                              const std::string& partition) {
  Env* env = options_.env;
  VolumeOptions dest_options = options_;
  if (!partition.empty()) dest_options.partition = partition;
  std::string dest_dir = VolumeDir(dest_options, new_id);
  {
    std::lock_guard lock(mu_);
    if (Status s = env->MkDir(dest_dir); !s.ok()) return s;
    if (Status s = env->MkDir(dest_dir + "/c"); !s.ok()) return s;
    ChunkStore dest_chunks(env, dest_dir + "/c");
    if (Status s = LinkChunksInto(dest_chunks); !s.ok()) return s;
    // The database goes in last under a temporary name: meta.sqlite exists only for a
    // complete clone.
    std::string tmp = dest_dir + "/clone.sqlite.tmp";
    {
      auto dest = SqliteDb::Open(tmp, /*create=*/true);
      if (!dest.ok()) return dest.status();
      if (Status s = db_->BackupTo(**dest); !s.ok()) return s;
      Status s = SqliteQuery(**dest, "UPDATE header SET id = ?, name = ?, type = ?, parent_id = ?",
                       new_id, name, static_cast<int>(type), id_)
                     .Run();
      if (!s.ok()) return s;
    }  // closing checkpoints the WAL into the file
    if (Status s = env->Rename(tmp, dest_dir + "/meta.sqlite"); !s.ok()) return s;
    if (Status s = env->SyncDir(dest_dir); !s.ok()) return s;
    if (Status s = env->SyncDir(dest_options.partition); !s.ok()) return s;
  }
  return Open(dest_options, new_id);
}

}  // namespace heka::fs

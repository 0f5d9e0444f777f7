// Volume: small files inline in the metadata database (docs/formats/volume.md, "Inline data")
// and the create-with-content operation that makes a small file in one SQLite commit.
#include <algorithm>

#include "fileserver/volume/volume.h"

namespace heka::fs {

Result<std::optional<Bytes>> Volume::LoadInline(uint64_t vnode) {
  SqliteQuery q(*db_, "SELECT data FROM inline_data WHERE vnode = ?", vnode);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Bytes>();
  return std::optional<Bytes>(q.Blob(0));
}

Status Volume::SetInlineInTxn(uint64_t vnode, ByteView data) {
  if (data.empty()) return DropInlineInTxn(vnode);  // zeros need no row
  SqliteQuery q(*db_, "INSERT OR REPLACE INTO inline_data VALUES (?, ?)", vnode);
  q.Bind(data);
  return q.Run();
}

Status Volume::DropInlineInTxn(uint64_t vnode) {
  return SqliteQuery(*db_, "DELETE FROM inline_data WHERE vnode = ?", vnode).Run();
}

Status Volume::ChunksToInlineInTxn(const VnodeStatus& v, uint64_t new_size,
                                   std::vector<ChunkKey>* dead) {
  std::optional<ChunkKey> first;
  uint64_t first_len = 0;
  {
    SqliteQuery q(*db_, "SELECT idx, dv, len FROM chunks WHERE vnode = ?", v.vnode);
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      dead->push_back({v.vnode, v.uniq, q.Uint(0), q.Uint(1)});
      if (q.Uint(0) == 0) {
        first = dead->back();
        first_len = q.Uint(2);
      }
    }
  }
  if (Status s = SqliteQuery(*db_, "DELETE FROM chunks WHERE vnode = ?", v.vnode).Run(); !s.ok())
    return s;
  const uint64_t keep = std::min(first_len, new_size);
  if (!first || keep == 0) return Status::Ok();  // all zeros: nothing to keep
  auto data = chunks_.Read(*first, 0, keep);
  if (!data.ok()) {
    if (data.status().code() == Code::kNotFound)
      return Error(Code::kIoError, "chunk missing: " + chunks_.PathOf(*first));
    return data.status();
  }
  return SetInlineInTxn(v.vnode, *data);
}

Status Volume::PrepareChunkedCommit(StoreTransaction& store) {
  if (store.written_.empty()) return Status::Ok();  // commits in SQLite alone
  if (store.chunk0_) {
    Bytes data = std::move(*store.chunk0_);
    store.chunk0_.reset();
    return store.WriteChunkFile(0, data);
  }
  if (store.written_.contains(0)) return Status::Ok();
  std::optional<Bytes> old;
  {
    std::lock_guard lock(mu_);
    auto v = LoadVnode(store.vnode_);
    if (!v.ok()) return v.status();
    if (v->data_version != store.base_dv_)
      return Error(Code::kUnavailable, "file changed during the store; retry");
    auto inline_data = LoadInline(store.vnode_);
    if (!inline_data.ok()) return inline_data.status();
    old = std::move(*inline_data);
  }
  // The commit checks the data version again, so these bytes are the ones it replaces.
  if (!old || old->empty()) return Status::Ok();
  return store.WriteChunkFile(0, *old);
}

Result<uint64_t> Volume::SpillInline() {
  constexpr int64_t kBatch = 4096;
  struct Item {
    uint64_t vnode, uniq, dv;
    Bytes data;
  };
  uint64_t moved = 0;
  for (;;) {
    std::lock_guard lock(mu_);
    std::vector<Item> items;
    {
      SqliteQuery q(*db_,
                    "SELECT i.vnode, v.uniq, v.dv, i.data FROM inline_data i JOIN vnodes v "
                    "ON v.vnode = i.vnode LIMIT ?",
                    kBatch);
      for (;;) {
        auto row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        items.push_back({q.Uint(0), q.Uint(1), q.Uint(2), q.Blob(3)});
      }
    }
    if (items.empty()) break;
    // The chunk files are durable (one file-system sync for the batch) before the database
    // names them.
    for (const Item& it : items) {
      if (Status s = chunks_.WriteUnsynced({it.vnode, it.uniq, 0, it.dv}, it.data); !s.ok()) return s;
    }
    if (Status s = options_.env->SyncFileSystem(chunks_.dir()); !s.ok()) return s;
    Status s = RunTxn(
        [&]() -> Status {
          for (const Item& it : items) {
            Status st = SqliteQuery(*db_, "INSERT INTO chunks VALUES (?, 0, ?, ?)", it.vnode, it.dv,
                                    static_cast<uint64_t>(it.data.size()))
                            .Run();
            if (st.ok()) st = DropInlineInTxn(it.vnode);
            if (!st.ok()) return st;
          }
          return Status::Ok();
        },
        nullptr);
    if (!s.ok()) return s;
    moved += items.size();
  }
  if (moved > 0) {
    std::lock_guard lock(mu_);
    if (Status s = db_->Exec("VACUUM"); !s.ok()) return s.WithContext("compacting the volume database");
  }
  return moved;
}

Result<VnodeStatus> Volume::CreateInline(uint64_t dir, std::string_view name,
                                         const NewVnodeAttrs& a, ByteView data) {
  std::lock_guard lock(mu_);
  Result<VnodeStatus> out;
  Status s = RunTxn(
      [&]() -> Status {
        auto v = CreateNode(dir, name, VnodeType::kFile, a, {});
        if (!v.ok()) return v.status();
        if (Status st = SetInlineInTxn(v->vnode, data); !st.ok()) return st;
        Status st = SqliteQuery(*db_, "UPDATE vnodes SET size = ?, dv = 2 WHERE vnode = ?",
                          static_cast<uint64_t>(data.size()), v->vnode)
                        .Run();
        if (st.ok()) {
          st = SqliteQuery(*db_, "UPDATE header SET stores = stores + 1, bytes_stored = bytes_stored + ?",
                     static_cast<uint64_t>(data.size()))
                   .Run();
        }
        if (st.ok()) st = AddUsage(static_cast<int64_t>(data.size()), true);
        if (!st.ok()) return st;
        out = LoadVnode(v->vnode);
        return out.status();
      },
      nullptr);
  if (!s.ok()) return s;
  return out;
}

Result<VnodeStatus> Volume::CreateFile(uint64_t dir, std::string_view name, const NewVnodeAttrs& a,
                                       ByteView data) {
  if (data.size() <= options_.inline_limit && !data.empty()) {
    CountOp();
    return CreateInline(dir, name, a, data);
  }
  auto created = CreateFile(dir, name, a);
  if (!created.ok() || data.empty()) return created;
  Status s = [&]() -> Status {
    auto store = BeginStore(created->vnode);
    if (!store.ok()) return store.status();
    const uint64_t cs = options_.chunk_size;
    for (uint64_t off = 0; off < data.size(); off += cs) {
      Status st =
          (*store)->WriteChunk(off / cs, data.subspan(off, std::min(cs, data.size() - off)));
      if (!st.ok()) return st;  // the store aborts when it goes
    }
    return (*store)->Commit(data.size());
  }();
  if (!s.ok()) {
    if (Status undo = UndoCreate(*created); !undo.ok())
      return s.WithContext("the new file could not be removed again (" + undo.ToString() + ")");
    return s;
  }
  std::lock_guard lock(mu_);
  return LoadVnode(created->vnode);
}

Status Volume::UndoCreate(const VnodeStatus& created) {
  std::lock_guard lock(mu_);
  std::vector<ChunkKey> dead;
  return RunTxn(
      [&]() -> Status {
        auto v = LoadVnode(created.vnode);
        if (!v.ok()) return v.status().code() == Code::kNotFound ? Status::Ok() : v.status();
        if (v->uniq != created.uniq || v->data_version != created.data_version)
          return Status::Ok();  // already gone, or someone else's data now: keep it
        auto serial = BumpSerial();
        if (!serial.ok()) return serial.status();
        Status s =
            SqliteQuery(*db_, "DELETE FROM dirents WHERE dir = ? AND child = ?", v->parent, v->vnode)
                .Run();
        if (s.ok()) s = DeleteVnode(*v, &dead);
        if (s.ok()) s = TouchDir(v->parent, *serial, 0);
        return s;
      },
      &dead);
}

}  // namespace heka::fs

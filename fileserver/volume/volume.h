// Volume: one volume instance on a partition: its metadata database (vnodes, directory
// entries, ACLs, header; SQLite in <partition>/V<volid>/meta.sqlite) and its file data
// (chunks in <partition>/V<volid>/c; small files inline in the database). Format:
// docs/formats/volume.md.
// Every operation is one SQLite transaction and is durable when it returns OK. A store is a
// transaction too (StoreTransaction): readers see the old or the new data version, never a mix.
// Dirty marker: the first change after the volume was clean durably creates V<volid>/dirty;
// TryMarkClean() removes it when nothing is in flight. A volume found with the marker (or
// without meta.sqlite) after a crash needs the salvager (salvage.h); the others are consistent.
// Thread safety: all methods may be called from any thread; a mutex serialises them (reads
// included, for now; the read counters are atomics). A StoreTransaction is used by one
// thread and must not outlive its Volume. Errors (util/status.h): kNotFound (ENOENT),
// kAlreadyExists (EEXIST), kNotDirectory (ENOTDIR), kIsDirectory (EISDIR), kNotEmpty
// (ENOTEMPTY), kCrossDevice (EXDEV), kQuotaExceeded (EDQUOT), kInvalidArgument (bad name,
// "name too long"), kNoSpace / kIoError (storage), kLocked (another store to the same
// vnode is in progress).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fileserver/volume/chunk_store.h"
#include "fileserver/volume/env.h"
#include "util/sqlite.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::fs {

inline constexpr uint32_t kVolumeFormatVersion = 1;
inline constexpr uint64_t kRootVnode = 1;
inline constexpr size_t kMaxNameLength = 1024;            // bytes
inline constexpr int64_t kSystemAdministrators = -204;    // AFS's id of system:administrators
inline constexpr const char* kDirtyMarkerName = "dirty";  // V<volid>/dirty: changes in flight
// <partition>/.staging: clones being dumped and volumes being restored; emptied at start.
inline constexpr const char* kStagingDirName = ".staging";

enum class VolumeType : uint8_t { kReadWrite = 0, kReadOnly = 1, kBackup = 2 };
enum class VnodeType : uint8_t { kFile = 1, kDir = 2, kSymlink = 3 };

// AFS access rights (the same bit values as OpenAFS's PRSFS_*).
enum Rights : uint32_t {
  kRead = 1,         // r
  kWrite = 2,        // w
  kInsert = 4,       // i
  kLookup = 8,       // l
  kDelete = 16,      // d
  kLock = 32,        // k
  kAdminister = 64,  // a
  kAllRights = 127,
};

struct VolumeHeader {
  uint64_t id = 0;
  std::string name;
  VolumeType type = VolumeType::kReadWrite;
  uint64_t parent_id = 0;    // the RW volume this one was cloned from; 0 if none
  uint64_t quota_bytes = 0;  // 0: unlimited
  uint64_t usage_bytes = 0;  // sum of file and symlink sizes
  uint64_t next_vnode = 0;
  uint64_t next_uniq = 0;
  uint64_t serial = 0;  // change serial: bumped by every change
  uint64_t files = 0;   // vnodes of every type (files, directories, symlinks), root included
  // Billing counters. ops, reads and bytes_read are counted in memory and persisted by
  // FlushCounters() or the next change; a crash loses at most the unflushed ones.
  uint64_t stores = 0;        // committed stores
  uint64_t bytes_stored = 0;  // bytes written by committed stores
  uint64_t ops = 0;           // operations of any kind, reads included (a store counts once)
  uint64_t reads = 0;         // Read() calls that succeeded
  uint64_t bytes_read = 0;    // bytes returned by them
};

struct VnodeStatus {
  uint64_t vnode = 0;
  uint64_t uniq = 0;
  VnodeType type = VnodeType::kFile;
  uint32_t mode = 0;
  int64_t owner = 0;
  int64_t group = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t data_version = 0;
  uint32_t link_count = 0;  // files: entries naming it; directories: 2 + subdirectories
  uint64_t parent = 0;      // the directory holding its entries (root: itself)
  uint64_t serial = 0;      // change serial of its last change
  Bytes client_attr;        // opaque to the server
};

struct DirEntry {
  std::string name;  // bytes, not necessarily UTF-8
  uint64_t vnode = 0;
  uint64_t uniq = 0;
};

struct AclEntry {
  int64_t principal = 0;  // user or group id (PTDB); groups are negative
  uint32_t rights = 0;    // Rights bits
  bool negative = false;  // a negative entry removes rights
  bool operator==(const AclEntry&) const = default;
};

struct NewVnodeAttrs {
  uint32_t mode = 0644;
  int64_t owner = 0;
  int64_t group = 0;
  Bytes client_attr;
};

// Fields left empty are not changed. A size change truncates or extends (with zeros) and is
// a new data version; extending counts against the quota.
struct SetAttrRequest {
  std::optional<uint32_t> mode = std::nullopt;
  std::optional<int64_t> owner = std::nullopt;
  std::optional<int64_t> group = std::nullopt;
  std::optional<int64_t> mtime_ns = std::nullopt;
  std::optional<uint64_t> size = std::nullopt;
  std::optional<Bytes> client_attr = std::nullopt;
};

struct VolumeOptions {
  Env* env = nullptr;             // not owned; must outlive the volume. Default: DefaultEnv()
  std::string partition;          // directory of the partition, e.g. "/vicepa"; must exist
  uint64_t chunk_size = 1 << 20;  // bytes. Default: 1 MiB. Fixed for a volume's life.
  // Bytes. A file whose data fits keeps it in the metadata database instead of chunk files,
  // so that writing it costs one SQLite commit. 0: never. Capped at chunk_size (inline data
  // is always chunk 0). Default: 64 KiB. Fixed for a volume's life, like chunk_size: Open()
  // takes both from the header, whatever the options say.
  uint64_t inline_limit = 64 << 10;
  std::function<int64_t()> now_ns;  // wall clock in ns since the epoch. Default: realtime
};

// The directory of volume `id`: <partition>/V<id>.
std::string VolumeDir(const VolumeOptions& options, uint64_t id);
// Ids of the volume directories ("V<decimal>") on the partition, ascending, unfinished clones
// included.
Result<std::vector<uint64_t>> ListVolumeIds(const VolumeOptions& options);
// True when volume `id` must be salvaged before it is opened: its dirty marker is present (it
// was being changed when the server stopped) or it has no meta.sqlite (an unfinished clone).
bool VolumeNeedsSalvage(const VolumeOptions& options, uint64_t id);

// OK for a valid directory entry name: 1 to kMaxNameLength bytes ("name too long" beyond),
// not "." or "..". Otherwise kInvalidArgument. Names are opaque byte strings: any byte,
// '/' and NUL included, may appear (an encrypted volume's names are raw AES-SIV output,
// docs/formats/encryption.md); the server never makes a file-system path of one.
Status CheckEntryName(std::string_view name);

// `name` for a message or a log line: printable ASCII as it is, every other byte, backslash
// and single quote as \xNN; at most the first 64 bytes ("..." after). Status messages travel
// in proto3 string fields, which must be valid UTF-8, so a raw name must never go into one.
std::string PrintableName(std::string_view name);

class StoreTransaction;

class Volume {
 public:
  // Creates a new volume with an empty root directory (vnode 1) whose ACL gives
  // system:administrators all rights and whose client attribute is `root_client_attr` (an
  // encrypted volume's root ID; empty otherwise). kAlreadyExists if the volume directory
  // exists.
  static Result<std::unique_ptr<Volume>> Create(VolumeOptions options, uint64_t id,
                                                std::string name, VolumeType type,
                                                uint64_t quota_bytes,
                                                ByteView root_client_attr = {});
  // Opens an existing volume. kNotFound if there is none. Callers should salvage first when
  // VolumeNeedsSalvage(); a dirty marker found here is kept until a salvage removes it.
  static Result<std::unique_ptr<Volume>> Open(VolumeOptions options, uint64_t id);
  ~Volume();  // TryMarkClean()

  // Persists the in-memory counters (ops, reads, bytes_read) in one small transaction. Does
  // not touch the dirty marker.
  Status FlushCounters();
  // Flushes the counters and, if no change and no StoreTransaction is in progress, durably
  // removes the dirty marker. True when the volume is now marked clean. False while stores
  // are open, on I/O errors, and when garbage may be left behind (a failed store or chunk
  // removal, or a marker found at Open): such a volume keeps its marker until salvaged.
  bool TryMarkClean();

  Result<VolumeHeader> Header();
  Status SetQuota(uint64_t quota_bytes);  // 0: unlimited

  Result<VnodeStatus> GetVnode(uint64_t vnode);
  Result<DirEntry> Lookup(uint64_t dir, std::string_view name);
  // Up to `limit` entries of `dir` whose names sort (bytewise) after `after_name`, in order.
  // Start with "". Paging stays correct while entries are created and deleted: an entry
  // present throughout appears exactly once.
  Result<std::vector<DirEntry>> List(uint64_t dir, std::string_view after_name, size_t limit);

  // Create a file, directory (inheriting the parent's ACL) or symlink named `name` in `dir`.
  // kQuotaExceeded when the volume is at or over its quota (or a symlink's target would
  // take it over).
  Result<VnodeStatus> CreateFile(uint64_t dir, std::string_view name, const NewVnodeAttrs& a);
  // Creates a file with content `data`, all or nothing: the result is the file as a create
  // followed by a store would leave it (data version 2, one store counted). Data within
  // inline_limit() is created in ONE SQLite transaction (the cheap path for small files);
  // larger data is created, then stored in chunks, and the file is removed again if the store
  // fails (a crash in between can leave it empty). kQuotaExceeded if the volume is at its
  // quota or `data` would take it over; nothing is left behind.
  Result<VnodeStatus> CreateFile(uint64_t dir, std::string_view name, const NewVnodeAttrs& a,
                                 ByteView data);
  Result<VnodeStatus> MakeDir(uint64_t dir, std::string_view name, const NewVnodeAttrs& a);
  Result<VnodeStatus> Symlink(uint64_t dir, std::string_view name, std::string_view target,
                              const NewVnodeAttrs& a);
  Result<std::string> ReadLink(uint64_t vnode);

  // Removes a file or symlink entry (kIsDirectory for a directory). The vnode and its data
  // go when its last link does.
  Status Remove(uint64_t dir, std::string_view name);
  // Removes an empty directory (kNotDirectory for a file, kNotEmpty if it has entries).
  Status RemoveDir(uint64_t dir, std::string_view name);
  // rename(2) within the volume, replacing an existing target (a file by a file, an empty
  // directory by a directory). kInvalidArgument when moving a directory into itself;
  // kCrossDevice when moving a file with several links to another directory (AFS rule:
  // all links of a file live in one directory).
  Status Rename(uint64_t src_dir, std::string_view src_name, uint64_t dst_dir,
                std::string_view dst_name);
  // Adds a hard link `name` in `dir` to file `vnode`, which must already be in `dir`
  // (kCrossDevice otherwise; kIsDirectory for a directory).
  Result<VnodeStatus> Link(uint64_t dir, uint64_t vnode, std::string_view name);
  Result<VnodeStatus> SetAttr(uint64_t vnode, const SetAttrRequest& request);

  Result<std::vector<AclEntry>> GetAcl(uint64_t dir);
  Status SetAcl(uint64_t dir, const std::vector<AclEntry>& acl);  // replaces the ACL

  // Starts a store to file `vnode`. See StoreTransaction.
  Result<std::unique_ptr<StoreTransaction>> BeginStore(uint64_t vnode);
  // Reads [offset, offset + len) of the current data version, clipped to the file size.
  // Holes (chunks never written) read as zeros.
  Result<Bytes> Read(uint64_t vnode, uint64_t offset, uint64_t len);

  // A cheap copy of this volume as `new_id` on the same partition: the metadata database is
  // copied (SQLite backup API) and every chunk file hard-linked, so both share the data
  // until one of them stores (chunks are never modified in place).
  // `partition`: where the clone goes instead of this volume's partition (a staging
  // directory on the same file system).
  Result<std::unique_ptr<Volume>> Clone(uint64_t new_id, std::string name, VolumeType type,
                                        const std::string& partition = "");
  // Before a lasting clone (a backup, a release): moves small files' data from the metadata
  // database into chunk files, so that the clone shares them (hard links) instead of copying
  // them with the database, which is then compacted. Content, data versions and change
  // serials stay as they are. In batches, each its own transaction, so clients wait at most
  // one batch. Returns how many files moved.
  Result<uint64_t> SpillInline();

  uint64_t id() const { return id_; }
  uint64_t chunk_size() const { return options_.chunk_size; }
  uint64_t inline_limit() const { return options_.inline_limit; }  // ≤ chunk_size()
  const std::string& dir() const { return dir_; }

 private:
  friend class StoreTransaction;
  friend class VolumeDumper;    // volume_dump.cc
  friend class VolumeRestorer;
  struct Txn;
  Volume(VolumeOptions options, uint64_t id, std::unique_ptr<SqliteDb> db);

  Result<Bytes> ReadUncounted(uint64_t vnode, uint64_t offset, uint64_t len);  // takes mu_

  // All below: REQUIRES mu_ held; the *InTxn ones also an open transaction.
  // Creates the dirty marker (file and directory synced) unless it is already there.
  Status MarkDirty();
  Status FlushCountersLocked();
  // Adds the in-memory counters to the header inside the current transaction; returns what
  // it added, to be taken off the in-memory counters once the transaction commits.
  Result<std::array<uint64_t, 3>> FoldCountersInTxn();
  void ForgetFolded(const std::array<uint64_t, 3>& folded);
  void CountOp() { pending_ops_.fetch_add(1, std::memory_order_relaxed); }
  Status RunTxn(const std::function<Status()>& body, std::vector<ChunkKey>* dead_chunks);
  void DropChunks(const std::vector<ChunkKey>& keys);
  Result<VnodeStatus> LoadVnode(uint64_t vnode);
  Result<VnodeStatus> LoadDir(uint64_t dir);
  Result<DirEntry> LookupInTxn(uint64_t dir, std::string_view name);
  Result<uint64_t> BumpSerial();
  Status AddUsage(int64_t delta, bool check_quota);
  Status TouchDir(uint64_t dir, uint64_t serial, int link_delta);
  Status DropLink(const VnodeStatus& v, uint64_t serial, std::vector<ChunkKey>* dead);
  Status DeleteVnode(const VnodeStatus& v, std::vector<ChunkKey>* dead);
  Status IsEmptyDir(uint64_t dir);
  Status CheckNotAncestor(uint64_t moving, uint64_t dst_dir);
  Result<VnodeStatus> CreateNode(uint64_t dir, std::string_view name, VnodeType type,
                                 const NewVnodeAttrs& a, std::string_view target);
  Status RenameInTxn(uint64_t src_dir, std::string_view src_name, uint64_t dst_dir,
                     std::string_view dst_name, std::vector<ChunkKey>* dead);
  Status ReplaceTarget(const VnodeStatus& src, const DirEntry& target, uint64_t dst_dir,
                       uint64_t serial, std::vector<ChunkKey>* dead);
  // Clips a file's data to `new_size` (chunk rows clipped or dropped, inline bytes cut); a
  // chunked file that shrinks to at most the inline limit moves inline. The caller sets the
  // size and data version.
  Status ResizeInTxn(const VnodeStatus& v, uint64_t new_size, std::vector<ChunkKey>* dead);
  Status CommitStore(StoreTransaction& store, uint64_t new_size);
  Status CommitStoreInTxn(StoreTransaction& store, uint64_t new_size, std::vector<ChunkKey>* dead);

  // Inline data (volume_inline.cc). REQUIRES mu_ held; the *InTxn ones an open transaction.
  // The inline bytes of `vnode`, if its data is inline (a row in inline_data).
  Result<std::optional<Bytes>> LoadInline(uint64_t vnode);
  Status SetInlineInTxn(uint64_t vnode, ByteView data);  // empty data: no row
  Status DropInlineInTxn(uint64_t vnode);
  // Moves all chunk rows of `v` to `dead`, and chunk 0's first `new_size` bytes inline.
  Status ChunksToInlineInTxn(const VnodeStatus& v, uint64_t new_size, std::vector<ChunkKey>* dead);
  // Before a store that wrote chunk files commits (takes mu_): its buffered chunk 0 becomes a
  // chunk file, or, if the file is inline and the store did not write chunk 0, the old inline
  // bytes are written as the new chunk 0, so that the file moves to chunks whole.
  Status PrepareChunkedCommit(StoreTransaction& store);
  Result<VnodeStatus> CreateInline(uint64_t dir, std::string_view name, const NewVnodeAttrs& a,
                                   ByteView data);
  // Removes the file CreateFile(..., data) made if nobody has changed its data since (takes
  // mu_).
  Status UndoCreate(const VnodeStatus& v);
  Status LinkChunksInto(ChunkStore& dest);

  const VolumeOptions options_;
  const uint64_t id_;
  const std::string dir_;
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
  ChunkStore chunks_;
  std::set<uint64_t> storing_;  // vnodes with a StoreTransaction in progress
  bool dirty_ = false;          // mu_: the dirty marker exists
  bool needs_salvage_ = false;  // mu_: garbage may exist, keep the marker for the salvager
  // Not yet persisted counters; atomics so that reads can count without the lock.
  std::atomic<uint64_t> pending_ops_{0};
  std::atomic<uint64_t> pending_reads_{0};
  std::atomic<uint64_t> pending_bytes_read_{0};
};

// A store: BeginStore → WriteChunk any number of times → Commit (or Abort). Chunks are
// written durably under the new data version as WriteChunk is called, outside the volume's
// lock; Commit then makes them visible in one SQLite commit (size, data version + 1, usage)
// and only afterwards deletes the chunks of the old version that were replaced. On any
// failure, and on Abort() or destruction without Commit, the new chunks are removed and the
// file is unchanged. Only one store per vnode at a time.
// Inline data: a chunk 0 of at most inline_limit() bytes is kept in memory. If the store
// writes no other chunk, Commit puts it (or, without a chunk 0, keeps the old data) in the
// database in the same single commit, writing no file at all. Otherwise the file moves to
// chunks: the buffered chunk 0, or the old inline bytes if chunk 0 was not written, are
// written as chunk 0 first.
class StoreTransaction {
 public:
  ~StoreTransaction();  // aborts if neither committed nor aborted
  StoreTransaction(const StoreTransaction&) = delete;
  StoreTransaction& operator=(const StoreTransaction&) = delete;

  // The new full content of chunk `index` (bytes [index * chunk_size, ...)).
  // REQUIRES: data.size() <= chunk_size; the transaction is still open.
  Status WriteChunk(uint64_t index, ByteView data);
  // What this transaction wrote as chunk `index`, or nullopt if it wrote nothing there (a
  // write to part of a chunk builds on this, not on the committed version).
  Result<std::optional<Bytes>> Written(uint64_t index);
  // Makes the store visible with file size `new_size`: chunks past it are dropped, the
  // rest of the file keeps its old chunks. kQuotaExceeded if growing past the quota.
  // After an error the transaction is finished (aborted).
  Status Commit(uint64_t new_size);
  Status Abort();

  uint64_t vnode() const { return vnode_; }
  uint64_t base_data_version() const { return base_dv_; }

 private:
  friend class Volume;
  StoreTransaction(Volume* volume, uint64_t vnode, uint64_t uniq, uint64_t base_dv)
      : volume_(volume), vnode_(vnode), uniq_(uniq), base_dv_(base_dv) {}
  ChunkKey Key(uint64_t index) const { return {vnode_, uniq_, index, base_dv_ + 1}; }
  Status WriteChunkFile(uint64_t index, ByteView data);
  // Releases the vnode's store slot. `clean`: false when files may be left behind.
  void Finish(bool clean);

  Volume* volume_;
  uint64_t vnode_;
  uint64_t uniq_;
  uint64_t base_dv_;
  std::map<uint64_t, uint64_t> written_;  // chunk files written: chunk index → length
  // Chunk 0 when it fits the inline limit and no chunk 0 file was written: kept in memory,
  // committed inline if no chunk file is written, else written as a file at Commit.
  std::optional<Bytes> chunk0_;
  uint64_t bytes_written_ = 0;
  Status failure_;  // the first WriteChunk failure: Commit refuses
  bool finished_ = false;
};

}  // namespace heka::fs

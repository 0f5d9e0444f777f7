// Env: the file-system seam of the volume store (STYLE.md §6). Everything the chunk store
// does to files goes through an Env, so tests can count bytes, fail writes with ENOSPC or
// EIO, and drop data that was never synced (FaultEnv below).
// Thread safety: PosixEnv is thread-safe. FaultEnv serialises its own bookkeeping with a
// mutex, so it may be shared between threads too; a WritableFile is used by one thread.
// Not covered: SQLite opens and syncs its own files (synchronous=FULL), so the metadata
// database is outside the seam; a FaultEnv crash leaves its last committed state in place.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "util/bytes.h"
#include "util/status.h"

namespace heka::fs {

// A file open for appending. Close() is implied by destruction (errors then are lost).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(ByteView data) = 0;
  virtual Status Sync() = 0;  // fsync: the data written so far survives a crash
  virtual Status Close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // Creates `path` (truncating an existing file) for appending. The new name is durable only
  // after SyncDir() of its directory.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Reads up to `len` bytes at `offset`; fewer at end of file. kNotFound if absent.
  virtual Result<Bytes> ReadAt(const std::string& path, uint64_t offset, uint64_t len) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // rename(2): atomically replaces `to`. Durable after SyncDir() of both directories.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Unlink(const std::string& path) = 0;                       // kNotFound if absent
  virtual Status Link(const std::string& from, const std::string& to) = 0;  // link(2)
  virtual Status MkDir(const std::string& path) = 0;  // kAlreadyExists if present
  // rmdir(2) of an empty directory. Durable after SyncDir() of its parent.
  virtual Status RemoveDir(const std::string& path) = 0;
  virtual Status SyncDir(const std::string& path) = 0;  // fsync of a directory
  virtual Status SyncFile(const std::string& path) = 0;  // fsync of a closed file
  // syncfs(2) of the file system holding `path`: everything written there is durable.
  virtual Status SyncFileSystem(const std::string& path) = 0;
  // A hint: `path` will be read soon (its reading may start in the background). Best effort.
  virtual void WillNeed(const std::string& path) { (void)path; }
  // Names in a directory, without "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Inode number (tests check that clones share chunk files).
  virtual Result<uint64_t> Inode(const std::string& path) = 0;
};

// The real file system. Errors map ENOENT→kNotFound, EEXIST→kAlreadyExists, ENOSPC and
// EDQUOT→kNoSpace, anything else→kIoError; messages name the call and the path.
Env* DefaultEnv();  // a process-wide PosixEnv without state; never deleted

// A fault-injecting Env over another one (for tests and crash tests; named as a test seam).
//
// Faults:
// - test_FailWrites(n, code): the next n Append() calls fail with `code` (kNoSpace or
//   kIoError) and write nothing.
// - test_KillAfter(n): after n more mutating calls (create, append, sync, rename, unlink,
//   link, mkdir, rmdir, syncdir), every mutating call fails with kIoError, as if the process
//   had died at that point. Reads keep working. Cleared by Crash().
// - Crash(): simulates a power loss for everything done through this Env since it was
//   built (or since the last Crash()):
//     * a file created through NewWritableFile keeps only the bytes it had at its last
//       Sync() (none if never synced);
//     * creates, renames, links and unlinks not followed by SyncDir() of the directory
//       they changed are undone, newest first (an undone rename moves the file back and
//       restores the file it replaced; an undone unlink restores the content);
//     * a rename counts as durable once the target directory is synced (and the source
//       directory too when it differs).
//   Files the FaultEnv never wrote are assumed durable, and so are directories it made or
//   removed.
//   Restored files get new inodes. The base Env must be a real file system (Crash()
//   truncates with truncate(2)).
//   REQUIRES: no WritableFile from this Env is still open.
// Counters: bytes_written() and syncs() count successful Append() bytes and Sync() calls.
class FaultEnv : public Env {
 public:
  explicit FaultEnv(Env* base) : base_(base) {}

  void test_FailWrites(int n, Code code);
  void test_KillAfter(int64_t mutating_calls);
  Status Crash();
  uint64_t bytes_written() const;
  uint64_t syncs() const;
  void ResetCounters();

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<Bytes> ReadAt(const std::string& path, uint64_t offset, uint64_t len) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Unlink(const std::string& path) override;
  Status Link(const std::string& from, const std::string& to) override;
  Status MkDir(const std::string& path) override;
  Status RemoveDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status SyncFile(const std::string& path) override;
  Status SyncFileSystem(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Result<uint64_t> Inode(const std::string& path) override;

 private:
  friend class FaultFile;
  // A namespace change not yet made durable by a directory sync.
  struct PendingOp {
    enum Kind { kCreate, kRename, kLink, kUnlink } kind;
    std::string path;               // the created/removed/target name
    std::string from;               // kRename: the old name
    std::optional<Bytes> replaced;  // kRename/kUnlink: content the name had before
    std::vector<std::string> dirs;  // directories that must be synced
  };
  Status CheckAlive();  // REQUIRES: mu_ held
  Status Undo(const PendingOp& op);
  std::optional<Bytes> Snapshot(const std::string& path);  // whole content, if a file

  Env* const base_;
  mutable std::mutex mu_;
  int fail_writes_ = 0;
  Code fail_code_ = Code::kNoSpace;
  int64_t kill_after_ = -1;  // -1: never
  uint64_t bytes_written_ = 0;
  uint64_t syncs_ = 0;
  // Files written through this Env: current name → length at the last Sync().
  std::map<std::string, uint64_t> synced_len_;
  std::vector<PendingOp> pending_;
};

// The directory part of a path ("a/b/c" → "a/b"; "c" → ".").
std::string DirName(const std::string& path);

}  // namespace heka::fs

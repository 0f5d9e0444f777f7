#include "fileserver/volume/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace heka::fs {
namespace {

Status OsError(int err, std::string_view call, const std::string& path) {
  std::string msg = std::string(call) + " " + path + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
      return Error(Code::kNotFound, std::move(msg));
    case EEXIST:
      return Error(Code::kAlreadyExists, std::move(msg));
    case ENOSPC:
    case EDQUOT:
      return Error(Code::kNoSpace, std::move(msg));
    default:
      return Error(Code::kIoError, std::move(msg));
  }
}

class PosixFile : public WritableFile {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { (void)Close(); }

  Status Append(ByteView data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return OsError(errno, "write", path_);
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fsync(fd_) != 0) return OsError(errno, "fsync", path_);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return OsError(errno, "close", path_);
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

// fsync of the file or directory at `path` (`flags` added to O_RDONLY for the open).
Status Fsync(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  if (fd < 0) return OsError(errno, "open", path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return OsError(err, "fsync", path);
  return Status::Ok();
}

class PosixEnv : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return OsError(errno, "open", path);
    return std::unique_ptr<WritableFile>(new PosixFile(fd, path));
  }
  Result<Bytes> ReadAt(const std::string& path, uint64_t offset, uint64_t len) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return OsError(errno, "open", path);
    Bytes out(len);
    uint64_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd, out.data() + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return OsError(err, "pread", path);
      }
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    ::close(fd);
    out.resize(done);
    return out;
  }
  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return OsError(errno, "stat", path);
    return static_cast<uint64_t>(st.st_size);
  }
  bool FileExists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return OsError(errno, "rename", from);
    return Status::Ok();
  }
  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return OsError(errno, "unlink", path);
    return Status::Ok();
  }
  Status Link(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) return OsError(errno, "link", to);
    return Status::Ok();
  }
  Status MkDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) return OsError(errno, "mkdir", path);
    return Status::Ok();
  }
  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return OsError(errno, "rmdir", path);
    return Status::Ok();
  }
  Status SyncDir(const std::string& path) override { return Fsync(path, O_DIRECTORY); }
  void WillNeed(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    ::close(fd);
  }
  Status SyncFile(const std::string& path) override { return Fsync(path, 0); }
  Status SyncFileSystem(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return OsError(errno, "open", path);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return OsError(err, "syncfs", path);
    return Status::Ok();
  }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return OsError(errno, "opendir", path);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(dir);
    return names;
  }
  Result<uint64_t> Inode(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return OsError(errno, "stat", path);
    return static_cast<uint64_t>(st.st_ino);
  }
};

}  // namespace

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Env* DefaultEnv() {
  static PosixEnv* env = new PosixEnv();
  return env;
}

// --- FaultEnv ------------------------------------------------------------------------------

class FaultFile : public WritableFile {
 public:
  FaultFile(FaultEnv* env, std::unique_ptr<WritableFile> base, std::string path)
      : env_(env), base_(std::move(base)), path_(std::move(path)) {}

  Status Append(ByteView data) override {
    std::lock_guard lock(env_->mu_);
    if (Status s = env_->CheckAlive(); !s.ok()) return s;
    if (env_->fail_writes_ > 0) {
      env_->fail_writes_--;
      return Error(env_->fail_code_, "injected write failure: " + path_);
    }
    if (Status s = base_->Append(data); !s.ok()) return s;
    written_ += data.size();
    env_->bytes_written_ += data.size();
    return Status::Ok();
  }
  Status Sync() override {
    std::lock_guard lock(env_->mu_);
    if (Status s = env_->CheckAlive(); !s.ok()) return s;
    if (Status s = base_->Sync(); !s.ok()) return s;
    env_->syncs_++;
    env_->synced_len_[path_] = written_;
    return Status::Ok();
  }
  Status Close() override { return base_->Close(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<WritableFile> base_;
  std::string path_;
  uint64_t written_ = 0;
};

void FaultEnv::test_FailWrites(int n, Code code) {
  std::lock_guard lock(mu_);
  fail_writes_ = n;
  fail_code_ = code;
}

void FaultEnv::test_KillAfter(int64_t mutating_calls) {
  std::lock_guard lock(mu_);
  kill_after_ = mutating_calls;
}

uint64_t FaultEnv::bytes_written() const {
  std::lock_guard lock(mu_);
  return bytes_written_;
}

uint64_t FaultEnv::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

void FaultEnv::ResetCounters() {
  std::lock_guard lock(mu_);
  bytes_written_ = 0;
  syncs_ = 0;
}

Status FaultEnv::CheckAlive() {
  if (kill_after_ == 0) return Error(Code::kIoError, "injected: process killed");
  if (kill_after_ > 0) kill_after_--;
  return Status::Ok();
}

std::optional<Bytes> FaultEnv::Snapshot(const std::string& path) {
  auto size = base_->FileSize(path);
  if (!size.ok()) return std::nullopt;
  auto data = base_->ReadAt(path, 0, *size);
  if (!data.ok()) return std::nullopt;
  auto it = synced_len_.find(path);
  if (it != synced_len_.end() && data->size() > it->second) data->resize(it->second);
  return std::move(*data);
}

Result<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  std::optional<Bytes> replaced = Snapshot(path);
  auto file = base_->NewWritableFile(path);
  if (!file.ok()) return file.status();
  synced_len_[path] = 0;
  pending_.push_back({PendingOp::kCreate, path, "", std::move(replaced), {DirName(path)}});
  return std::unique_ptr<WritableFile>(new FaultFile(this, std::move(*file), path));
}

Result<Bytes> FaultEnv::ReadAt(const std::string& path, uint64_t offset, uint64_t len) {
  return base_->ReadAt(path, offset, len);
}
Result<uint64_t> FaultEnv::FileSize(const std::string& path) { return base_->FileSize(path); }
bool FaultEnv::FileExists(const std::string& path) { return base_->FileExists(path); }
Result<std::vector<std::string>> FaultEnv::ListDir(const std::string& path) {
  return base_->ListDir(path);
}
Result<uint64_t> FaultEnv::Inode(const std::string& path) { return base_->Inode(path); }

Status FaultEnv::Rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  std::optional<Bytes> replaced = Snapshot(to);
  if (Status s = base_->Rename(from, to); !s.ok()) return s;
  synced_len_.erase(to);
  if (auto node = synced_len_.extract(from)) {
    node.key() = to;
    synced_len_.insert(std::move(node));
  }
  std::vector<std::string> dirs = {DirName(to)};
  if (DirName(from) != DirName(to)) dirs.push_back(DirName(from));
  pending_.push_back({PendingOp::kRename, to, from, std::move(replaced), std::move(dirs)});
  return Status::Ok();
}

Status FaultEnv::Unlink(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  std::optional<Bytes> replaced = Snapshot(path);
  if (Status s = base_->Unlink(path); !s.ok()) return s;
  synced_len_.erase(path);
  pending_.push_back({PendingOp::kUnlink, path, "", std::move(replaced), {DirName(path)}});
  return Status::Ok();
}

Status FaultEnv::Link(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  if (Status s = base_->Link(from, to); !s.ok()) return s;
  pending_.push_back({PendingOp::kLink, to, from, std::nullopt, {DirName(to)}});
  return Status::Ok();
}

Status FaultEnv::MkDir(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  return base_->MkDir(path);  // directories are treated as durable once made
}

Status FaultEnv::RemoveDir(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  return base_->RemoveDir(path);  // like MkDir: durable at once
}

Status FaultEnv::SyncDir(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  if (Status s = base_->SyncDir(path); !s.ok()) return s;
  for (PendingOp& op : pending_) std::erase(op.dirs, path);
  std::erase_if(pending_, [](const PendingOp& op) { return op.dirs.empty(); });
  return Status::Ok();
}

Status FaultEnv::SyncFile(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  if (Status s = base_->SyncFile(path); !s.ok()) return s;
  auto size = base_->FileSize(path);
  if (!size.ok()) return size.status();
  syncs_++;
  synced_len_[path] = *size;
  return Status::Ok();
}

Status FaultEnv::SyncFileSystem(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;
  if (Status s = base_->SyncFileSystem(path); !s.ok()) return s;
  for (auto& [file, len] : synced_len_) {  // every file and name change is durable now
    auto size = base_->FileSize(file);
    if (size.ok()) len = *size;
  }
  pending_.clear();
  syncs_++;
  return Status::Ok();
}

// Writes `content` to `path` directly on the base Env, synced.
static Status Restore(Env* base, const std::string& path, const Bytes& content) {
  auto file = base->NewWritableFile(path);
  if (!file.ok()) return file.status();
  if (Status s = (*file)->Append(content); !s.ok()) return s;
  if (Status s = (*file)->Sync(); !s.ok()) return s;
  return (*file)->Close();
}

Status FaultEnv::Undo(const PendingOp& op) {
  auto drop = [&](const std::string& p) {
    Status s = base_->Unlink(p);
    return s.code() == Code::kNotFound ? Status::Ok() : s;
  };
  switch (op.kind) {
    case PendingOp::kCreate:
    case PendingOp::kLink:
      if (Status s = drop(op.path); !s.ok()) return s;
      synced_len_.erase(op.path);
      break;
    case PendingOp::kRename:
      if (base_->FileExists(op.path)) {
        if (Status s = base_->Rename(op.path, op.from); !s.ok()) return s;
      }
      synced_len_.erase(op.path);
      break;
    case PendingOp::kUnlink:
      break;
  }
  if (op.replaced) return Restore(base_, op.path, *op.replaced);
  return Status::Ok();
}

Status FaultEnv::Crash() {
  std::lock_guard lock(mu_);
  // Unsynced bytes first, by each file's current name; then namespace changes, newest first.
  for (const auto& [path, len] : synced_len_) {
    auto size = base_->FileSize(path);
    if (!size.ok() || *size <= len) continue;
    if (::truncate(path.c_str(), static_cast<off_t>(len)) != 0)
      return Error(Code::kIoError, "truncate " + path + ": " + std::strerror(errno));
  }
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
    if (Status s = Undo(*it); !s.ok()) return s.WithContext("FaultEnv::Crash");
  }
  pending_.clear();
  synced_len_.clear();
  kill_after_ = -1;
  fail_writes_ = 0;
  return Status::Ok();
}

}  // namespace heka::fs

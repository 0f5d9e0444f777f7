#include "cachemgr/creds.h"

#include <dirent.h>
#include <fcntl.h>
#include <krb5.h>
#include <spdlog/spdlog.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace heka::cm {
namespace {

constexpr size_t kMaxCacheBytes = 1 << 20;    // a ccache is a few KiB; refuse anything huge
constexpr size_t kMaxEnvironBytes = 4 << 20;  // ARG_MAX is at most a quarter of the stack
constexpr size_t kMaxRememberedPids = 4096;   // env_cache_ is pruned beyond this
constexpr size_t kMaxRememberedRefusals = 10000;
constexpr std::string_view kEnvName = "KRB5CCNAME=";

// Closes a file descriptor when it goes out of scope.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Switches this thread's fs ids (Linux: per thread, unlike setuid) and restores the previous
// ones on destruction. fsuid goes back first so the fs capabilities return before setfsgid.
class FsIdGuard {
 public:
  FsIdGuard(uid_t uid, gid_t gid) {
    prev_gid_ = static_cast<gid_t>(setfsgid(gid));
    prev_uid_ = static_cast<uid_t>(setfsuid(uid));
    // setfsuid/setfsgid report the previous value even on failure; an invalid id reads back.
    ok_ = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) == uid &&
          static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) == gid;
  }
  ~FsIdGuard() {
    setfsuid(prev_uid_);
    setfsgid(prev_gid_);
  }
  FsIdGuard(const FsIdGuard&) = delete;
  FsIdGuard& operator=(const FsIdGuard&) = delete;
  bool ok() const { return ok_; }

 private:
  uid_t prev_uid_;
  gid_t prev_gid_;
  bool ok_ = false;
};

// What identifies one version of a cache file: a new kinit changes at least one of these.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileId&) const = default;
};

FileId IdOf(const struct stat& st) {
  return FileId{st.st_dev, st.st_ino, st.st_size,
                st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
}

std::string ErrnoText(int err) { return std::strerror(err); }

// The outcome of opening a cache as the caller.
struct Opened {
  enum Kind { kOk, kMissing, kRefused } kind = kRefused;
  std::string path;    // the file actually opened (for DIR: the primary cache)
  std::string reason;  // kRefused: why; kMissing: the errno text
  UniqueFd fd;
  struct stat st {};
};

Opened Refused(std::string path, std::string reason) {
  Opened o;
  o.path = std::move(path);
  o.reason = std::move(reason);
  return o;
}

// Opens `name` relative to `dirfd` (AT_FDCWD for absolute paths) as the current fs ids, never
// through a final symlink, never blocking on a FIFO, and checks what fstat says. `exact_0600`
// is the rule for the cache itself; DIR's `primary` only must not be writable by others.
Opened OpenOwnedFile(int dirfd, const std::string& name, const std::string& shown, uid_t uid,
                     bool exact_0600) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      Opened o;
      o.kind = Opened::kMissing;
      o.path = shown;
      o.reason = ErrnoText(err);
      return o;
    }
    if (err == ELOOP) return Refused(shown, "is a symbolic link");
    return Refused(shown, "cannot open as uid " + std::to_string(uid) + ": " + ErrnoText(err));
  }
  Opened o;
  o.path = shown;
  o.fd = UniqueFd(fd);
  if (::fstat(fd, &o.st) != 0) return Refused(shown, "fstat: " + ErrnoText(errno));
  if (!S_ISREG(o.st.st_mode)) return Refused(shown, "not a regular file");
  if (o.st.st_uid != uid) {
    return Refused(shown,
                   "owned by uid " + std::to_string(o.st.st_uid) + ", not " + std::to_string(uid));
  }
  mode_t mode = o.st.st_mode & 07777;
  if (exact_0600 ? mode != 0600 : (mode & 022) != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
    return Refused(
        shown, std::string("mode ") + buf + (exact_0600 ? ", not 0600" : ", writable by others"));
  }
  o.kind = Opened::kOk;
  return o;
}

// Reads up to `limit` bytes; sets *too_big if the file has more.
bool ReadAll(int fd, size_t limit, std::string* out, bool* too_big) {
  out->clear();
  *too_big = false;
  char buf[16384];
  off_t offset = 0;
  while (true) {
    ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    if (out->size() + static_cast<size_t>(n) > limit) {
      *too_big = true;
      return true;
    }
    out->append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

// MIT's DIR collection: `primary` names the current cache ("tkt" when absent).
Opened OpenDirPrimary(const std::string& dir, uid_t uid) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int err = errno;
    if (err == ENOENT) {
      Opened o;
      o.kind = Opened::kMissing;
      o.path = dir;
      o.reason = ErrnoText(err);
      return o;
    }
    return Refused(dir,
                   "cannot open directory as uid " + std::to_string(uid) + ": " + ErrnoText(err));
  }
  UniqueFd dir_fd(dfd);
  std::string name = "tkt";
  Opened primary = OpenOwnedFile(dfd, "primary", dir + "/primary", uid, /*exact_0600=*/false);
  if (primary.kind == Opened::kRefused) return primary;
  if (primary.kind == Opened::kOk) {
    std::string text;
    bool too_big = false;
    if (!ReadAll(primary.fd.get(), 4096, &text, &too_big) || too_big) {
      return Refused(primary.path, "unreadable or too large");
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.rfind("tkt", 0) != 0 || text.find('/') != std::string::npos) {
      return Refused(primary.path, "names \"" + text + "\", not a tkt* file in the directory");
    }
    name = text;
  }
  return OpenOwnedFile(dfd, name, dir + "/" + name, uid, /*exact_0600=*/true);
}

// Opens the cache with this thread's fs ids switched to the caller's; they are the daemon's
// again on return, and the returned fd stays readable.
Opened OpenAsCaller(const std::string& path, bool is_dir, uid_t uid, gid_t gid) {
  FsIdGuard as_caller(uid, gid);
  if (!as_caller.ok()) {
    return Refused(path,
                   "cannot switch fs ids to " + std::to_string(uid) + "/" + std::to_string(gid));
  }
  if (is_dir) return OpenDirPrimary(path, uid);
  return OpenOwnedFile(AT_FDCWD, path, path, uid, /*exact_0600=*/true);
}

bool IsUnder(const std::string& path, const std::string& root) {
  if (root.empty()) return false;
  auto p = std::filesystem::path(path).lexically_normal();
  auto r = std::filesystem::path(root).lexically_normal();
  auto pi = p.begin();
  for (auto ri = r.begin(); ri != r.end(); ++ri, ++pi) {
    if (ri->empty()) continue;  // trailing slash of the root
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

// The first KRB5CCNAME in /proc/<pid>/environ, read as the daemon (the value is only a hint:
// whatever it names is then opened as the caller). nullopt if unset, empty or unreadable.
std::optional<std::string> ReadKrb5ccname(pid_t pid) {
  std::string file = "/proc/" + std::to_string(pid) + "/environ";
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  UniqueFd guard(fd);
  std::string env;
  char buf[65536];
  while (env.size() < kMaxEnvironBytes) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    env.append(buf, static_cast<size_t>(n));
  }
  size_t pos = 0;
  while (pos < env.size()) {
    size_t end = env.find('\0', pos);
    if (end == std::string::npos) end = env.size();
    std::string_view entry(env.data() + pos, end - pos);
    if (entry.substr(0, kEnvName.size()) == kEnvName) {
      std::string value(entry.substr(kEnvName.size()));
      if (value.empty()) return std::nullopt;
      return value;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// What the krb5 library says about a ccache: its principal and the TGT's end time.
struct CcacheInfo {
  std::string principal;
  int64_t expires_unix = 0;
  std::string error;  // non-empty: not a usable ccache (or, if local_failure, our own error)
  bool local_failure = false;
};

// The code's generic text: the extended one names our temp file, which would defeat
// logging a refusal once per (uid, path, reason).
std::string KrbError(krb5_context ctx, krb5_error_code code) {
  krb5_clear_error_message(ctx);
  const char* msg = krb5_get_error_message(ctx, code);
  std::string s = msg ? msg : "krb5 error " + std::to_string(code);
  krb5_free_error_message(ctx, msg);
  return s;
}

bool IsTgtFor(const krb5_principal server, const krb5_principal client) {
  auto eq = [](const krb5_data& d, std::string_view s) {
    return d.length == s.size() && std::memcmp(d.data, s.data(), s.size()) == 0;
  };
  auto view = [](const krb5_data& d) { return std::string_view(d.data, d.length); };
  return server->length == 2 && eq(server->data[0], "krbtgt") &&
         eq(server->data[1], view(client->realm)) && eq(server->realm, view(client->realm));
}

int64_t TicketEnd(krb5_context ctx, krb5_ccache cc, krb5_principal client) {
  krb5_cc_cursor cursor;
  if (krb5_cc_start_seq_get(ctx, cc, &cursor) != 0) return 0;
  int64_t tgt_end = 0, latest = 0;
  krb5_creds creds;
  while (krb5_cc_next_cred(ctx, cc, &cursor, &creds) == 0) {
    if (!krb5_is_config_principal(ctx, creds.server)) {
      // krb5_timestamp is unsigned in MIT >= 1.16 semantics, though declared int32.
      int64_t end = static_cast<uint32_t>(creds.times.endtime);
      latest = std::max(latest, end);
      if (IsTgtFor(creds.server, client)) tgt_end = std::max(tgt_end, end);
    }
    krb5_free_cred_contents(ctx, &creds);
  }
  krb5_cc_end_seq_get(ctx, cc, &cursor);
  return tgt_end != 0 ? tgt_end : latest;
}

CcacheInfo InspectCcache(const std::string& name) {
  CcacheInfo info;
  krb5_context ctx = nullptr;
  if (krb5_error_code rc = krb5_init_secure_context(&ctx); rc != 0) {
    info.error = "krb5_init_context failed: " + std::to_string(rc);
    return info;
  }
  krb5_ccache cc = nullptr;
  krb5_principal client = nullptr;
  char* unparsed = nullptr;
  krb5_error_code rc = krb5_cc_resolve(ctx, name.c_str(), &cc);
  if (rc == 0) rc = krb5_cc_get_principal(ctx, cc, &client);
  if (rc == 0) rc = krb5_unparse_name(ctx, client, &unparsed);
  if (rc == 0) {
    info.principal = unparsed;
    info.expires_unix = TicketEnd(ctx, cc, client);
  } else {
    info.error = "not a credential cache: " + KrbError(ctx, rc);
  }
  if (unparsed) krb5_free_unparsed_name(ctx, unparsed);
  if (client) krb5_free_principal(ctx, client);
  if (cc) krb5_cc_close(ctx, cc);
  krb5_free_context(ctx);
  return info;
}

// Writes `bytes` to a fresh 0600 temp file next to `path` and returns its name ("" on error).
std::string WriteTemp(const std::string& path, const std::string& bytes, std::string* error) {
  std::string tmp = path + ".tmpXXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600, owned by the daemon
  if (fd < 0) {
    *error = "mkstemp in private dir: " + ErrnoText(errno);
    return "";
  }
  UniqueFd guard(fd);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "writing private copy: " + ErrnoText(errno);
      ::unlink(tmp.c_str());
      return "";
    }
    done += static_cast<size_t>(n);
  }
  return tmp;
}

// Checks `bytes` as a ccache and, if usable, atomically replaces the private copy `path` with
// them (a GSS-API call already reading the old copy keeps its inode).
CcacheInfo InstallCopy(const std::string& path, const std::string& bytes) {
  CcacheInfo info;
  std::string tmp = WriteTemp(path, bytes, &info.error);
  if (tmp.empty()) {
    info.local_failure = true;
    return info;
  }
  info = InspectCcache("FILE:" + tmp);
  if (info.error.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    info.error = "rename to " + path + ": " + ErrnoText(errno);
    info.local_failure = true;
  }
  if (!info.error.empty()) ::unlink(tmp.c_str());
  return info;
}

Status EnsurePrivateDir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return Error(Code::kInvalidArgument, "private_dir must be an absolute path: \"" + dir + "\"");
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(Code::kInternal, "mkdir " + dir + ": " + ErrnoText(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error(Code::kInternal, "stat " + dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return Error(Code::kPermissionDenied,
                 dir + " is not a directory owned by uid " + std::to_string(::geteuid()));
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return Error(Code::kInternal, "chmod 0700 " + dir + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

// Deletes the files in `dir` whose names start with `prefix`.
void RemoveWithPrefix(const std::string& dir, const std::string& prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> doomed;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name.substr(0, prefix.size()) == prefix) doomed.emplace_back(name);
  }
  ::closedir(d);
  for (const auto& name : doomed) ::unlink((dir + "/" + name).c_str());
}

}  // namespace

// Where a request's credentials come from, before anything is opened.
struct CredentialResolver::Source {
  std::string source;  // for logs, and the key of the entry and the private copy
  std::string path;    // the cache file, or for DIR the collection directory
  bool is_dir = false;
  std::string refusal;  // non-empty: refused as named, nothing is opened
};

// One (uid, source): the last resolution and the version of the file it was made from.
struct CredentialResolver::SourceEntry {
  std::mutex mu;  // guards everything below; held across a refresh
  bool checked = false;
  Clock::time_point checked_at;
  std::optional<FileId> copied;  // version of the source the private copy holds, if stable
  CallerCreds creds;
};

CredentialResolver::CredentialResolver(CredentialResolverOptions options)
    : options_(std::move(options)) {
  init_status_ = EnsurePrivateDir(options_.private_dir);
  if (!init_status_.ok()) {
    spdlog::error("credential resolver: {}; every user will be anonymous", init_status_.ToString());
    return;
  }
  // Copies left by an earlier run are stale by definition; they are re-made on demand.
  RemoveWithPrefix(options_.private_dir, "cc_");
}

CredentialResolver::~CredentialResolver() = default;

std::optional<std::string> CredentialResolver::Krb5ccnameOf(uid_t uid, pid_t pid,
                                                            Clock::time_point now) {
  if (pid <= 0) return std::nullopt;
  {
    std::lock_guard lock(mu_);
    auto it = env_cache_.find({uid, pid});
    if (it != env_cache_.end() && now - it->second.read_at < options_.recheck_interval) {
      if (!it->second.has_value) return std::nullopt;
      return it->second.value;
    }
  }
  std::optional<std::string> value = ReadKrb5ccname(pid);
  std::lock_guard lock(mu_);
  if (env_cache_.size() >= kMaxRememberedPids) {
    std::erase_if(env_cache_, [&](const auto& kv) {
      return now - kv.second.read_at >= options_.recheck_interval;
    });
    if (env_cache_.size() >= kMaxRememberedPids) env_cache_.clear();
  }
  env_cache_[{uid, pid}] = EnvEntry{value.has_value(), value.value_or(""), now};
  return value;
}

CredentialResolver::Source CredentialResolver::FindSource(uid_t uid, pid_t pid,
                                                          Clock::time_point now) {
  std::optional<std::string> value = Krb5ccnameOf(uid, pid, now);
  Source s;
  if (!value) {
    s.path = "/tmp/krb5cc_" + std::to_string(uid);
    s.source = s.path;
    return s;
  }
  const std::string& v = *value;
  s.source = "KRB5CCNAME=" + v;
  s.path = v;
  size_t colon = v.find(':');
  std::string type = colon == std::string::npos ? "FILE" : v.substr(0, colon);
  std::string residual = colon == std::string::npos ? v : v.substr(colon + 1);
  if (type == "DIR" && !residual.empty() && residual[0] == ':') {
    residual.erase(0, 1);  // DIR::<file> names one cache of the collection directly
  } else if (type == "DIR") {
    s.is_dir = true;
  } else if (type != "FILE") {
    s.refusal = "type " + type + " is not supported (only FILE and DIR)";
    return s;
  }
  s.path = residual;
  if (residual.empty() || residual[0] != '/') {
    s.refusal = "not an absolute path";
  } else if (IsUnder(residual, options_.mount_point)) {
    s.refusal = "inside the Heka mount " + options_.mount_point;
  }
  return s;
}

std::shared_ptr<CredentialResolver::SourceEntry> CredentialResolver::EntryFor(
    uid_t uid, const std::string& source) {
  std::lock_guard lock(mu_);
  auto& slot = entries_[{uid, source}];
  if (!slot) slot = std::make_shared<SourceEntry>();
  return slot;
}

std::string CredentialResolver::PrivatePath(uid_t uid, const std::string& source) const {
  return options_.private_dir + "/cc_" + std::to_string(uid) + "_" + Hex64(Fnv1a64(source));
}

void CredentialResolver::LogRefusal(uid_t uid, pid_t pid, const std::string& path,
                                    const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (logged_.size() >= kMaxRememberedRefusals) logged_.clear();
    if (!logged_.emplace(uid, path, reason).second) return;
  }
  spdlog::warn("uid {} (pid {}): refusing credential cache {}: {}", uid, pid, path, reason);
}

CallerCreds CredentialResolver::Resolve(uid_t uid, gid_t gid, pid_t pid) {
  Clock::time_point now = Clock::now();
  Source source = FindSource(uid, pid, now);
  CallerCreds anonymous{uid, "", "", source.source, 0};
  if (!source.refusal.empty()) {
    LogRefusal(uid, pid, source.path, source.refusal);
    return anonymous;
  }
  if (!init_status_.ok()) return anonymous;
  std::shared_ptr<SourceEntry> entry = EntryFor(uid, source.source);
  std::lock_guard lock(entry->mu);
  // An expired ticket is looked at again on every request, so a new kinit works at once.
  int64_t wall = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  bool expired = entry->creds.expires_unix > 0 && entry->creds.expires_unix <= wall;
  // So is a caller without a usable cache: the first request after a kinit uses it.
  bool no_cache = entry->creds.ccache.empty();
  if (entry->checked && !expired && !no_cache &&
      now - entry->checked_at < options_.recheck_interval) {
    return entry->creds;
  }
  {
    std::shared_lock no_forget(forget_mu_);
    Refresh(*entry, source, uid, gid, pid);
  }
  entry->checked = true;
  entry->checked_at = now;
  return entry->creds;
}

void CredentialResolver::Refresh(SourceEntry& entry, const Source& source, uid_t uid, gid_t gid,
                                 pid_t pid) {
  const std::string priv = PrivatePath(uid, source.source);
  auto become_anonymous = [&] {
    entry.creds = CallerCreds{uid, "", "", source.source, 0};
    entry.copied.reset();
    ::unlink(priv.c_str());
  };

  Opened opened = OpenAsCaller(source.path, source.is_dir, uid, gid);
  if (opened.kind == Opened::kMissing) {
    spdlog::debug("uid {} (pid {}): no credential cache at {}", uid, pid, opened.path);
    return become_anonymous();
  }
  if (opened.kind == Opened::kRefused) {
    LogRefusal(uid, pid, opened.path, opened.reason);
    return become_anonymous();
  }

  FileId version = IdOf(opened.st);
  struct stat priv_st {};
  if (entry.copied == version &&
      (entry.creds.ccache.empty() || ::stat(priv.c_str(), &priv_st) == 0)) {
    return;  // same kinit as last time: the private copy is still right
  }
  std::string bytes;
  bool too_big = false;
  if (!ReadAll(opened.fd.get(), kMaxCacheBytes, &bytes, &too_big)) {
    LogRefusal(uid, pid, opened.path, "read failed: " + ErrnoText(errno));
    return become_anonymous();
  }
  if (too_big) {
    LogRefusal(uid, pid, opened.path, "larger than 1 MiB");
    return become_anonymous();
  }
  // A kinit rewriting the file while we read it: use what we got, but read again next time.
  struct stat after {};
  bool stable = ::fstat(opened.fd.get(), &after) == 0 && IdOf(after) == version;

  CcacheInfo info = InstallCopy(priv, bytes);
  if (info.local_failure) {
    spdlog::error("uid {}: cannot copy credential cache {}: {}", uid, opened.path, info.error);
    return become_anonymous();
  }
  if (!info.error.empty()) {
    LogRefusal(uid, pid, opened.path, info.error);
    become_anonymous();
    if (stable) entry.copied = version;  // do not re-read an unchanged bad file every time
    return;
  }
  entry.creds = CallerCreds{uid, "FILE:" + priv, info.principal, source.source, info.expires_unix};
  if (stable) {
    entry.copied = version;
  } else {
    entry.copied.reset();
  }
  spdlog::debug("uid {} (pid {}): credentials of {} from {}", uid, pid, info.principal,
                opened.path);
}

void CredentialResolver::Recheck(uid_t uid) {
  std::vector<std::shared_ptr<SourceEntry>> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : entries_) {
      if (key.first == uid) entries.push_back(entry);
    }
  }
  for (const auto& entry : entries) {
    std::lock_guard lock(entry->mu);
    entry->checked = false;
  }
}

void CredentialResolver::Forget(uid_t uid) {
  std::unique_lock no_refresh(forget_mu_);
  {
    std::lock_guard lock(mu_);
    std::erase_if(entries_, [&](const auto& kv) { return kv.first.first == uid; });
    std::erase_if(env_cache_, [&](const auto& kv) { return kv.first.first == uid; });
    std::erase_if(logged_, [&](const auto& t) { return std::get<0>(t) == uid; });
  }
  RemoveWithPrefix(options_.private_dir, "cc_" + std::to_string(uid) + "_");
}

}  // namespace heka::cm

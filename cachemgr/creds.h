// CredentialResolver: finds the Kerberos credential cache of the process behind a FUSE
// request (DESIGN.md §3, "Who is asking"), opens it *as that user*, and hands back a
// daemon-private copy for GSS-API. Thread-safe: one instance serves all FUSE threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <utility>

#include "util/status.h"

namespace heka::cm {

// What one FUSE request is allowed to authenticate with. Value type.
struct CallerCreds {
  uid_t uid = 0;
  // "FILE:<daemon-private copy>" to hand to GSS-API; "" = none (the caller is anonymous).
  std::string ccache;
  // The ccache's default client principal, e.g. "alice@HEKA.TEST"; "" if none.
  std::string principal;
  // The cache it came from ("/tmp/krb5cc_1000", "KRB5CCNAME=FILE:/home/a/cc"), for logs.
  // Set even when the cache was refused or missing (then ccache is "").
  std::string source;
  // End time of the TGT (else the latest ticket), seconds since the epoch; 0 if unknown.
  // The resolver does not judge expiry: a past value still comes with its ccache.
  int64_t expires_unix = 0;
};

struct CredentialResolverOptions {
  // Where the private copies live. Created 0700, owned by the daemon's euid, if missing;
  // refused (see init_status) if it exists and is not a directory owned by the daemon.
  // Copies left by an earlier run are deleted at construction, so two daemons must not
  // share it. Default: none; REQUIRES: non-empty, absolute.
  std::string private_dir;
  // How long a resolved source is trusted before its stat is checked again, and how long
  // a process's KRB5CCNAME is remembered. Default: 1 s. Tests use 0 (check every time).
  // A missing, refused or expired cache is looked at again on every request.
  std::chrono::milliseconds recheck_interval{1000};
  // Caches under this path are refused without being opened: opening a file on our own
  // FUSE mount from a FUSE thread could deadlock the daemon. Default: "" (none).
  std::string mount_point;
};

// The rules: the cache is KRB5CCNAME from /proc/<pid>/environ (FILE:, a bare absolute path,
// or DIR: whose `primary` file names the cache; any other type is refused), else
// /tmp/krb5cc_<uid>. It is opened with this thread's fsuid/fsgid switched to the caller,
// never through a final symlink, and accepted only as a regular file owned by the caller
// with mode exactly 0600. A refusal is logged once per (uid, path, reason) and the caller
// is anonymous; a KRB5CCNAME that is set but unusable never falls back to the default.
//
// Thread safety: all methods may be called from any thread concurrently. A refresh (at most
// once per recheck_interval per (uid, source)) does file I/O under a per-source lock, so
// other users' requests are not held up. Changes the calling thread's fs ids only for the
// duration of the open/read, restoring them before returning.
class CredentialResolver {
 public:
  explicit CredentialResolver(CredentialResolverOptions options);
  ~CredentialResolver();
  CredentialResolver(const CredentialResolver&) = delete;
  CredentialResolver& operator=(const CredentialResolver&) = delete;

  // Whether the private directory is usable. When not OK, every Resolve is anonymous.
  const Status& init_status() const { return init_status_; }

  // The credentials for a FUSE request from process (thread) `pid` running as `uid`/`gid`.
  // pid 0 (a request the kernel makes on its own) uses the default cache.
  CallerCreds Resolve(uid_t uid, gid_t gid, pid_t pid);

  // A server refused credentials of `uid` (a stale ticket, e.g. from a realm since re-created):
  // the next Resolve for it looks at its caches again instead of trusting them for up to
  // recheck_interval, so a new kinit works at once.
  void Recheck(uid_t uid);

  // `heka fs unlog`: drops what is cached for this uid and deletes its private copies.
  // A Resolve for the same uid running concurrently may recreate one.
  void Forget(uid_t uid);

 private:
  struct Source;
  struct SourceEntry;
  struct EnvEntry {
    bool has_value = false;  // KRB5CCNAME set (non-empty) in the process's environment
    std::string value;
    std::chrono::steady_clock::time_point read_at;
  };
  using Clock = std::chrono::steady_clock;

  std::optional<std::string> Krb5ccnameOf(uid_t uid, pid_t pid, Clock::time_point now);
  Source FindSource(uid_t uid, pid_t pid, Clock::time_point now);
  std::shared_ptr<SourceEntry> EntryFor(uid_t uid, const std::string& source);
  void Refresh(SourceEntry& entry, const Source& source, uid_t uid, gid_t gid, pid_t pid);
  std::string PrivatePath(uid_t uid, const std::string& source) const;
  void LogRefusal(uid_t uid, pid_t pid, const std::string& path, const std::string& reason);

  const CredentialResolverOptions options_;
  Status init_status_;

  // Refreshes hold it shared, Forget exclusively: unlog never deletes a copy being made.
  // Lock order: an entry's mutex, then forget_mu_, then mu_.
  std::shared_mutex forget_mu_;
  std::mutex mu_;  // guards the three maps below (not the entries' contents)
  std::map<std::pair<uid_t, pid_t>, EnvEntry> env_cache_;
  std::map<std::pair<uid_t, std::string>, std::shared_ptr<SourceEntry>> entries_;
  std::set<std::tuple<uid_t, std::string, std::string>> logged_;
};

}  // namespace heka::cm

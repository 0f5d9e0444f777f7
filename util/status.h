// Status and Result<T>: the one error type of Heka (STYLE.md §3).
// A Status is a code from the table below plus a human-readable message. The code is what
// travels on the wire and what the cache manager maps to an errno, so codes are never
// renumbered or reused. Add a code only when some caller reacts to it differently.
// Thread safety: value types; safe to copy between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace heka {

// Ranges: 0-99 general, 100-199 krb/, 200-299 rpc/, 300-399 dbserver/, 400-499 fileserver/,
// 500-599 cachemgr/, 600-699 bos/. Documented in docs/formats/status-codes.md.
enum class Code : uint32_t {
  kOk = 0,
  kInvalidArgument = 1,   // the request itself is malformed
  kNotFound = 2,          // ENOENT
  kAlreadyExists = 3,     // EEXIST
  kPermissionDenied = 4,  // EACCES
  kUnavailable = 5,       // server unreachable or connection lost; retry may help
  kDeadlineExceeded = 6,  // ETIMEDOUT
  kInternal = 7,          // a bug or an unexpected OS failure
  kCancelled = 8,
  kIoError = 9,           // EIO
  kNoSpace = 10,          // ENOSPC
  kUnimplemented = 11,

  // krb/: authentication. Each one names a different thing the user must fix.
  kNoCredentials = 100,        // no ticket cache / no keytab entry: run kinit
  kCredentialsExpired = 101,   // ticket expired: run kinit again
  kUnknownServer = 102,        // the KDC does not know the server principal
  kClockSkew = 103,            // clocks differ by more than the realm allows
  kBadServerKey = 104,         // server keytab does not match the KDC (wrong keytab)
  kAuthFailed = 105,           // any other GSS-API failure
  kContextExpired = 106,       // an established context reached its end time

  // rpc/: transport.
  kProtocolError = 200,        // malformed or unauthenticated frame; connection closed
  kFrameTooLarge = 201,
  kUnknownMethod = 202,
  kVersionMismatch = 203,
  kConnectionClosed = 204,

  // dbserver/: the replicated database.
  kNotLeader = 300,            // this member is not the leader; the reply names one to try
  kNoQuorum = 301,             // fewer than a majority of members are reachable: writes fail
  kStale = 302,                // this member lost its leader: it refuses authorisation reads
  kLocked = 303,               // a volume operation lock is held by someone else
  kFenced = 304,               // a lock generation that is no longer current

  // fileserver/: the volume store.
  kNotEmpty = 400,             // ENOTEMPTY: removing or replacing a non-empty directory
  kQuotaExceeded = 401,        // EDQUOT: the volume's quota would be exceeded
  kCrossDevice = 402,          // EXDEV: a hard link across directories or volumes
  kNotDirectory = 403,         // ENOTDIR: a directory operation on a non-directory
  kIsDirectory = 404,          // EISDIR: a file operation on a directory
  kNameTooLong = 405,          // ENAMETOOLONG: a name beyond kMaxNameLength bytes
  kStaleFid = 406,             // ESTALE: the vnode was deleted (uniquifier differs)
  kVolumeOffline = 407,        // the volume is offline (salvage, move): retry later
  kLockConflict = 408,         // EAGAIN: an advisory lock is held by someone else
  kLockLost = 409,             // EIO: the caller's advisory lock lease was lost
  kReadOnly = 410,             // EROFS: a change to a read-only (backup or replica) volume
  kVolumeMoved = 411,          // the volume moved to another server: ask the VLDB again
  kVolumeBusy = 412,           // frozen for a moment (the end of a move): retry shortly
};

// Returns the stable, lower-case name of a code ("permission denied").
std::string_view CodeName(Code code);

// A code received from a peer: unknown numbers (a newer peer) become kInternal.
Code CodeFromWire(uint32_t wire);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "permission denied: principal bob@X is not accepted by this server"
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

  bool operator==(const Status& other) const = default;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status Error(Code code, std::string message) { return Status(code, std::move(message)); }

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  // An empty result is an error; it exists because some libraries (Asio's co_spawn) need a
  // default-constructible value type.
  Result() : v_(Status(Code::kInternal, "no result")) {}
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) v_ = Status(Code::kInternal, "Result built from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Returns OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace heka

#include "util/status.h"

namespace heka {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kUnavailable: return "unavailable";
    case Code::kDeadlineExceeded: return "deadline exceeded";
    case Code::kInternal: return "internal error";
    case Code::kCancelled: return "cancelled";
    case Code::kIoError: return "i/o error";
    case Code::kNoSpace: return "no space";
    case Code::kUnimplemented: return "unimplemented";
    case Code::kNoCredentials: return "no credentials";
    case Code::kCredentialsExpired: return "credentials expired";
    case Code::kUnknownServer: return "unknown server principal";
    case Code::kClockSkew: return "clock skew too great";
    case Code::kBadServerKey: return "server key mismatch";
    case Code::kAuthFailed: return "authentication failed";
    case Code::kContextExpired: return "security context expired";
    case Code::kProtocolError: return "protocol error";
    case Code::kFrameTooLarge: return "frame too large";
    case Code::kUnknownMethod: return "unknown method";
    case Code::kVersionMismatch: return "protocol version mismatch";
    case Code::kConnectionClosed: return "connection closed";
    case Code::kNotLeader: return "not the leader";
    case Code::kNoQuorum: return "no quorum";
    case Code::kStale: return "stale member";
    case Code::kLocked: return "locked";
    case Code::kFenced: return "fenced";
    case Code::kNotEmpty: return "directory not empty";
    case Code::kQuotaExceeded: return "quota exceeded";
    case Code::kCrossDevice: return "cross-device link";
    case Code::kNotDirectory: return "not a directory";
    case Code::kIsDirectory: return "is a directory";
    case Code::kNameTooLong: return "name too long";
    case Code::kStaleFid: return "stale file handle";
    case Code::kVolumeOffline: return "volume offline";
    case Code::kLockConflict: return "lock held by another client";
    case Code::kLockLost: return "lock lost";
    case Code::kReadOnly: return "read-only volume";
    case Code::kVolumeMoved: return "volume moved";
    case Code::kVolumeBusy: return "volume busy";
  }
  return "unknown error";
}

Code CodeFromWire(uint32_t wire) {
  Code code = static_cast<Code>(wire);
  return CodeName(code) == "unknown error" ? Code::kInternal : code;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(CodeName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

}  // namespace heka

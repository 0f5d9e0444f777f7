#include "cachemgr/errno_map.h"

#include <cerrno>

namespace heka::cm {

int ErrnoOf(const Status& status) {
  switch (status.code()) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotFound: return ENOENT;
    case Code::kAlreadyExists: return EEXIST;
    case Code::kPermissionDenied: return EACCES;
    case Code::kUnavailable: return EIO;
    case Code::kDeadlineExceeded: return ETIMEDOUT;
    case Code::kInternal: return EIO;
    case Code::kCancelled: return EINTR;
    case Code::kIoError: return EIO;
    case Code::kNoSpace: return ENOSPC;
    case Code::kUnimplemented: return EOPNOTSUPP;  // not ENOSYS: FUSE would stop calling
    case Code::kNoCredentials: return EACCES;
    case Code::kCredentialsExpired: return EACCES;
    case Code::kUnknownServer: return EIO;
    case Code::kClockSkew: return EACCES;
    case Code::kBadServerKey: return EIO;
    case Code::kAuthFailed: return EACCES;
    case Code::kContextExpired: return EACCES;
    case Code::kProtocolError: return EIO;
    case Code::kFrameTooLarge: return EIO;
    case Code::kUnknownMethod: return EOPNOTSUPP;
    case Code::kVersionMismatch: return EIO;
    case Code::kConnectionClosed: return EIO;
    case Code::kNotLeader: return EIO;
    case Code::kNoQuorum: return EIO;
    case Code::kStale: return EIO;
    case Code::kLocked: return EBUSY;
    case Code::kFenced: return EIO;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kQuotaExceeded: return EDQUOT;
    case Code::kCrossDevice: return EXDEV;
    case Code::kNotDirectory: return ENOTDIR;
    case Code::kIsDirectory: return EISDIR;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kStaleFid: return ESTALE;
    case Code::kVolumeOffline: return EIO;
    case Code::kLockConflict: return EAGAIN;
    case Code::kLockLost: return EIO;
    case Code::kReadOnly: return EROFS;
    case Code::kVolumeMoved: return EIO;  // only after the retries in HekaFs::Call
    case Code::kVolumeBusy: return EIO;
  }
  return EIO;
}

}  // namespace heka::cm

// Framing of the cache manager's control socket (proto/cachemgr.proto): a 4-byte big-endian
// length, then that many bytes of one protobuf message, at most kMaxControlFrame. Shared by
// heka-cachemgr and the `heka fs` commands. Blocking I/O on a caller-owned fd; any thread.
#pragma once

#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <string>

#include "util/status.h"

namespace heka::cm {

inline constexpr uint32_t kMaxControlFrame = 1 << 20;

// Where `heka fs` looks when neither -socket nor $HEKA_CACHEMGR_SOCKET says otherwise, and
// the daemon's default `control_socket`.
inline constexpr const char* kDefaultControlSocket = "/run/heka-cachemgr.sock";
inline constexpr const char* kControlSocketEnv = "HEKA_CACHEMGR_SOCKET";

Status WriteFrame(int fd, const google::protobuf::MessageLite& message);
// kConnectionClosed at a clean end of stream before the frame; kProtocolError for a frame
// that is too long or does not parse; kIoError for a read error or timeout.
Status ReadFrame(int fd, google::protobuf::MessageLite* message);

}  // namespace heka::cm

#include "cachemgr/control_wire.h"

#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace heka::cm {
namespace {

// Frames may carry a cell key (KEY_UNLOCK): their buffers are wiped before they are freed.
struct WipedBuffer {
  std::string bytes;
  ~WipedBuffer() { ::explicit_bzero(bytes.data(), bytes.size()); }
};

// Reads exactly `n` bytes; `got` says how many arrived before an end of stream.
Status ReadFull(int fd, char* buf, size_t n, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = ::read(fd, buf + *got, n - *got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error(Code::kIoError, std::string("control socket: ") + std::strerror(errno));
    if (r == 0) return Error(Code::kConnectionClosed, "control socket closed");
    *got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Status WriteFrame(int fd, const google::protobuf::MessageLite& message) {
  size_t size = message.ByteSizeLong();
  if (size > kMaxControlFrame) return Error(Code::kInternal, "control message too large");
  uint32_t n = static_cast<uint32_t>(size);
  WipedBuffer buffer;
  std::string& frame = buffer.bytes;
  frame.resize(4 + size);
  frame[0] = static_cast<char>(n >> 24);
  frame[1] = static_cast<char>(n >> 16);
  frame[2] = static_cast<char>(n >> 8);
  frame[3] = static_cast<char>(n);
  if (!message.SerializeToArray(frame.data() + 4, static_cast<int>(size))) {
    return Error(Code::kInternal, "control message cannot be serialised");
  }
  for (size_t done = 0; done < frame.size();) {
    ssize_t w = ::write(fd, frame.data() + done, frame.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Error(Code::kIoError, std::string("control socket: ") + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status ReadFrame(int fd, google::protobuf::MessageLite* message) {
  unsigned char head[4];
  size_t got = 0;
  Status s = ReadFull(fd, reinterpret_cast<char*>(head), sizeof head, &got);
  if (!s.ok()) {
    if (s.code() == Code::kConnectionClosed && got > 0) {
      return Error(Code::kProtocolError, "truncated control frame");
    }
    return s;
  }
  uint32_t n = (uint32_t{head[0]} << 24) | (uint32_t{head[1]} << 16) | (uint32_t{head[2]} << 8) |
               uint32_t{head[3]};
  if (n > kMaxControlFrame) return Error(Code::kProtocolError, "control frame too large");
  WipedBuffer buffer;
  std::string& body = buffer.bytes;
  body.assign(n, '\0');
  s = ReadFull(fd, body.data(), n, &got);
  if (!s.ok()) {
    return s.code() == Code::kConnectionClosed ? Error(Code::kProtocolError, "truncated control frame")
                                               : s;
  }
  if (!message->ParseFromString(body)) {
    return Error(Code::kProtocolError, "malformed control message");
  }
  return Status::Ok();
}

}  // namespace heka::cm

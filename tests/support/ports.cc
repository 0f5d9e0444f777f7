#include "tests/support/ports.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace heka::testing {
namespace {

constexpr int kFirst = 20000;
constexpr int kCount = 7000;
constexpr const char* kCounterFile = "/tmp/heka-test-ports";

bool CanBind(int type, int port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// The next slot of the shared counter, or -1 if the counter file cannot be used.
int NextSlot() {
  const mode_t old = umask(0);
  const int fd = open(kCounterFile, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  umask(old);
  if (fd < 0) return -1;
  int slot = -1;
  if (flock(fd, LOCK_EX) == 0) {
    char buf[32] = {};
    const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    // A fresh file starts at a place that depends on the process, so runs on a machine whose
    // counter file was cleared do not all begin with the same ports.
    slot = n > 0 ? std::atoi(buf) : static_cast<int>(getpid());
    const std::string next = std::to_string((slot + 1) % kCount);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, next.data(), next.size(), 0) < 0) slot = -1;
    flock(fd, LOCK_UN);
  }
  close(fd);
  return slot < 0 ? -1 : slot % kCount;
}

}  // namespace

int FreePort(bool udp_too) {
  for (int attempt = 0; attempt < kCount; ++attempt) {
    const int slot = NextSlot();
    if (slot < 0) break;
    const int port = kFirst + slot;
    if (CanBind(SOCK_STREAM, port) && (!udp_too || CanBind(SOCK_DGRAM, port))) return port;
  }
  // No shared counter (or nothing free in the range): let the kernel choose one.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

}  // namespace heka::testing

#include "cachemgr/control_server.h"

#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cachemgr/control_wire.h"

namespace heka::cm {
namespace {

namespace cpb = ::heka::cachemgr;

Result<sockaddr_un> AddressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error(Code::kInvalidArgument, "control socket path '" + path + "' is empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Whether some process accepts connections on the socket at `addr`.
bool Answers(const sockaddr_un& addr) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start() {
  auto addr = AddressOf(path_);
  if (!addr.ok()) return addr.status();
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(Code::kAlreadyExists, path_ + " exists and is not a socket");
    }
    if (Answers(*addr)) {
      return Error(Code::kAlreadyExists, path_ + " is in use by another cache manager");
    }
    ::unlink(path_.c_str());  // left by a daemon that died
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Code::kIoError, std::string("socket: ") + std::strerror(errno));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0 ||
      ::chmod(path_.c_str(), 0666) != 0 || ::listen(fd, 16) != 0 ||
      ::stat(path_.c_str(), &st) != 0) {
    Status s = Error(Code::kIoError, path_ + ": " + std::strerror(errno));
    ::close(fd);
    return s;
  }
  listen_fd_ = fd;
  socket_ino_ = st.st_ino;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  spdlog::info("control socket {}", path_);
  return Status::Ok();
}

void ControlServer::Stop() {
  if (listen_fd_ < 0) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
  }
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  accept_thread_.join();
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return connections_.empty(); });
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_ino == socket_ino_) ::unlink(path_.c_str());
}

void ControlServer::AcceptLoop() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        spdlog::warn("control socket: accept: {}", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      spdlog::error("control socket: accept: {}; no more `heka fs` requests", std::strerror(errno));
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_ || connections_.size() >= static_cast<size_t>(kMaxConnections)) {
        ::close(fd);
        continue;
      }
      connections_.insert(fd);
    }
    std::thread([this, fd] { Serve(fd); }).detach();  // Stop() waits for connections_ to empty
  }
}

void ControlServer::Serve(int fd) {
  timeval tv{};
  tv.tv_sec = kIdleTimeout.count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    Caller caller{cred.uid, cred.gid, cred.pid};
    for (;;) {
      cpb::ControlRequest req;
      Status s = ReadFrame(fd, &req);
      if (!s.ok()) {
        if (s.code() == Code::kProtocolError) {
          spdlog::warn("control socket: uid {} pid {}: {}", cred.uid, cred.pid, s.ToString());
        }
        break;
      }
      cpb::ControlReply rep = handler_(caller, req);
      // KEY_UNLOCK: the cell key lives on only in the KeyStore's locked memory.
      if (!req.key().empty()) ::explicit_bzero(req.mutable_key()->data(), req.key().size());
      if (!WriteFrame(fd, rep).ok()) break;
    }
  }
  std::lock_guard lock(mu_);
  ::close(fd);
  connections_.erase(fd);
  idle_cv_.notify_all();
}

}  // namespace heka::cm

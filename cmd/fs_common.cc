#include "cmd/fs_common.h"

#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cachemgr/control_wire.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

Result<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return Error(errno == ENOENT ? Code::kNotFound : Code::kInvalidArgument,
                 path + ": " + std::strerror(errno));
  }
  return std::string(buf);
}

bool IsSwitch(const char* arg) {
  if (arg[0] != '-' || arg[1] == '\0') return false;
  return !(arg[1] >= '0' && arg[1] <= '9');  // "-204" is a PTDB id, not a switch
}

// "-p", "-pa", "--path" for "path".
bool Names(const std::string& arg, const std::string& name) {
  std::string bare = arg.substr(arg.compare(0, 2, "--") == 0 ? 2 : 1);
  return !bare.empty() && name.compare(0, bare.size(), bare) == 0;
}

std::string SocketPath(const FsCommand& c) {
  if (c.Has("socket")) return c.Get("socket");
  if (const char* env = std::getenv(cm::kControlSocketEnv); env && *env) return env;
  return cm::kDefaultControlSocket;
}

}  // namespace

FsCommand StartFsCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                         std::initializer_list<const char*> required, bool socket) {
  FsCommand c;
  c.name = std::move(name);
  if (socket) switches.push_back({"socket", true,
                      "the cache manager's control socket (default $HEKA_CACHEMGR_SOCKET, "
                      "else /run/heka-cachemgr.sock)"});
  auto sw = Parse(c.name, argc, argv, switches);
  if (!sw.ok()) {
    c.exit = ParseFailed(c.name, sw.status());
    return c;
  }
  c.sw = std::move(*sw);
  if (Status s = Require(c.sw, required); !s.ok()) c.exit = UsageError(c.name, s);
  return c;
}

ListSwitch TakeList(int argc, char** argv, const std::string& name, std::vector<char*>* rest) {
  ListSwitch out;
  rest->assign({argv[0]});
  for (int i = 1; i < argc; ++i) {
    if (!IsSwitch(argv[i]) || !Names(argv[i], name)) {
      rest->push_back(argv[i]);
      continue;
    }
    out.given = true;
    for (; i + 1 < argc && !IsSwitch(argv[i + 1]); ++i) out.values.push_back(argv[i + 1]);
  }
  rest->push_back(nullptr);
  return out;
}

Result<bool> JsonOutput(const FsCommand& c) {
  std::string format = c.Get("format");
  if (format.empty() || format == "text" || format == "table") return false;
  if (format == "json") return true;
  return Error(Code::kInvalidArgument, "-format must be text or json, not '" + format + "'");
}

Result<std::string> AbsolutePath(const std::string& path, bool follow) {
  if (path.empty()) return Error(Code::kInvalidArgument, "empty path");
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  if (follow || base == "." || base == ".." || base.empty()) return RealPath(p);
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  auto real = RealPath(dir);
  if (!real.ok()) return real.status();
  return (*real == "/" ? "" : *real) + "/" + base;
}

Result<cachemgr::ControlReply> AskCacheManager(const FsCommand& c,
                                                const cachemgr::ControlRequest& req) {
  std::string path = SocketPath(c);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(Code::kInvalidArgument, "socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Code::kIoError, std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    Status s = Error(Code::kUnavailable, "cannot reach the cache manager at " + path + " (" +
                                             std::strerror(errno) +
                                             "); is heka-cachemgr running? (-socket, "
                                             "$HEKA_CACHEMGR_SOCKET)");
    ::close(fd);
    return s;
  }
  cachemgr::ControlReply rep;
  Status s = cm::WriteFrame(fd, req);
  if (s.ok()) s = cm::ReadFrame(fd, &rep);
  ::close(fd);
  if (!s.ok()) return Error(s.code(), "cache manager at " + path + ": " + s.message());
  if (rep.code() != 0) return Error(CodeFromWire(rep.code()), rep.message());
  return rep;
}

}  // namespace heka::cli

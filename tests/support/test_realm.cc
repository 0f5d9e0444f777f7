#include "tests/support/test_realm.h"

#include "tests/support/ports.h"
#include "tests/support/wait.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

namespace heka::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kCommandDeadline = std::chrono::seconds(30);
constexpr auto kKdcStartDeadline = std::chrono::seconds(10);
constexpr auto kKdcStopDeadline = std::chrono::seconds(5);
constexpr int kPortAttempts = 5;

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// krb5kdc, kdb5_util and kadmin.local live in /usr/sbin, which is often not on a user's PATH.
std::string FindProgram(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string d; std::getline(ss, d, ':');) dirs.push_back(d.empty() ? "." : d);
  }
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"}) {
    dirs.push_back(d);
  }
  for (const auto& d : dirs) {
    std::string candidate = d + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

// The environment of every helper process: ours, with the realm's configuration.
std::vector<std::string> ChildEnv(const std::string& dir) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("KRB5_CONFIG=") || kv.starts_with("KRB5_KDC_PROFILE=")) continue;
    env.emplace_back(kv);
  }
  env.push_back("KRB5_CONFIG=" + dir + "/krb5.conf");
  env.push_back("KRB5_KDC_PROFILE=" + dir + "/kdc.conf");
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string Join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Reads `fd` until EOF or the deadline. Returns false on timeout.
bool ReadAll(int fd, Clock::time_point deadline, std::string* out) {
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

// Runs a program with `input` on its stdin and returns its combined stdout and stderr (only its
// stdout if `stderr_path` is set: stderr then goes to that file). Fails, with the output in the
// message, if it exits non-zero or outlives the deadline.
Result<std::string> RunCommand(std::vector<std::string> argv, const std::string& dir,
                               const std::string& input = "", const std::string& stderr_path = "") {
  std::string shown = Join(argv);
  argv[0] = FindProgram(argv[0]);
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return Error(Code::kInternal, ErrnoText("pipe"));
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Error(Code::kInternal, ErrnoText("pipe"));
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  // The input (a password) fits in the pipe buffer, so writing it all before the child starts
  // cannot block and cannot raise SIGPIPE.
  if (input.size() > 4096 ||
      write(in_w.get(), input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
    return Error(Code::kInternal, "cannot pass stdin to " + shown);
  }
  in_w.Reset();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), STDOUT_FILENO);
  if (stderr_path.empty()) {
    posix_spawn_file_actions_adddup2(&actions, out_w.get(), STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  }
  std::vector<std::string> env = ChildEnv(dir);
  auto c_argv = CStrings(argv);
  auto c_env = CStrings(env);
  pid_t pid = -1;
  int err = posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return Error(Code::kInternal, "cannot run " + argv[0] + ": " + std::strerror(err));
  }
  in_r.Reset();
  out_w.Reset();

  std::string output;
  bool finished = ReadAll(out_r.get(), Clock::now() + kCommandDeadline, &output);
  if (!finished) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && std::isspace(static_cast<unsigned char>(output.back()))) {
    output.pop_back();
  }
  if (!finished) {
    return Error(Code::kDeadlineExceeded, "`" + shown + "` did not finish within " +
                                              std::to_string(kCommandDeadline.count()) +
                                              "s; output: " + output);
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::string how = WIFEXITED(wstatus)
                          ? "exited with " + std::to_string(WEXITSTATUS(wstatus))
                          : "was killed by signal " + std::to_string(WTERMSIG(wstatus));
    return Error(Code::kInternal, "`" + shown + "` " + how + ": " + output);
  }
  return output;
}

Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::trunc);
  f << content;
  f.close();
  if (!f) return Error(Code::kIoError, "cannot write " + path);
  return Status::Ok();
}

std::string ReadFileTail(const std::string& path, size_t max_bytes = 2000) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

Result<std::string> RandomHex(size_t bytes) {
  std::ifstream f("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!f.read(raw.data(), static_cast<std::streamsize>(bytes))) {
    return Error(Code::kInternal, "cannot read /dev/urandom");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// A loopback port free for both TCP and UDP right now (krb5kdc may still lose a race for it;
// the caller retries).
Result<int> PickPort() {
  const int port = FreePort(/*udp_too=*/true);
  if (port == 0) return Error(Code::kInternal, "no loopback port is free for both TCP and UDP");
  return port;
}

bool CanConnect(int port) {
  Fd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

std::string Krb5Conf(const std::string& realm, int port) {
  return fmt::format(R"([libdefaults]
  default_realm = {0}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1

[realms]
  {0} = {{
    kdc = 127.0.0.1:{1}
  }}
)",
                     realm, port);
}

std::string KdcConf(const std::string& realm, const std::string& dir, int port) {
  return fmt::format(R"([kdcdefaults]
  kdc_listen = 127.0.0.1:{1}
  kdc_tcp_listen = 127.0.0.1:{1}

[realms]
  {0} = {{
    database_name = {2}/principal
    key_stash_file = {2}/stash
    acl_file = {2}/kadm5.acl
    max_life = 1d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }}

[logging]
  kdc = STDERR
)",
                     realm, port, dir);
}

// Listening TCP sockets on `port` (any address), from /proc/net/tcp and /proc/net/tcp6.
int CountTcpListeners(int port) {
  char local_port[8];
  std::snprintf(local_port, sizeof(local_port), ":%04X", port);
  int count = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(table);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::stringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      if (local.ends_with(local_port) && state == "0A") ++count;
    }
  }
  return count;
}

// Waits until the KDC accepts TCP connections on `port`. Sets *pid to -1 if the KDC exited.
// kUnavailable means it lost the port to another process: krb5kdc exited because the port was taken
// or, since it binds with SO_REUSEPORT, it now shares the port with another listener (another
// test's KDC).
Status WaitForKdc(pid_t* pid, int port, const std::string& dir) {
  bool exited = false;
  bool ready = WaitFor(
      [&] {
        if (CanConnect(port)) return true;
        int wstatus = 0;
        exited = waitpid(*pid, &wstatus, WNOHANG) == *pid;
        return exited;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(kKdcStartDeadline));
  if (exited) {
    *pid = -1;
    std::string log = ReadFileTail(dir + "/kdc.log");
    return Error(log.find("in use") != std::string::npos ? Code::kUnavailable : Code::kInternal,
                 "krb5kdc exited at start on port " + std::to_string(port) + "; kdc.log: " + log);
  }
  if (!ready) {
    return Error(Code::kDeadlineExceeded, "krb5kdc did not accept connections on port " +
                                              std::to_string(port) + " within " +
                                              std::to_string(kKdcStartDeadline.count()) +
                                              "s; kdc.log: " + ReadFileTail(dir + "/kdc.log"));
  }
  if (int n = CountTcpListeners(port); n > 1) {
    return Error(Code::kUnavailable,
                 std::to_string(n) + " processes listen on port " + std::to_string(port));
  }
  return Status::Ok();
}

// Waits up to `deadline` for `pid` to exit. Returns true once it has been reaped.
bool WaitForExit(pid_t pid, Clock::time_point deadline) {
  return WaitFor(
      [pid] {
        pid_t r = waitpid(pid, nullptr, WNOHANG);
        return r == pid || (r < 0 && errno == ECHILD);
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

void StopProcess(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  if (WaitForExit(pid, Clock::now() + kKdcStopDeadline)) return;
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// fork/exec rather than posix_spawn: the child must ask for PR_SET_PDEATHSIG so that the KDC
// dies with the test process even when the test crashes.
Result<pid_t> SpawnKdc(const std::string& dir, const std::string& realm) {
  std::vector<std::string> argv = {FindProgram("krb5kdc"), "-n", "-r", realm};
  std::vector<std::string> env = ChildEnv(dir);
  auto c_argv = CStrings(argv);
  auto c_env = CStrings(env);
  std::string log = dir + "/kdc.log";
  Fd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (log_fd.get() < 0) return Error(Code::kIoError, ErrnoText("opening " + log));
  Fd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Error(Code::kInternal, ErrnoText("fork"));
  if (pid == 0) {  // child: async-signal-safe calls only
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
    dup2(null_fd.get(), STDIN_FILENO);
    dup2(log_fd.get(), STDOUT_FILENO);
    dup2(log_fd.get(), STDERR_FILENO);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

Result<std::unique_ptr<TestRealm>> TestRealm::Start(const TestRealmOptions& options) {
  std::unique_ptr<TestRealm> r(new TestRealm());
  r->realm_ = options.realm;
  r->keep_dir_ = options.keep_dir;
  if (options.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/heka-realm-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return Error(Code::kIoError, ErrnoText("mkdtemp"));
    r->dir_ = tmpl;
  } else {
    std::error_code ec;
    // The destructor removes the directory, so refuse one that holds anything already.
    if (fs::exists(options.dir, ec) && !fs::is_empty(options.dir, ec)) {
      return Error(Code::kInvalidArgument, "TestRealm dir is not empty: " + options.dir);
    }
    fs::create_directories(options.dir, ec);
    if (ec) return Error(Code::kIoError, "cannot create " + options.dir + ": " + ec.message());
    r->dir_ = fs::absolute(options.dir).string();
  }
  const std::string& dir = r->dir_;
  if (Status s = WriteFile(dir + "/kadm5.acl", ""); !s.ok()) return s;

  Status last = Error(Code::kInternal, "krb5kdc was not started");
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    auto port = PickPort();
    if (!port.ok()) return port.status();
    r->port_ = *port;
    if (Status s = WriteFile(dir + "/krb5.conf", Krb5Conf(r->realm_, r->port_)); !s.ok()) {
      return s;
    }
    if (Status s = WriteFile(dir + "/kdc.conf", KdcConf(r->realm_, dir, r->port_)); !s.ok()) {
      return s;
    }
    if (attempt == 0) {
      auto master = RandomHex(16);
      if (!master.ok()) return master.status();
      auto created = RunCommand({"kdb5_util", "-r", r->realm_, "create", "-s", "-P", *master}, dir);
      if (!created.ok()) return created.status().WithContext("creating the KDC database");
    }
    auto pid = SpawnKdc(dir, r->realm_);
    if (!pid.ok()) return pid.status();
    r->kdc_pid_ = *pid;
    Status ready = WaitForKdc(&r->kdc_pid_, r->port_, dir);
    if (ready.ok()) return r;
    if (ready.code() != Code::kUnavailable) return ready;
    // Lost a race for the port with another process: try another one.
    StopProcess(r->kdc_pid_);
    r->kdc_pid_ = -1;
    last = ready;
  }
  return last;
}

TestRealm::~TestRealm() {
  StopProcess(kdc_pid_);
  if (!keep_dir_ && !dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void TestRealm::SetEnv() const {
  setenv("KRB5_CONFIG", krb5_config().c_str(), 1);
  setenv("KRB5_KDC_PROFILE", (dir_ + "/kdc.conf").c_str(), 1);
  setenv("KRB5CCNAME", ("FILE:" + dir_ + "/ccache-default").c_str(), 1);
  // Keep the host's keytabs and replay cache out of the tests.
  setenv("KRB5_KTNAME", ("FILE:" + dir_ + "/no-default.keytab").c_str(), 1);
  setenv("KRB5_CLIENT_KTNAME", ("FILE:" + dir_ + "/no-client.keytab").c_str(), 1);
  setenv("KRB5RCACHEDIR", dir_.c_str(), 1);
}

std::string TestRealm::Principal(const std::string& name) const {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '\\') {
      ++i;
    } else if (name[i] == '@') {
      return name;
    }
  }
  return name + "@" + realm_;
}

Status TestRealm::Kadmin(const std::string& query) {
  // kadmin.local -q exits 0 even when the query fails; its errors are the lines on stderr
  // other than the "No policy specified" notice.
  std::string err_path = dir_ + "/kadmin.err";
  auto out = RunCommand({"kadmin.local", "-r", realm_, "-q", query}, dir_, "", err_path);
  std::string err = ReadFileTail(err_path);
  if (!out.ok()) return Error(out.status().code(), out.status().message() + " " + err);
  std::stringstream lines(err);
  std::string errors;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.starts_with("No policy specified for ")) continue;
    errors += (errors.empty() ? "" : " ") + line;
  }
  if (!errors.empty()) return Error(Code::kInternal, "kadmin.local -q '" + query + "': " + errors);
  return Status::Ok();
}

Status TestRealm::AddUser(const std::string& name, const std::string& password,
                          const std::string& max_life) {
  if (password.find('"') != std::string::npos) {
    return Error(Code::kInvalidArgument, "TestRealm passwords cannot contain '\"'");
  }
  std::string query = "addprinc -pw \"" + password + "\"";
  if (!max_life.empty()) query += " -maxlife " + max_life;
  return Kadmin(query + " " + Principal(name));
}

Result<std::string> TestRealm::AddService(const std::string& name) {
  if (Status s = Kadmin("addprinc -randkey " + Principal(name)); !s.ok()) return s;
  return Rekey(name);
}

Result<std::string> TestRealm::Rekey(const std::string& name) {
  std::string keytab = dir_ + "/keytab-" + std::to_string(++next_file_);
  // ktadd without -norandkey gives the principal a new random key and writes it out.
  if (Status s = Kadmin("ktadd -k FILE:" + keytab + " " + Principal(name)); !s.ok()) return s;
  return keytab;
}

Status TestRealm::DeletePrincipal(const std::string& name) {
  return Kadmin("delprinc -force " + Principal(name));
}

Status TestRealm::Kinit(const std::string& name, const std::string& password,
                        const std::string& ccache, const std::string& lifetime) {
  std::string cc = ccache.starts_with("FILE:") ? ccache : "FILE:" + ccache;
  std::vector<std::string> argv = {"kinit", "-c", cc};
  if (!lifetime.empty()) argv.insert(argv.end(), {"-l", lifetime});
  argv.push_back(Principal(name));
  auto out = RunCommand(argv, dir_, password + "\n");
  return out.ok() ? Status::Ok() : out.status();
}

Status TestRealm::KinitKeytab(const std::string& name, const std::string& keytab,
                              const std::string& ccache) {
  std::string cc = ccache.starts_with("FILE:") ? ccache : "FILE:" + ccache;
  auto out = RunCommand({"kinit", "-c", cc, "-k", "-t", keytab, Principal(name)}, dir_);
  return out.ok() ? Status::Ok() : out.status();
}

std::string TestRealm::NewCcachePath(const std::string& tag) {
  return dir_ + "/ccache-" + tag + "-" + std::to_string(++next_file_);
}

TestRealm& SharedRealm() {
  // A function-local static: started on first use, destroyed (KDC stopped, directory removed)
  // by the static destructors at exit. If the test process dies without running them, the KDC
  // still gets SIGTERM through PR_SET_PDEATHSIG. (A GoogleTest Environment cannot be added
  // once RUN_ALL_TESTS is running.)
  static std::unique_ptr<TestRealm> realm = [] {
    auto r = TestRealm::Start();
    if (!r.ok()) {
      std::fprintf(stderr, "FATAL: cannot start the shared test KDC: %s\n",
                   r.status().ToString().c_str());
      std::abort();
    }
    return std::move(r).value();
  }();
  static bool env_set = (realm->SetEnv(), true);
  (void)env_set;
  return *realm;
}

}  // namespace heka::testing

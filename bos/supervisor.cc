#include "bos/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>

namespace heka::bos {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Appends an instance's output to its log file, rotating it. Shared by the log threads of
// the instance's successive runs.
class LogSink {
 public:
  LogSink(std::string path, uint64_t max_bytes, int keep)
      : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {}

  void Append(const char* data, size_t n) {
    std::lock_guard lock(mu_);
    std::error_code ec;
    uint64_t size = std::filesystem::exists(path_, ec) ? std::filesystem::file_size(path_, ec) : 0;
    if (size + n > max_bytes_ && size > 0) Rotate();
    std::ofstream(path_, std::ios::app | std::ios::binary).write(data, static_cast<std::streamsize>(n));
  }
  const std::string& path() const { return path_; }

 private:
  void Rotate() {
    std::error_code ec;
    for (int i = keep_ - 1; i >= 1; --i) {
      std::filesystem::rename(path_ + "." + std::to_string(i), path_ + "." + std::to_string(i + 1), ec);
    }
    std::filesystem::rename(path_, path_ + ".1", ec);
  }

  const std::string path_;
  const uint64_t max_bytes_;
  const int keep_;
  std::mutex mu_;
};

void PumpToLog(int fd, std::shared_ptr<LogSink> sink) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sink->Append(buf, static_cast<size_t>(n));
  }
  close(fd);
}

// Forks and execs argv with stdout and stderr on `out_fd`. The child dies with the
// supervisor. Returns the pid, or -1.
pid_t SpawnChild(const std::vector<std::string>& argv, int out_fd) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here on.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(1);
  dup2(out_fd, STDOUT_FILENO);
  dup2(out_fd, STDERR_FILENO);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(args[0], args.data());
  _exit(127);
}

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         }) &&
         name[0] != '.';
}

}  // namespace

struct Supervisor::Instance {
  CreateRequest config;
  std::shared_ptr<LogSink> log;
  std::string state = "stopped";
  bool wanted = true;
  pid_t pid = -1;
  int64_t started_ns = 0;
  Clock::time_point run_started;
  int last_exit_code = -1;
  int last_signal = 0;
  int64_t last_exit_ns = 0;
  uint32_t restarts = 0;
  bool due = false;  // to be started at next_start
  Clock::time_point next_start;
  milliseconds backoff{0};
  std::deque<Clock::time_point> exits;
  bool needs_salvage = false;
};

Supervisor::Supervisor(SupervisorOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

Supervisor::~Supervisor() {
  std::unique_lock lock(mu_);
  for (auto& [name, in] : instances_) in->wanted = false;
  for (auto& [name, in] : instances_) StopLocked(lock, *in);
  stopping_ = true;
  lock.unlock();
  cv_.notify_all();
  thread_.join();
}

Status Supervisor::Create(const CreateRequest& config) {
  if (!ValidName(config.name())) {
    return Error(Code::kInvalidArgument, "invalid instance name '" + config.name() + "'");
  }
  if (config.type() != "simple" && config.type() != "fs") {
    return Error(Code::kInvalidArgument, "instance type must be simple or fs, not '" + config.type() + "'");
  }
  if (config.command_size() == 0 || config.command(0).empty() || config.command(0)[0] != '/') {
    return Error(Code::kInvalidArgument, "the command must start with an absolute path");
  }
  std::lock_guard lock(mu_);
  if (instances_.count(config.name())) {
    return Error(Code::kAlreadyExists, "instance '" + config.name() + "' exists");
  }
  auto in = std::make_unique<Instance>();
  in->config = config;
  in->log = std::make_shared<LogSink>(options_.log_dir + "/" + config.name() + ".log",
                                      options_.log_max_bytes, options_.log_keep);
  in->backoff = options_.min_backoff;
  StartLocked(*in);
  instances_[config.name()] = std::move(in);
  return Status::Ok();
}

void Supervisor::StartLocked(Instance& in) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    spdlog::error("instance {}: pipe: {}", in.config.name(), std::strerror(errno));
    return;
  }
  std::vector<std::string> argv(in.config.command().begin(), in.config.command().end());
  pid_t pid = SpawnChild(argv, fds[1]);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    spdlog::error("instance {}: fork: {}", in.config.name(), std::strerror(errno));
    return;
  }
  std::thread(PumpToLog, fds[0], in.log).detach();
  in.pid = pid;
  in.state = "running";
  in.due = false;
  in.started_ns = NowNs();
  in.run_started = Clock::now();
  spdlog::info("instance {} started, pid {}", in.config.name(), pid);
}

void Supervisor::OnExitLocked(Instance& in, int status) {
  in.pid = -1;
  in.last_exit_ns = NowNs();
  in.last_exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  in.last_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  std::string how = in.last_signal ? "signal " + std::to_string(in.last_signal)
                                   : "exit code " + std::to_string(in.last_exit_code);
  if (!in.wanted) {
    in.state = "stopped";
    spdlog::info("instance {} stopped ({})", in.config.name(), how);
    return;
  }
  auto now = Clock::now();
  in.exits.push_back(now);
  while (!in.exits.empty() && now - in.exits.front() > options_.crash_loop_window) in.exits.pop_front();
  if (now - in.run_started > milliseconds(60000)) {
    in.backoff = options_.min_backoff;
  } else if (in.restarts > 0) {
    in.backoff = std::min(in.backoff * 2, options_.max_backoff);
  }
  bool looping = static_cast<int>(in.exits.size()) >= options_.crash_loop_count;
  if (looping) in.backoff = options_.max_backoff;
  in.state = looping ? "crash-looping" : "backing-off";
  in.due = true;
  in.next_start = now + in.backoff;
  in.needs_salvage = in.config.type() == "fs" && in.config.salvage_command_size() > 0;
  spdlog::warn("instance {} exited ({}); restart in {} ms{}{}", in.config.name(), how,
               in.backoff.count(), looping ? " (crash-looping)" : "",
               in.needs_salvage ? " after a salvage" : "");
}

void Supervisor::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    for (auto& [name, in] : instances_) {
      if (in->pid > 0) {
        int status = 0;
        if (waitpid(in->pid, &status, WNOHANG) == in->pid) {
          OnExitLocked(*in, status);
          cv_.notify_all();
        }
      }
    }
    for (auto& [name, in] : instances_) {
      if (!in->due || !in->wanted || in->pid > 0 || Clock::now() < in->next_start) continue;
      if (in->needs_salvage) {
        in->needs_salvage = false;
        in->state = "salvaging";
        Instance* raw = in.get();
        lock.unlock();
        std::string output;
        int rc = RunSalvage(*raw, &output);
        lock.lock();
        spdlog::info("instance {}: salvage before the restart exited with {}", name, rc);
        if (!raw->wanted || raw->pid > 0) continue;
      }
      ++in->restarts;
      StartLocked(*in);
      cv_.notify_all();
    }
    cv_.wait_for(lock, milliseconds(100));
  }
}

void Supervisor::StopLocked(std::unique_lock<std::mutex>& lock, Instance& in) {
  in.due = false;
  if (in.pid <= 0) {
    if (in.state != "salvaging") in.state = "stopped";
    return;
  }
  kill(in.pid, SIGTERM);
  auto deadline = Clock::now() + options_.stop_grace;
  // The supervision thread reaps it and notifies.
  if (!cv_.wait_until(lock, deadline, [&] { return in.pid <= 0 || stopping_; }) && in.pid > 0) {
    spdlog::warn("instance {} did not stop within {} ms: killing it", in.config.name(),
                 options_.stop_grace.count());
    kill(in.pid, SIGKILL);
  }
  if (stopping_ && in.pid > 0) {  // the supervision thread is gone: reap here
    int status = 0;
    waitpid(in.pid, &status, 0);
    OnExitLocked(in, status);
  }
  cv_.wait(lock, [&] { return in.pid <= 0; });
}

int Supervisor::RunSalvage(Instance& in, std::string* output) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  std::vector<std::string> argv(in.config.salvage_command().begin(),
                                in.config.salvage_command().end());
  pid_t pid = SpawnChild(argv, fds[1]);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return -1;
  }
  char buf[8192];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output->append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  in.log->Append(output->data(), output->size());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Status Supervisor::Delete(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = instances_.find(name);
  if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
  if (it->second->state == "salvaging") {
    return Error(Code::kLocked, "instance '" + name + "' is being salvaged");
  }
  it->second->wanted = false;
  StopLocked(lock, *it->second);
  instances_.erase(name);
  spdlog::info("instance {} deleted", name);
  return Status::Ok();
}

Status Supervisor::Start(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(name);
  if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
  Instance& in = *it->second;
  in.wanted = true;
  in.exits.clear();
  in.backoff = options_.min_backoff;
  if (in.pid <= 0 && in.state != "salvaging") StartLocked(in);
  return Status::Ok();
}

Status Supervisor::Stop(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = instances_.find(name);
  if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
  it->second->wanted = false;
  StopLocked(lock, *it->second);
  return Status::Ok();
}

Status Supervisor::Restart(const std::string& name) {
  Status s = Stop(name);
  if (!s.ok()) return s;
  return Start(name);
}

Result<SalvageReply> Supervisor::Salvage(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = instances_.find(name);
  if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
  Instance& in = *it->second;
  if (in.config.salvage_command_size() == 0) {
    return Error(Code::kInvalidArgument, "instance '" + name + "' has no salvage command");
  }
  if (in.state == "salvaging") return Error(Code::kLocked, "instance '" + name + "' is being salvaged");
  bool was_wanted = in.wanted;
  in.wanted = false;
  StopLocked(lock, in);
  in.state = "salvaging";
  lock.unlock();
  SalvageReply reply;
  std::string output;
  reply.set_exit_code(RunSalvage(in, &output));
  reply.set_output(output);
  lock.lock();
  in.state = "stopped";
  if (was_wanted) {
    in.wanted = true;
    StartLocked(in);
  }
  return reply;
}

InstanceStatus Supervisor::Describe(const Instance& in) const {
  InstanceStatus s;
  s.set_name(in.config.name());
  s.set_type(in.config.type());
  for (const auto& a : in.config.command()) s.add_command(a);
  s.set_state(in.state);
  s.set_pid(in.pid);
  s.set_started_ns(in.started_ns);
  s.set_last_exit_code(in.last_exit_code);
  s.set_last_signal(in.last_signal);
  s.set_last_exit_ns(in.last_exit_ns);
  s.set_restarts(in.restarts);
  if (in.due) {
    s.set_next_start_ns(NowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      in.next_start - Clock::now())
                                      .count());
  }
  s.set_wanted(in.wanted);
  return s;
}

Result<InstanceStatus> Supervisor::StatusOf(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(name);
  if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
  return Describe(*it->second);
}

std::vector<InstanceStatus> Supervisor::All() {
  std::lock_guard lock(mu_);
  std::vector<InstanceStatus> out;
  for (const auto& [name, in] : instances_) out.push_back(Describe(*in));
  return out;
}

std::vector<CreateRequest> Supervisor::Instances() {
  std::lock_guard lock(mu_);
  std::vector<CreateRequest> out;
  for (const auto& [name, in] : instances_) out.push_back(in->config);
  return out;
}

Result<GetLogReply> Supervisor::Log(const std::string& name, uint64_t max_bytes) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    auto it = instances_.find(name);
    if (it == instances_.end()) return Error(Code::kNotFound, "no instance '" + name + "'");
    path = it->second->log->path();
  }
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (max_bytes == 0) max_bytes = 64 << 10;
  if (data.size() > max_bytes) data = data.substr(data.size() - max_bytes);
  GetLogReply reply;
  reply.set_data(data);
  reply.set_path(path);
  return reply;
}

}  // namespace heka::bos

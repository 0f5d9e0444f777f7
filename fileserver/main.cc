// heka-fileserver: holds volumes on its partitions and serves the file and volume-server RPCs.
//   heka-fileserver --config FILE [--log FILE]
//   heka-fileserver --config FILE --salvage [--volume ID] [--log FILE]
// On start it opens the volumes of every partition that were idle when it last stopped,
// registers the others offline and salvages them in the background (one thread per partition,
// holding the partition's salvage lock), bringing each online when its salvage succeeds. It
// registers itself (uuid, advertised addresses, partitions) in the VLDB and serves until
// SIGTERM/SIGINT. --salvage salvages every volume (or one) now, prints the reports and exits
// 0 if all are clean or repaired, 1 otherwise; it refuses while a server runs on the same
// state_dir (<state_dir>/fileserver.lock), as a server refuses to start during one.
#include <fcntl.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stop_token>
#include <thread>
#include <vector>

#include "dbserver/client/db_client.h"
#include "fileserver/server/config.h"
#include "fileserver/server/file_service.h"
#include "fileserver/volume/salvage.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "util/log.h"

namespace {

using namespace heka;

struct Args {
  std::string config;
  std::string log;
  bool salvage = false;
  uint64_t volume = 0;  // --volume: 0 = all
};

int Usage() {
  std::fprintf(stderr,
               "usage: heka-fileserver --config FILE [--log FILE]\n"
               "       heka-fileserver --config FILE --salvage [--volume ID] [--log FILE]\n");
  return 2;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// This server's identity in the VLDB: made once, kept in <state_dir>/server.uuid.
Result<std::string> ServerUuid(const std::string& state_dir) {
  std::string path = state_dir + "/server.uuid";
  std::ifstream in(path);
  std::string uuid;
  if (std::getline(in, uuid) && !uuid.empty()) return uuid;
  uint8_t b[16];
  RAND_bytes(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char text[37];
  std::snprintf(text, sizeof text,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text << "\n";
    out.flush();
    if (!out) return Error(Code::kIoError, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(Code::kIoError, "cannot write " + path + ": " + ec.message());
  return std::string(text);
}

// Volumes of one partition that must be salvaged before they can be served.
struct PendingSalvage {
  std::string partition;
  std::vector<uint64_t> ids;
};

// One volume as served, or, with `volume` null, registered offline until its salvage.
std::shared_ptr<fs::ServedVolume> Served(std::unique_ptr<fs::Volume> volume, std::string cell,
                                         const std::string& partition) {
  auto served = std::make_shared<fs::ServedVolume>();
  served->online = volume != nullptr;
  if (volume) {
    auto header = volume->Header();
    if (header.ok()) served->type = header->type;
  }
  served->volume = std::move(volume);
  served->cell = std::move(cell);
  served->partition = partition;
  return served;
}

// Opens the volumes of one partition that were idle at the last stop; the others are
// registered offline (requests get kVolumeOffline) and returned for the salvager.
PendingSalvage OpenPartition(const std::string& partition, fs::FileService& service) {
  PendingSalvage pending{partition, {}};
  fs::VolumeOptions options = service.OptionsFor(partition);
  {  // dumps and restores that were running at the last stop: nothing of them is kept
    std::error_code ec;
    const std::string staging = partition + "/" + fs::kStagingDirName;
    if (std::filesystem::exists(staging, ec)) {
      std::filesystem::remove_all(staging, ec);
      if (ec) spdlog::error("cannot empty {}: {}", staging, ec.message());
      else spdlog::info("removed the unfinished dumps and restores in {}", staging);
    }
  }
  auto ids = fs::ListVolumeIds(options);
  if (!ids.ok()) {
    spdlog::error("cannot read partition {}: {}", partition, ids.status().ToString());
    return pending;
  }
  size_t opened = 0;
  for (uint64_t id : *ids) {
    std::string dir = fs::VolumeDir(options, id);
    auto cell = fs::FileService::LoadCell(dir);
    if (fs::VolumeNeedsSalvage(options, id)) {
      pending.ids.push_back(id);
      // Without a cell it cannot be served; the salvage may still remove an unfinished clone.
      if (cell.ok()) service.volumes().Put(id, Served(nullptr, *cell, partition));
      continue;
    }
    if (!cell.ok()) {
      spdlog::error("volume {} on {} is not served: {}", id, partition, cell.status().ToString());
      continue;
    }
    auto vol = fs::Volume::Open(options, id);
    if (!vol.ok()) {
      spdlog::error("volume {} on {} is not served: {}", id, partition, vol.status().ToString());
      continue;
    }
    service.volumes().Put(id, Served(std::move(*vol), *cell, partition));
    ++opened;
  }
  spdlog::info("partition {}: {} volumes online, {} to salvage", partition, opened,
               pending.ids.size());
  return pending;
}

// Salvages one volume (the server holds `lock`) and brings it online if that worked.
void SalvageAndOpen(fs::FileService& service, const fs::PartitionLock& lock, uint64_t id,
                    const std::string& config_path) {
  const std::string& partition = lock.partition();
  fs::VolumeOptions options = service.OptionsFor(partition);
  auto report = fs::SalvageVolume(options, id, lock);
  if (!report.ok()) {
    spdlog::error(
        "salvage of volume {} on {} failed, it stays offline: {}; check the partition's "
        "storage (or restore the volume), then run heka-fileserver --config {} --salvage "
        "--volume {} with the server stopped",
        id, partition, report.status().ToString(), config_path, id);
    return;
  }
  spdlog::info("salvaged {}", report->Summary());
  if (report->unfinished_clone_removed != 0) {
    (void)service.volumes().Take(id);
    return;
  }
  std::string dir = fs::VolumeDir(options, id);
  auto cell = fs::FileService::LoadCell(dir);
  if (!cell.ok()) {
    spdlog::error("volume {} on {} is not served: {}", id, partition, cell.status().ToString());
    return;
  }
  auto vol = fs::Volume::Open(options, id);
  if (!vol.ok()) {
    spdlog::error("volume {} on {} stays offline after its salvage: {}", id, partition,
                  vol.status().ToString());
    return;
  }
  // A new entry, complete before it is published: handlers holding the offline one keep
  // seeing it offline.
  service.volumes().Put(id, Served(std::move(*vol), *cell, partition));
  spdlog::info("volume {} is online", id);
}

// The startup salvage of one partition, on its own thread, holding the partition lock only
// while it runs. Stops between volumes when asked; what is left stays offline.
void SalvageAtStart(std::stop_token stop, fs::FileService& service, PendingSalvage pending,
                    const std::string& config_path) {
  const std::string& partition = pending.partition;
  auto lock = fs::PartitionLock::Acquire(partition);
  if (!lock.ok()) {
    spdlog::error("cannot salvage {}: {}; its {} volumes that need salvage stay offline: "
                  "restart heka-fileserver once the other salvager is done",
                  partition, lock.status().ToString(), pending.ids.size());
    return;
  }
  size_t done = 0;
  spdlog::info("salvage of {}: 0/{} volumes", partition, pending.ids.size());
  for (uint64_t id : pending.ids) {
    if (stop.stop_requested()) {
      spdlog::warn("salvage of {} stopped at {}/{} volumes", partition, done, pending.ids.size());
      return;
    }
    SalvageAndOpen(service, **lock, id, config_path);
    spdlog::info("salvage of {}: {}/{} volumes", partition, ++done, pending.ids.size());
  }
}

// Keeps a second server, or an on-demand salvage, off this state dir: an flock on
// <state_dir>/fileserver.lock held for the life of the process (a crash releases it). The
// file names the holder ("<pid> <role>") for the refusal message.
class StateDirLock {
 public:
  static Result<std::unique_ptr<StateDirLock>> Acquire(const std::string& state_dir,
                                                       const std::string& role) {
    std::string path = state_dir + "/fileserver.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Error(Code::kIoError, "open " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      char holder[64] = {};
      ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "?";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      if (err == EWOULDBLOCK) {
        std::string pid = who.substr(0, who.find(' '));
        std::string role = who.find(' ') == std::string::npos ? "" : who.substr(who.find(' ') + 1);
        return Error(Code::kLocked, "heka-fileserver pid " + pid +
                                        (role == "salvage" ? " (--salvage)" : " (server)") +
                                        " holds " + state_dir);
      }
      return Error(Code::kIoError, "flock " + path + ": " + std::strerror(err));
    }
    std::string text = std::to_string(::getpid()) + " " + role + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
      spdlog::warn("cannot write {}: {}", path, std::strerror(errno));
    }
    return std::unique_ptr<StateDirLock>(new StateDirLock(fd));
  }
  ~StateDirLock() { ::close(fd_); }
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;

 private:
  explicit StateDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// --salvage: one report per volume on stdout, the summary line then one line per repair.
void PrintReport(const fs::SalvageReport& report) {
  std::printf("%s\n", report.Summary().c_str());
  for (const std::string& d : report.details) std::printf("  %s\n", d.c_str());
  std::fflush(stdout);
}

// Salvages volume `id` if it is on `options.partition`. False if it is not there.
bool SalvageOne(const fs::VolumeOptions& options, uint64_t id, bool* failed) {
  if (!options.env->FileExists(fs::VolumeDir(options, id))) return false;
  auto lock = fs::PartitionLock::Acquire(options.partition);
  if (!lock.ok()) {
    std::fprintf(stderr, "heka-fileserver --salvage: %s\n", lock.status().ToString().c_str());
    *failed = true;
    return true;
  }
  auto report = fs::SalvageVolume(options, id, **lock);
  if (!report.ok()) {
    fs::SalvageReport failure;
    failure.volume_id = id;
    failure.status = report.status();
    report = std::move(failure);
  }
  PrintReport(*report);
  if (!report->status.ok()) *failed = true;
  return true;
}

int RunSalvage(const Args& args, const fs::FileServerConfig& config) {
  auto lock = StateDirLock::Acquire(config.state_dir, "salvage");
  if (!lock.ok()) {
    std::fprintf(stderr,
                 "heka-fileserver --salvage: %s: stop it first (a server salvages the volumes "
                 "that need it when it starts)\n",
                 lock.status().message().c_str());
    return 1;
  }
  bool failed = false;
  bool found = false;
  for (const std::string& partition : config.partitions) {
    fs::VolumeOptions options;
    options.env = fs::DefaultEnv();
    options.partition = partition;
    if (args.volume != 0) {
      found = SalvageOne(options, args.volume, &failed) || found;
      continue;
    }
    auto reports = fs::SalvagePartition(options, fs::SalvageScope::kAll, PrintReport);
    if (!reports.ok()) {
      std::fprintf(stderr, "heka-fileserver --salvage: %s: %s\n", partition.c_str(),
                   reports.status().ToString().c_str());
      failed = true;
      continue;
    }
    size_t bad = 0;
    for (const auto& r : *reports) bad += r.status.ok() ? 0 : 1;
    std::printf("partition %s: %zu volumes salvaged, %zu failed\n", partition.c_str(),
                reports->size(), bad);
    failed = failed || bad > 0;
  }
  if (args.volume != 0 && !found) {
    std::fprintf(stderr, "heka-fileserver --salvage: no volume %llu on this server's partitions\n",
                 static_cast<unsigned long long>(args.volume));
    return 1;
  }
  return failed ? 1 : 0;
}

Status Register(rpc::Runtime& runtime, db::DbClient& db, const fs::FileServerConfig& config,
                const std::string& uuid) {
  db::Command cmd;
  db::FileServer* s = cmd.mutable_register_server()->mutable_server();
  s->set_uuid(uuid);
  for (const auto& a : config.advertise) s->add_addresses(a);
  for (const auto& p : config.partitions) s->add_partitions(p);
  s->set_principal(config.principal);
  auto r = runtime.BlockOn(db.Write(cmd));
  return r.ok() ? Status::Ok() : r.status();
}

int Run(const Args& args) {
  auto config = fs::FileServerConfig::Load(args.config);
  if (!config.ok()) {
    spdlog::critical("{}", config.status().ToString());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->state_dir, ec);
  if (args.salvage) return RunSalvage(args, *config);
  auto state_lock = StateDirLock::Acquire(config->state_dir, "server");
  if (!state_lock.ok()) {
    spdlog::critical("{}: only one heka-fileserver (or --salvage) may use a state_dir",
                     state_lock.status().ToString());
    return 1;
  }
  for (const std::string& p : config->partitions) {
    if (!std::filesystem::is_directory(p, ec)) {
      spdlog::critical("partition {} is not a directory: create it (mkdir -p {})", p, p);
      return 1;
    }
  }
  auto uuid = ServerUuid(config->state_dir);
  if (!uuid.ok()) {
    spdlog::critical("{}", uuid.status().ToString());
    return 1;
  }
  auto members = db::ParseMembers(config->dbservers);
  if (!members.ok()) {
    spdlog::critical("{}: dbservers: {}", args.config, members.status().ToString());
    return 1;
  }

  rpc::Runtime runtime({2, 4});
  db::DbClientOptions dbopts;
  dbopts.members = *members;
  dbopts.credentials.keytab = "FILE:" + config->keytab;
  dbopts.credentials.principal = config->principal;
  dbopts.credentials.ccache = "MEMORY:heka-fileserver";
  db::DbClient db(runtime, dbopts);

  fs::FileServiceDeps deps;
  deps.config = &*config;
  deps.runtime = &runtime;
  deps.db = &db;
  deps.env = fs::DefaultEnv();
  deps.server_uuid = *uuid;
  deps.epoch_ns = NowNs();
  auto service = std::make_unique<fs::FileService>(deps);
  std::vector<PendingSalvage> pending;
  for (const std::string& partition : config->partitions) {
    pending.push_back(OpenPartition(partition, *service));
  }

  auto registry = std::make_shared<rpc::HandlerRegistry>();
  rpc::RegisterDiag(*registry);
  service->Register(*registry);
  rpc::ServerOptions sopts;
  sopts.listen = config->listen;
  sopts.credentials.keytab = "FILE:" + config->keytab;
  sopts.credentials.principal = config->principal;
  auto server = rpc::Server::Create(runtime, sopts, registry);
  if (Status s = server->Start(); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  spdlog::info("heka-fileserver {} serving on {} as {}", *uuid, config->advertise.front(),
               config->principal);
  std::vector<std::jthread> salvagers;
  for (PendingSalvage& p : pending) {
    if (p.ids.empty()) continue;
    salvagers.emplace_back(SalvageAtStart, std::ref(*service), std::move(p), args.config);
  }

  // Wait for SIGTERM/SIGINT, registering in the VLDB until that has worked once.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  timespec tick{0, 200'000'000};
  bool registered = false;
  auto next_try = std::chrono::steady_clock::now();
  std::string last_error;
  auto next_clean = std::chrono::steady_clock::now();
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (std::chrono::steady_clock::now() >= next_clean) {
      service->MarkIdleVolumesClean();
      next_clean = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    }
    if (!registered && std::chrono::steady_clock::now() >= next_try) {
      Status s = Register(runtime, db, *config, *uuid);
      if (s.ok()) {
        registered = true;
        spdlog::info("registered in the VLDB as {} ({} partitions)", *uuid,
                     config->partitions.size());
      } else {
        if (s.ToString() != last_error) {
          spdlog::warn("cannot register in the VLDB yet: {}", s.ToString());
          last_error = s.ToString();
        }
        next_try = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      }
    }
  }
  spdlog::info("heka-fileserver {} stopping", *uuid);
  for (std::jthread& t : salvagers) t.request_stop();
  salvagers.clear();  // joins: each finishes the volume it is salvaging
  server->Stop();
  service->Shutdown();  // finishes volume work in flight (it may still ask the DB)
  runtime.Stop();
  service.reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Args args;
  static option opts[] = {{"config", required_argument, nullptr, 'c'},
                          {"log", required_argument, nullptr, 'l'},
                          {"salvage", no_argument, nullptr, 's'},
                          {"volume", required_argument, nullptr, 'v'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': args.config = optarg; break;
      case 'l': args.log = optarg; break;
      case 's': args.salvage = true; break;
      case 'v': {
        char* end = nullptr;
        args.volume = std::strtoull(optarg, &end, 10);
        if (args.volume == 0 || *end != '\0') return Usage();
        break;
      }
      default: return Usage();
    }
  }
  if (args.config.empty() || optind != argc || (args.volume != 0 && !args.salvage)) return Usage();
  // --salvage prints its reports on stdout; without --log only warnings go to stderr.
  std::string level = args.salvage && args.log.empty() ? "warn" : "";
  heka::InitLogging({"heka-fileserver", level, args.log});
  return Run(args);
}

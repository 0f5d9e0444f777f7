// heka-fileserver: holds volumes on its partitions and serves the file and volume-server RPCs.
//   heka-fileserver --config FILE [--log FILE]
// On start it opens the volumes of every partition, registers itself (uuid, advertised
// addresses, partitions) in the VLDB, and serves until SIGTERM/SIGINT.
#include <getopt.h>
#include <openssl/rand.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dbserver/client/db_client.h"
#include "fileserver/server/config.h"
#include "fileserver/server/file_service.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "util/log.h"

namespace {

using namespace heka;

struct Args {
  std::string config;
  std::string log;
};

int Usage() {
  std::fprintf(stderr, "usage: heka-fileserver --config FILE [--log FILE]\n");
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

// Opens every volume on the configured partitions.
void OpenVolumes(const fs::FileServerConfig& config, fs::FileService& service) {
  for (const std::string& partition : config.partitions) {
    std::error_code ec;
    size_t opened = 0;
    for (const auto& entry : std::filesystem::directory_iterator(partition, ec)) {
      std::string name = entry.path().filename().string();
      if (name.size() < 2 || name[0] != 'V' || !entry.is_directory()) continue;
      uint64_t id = std::strtoull(name.c_str() + 1, nullptr, 10);
      if (id == 0) continue;
      auto cell = fs::FileService::LoadCell(entry.path().string());
      if (!cell.ok()) {
        spdlog::error("volume {} on {} is not served: {}", id, partition, cell.status().ToString());
        continue;
      }
      auto vol = fs::Volume::Open(service.OptionsFor(partition), id);
      if (!vol.ok()) {
        spdlog::error("volume {} on {} is not served: {}", id, partition, vol.status().ToString());
        continue;
      }
      auto served = std::make_shared<fs::ServedVolume>();
      served->volume = std::move(*vol);
      served->cell = *cell;
      served->partition = partition;
      service.volumes().Put(id, std::move(served));
      ++opened;
    }
    if (ec) {
      spdlog::error("cannot read partition {}: {}", partition, ec.message());
      continue;
    }
    spdlog::info("partition {}: {} volumes online", partition, opened);
  }
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
  OpenVolumes(*config, *service);

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

  // Wait for SIGTERM/SIGINT, registering in the VLDB until that has worked once.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  timespec tick{0, 200'000'000};
  bool registered = false;
  auto next_try = std::chrono::steady_clock::now();
  std::string last_error;
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
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
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': args.config = optarg; break;
      case 'l': args.log = optarg; break;
      default: return Usage();
    }
  }
  if (args.config.empty() || optind != argc) return Usage();
  heka::InitLogging({"heka-fileserver", "", args.log});
  return Run(args);
}

// heka-bosserver: supervises the Heka server processes of one machine (DESIGN.md §8).
//   heka-bosserver --config FILE [--log FILE]
// Config (etc/bosserver.toml.example):
//   provider_admins = ["admin@EXAMPLE.ORG"]
//   [bos]
//   listen = ["0.0.0.0:7300"]
//   principal = "heka/host.example.org@EXAMPLE.ORG"
//   keytab = "/etc/heka/heka.keytab"
//   state_dir = "/var/lib/heka/bos"          # bos-state.txtpb, logs/ (one log per instance)
//   [[instance]]
//   name = "fs"
//   type = "fs"                              # "simple" (default) or "fs"
//   command = ["/usr/lib/heka/heka-fileserver", "--config", "/etc/heka/fileserver.toml"]
//   salvage_command = ["/usr/lib/heka/heka-fileserver", "--config", "/etc/heka/fileserver.toml", "--salvage"]
// Instances stop with the bosserver (SIGTERM/SIGINT): they are its children, and a new
// bosserver could not wait for processes it did not start (see bos/supervisor.h).
#include <getopt.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <cstdio>
#include <filesystem>

#include "bos/service.h"
#include "bos/supervisor.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "util/log.h"

namespace {

using namespace heka;

struct Config {
  std::vector<std::string> listen;
  std::string principal;
  std::string keytab;
  std::string state_dir;
  std::vector<std::string> admins;
  std::vector<bos::CreateRequest> instances;
};

std::vector<std::string> Strings(const toml::node_view<toml::node>& node) {
  std::vector<std::string> out;
  if (auto* a = node.as_array()) {
    for (auto& v : *a) out.push_back(v.value_or<std::string>(""));
  }
  return out;
}

Result<Config> Load(const std::string& path) {
  auto bad = [&](const std::string& what) { return Error(Code::kInvalidArgument, path + ": " + what); };
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return bad(std::string("not valid TOML: ") + std::string(e.description()));
  }
  Config c;
  c.listen = Strings(t["bos"]["listen"]);
  c.principal = t["bos"]["principal"].value_or<std::string>("");
  c.keytab = t["bos"]["keytab"].value_or<std::string>("");
  c.state_dir = t["bos"]["state_dir"].value_or<std::string>("");
  c.admins = Strings(t["provider_admins"]);
  if (auto* list = t["instance"].as_array()) {
    for (auto& node : *list) {
      auto* tbl = node.as_table();
      if (!tbl) return bad("[[instance]] entries must be tables");
      bos::CreateRequest in;
      in.set_name((*tbl)["name"].value_or<std::string>(""));
      in.set_type((*tbl)["type"].value_or<std::string>("simple"));
      for (const auto& a : Strings(toml::node_view<toml::node>((*tbl)["command"].node()))) in.add_command(a);
      for (const auto& a : Strings(toml::node_view<toml::node>((*tbl)["salvage_command"].node()))) {
        in.add_salvage_command(a);
      }
      c.instances.push_back(std::move(in));
    }
  }
  if (c.listen.empty()) return bad("[bos] listen is required");
  if (c.principal.empty()) return bad("[bos] principal is required");
  if (c.keytab.empty()) return bad("[bos] keytab is required");
  if (c.state_dir.empty()) return bad("[bos] state_dir is required");
  return c;
}

int Run(const std::string& config_path) {
  auto config = Load(config_path);
  if (!config.ok()) {
    spdlog::critical("{}", config.status().ToString());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->state_dir + "/logs", ec);
  if (ec) {
    spdlog::critical("cannot create {}: {}", config->state_dir, ec.message());
    return 1;
  }
  rpc::Runtime runtime({2, 4});
  bos::SupervisorOptions so;
  so.log_dir = config->state_dir + "/logs";
  auto supervisor = std::make_unique<bos::Supervisor>(so);
  bos::BosService service(*supervisor, runtime, config->admins,
                          config->state_dir + "/bos-state.txtpb");
  auto state = service.LoadState();
  if (!state.ok()) {
    spdlog::critical("{}", state.status().ToString());
    return 1;
  }
  std::set<std::string> from_config;
  for (const auto& in : config->instances) {
    from_config.insert(in.name());
    if (Status s = supervisor->Create(in); !s.ok()) {
      spdlog::critical("{}: instance {}: {}", config_path, in.name(), s.ToString());
      return 1;
    }
  }
  service.SetConfigInstances(from_config);
  for (const auto& in : state->instances()) {
    if (Status s = supervisor->Create(in); !s.ok()) {
      spdlog::error("instance {} from the state file: {}", in.name(), s.ToString());
    }
  }
  auto registry = std::make_shared<rpc::HandlerRegistry>();
  rpc::RegisterDiag(*registry);
  service.Register(*registry);
  rpc::ServerOptions sopts;
  sopts.listen = config->listen;
  sopts.credentials.keytab = "FILE:" + config->keytab;
  sopts.credentials.principal = config->principal;
  auto server = rpc::Server::Create(runtime, sopts, registry);
  if (Status s = server->Start(); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  spdlog::info("heka-bosserver serving on {} as {} with {} instances", config->listen.front(),
               config->principal, supervisor->Instances().size());
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("heka-bosserver stopping its instances");
  server->Stop();
  supervisor.reset();  // stops every instance
  runtime.Stop();
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
  std::string config, log;
  static option opts[] = {{"config", required_argument, nullptr, 'c'},
                          {"log", required_argument, nullptr, 'l'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': config = optarg; break;
      case 'l': log = optarg; break;
      default:
        std::fprintf(stderr, "usage: heka-bosserver --config FILE [--log FILE]\n");
        return 2;
    }
  }
  if (config.empty() || optind != argc) {
    std::fprintf(stderr, "usage: heka-bosserver --config FILE [--log FILE]\n");
    return 2;
  }
  heka::InitLogging({"heka-bosserver", "", log});
  return Run(config);
}

// heka-dbserver: one member of the replicated VLDB/PTDB.
//   heka-dbserver --config FILE [--bootstrap] [--log FILE]
// --bootstrap: on the first start of a brand-new cluster, make the configured [[peers]] the
// initial voters (every initial member gets the same list; harmless on later starts).
//   heka-dbserver --config FILE --restore BACKUP   fill an empty member from a backup, exit
//   heka-dbserver --config FILE --recover          make this member the sole voter, exit
// (docs/admin-db.md explains both.)
#include <getopt.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dbserver/config.h"
#include "dbserver/raft/node.h"
#include "dbserver/raft/recover.h"
#include "dbserver/raft/transport.h"
#include "dbserver/service.h"
#include "dbserver/state/state_machine.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "util/log.h"

namespace {

struct Args {
  std::string config;
  std::string log;
  std::string restore;
  bool bootstrap = false;
  bool recover = false;
};

int Usage() {
  std::fprintf(stderr,
               "usage: heka-dbserver --config FILE [--bootstrap] [--log FILE]\n"
               "       heka-dbserver --config FILE --restore BACKUP\n"
               "       heka-dbserver --config FILE --recover\n");
  return 2;
}

// Offline: fills an empty member from a `heka db backup` image.
int Restore(const heka::db::DbServerConfig& config, const std::string& backup) {
  using namespace heka;
  std::error_code ec;
  std::string raft_dir = config.data_dir + "/raft";
  if (std::filesystem::exists(raft_dir, ec) && !std::filesystem::is_empty(raft_dir, ec)) {
    spdlog::critical("{} already holds a Raft log: restore only into an empty data_dir", raft_dir);
    return 1;
  }
  std::ifstream in(backup, std::ios::binary);
  Bytes image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    spdlog::critical("cannot read {}", backup);
    return 1;
  }
  std::filesystem::create_directories(config.data_dir, ec);
  auto state = db::StateMachine::Open(config.data_dir + "/db.sqlite");
  if (!state.ok()) {
    spdlog::critical("cannot open the database: {}", state.status().ToString());
    return 1;
  }
  if (Status s = (*state)->RestoreAsNewLog(image); !s.ok()) {
    spdlog::critical("restore from {} failed: {}", backup, s.ToString());
    return 1;
  }
  spdlog::info("restored {} ({} bytes) into {}; start the members with --bootstrap", backup,
               image.size(), config.data_dir);
  return 0;
}

int Run(const Args& args) {
  using namespace heka;
  using namespace heka::db;
  auto config = DbServerConfig::Load(args.config);
  if (!config.ok()) {
    spdlog::critical("{}", config.status().ToString());
    return 1;
  }
  if (!args.restore.empty()) return Restore(*config, args.restore);
  if (args.recover) {
    Status s = RecoverAsSoleVoter(config->id, config->address, config->data_dir + "/raft");
    if (!s.ok()) {
      spdlog::critical("recovery failed: {}", s.ToString());
      return 1;
    }
    spdlog::info("member {} is now the only voter; start it, then add new members", config->id);
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->data_dir + "/raft", ec);
  if (ec) {
    spdlog::critical("cannot create {}: {}", config->data_dir, ec.message());
    return 1;
  }
  auto state = StateMachine::Open(config->data_dir + "/db.sqlite");
  if (!state.ok()) {
    spdlog::critical("cannot open the database: {}", state.status().ToString());
    return 1;
  }
  rpc::Runtime runtime({2, 4});
  UvLoop loop;
  loop.Start();

  RaftTransportOptions topts;
  topts.self_id = config->id;
  topts.credentials.keytab = "FILE:" + config->keytab;
  topts.credentials.principal = config->principal;
  topts.credentials.ccache = "MEMORY:heka-dbserver-" + std::to_string(config->id);
  StateMachine* sm = state->get();
  std::vector<PeerConfig> peers = config->peers;
  // The replicated member list decides who may be a peer; the config's [[peers]] only until
  // that list exists (a new cluster before its first leader seeds it, or a joining member).
  topts.lookup = [sm, peers](uint64_t id) -> std::optional<MemberInfo> {
    std::vector<SetMember> members = sm->Members();
    for (const SetMember& m : members) {
      if (m.id() == id && !m.remove()) return MemberInfo{m.address(), m.principal()};
    }
    if (!members.empty()) return std::nullopt;
    for (const PeerConfig& p : peers) {
      if (p.id == id) return MemberInfo{p.address, p.principal};
    }
    return std::nullopt;
  };
  RaftTransport transport(runtime, loop, topts);

  RaftNodeOptions nopts;
  nopts.id = config->id;
  nopts.address = config->address;
  nopts.raft_dir = config->data_dir + "/raft";
  nopts.election_timeout_ms = config->election_timeout_ms;
  nopts.heartbeat_timeout_ms = config->heartbeat_timeout_ms;
  nopts.snapshot_threshold = config->snapshot_threshold;
  nopts.snapshot_trailing = config->snapshot_threshold;
  if (args.bootstrap) {
    for (const PeerConfig& p : config->peers) nopts.bootstrap.push_back({p.id, p.address});
  }
  RaftNode node(nopts, **state, transport, loop);
  DbService service(*config, **state, node, runtime);

  auto registry = std::make_shared<rpc::HandlerRegistry>();
  rpc::RegisterDiag(*registry);
  service.Register(*registry);
  transport.RegisterHandlers(*registry);
  rpc::ServerOptions sopts;
  sopts.listen = config->listen;
  sopts.credentials.keytab = "FILE:" + config->keytab;
  sopts.credentials.principal = config->principal;
  auto server = rpc::Server::Create(runtime, sopts, registry);
  if (Status s = server->Start(); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    loop.Stop([](std::function<void()> done) { done(); });
    return 1;
  }
  if (Status s = node.Start(); !s.ok()) {
    spdlog::critical("cannot start raft: {}", s.ToString());
    server->Stop();
    loop.Stop([](std::function<void()> done) { done(); });
    return 1;
  }
  spdlog::info("heka-dbserver member {} serving on {} as {}", config->id, config->address,
               config->principal);

  // Wait for SIGTERM/SIGINT, seeding the member list once a leader exists.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  timespec tick{0, 200'000'000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
    service.MaybeSeedMembers();
  }
  spdlog::info("heka-dbserver member {} stopping", config->id);
  server->Stop();
  runtime.Stop();  // no RPC handler may run once raft and the transport go away
  node.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // RAFT-NOTES trap 3
  // Block the stop signals in every thread; main waits for them with sigtimedwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Args args;
  static option opts[] = {{"config", required_argument, nullptr, 'c'},
                          {"bootstrap", no_argument, nullptr, 'b'},
                          {"log", required_argument, nullptr, 'l'},
                          {"restore", required_argument, nullptr, 'r'},
                          {"recover", no_argument, nullptr, 'R'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': args.config = optarg; break;
      case 'b': args.bootstrap = true; break;
      case 'l': args.log = optarg; break;
      case 'r': args.restore = optarg; break;
      case 'R': args.recover = true; break;
      default: return Usage();
    }
  }
  if (args.config.empty() || optind != argc) return Usage();
  heka::InitLogging({"heka-dbserver", "", args.log});
  return Run(args);
}

// A real heka-bosserver supervising a real DB member and file server: restarts after kill -9,
// salvage before a file server comes back, crash-loop backoff, and provider-admin-only RPCs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <algorithm>
#include <fstream>

#include "fileserver/client/file_client.h"
#include "proto/bos.pb.h"
#include "proto/db.pb.h"
#include "rpc/client.h"
#include "tests/support/db_cluster.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::bos {
namespace {

using testing::SharedRealm;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct World {
  std::string dir;
  std::string admin_cc, alice_cc;
  std::unique_ptr<testing::DbCluster> db;
  std::string fs_address, fs_principal, fs_config;
  std::string bos_address, bos_principal, bos_log;
  pid_t bos_pid = -1;
  rpc::Runtime runtime{{1, 2}};

  ~World() { testing::StopChild(bos_pid); }
};

World* g_world = nullptr;

// Tears the shared world down after the last test (processes, mounts), failed tests or not.
class WorldCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_world;
    g_world = nullptr;
  }
};
[[maybe_unused]] const auto* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new WorldCleanup);

World& TheWorld() {
  if (!g_world) g_world = [] {
    auto* w = new World;
    auto& realm = SharedRealm();
    w->dir = realm.dir() + "/bos";
    std::filesystem::create_directories(w->dir);
    EXPECT_TRUE(realm.AddUser("admin", "admin-pw").ok());
    EXPECT_TRUE(realm.AddUser("alice", "alice-pw").ok());
    w->admin_cc = realm.NewCcachePath("admin");
    w->alice_cc = realm.NewCcachePath("alice");
    EXPECT_TRUE(realm.Kinit("admin", "admin-pw", w->admin_cc).ok());
    EXPECT_TRUE(realm.Kinit("alice", "alice-pw", w->alice_cc).ok());
    testing::DbClusterOptions dbo;
    dbo.members = 1;
    dbo.provider_admins = {"admin@HEKA.TEST"};
    auto db = testing::DbCluster::Create(realm, dbo);
    EXPECT_TRUE(db.ok());
    w->db = std::move(*db);
    // The file server's keys and config.
    w->fs_principal = realm.Principal("heka/bosfs");
    auto fs_kt = realm.AddService(w->fs_principal);
    EXPECT_TRUE(fs_kt.ok());
    w->fs_address = "127.0.0.1:" + std::to_string(testing::FreePort());
    w->fs_config = w->dir + "/fs.toml";
    std::filesystem::create_directories(w->dir + "/vicepa");
    std::filesystem::create_directories(w->dir + "/fsstate");
    std::ofstream(w->fs_config) << "provider_admins = [\"admin@HEKA.TEST\"]\n[server]\nadvertise = [\""
                                << w->fs_address << "\"]\nprincipal = \"" << w->fs_principal
                                << "\"\nkeytab = \"" << *fs_kt << "\"\nstate_dir = \"" << w->dir
                                << "/fsstate\"\npartitions = [\"" << w->dir << "/vicepa\"]\n"
                                << "dbservers = \"" << w->db->dbservers() << "\"\n";
    // The bosserver's.
    w->bos_principal = realm.Principal("heka/bos1");
    auto bos_kt = realm.AddService(w->bos_principal);
    EXPECT_TRUE(bos_kt.ok());
    w->bos_address = "127.0.0.1:" + std::to_string(testing::FreePort());
    std::string bin = testing::BinDir();
    std::string config = w->dir + "/bos.toml";
    std::ofstream(config)
        << "provider_admins = [\"admin@HEKA.TEST\"]\n[bos]\nlisten = [\"" << w->bos_address
        << "\"]\nprincipal = \"" << w->bos_principal << "\"\nkeytab = \"" << *bos_kt
        << "\"\nstate_dir = \"" << w->dir << "/bosstate\"\n\n"
        << "[[instance]]\nname = \"db1\"\ncommand = [\"" << bin << "/heka-dbserver\", \"--config\", \""
        << w->db->config_path(1) << "\", \"--bootstrap\"]\n\n"
        << "[[instance]]\nname = \"fs\"\ntype = \"fs\"\ncommand = [\"" << bin
        << "/heka-fileserver\", \"--config\", \"" << w->fs_config << "\"]\nsalvage_command = [\""
        << bin << "/heka-fileserver\", \"--config\", \"" << w->fs_config << "\", \"--salvage\"]\n\n"
        << "[[instance]]\nname = \"flaky\"\ncommand = [\"/bin/sh\", \"-c\", \"echo flaky starts; exit 3\"]\n";
    w->bos_log = w->dir + "/bos.log";
    w->bos_pid = testing::Spawn({bin + "/heka-bosserver", "--config", config, "--log", w->bos_log});
    return w;
  }();
  return *g_world;
}

template <typename Rep, typename Req>
Result<Rep> Bos(const std::string& ccache, const std::string& method, const Req& req) {
  World& w = TheWorld();
  rpc::ClientOptions o;
  o.address = w.bos_address;
  o.server_principal = w.bos_principal;
  o.credentials.ccache = "FILE:" + ccache;
  auto client = rpc::Client::Create(w.runtime, o);
  auto r = w.runtime.BlockOn(client->Call<Rep>("heka.bos.Bos." + method, req, seconds(30)));
  client->Close();
  return r;
}

Result<InstanceStatus> StatusOf(const std::string& name) {
  StatusRequest req;
  req.set_name(name);
  auto r = Bos<StatusReply>(TheWorld().admin_cc, "Status", req);
  if (!r.ok()) return r.status();
  return r->instances(0);
}

bool DbServes() {
  auto s = TheWorld().db->StatusOf(1, TheWorld().admin_cc);
  return s.ok() && s->self().role() == "leader";
}

bool FileServerServes() {
  World& w = TheWorld();
  fs::FileClientOptions o;
  o.address = w.fs_address;
  o.server_principal = w.fs_principal;
  o.credentials.ccache = "FILE:" + w.admin_cc;
  o.call_timeout = milliseconds(1000);
  auto c = fs::FileClient::Create(w.runtime, o);
  return c->CallSync<fileserver::ListVolumesReply>("heka.fileserver.VolumeServer.ListVolumes",
                                                  fileserver::ListVolumesRequest())
      .ok();
}

TEST(BosTest, StartsEveryInstanceAndReportsIt) {
  ASSERT_TRUE(WaitFor([] { return DbServes() && FileServerServes(); }, seconds(30)))
      << "the supervised DB member and file server never came up";
  auto all = Bos<StatusReply>(TheWorld().admin_cc, "Status", StatusRequest());
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->instances_size(), 3);
  for (const auto& in : all->instances()) {
    if (in.name() != "flaky") {
      EXPECT_EQ(in.state(), "running") << in.name();
      EXPECT_GT(in.pid(), 0);
    }
  }
}

// `heka ARGS...` as the provider administrator; its output, and whether it succeeded.
testing::ProcessResult HekaAsAdmin(std::vector<std::string> args) {
  World& w = TheWorld();
  args.insert(args.begin(), testing::BinDir() + "/heka");
  return testing::RunProcess(args, {{"KRB5CCNAME", "FILE:" + w.admin_cc},
                                    {"HEKA_DBSERVERS", w.db->dbservers()}});
}

std::shared_ptr<fs::FileClient> FileServerAsAdmin() {
  World& w = TheWorld();
  fs::FileClientOptions o;
  o.address = w.fs_address;
  o.server_principal = w.fs_principal;
  o.credentials.ccache = "FILE:" + w.admin_cc;
  return fs::FileClient::Create(w.runtime, o);
}

TEST(BosTest, KilledProcessesOfEachTypeAreBackWithinTenSeconds) {
  ASSERT_TRUE(WaitFor([] { return DbServes() && FileServerServes(); }, seconds(30)));
  // A file on the file server, to find intact after its crash and salvage.
  World& w = TheWorld();
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"cell", "create", "-name", "bos", "-realm", "HEKA.TEST"},
        {"pts", "createuser", "-name", "admin@HEKA.TEST", "-cell", "bos"},
        {"pts", "adduser", "-user", "admin", "-group", "system:administrators", "-cell", "bos"}}) {
    auto r = HekaAsAdmin(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  testing::ProcessResult made;
  ASSERT_TRUE(WaitFor(  // the file server registers itself in the VLDB as it starts
      [&] {
        made = HekaAsAdmin({"vos", "create", "-server", w.fs_address, "-partition",
                            w.dir + "/vicepa", "-name", "root.cell", "-cell", "bos"});
        return made.exit_code == 0;
      },
      seconds(20)))
      << made.output;
  auto examined = HekaAsAdmin({"vos", "examine", "-id", "root.cell", "-cell", "bos", "-format",
                               "json"});
  auto id_at = examined.output.find("\"id\":");
  ASSERT_NE(id_at, std::string::npos) << examined.output;
  fileserver::Fid root;
  root.set_cell("bos");
  // protobuf's JSON quotes 64-bit numbers.
  size_t digits = examined.output.find_first_of("0123456789", id_at + 5);
  ASSERT_NE(digits, std::string::npos) << examined.output;
  root.set_volume(std::stoull(examined.output.substr(digits)));
  root.set_vnode(1);
  root.set_uniq(1);
  fileserver::CreateRequest create;
  *create.mutable_dir() = root;
  create.set_name("kept.txt");
  create.set_mode(0644);
  create.set_data("written before the crash\n");
  auto file = FileServerAsAdmin()->CallSync<fileserver::CreateReply>(
      "heka.fileserver.File.CreateFile", create);
  ASSERT_TRUE(file.ok()) << file.status().ToString();

  for (std::string name : {"db1", "fs"}) {
    auto before = StatusOf(name);
    ASSERT_TRUE(before.ok());
    ASSERT_GT(before->pid(), 0);
    auto t0 = Clock::now();
    kill(static_cast<pid_t>(before->pid()), SIGKILL);
    bool back = WaitFor(
        [&] {
          auto now = StatusOf(name);
          if (!now.ok() || now->pid() <= 0 || now->pid() == before->pid()) return false;
          return name == "db1" ? DbServes() : FileServerServes();
        },
        seconds(10));
    EXPECT_TRUE(back) << name << " was not back and serving within 10 s";
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    std::printf("%s: killed -9, serving again after %lld ms\n", name.c_str(),
                static_cast<long long>(took));
    auto after = StatusOf(name);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->last_signal(), SIGKILL);
    EXPECT_GE(after->restarts(), 1u);
  }
  // The file server was salvaged before it came back.
  GetLogRequest log;
  log.set_name("fs");
  auto fs_log = Bos<GetLogReply>(TheWorld().admin_cc, "GetLog", log);
  ASSERT_TRUE(fs_log.ok());
  EXPECT_NE(fs_log->data().find("volumes salvaged"), std::string::npos) << fs_log->data();
  // With its data intact.
  fileserver::FetchDataRequest fetch;
  *fetch.mutable_fid() = file->status().fid();
  fetch.set_length(4096);
  auto data = FileServerAsAdmin()->CallSync<fileserver::FetchDataReply>(
      "heka.fileserver.File.FetchData", fetch);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(data->data(), "written before the crash\n");
}

TEST(BosTest, CrashLoopingInstanceBacksOffAndSaysSo) {
  ASSERT_TRUE(WaitFor(
      [] {
        auto s = StatusOf("flaky");
        return s.ok() && s->state() == "crash-looping";
      },
      seconds(30)));
  auto s = StatusOf("flaky");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->last_exit_code(), 3);
  EXPECT_GE(s->restarts(), 4u);
  EXPECT_GT(s->next_start_ns(), 0) << "a backing-off instance says when it starts again";
  InstanceRequest stop;
  stop.set_name("flaky");
  auto stopped = Bos<InstanceReply>(TheWorld().admin_cc, "Stop", stop);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(stopped->status().state(), "stopped");
  GetLogRequest log;
  log.set_name("flaky");
  auto out = Bos<GetLogReply>(TheWorld().admin_cc, "GetLog", log);
  ASSERT_TRUE(out.ok());
  EXPECT_NE(out->data().find("flaky starts"), std::string::npos);
}

TEST(BosTest, CreateStopStartRestartDelete) {
  CreateRequest create;
  create.set_name("sleeper");
  create.set_type("simple");
  create.add_command("/bin/sleep");
  create.add_command("3600");
  auto made = Bos<InstanceReply>(TheWorld().admin_cc, "Create", create);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->status().state(), "running");
  int64_t pid = made->status().pid();
  InstanceRequest req;
  req.set_name("sleeper");
  auto restarted = Bos<InstanceReply>(TheWorld().admin_cc, "Restart", req);
  ASSERT_TRUE(restarted.ok());
  EXPECT_NE(restarted->status().pid(), pid);
  EXPECT_EQ(restarted->status().state(), "running");
  auto stopped = Bos<InstanceReply>(TheWorld().admin_cc, "Stop", req);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->status().state(), "stopped");
  EXPECT_NE(kill(static_cast<pid_t>(restarted->status().pid()), 0), 0) << "the process is gone";
  auto started = Bos<InstanceReply>(TheWorld().admin_cc, "Start", req);
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->status().state(), "running");
  EXPECT_TRUE(Bos<InstanceReply>(TheWorld().admin_cc, "Delete", req).ok());
  EXPECT_EQ(StatusOf("sleeper").status().code(), Code::kNotFound);
  create.set_command(0, "relative/path");
  EXPECT_EQ(Bos<InstanceReply>(TheWorld().admin_cc, "Create", create).status().code(),
            Code::kInvalidArgument);
}

TEST(BosTest, OnlyProviderAdministratorsMayUseIt) {
  World& w = TheWorld();
  InstanceRequest req;
  req.set_name("db1");
  CreateRequest create;
  create.set_name("evil");
  create.set_type("simple");
  create.add_command("/bin/true");
  UserRequest user;
  user.set_principal("alice@HEKA.TEST");
  SalvageRequest salvage;
  salvage.set_name("fs");
  std::vector<Status> refused = {
      Bos<InstanceReply>(w.alice_cc, "Start", req).status(),
      Bos<InstanceReply>(w.alice_cc, "Stop", req).status(),
      Bos<InstanceReply>(w.alice_cc, "Restart", req).status(),
      Bos<InstanceReply>(w.alice_cc, "Create", create).status(),
      Bos<InstanceReply>(w.alice_cc, "Delete", req).status(),
      Bos<SalvageReply>(w.alice_cc, "Salvage", salvage).status(),
      Bos<UsersReply>(w.alice_cc, "AddUser", user).status(),
      Bos<UsersReply>(w.alice_cc, "RemoveUser", user).status(),
      Bos<StatusReply>(w.alice_cc, "Status", StatusRequest()).status(),
  };
  for (const Status& s : refused) EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_TRUE(StatusOf("db1").ok());
  // An added administrator may; removing it takes that back.
  ASSERT_TRUE(Bos<UsersReply>(w.admin_cc, "AddUser", user).ok());
  EXPECT_TRUE(Bos<StatusReply>(w.alice_cc, "Status", StatusRequest()).ok());
  ASSERT_TRUE(Bos<UsersReply>(w.admin_cc, "RemoveUser", user).ok());
  EXPECT_EQ(Bos<StatusReply>(w.alice_cc, "Status", StatusRequest()).status().code(),
            Code::kPermissionDenied);
  // The same through the CLI: one line and exit 1 for alice, a status for the admin.
  auto cli = [&](const std::string& cc, std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::BinDir() + "/heka", "bos"};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& a : {std::string("-server"), w.bos_address, std::string("-principal"),
                                  w.bos_principal}) {
      argv.push_back(a);
    }
    return testing::RunProcess(argv, {{"KRB5CCNAME", "FILE:" + cc}});
  };
  auto denied = cli(w.alice_cc, {"stop", "-instance", "db1"});
  EXPECT_EQ(denied.exit_code, 1) << denied.output;
  EXPECT_EQ(std::count(denied.output.begin(), denied.output.end(), '\n'), 1) << denied.output;
  EXPECT_NE(denied.output.find("permission denied"), std::string::npos) << denied.output;
  auto status = cli(w.admin_cc, {"status", "-long"});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("Instance db1, currently running normally."), std::string::npos)
      << status.output;
}

}  // namespace
}  // namespace heka::bos

// Three real heka-dbserver processes with the real KDC: election, failover after kill -9,
// loss of quorum, catch-up after a restart, and who may be a peer.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "proto/db.pb.h"
#include "rpc/client.h"
#include "dbserver/state/state_machine.h"
#include "tests/support/db_cluster.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::db {
namespace {

using testing::DbCluster;
using testing::SharedRealm;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;

struct Keys {
  std::string admin_cc;
  std::string acmeadm_cc;
  std::string bob_cc;
};

const Keys& SharedKeys() {
  static const Keys k = [] {
    auto& realm = SharedRealm();
    Keys out;
    EXPECT_TRUE(realm.AddUser("admin", "admin-pw").ok());
    out.admin_cc = realm.NewCcachePath("admin");
    EXPECT_TRUE(realm.Kinit("admin", "admin-pw", out.admin_cc).ok());
    EXPECT_TRUE(realm.AddUser("acmeadm", "acmeadm-pw").ok());
    out.acmeadm_cc = realm.NewCcachePath("acmeadm");
    EXPECT_TRUE(realm.Kinit("acmeadm", "acmeadm-pw", out.acmeadm_cc).ok());
    EXPECT_TRUE(realm.AddUser("bob", "bob-pw").ok());
    out.bob_cc = realm.NewCcachePath("bob");
    EXPECT_TRUE(realm.Kinit("bob", "bob-pw", out.bob_cc).ok());
    return out;
  }();
  return k;
}

class DbClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = &SharedKeys();
    testing::DbClusterOptions o;
    o.provider_admins = {"admin@HEKA.TEST"};
    o.backup_chunk_bytes = 4096;  // so a backup takes many chunks
    auto c = DbCluster::Create(SharedRealm(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cluster_ = std::move(*c);
    ASSERT_TRUE(cluster_->StartAll().ok());
    auto leader = cluster_->WaitForLeader(keys_->admin_cc, std::chrono::seconds(45));
    ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  }

  std::shared_ptr<rpc::Client> ClientFor(int id) {
    rpc::ClientOptions o;
    o.address = cluster_->address(id);
    o.server_principal = cluster_->principal(id);
    o.credentials.ccache = "FILE:" + keys_->admin_cc;
    o.connect_timeout = std::chrono::milliseconds(500);
    return rpc::Client::Create(runtime_, o);
  }

  // One attempt on member `id`.
  Result<CommandResult> WriteOn(int id, const Command& cmd) {
    WriteRequest req;
    *req.mutable_command() = cmd;
    auto r = runtime_.BlockOn(ClientFor(id)->Call<WriteReply>("heka.db.Db.Write", req,
                                                              std::chrono::milliseconds(3000)));
    if (!r.ok()) return r.status();
    return r->result();
  }

  // Tries every running member until one accepts the write or the deadline passes.
  Result<CommandResult> Write(const Command& cmd, std::chrono::milliseconds timeout) {
    Result<CommandResult> last = Error(Code::kUnavailable, "no member tried");
    WaitFor(
        [&] {
          for (int id = 1; id <= cluster_->size(); ++id) {
            if (!cluster_->running(id)) continue;
            last = WriteOn(id, cmd);
            if (last.ok()) return true;
          }
          return false;
        },
        timeout);
    return last;
  }

  Command CreateCell(const std::string& name) {
    Command cmd;
    cmd.set_request_id("create-" + name);
    cmd.mutable_create_cell()->set_name(name);
    cmd.mutable_create_cell()->add_realms("HEKA.TEST");
    return cmd;
  }

  Result<Cell> GetCellOn(int id, const std::string& name) {
    GetCellRequest req;
    req.set_name(name);
    auto r = runtime_.BlockOn(ClientFor(id)->Call<GetCellReply>("heka.db.Db.GetCell", req,
                                                                std::chrono::milliseconds(1000)));
    if (!r.ok()) return r.status();
    return r->cell();
  }

  int Leader() { return *cluster_->WaitForLeader(keys_->admin_cc, std::chrono::seconds(45)); }

  const Keys* keys_ = nullptr;
  rpc::Runtime runtime_{{1, 2}};
  std::unique_ptr<DbCluster> cluster_;
};

TEST_F(DbClusterTest, WritesReplicateToEveryMember) {
  auto r = Write(CreateCell("acme"), std::chrono::seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->code(), 0u) << r->message();
  for (int id = 1; id <= 3; ++id) {
    EXPECT_TRUE(WaitFor([&] { return GetCellOn(id, "acme").ok(); }, std::chrono::seconds(30)))
        << "member " << id << " never saw the cell";
  }
}

TEST_F(DbClusterTest, AFollowerSendsWritesToTheLeader) {
  int leader = Leader();
  int follower = leader == 1 ? 2 : 1;
  // Right after an election a follower may not have heard from the leader yet.
  Result<CommandResult> r = Error(Code::kInternal, "not tried");
  WaitFor([&] {
    r = WriteOn(follower, CreateCell("globex"));
    return r.status().code() == Code::kNotLeader;
  });
  EXPECT_EQ(r.status().code(), Code::kNotLeader);
  EXPECT_NE(r.status().message().find("leader=" + cluster_->address(leader)), std::string::npos)
      << r.status().ToString();
}

TEST_F(DbClusterTest, KillingTheLeaderStopsWritesOnlyBriefly) {
  ASSERT_TRUE(Write(CreateCell("before"), std::chrono::seconds(10)).ok());
  int leader = Leader();
  cluster_->Kill(leader);
  auto start = Clock::now();
  auto r = Write(CreateCell("after"), std::chrono::seconds(20));
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LT(secs, 10.0);
  std::printf("failover: first committed write %.2f s after kill -9 of the leader\n", secs);
}

TEST_F(DbClusterTest, WithoutQuorumReadsAnswerAndWritesFailFast) {
  ASSERT_TRUE(Write(CreateCell("kept"), std::chrono::seconds(10)).ok());
  ASSERT_TRUE(WaitFor([&] { return GetCellOn(3, "kept").ok(); }, std::chrono::seconds(30)));
  cluster_->Kill(1);
  cluster_->Kill(2);
  auto cell = GetCellOn(3, "kept");
  EXPECT_TRUE(cell.ok()) << cell.status().ToString();
  auto start = Clock::now();
  Result<CommandResult> r = Error(Code::kInternal, "not tried");
  // The survivor may still think it leads for a moment; within 5 s it must say "no quorum".
  while (Clock::now() - start < std::chrono::seconds(5)) {
    r = WriteOn(3, CreateCell("lost"));
    if (!r.ok() && r.status().code() == Code::kNoQuorum) break;
  }
  EXPECT_EQ(r.status().code(), Code::kNoQuorum) << r.status().ToString();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));

  // Cut off from any leader for more than a few seconds, the survivor stops answering
  // authorisation (CPS) queries, while location reads still answer, marked stale.
  GetCpsRequest cps;
  cps.set_cell("kept");
  cps.set_principal("admin@HEKA.TEST");
  Result<GetCpsReply> refused = Error(Code::kInternal, "not tried");
  EXPECT_TRUE(WaitFor([&] {
    refused = runtime_.BlockOn(ClientFor(3)->Call<GetCpsReply>("heka.db.Db.GetCps", cps));
    return refused.status().code() == Code::kStale;
  })) << refused.status().ToString();
  GetCellRequest get;
  get.set_name("kept");
  auto stale = runtime_.BlockOn(ClientFor(3)->Call<GetCellReply>("heka.db.Db.GetCell", get));
  ASSERT_TRUE(stale.ok()) << stale.status().ToString();
  EXPECT_TRUE(stale->header().stale());
}

TEST_F(DbClusterTest, ARestartedMemberCatchesUp) {
  int leader = Leader();
  int lagging = leader == 3 ? 2 : 3;
  cluster_->Stop(lagging);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(Write(CreateCell("c" + std::to_string(i)), std::chrono::seconds(10)).ok());
  }
  ASSERT_TRUE(cluster_->Start(lagging).ok());
  EXPECT_TRUE(WaitFor([&] { return GetCellOn(lagging, "c49").ok(); }, std::chrono::seconds(30)));
}

TEST_F(DbClusterTest, AFileServerKeyCannotJoinAsAPeer) {
  auto& realm = SharedRealm();
  static int n = 0;
  std::string fs = realm.Principal("heka/fs" + std::to_string(++n));
  auto keytab = realm.AddService(fs);
  ASSERT_TRUE(keytab.ok());
  std::string cc = realm.NewCcachePath("fs");
  ASSERT_TRUE(realm.KinitKeytab(fs, *keytab, cc).ok());
  rpc::ClientOptions o;
  o.address = cluster_->address(1);
  o.server_principal = cluster_->principal(1);
  o.credentials.ccache = "FILE:" + cc;
  auto client = rpc::Client::Create(runtime_, o);
  RaftOpen open;
  open.set_from_id(2);  // claims to be member 2
  open.set_to_id(1);
  auto r = runtime_.BlockOn(client->Call<RaftOpenReply>("heka.db.Raft.Open", open));
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied) << r.status().ToString();
  EXPECT_NE(r.status().message().find("is not DB member 2"), std::string::npos);
}

TEST_F(DbClusterTest, RecoverWhenAMajorityIsLostForGood) {
  ASSERT_TRUE(Write(CreateCell("survives"), std::chrono::seconds(10)).ok());
  int survivor = 1;
  ASSERT_TRUE(WaitFor([&] { return GetCellOn(survivor, "survives").ok(); }));
  cluster_->Kill(2);
  cluster_->Kill(3);  // gone for good
  cluster_->Stop(survivor);
  auto r = testing::RunProcess({testing::BinDir() + "/heka-dbserver", "--config",
                                cluster_->config_path(survivor), "--recover"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(cluster_->Start(survivor).ok());
  auto leader = cluster_->WaitForLeader(keys_->admin_cc, std::chrono::seconds(45));
  ASSERT_TRUE(leader.ok()) << cluster_->LogTail(survivor);
  EXPECT_EQ(*leader, survivor);
  EXPECT_TRUE(GetCellOn(survivor, "survives").ok());
  auto w = Write(CreateCell("after-recovery"), std::chrono::seconds(10));
  EXPECT_TRUE(w.ok()) << w.status().ToString();
}

// The admin CLI against the real cluster, as each kind of user.
class DbCliTest : public DbClusterTest {
 protected:
  testing::ProcessResult Heka(const std::string& ccache, std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::BinDir() + "/heka"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string servers;
    for (int id = 1; id <= cluster_->size(); ++id) {
      servers += (servers.empty() ? "" : ",") + cluster_->address(id) + "=" + cluster_->principal(id);
    }
    return testing::RunProcess(argv, {{"KRB5CCNAME", "FILE:" + ccache}, {"HEKA_DBSERVERS", servers}});
  }
  void ExpectOk(const testing::ProcessResult& r) { EXPECT_EQ(r.exit_code, 0) << r.output; }
};

TEST_F(DbCliTest, CellAdministratorsManageOnlyTheirCell) {
  const std::string admin = keys_->admin_cc, acme = keys_->acmeadm_cc, bob = keys_->bob_cc;
  ExpectOk(Heka(admin, {"cell", "create", "-name", "acme", "-realm", "HEKA.TEST"}));
  ExpectOk(Heka(admin, {"cell", "create", "-name", "globex", "-realm", "HEKA.TEST"}));
  ExpectOk(Heka(admin, {"pts", "createuser", "-name", "acmeadm@HEKA.TEST", "-cell", "acme"}));
  ExpectOk(Heka(admin, {"pts", "adduser", "-user", "acmeadm", "-group", "system:administrators",
                        "-cell", "acme"}));
  auto carol = Heka(acme, {"pts", "createuser", "-name", "carol@HEKA.TEST", "-cell", "acme"});
  ExpectOk(carol);
  // One audit line on the leader: who, what, result.
  std::string log = cluster_->LogTail(Leader(), 200);
  EXPECT_NE(log.find("audit: acmeadm@HEKA.TEST create_user -> ok"), std::string::npos) << log;
  EXPECT_NE(carol.output.find("carol"), std::string::npos) << carol.output;
  auto g = Heka(acme, {"pts", "creategroup", "-name", "acmeadm:friends", "-cell", "acme"});
  ExpectOk(g);
  ExpectOk(Heka(acme, {"pts", "adduser", "-user", "carol", "-group", "acmeadm:friends", "-cell", "acme"}));
  auto m = Heka(acme, {"pts", "membership", "-nameorid", "carol", "-cell", "acme"});
  ExpectOk(m);
  EXPECT_NE(m.output.find("acmeadm:friends"), std::string::npos) << m.output;

  // Nothing of globex for acme's administrator, nothing at all for an unregistered principal.
  auto denied = Heka(acme, {"pts", "createuser", "-name", "dave@HEKA.TEST", "-cell", "globex"});
  EXPECT_EQ(denied.exit_code, 1) << denied.output;
  EXPECT_NE(denied.output.find("permission denied"), std::string::npos) << denied.output;
  EXPECT_EQ(Heka(acme, {"pts", "listentries", "-cell", "globex"}).exit_code, 1);
  auto snoop = Heka(bob, {"pts", "listentries", "-cell", "acme"});
  EXPECT_EQ(snoop.exit_code, 1) << snoop.output;
  EXPECT_EQ(snoop.output.find("carol"), std::string::npos) << snoop.output;
  EXPECT_EQ(std::count(denied.output.begin(), denied.output.end(), '\n'), 1) << denied.output;
}

TEST_F(DbCliTest, StatusListsEveryMemberAsJson) {
  auto r = Heka(keys_->admin_cc, {"db", "status", "-format", "json"});
  ExpectOk(r);
  EXPECT_EQ(r.output.rfind("{\"members\": [", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("\"role\":\"leader\""), std::string::npos) << r.output;
  for (int id = 1; id <= 3; ++id) {
    EXPECT_NE(r.output.find("\"pid\":" + std::to_string(cluster_->pid(id))), std::string::npos)
        << r.output;
  }
}

// The PTDB and VLDB of a member's database file, without the tables that describe the log
// position and the member list (a restored cluster has its own).
std::string Contents(const std::string& db_path) {
  auto sm = StateMachine::Open(db_path);
  if (!sm.ok()) return "cannot open " + db_path + ": " + sm.status().ToString();
  std::string out;
  bool skip = false;
  std::string dump = (*sm)->test_DumpAll();
  size_t pos = 0;
  while (pos < dump.size()) {
    size_t end = dump.find('\n', pos);
    std::string line = dump.substr(pos, end - pos);
    pos = end == std::string::npos ? dump.size() : end + 1;
    if (line.rfind("table ", 0) == 0) {
      skip = line == "table meta" || line == "table db_members" || line == "table applied_requests";
    }
    if (!skip) out += line + "\n";
  }
  return out;
}

TEST_F(DbCliTest, BackupThenRestoreIntoAFreshClusterGivesIdenticalContents) {
  const std::string admin = keys_->admin_cc;
  ExpectOk(Heka(admin, {"cell", "create", "-name", "initech", "-realm", "HEKA.TEST"}));
  for (const char* user : {"peter", "samir", "milton"}) {
    ExpectOk(Heka(admin, {"pts", "createuser", "-name", std::string(user) + "@HEKA.TEST", "-cell",
                          "initech"}));
  }
  ExpectOk(Heka(admin, {"pts", "creategroup", "-name", "staff", "-cell", "initech"}));
  ExpectOk(Heka(admin, {"pts", "adduser", "-user", "milton", "-group", "staff", "-cell", "initech"}));
  std::string backup = SharedRealm().dir() + "/backup-" + std::to_string(getpid()) + ".sqlite";
  auto saved = Heka(admin, {"db", "backup", "-file", backup});
  ExpectOk(saved);
  // The cluster hands out 4 KiB per reply here, so this took many chunks.
  EXPECT_GT(std::filesystem::file_size(backup), 4 * 4096u) << saved.output;

  testing::DbClusterOptions o;
  o.provider_admins = {"admin@HEKA.TEST"};
  auto fresh = DbCluster::Create(SharedRealm(), o);
  ASSERT_TRUE(fresh.ok());
  for (int id = 1; id <= 3; ++id) {
    auto r = testing::RunProcess({testing::BinDir() + "/heka", "db", "restore", "-file", backup,
                                  "-config", (*fresh)->config_path(id)});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  ASSERT_TRUE((*fresh)->StartAll().ok());
  ASSERT_TRUE((*fresh)->WaitForLeader(admin, std::chrono::seconds(45)).ok())
      << (*fresh)->LogTail(1);
  // The restored cluster serves the old contents and takes new writes.
  for (int id = 1; id <= 3; ++id) {
    rpc::ClientOptions co;
    co.address = (*fresh)->address(id);
    co.server_principal = (*fresh)->principal(id);
    co.credentials.ccache = "FILE:" + admin;
    auto client = rpc::Client::Create(runtime_, co);
    GetEntryRequest req;
    req.set_cell("initech");
    req.set_name("milton");
    auto r = runtime_.BlockOn(client->Call<GetEntryReply>("heka.db.Db.GetEntry", req));
    ASSERT_TRUE(r.ok()) << "member " << id << ": " << r.status().ToString();
    EXPECT_EQ(r->groups_size(), 1);
  }
  for (int id = 1; id <= 3; ++id) {
    cluster_->Stop(id);
    (*fresh)->Stop(id);
  }
  std::string original = Contents(cluster_->data_dir(1) + "/db.sqlite");
  EXPECT_NE(original.find("milton"), std::string::npos);
  for (int id = 1; id <= 3; ++id) {
    EXPECT_EQ(Contents((*fresh)->data_dir(id) + "/db.sqlite"), original) << "member " << id;
  }
}

}  // namespace
}  // namespace heka::db

// Three real heka-dbserver processes with the real KDC: election, failover after kill -9,
// loss of quorum, catch-up after a restart, and who may be a peer.
#include <gtest/gtest.h>

#include <chrono>

#include "proto/db.pb.h"
#include "rpc/client.h"
#include "tests/support/db_cluster.h"
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
};

const Keys& SharedKeys() {
  static const Keys k = [] {
    auto& realm = SharedRealm();
    Keys out;
    EXPECT_TRUE(realm.AddUser("admin", "admin-pw").ok());
    out.admin_cc = realm.NewCcachePath("admin");
    EXPECT_TRUE(realm.Kinit("admin", "admin-pw", out.admin_cc).ok());
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
    auto c = DbCluster::Create(SharedRealm(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cluster_ = std::move(*c);
    ASSERT_TRUE(cluster_->StartAll().ok());
    auto leader = cluster_->WaitForLeader(keys_->admin_cc, std::chrono::seconds(15));
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

  int Leader() { return *cluster_->WaitForLeader(keys_->admin_cc, std::chrono::seconds(15)); }

  const Keys* keys_ = nullptr;
  rpc::Runtime runtime_{{1, 2}};
  std::unique_ptr<DbCluster> cluster_;
};

TEST_F(DbClusterTest, WritesReplicateToEveryMember) {
  auto r = Write(CreateCell("acme"), std::chrono::seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->code(), 0u) << r->message();
  for (int id = 1; id <= 3; ++id) {
    EXPECT_TRUE(WaitFor([&] { return GetCellOn(id, "acme").ok(); }, std::chrono::seconds(5)))
        << "member " << id << " never saw the cell";
  }
}

TEST_F(DbClusterTest, AFollowerSendsWritesToTheLeader) {
  int leader = Leader();
  int follower = leader == 1 ? 2 : 1;
  auto r = WriteOn(follower, CreateCell("globex"));
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
  ASSERT_TRUE(WaitFor([&] { return GetCellOn(3, "kept").ok(); }, std::chrono::seconds(5)));
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
}

TEST_F(DbClusterTest, ARestartedMemberCatchesUp) {
  int leader = Leader();
  int lagging = leader == 3 ? 2 : 3;
  cluster_->Stop(lagging);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(Write(CreateCell("c" + std::to_string(i)), std::chrono::seconds(10)).ok());
  }
  ASSERT_TRUE(cluster_->Start(lagging).ok());
  EXPECT_TRUE(WaitFor([&] { return GetCellOn(lagging, "c49").ok(); }, std::chrono::seconds(10)));
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

}  // namespace
}  // namespace heka::db

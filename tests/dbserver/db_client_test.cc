// DbClient against scripted in-process Db members (real sockets, the fake security mechanism,
// no KDC, no Raft): leader hints, failover, request-id reuse, deadlines, result codes.
// The same client against real heka-dbserver processes is covered in tests/integration/.
#include "dbserver/client/db_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <set>

#include "rpc/server.h"
#include "tests/support/fake_context.h"

namespace heka::db {
namespace {

using rpc::awaitable;
using rpc::CallContext;
using std::chrono::milliseconds;

constexpr const char* kPrincipal = "heka/db@FAKE.TEST";

// One scripted DB member: what it answers is set by the test.
struct FakeMember {
  std::shared_ptr<rpc::Server> server;
  std::string address;
  std::mutex mu;
  std::vector<std::string> request_ids;  // of every Write received
  int reads = 0;
  // Write: returns the reply or an RPC error; `n` counts this member's writes from 0.
  std::function<Result<WriteReply>(const Command&, int n)> on_write;
  std::function<Status()> on_read;  // an error to answer reads with, or OK

  Result<WriteReply> Write(const Command& cmd) {
    std::lock_guard lock(mu);
    request_ids.push_back(cmd.request_id());
    int n = static_cast<int>(request_ids.size()) - 1;
    if (on_write) return on_write(cmd, n);
    WriteReply reply;
    reply.mutable_result()->set_index(static_cast<uint64_t>(n + 1));
    return reply;
  }
  Status Read() {
    std::lock_guard lock(mu);
    ++reads;
    return on_read ? on_read() : Status::Ok();
  }
  size_t writes() {
    std::lock_guard lock(mu);
    return request_ids.size();
  }
};

Status NotLeader(const FakeMember& leader) {
  return Error(Code::kNotLeader, "leader=" + leader.address);
}

class DbClientTest : public ::testing::Test {
 protected:
  void StartMembers(int n) {
    for (int i = 0; i < n; ++i) members_.push_back(std::make_unique<FakeMember>());
    for (auto& m : members_) Serve(*m);
  }

  void Serve(FakeMember& m) {
    auto registry = std::make_shared<rpc::HandlerRegistry>();
    FakeMember* fm = &m;
    registry->Register<WriteRequest, WriteReply>(
        "heka.db.Db.Write",
        [fm](CallContext&, const WriteRequest& req) -> awaitable<Result<WriteReply>> {
          co_return fm->Write(req.command());
        });
    registry->Register<GetCellRequest, GetCellReply>(
        "heka.db.Db.GetCell",
        [fm](CallContext&, const GetCellRequest& req) -> awaitable<Result<GetCellReply>> {
          Status s = fm->Read();
          if (!s.ok()) co_return s;
          GetCellReply reply;
          reply.mutable_cell()->set_name(req.name());
          co_return reply;
        });
    registry->Register<GetCpsRequest, GetCpsReply>(
        "heka.db.Db.GetCps",
        [fm](CallContext&, const GetCpsRequest&) -> awaitable<Result<GetCpsReply>> {
          Status s = fm->Read();
          if (!s.ok()) co_return s;
          GetCpsReply reply;
          reply.set_user_id(1);
          co_return reply;
        });
    rpc::ServerOptions o;
    o.listen = {"127.0.0.1:0"};
    o.test_context = [] { return Result(testing::MakeFakeAcceptor({kPrincipal})); };
    m.server = rpc::Server::Create(runtime_, o, registry);
    ASSERT_TRUE(m.server->Start().ok());
    m.address = m.server->endpoints()[0].ToString();
  }

  // A client of the given members (by index into members_), or of raw addresses.
  std::unique_ptr<DbClient> NewClient(std::vector<std::string> addresses,
                                      milliseconds deadline = milliseconds(2000)) {
    DbClientOptions o;
    for (auto& a : addresses) o.members.push_back({a, kPrincipal});
    o.retry_deadline = deadline;
    o.retry_pause = milliseconds(20);
    o.call_timeout = milliseconds(2000);
    o.test_context = [] { return Result(testing::MakeFakeInitiator({})); };
    return std::make_unique<DbClient>(runtime_, std::move(o));
  }
  std::vector<std::string> Addresses() {
    std::vector<std::string> out;
    for (auto& m : members_) out.push_back(m->address);
    return out;
  }

  static Command CreateCell(std::string name) {
    Command cmd;
    cmd.mutable_create_cell()->set_name(std::move(name));
    return cmd;
  }

  rpc::Runtime runtime_;
  std::vector<std::unique_ptr<FakeMember>> members_;
};

TEST(DbClientHelpers, ParsesLeaderHints) {
  EXPECT_EQ(ParseLeaderHint("leader=db2.example:7003"), "db2.example:7003");
  EXPECT_EQ(ParseLeaderHint("leader=[::1]:7003"), "[::1]:7003");
  EXPECT_EQ(ParseLeaderHint("not the leader (leader=10.0.0.2:7003)"), "10.0.0.2:7003");
  EXPECT_EQ(ParseLeaderHint("no leader: fewer than a majority"), std::nullopt);
  EXPECT_EQ(ParseLeaderHint("leader="), std::nullopt);
}

TEST(DbClientHelpers, ParsesMemberLists) {
  auto m = ParseMembers("db1:7003, db2:7003=heka/db2.example@EX.ORG,[::1]:7003");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0], (DbMember{"db1:7003", ""}));
  EXPECT_EQ((*m)[1], (DbMember{"db2:7003", "heka/db2.example@EX.ORG"}));
  EXPECT_EQ((*m)[2].address, "[::1]:7003");
  EXPECT_FALSE(ParseMembers("").ok());
  EXPECT_FALSE(ParseMembers("db1").ok());
  EXPECT_FALSE(ParseMembers("db1:7003=").ok());
}

TEST(DbClientHelpers, RequestIdsAreRandom128BitHex) {
  std::string a = NewRequestId(), b = NewRequestId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

TEST_F(DbClientTest, WriteFollowsTheLeaderHintAndThenGoesStraightThere) {
  StartMembers(3);
  FakeMember& leader = *members_[2];
  for (int i = 0; i < 2; ++i) {
    members_[i]->on_write = [&leader](const Command&, int) -> Result<WriteReply> {
      return NotLeader(leader);
    };
  }
  auto client = NewClient(Addresses());
  auto r = client->Sync(client->Write(CreateCell("acme")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(client->leader(), leader.address);
  ASSERT_EQ(leader.writes(), 1u);
  EXPECT_EQ(leader.request_ids[0].size(), 32u) << "the client fills in a request id";

  size_t before = members_[0]->writes();
  ASSERT_TRUE(client->Sync(client->Write(CreateCell("beta"))).ok());
  EXPECT_EQ(members_[0]->writes(), before) << "the known leader is asked first";
  EXPECT_EQ(leader.writes(), 2u);
  EXPECT_NE(leader.request_ids[0], leader.request_ids[1]);
}

TEST_F(DbClientTest, RetriesAfterOutcomeUnknownReuseTheRequestId) {
  StartMembers(2);
  FakeMember& leader = *members_[0];
  leader.on_write = [](const Command&, int n) -> Result<WriteReply> {
    if (n == 0) return Error(Code::kNoQuorum, "leadership was lost before the write committed");
    if (n == 1) return Error(Code::kDeadlineExceeded, "no reply in time");
    return WriteReply();
  };
  members_[1]->on_write = [&leader](const Command&, int) -> Result<WriteReply> {
    return NotLeader(leader);
  };
  auto client = NewClient(Addresses());
  Command cmd = CreateCell("acme");
  cmd.set_request_id("caller-chosen-id");
  auto r = client->Sync(client->Write(cmd));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(leader.writes(), 3u);
  for (const auto& id : leader.request_ids) EXPECT_EQ(id, "caller-chosen-id");
  for (const auto& id : members_[1]->request_ids) EXPECT_EQ(id, "caller-chosen-id");
}

TEST_F(DbClientTest, NoQuorumUntilTheDeadlineThenAClearError) {
  StartMembers(3);
  for (auto& m : members_) {
    m->on_write = [](const Command&, int) -> Result<WriteReply> {
      return Error(Code::kNoQuorum, "no leader: fewer than a majority of DB members are reachable");
    };
  }
  auto client = NewClient(Addresses(), milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  auto r = client->Sync(client->Write(CreateCell("acme")));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNoQuorum);
  EXPECT_NE(r.status().message().find("no DB leader"), std::string::npos) << r.status().message();
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(3000));
  std::set<std::string> ids;
  for (auto& m : members_) ids.insert(m->request_ids.begin(), m->request_ids.end());
  EXPECT_EQ(ids.size(), 1u) << "every retry carries the same request id";
}

TEST_F(DbClientTest, AFailedCommandIsAStatusWithItsCode) {
  StartMembers(1);
  members_[0]->on_write = [](const Command&, int) -> Result<WriteReply> {
    WriteReply reply;
    reply.mutable_result()->set_code(static_cast<uint32_t>(Code::kAlreadyExists));
    reply.mutable_result()->set_message("cell 'acme' exists");
    return reply;
  };
  auto client = NewClient(Addresses());
  auto r = client->Sync(client->Write(CreateCell("acme")));
  EXPECT_EQ(r.status(), Error(Code::kAlreadyExists, "cell 'acme' exists"));
  EXPECT_EQ(members_[0]->writes(), 1u) << "an applied failure is not retried";
}

TEST_F(DbClientTest, ReadsSkipUnreachableMembers) {
  StartMembers(1);
  auto client = NewClient({"127.0.0.1:1", members_[0]->address});
  GetCellRequest req;
  req.set_name("acme");
  auto r = client->Sync(client->GetCell(req));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->cell().name(), "acme");
}

// A member that accepts connections and never answers (a host cut off after the connection
// was made, or hung) costs one call timeout, longer than the retry deadline: the other
// members are still tried.
TEST_F(DbClientTest, ASilentMemberDoesNotKeepTheOthersFromBeingTried) {
  StartMembers(1);
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 8), 0);  // the kernel accepts; nobody ever reads or writes
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto client = NewClient({"127.0.0.1:" + std::to_string(ntohs(addr.sin_port)),
                           members_[0]->address},
                          milliseconds(300));
  GetCellRequest req;
  req.set_name("acme");
  auto r = client->Sync(client->GetCell(req));
  ::close(silent);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->cell().name(), "acme");
}

TEST_F(DbClientTest, LeaderOnlyReadsFollowTheHint) {
  StartMembers(2);
  FakeMember& leader = *members_[1];
  members_[0]->on_read = [&leader] { return NotLeader(leader); };
  auto client = NewClient(Addresses());
  GetCellRequest req;
  req.set_name("acme");
  req.mutable_options()->set_leader_only(true);
  auto r = client->Sync(client->GetCell(req));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(leader.reads, 1);
  EXPECT_EQ(client->leader(), leader.address);
}

TEST_F(DbClientTest, GetCpsAsksAnotherMemberWhenStale) {
  StartMembers(2);
  members_[0]->on_read = [] { return Error(Code::kStale, "lost its leader"); };
  auto client = NewClient(Addresses());
  auto r = client->Sync(client->GetCps(GetCpsRequest()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->user_id(), 1);
  EXPECT_EQ(members_[0]->reads, 1);
  EXPECT_EQ(members_[1]->reads, 1);
}

TEST_F(DbClientTest, OtherErrorsAreNotRetried) {
  StartMembers(2);
  for (auto& m : members_) m->on_read = [] { return Error(Code::kPermissionDenied, "no"); };
  auto client = NewClient(Addresses());
  auto r = client->Sync(client->GetCell(GetCellRequest()));
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(members_[0]->reads + members_[1]->reads, 1);
}

TEST_F(DbClientTest, NobodyReachableFailsFastWithUnavailable) {
  auto client = NewClient({"127.0.0.1:1", "127.0.0.1:2"}, milliseconds(5000));
  auto start = std::chrono::steady_clock::now();
  auto r = client->Sync(client->Write(CreateCell("acme")));
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:2"), std::string::npos) << r.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace heka::db

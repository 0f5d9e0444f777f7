// The `heka` CLI against a real server and KDC: what a user sees, exit codes included.
#include <gtest/gtest.h>

#include "rpc/diag.h"
#include "rpc/server.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"

namespace heka {
namespace {

using testing::BinDir;
using testing::RunProcess;
using testing::SharedRealm;

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto& realm = SharedRealm();
    keytab_ = new std::string(*realm.AddService("heka/localhost"));
    ASSERT_TRUE(realm.AddUser("alice", "alice-pw").ok());
    alice_cc_ = new std::string(realm.NewCcachePath("alice"));
    ASSERT_TRUE(realm.Kinit("alice", "alice-pw", *alice_cc_).ok());
  }

  void SetUp() override {
    auto registry = std::make_shared<rpc::HandlerRegistry>();
    rpc::RegisterDiag(*registry);
    rpc::ServerOptions o;
    o.listen = {"127.0.0.1:0"};
    o.credentials.keytab = *keytab_;
    server_ = rpc::Server::Create(runtime_, o, registry);
    ASSERT_TRUE(server_->Start().ok());
    // "localhost" so the default server principal, heka/localhost, is the right one.
    address_ = "localhost:" + std::to_string(server_->endpoints()[0].port);
  }

  testing::ProcessResult Heka(std::vector<std::string> args, std::map<std::string, std::string> env,
                              std::vector<std::string> prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.push_back(BinDir() + "/heka");
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, env);
  }

  static inline std::string* keytab_ = nullptr;
  static inline std::string* alice_cc_ = nullptr;
  rpc::Runtime runtime_;
  std::shared_ptr<rpc::Server> server_;
  std::string address_;
};

TEST_F(CliTest, PingAuthenticatesAsTheCaller) {
  auto r = Heka({"rpc", "ping", "-server", address_}, {{"KRB5CCNAME", "FILE:" + *alice_cc_}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("server heka/localhost@HEKA.TEST, you are alice@HEKA.TEST"),
            std::string::npos) << r.output;
}

// Every Heka server counts the calls it answered per method; `heka rpc stats` shows them.
TEST_F(CliTest, StatsCountsTheCallsAServerAnswered) {
  std::map<std::string, std::string> env = {{"KRB5CCNAME", "FILE:" + *alice_cc_}};
  ASSERT_EQ(Heka({"rpc", "ping", "-server", address_, "-count", "3"}, env).exit_code, 0);
  auto r = Heka({"rpc", "stats", "-server", address_, "-format", "json"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("{\"method\":\"heka.diag.Diag.Ping\",\"calls\":3,"), std::string::npos)
      << r.output;
  auto text = Heka({"rpc", "stats", "-server", address_}, env);
  EXPECT_NE(text.output.find("heka.diag.Diag.Stats"), std::string::npos) << text.output;
}

TEST_F(CliTest, AbbreviatedSwitchesWorkAsInAfs) {
  auto r = Heka({"rpc", "ping", "-s", address_, "-c", "2"}, {{"KRB5CCNAME", "FILE:" + *alice_cc_}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(CliTest, NoTicketSaysRunKinitInOneLine) {
  auto r = Heka({"rpc", "ping", "-server", address_},
                {{"KRB5CCNAME", "FILE:" + SharedRealm().NewCcachePath("none")}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no credentials"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kinit"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST_F(CliTest, ClockSkewIsNamedAsSuch) {
  // The client's clock runs an hour ahead (libfaketime); the KDC or the server refuses it.
  auto r = Heka({"rpc", "ping", "-server", address_},
                {{"KRB5CCNAME", "FILE:" + *alice_cc_},
                 {"FAKETIME", "+1h"},
                 {"ASAN_OPTIONS", "verify_asan_link_order=0"}},
                {"faketime", "-f", "+1h"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("clock skew"), std::string::npos) << r.output;
}

TEST_F(CliTest, BadUsageExitsTwo) {
  EXPECT_EQ(Heka({"rpc", "ping", "-nosuchswitch"}, {}).exit_code, 2);
  EXPECT_EQ(Heka({"nosuchsuite"}, {}).exit_code, 2);
}

}  // namespace
}  // namespace heka

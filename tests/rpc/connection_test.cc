// Connection, Client and Server over real loopback sockets with the fake security mechanism
// (no KDC), so this also runs under ThreadSanitizer. The same paths with real Kerberos are
// covered in tests/integration/rpc_secure_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <random>

#include "proto/diag.pb.h"
#include "rpc/client.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "tests/support/fake_context.h"
#include "tests/support/frame_proxy.h"
#include "tests/support/wait.h"

namespace heka::rpc {
namespace {

using testing::FakeContextOptions;
using testing::WaitFor;

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(ServerOptions{}); }

  void StartServer(ServerOptions opts, FakeContextOptions server_ctx = {"heka/server@FAKE.TEST"}) {
    auto registry = std::make_shared<HandlerRegistry>();
    RegisterDiag(*registry);
    opts.listen = {"127.0.0.1:0"};
    opts.test_context = [server_ctx] { return Result(testing::MakeFakeAcceptor(server_ctx)); };
    opts.on_connect = [this](const std::shared_ptr<Connection>& c) {
      std::lock_guard lock(mu_);
      server_conns_.push_back(c);
    };
    server_ = Server::Create(runtime_, std::move(opts), registry);
    ASSERT_TRUE(server_->Start().ok());
  }

  std::shared_ptr<Client> NewClient(FakeContextOptions ctx = {},
                                    std::shared_ptr<const HandlerRegistry> handlers = nullptr) {
    ClientOptions o;
    o.address = server_->endpoints()[0].ToString();
    o.server_principal = "heka/server@FAKE.TEST";
    o.test_context = [ctx] { return Result(testing::MakeFakeInitiator(ctx)); };
    o.handlers = std::move(handlers);
    return Client::Create(runtime_, std::move(o));
  }

  Result<diag::EchoReply> Echo(Client& c, diag::EchoRequest req,
                               milliseconds timeout = milliseconds(0)) {
    return runtime_.BlockOn(c.Call<diag::EchoReply>(kDiagEcho, req, timeout));
  }

  Runtime runtime_;
  std::shared_ptr<Server> server_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Connection>> server_conns_;
};

TEST_F(ConnectionTest, PingReportsBothIdentities) {
  auto client = NewClient();
  auto r = runtime_.BlockOn(client->Call<diag::PingReply>(kDiagPing, diag::PingRequest()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server_principal(), "heka/server@FAKE.TEST");
  EXPECT_EQ(r->client_principal(), "alice@FAKE.TEST");
  EXPECT_EQ(r->protocol_version(), kProtocolVersion);
}

TEST_F(ConnectionTest, ThousandConcurrentCallsGetTheirOwnReplies) {
  auto client = NewClient();
  std::mt19937 rng(1234);
  std::vector<std::future<Result<diag::EchoReply>>> futures;
  for (int i = 0; i < 1000; ++i) {
    diag::EchoRequest req;
    req.set_payload("call-" + std::to_string(i));
    req.set_delay_ms(rng() % 50);  // replies come back out of order
    futures.push_back(asio::co_spawn(runtime_.io(),
                                     client->Call<diag::EchoReply>(kDiagEcho, req),
                                     asio::use_future));
  }
  for (int i = 0; i < 1000; ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->payload(), "call-" + std::to_string(i));
  }
  std::lock_guard lock(mu_);
  EXPECT_EQ(server_conns_.size(), 1u) << "all calls should share one connection";
}

TEST_F(ConnectionTest, PushesArriveInOrderBeforeTheReply) {
  auto handlers = std::make_shared<HandlerRegistry>();
  std::vector<uint64_t> seen;  // touched only by the connection's strand, then read after the call
  std::mutex seen_mu;
  handlers->RegisterPush<diag::Pushed>(kDiagPush, [&](Connection&, const diag::Pushed& m) {
    std::lock_guard lock(seen_mu);
    seen.push_back(m.seq());
  });
  auto client = NewClient({}, handlers);
  diag::EchoRequest req;
  req.set_push_count(2000);
  ASSERT_TRUE(Echo(*client, req).ok());
  std::lock_guard lock(seen_mu);
  ASSERT_EQ(seen.size(), 2000u);
  for (uint64_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i);
}

TEST_F(ConnectionTest, DeadlineFailsTheCallButNotTheConnection) {
  auto client = NewClient();
  diag::EchoRequest slow;
  slow.set_delay_ms(3000);
  auto r = Echo(*client, slow, milliseconds(200));
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  diag::EchoRequest fast;
  fast.set_payload("still here");
  auto r2 = Echo(*client, fast);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->payload(), "still here");
}

TEST_F(ConnectionTest, UnknownMethodIsAnErrorNotADisconnect) {
  auto client = NewClient();
  // Diag.Push is declared in proto/ but nobody serves it as a request.
  auto r = runtime_.BlockOn(client->Call<diag::Pushed>(kDiagPush, diag::Pushed()));
  EXPECT_EQ(r.status().code(), Code::kUnknownMethod);
  EXPECT_TRUE(Echo(*client, diag::EchoRequest()).ok());
}

TEST_F(ConnectionTest, ServerCanCallTheClientBack) {
  auto handlers = std::make_shared<HandlerRegistry>();
  RegisterDiag(*handlers);
  auto client = NewClient({"bob@FAKE.TEST"}, handlers);
  ASSERT_TRUE(Echo(*client, diag::EchoRequest()).ok());
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    ASSERT_EQ(server_conns_.size(), 1u);
    conn = server_conns_[0];
  }
  auto r = runtime_.BlockOn(conn->Call<diag::PingReply>(kDiagPing, diag::PingRequest()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server_principal(), "bob@FAKE.TEST");  // the client answered
  EXPECT_EQ(r->client_principal(), "heka/server@FAKE.TEST");
}

TEST_F(ConnectionTest, OversizedRequestIsRefusedLocally) {
  auto client = NewClient();
  diag::EchoRequest big;
  big.mutable_payload()->assign(kDefaultMaxFrame + 1, 'x');
  EXPECT_EQ(Echo(*client, big).status().code(), Code::kFrameTooLarge);
  EXPECT_TRUE(Echo(*client, diag::EchoRequest()).ok());
}

TEST_F(ConnectionTest, ExpiredContextClosesTheConnectionAndTheClientReconnects) {
  // The first context lives 2 s; the next ones an hour, as after a fresh kinit.
  auto contexts_made = std::make_shared<std::atomic<int>>(0);
  ClientOptions o;
  o.address = server_->endpoints()[0].ToString();
  o.server_principal = "heka/server@FAKE.TEST";
  o.test_context = [contexts_made] {
    FakeContextOptions ctx;
    if (contexts_made->fetch_add(1) == 0) ctx.lifetime = std::chrono::seconds(2);
    return Result(testing::MakeFakeInitiator(ctx));
  };
  auto client = Client::Create(runtime_, std::move(o));
  auto conn = runtime_.BlockOn(client->GetConnection());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(WaitFor([&] { return (*conn)->closed(); }, std::chrono::seconds(6)));
  EXPECT_EQ((*conn)->close_reason().code(), Code::kContextExpired);
  auto r = Echo(*client, diag::EchoRequest());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(contexts_made->load(), 2);
}

TEST_F(ConnectionTest, ClientReconnectsAfterTheServerDropsIt) {
  auto client = NewClient();
  ASSERT_TRUE(Echo(*client, diag::EchoRequest()).ok());
  auto conn = runtime_.BlockOn(client->GetConnection());
  ASSERT_TRUE(conn.ok());
  {
    std::lock_guard lock(mu_);
    server_conns_[0]->Close(Error(Code::kConnectionClosed, "test"));
  }
  ASSERT_TRUE(WaitFor([&] { return (*conn)->closed(); }));
  EXPECT_TRUE(Echo(*client, diag::EchoRequest()).ok());
}

TEST_F(ConnectionTest, RefusedHandshakeGivesTheServersReason) {
  FakeContextOptions failing;
  failing.fail = true;
  auto client = NewClient(failing);
  auto r = Echo(*client, diag::EchoRequest());
  EXPECT_EQ(r.status().code(), Code::kAuthFailed);
}

TEST_F(ConnectionTest, MismatchedKeysAreDetectedInTheHandshake) {
  FakeContextOptions other_secret;
  other_secret.secret = "not the same";
  auto client = NewClient(other_secret);
  auto r = Echo(*client, diag::EchoRequest());
  EXPECT_EQ(r.status().code(), Code::kAuthFailed);
  EXPECT_NE(r.status().message().find("integrity"), std::string::npos) << r.status().ToString();
}

TEST_F(ConnectionTest, AuthorizerRefusalReachesTheClient) {
  server_->Stop();
  ServerOptions opts;
  opts.authorize = [](const krb::Identity& who) {
    return who.name() == "alice" ? Status::Ok()
                                 : Error(Code::kPermissionDenied, who.principal() + " may not connect");
  };
  StartServer(opts);
  auto mallory = NewClient({"mallory@FAKE.TEST"});
  auto r = Echo(*mallory, diag::EchoRequest());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("mallory@FAKE.TEST may not connect"), std::string::npos);
  EXPECT_TRUE(Echo(*NewClient(), diag::EchoRequest()).ok());
}

TEST_F(ConnectionTest, Ipv6LoopbackWorks) {
  server_->Stop();
  auto registry = std::make_shared<HandlerRegistry>();
  RegisterDiag(*registry);
  ServerOptions opts;
  opts.listen = {"[::1]:0"};
  opts.test_context = [] { return Result(testing::MakeFakeAcceptor({"heka/server@FAKE.TEST"})); };
  server_ = Server::Create(runtime_, std::move(opts), registry);
  ASSERT_TRUE(server_->Start().ok());
  auto client = NewClient();
  EXPECT_EQ(client->options().address.front(), '[');
  EXPECT_TRUE(Echo(*client, diag::EchoRequest()).ok());
}

TEST_F(ConnectionTest, TooManyRequestsInFlightAreAnsweredBusy) {
  server_->Stop();
  ServerOptions opts;
  opts.connection.max_concurrent_requests = 4;
  StartServer(opts);
  auto client = NewClient();
  std::vector<std::future<Result<diag::EchoReply>>> futures;
  for (int i = 0; i < 12; ++i) {
    diag::EchoRequest req;
    req.set_delay_ms(300);
    futures.push_back(asio::co_spawn(runtime_.io(), client->Call<diag::EchoReply>(kDiagEcho, req),
                                     asio::use_future));
  }
  int ok = 0, busy = 0;
  for (auto& f : futures) {
    auto r = f.get();
    if (r.ok()) ++ok;
    if (r.status().code() == Code::kUnavailable) ++busy;
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(busy, 8);
  EXPECT_TRUE(Echo(*client, diag::EchoRequest()).ok()) << "the connection survives";
}

TEST_F(ConnectionTest, DeadPeerIsDetectedWithinSeconds) {
  testing::FrameProxy proxy("127.0.0.1", server_->endpoints()[0].port);
  ClientOptions o;
  o.address = proxy.address();
  o.server_principal = "heka/server@FAKE.TEST";
  o.test_context = [] { return Result(testing::MakeFakeInitiator({})); };
  o.connection.ping_interval = milliseconds(200);
  o.connection.dead_after = milliseconds(1000);
  auto client = Client::Create(runtime_, std::move(o));
  auto conn = runtime_.BlockOn(client->GetConnection());
  ASSERT_TRUE(conn.ok());
  proxy.set_frozen(true);  // the network goes silent in both directions, nothing is closed
  ASSERT_TRUE(WaitFor([&] { return (*conn)->closed(); }, std::chrono::seconds(5)));
  EXPECT_EQ((*conn)->close_reason().code(), Code::kUnavailable);
  EXPECT_NE((*conn)->close_reason().message().find("not responding"), std::string::npos);
}

TEST_F(ConnectionTest, StalledFrameClosesTheConnection) {
  server_->Stop();
  ServerOptions opts;
  opts.connection.frame_timeout = milliseconds(500);
  StartServer(opts);
  testing::FrameProxy proxy("127.0.0.1", server_->endpoints()[0].port);
  ClientOptions o;
  o.address = proxy.address();
  o.server_principal = "heka/server@FAKE.TEST";
  o.test_context = [] { return Result(testing::MakeFakeInitiator({})); };
  auto client = Client::Create(runtime_, std::move(o));
  ASSERT_TRUE(Echo(*client, diag::EchoRequest()).ok());
  // The next frame's length prefix arrives, then only half of its body, then nothing.
  proxy.set_rewrite([](size_t index, const Bytes& f) {
    if (index < 2) return std::vector<Bytes>{f};
    return std::vector<Bytes>{Bytes(f.begin(), f.begin() + f.size() / 2)};
  });
  diag::EchoRequest req;
  req.set_payload(std::string(1000, 'p'));
  auto r = Echo(*client, req, milliseconds(5000));
  EXPECT_FALSE(r.ok());
  std::shared_ptr<Connection> server_side;
  {
    std::lock_guard lock(mu_);
    ASSERT_FALSE(server_conns_.empty());
    server_side = server_conns_.back();
  }
  ASSERT_TRUE(WaitFor([&] { return server_side->closed(); }, std::chrono::seconds(5)));
  EXPECT_NE(server_side->close_reason().message().find("no progress inside a frame"),
            std::string::npos) << server_side->close_reason().ToString();
}

}  // namespace
}  // namespace heka::rpc

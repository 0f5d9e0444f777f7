// The RPC transport end to end with a real MIT KDC: GSS-API mutual authentication, the
// encrypted channel, bad input from clients, and ticket expiry on live connections.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <future>
#include <random>

#include "proto/diag.pb.h"
#include "rpc/client.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "tests/support/frame_proxy.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::rpc {
namespace {

using testing::FrameProxy;
using testing::SharedRealm;
using testing::WaitFor;

constexpr char kService[] = "heka/localhost";

// One server principal and two users in the shared realm, created once per binary.
struct Principals {
  std::string keytab;
  std::string alice_cc;
  std::string bob_cc;
};

const Principals& SharedPrincipals() {
  static const Principals p = [] {
    auto& realm = SharedRealm();
    Principals out;
    auto kt = realm.AddService(kService);
    EXPECT_TRUE(kt.ok()) << kt.status().ToString();
    out.keytab = *kt;
    EXPECT_TRUE(realm.AddUser("alice", "alice-pw").ok());
    EXPECT_TRUE(realm.AddUser("bob", "bob-pw").ok());
    out.alice_cc = realm.NewCcachePath("alice");
    out.bob_cc = realm.NewCcachePath("bob");
    EXPECT_TRUE(realm.Kinit("alice", "alice-pw", out.alice_cc).ok());
    EXPECT_TRUE(realm.Kinit("bob", "bob-pw", out.bob_cc).ok());
    return out;
  }();
  return p;
}

// Captures log lines so tests can check that a bad client costs exactly one line.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)) {
    auto logger = std::make_shared<spdlog::logger>("test", sink_);
    logger->set_level(spdlog::level::info);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  int Count(const std::string& needle) {
    int n = 0;
    for (const auto& line : sink_->last_formatted()) n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

class RpcSecureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = &SharedPrincipals();
    StartServer(p_->keytab, "127.0.0.1:0");
  }

  void StartServer(const std::string& keytab, const std::string& listen,
                   Authorizer authorize = nullptr) {
    if (server_) server_->Stop();
    auto registry = std::make_shared<HandlerRegistry>();
    RegisterDiag(*registry);
    ServerOptions o;
    o.listen = {listen};
    o.credentials.keytab = keytab;
    o.credentials.principal = SharedRealm().Principal(kService);
    o.authorize = std::move(authorize);
    o.handshake_timeout = std::chrono::milliseconds(1500);
    server_ = Server::Create(runtime_, std::move(o), registry);
    ASSERT_TRUE(server_->Start().ok());
  }

  std::string ServerAddress() const { return server_->endpoints()[0].ToString(); }

  std::shared_ptr<Client> NewClient(const std::string& ccache, std::string address = "",
                                    std::shared_ptr<const HandlerRegistry> handlers = nullptr) {
    ClientOptions o;
    o.address = address.empty() ? ServerAddress() : address;
    o.server_principal = SharedRealm().Principal(kService);
    o.credentials.ccache = "FILE:" + ccache;
    o.handlers = std::move(handlers);
    return Client::Create(runtime_, std::move(o));
  }

  Result<diag::EchoReply> Echo(Client& c, const std::string& payload = "x") {
    diag::EchoRequest req;
    req.set_payload(payload);
    return runtime_.BlockOn(c.Call<diag::EchoReply>(kDiagEcho, req));
  }

  Runtime runtime_;
  const Principals* p_ = nullptr;
  std::shared_ptr<Server> server_;
};

TEST_F(RpcSecureTest, MutualAuthenticationNamesBothSides) {
  auto client = NewClient(p_->alice_cc);
  auto r = runtime_.BlockOn(client->Call<diag::PingReply>(kDiagPing, diag::PingRequest()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->client_principal(), "alice@HEKA.TEST");
  EXPECT_EQ(r->server_principal(), "heka/localhost@HEKA.TEST");
  auto conn = runtime_.BlockOn(client->GetConnection());
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ((*conn)->peer().principal(), "heka/localhost@HEKA.TEST");
}

TEST_F(RpcSecureTest, ServerWithWrongKeytabIsRefusedByTheClient) {
  // The KDC gets a new key for the service; a server still holding the old keytab cannot
  // read the client's ticket and so cannot prove who it is.
  auto& realm = SharedRealm();
  static int run = 0;
  const std::string service = "heka/stale" + std::to_string(++run);
  auto old_keytab = realm.AddService(service);
  ASSERT_TRUE(old_keytab.ok());
  ASSERT_TRUE(realm.Rekey(service).ok());
  auto registry = std::make_shared<HandlerRegistry>();
  RegisterDiag(*registry);
  ServerOptions o;
  o.listen = {"127.0.0.1:0"};
  o.credentials.keytab = *old_keytab;
  auto stale = Server::Create(runtime_, std::move(o), registry);
  ASSERT_TRUE(stale->Start().ok());
  ClientOptions co;
  co.address = stale->endpoints()[0].ToString();
  co.server_principal = realm.Principal(service);
  co.credentials.ccache = "FILE:" + p_->alice_cc;
  auto client = Client::Create(runtime_, std::move(co));
  auto r = Echo(*client);
  EXPECT_EQ(r.status().code(), Code::kBadServerKey) << r.status().ToString();
  EXPECT_NE(r.status().message().find("keytab"), std::string::npos) << r.status().ToString();
}

TEST_F(RpcSecureTest, ClientWithoutTicketIsRefusedClearly) {
  auto client = NewClient(SharedRealm().NewCcachePath("nobody"));
  auto r = Echo(*client);
  EXPECT_EQ(r.status().code(), Code::kNoCredentials) << r.status().ToString();
  EXPECT_NE(r.status().message().find("kinit"), std::string::npos) << r.status().ToString();
}

TEST_F(RpcSecureTest, UnknownServerPrincipalIsReported) {
  ClientOptions o;
  o.address = ServerAddress();
  o.server_principal = SharedRealm().Principal("heka/no-such-host");
  o.credentials.ccache = "FILE:" + p_->alice_cc;
  auto r = Echo(*Client::Create(runtime_, std::move(o)));
  EXPECT_EQ(r.status().code(), Code::kUnknownServer) << r.status().ToString();
}

TEST_F(RpcSecureTest, PrincipalTheServerDoesNotAcceptIsRefused) {
  StartServer(p_->keytab, "127.0.0.1:0", [](const krb::Identity& who) {
    if (who.name() == "alice") return Status::Ok();
    return Error(Code::kPermissionDenied, who.principal() + " is not allowed on this server");
  });
  auto r = Echo(*NewClient(p_->bob_cc));
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("bob@HEKA.TEST is not allowed"), std::string::npos)
      << r.status().ToString();
  EXPECT_TRUE(Echo(*NewClient(p_->alice_cc)).ok());
}

TEST_F(RpcSecureTest, ThousandConcurrentCallsOnOneConnection) {
  auto client = NewClient(p_->alice_cc);
  std::mt19937 rng(99);
  std::vector<std::future<Result<diag::EchoReply>>> futures;
  for (int i = 0; i < 1000; ++i) {
    diag::EchoRequest req;
    req.set_payload("n" + std::to_string(i));
    req.set_delay_ms(rng() % 40);
    futures.push_back(asio::co_spawn(runtime_.io(), client->Call<diag::EchoReply>(kDiagEcho, req),
                                     asio::use_future));
  }
  for (int i = 0; i < 1000; ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->payload(), "n" + std::to_string(i));
  }
  EXPECT_EQ(server_->connections().size(), 1u);
}

TEST_F(RpcSecureTest, PushMessagesArriveInOrder) {
  auto handlers = std::make_shared<HandlerRegistry>();
  std::mutex mu;
  std::vector<uint64_t> seen;
  handlers->RegisterPush<diag::Pushed>(kDiagPush, [&](Connection&, const diag::Pushed& m) {
    std::lock_guard lock(mu);
    seen.push_back(m.seq());
  });
  auto client = NewClient(p_->alice_cc, "", handlers);
  diag::EchoRequest req;
  req.set_push_count(5000);
  ASSERT_TRUE(runtime_.BlockOn(client->Call<diag::EchoReply>(kDiagEcho, req)).ok());
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 5000u);
  for (uint64_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i);
}

TEST_F(RpcSecureTest, PlaintextMarkerNeverCrossesTheWire) {
  FrameProxy proxy("127.0.0.1", server_->endpoints()[0].port);
  auto client = NewClient(p_->alice_cc, proxy.address());
  const std::string marker = "HEKA-PLAINTEXT-MARKER-7f3a9c";
  for (int i = 0; i < 20; ++i) {
    auto r = Echo(*client, marker + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->payload(), marker + std::to_string(i));
  }
  EXPECT_GT(proxy.recorded().size(), 20 * marker.size()) << "the proxy saw the traffic";
  EXPECT_FALSE(proxy.Contains(marker));
  EXPECT_FALSE(proxy.Contains("MARKER"));
}

// --- Bad input: each case closes only the offending connection. -------------------------------

class BadInputTest : public RpcSecureTest {
 protected:
  // A well-behaved client that must keep working throughout.
  void SetUp() override {
    RpcSecureTest::SetUp();
    bystander_ = NewClient(p_->bob_cc);
    ASSERT_TRUE(Echo(*bystander_).ok());
  }
  void ExpectBystanderUnharmed() {
    auto r = Echo(*bystander_, "still fine");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->payload(), "still fine");
    EXPECT_EQ(runtime_.BlockOn(bystander_->GetConnection()).value()->closed(), false);
  }
  // Runs a client through a proxy that applies `rewrite` to client->server frames after the
  // handshake (frame index 2 on: ClientHello is 0, the GSS reply completes at once, so the
  // first request frame is 1). Returns the status of the call that hit the bad frame.
  Status CallThroughProxy(FrameProxy::Rewrite rewrite) {
    FrameProxy proxy("127.0.0.1", server_->endpoints()[0].port);
    auto client = NewClient(p_->alice_cc, proxy.address());
    EXPECT_TRUE(Echo(*client, "before").ok());  // frame 1
    proxy.set_rewrite(std::move(rewrite));
    auto r = Echo(*client, "tampered");  // frame 2 (and on)
    auto again = Echo(*client, "after");
    (void)again;
    return r.status();
  }

  std::shared_ptr<Client> bystander_;
};

Bytes FlipBit(Bytes f, size_t at) {
  f[at] ^= 0x01;
  return f;
}

TEST_F(BadInputTest, FlippedBitClosesOnlyThatConnection) {
  LogCapture log;
  Status s = CallThroughProxy([](size_t index, const Bytes& f) {
    return index == 2 ? std::vector<Bytes>{FlipBit(f, f.size() / 2)} : std::vector<Bytes>{f};
  });
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(WaitFor([&] { return log.Count("frame failed authentication") == 1; }))
      << "expected exactly one log line for the tampered frame";
  ExpectBystanderUnharmed();
}

TEST_F(BadInputTest, ReplayedFrameClosesOnlyThatConnection) {
  LogCapture log;
  Status s = CallThroughProxy([](size_t index, const Bytes& f) {
    return index == 2 ? std::vector<Bytes>{f, f} : std::vector<Bytes>{f};
  });
  (void)s;  // the first copy is genuine and may be answered
  EXPECT_TRUE(WaitFor([&] { return log.Count("frame failed authentication") == 1; }));
  ExpectBystanderUnharmed();
}

TEST_F(BadInputTest, ReorderedFramesCloseOnlyThatConnection) {
  LogCapture log;
  FrameProxy proxy("127.0.0.1", server_->endpoints()[0].port);
  auto client = NewClient(p_->alice_cc, proxy.address());
  ASSERT_TRUE(Echo(*client).ok());
  std::mutex mu;
  std::optional<Bytes> held;
  proxy.set_rewrite([&](size_t index, const Bytes& f) -> std::vector<Bytes> {
    std::lock_guard lock(mu);
    if (index == 2) {
      held = f;
      return {};
    }
    if (index == 3 && held) return {f, *held};  // swap frames 2 and 3
    return {f};
  });
  auto a = asio::co_spawn(runtime_.io(), client->Call<diag::EchoReply>(kDiagEcho, diag::EchoRequest()),
                          asio::use_future);
  auto b = asio::co_spawn(runtime_.io(), client->Call<diag::EchoReply>(kDiagEcho, diag::EchoRequest()),
                          asio::use_future);
  EXPECT_FALSE(a.get().ok());
  EXPECT_FALSE(b.get().ok());
  EXPECT_TRUE(WaitFor([&] { return log.Count("frame failed authentication") == 1; }));
  ExpectBystanderUnharmed();
}

TEST_F(BadInputTest, OversizedLengthIsRefusedBeforeAllocating) {
  LogCapture log;
  Status s = CallThroughProxy([](size_t index, const Bytes& f) {
    if (index != 2) return std::vector<Bytes>{f};
    return std::vector<Bytes>{Bytes{0x7F, 0xFF, 0xFF, 0xF0}};  // claims a 2 GiB frame
  });
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(WaitFor([&] { return log.Count("exceeds the limit") == 1; }));
  ExpectBystanderUnharmed();
}

// Raw sockets for the cases that never get as far as a handshake.
class RawSocket {
 public:
  explicit RawSocket(int port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }
  void Send(const Bytes& b) { asio::write(socket_, asio::buffer(b)); }
  // True once the server has closed the connection (read returns EOF or an error).
  bool ClosedByServer() {
    uint8_t buf[4096];
    boost::system::error_code ec;
    for (;;) {
      socket_.read_some(asio::buffer(buf), ec);
      if (ec) return true;
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

TEST_F(BadInputTest, GarbageHandshakeClosesOnlyThatConnection) {
  LogCapture log;
  RawSocket raw(server_->endpoints()[0].port);
  raw.Send({0, 0, 0, 12, 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1'});
  EXPECT_TRUE(raw.ClosedByServer());
  EXPECT_TRUE(WaitFor([&] { return log.Count("refused connection from") == 1; }));
  ExpectBystanderUnharmed();
}

TEST_F(BadInputTest, OversizedHandshakeLengthClosesTheConnection) {
  LogCapture log;
  RawSocket raw(server_->endpoints()[0].port);
  raw.Send({0xFF, 0xFF, 0xFF, 0xFF});
  EXPECT_TRUE(raw.ClosedByServer());
  EXPECT_TRUE(WaitFor([&] { return log.Count("exceeds the limit") == 1; }));
  ExpectBystanderUnharmed();
}

TEST_F(BadInputTest, HalfOpenConnectionIsClosedAfterTheHandshakeTimeout) {
  LogCapture log;
  RawSocket raw(server_->endpoints()[0].port);
  raw.Send({0, 0, 1, 0, 'x'});  // a frame that never completes
  EXPECT_TRUE(raw.ClosedByServer());  // the server's 1.5 s handshake deadline
  EXPECT_TRUE(WaitFor([&] { return log.Count("handshake not completed in time") == 1; }));
  ExpectBystanderUnharmed();
}

// --- Tickets that expire on live connections. ----------------------------------------------------

TEST_F(RpcSecureTest, ExpiredTicketClosesTheConnectionAndAFreshKinitCarriesOn) {
  auto& realm = SharedRealm();
  static int run = 0;
  const std::string carol = "carol" + std::to_string(++run);
  ASSERT_TRUE(realm.AddUser(carol, "carol-pw", "4s").ok());
  std::string cc = realm.NewCcachePath(carol);
  ASSERT_TRUE(realm.Kinit(carol, "carol-pw", cc, "4s").ok());
  auto client = NewClient(cc);
  ASSERT_TRUE(Echo(*client).ok());
  auto conn = runtime_.BlockOn(client->GetConnection());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(WaitFor([&] { return (*conn)->closed(); }, std::chrono::seconds(15)))
      << "the connection outlived its ticket";
  // Either side may notice first: the client closes for expiry, or sees the server do so.
  Code why = (*conn)->close_reason().code();
  EXPECT_TRUE(why == Code::kContextExpired || why == Code::kConnectionClosed)
      << (*conn)->close_reason().ToString();
  // The server side closed its end as well.
  EXPECT_TRUE(WaitFor([&] {
    for (const auto& c : server_->connections()) {
      if (c->peer().name() == carol) return false;
    }
    return true;
  }));
  auto expired = Echo(*client);
  EXPECT_EQ(expired.status().code(), Code::kCredentialsExpired) << expired.status().ToString();
  ASSERT_TRUE(realm.Kinit(carol, "carol-pw", cc).ok());
  auto r = Echo(*client);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(RpcSecureTest, Ipv6EndpointsWork) {
  StartServer(p_->keytab, "[::1]:0");
  auto client = NewClient(p_->alice_cc);
  ASSERT_EQ(ServerAddress().substr(0, 5), "[::1]");
  auto r = Echo(*client, "over v6");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload(), "over v6");
}

}  // namespace
}  // namespace heka::rpc

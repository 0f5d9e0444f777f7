// Integration tests of krb/gss.h against a real MIT KDC (tests/support/test_realm.h).
#include "krb/gss.h"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::krb {
namespace {

using heka::testing::SharedRealm;
using heka::testing::TestRealm;

constexpr int kMaxRoundTrips = 10;

ClientCredentials Client(const std::string& ccache) {
  ClientCredentials c;
  c.ccache = ccache;
  return c;
}

ServerCredentials Server(const std::string& keytab, const std::string& principal = "") {
  ServerCredentials c;
  c.keytab = keytab;
  c.principal = principal;
  return c;
}

struct Handshake {
  Status initiator_status;
  Status acceptor_status;
  bool initiator_got_error_token = false;  // the acceptor failed and sent a token back
};

// Drives an initiator and an acceptor in-process, passing tokens back and forth, until both are
// established or one fails. An acceptor's error token is fed to the initiator.
Handshake RunHandshake(SecurityContext& client, SecurityContext& server) {
  Handshake h;
  Bytes to_server, to_client;
  for (int i = 0; i < kMaxRoundTrips; ++i) {
    if (!client.established()) {
      auto r = client.Step(to_client);
      h.initiator_status = r.status;
      if (!r.status.ok()) return h;
      to_server = std::move(r.token);
    }
    if (client.established() && server.established()) return h;
    if (to_server.empty()) return h;
    auto r = server.Step(to_server);
    to_server.clear();
    h.acceptor_status = r.status;
    to_client = std::move(r.token);
    if (!r.status.ok()) {
      if (!to_client.empty()) {
        h.initiator_got_error_token = true;
        h.initiator_status = client.Step(to_client).status;
      }
      return h;
    }
    if (client.established() && server.established()) return h;
  }
  h.initiator_status = Error(Code::kInternal, "handshake did not converge");
  return h;
}

// Each test gets its own names, so tests do not depend on each other's state.
class GssTest : public ::testing::Test {
 protected:
  void SetUp() override {
    realm_ = &SharedRealm();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    tag_ = info->name();
    for (char& c : tag_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }

  // A user with a fresh ticket; returns the ccache ("FILE:...").
  std::string UserWithTicket(const std::string& user, const std::string& lifetime = "",
                             const std::string& max_life = "") {
    Status added = realm_->AddUser(user, "pw-" + user, max_life);
    EXPECT_TRUE(added.ok()) << added.ToString();
    std::string cc = realm_->NewCcachePath(user);
    Status s = realm_->Kinit(user, "pw-" + user, cc, lifetime);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return "FILE:" + cc;
  }

  // A service principal "heka/<tag>" with its keytab ("FILE:...").
  std::string Service(std::string* principal) {
    *principal = realm_->Principal("heka/" + tag_);
    auto kt = realm_->AddService(*principal);
    EXPECT_TRUE(kt.ok()) << kt.status().ToString();
    return kt.ok() ? "FILE:" + *kt : "";
  }

  TestRealm* realm_ = nullptr;
  std::string tag_;
};

TEST_F(GssTest, MutualAuthentication) {
  std::string cc = UserWithTicket("alice-" + tag_);
  std::string service;
  std::string keytab = Service(&service);
  auto client = SecurityContext::Initiator(Client(cc), service);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto server = SecurityContext::Acceptor(Server(keytab));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Handshake h = RunHandshake(**client, **server);
  ASSERT_TRUE(h.initiator_status.ok()) << h.initiator_status.ToString();
  ASSERT_TRUE(h.acceptor_status.ok()) << h.acceptor_status.ToString();
  ASSERT_TRUE((*client)->established());
  ASSERT_TRUE((*server)->established());

  std::string alice = realm_->Principal("alice-" + tag_);
  EXPECT_EQ((*client)->self().principal(), alice);
  EXPECT_EQ((*client)->peer().principal(), service);
  EXPECT_EQ((*server)->self().principal(), service);
  EXPECT_EQ((*server)->peer().principal(), alice);
  EXPECT_FALSE((*server)->peer().is_machine());
  EXPECT_TRUE((*client)->peer().is_machine());

  auto c1 = (*client)->PseudoRandom(AsBytes("heka session keys"), 32);
  auto s1 = (*server)->PseudoRandom(AsBytes("heka session keys"), 32);
  auto c2 = (*client)->PseudoRandom(AsBytes("something else"), 32);
  auto s2 = (*server)->PseudoRandom(AsBytes("something else"), 32);
  ASSERT_TRUE(c1.ok()) << c1.status().ToString();
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  ASSERT_TRUE(c2.ok()) << c2.status().ToString();
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  EXPECT_EQ(c1->size(), 32u);
  EXPECT_EQ(*c1, *s1);
  EXPECT_EQ(*c2, *s2);
  EXPECT_NE(*c1, *c2);

  EXPECT_GT((*client)->remaining().count(), 0);
  EXPECT_GT((*server)->remaining().count(), 0);
  // Another Step on an established context is a protocol error, not a crash.
  EXPECT_EQ((*client)->Step({}).status.code(), Code::kProtocolError);
}

// The service is re-keyed after its keytab was exported: the ticket is for kvno N+1, the
// keytab holds kvno N. MIT reports KRB5KRB_AP_ERR_BADKEYVER on the acceptor (also when the
// acceptor names its principal) and sends a KRB-ERROR token, which makes the initiator fail
// with the same code.
void ExpectStaleKeytabIsBadServerKey(TestRealm& realm, const std::string& user,
                                     const std::string& service, bool acceptor_names_principal) {
  ASSERT_TRUE(realm.AddUser(user, "pw-" + user).ok());
  std::string cc = realm.NewCcachePath(user);
  Status kinit = realm.Kinit(user, "pw-" + user, cc);
  ASSERT_TRUE(kinit.ok()) << kinit.ToString();
  auto old_keytab = realm.AddService(service);
  ASSERT_TRUE(old_keytab.ok()) << old_keytab.status().ToString();
  auto new_keytab = realm.Rekey(service);
  ASSERT_TRUE(new_keytab.ok()) << new_keytab.status().ToString();

  auto client = SecurityContext::Initiator(Client("FILE:" + cc), realm.Principal(service));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto server = SecurityContext::Acceptor(
      Server("FILE:" + *old_keytab, acceptor_names_principal ? realm.Principal(service) : ""));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Handshake h = RunHandshake(**client, **server);
  EXPECT_EQ(h.acceptor_status.code(), Code::kBadServerKey) << h.acceptor_status.ToString();
  EXPECT_NE(h.acceptor_status.message().find("keytab"), std::string::npos);
  EXPECT_TRUE(h.initiator_got_error_token);
  EXPECT_EQ(h.initiator_status.code(), Code::kBadServerKey) << h.initiator_status.ToString();
  EXPECT_FALSE((*client)->established());
  EXPECT_FALSE((*server)->established());
}

TEST_F(GssTest, ServerWithStaleKeytabIsBadServerKey) {
  ExpectStaleKeytabIsBadServerKey(*realm_, "bob-" + tag_, "heka/" + tag_, false);
}

TEST_F(GssTest, NamedServerWithStaleKeytabIsBadServerKey) {
  ExpectStaleKeytabIsBadServerKey(*realm_, "bob-" + tag_, "heka/" + tag_, true);
}

// MIT fails in gss_acquire_cred (GSS_S_NO_CRED with KRB5_FCC_NOFILE or KRB5_CC_FORMAT), so
// Initiator() itself reports it.
TEST_F(GssTest, NoTicketIsNoCredentials) {
  std::string service;
  Service(&service);
  std::string missing = "FILE:" + realm_->NewCcachePath("missing");
  auto client = SecurityContext::Initiator(Client(missing), service);
  EXPECT_EQ(client.status().code(), Code::kNoCredentials) << client.status().ToString();
  EXPECT_NE(client.status().message().find("kinit"), std::string::npos);

  std::string empty = realm_->NewCcachePath("empty");
  ASSERT_TRUE(std::ofstream(empty).good());
  client = SecurityContext::Initiator(Client("FILE:" + empty), service);
  EXPECT_EQ(client.status().code(), Code::kNoCredentials) << client.status().ToString();
}

// The KDC answers the TGS request with KDC_ERR_S_PRINCIPAL_UNKNOWN; the first Step fails
// before any token is produced.
TEST_F(GssTest, UnknownServerIsUnknownServer) {
  std::string cc = UserWithTicket("carol-" + tag_);
  auto client = SecurityContext::Initiator(Client(cc), realm_->Principal("heka/nosuchhost"));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto r = (*client)->Step({});
  EXPECT_EQ(r.status.code(), Code::kUnknownServer) << r.status.ToString();
  EXPECT_NE(r.status.message().find("heka/nosuchhost"), std::string::npos);
  EXPECT_TRUE(r.token.empty());
  EXPECT_FALSE((*client)->established());
}

// gss_acquire_cred accepts a cache whose TGT has expired; the first Step then fails with
// KRB5KRB_AP_ERR_TKT_EXPIRED. Takes about the ticket's lifetime (5 s).
TEST_F(GssTest, ExpiredTicketIsCredentialsExpired) {
  std::string cc = UserWithTicket("dave-" + tag_, "5s", "5s");
  std::string service;
  std::string keytab = Service(&service);
  {
    auto client = SecurityContext::Initiator(Client(cc), service);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    auto server = SecurityContext::Acceptor(Server(keytab));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    Handshake h = RunHandshake(**client, **server);
    ASSERT_TRUE(h.initiator_status.ok()) << h.initiator_status.ToString();
    ASSERT_TRUE(h.acceptor_status.ok()) << h.acceptor_status.ToString();
    EXPECT_LE((*client)->remaining().count(), 5);
    // MIT adds the clock-skew allowance (300 s by default) to an acceptor's context time;
    // Heka takes it off, so the server side ends with the ticket too.
    EXPECT_LE((*server)->remaining().count(), 5);
  }
  // Poll, with a deadline, until the ticket has run out.
  Status s;
  ASSERT_TRUE(heka::testing::WaitFor(
      [&] {
        auto client = SecurityContext::Initiator(Client(cc), service);
        s = client.ok() ? (*client)->Step({}).status : client.status();
        return !s.ok();
      },
      std::chrono::seconds(30)))
      << "the 5 s ticket never expired";
  EXPECT_EQ(s.code(), Code::kCredentialsExpired) << s.ToString();
  EXPECT_NE(s.message().find("kinit"), std::string::npos);
}

}  // namespace
}  // namespace heka::krb

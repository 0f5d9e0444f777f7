#include "krb/identity.h"

#include <gtest/gtest.h>

namespace heka::krb {
namespace {

TEST(IdentityTest, ParsesUserAndMachinePrincipals) {
  auto alice = Identity::Parse("alice@HEKA.TEST");
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->name(), "alice");
  EXPECT_EQ(alice->realm(), "HEKA.TEST");
  EXPECT_FALSE(alice->is_machine());
  auto host = Identity::Parse("heka/db1.example@HEKA.TEST");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->components().size(), 2u);
  EXPECT_TRUE(host->is_machine());
}

TEST(IdentityTest, RefusesPrincipalWithoutRealm) {
  EXPECT_EQ(Identity::Parse("alice").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Identity::Parse("alice@").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Identity::Parse("/x@R").status().code(), Code::kInvalidArgument);
}

TEST(IdentityTest, EscapedSeparatorsStayInComponent) {
  auto id = Identity::Parse("a\\@b@R");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->components()[0], "a@b");
  EXPECT_EQ(id->realm(), "R");
}

}  // namespace
}  // namespace heka::krb

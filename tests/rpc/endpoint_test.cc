#include "rpc/endpoint.h"

#include <gtest/gtest.h>

namespace heka::rpc {
namespace {

TEST(EndpointTest, ParsesNamesIpv4AndBracketedIpv6) {
  auto a = Endpoint::Parse("db1.example:7003");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "db1.example");
  EXPECT_EQ(a->port, 7003);
  auto b = Endpoint::Parse("[2001:db8::1]:7003");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "2001:db8::1");
  EXPECT_EQ(b->ToString(), "[2001:db8::1]:7003");
  EXPECT_EQ(Endpoint::Parse("127.0.0.1:0")->ToString(), "127.0.0.1:0");
}

TEST(EndpointTest, RefusesMalformedEndpointsWithAReason) {
  for (const char* bad : {"", "host", "::1:80", "[::1]80", "[::1", "h:70000", "h:x", ":80"}) {
    auto r = Endpoint::Parse(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(Endpoint::Parse("::1:80").status().message().find("brackets"), std::string::npos);
}

}  // namespace
}  // namespace heka::rpc

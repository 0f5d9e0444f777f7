#include "util/status.h"

#include <gtest/gtest.h>

namespace heka {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(StatusTest, ToStringNamesCodeAndMessage) {
  Status s(Code::kPermissionDenied, "principal bob@X not accepted");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "permission denied: principal bob@X not accepted");
  EXPECT_EQ(s.WithContext("connecting to db1").ToString(),
            "permission denied: connecting to db1: principal bob@X not accepted");
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> v = 7;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  Result<int> e = Error(Code::kNotFound, "no such user");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kNotFound);
}

TEST(ResultTest, OkStatusIsNotAValue) {
  Result<int> r = Status::Ok();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace heka

#include "rpc/frame.h"

#include <gtest/gtest.h>

namespace heka::rpc {
namespace {

TEST(FrameTest, LengthRoundTripsAndIsCheckedBeforeAllocation) {
  uint8_t p[4];
  EncodeLength(123456, p);
  EXPECT_EQ(*DecodeLength(p, kDefaultMaxFrame), 123456u);
  EncodeLength(0xFFFFFFFF, p);
  EXPECT_EQ(DecodeLength(p, kDefaultMaxFrame).status().code(), Code::kFrameTooLarge);
  EncodeLength(0, p);
  EXPECT_EQ(DecodeLength(p, kDefaultMaxFrame).status().code(), Code::kProtocolError);
}

TEST(FrameTest, MessageRoundTrip) {
  FrameHeader h;
  h.set_kind(FrameHeader::REQUEST);
  h.set_call_id(42);
  h.set_method("heka.diag.Diag.Echo");
  Bytes buf;
  EncodeMessageHeader(h, &buf);
  std::string body = "payload";
  buf.insert(buf.end(), body.begin(), body.end());
  auto m = DecodeMessage(buf);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->header.call_id(), 42u);
  EXPECT_EQ(m->header.method(), "heka.diag.Diag.Echo");
  EXPECT_EQ(AsChars(m->body), "payload");
}

TEST(FrameTest, TruncatedOrGarbageMessagesAreRefused) {
  FrameHeader h;
  h.set_method("x");
  Bytes buf;
  EncodeMessageHeader(h, &buf);
  Bytes cut(buf.begin(), buf.end() - 1);
  EXPECT_EQ(DecodeMessage(cut).status().code(), Code::kProtocolError);
  Bytes garbage = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
  EXPECT_EQ(DecodeMessage(garbage).status().code(), Code::kProtocolError);
  Bytes empty;
  EXPECT_EQ(DecodeMessage(empty).status().code(), Code::kProtocolError);
}

}  // namespace
}  // namespace heka::rpc

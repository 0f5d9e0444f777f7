#include "rpc/cipher.h"

#include <gtest/gtest.h>

#include <cstring>

namespace heka::rpc {
namespace {

Bytes Key(uint8_t v) { return Bytes(32, v); }

Bytes Sealed(FrameCipher& c, const std::string& text) {
  Bytes b(text.size() + c.overhead());
  std::memcpy(b.data(), text.data(), text.size());
  uint8_t aad[4] = {0, 0, 0, static_cast<uint8_t>(b.size())};
  EXPECT_TRUE(c.Seal(ByteView(aad, 4), b).ok());
  return b;
}

Status Open(FrameCipher& c, Bytes b) {
  uint8_t aad[4] = {0, 0, 0, static_cast<uint8_t>(b.size())};
  return c.Open(ByteView(aad, 4), b);
}

TEST(CipherTest, RoundTripHidesPlaintext) {
  auto tx = MakeAesGcmCipher(Key(1));
  auto rx = MakeAesGcmCipher(Key(1));
  Bytes f = Sealed(*tx, "secret marker");
  EXPECT_EQ(std::string(f.begin(), f.end()).find("secret"), std::string::npos);
  Bytes copy = f;
  uint8_t aad[4] = {0, 0, 0, static_cast<uint8_t>(copy.size())};
  ASSERT_TRUE(rx->Open(ByteView(aad, 4), copy).ok());
  EXPECT_EQ(std::string(copy.begin(), copy.begin() + 13), "secret marker");
}

TEST(CipherTest, FlippedBitFails) {
  auto tx = MakeAesGcmCipher(Key(1));
  auto rx = MakeAesGcmCipher(Key(1));
  Bytes f = Sealed(*tx, "hello");
  f[2] ^= 0x10;
  EXPECT_EQ(Open(*rx, f).code(), Code::kProtocolError);
}

TEST(CipherTest, ReplayAndReorderFail) {
  auto tx = MakeAesGcmCipher(Key(1));
  Bytes a = Sealed(*tx, "first");
  Bytes b = Sealed(*tx, "second");
  auto rx1 = MakeAesGcmCipher(Key(1));
  EXPECT_TRUE(Open(*rx1, a).ok());
  EXPECT_FALSE(Open(*rx1, a).ok()) << "replayed frame accepted";
  auto rx2 = MakeAesGcmCipher(Key(1));
  EXPECT_FALSE(Open(*rx2, b).ok()) << "reordered frame accepted";
}

TEST(CipherTest, WrongKeyOrChangedLengthFails) {
  auto tx = MakeAesGcmCipher(Key(1));
  Bytes f = Sealed(*tx, "hello");
  auto rx = MakeAesGcmCipher(Key(2));
  EXPECT_FALSE(Open(*rx, f).ok());
  auto rx2 = MakeAesGcmCipher(Key(1));
  uint8_t wrong_aad[4] = {0, 0, 1, 0};
  EXPECT_FALSE(rx2->Open(ByteView(wrong_aad, 4), f).ok());
}

}  // namespace
}  // namespace heka::rpc

// Fuzzes what a server does with the bytes of an untrusted connection: length prefixes
// (checked before anything is allocated), handshake messages, and encrypted frames, which
// must fail to open rather than misbehave.
#include <cstddef>
#include <cstdint>

#include "proto/rpc.pb.h"
#include "rpc/cipher.h"
#include "rpc/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heka;
  using namespace heka::rpc;
  static const Bytes key(32, 0x42);
  auto cipher = MakeAesGcmCipher(key);
  size_t pos = 0;
  int frame = 0;
  while (size - pos >= kLengthPrefixSize) {
    uint32_t max = frame == 0 ? kMaxHandshakeFrame : 1 << 20;
    Result<uint32_t> len = DecodeLength(data + pos, max);
    if (!len.ok()) return 0;  // the connection would be closed here
    ByteView aad(data + pos, kLengthPrefixSize);
    pos += kLengthPrefixSize;
    if (*len > size - pos) return 0;  // incomplete frame: wait for more bytes
    ByteView payload(data + pos, *len);
    pos += *len;
    if (frame == 0) {
      ClientHello hello;
      (void)hello.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
      ServerHello reply;
      (void)reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    } else {
      Bytes copy(payload.begin(), payload.end());
      if (cipher->Open(aad, copy).ok()) {
        (void)DecodeMessage(ByteView(copy.data(), copy.size() - cipher->overhead()));
      } else {
        return 0;  // authentication failure closes the connection
      }
    }
    ++frame;
  }
  return 0;
}

// Fuzzes the envelope parser: a decrypted payload is varint(len) | FrameHeader | body.
// Whatever the bytes, DecodeMessage either refuses them or returns a body inside them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "rpc/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heka;
  auto m = rpc::DecodeMessage(ByteView(data, size));
  if (m.ok()) {
    const uint8_t* begin = m->body.data();
    if (m->body.size() > 0 && (begin < data || begin + m->body.size() > data + size)) std::abort();
    (void)m->header.method().size();
    // Re-encoding the header must give a decodable message again.
    Bytes again;
    rpc::EncodeMessageHeader(m->header, &again);
    if (!rpc::DecodeMessage(again).ok()) std::abort();
  }
  return 0;
}

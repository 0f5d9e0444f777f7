// Framing of Heka's RPC wire (docs/formats/rpc-wire.md).
// Every frame is a 4-byte big-endian payload length followed by the payload. Before the
// handshake completes payloads are plaintext protobuf handshake messages; after it, each
// payload is an AES-256-GCM ciphertext of  varint(len(FrameHeader)) | FrameHeader | body.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "proto/rpc.pb.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::rpc {

inline constexpr uint32_t kProtocolVersion = 1;      // spoken by this build
inline constexpr uint32_t kMinProtocolVersion = 1;   // oldest version still accepted
inline constexpr char kHandshakeMagic[] = "HEKA";
inline constexpr size_t kLengthPrefixSize = 4;
inline constexpr uint32_t kMaxHandshakeFrame = 64 * 1024;
// Default bound of one frame: 16 MiB of body plus headers. Checked before allocating.
inline constexpr uint32_t kDefaultMaxFrame = 16 * 1024 * 1024 + 64 * 1024;

void EncodeLength(uint32_t length, uint8_t out[kLengthPrefixSize]);
// Validates a length prefix against `max_frame` before anything is allocated.
Result<uint32_t> DecodeLength(const uint8_t in[kLengthPrefixSize], uint32_t max_frame);

// A decoded message: the header and a view of the body inside the plaintext buffer.
struct MessageView {
  FrameHeader header;
  ByteView body;
};

// Writes varint(len(header)) | header into `out` (cleared first), leaving room to append body.
void EncodeMessageHeader(const FrameHeader& header, Bytes* out);
// Parses a decrypted payload. Refuses truncated or malformed headers and unknown kinds.
Result<MessageView> DecodeMessage(ByteView plaintext);

}  // namespace heka::rpc

// FrameCipher: authenticated encryption of one direction of a connection.
// Each direction has its own 256-bit key and a 64-bit frame counter that starts at 0 and is
// never sent: the nonce is 4 zero bytes | big-endian counter. A frame that was tampered with,
// replayed, dropped or reordered fails to open, and the connection is then closed.
// Not thread-safe: one connection's strand owns both ciphers.
// Format: docs/formats/rpc-wire.md.
#pragma once

#include <functional>
#include <memory>

#include "util/bytes.h"
#include "util/status.h"

namespace heka::rpc {

class FrameCipher {
 public:
  virtual ~FrameCipher() = default;
  // Bytes added to each payload (the GCM tag).
  virtual size_t overhead() const = 0;
  // Encrypts data[0, size - overhead()) in place and writes the tag into the last overhead()
  // bytes. `aad` is the frame's length prefix.
  virtual Status Seal(ByteView aad, std::span<uint8_t> data) = 0;
  // Verifies and decrypts in place; on success the plaintext is data[0, size - overhead()).
  virtual Status Open(ByteView aad, std::span<uint8_t> data) = 0;
};

// AES-256-GCM (OpenSSL EVP). REQUIRES: key.size() == 32.
std::unique_ptr<FrameCipher> MakeAesGcmCipher(ByteView key);

// Test and benchmark seam: builds the cipher for a direction from its key. Production code
// leaves it empty (AES-256-GCM); no configuration file can set it.
using CipherFactory = std::function<std::unique_ptr<FrameCipher>(ByteView key)>;

}  // namespace heka::rpc

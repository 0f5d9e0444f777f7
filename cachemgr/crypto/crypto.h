// Client-side encryption of encrypted volumes (docs/formats/encryption.md is the format; this
// is its one implementation in C++). Used by the cache manager and by `heka key`; the file
// server never links it (DESIGN.md §1).
//
// Errors: a damaged or tampered input is kIoError (EIO to the user); a key that is not the
// one the data was written with is kPermissionDenied (EACCES).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace heka::cm::crypto {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kIdBytes = 16;
inline constexpr size_t kBlockBytes = 4096;
inline constexpr size_t kNonceBytes = 12;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kBlockOverhead = kNonceBytes + kTagBytes;        // 28
inline constexpr size_t kSealedBlockBytes = kBlockBytes + kBlockOverhead;  // 4124
inline constexpr size_t kHeaderBytes = 68;
inline constexpr size_t kAttrBytes = 2 + kIdBytes;                       // 18
inline constexpr size_t kNameOverhead = 16;                               // the SIV

using Id = std::array<uint8_t, kIdBytes>;  // a file's, directory's or symlink's random ID
using KeyId = std::array<uint8_t, kIdBytes>;  // a cell key's fingerprint

std::string Hex(const uint8_t* data, size_t n);
template <size_t N>
std::string Hex(const std::array<uint8_t, N>& a) {
  return Hex(a.data(), N);
}
// kInvalidArgument unless `hex` is exactly 2 * N hex digits.
template <size_t N>
Result<std::array<uint8_t, N>> FromHex(std::string_view hex);

// 16 random bytes (OpenSSL's RAND_bytes).
Id RandomId();

// A cell key: 32 bytes in memory that is locked (mlock, never swapped) and wiped when freed;
// never written anywhere by this class. Also derives the per-file and per-directory keys.
class CellKey {
 public:
  static std::shared_ptr<const CellKey> Generate();
  // kInvalidArgument unless `bytes` is 32 bytes.
  static Result<std::shared_ptr<const CellKey>> FromBytes(std::string_view bytes);
  ~CellKey();
  CellKey(const CellKey&) = delete;
  CellKey& operator=(const CellKey&) = delete;

  const KeyId& fingerprint() const { return fingerprint_; }
  // The raw key, for wrapping into a key file and for the control socket only.
  std::string_view bytes() const;

  // docs/formats/encryption.md, "The cell key".
  std::array<uint8_t, 32> ContentKey(const Id& file_id) const;
  std::array<uint8_t, 64> NameKey(const Id& dir_id) const;

 private:
  CellKey();
  uint8_t* key_ = nullptr;  // kKeyBytes in a locked page
  KeyId fingerprint_{};
};

// ---- The client attribute ----
enum class Kind : uint8_t { kFile = 'F', kDirectory = 'D', kSymlink = 'L' };
std::string EncodeAttr(Kind kind, const Id& id);
struct Attr {
  Kind kind;
  Id id;
};
// nullopt for an empty attribute (an unencrypted vnode or a mount point); kIoError for any
// other attribute that is not a valid one.
Result<std::optional<Attr>> DecodeAttr(std::string_view attr);

// ---- Names and symlink targets ----
std::string SealName(const CellKey& key, const Id& dir_id, std::string_view name);
// kIoError when `sealed` was not sealed by `key` for this directory.
Result<std::string> OpenName(const CellKey& key, const Id& dir_id, std::string_view sealed);
std::string SealTarget(const CellKey& key, const Id& link_id, std::string_view target);
Result<std::string> OpenTarget(const CellKey& key, const Id& link_id, std::string_view sealed);

// ---- File contents ----
// The stored size of a plaintext of `plain` bytes.
uint64_t CipherSize(uint64_t plain);
// The plaintext size of a stored size; kIoError when no plaintext has that stored size.
Result<uint64_t> PlainSize(uint64_t cipher);

// One file's content key and ID. Not thread-safe (one OpenSSL context is reused).
class FileCipher {
 public:
  FileCipher(const CellKey& key, const Id& file_id);
  ~FileCipher();
  FileCipher(const FileCipher&) = delete;
  FileCipher& operator=(const FileCipher&) = delete;

  const Id& file_id() const { return file_id_; }

  // A new header (fresh nonce).
  std::string Header() const;
  // kPermissionDenied when the header names another key; kIoError when it is damaged or
  // belongs to another file.
  Status CheckHeader(std::string_view header) const;

  // Appends sealed block `block` of plaintext `plain` (at most kBlockBytes) to `out`.
  void SealBlock(uint64_t block, std::string_view plain, bool final, std::string* out) const;
  // Appends the plaintext of sealed block `block` to `out`; kIoError if it fails to
  // authenticate.
  Status OpenBlock(uint64_t block, std::string_view sealed, bool final, std::string* out) const;

  // Chunks (docs/formats/encryption.md, "How the cache manager uses it"): plaintext chunk
  // `index` of `chunk_bytes` (a multiple of kBlockBytes) is server bytes
  // [ChunkBegin, ChunkEnd) clipped to the file's stored size.
  static uint64_t ChunkBegin(uint64_t index, uint64_t chunk_bytes);
  static uint64_t ChunkEnd(uint64_t index, uint64_t chunk_bytes);
  // The plaintext of chunk `index` from its stored bytes `sealed` (exactly the clipped range),
  // given the file's plaintext size. Chunk 0's header is checked.
  Result<std::string> OpenChunk(uint64_t index, uint64_t chunk_bytes, std::string_view sealed,
                                uint64_t plain_size) const;
  // The same, for blocks [first, last] of the chunk only (counted from the chunk's first
  // block; `last` past the chunk's end means to its end): a small read of a large chunk.
  Result<std::string> OpenBlocks(uint64_t index, uint64_t chunk_bytes, std::string_view sealed,
                                 uint64_t plain_size, uint64_t first, uint64_t last) const;
  // The stored bytes of chunk `index` with plaintext `plain` (the chunk's whole plaintext:
  // chunk_bytes, or what of it lies below the file's plaintext size `plain_size`). Chunk 0
  // gets a new header. An empty file is chunk 0 with an empty `plain`.
  std::string SealChunk(uint64_t index, uint64_t chunk_bytes, std::string_view plain,
                        uint64_t plain_size) const;

 private:
  void SealBlockWithNonce(uint64_t block, std::string_view plain, bool final,
                          const uint8_t* nonce, std::string* out) const;
  Id file_id_;
  KeyId key_id_;
  void* aead_ = nullptr;  // a reusable EVP_CIPHER_CTX with the content key
};

// ---- Key files (docs/formats/encryption.md, "Key files") ----
struct KeyFile {
  std::string cell;
  KeyId fingerprint{};
  bool wrapped = false;
  std::string key;  // raw: the 32 key bytes (held only until made a CellKey)
  // wrapped:
  int scrypt_log2_n = 17;
  int scrypt_r = 8;
  int scrypt_p = 1;
  std::array<uint8_t, 16> salt{};
  std::array<uint8_t, kNonceBytes> nonce{};
  std::string wrapped_key;  // 48 bytes
};
// kNotFound when there is no file; kInvalidArgument naming the field that is wrong.
Result<KeyFile> ReadKeyFile(const std::string& path);
// Writes atomically (temporary file, fsync, rename), mode 0600. kAlreadyExists if `path`
// exists and !overwrite.
Status WriteKeyFile(const std::string& path, const KeyFile& file, bool overwrite);
KeyFile RawKeyFile(const std::string& cell, const CellKey& key);
KeyFile WrapKey(const std::string& cell, const CellKey& key, std::string_view passphrase,
                int scrypt_log2_n = 17);
// The key of a key file (raw, or unwrapped with `passphrase`); kPermissionDenied for a wrong
// passphrase, kIoError when the key does not have the fingerprint the file names.
Result<std::shared_ptr<const CellKey>> OpenKeyFile(const KeyFile& file,
                                                   std::string_view passphrase);

}  // namespace heka::cm::crypto

#include "cachemgr/crypto/crypto.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <vector>

#include <toml++/toml.h>

namespace heka::cm::crypto {
namespace {

constexpr char kMagic[4] = {'H', 'K', 'E', 'F'};
constexpr uint8_t kVersion = 1;
constexpr std::string_view kFingerprintLabel = "heka key fingerprint v1";
constexpr std::string_view kContentLabel = "heka content key v1";
constexpr std::string_view kNameLabel = "heka name key v1";
constexpr std::string_view kWrapLabel = "heka wrapped key v1";

const uint8_t* U8(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void Must(bool ok, const char* what) {
  if (!ok) {
    // OpenSSL fails here only on allocation failure or a broken library: nothing to recover.
    std::fprintf(stderr, "heka crypto: %s failed\n", what);
    std::abort();
  }
}

void Random(uint8_t* out, size_t n) { Must(RAND_bytes(out, static_cast<int>(n)) == 1, "RAND_bytes"); }

// HKDF-SHA256 with an empty salt.
void Hkdf(std::string_view ikm, std::string_view info_label, const Id& id, uint8_t* out,
          size_t out_len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  Must(kdf != nullptr, "EVP_KDF_fetch(HKDF)");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  Must(ctx != nullptr, "EVP_KDF_CTX_new");
  std::string info(info_label);
  info.append(reinterpret_cast<const char*>(id.data()), id.size());
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  Must(EVP_KDF_derive(ctx, out, out_len, params) == 1, "HKDF");
  EVP_KDF_CTX_free(ctx);
  OPENSSL_cleanse(info.data(), info.size());
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// AES-256-GCM: appends ciphertext || tag of `plain` to `out`.
void GcmSeal(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, std::string_view aad,
             std::string_view plain, std::string* out) {
  Must(EVP_EncryptInit_ex(ctx, key ? EVP_aes_256_gcm() : nullptr, nullptr, key, nonce) == 1,
       "GCM init");
  int len = 0;
  if (!aad.empty()) Must(EVP_EncryptUpdate(ctx, nullptr, &len, U8(aad), static_cast<int>(aad.size())) == 1, "GCM aad");
  size_t at = out->size();
  out->resize(at + plain.size() + kTagBytes);
  auto* dst = reinterpret_cast<uint8_t*>(out->data()) + at;
  if (!plain.empty())
    Must(EVP_EncryptUpdate(ctx, dst, &len, U8(plain), static_cast<int>(plain.size())) == 1, "GCM");
  Must(EVP_EncryptFinal_ex(ctx, dst + plain.size(), &len) == 1, "GCM final");
  Must(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagBytes, dst + plain.size()) == 1, "GCM tag");
}

// AES-256-GCM: appends the plaintext of `sealed` (ciphertext || tag) to `out`; false when it
// does not authenticate (out is then left as it was).
bool GcmOpen(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, std::string_view aad,
             std::string_view sealed, std::string* out) {
  if (sealed.size() < kTagBytes) return false;
  size_t n = sealed.size() - kTagBytes;
  if (EVP_DecryptInit_ex(ctx, key ? EVP_aes_256_gcm() : nullptr, nullptr, key, nonce) != 1) return false;
  int len = 0;
  if (!aad.empty() && EVP_DecryptUpdate(ctx, nullptr, &len, U8(aad), static_cast<int>(aad.size())) != 1)
    return false;
  size_t at = out->size();
  out->resize(at + n);
  auto* dst = reinterpret_cast<uint8_t*>(out->data()) + at;
  bool ok = (n == 0 || EVP_DecryptUpdate(ctx, dst, &len, U8(sealed), static_cast<int>(n)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagBytes,
                                const_cast<char*>(sealed.data() + n)) == 1 &&
            EVP_DecryptFinal_ex(ctx, dst + n, &len) == 1;
  if (!ok) {
    OPENSSL_cleanse(dst, n);
    out->resize(at);
  }
  return ok;
}

std::string SivSeal(const std::array<uint8_t, 64>& key, const Id& ad, std::string_view plain) {
  Ctx ctx(EVP_CIPHER_CTX_new());
  Must(ctx != nullptr, "EVP_CIPHER_CTX_new");
  EVP_CIPHER* siv = EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr);
  Must(siv != nullptr, "EVP_CIPHER_fetch(AES-256-SIV)");
  Must(EVP_EncryptInit_ex(ctx.get(), siv, nullptr, key.data(), nullptr) == 1, "SIV init");
  EVP_CIPHER_free(siv);
  int len = 0;
  Must(EVP_EncryptUpdate(ctx.get(), nullptr, &len, ad.data(), static_cast<int>(ad.size())) == 1, "SIV ad");
  std::string out(kNameOverhead + plain.size(), '\0');
  auto* dst = reinterpret_cast<uint8_t*>(out.data());
  // An empty plaintext still needs one (empty) update for OpenSSL to compute the SIV.
  Must(EVP_EncryptUpdate(ctx.get(), dst + kNameOverhead, &len, U8(plain),
                         static_cast<int>(plain.size())) == 1, "SIV");
  Must(EVP_EncryptFinal_ex(ctx.get(), dst + kNameOverhead, &len) == 1, "SIV final");
  Must(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kNameOverhead, dst) == 1, "SIV tag");
  return out;
}

std::optional<std::string> SivOpen(const std::array<uint8_t, 64>& key, const Id& ad,
                                   std::string_view sealed) {
  if (sealed.size() < kNameOverhead) return std::nullopt;
  Ctx ctx(EVP_CIPHER_CTX_new());
  Must(ctx != nullptr, "EVP_CIPHER_CTX_new");
  EVP_CIPHER* siv = EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr);
  Must(siv != nullptr, "EVP_CIPHER_fetch(AES-256-SIV)");
  bool ok = EVP_DecryptInit_ex(ctx.get(), siv, nullptr, key.data(), nullptr) == 1;
  EVP_CIPHER_free(siv);
  if (!ok) return std::nullopt;
  int len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kNameOverhead,
                          const_cast<char*>(sealed.data())) != 1)
    return std::nullopt;
  if (EVP_DecryptUpdate(ctx.get(), nullptr, &len, ad.data(), static_cast<int>(ad.size())) != 1)
    return std::nullopt;
  std::string out(sealed.size() - kNameOverhead, '\0');
  if (EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len,
                        U8(sealed.substr(kNameOverhead)), static_cast<int>(out.size())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len) != 1)
    return std::nullopt;
  return out;
}

void PutU64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<uint8_t>(v);
}

Status Damaged(const std::string& what) { return Error(Code::kIoError, what); }

}  // namespace

std::string Hex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

template <size_t N>
Result<std::array<uint8_t, N>> FromHex(std::string_view hex) {
  if (hex.size() != 2 * N) {
    return Error(Code::kInvalidArgument,
                 "expected " + std::to_string(2 * N) + " hex digits, got " + std::to_string(hex.size()));
  }
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(Code::kInvalidArgument, "not a hex digit");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}
template Result<std::array<uint8_t, 12>> FromHex<12>(std::string_view);
template Result<std::array<uint8_t, 16>> FromHex<16>(std::string_view);
template Result<std::array<uint8_t, 32>> FromHex<32>(std::string_view);
template Result<std::array<uint8_t, 48>> FromHex<48>(std::string_view);

Id RandomId() {
  Id id;
  Random(id.data(), id.size());
  return id;
}

// ---- CellKey ----

CellKey::CellKey() {
  // One page per key: mlock works on pages, and a page of its own is wiped whole.
  long page = sysconf(_SC_PAGESIZE);
  void* p = nullptr;
  Must(posix_memalign(&p, static_cast<size_t>(page), static_cast<size_t>(page)) == 0, "posix_memalign");
  // mlock may fail under a low RLIMIT_MEMLOCK (an unprivileged CLI); the key is still never
  // written anywhere by this class, and MADV_DONTDUMP keeps it out of core dumps.
  (void)mlock(p, static_cast<size_t>(page));
  (void)madvise(p, static_cast<size_t>(page), MADV_DONTDUMP);
  key_ = static_cast<uint8_t*>(p);
}

CellKey::~CellKey() {
  long page = sysconf(_SC_PAGESIZE);
  OPENSSL_cleanse(key_, static_cast<size_t>(page));
  munlock(key_, static_cast<size_t>(page));
  std::free(key_);
}

std::shared_ptr<const CellKey> CellKey::Generate() {
  std::shared_ptr<CellKey> k(new CellKey());
  Random(k->key_, kKeyBytes);
  uint8_t digest[32];
  std::string in(kFingerprintLabel);
  in.append(reinterpret_cast<const char*>(k->key_), kKeyBytes);
  Must(EVP_Digest(in.data(), in.size(), digest, nullptr, EVP_sha256(), nullptr) == 1, "SHA-256");
  OPENSSL_cleanse(in.data(), in.size());
  std::memcpy(k->fingerprint_.data(), digest, kIdBytes);
  return k;
}

Result<std::shared_ptr<const CellKey>> CellKey::FromBytes(std::string_view bytes) {
  if (bytes.size() != kKeyBytes) {
    return Error(Code::kInvalidArgument, "a cell key is 32 bytes, not " + std::to_string(bytes.size()));
  }
  std::shared_ptr<CellKey> k(new CellKey());
  std::memcpy(k->key_, bytes.data(), kKeyBytes);
  uint8_t digest[32];
  std::string in(kFingerprintLabel);
  in.append(bytes);
  Must(EVP_Digest(in.data(), in.size(), digest, nullptr, EVP_sha256(), nullptr) == 1, "SHA-256");
  OPENSSL_cleanse(in.data(), in.size());
  std::memcpy(k->fingerprint_.data(), digest, kIdBytes);
  return std::shared_ptr<const CellKey>(std::move(k));
}

std::string_view CellKey::bytes() const {
  return {reinterpret_cast<const char*>(key_), kKeyBytes};
}

std::array<uint8_t, 32> CellKey::ContentKey(const Id& file_id) const {
  std::array<uint8_t, 32> out;
  Hkdf(bytes(), kContentLabel, file_id, out.data(), out.size());
  return out;
}

std::array<uint8_t, 64> CellKey::NameKey(const Id& dir_id) const {
  std::array<uint8_t, 64> out;
  Hkdf(bytes(), kNameLabel, dir_id, out.data(), out.size());
  return out;
}

// ---- Attributes ----

std::string EncodeAttr(Kind kind, const Id& id) {
  std::string out;
  out.push_back(static_cast<char>(kind));
  out.push_back(static_cast<char>(kVersion));
  out.append(reinterpret_cast<const char*>(id.data()), id.size());
  return out;
}

Result<std::optional<Attr>> DecodeAttr(std::string_view attr) {
  if (attr.empty()) return std::optional<Attr>();
  if (attr.size() != kAttrBytes || static_cast<uint8_t>(attr[1]) != kVersion) {
    return Damaged("not a client attribute of an encrypted vnode (" + std::to_string(attr.size()) + " bytes)");
  }
  Kind kind = static_cast<Kind>(attr[0]);
  if (kind != Kind::kFile && kind != Kind::kDirectory && kind != Kind::kSymlink) {
    return Damaged("unknown kind in client attribute");
  }
  Attr a{kind, {}};
  std::memcpy(a.id.data(), attr.data() + 2, kIdBytes);
  return std::optional<Attr>(a);
}

// ---- Names and targets ----

std::string SealName(const CellKey& key, const Id& dir_id, std::string_view name) {
  auto nk = key.NameKey(dir_id);
  std::string out = SivSeal(nk, dir_id, name);
  OPENSSL_cleanse(nk.data(), nk.size());
  return out;
}

Result<std::string> OpenName(const CellKey& key, const Id& dir_id, std::string_view sealed) {
  auto nk = key.NameKey(dir_id);
  auto out = SivOpen(nk, dir_id, sealed);
  OPENSSL_cleanse(nk.data(), nk.size());
  if (!out) return Damaged("a name that does not decrypt with this directory's key");
  return std::move(*out);
}

std::string SealTarget(const CellKey& key, const Id& link_id, std::string_view target) {
  auto ck = key.ContentKey(link_id);
  std::string aad(reinterpret_cast<const char*>(link_id.data()), link_id.size());
  aad += "symlink";
  std::string out(1, static_cast<char>(kVersion));
  uint8_t nonce[kNonceBytes];
  Random(nonce, sizeof nonce);
  out.append(reinterpret_cast<const char*>(nonce), sizeof nonce);
  Ctx ctx(EVP_CIPHER_CTX_new());
  GcmSeal(ctx.get(), ck.data(), nonce, aad, target, &out);
  OPENSSL_cleanse(ck.data(), ck.size());
  return out;
}

Result<std::string> OpenTarget(const CellKey& key, const Id& link_id, std::string_view sealed) {
  if (sealed.size() < 1 + kBlockOverhead || static_cast<uint8_t>(sealed[0]) != kVersion) {
    return Damaged("damaged symlink target");
  }
  auto ck = key.ContentKey(link_id);
  std::string aad(reinterpret_cast<const char*>(link_id.data()), link_id.size());
  aad += "symlink";
  std::string out;
  Ctx ctx(EVP_CIPHER_CTX_new());
  bool ok = GcmOpen(ctx.get(), ck.data(), U8(sealed.substr(1, kNonceBytes)), aad,
                    sealed.substr(1 + kNonceBytes), &out);
  OPENSSL_cleanse(ck.data(), ck.size());
  if (!ok) return Damaged("symlink target fails to authenticate");
  return out;
}

// ---- Sizes ----

uint64_t CipherSize(uint64_t plain) {
  uint64_t blocks = plain == 0 ? 1 : (plain + kBlockBytes - 1) / kBlockBytes;
  return kHeaderBytes + kBlockOverhead * blocks + plain;
}

Result<uint64_t> PlainSize(uint64_t cipher) {
  if (cipher < kHeaderBytes + kBlockOverhead) {
    return Damaged("stored size " + std::to_string(cipher) + " is shorter than an empty file");
  }
  uint64_t rest = cipher - kHeaderBytes;
  uint64_t blocks = (rest + kSealedBlockBytes - 1) / kSealedBlockBytes;
  uint64_t last = rest - kSealedBlockBytes * (blocks - 1);
  if (last < kBlockOverhead || (blocks > 1 && last == kBlockOverhead)) {
    return Damaged("stored size " + std::to_string(cipher) + " cuts a block");
  }
  return (blocks - 1) * kBlockBytes + (last - kBlockOverhead);
}

// ---- FileCipher ----

FileCipher::FileCipher(const CellKey& key, const Id& file_id)
    : file_id_(file_id), key_id_(key.fingerprint()) {
  auto ck = key.ContentKey(file_id);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  Must(ctx != nullptr, "EVP_CIPHER_CTX_new");
  // The key is set once; later inits pass only a nonce.
  Must(EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, ck.data(), nullptr, 1) == 1, "GCM key");
  OPENSSL_cleanse(ck.data(), ck.size());
  aead_ = ctx;
}

FileCipher::~FileCipher() { EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(aead_)); }

std::string FileCipher::Header() const {
  std::string h(kMagic, sizeof kMagic);
  h.push_back(static_cast<char>(kVersion));
  h.append(3, '\0');
  h.append(reinterpret_cast<const char*>(key_id_.data()), key_id_.size());
  h.append(reinterpret_cast<const char*>(file_id_.data()), file_id_.size());
  uint8_t nonce[kNonceBytes];
  Random(nonce, sizeof nonce);
  std::string aad = h;
  h.append(reinterpret_cast<const char*>(nonce), sizeof nonce);
  GcmSeal(static_cast<EVP_CIPHER_CTX*>(aead_), nullptr, nonce, aad, {}, &h);
  return h;
}

Status FileCipher::CheckHeader(std::string_view header) const {
  if (header.size() < kHeaderBytes || std::memcmp(header.data(), kMagic, 4) != 0 ||
      static_cast<uint8_t>(header[4]) != kVersion || header[5] || header[6] || header[7]) {
    return Damaged("not an encrypted file header");
  }
  if (std::memcmp(header.data() + 8, key_id_.data(), kIdBytes) != 0) {
    // Another key's file, or ours with its key ID altered (EIO, not EACCES): only ours
    // authenticates once our key ID is put back.
    std::string ours(header.substr(0, 40)), none;
    std::memcpy(ours.data() + 8, key_id_.data(), kIdBytes);
    if (GcmOpen(static_cast<EVP_CIPHER_CTX*>(aead_), nullptr, U8(header.substr(40, kNonceBytes)),
                ours, header.substr(40 + kNonceBytes, kTagBytes), &none)) {
      return Damaged("the header's key ID was altered");
    }
    return Error(Code::kPermissionDenied,
                 "written with key " + Hex(reinterpret_cast<const uint8_t*>(header.data()) + 8, kIdBytes) +
                     ", not with key " + Hex(key_id_));
  }
  if (std::memcmp(header.data() + 24, file_id_.data(), kIdBytes) != 0) {
    return Damaged("the header belongs to another file");
  }
  std::string none;
  if (!GcmOpen(static_cast<EVP_CIPHER_CTX*>(aead_), nullptr, U8(header.substr(40, kNonceBytes)),
               header.substr(0, 40), header.substr(40 + kNonceBytes, kTagBytes), &none)) {
    return Damaged("file header fails to authenticate");
  }
  return Status::Ok();
}

void FileCipher::SealBlock(uint64_t block, std::string_view plain, bool final, std::string* out) const {
  uint8_t nonce[kNonceBytes];
  Random(nonce, sizeof nonce);
  SealBlockWithNonce(block, plain, final, nonce, out);
}

void FileCipher::SealBlockWithNonce(uint64_t block, std::string_view plain, bool final,
                                    const uint8_t* nonce, std::string* out) const {
  uint8_t aad[kIdBytes + 9];
  std::memcpy(aad, file_id_.data(), kIdBytes);
  PutU64(block, aad + kIdBytes);
  aad[kIdBytes + 8] = final ? 1 : 0;
  out->append(reinterpret_cast<const char*>(nonce), kNonceBytes);
  GcmSeal(static_cast<EVP_CIPHER_CTX*>(aead_), nullptr, nonce,
          std::string_view(reinterpret_cast<const char*>(aad), sizeof aad), plain, out);
}

Status FileCipher::OpenBlock(uint64_t block, std::string_view sealed, bool final, std::string* out) const {
  if (sealed.size() < kBlockOverhead || sealed.size() > kSealedBlockBytes) {
    return Damaged("block " + std::to_string(block) + " has a wrong length");
  }
  uint8_t aad[kIdBytes + 9];
  std::memcpy(aad, file_id_.data(), kIdBytes);
  PutU64(block, aad + kIdBytes);
  aad[kIdBytes + 8] = final ? 1 : 0;
  if (!GcmOpen(static_cast<EVP_CIPHER_CTX*>(aead_), nullptr, U8(sealed.substr(0, kNonceBytes)),
               std::string_view(reinterpret_cast<const char*>(aad), sizeof aad),
               sealed.substr(kNonceBytes), out)) {
    return Damaged("block " + std::to_string(block) + " fails to authenticate");
  }
  return Status::Ok();
}

uint64_t FileCipher::ChunkBegin(uint64_t index, uint64_t chunk_bytes) {
  if (index == 0) return 0;
  return kHeaderBytes + index * (chunk_bytes / kBlockBytes) * kSealedBlockBytes;
}

uint64_t FileCipher::ChunkEnd(uint64_t index, uint64_t chunk_bytes) {
  return kHeaderBytes + (index + 1) * (chunk_bytes / kBlockBytes) * kSealedBlockBytes;
}

Result<std::string> FileCipher::OpenChunk(uint64_t index, uint64_t chunk_bytes,
                                          std::string_view sealed, uint64_t plain_size) const {
  return OpenBlocks(index, chunk_bytes, sealed, plain_size, 0, ~0ull);
}

Result<std::string> FileCipher::OpenBlocks(uint64_t index, uint64_t chunk_bytes,
                                           std::string_view sealed, uint64_t plain_size,
                                           uint64_t first_wanted, uint64_t last_wanted) const {
  uint64_t blocks_per_chunk = chunk_bytes / kBlockBytes;
  uint64_t total_blocks = plain_size == 0 ? 1 : (plain_size + kBlockBytes - 1) / kBlockBytes;
  uint64_t first = index * blocks_per_chunk;
  if (first >= total_blocks) {  // past the end: nothing may be there
    if (!sealed.empty()) return Damaged("bytes past the end of the file");
    return std::string();
  }
  uint64_t last = std::min(total_blocks, first + blocks_per_chunk);  // exclusive
  // The bytes this chunk must have, given the size.
  uint64_t expect = std::min(ChunkEnd(index, chunk_bytes), CipherSize(plain_size)) - ChunkBegin(index, chunk_bytes);
  if (sealed.size() != expect) {
    return Damaged("chunk " + std::to_string(index) + " has " + std::to_string(sealed.size()) +
                   " bytes, not " + std::to_string(expect));
  }
  size_t at = 0;
  if (index == 0) {
    if (Status s = CheckHeader(sealed.substr(0, kHeaderBytes)); !s.ok()) return s;
    at = kHeaderBytes;
  }
  // Only the blocks asked for: [first + first_wanted, first + last_wanted], within the chunk.
  uint64_t from = first + std::min(first_wanted, last - first);
  uint64_t to = last_wanted >= last - first ? last : first + last_wanted + 1;
  at += (from - first) * kSealedBlockBytes;
  std::string out;
  out.reserve((to - from) * kBlockBytes);
  for (uint64_t b = from; b < to; ++b) {
    size_t n = std::min<size_t>(kSealedBlockBytes, sealed.size() - at);
    if (Status s = OpenBlock(b, sealed.substr(at, n), b + 1 == total_blocks, &out); !s.ok()) return s;
    at += n;
  }
  return out;
}

std::string FileCipher::SealChunk(uint64_t index, uint64_t chunk_bytes, std::string_view plain,
                                  uint64_t plain_size) const {
  uint64_t blocks_per_chunk = chunk_bytes / kBlockBytes;
  uint64_t total_blocks = plain_size == 0 ? 1 : (plain_size + kBlockBytes - 1) / kBlockBytes;
  uint64_t first = index * blocks_per_chunk;
  std::string out;
  out.reserve(plain.size() + (plain.size() / kBlockBytes + 2) * kBlockOverhead + kHeaderBytes);
  if (index == 0) out.append(Header());
  if (first >= total_blocks) return out;
  uint64_t last = std::min(total_blocks, first + blocks_per_chunk);
  // Every block's random nonce from one call (one RAND_bytes per block costs more).
  std::vector<uint8_t> nonces((last - first) * kNonceBytes);
  Random(nonces.data(), nonces.size());
  size_t at = 0;
  for (uint64_t b = first; b < last; ++b) {
    size_t n = std::min<size_t>(kBlockBytes, plain.size() - std::min(plain.size(), at));
    SealBlockWithNonce(b, plain.substr(std::min(plain.size(), at), n), b + 1 == total_blocks,
                       nonces.data() + (b - first) * kNonceBytes, &out);
    at += n;
  }
  return out;
}

// ---- Key files ----

namespace {

std::array<uint8_t, 32> Scrypt(std::string_view pass, const std::array<uint8_t, 16>& salt,
                               int log2_n, int r, int p, bool* ok) {
  std::array<uint8_t, 32> out{};
  uint64_t n = 1ull << log2_n;
  // maxmem: 128 * N * r * p plus slack.
  uint64_t maxmem = 128ull * n * static_cast<uint64_t>(r) * static_cast<uint64_t>(p) + (64ull << 20);
  *ok = EVP_PBE_scrypt(pass.data(), pass.size(), salt.data(), salt.size(), n,
                       static_cast<uint64_t>(r), static_cast<uint64_t>(p), maxmem, out.data(),
                       out.size()) == 1;
  return out;
}

std::string WrapAad(const std::string& cell, const KeyId& fp) {
  std::string aad(kWrapLabel);
  aad += cell;
  aad.push_back('\0');
  aad.append(reinterpret_cast<const char*>(fp.data()), fp.size());
  return aad;
}

}  // namespace

Result<KeyFile> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return Error(Code::kNotFound, "no key file " + path);
    return Error(Code::kPermissionDenied, "cannot read key file " + path + ": " + std::strerror(errno));
  }
  toml::table t;
  try {
    t = toml::parse(in, path);
  } catch (const toml::parse_error& e) {
    return Error(Code::kInvalidArgument, "key file " + path + ": " + std::string(e.description()));
  }
  auto bad = [&](const std::string& field) {
    return Error(Code::kInvalidArgument, "key file " + path + ": missing or bad '" + field + "'");
  };
  KeyFile f;
  auto cell = t["cell"].value<std::string>();
  if (!cell || cell->empty()) return bad("cell");
  f.cell = *cell;
  auto fp = FromHex<16>(t["fingerprint"].value_or(std::string()));
  if (!fp.ok()) return bad("fingerprint");
  f.fingerprint = *fp;
  std::string format = t["format"].value_or(std::string());
  if (format == "raw") {
    auto key = FromHex<32>(t["key"].value_or(std::string()));
    if (!key.ok()) return bad("key");
    f.key.assign(reinterpret_cast<const char*>(key->data()), key->size());
    OPENSSL_cleanse(key->data(), key->size());
  } else if (format == "scrypt") {
    f.wrapped = true;
    f.scrypt_log2_n = static_cast<int>(t["scrypt_log2_n"].value_or(int64_t{0}));
    f.scrypt_r = static_cast<int>(t["scrypt_r"].value_or(int64_t{0}));
    f.scrypt_p = static_cast<int>(t["scrypt_p"].value_or(int64_t{0}));
    if (f.scrypt_log2_n < 10 || f.scrypt_log2_n > 24) return bad("scrypt_log2_n");
    if (f.scrypt_r < 1 || f.scrypt_r > 64) return bad("scrypt_r");
    if (f.scrypt_p < 1 || f.scrypt_p > 16) return bad("scrypt_p");
    auto salt = FromHex<16>(t["salt"].value_or(std::string()));
    if (!salt.ok()) return bad("salt");
    f.salt = *salt;
    auto nonce = FromHex<12>(t["nonce"].value_or(std::string()));
    if (!nonce.ok()) return bad("nonce");
    f.nonce = *nonce;
    auto wrapped = FromHex<48>(t["wrapped"].value_or(std::string()));
    if (!wrapped.ok()) return bad("wrapped");
    f.wrapped_key.assign(reinterpret_cast<const char*>(wrapped->data()), wrapped->size());
  } else {
    return bad("format");
  }
  return f;
}

Status WriteKeyFile(const std::string& path, const KeyFile& f, bool overwrite) {
  if (!overwrite && access(path.c_str(), F_OK) == 0) {
    return Error(Code::kAlreadyExists, "key file " + path + " exists");
  }
  std::ostringstream o;
  o << "# Heka cell key (docs/formats/encryption.md). Keep it secret; keep an escrow copy.\n";
  o << "cell = " << toml::value<std::string>(f.cell) << "\n";
  o << "fingerprint = \"" << Hex(f.fingerprint) << "\"\n";
  if (!f.wrapped) {
    o << "format = \"raw\"\n";
    o << "key = \"" << Hex(reinterpret_cast<const uint8_t*>(f.key.data()), f.key.size()) << "\"\n";
  } else {
    o << "format = \"scrypt\"\n";
    o << "scrypt_log2_n = " << f.scrypt_log2_n << "\nscrypt_r = " << f.scrypt_r
      << "\nscrypt_p = " << f.scrypt_p << "\n";
    o << "salt = \"" << Hex(f.salt) << "\"\n";
    o << "nonce = \"" << Hex(f.nonce) << "\"\n";
    o << "wrapped = \"" << Hex(reinterpret_cast<const uint8_t*>(f.wrapped_key.data()), f.wrapped_key.size())
      << "\"\n";
  }
  std::string text = o.str();
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // the remains of an interrupted write
  // O_EXCL | O_NOFOLLOW: never through a symlink someone put there.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Error(Code::kPermissionDenied, "cannot write " + tmp + ": " + std::strerror(errno));
  fchmod(fd, 0600);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  OPENSSL_cleanse(text.data(), text.size());
  // Without `overwrite`, a file that appeared meanwhile is not replaced either.
  if (ok && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(),
                        overwrite ? 0 : RENAME_NOREPLACE) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    if (err == EEXIST) return Error(Code::kAlreadyExists, "key file " + path + " exists");
    return Error(Code::kIoError, "cannot write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

KeyFile RawKeyFile(const std::string& cell, const CellKey& key) {
  KeyFile f;
  f.cell = cell;
  f.fingerprint = key.fingerprint();
  f.key.assign(key.bytes());
  return f;
}

KeyFile WrapKey(const std::string& cell, const CellKey& key, std::string_view passphrase,
                int scrypt_log2_n) {
  KeyFile f;
  f.cell = cell;
  f.fingerprint = key.fingerprint();
  f.wrapped = true;
  f.scrypt_log2_n = scrypt_log2_n;
  Random(f.salt.data(), f.salt.size());
  Random(f.nonce.data(), f.nonce.size());
  bool ok = false;
  auto kek = Scrypt(passphrase, f.salt, f.scrypt_log2_n, f.scrypt_r, f.scrypt_p, &ok);
  Must(ok, "scrypt");
  Ctx ctx(EVP_CIPHER_CTX_new());
  GcmSeal(ctx.get(), kek.data(), f.nonce.data(), WrapAad(cell, f.fingerprint), key.bytes(), &f.wrapped_key);
  OPENSSL_cleanse(kek.data(), kek.size());
  return f;
}

Result<std::shared_ptr<const CellKey>> OpenKeyFile(const KeyFile& f, std::string_view passphrase) {
  Result<std::shared_ptr<const CellKey>> key = Error(Code::kInternal, "");
  if (!f.wrapped) {
    key = CellKey::FromBytes(f.key);
    if (!key.ok()) return key.status();
  } else {
    bool ok = false;
    auto kek = Scrypt(passphrase, f.salt, f.scrypt_log2_n, f.scrypt_r, f.scrypt_p, &ok);
    if (!ok) return Error(Code::kInternal, "scrypt failed (parameters too large for this machine?)");
    std::string raw;
    Ctx ctx(EVP_CIPHER_CTX_new());
    bool opened = GcmOpen(ctx.get(), kek.data(), f.nonce.data(), WrapAad(f.cell, f.fingerprint),
                          f.wrapped_key, &raw);
    OPENSSL_cleanse(kek.data(), kek.size());
    if (!opened) return Error(Code::kPermissionDenied, "wrong passphrase for the key of cell " + f.cell);
    key = CellKey::FromBytes(raw);
    OPENSSL_cleanse(raw.data(), raw.size());
    if (!key.ok()) return key.status();
  }
  if ((*key)->fingerprint() != f.fingerprint) {
    return Error(Code::kIoError, "the key in the file has fingerprint " + Hex((*key)->fingerprint()) +
                                     ", not the " + Hex(f.fingerprint) + " the file names");
  }
  return key;
}

}  // namespace heka::cm::crypto

// Client-side encryption (cachemgr/crypto): round trips, sizes, tampering, names, targets, key
// files, and known-answer vectors produced by tests/integration/encryption_reader.py, an
// independent implementation written from docs/formats/encryption.md alone.
#include "cachemgr/crypto/crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace heka::cm::crypto {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string HexOf(std::string_view s) { return Hex(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

template <size_t N>
std::array<uint8_t, N> Arr(std::string_view hex) {
  auto r = FromHex<N>(hex);
  EXPECT_TRUE(r.ok()) << hex;
  return r.ok() ? *r : std::array<uint8_t, N>{};
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::shared_ptr<const CellKey> KeyOf(std::string_view hex) {
  auto k = CellKey::FromBytes(Unhex(hex));
  EXPECT_TRUE(k.ok());
  return *k;
}

uint64_t Chunks(uint64_t plain_size, uint64_t chunk_bytes) {
  return plain_size == 0 ? 1 : (plain_size + chunk_bytes - 1) / chunk_bytes;
}

// The whole stored file for `plain`, written chunk by chunk as the cache manager does.
std::string SealFile(const FileCipher& c, std::string_view plain, uint64_t chunk_bytes) {
  std::string out;
  for (uint64_t i = 0; i < Chunks(plain.size(), chunk_bytes); ++i) {
    std::string_view p = plain.substr(std::min<uint64_t>(plain.size(), i * chunk_bytes), chunk_bytes);
    std::string s = c.SealChunk(i, chunk_bytes, p, plain.size());
    EXPECT_EQ(out.size(), FileCipher::ChunkBegin(i, chunk_bytes));
    out += s;
  }
  EXPECT_EQ(out.size(), CipherSize(plain.size()));
  return out;
}

// Reads the stored file chunk by chunk, with the plaintext size `plain_size`.
Result<std::string> OpenFileAs(const FileCipher& c, std::string_view stored, uint64_t chunk_bytes,
                               uint64_t plain_size) {
  std::string out;
  for (uint64_t i = 0; i < Chunks(plain_size, chunk_bytes); ++i) {
    uint64_t begin = FileCipher::ChunkBegin(i, chunk_bytes);
    uint64_t end = std::min<uint64_t>(FileCipher::ChunkEnd(i, chunk_bytes), stored.size());
    if (begin > end) return Error(Code::kIoError, "chunk beyond the end (test)");
    auto r = c.OpenChunk(i, chunk_bytes, stored.substr(begin, end - begin), plain_size);
    if (!r.ok()) return r.status();
    out += *r;
  }
  return out;
}

// Reads the stored file as a client does: the plaintext size from the stored size, then chunks.
Result<std::string> OpenFile(const FileCipher& c, std::string_view stored, uint64_t chunk_bytes) {
  auto size = PlainSize(stored.size());
  if (!size.ok()) return size.status();
  return OpenFileAs(c, stored, chunk_bytes, *size);
}

// ---- Sizes ----

TEST(CryptoSizeTest, CipherSize) {
  EXPECT_EQ(CipherSize(0), 96u);
  EXPECT_EQ(CipherSize(1), 97u);
  EXPECT_EQ(CipherSize(4095), 68u + 28 + 4095);
  EXPECT_EQ(CipherSize(4096), 68u + 4124);
  EXPECT_EQ(CipherSize(4097), 68u + 4124 + 29);
  EXPECT_EQ(CipherSize(64 * kKiB), 68u + 16 * 4124);
  EXPECT_EQ(CipherSize(5 * kMiB + 1), 68u + 1281 * 28 + 5 * kMiB + 1);
}

TEST(CryptoSizeTest, PlainSizeInvertsCipherSize) {
  for (uint64_t p : std::vector<uint64_t>{0, 1, 27, 28, 29, 4095, 4096, 4097, 8192, 8193,
                     64 * kKiB, kMiB + 3, (uint64_t{1} << 40) + 5}) {
    auto s = PlainSize(CipherSize(p));
    ASSERT_TRUE(s.ok()) << p;
    EXPECT_EQ(*s, p);
  }
}

TEST(CryptoSizeTest, InvalidStoredSizes) {
  for (uint64_t s : std::vector<uint64_t>{0, 1, 68, 95}) {
    EXPECT_EQ(PlainSize(s).status().code(), Code::kIoError) << s;  // < 96
  }
  // Cut inside a block: the last block is shorter than its 28 bytes of overhead.
  EXPECT_EQ(PlainSize(68 + 4124 + 1).status().code(), Code::kIoError);
  EXPECT_EQ(PlainSize(68 + 4124 + 27).status().code(), Code::kIoError);
  EXPECT_EQ(PlainSize(68 + 2 * 4124 + 10).status().code(), Code::kIoError);
  // An empty block after a full one: only a file's only block may be empty.
  EXPECT_EQ(PlainSize(68 + 4124 + 28).status().code(), Code::kIoError);
  EXPECT_EQ(PlainSize(68 + 3 * 4124 + 28).status().code(), Code::kIoError);
  // Cut at a block boundary: a valid size (the final flag catches it, see the tamper tests).
  EXPECT_EQ(*PlainSize(68 + 2 * 4124), 8192u);
  // Every stored size up to four blocks is either invalid or the size of exactly one plaintext.
  int valid = 0;
  for (uint64_t s = 0; s < 68 + 4 * 4124 + 100; ++s) {
    auto p = PlainSize(s);
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), Code::kIoError);
      continue;
    }
    ++valid;
    EXPECT_EQ(CipherSize(*p), s);
  }
  // Stored sizes below 68 + 4 * 4124 + 100 hold the plaintexts 0 .. 4 * 4096 + 71.
  EXPECT_EQ(valid, 4 * 4096 + 72);
}

TEST(CryptoSizeTest, ChunkRanges) {
  for (uint64_t cb : {4 * kKiB, 64 * kKiB, kMiB}) {
    uint64_t k = cb / 4096;
    EXPECT_EQ(FileCipher::ChunkBegin(0, cb), 0u);
    EXPECT_EQ(FileCipher::ChunkEnd(0, cb), 68 + k * 4124);
    for (uint64_t i = 0; i < 5; ++i) {
      EXPECT_EQ(FileCipher::ChunkEnd(i, cb), FileCipher::ChunkBegin(i + 1, cb));
      EXPECT_EQ(FileCipher::ChunkBegin(i + 1, cb), 68 + (i + 1) * k * 4124);
    }
  }
}

// ---- File contents ----

class CryptoFileTest : public ::testing::Test {
 protected:
  std::shared_ptr<const CellKey> key_ = CellKey::Generate();
  Id id_ = RandomId();
  FileCipher cipher_{*key_, id_};
};

// A small read opens only the blocks it needs: the same bytes as opening the whole chunk,
// the same checks (a damaged block among those asked for fails).
TEST(CryptoBlocksTest, OpenBlocksIsAPartOfOpenChunk) {
  auto key = CellKey::Generate();
  FileCipher c(*key, RandomId());
  const uint64_t chunk = 64 << 10;  // 16 blocks
  std::string plain = RandomBytes(3 * chunk + 5000, 7);
  std::string stored = SealFile(c, plain, chunk);
  for (uint64_t index : {0, 1, 3}) {
    uint64_t begin = FileCipher::ChunkBegin(index, chunk);
    uint64_t end = std::min<uint64_t>(FileCipher::ChunkEnd(index, chunk), stored.size());
    std::string_view sealed = std::string_view(stored).substr(begin, end - begin);
    auto whole = c.OpenChunk(index, chunk, sealed, plain.size());
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    for (auto [first, last] : {std::pair<uint64_t, uint64_t>{0, 0}, {2, 5}, {15, 15}, {1, 99}}) {
      auto part = c.OpenBlocks(index, chunk, sealed, plain.size(), first, last);
      ASSERT_TRUE(part.ok()) << part.status().ToString();
      std::string want = first * kBlockBytes < whole->size()
                             ? whole->substr(first * kBlockBytes, (last - first + 1) * kBlockBytes)
                             : std::string();
      EXPECT_EQ(*part, want) << "chunk " << index << " blocks " << first << "-" << last;
    }
  }
  std::string damaged(stored.substr(0, FileCipher::ChunkEnd(0, chunk)));
  damaged[kHeaderBytes + 3 * kSealedBlockBytes + 40] ^= 1;  // block 3
  EXPECT_TRUE(c.OpenBlocks(0, chunk, damaged, plain.size(), 0, 2).ok());
  EXPECT_EQ(c.OpenBlocks(0, chunk, damaged, plain.size(), 3, 3).status().code(), Code::kIoError);
  EXPECT_EQ(c.OpenBlocks(0, chunk, damaged.substr(0, damaged.size() - 1), plain.size(), 0, 0)
                .status().code(),
            Code::kIoError);  // a chunk of the wrong length, whatever is asked of it
}

TEST_F(CryptoFileTest, RoundTrips) {
  for (uint64_t cb : {64 * kKiB, kMiB}) {
    for (uint64_t size : std::vector<uint64_t>{0, 1, 4095, 4096, 4097, 64 * kKiB - 1, 64 * kKiB,
                          64 * kKiB + 1, 3 * 64 * kKiB + 4100, kMiB, 2 * kMiB + 4096 * 3 + 17}) {
      std::string plain = RandomBytes(size, static_cast<uint32_t>(size));
      std::string stored = SealFile(cipher_, plain, cb);
      auto back = OpenFile(cipher_, stored, cb);
      ASSERT_TRUE(back.ok()) << size << " " << cb << ": " << back.status().message();
      EXPECT_TRUE(*back == plain) << size << " " << cb;
      // A new FileCipher for the same key and ID (a later open) reads it too.
      FileCipher again(*key_, id_);
      EXPECT_TRUE(OpenFile(again, stored, cb).ok());
    }
  }
}

TEST_F(CryptoFileTest, SealingTwiceGivesDifferentBytes) {
  std::string plain(10000, 'x');
  EXPECT_NE(SealFile(cipher_, plain, 64 * kKiB), SealFile(cipher_, plain, 64 * kKiB));
  EXPECT_NE(cipher_.Header(), cipher_.Header());
  // Any header of the file's own (a re-sealed one) is valid: they are interchangeable.
  EXPECT_TRUE(cipher_.CheckHeader(cipher_.Header()).ok());
}

TEST_F(CryptoFileTest, BlocksAlone) {
  std::string sealed;
  cipher_.SealBlock(7, "hello", true, &sealed);
  ASSERT_EQ(sealed.size(), 5u + 28);
  std::string out;
  ASSERT_TRUE(cipher_.OpenBlock(7, sealed, true, &out).ok());
  EXPECT_EQ(out, "hello");
  out.clear();
  EXPECT_EQ(cipher_.OpenBlock(7, sealed, false, &out).code(), Code::kIoError);  // final flag
  EXPECT_EQ(cipher_.OpenBlock(6, sealed, true, &out).code(), Code::kIoError);   // position
  EXPECT_EQ(cipher_.OpenBlock(7, sealed.substr(0, 27), true, &out).code(), Code::kIoError);
  EXPECT_EQ(cipher_.OpenBlock(7, std::string(4125, 'a'), true, &out).code(), Code::kIoError);
  EXPECT_TRUE(out.empty());  // nothing of a failed block is appended
}

// A stored file of 4 blocks (3 full, 100 bytes) read with every chunk size of interest.
class CryptoTamperTest : public CryptoFileTest {
 protected:
  void SetUp() override {
    plain_ = RandomBytes(3 * 4096 + 100, 1);
    stored_ = SealFile(cipher_, plain_, 64 * kKiB);
    ASSERT_TRUE(OpenFile(cipher_, stored_, 64 * kKiB).ok());
  }
  static size_t BlockAt(size_t b) { return 68 + b * 4124; }

  // The stored file `s` fails to read with kIoError, whatever the chunk size.
  void ExpectIoError(const std::string& s, const std::string& what) {
    for (uint64_t cb : {4 * kKiB, 8 * kKiB, 64 * kKiB}) {
      auto r = OpenFile(cipher_, s, cb);
      EXPECT_FALSE(r.ok()) << what << ", chunk " << cb;
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), Code::kIoError) << what << ": " << r.status().message();
      }
    }
  }

  std::string plain_, stored_;
};

TEST_F(CryptoTamperTest, FlippedBits) {
  // Every field of the header, then nonce, ciphertext and tag of a middle and of the last block.
  std::vector<size_t> offsets = {0, 3, 4, 5, 7, 8, 23, 24, 39, 40, 51, 52, 67};
  for (size_t b : {1, 3}) {
    size_t end = b == 3 ? stored_.size() : BlockAt(b + 1);
    for (size_t o : {BlockAt(b), BlockAt(b) + 11, BlockAt(b) + 12, BlockAt(b) + 50, end - 17, end - 16, end - 1})
      offsets.push_back(o);
  }
  for (size_t o : offsets) {
    for (int bit : {0, 7}) {
      std::string s = stored_;
      s[o] = static_cast<char>(s[o] ^ (1 << bit));
      ExpectIoError(s, "bit " + std::to_string(bit) + " of byte " + std::to_string(o));
    }
  }
}

TEST_F(CryptoTamperTest, BlocksSwappedWithinTheFile) {
  std::string s = stored_;
  s.replace(BlockAt(0), 4124, stored_, BlockAt(1), 4124);
  s.replace(BlockAt(1), 4124, stored_, BlockAt(0), 4124);
  ExpectIoError(s, "blocks 0 and 1 swapped");
  std::string t = stored_;
  t.replace(BlockAt(2), 4124, stored_, BlockAt(1), 4124);
  ExpectIoError(t, "block 1 copied over block 2");
}

TEST_F(CryptoTamperTest, BlockFromAnotherFile) {
  FileCipher other(*key_, RandomId());
  std::string theirs = SealFile(other, plain_, 64 * kKiB);  // the same plaintext, even
  for (size_t b : {0, 1}) {
    std::string s = stored_;
    s.replace(BlockAt(b), 4124, theirs, BlockAt(b), 4124);
    ExpectIoError(s, "block " + std::to_string(b) + " of another file");
  }
  std::string s = stored_;
  s.replace(BlockAt(3), std::string::npos, theirs, BlockAt(3));
  ExpectIoError(s, "last block of another file");
}

TEST_F(CryptoTamperTest, HeaderOfAnotherFile) {
  FileCipher other(*key_, RandomId());
  std::string s = stored_;
  s.replace(0, 68, other.Header());
  ExpectIoError(s, "header of another file");
  EXPECT_EQ(cipher_.CheckHeader(other.Header()).code(), Code::kIoError);
}

TEST_F(CryptoTamperTest, CutAtABlockBoundary) {
  // Dropping the last block leaves a valid size, so only the final flag can catch it.
  std::string s = stored_.substr(0, BlockAt(3));
  ASSERT_TRUE(PlainSize(s.size()).ok());
  ExpectIoError(s, "last block dropped");
  // Of a file of whole blocks too, and cut back to a single block.
  std::string whole = SealFile(cipher_, plain_.substr(0, 3 * 4096), 64 * kKiB);
  ExpectIoError(whole.substr(0, BlockAt(2)), "last full block dropped");
  ExpectIoError(whole.substr(0, BlockAt(1)), "cut to the first block");
  // OpenChunk itself, given the smaller plaintext size.
  auto r = cipher_.OpenChunk(0, 64 * kKiB, s, 3 * 4096);
  EXPECT_EQ(r.status().code(), Code::kIoError);
  // A file of two chunks cut at the chunk boundary.
  std::string two = SealFile(cipher_, RandomBytes(64 * kKiB + 5000, 2), 64 * kKiB);
  ExpectIoError(two.substr(0, FileCipher::ChunkEnd(0, 64 * kKiB)), "second chunk dropped");
  // Cut to the header and one empty block is not possible: that is another file's size
  // (an empty file) whose block was sealed at another length, and fails too.
  ExpectIoError(stored_.substr(0, 68) + stored_.substr(BlockAt(0), 28), "cut to 96 bytes");
}

TEST_F(CryptoTamperTest, CutInsideABlock) {
  for (size_t cut : {BlockAt(3) + 27, BlockAt(3) + 28, BlockAt(3) + 29, BlockAt(3) + 99,
                     BlockAt(2) + 1, BlockAt(2) + 4000, BlockAt(1) - 1, size_t{96}, size_t{95},
                     size_t{67}, size_t{0}}) {
    ExpectIoError(stored_.substr(0, cut), "cut at " + std::to_string(cut));
  }
  // OpenChunk with a size that does not match the bytes it is given.
  EXPECT_EQ(cipher_.OpenChunk(0, 64 * kKiB, stored_.substr(0, stored_.size() - 1), plain_.size())
                .status().code(), Code::kIoError);
  EXPECT_EQ(cipher_.OpenChunk(0, 64 * kKiB, stored_.substr(0, stored_.size() - 1), plain_.size() - 1)
                .status().code(), Code::kIoError);
}

TEST_F(CryptoTamperTest, ZeroedBlocks) {
  for (size_t b : {0, 1, 3}) {
    std::string s = stored_;
    size_t end = b == 3 ? s.size() : BlockAt(b + 1);
    std::fill(s.begin() + static_cast<ptrdiff_t>(BlockAt(b)), s.begin() + static_cast<ptrdiff_t>(end), '\0');
    ExpectIoError(s, "block " + std::to_string(b) + " zeroed");
  }
  ExpectIoError(std::string(stored_.size(), '\0'), "all zero");
  std::string s = stored_;
  std::fill(s.begin(), s.begin() + 68, '\0');
  ExpectIoError(s, "header zeroed");
}

TEST_F(CryptoTamperTest, WrongKey) {
  auto other = CellKey::Generate();
  FileCipher wrong(*other, id_);
  Status s = wrong.CheckHeader(stored_.substr(0, 68));
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.message();
  EXPECT_NE(s.message().find(Hex(key_->fingerprint())), std::string::npos) << s.message();
  auto r = wrong.OpenChunk(0, 64 * kKiB, stored_, plain_.size());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  // The right key still reads it.
  EXPECT_TRUE(OpenFile(cipher_, stored_, 64 * kKiB).ok());
}

// ---- Names and targets ----

TEST(CryptoNameTest, RoundTrip) {
  auto key = CellKey::Generate();
  Id dir = RandomId(), other = RandomId();
  std::string name = "report.txt";
  std::string sealed = SealName(*key, dir, name);
  EXPECT_EQ(sealed.size(), name.size() + 16);
  EXPECT_EQ(*OpenName(*key, dir, sealed), name);
  EXPECT_EQ(SealName(*key, dir, name), sealed);                 // deterministic
  EXPECT_NE(SealName(*key, other, name), sealed);               // per directory
  EXPECT_NE(SealName(*key, dir, "report.txu"), sealed);
  EXPECT_EQ(OpenName(*key, other, sealed).status().code(), Code::kIoError);
  EXPECT_EQ(OpenName(*CellKey::Generate(), dir, sealed).status().code(), Code::kIoError);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string t = sealed;
    t[i] = static_cast<char>(t[i] ^ 0x20);
    EXPECT_EQ(OpenName(*key, dir, t).status().code(), Code::kIoError) << i;
  }
  EXPECT_EQ(OpenName(*key, dir, sealed.substr(0, 16)).status().code(), Code::kIoError);
  EXPECT_EQ(OpenName(*key, dir, sealed.substr(0, 15)).status().code(), Code::kIoError);
  EXPECT_EQ(OpenName(*key, dir, "").status().code(), Code::kIoError);
  EXPECT_EQ(OpenName(*key, dir, sealed + "x").status().code(), Code::kIoError);
}

TEST(CryptoNameTest, AnyBytesAndFullLength) {
  auto key = CellKey::Generate();
  Id dir = RandomId();
  std::string max(255, 'n');
  std::string sealed = SealName(*key, dir, max);
  EXPECT_EQ(sealed.size(), 271u);
  EXPECT_EQ(*OpenName(*key, dir, sealed), max);
  // The plaintext is any bytes: the cache manager checks names, not this layer.
  for (std::string n : {std::string("a/b"), std::string("x\0y", 3), std::string(1, '\0'),
                        std::string("\xff\xfe\x80"), RandomBytes(255, 9)}) {
    EXPECT_EQ(*OpenName(*key, dir, SealName(*key, dir, n)), n);
  }
}

TEST(CryptoTargetTest, RoundTripAndTamper) {
  auto key = CellKey::Generate();
  Id link = RandomId();
  for (std::string t : {std::string("../a/b"), std::string(), std::string(4000, 't')}) {
    std::string sealed = SealTarget(*key, link, t);
    EXPECT_EQ(sealed.size(), 1 + 12 + t.size() + 16);
    EXPECT_EQ(sealed[0], '\x01');
    EXPECT_EQ(*OpenTarget(*key, link, sealed), t);
    EXPECT_NE(SealTarget(*key, link, t), sealed);  // fresh nonce
  }
  std::string sealed = SealTarget(*key, link, "/etc/passwd");
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string t = sealed;
    t[i] = static_cast<char>(t[i] ^ 1);
    EXPECT_EQ(OpenTarget(*key, link, t).status().code(), Code::kIoError) << i;
  }
  EXPECT_EQ(OpenTarget(*key, RandomId(), sealed).status().code(), Code::kIoError);
  EXPECT_EQ(OpenTarget(*CellKey::Generate(), link, sealed).status().code(), Code::kIoError);
  EXPECT_EQ(OpenTarget(*key, link, sealed.substr(0, sealed.size() - 1)).status().code(), Code::kIoError);
  EXPECT_EQ(OpenTarget(*key, link, sealed.substr(0, 28)).status().code(), Code::kIoError);
  EXPECT_EQ(OpenTarget(*key, link, "").status().code(), Code::kIoError);
  // A file block of the same ID is not a target (other associated data).
  FileCipher c(*key, link);
  std::string block;
  c.SealBlock(0, "/etc/passwd", true, &block);
  EXPECT_EQ(OpenTarget(*key, link, "\x01" + block).status().code(), Code::kIoError);
}

TEST(CryptoAttrTest, EncodeDecode) {
  Id id = RandomId();
  std::string a = EncodeAttr(Kind::kDirectory, id);
  ASSERT_EQ(a.size(), 18u);
  EXPECT_EQ(a.substr(0, 2), std::string("D\x01"));
  auto d = DecodeAttr(a);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->kind, Kind::kDirectory);
  EXPECT_EQ((*d)->id, id);
  EXPECT_EQ(EncodeAttr(Kind::kFile, id)[0], 'F');
  EXPECT_EQ(EncodeAttr(Kind::kSymlink, id)[0], 'L');
  auto empty = DecodeAttr("");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
  EXPECT_EQ(DecodeAttr(a.substr(0, 17)).status().code(), Code::kIoError);
  EXPECT_EQ(DecodeAttr(a + "x").status().code(), Code::kIoError);
  std::string v2 = a;
  v2[1] = 2;
  EXPECT_EQ(DecodeAttr(v2).status().code(), Code::kIoError);
  std::string bad_kind = a;
  bad_kind[0] = 'X';
  EXPECT_EQ(DecodeAttr(bad_kind).status().code(), Code::kIoError);
}

// ---- Key files ----

class CryptoKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/heka-crypto-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& text) const { std::ofstream(Path(name)) << text; }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The text of a raw key file for the key 00..1f with one line replaced.
  std::string RawWith(const std::string& field, const std::string& line) const {
    std::string text =
        "cell = \"kat\"\nfingerprint = \"f74fac39d1ae3140e31f0a48b5e2e4d8\"\nformat = \"raw\"\n"
        "key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n";
    size_t at = text.find(field + " = ");
    size_t end = text.find('\n', at);
    return text.replace(at, end - at, line);
  }
  std::string dir_;
};

TEST_F(CryptoKeyFileTest, RawWriteReadOpen) {
  auto key = CellKey::Generate();
  ASSERT_TRUE(WriteKeyFile(Path("k.toml"), RawKeyFile("acme.example", *key), false).ok());
  struct stat st {};
  ASSERT_EQ(stat(Path("k.toml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(Path("k.toml.tmp")));
  auto f = ReadKeyFile(Path("k.toml"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->cell, "acme.example");
  EXPECT_FALSE(f->wrapped);
  EXPECT_EQ(f->fingerprint, key->fingerprint());
  auto opened = OpenKeyFile(*f, "");
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ((*opened)->bytes(), key->bytes());
  EXPECT_EQ((*opened)->fingerprint(), key->fingerprint());
  EXPECT_NE(Read("k.toml").find(HexOf(key->bytes())), std::string::npos);

  // No overwrite unless asked; the file is left as it was.
  auto other = CellKey::Generate();
  EXPECT_EQ(WriteKeyFile(Path("k.toml"), RawKeyFile("acme.example", *other), false).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(ReadKeyFile(Path("k.toml"))->fingerprint, key->fingerprint());
  ASSERT_TRUE(WriteKeyFile(Path("k.toml"), RawKeyFile("acme.example", *other), true).ok());
  EXPECT_EQ(ReadKeyFile(Path("k.toml"))->fingerprint, other->fingerprint());
  ASSERT_EQ(stat(Path("k.toml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(CryptoKeyFileTest, ModeIs0600WhateverTheUmask) {
  mode_t old = umask(0);
  auto key = CellKey::Generate();
  Status s = WriteKeyFile(Path("k.toml"), RawKeyFile("c", *key), false);
  umask(old);
  ASSERT_TRUE(s.ok());
  struct stat st {};
  ASSERT_EQ(stat(Path("k.toml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(CryptoKeyFileTest, Wrapped) {
  auto key = CellKey::Generate();
  KeyFile w = WrapKey("acme.example", *key, "correct horse battery staple", 14);
  ASSERT_TRUE(WriteKeyFile(Path("w.toml"), w, false).ok());
  std::string text = Read("w.toml");
  EXPECT_EQ(text.find(HexOf(key->bytes())), std::string::npos) << "the raw key is in the file";
  EXPECT_NE(text.find("format = \"scrypt\""), std::string::npos);
  EXPECT_NE(text.find("scrypt_log2_n = 14"), std::string::npos);
  auto f = ReadKeyFile(Path("w.toml"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_TRUE(f->wrapped);
  EXPECT_EQ(f->scrypt_log2_n, 14);
  EXPECT_EQ(f->wrapped_key.size(), 48u);
  auto opened = OpenKeyFile(*f, "correct horse battery staple");
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ((*opened)->bytes(), key->bytes());
  for (std::string_view wrong : {"correct horse battery stapler", "", "Correct horse battery staple"}) {
    EXPECT_EQ(OpenKeyFile(*f, wrong).status().code(), Code::kPermissionDenied) << wrong;
  }
  // The cell is bound to the wrapped key: the same file under another cell name fails.
  KeyFile moved = *f;
  moved.cell = "other.example";
  EXPECT_EQ(OpenKeyFile(moved, "correct horse battery staple").status().code(), Code::kPermissionDenied);
}

TEST_F(CryptoKeyFileTest, FingerprintMismatch) {
  Write("k.toml", RawWith("fingerprint", "fingerprint = \"00000000000000000000000000000000\""));
  auto f = ReadKeyFile(Path("k.toml"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(OpenKeyFile(*f, "").status().code(), Code::kIoError);
  // The unmodified text opens (the helper itself is right).
  Write("ok.toml", RawWith("cell", "cell = \"kat\""));
  auto g = ReadKeyFile(Path("ok.toml"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_TRUE(OpenKeyFile(*g, "").ok());
}

TEST_F(CryptoKeyFileTest, Malformed) {
  EXPECT_EQ(ReadKeyFile(Path("missing.toml")).status().code(), Code::kNotFound);
  struct Case {
    std::string text, field;
  };
  std::string scrypt =
      "cell = \"c\"\nfingerprint = \"f74fac39d1ae3140e31f0a48b5e2e4d8\"\nformat = \"scrypt\"\n"
      "scrypt_log2_n = 14\nscrypt_r = 8\nscrypt_p = 1\nsalt = \"000102030405060708090a0b0c0d0e0f\"\n"
      "nonce = \"101112131415161718191a1b\"\nwrapped = \"" + std::string(96, 'a') + "\"\n";
  auto scrypt_with = [&](const std::string& field, const std::string& line) {
    std::string text = scrypt;
    size_t at = text.find(field + " = ");
    return text.replace(at, text.find('\n', at) - at, line);
  };
  std::vector<Case> cases = {
      {RawWith("cell", ""), "cell"},
      {RawWith("cell", "cell = 5"), "cell"},
      {RawWith("fingerprint", ""), "fingerprint"},
      {RawWith("fingerprint", "fingerprint = \"f74fac39d1ae3140e31f0a48b5e2e4d\""), "fingerprint"},
      {RawWith("fingerprint", "fingerprint = \"f74fac39d1ae3140e31f0a48b5e2e4dg\""), "fingerprint"},
      {RawWith("format", "format = \"aes\""), "format"},
      {RawWith("format", ""), "format"},
      {RawWith("key", ""), "key"},
      {RawWith("key", "key = \"00\""), "key"},
      {RawWith("key", "key = 7"), "key"},
      {scrypt_with("scrypt_log2_n", "scrypt_log2_n = 3"), "scrypt_log2_n"},
      {scrypt_with("scrypt_log2_n", "scrypt_log2_n = 99"), "scrypt_log2_n"},
      {scrypt_with("scrypt_r", "scrypt_r = 0"), "scrypt_r"},
      {scrypt_with("scrypt_p", "scrypt_p = \"1\""), "scrypt_p"},
      {scrypt_with("salt", "salt = \"0001\""), "salt"},
      {scrypt_with("nonce", ""), "nonce"},
      {scrypt_with("wrapped", "wrapped = \"" + std::string(94, 'a') + "\""), "wrapped"},
  };
  {
    Write("scrypt.toml", scrypt);
    auto f = ReadKeyFile(Path("scrypt.toml"));
    ASSERT_TRUE(f.ok()) << "the base text of the scrypt cases is valid: " << f.status().message();
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string name = "bad" + std::to_string(i) + ".toml";
    Write(name, cases[i].text);
    auto f = ReadKeyFile(Path(name));
    ASSERT_FALSE(f.ok()) << cases[i].text;
    EXPECT_EQ(f.status().code(), Code::kInvalidArgument) << cases[i].text;
    EXPECT_NE(f.status().message().find("'" + cases[i].field + "'"), std::string::npos)
        << cases[i].field << ": " << f.status().message();
  }
  Write("syntax.toml", "cell = \"c\nformat = raw\n");
  EXPECT_EQ(ReadKeyFile(Path("syntax.toml")).status().code(), Code::kInvalidArgument);
}

// ---- Known-answer vectors ----
//
// Everything below was produced by tests/integration/encryption_reader.py (the independent
// Python reader), never by this C++ code:
//   key.toml: cell "kat", format raw, key 000102...1f
//   encryption_reader.py seal-name key.toml 0f0e0d0c0b0a09080706050403020100 hello
//   encryption_reader.py seal-target key.toml a0a1...af ../some/target --nonce 000102030405060708090a0b
//   encryption_reader.py seal-file key.toml 00112233445566778899aabbccddeeff kat.plain
//       --nonce 202122232425262728292a2b     (kat.plain: 5000 bytes, byte i = (7 i + 3) mod 256)
//   encryption_reader.py seal-key key.toml --passphrase-file pass --log2-n 14
//       --salt 000102030405060708090a0b0c0d0e0f --nonce 101112131415161718191a1b
//       (pass: "correct horse\n"; the passphrase is "correct horse")
// The derived keys come from the reader's HKDF (content_key / name_key).

constexpr std::string_view kKatKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr std::string_view kKatFileId = "00112233445566778899aabbccddeeff";
constexpr std::string_view kKatDirId = "0f0e0d0c0b0a09080706050403020100";
constexpr std::string_view kKatLinkId = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";

std::string KatPlain() {
  std::string p(5000, '\0');
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return p;
}

// The stored file: header, block 0 (4124 bytes), block 1 (28 + 904 bytes).
constexpr std::string_view kKatSealedFile =
    "484b454601000000f74fac39d1ae3140e31f0a48b5e2e4d800112233445566778899aabbccddeeff2021222324252627"
    "28292a2b7fd020aa2daa695e4984f42397c11859202122232425262728292a2cf078fff5c1398f3dc6396bb59b21fb0f"
    "cf585b0617c66279805e8a31b3bd8d14cd9052fdbc380377b6842dc50a681b930c005715fb55863acfbf4e2d1605097d"
    "5ca5f8191e96910017521e38792e378e67d1dbdbed6d4a1f24b78d36c4b6610cd4fc00d5cbb089836413bbbc190ff0a0"
    "02e64ff63c512f95316973d80d5f04ace68097bd5bdd9eb690a2b950315336dd6f9080734035901094b267d95cc23ddf"
    "073ed00e991d961fdf7b2166ff59f2c0fe381c51e1fffdecc7cd7310be7fb66a34eba647c6a2924afd193b83571d5bf0"
    "f4f412589f0a40dcbb25e6baedf078a5aec5e265edff99e21831fe364758c23cb2de08ced43c732fe7e936c35c8c6bdc"
    "57a561d53ec4ec7a02bcca62672d5ca01055da379011214981e8b6b8ef536af35d1cf27fabed90f96c90f9e8603c3070"
    "f23f69cb7cbe2ddc64e0ca7431df909f1755266f2b9813150bedfac8ca1ff924371884f8e0d5c374b4fc706b10e813bc"
    "ae1b0250b5095278f4531bad1c80fc1f1f7e352f3e8be7ac267847567ed9537d8a6b2eeafaaeb1a83133448128096a17"
    "4428ded8e792681727f7aab0f59bbf78352b0360321d70864b55d4b11976093a8de3fb0237d4f90e86ac6ab90269965e"
    "35bc637107d2c7029a63f13096b7bed0be374960248a59c5cdf8ef436df3492494e025c432c55cf24703dab7ae6edb07"
    "8de68612e8fdcc5aad1a56cd96c8742dcbb2d3d93de09e014f544a5bcca3485de81a28bda32a85e5e86c39335864074a"
    "d94e83eeb0ec4096d4dbaea39aa0d1ff0c763f2ca9a5ab40aa8dda97525e1d7d3dbd9323e884a91a5db43fc500ebdc92"
    "7a2699d012f4bc12ee2b39fc0ad759ef2af915bf4b4f59c26af6e578fc43ad0f5712b5caabf77266b26bce58f4b5374f"
    "34d36893f7199bc42c83f1f5eb643ec22e654c6f1abede3e630630aadcbc552afbda97e7d23464391b3b01feb7b66133"
    "51699c2062165a674b7775061fc0a0e50a854e4c23ec2c54d28fd56d6c9251719dc10726fb971159c25d8fe6f2eceff4"
    "353feb811250387f2c0b23f62c24f329b1c7f085a7bdd0890720f344b26f952e5be2c5debcb1cb51f74de00e49c17b0f"
    "58401d2cc72cb5d9a4defcf1dfaaef89d72d6baed746d8f8af99ca7e37537253356d5c6675a6c3375857f6d9814981f8"
    "ab055509ee868b490af7d8b6cac58de5f42ecf36d61689468f7d8d328451d0eeb6cced9e7b2ed7032bcd01ab26741f12"
    "5462240c86ff8171251203f42172b463dd68811d0141dad14d62fdab6fba2afbdb54a79b0312e4ce0aac8b8da8a12369"
    "9cc27dd9797124f40cd4755563c1d7d1776e5d595a3a059e4001c7a1232c460b5247c9820bd442fc62e59cf41cd93081"
    "a1ee02c0e9f7d51f0ab58d93679a61f030340907e89aeb354e877ebe51ba22991f8a1b35ee9229f4dcefe1e91570e706"
    "c1b91539f35aa42969d01b9cb25695a9b6811986ebfff5426000cd6859e2f1389c23cea8facea3b31efa6fb8234cc388"
    "d4f0f00c62d1d507b68dff1314fb74dced8cbd2c435c341fc1d514cef8c5277f384ce327dbd29aac3cd2d3e6790b688f"
    "5bb8ea7ef3a0ab0267276255d5c4e2077a9786389151a24152dced171a64f8956eddf6227bb1274fe9766460134cb0ca"
    "1ea35b1d39879b08c0d79c424ac585e9ae1d700ffacb1a8aae94b6c7a5b18b21ba1f84516083cd02b3625fc1d64c1e5b"
    "843d02b43bec3ff16fcd267a138299d168eb726a53b55c3fb03ae0375291e402ed19b8e383edc94e5108f2076edfb097"
    "72a88daf17dfa26df660442a3d6b67c093b697456de06c144eaef9ef779f78774075617651edc9e80a676120af9b9f18"
    "1ff54fb91139ea29900c488caa45458b236fd9d515dbd5b411a4c250b53fe13a47226b1353ee765cf9afb8ac3517fcab"
    "3a212cddb6753928305d8e941ca941cd48feadab0b9befb6cb20fdf5bfdb4fcf0ff3e479983c922ac02a7031dbda9862"
    "c4c6cd5731edc86da73a08ef58b7d0d04b3ab89c2d9f394a79abdd60f6dbf0733713edd1439472cf7adbb4828e1fd477"
    "8f5206d306dd95f8755ec75d9aed75fde212ae70047dd525268f5551a517bd0a730a6d40c3477deef9b8ac5b306cad44"
    "782ef2fa77c9430e1df160f2b8bf3d52e8fd700e5c005f5a2524b31c91d9dd8957765bcef92043e35607f19e65f557b1"
    "c732a85845a6d2b9eed4234f82587128653c62959485a497ccd8cabcc50706d8aa803c29f9f2c7ffd06073f16931b0c2"
    "23abd4fba6312a6aabe79891f9c3b1b9bf163c77abd1f9c0165d5e65485247817508e15b6800b7b7d149d0fca8ea3335"
    "4bb520c246114d0c4a1bc823cca250d070c773c84f9d2e078b825ef443d82d0643a2cecfa17927826f256b0ec379db59"
    "41eb7c4177166f85eaa74b3b106390f975c5d7991243c7866a63f8070681268efe21d746b5c60e0e438ce5ac110654d8"
    "77c3d8184948020a3597adab651be2f3264cdd9a76c7c87477c4b35f2e54f8e2619c8bd825fb9c3e96958e3948a38487"
    "f32bd6b94c827da302ad3ca62fe5bd3885409ab9412986bdac1c19c489d83adb190bb4aa581a30ac3324d6be93483442"
    "0e0595a6f3ee9e674c1ae1f37748dcb49dd9ff5c09d8cd22ddf92b527d2bae50994337fec1b57c1b178609027a664302"
    "5ab3a699ca526c9e0720a8ff02c96f2ff31e80b2de75d1189042f703ae782e93f2e0414f9dfb6c88abfe19517715bfd3"
    "ed32b103233cbc9e602ac49ebc161d9af506e7321499aaf0dd0ad7626c4c0e9e4e3561ba3ddd290087045bf5d0c1d558"
    "b7346ec4c60e1739ec3a6206ab2972b1117630430125f3da1965b34a056d9e6ba1c5dfd02ffdc8317ca929be835c7e55"
    "7fdd0680d155b83ea551d970c12b8f18d095a48aeb25ee38ce1fb97e85d911f9ea70cb97c12aa509969f097edfd50b9d"
    "decabff05a00450a77f1c6af2d68ce183d5d4ab6f231696e6aac33743e65728825c0b186086cbdc90a66d3b5618676ef"
    "9459486affae6f2a76a067a30e549f80ceebc749c64ee8527bce0b80e86399549ab4756ac61bb67a3e22b574504b0487"
    "83e98ccda42664e59568fe61795836ebfa500902d91d07847d91051ee21d837feb9a181a39aa967a8483340e04237a6b"
    "de0f75d29c1cd24cf37e7ae7c626b75a3c6941f94278013d7fdb7e5aa2f013fe1f6f0424e7d58afe55deaa0402551c95"
    "4d746765ea242c8e33c069fb9093489042232da4400ffc66efcb18568befb802c34fbe26564c012779fd46cf007ee68a"
    "350bc2fdc1eb576f28935e9f77a588bbb201af7e70e01631f9624b5112e70e21ab88c8fcc83b8aebba03d1f7449db262"
    "bf35f52a64be318e4e5bb7e8e318d79467858b5cf3fdcb01a5cabe6e511722b719d65aaf8ad8610fcb24e2421a3b7561"
    "ee1684bd78456975c4a8aa4fff222baa47f38ff655bac5ef3dc4787ae3daca45d4dc82e47a75a0b58767886bfe41243b"
    "d9794bc07c35c5496944ee8656a58ff934746339284286a4b225bf0d948fe165931d9aa7d066e0fabf2e10fbad17f4b6"
    "2ff6a512e81a49a45c00df592796756886e1be40b50fe3e56f654862d951eeea1788eddcca1c691d0dc86aade7fe0611"
    "eb3c729eb63d6eb49eda36a6b8ff1e1482c15f015a7cfac305d9637def53c02a18b56f8fbc4d3593c711f27cd44cfade"
    "e29c0e6fb079203e7ab2480c5aeeeb4bd399356a449ac24eefa3bd39c8c7c096983f3c6e9cf4e5cc70bc2ba2282e149b"
    "aaeea5beaf95654f107c89d7c5da2dbabdf8539f2260794edb50c103d96b8b28b4251c2f921cfb0b0ea3325923fd48d9"
    "08c666c664b98c5fed2ab75d2ecd99fd9b45bd5e21060c4667229626ce6e8bd1aac9a5ca8b7df185dc0986f936fff1f3"
    "9c483003b19c058bdd43d9e12751e59e71189ec93006c18d292dbdfc3b2cf9d3af06e10e54f709eabdec63ba301536b1"
    "0c7baced762d1deecc243a00ff020a241760f0a29fd9da915fdc7c13871864db27084438c8534a725fe7f8cef4924098"
    "825010ab224ba34dab3291c6d91e43d5860fbf321803286665938f86c6b96fd6084ab089c36dd95d118439e7ed8f0821"
    "2f6c1922ff4527a602e8f0bfd0474d0afd27039c5d34c3a3e71bad66312f5d73506c30d9e68c5d7183758a24539e9145"
    "974fd4352f99590a20e1bbeafcf3b85381bc0fa379a9e418df32085664dcbe8d4f1d546f1a73e8ba009ef0f0b8092371"
    "b64b6e3c5e3207297265c106c0ba6235c6a2321afc3b8cd320548c9b1f5c5523892ea73a8129c9889b81496094459472"
    "edaeb2265f91535f6fa695c8e0bd26d822f80be0e8363c957c811253934379dd663bda88184ee260047f3be85919a3da"
    "76f70da196fe68a64e3d410a596ca2f16376f5a6bf438cd5b95fd76e3ae9c4dd844244bac983826e86765328ab6844ff"
    "36353e5122994b073531cbdb079a429b3426f7a9fb9e5287a20af6f4b042567bcd3b05f64de88dfab06ae8825cc09988"
    "22c3e71389dd8079210b8390d89134a1b240cc35bc4c43b7f06a494f70accab38f9d8ba52f4e876f675b86676249e1df"
    "aff62dae68f43cc20ac06e63ecc1e4b1ff4c59e6a034a389bec48822b8eb9c6e95511838a457076eb54f2ddcbdcf9829"
    "31319ff6665fe310d0f01a32bf2101d3c7b8c14b1b734d253a43e029f3f3ee13cd39a7fc60bfab6629c22cbb40133acc"
    "6afb480b2e5b3d4fe1c51adc3a52f1abfb3a198faa1a279abbd7baa384cb864a2dd813c0f9eaa51ebfad96553400ead3"
    "93c6952b6ad83f2c460305231e8b2be8d07e6a9b4c36016be1e2b9eb6a41db2e12955e1d9305af92a852bb228a3a30b0"
    "75db4a4e0702c4e0cb85cb60209f1b328dea250a9d780bff4fe553dac506d29a4951ad0b40dee12eb0725f93c6d09b8e"
    "fe9d81c7a0534c0594b028cd217afb7bcdc3cbb6d7652e4e13b2a825fde5834e9ee09fedeb7c8732bdac018f2e457156"
    "d86a519cbd2143bec613b2f09f4881089c6fa120fd65e009525bf73cc2b2cba45335b90039a4707fe715945cf211e863"
    "22479c85ca8c6842510ef70b79aea23e723aac8356ef696925a0cefe8c13d4d448a205d70cdcdc324d7c5f6a97740677"
    "db1e5708f0c3dd85e789fd1bca146944c5ee6296ef7a50b311b3b7002c7e0e713aeb1d5c138c2bc92b7e73d5b215a299"
    "8c0dfef8e19e7d5260ffe5b6639f5ae029b4e63162a03013aeff900f817b8a605aa964ed20a79a8d30cb4d2f29113db1"
    "a696141b4e82fa9a6cfe7e551a549853e2ea95f66f7834c81c0e3462b5acb83b265746ed7150bbda24177d99034cb9df"
    "ccb99b77a3243c3d1b3811e4b30163d669b2940a0db53c50967a2c3d3aada33f4da365e5a2993204be718a611efd7385"
    "d94b34f3ef52864f5d413d4744a894a864c28142aa4aac5d7de1e98f65eb80c7218f8b275c315320adb3d27d735a2152"
    "0e596701a42bf13e04ebafd427e0dd4198247253e05437af433e4da651b159ea9bca3dd8751779de71e115ba61e6afe0"
    "54f636ad3e72bb587ddbd435dbb48df8a43319746017d0c7404afa5f7c55b27fa86e6bde28bcf5f17c043d04d146780b"
    "947479572a9eee2d88ede3d7d97b7307551562b00c9d210febce3b0625806bddc12715a417833093fdce2154d8b6ec59"
    "94f3bb8b0fdf9938d79ceff6844c55421ca2cda0a7a8dad91b12f27aa2a64368d31303b842bd8513bb7febe9936a930e"
    "3eef15571c241f709ac19c986cf2071994ac3072f3a7b4b1e7195072b9f46d5b03dbaf35f3e86d490ff9c96b627508f1"
    "570576401f5c44f398e4f8c710ae5055202122232425262728292a2d6f504ee74fcb856fab575778010ceeaad64f401e"
    "1a00a6216b44d0ce02d0226271823631b30cf09de553091e0374764dd869fc1365b65948d708f3712aee230f2120947f"
    "80aba1197eeedb4885743ec5de658187ab7cda29730b2f5c0d660b00dcfa72f76af2f872138ae21ad9ffefa0c34da830"
    "2d20ade1aa39de41cb93947a6741f33fec7cd903cdf165e415a372db05be09f0669cb524f69d8cc3ae6ec32d43a0cfd7"
    "e3415b1cba6ca72b6ec6dbeafedab5d1539ea42c86afea2449bc7648fc9b00b35c301a27b49c50aab68c96c4e6d5c9eb"
    "09f03ae6b9ba51e4738affe15e4ff5b5cc3885dcb0455e8f0e5c634262486d18443d26a9a05aac8718fb09bb55e0adaa"
    "bd0b90a89714fa1c4483664ed75e7141a6ec297a38a0c4dfbcee22214a5fc0abb7d910189b37b3411538819d12f36a3c"
    "90e29b8a366bec6da9238cc8d65793c36d5bf70cae5b5a52a2799d5dac7698321edec9fc5649e1544ed077cb202f887d"
    "95aa4965a69bfe6d843c4f5c176ed3be54a19e2c63a84cdbe113bd431606ba48f94f64882f049a5f07f4c83f0738dea5"
    "37f4c5e10d81145a6444dd9bae5dee7a3d396f1f5f849520c758d7ffc0b8da55d0d73db95ff01b6bc3df2cfe7a8ffabf"
    "f8c6d8c1aaf30c3cfe7eb0f11523569244d4f5decab5f6d5f09e9c178ee805a1896d881126a86d5531f831fdb20ec040"
    "d7bbc2b1774b7bab7999eb4cda0994819c359182e1f1d684b2c691b041cf9f00908633eccdce2039d2749add8a108c83"
    "d23cf16a5074122b9ca0345cc87119cf014816819e59ab0d189d310f6738d4ebca96ceef94965a53a5af2121a58b3ecb"
    "abf1f22412de831947b880d406e20118eaeb71208dd520b7ab421f7292f720a8bd170c061abb95e2f34cd9df34139b9f"
    "93e4e25b63c981c56ffddbfadfebb430532548472ae98602f03c4d002ae7a3b7851f3a0794a468c9ad81b6f5ded3848a"
    "2ed5e13e61b31ec693fa70f4ae7e27c2cbab1568b4f6ea993e9dae0c3f717abe305fbe3d0ef545dae401ac59e704191f"
    "6a22a6b5cadd00eb127d588736340f828290b03edca46248b0d456665a8240754f4e86ebe3a9268581d15436c1ca364c"
    "3d2afae659849305fc0607f7874bf744d77126bae5ccf753ab2b8b976043b69f6a5146e44d703d6cd9a8000a08526c28"
    "38cda22b56312a6109b921dd8155e75aba3d43dc6ff7f17fe16aedab3086e3e1c1949c8b6fc9cc2ccc497a34deff87c0"
    "588782b6a4b294cf958f21fb512fd1d7ce81175311930479f7b5f0534d43abe087e6ed2e";

TEST(CryptoKnownAnswerTest, KeyFingerprintAndDerivedKeys) {
  auto key = KeyOf(kKatKey);
  EXPECT_EQ(Hex(key->fingerprint()), "f74fac39d1ae3140e31f0a48b5e2e4d8");
  EXPECT_EQ(Hex(key->ContentKey(Arr<16>(kKatFileId))),
            "51877cab888af3b925af81f1100ddf9881cbd0f2e82390f2d258e423aa80949d");
  EXPECT_EQ(Hex(key->ContentKey(Arr<16>(kKatLinkId))),
            "74415e71f3bb2dda11f9b5f809bda253803a859e6439a6ab390416e720fadb43");
  EXPECT_EQ(Hex(key->NameKey(Arr<16>(kKatDirId))),
            "0a41973f592f9c542af28d05c87ffe5337cbdac13638e4d34b06f4f660a745db"
            "326fda3f355d611031b1a813fab1e36bda60c54c76a0236ce38080ae922f1210");
}

TEST(CryptoKnownAnswerTest, Names) {
  auto key = KeyOf(kKatKey);
  Id dir = Arr<16>(kKatDirId);
  struct {
    std::string name;
    std::string_view sealed;
  } cases[] = {
      {"hello", "e7706c3e82c2e6fe8e9d3fd6ca0573d07b1e90307a"},
      {"Gr\xc3\xbc\xc3\x9f" "e.txt", "e0b98121f1a920f08c5f2995dbebd1b5795d59ead6efde8e62b549"},
      {"a/b", "f847e3b8061f4a439033ec0698e235c2fe92c8"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(HexOf(SealName(*key, dir, c.name)), c.sealed) << c.name;
    auto opened = OpenName(*key, dir, Unhex(c.sealed));
    ASSERT_TRUE(opened.ok()) << c.name;
    EXPECT_EQ(*opened, c.name);
  }
  EXPECT_EQ(HexOf(SealName(*key, Id{}, "hello")), "0687f5ad0db456886cec1a90ecbed4d7c19f1f4674");
}

TEST(CryptoKnownAnswerTest, Target) {
  auto key = KeyOf(kKatKey);
  std::string sealed = Unhex(
      "01000102030405060708090a0b036645929a804f85ce6e5fe2a2e6f24cf9f6a4494feb0bf880837da94c87");
  auto t = OpenTarget(*key, Arr<16>(kKatLinkId), sealed);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, "../some/target");
}

TEST(CryptoKnownAnswerTest, File) {
  auto key = KeyOf(kKatKey);
  FileCipher c(*key, Arr<16>(kKatFileId));
  std::string stored = Unhex(kKatSealedFile);
  ASSERT_EQ(stored.size(), 5124u);
  ASSERT_TRUE(c.CheckHeader(stored.substr(0, 68)).ok());
  for (uint64_t cb : {4 * kKiB, 64 * kKiB}) {
    auto p = OpenFile(c, stored, cb);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_TRUE(*p == KatPlain()) << cb;
  }
  // And block by block, with the documented layout.
  std::string out;
  ASSERT_TRUE(c.OpenBlock(0, stored.substr(68, 4124), false, &out).ok());
  ASSERT_TRUE(c.OpenBlock(1, stored.substr(68 + 4124), true, &out).ok());
  EXPECT_TRUE(out == KatPlain());
  // The same bytes under another file ID fail.
  FileCipher other(*key, Arr<16>(kKatDirId));
  EXPECT_EQ(OpenFile(other, stored, 64 * kKiB).status().code(), Code::kIoError);
}

TEST_F(CryptoKeyFileTest, KnownAnswerWrappedKey) {
  Write("w.toml",
        "cell = \"kat\"\nfingerprint = \"f74fac39d1ae3140e31f0a48b5e2e4d8\"\nformat = \"scrypt\"\n"
        "scrypt_log2_n = 14\nscrypt_r = 8\nscrypt_p = 1\nsalt = \"000102030405060708090a0b0c0d0e0f\"\n"
        "nonce = \"101112131415161718191a1b\"\n"
        "wrapped = \"61cd0c987f7600ec05031543cbbbd016f3b3165e714127418f6345d5fe6f9f5cbf618787f63925"
        "719f9d12f6f6eb992f\"\n");
  auto f = ReadKeyFile(Path("w.toml"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto key = OpenKeyFile(*f, "correct horse");
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(HexOf((*key)->bytes()), kKatKey);
  EXPECT_EQ(OpenKeyFile(*f, "correct horse\n").status().code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace heka::cm::crypto

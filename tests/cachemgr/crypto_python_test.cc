// Cross-check of cachemgr/crypto against tests/integration/encryption_reader.py, an independent
// reader written from docs/formats/encryption.md alone: C++ writes files, names, targets and
// key files with random keys and IDs and the reader must recover exactly the plaintext; the
// reader seals with random nonces and C++ must open. python3 with python3-cryptography is
// required: without it every test fails (it is not skipped).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cachemgr/crypto/crypto.h"

#ifndef HEKA_ENCRYPTION_READER
#error "HEKA_ENCRYPTION_READER must name tests/integration/encryption_reader.py"
#endif

namespace heka::cm::crypto {
namespace {

namespace fs = std::filesystem;

struct Proc {
  int exit = -1;
  std::string out;
};

// Runs `args` (already shell-safe: paths from mkdtemp, hex digits) through the shell.
Proc Shell(const std::string& cmd) {
  Proc r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Proc Reader(const std::string& args) {
  // stderr is merged into the output: on success the reader writes nothing there.
  return Shell("python3 " HEKA_ENCRYPTION_READER " " + args);
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string HexOf(std::string_view s) { return Hex(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

// One line of output without its newline.
std::string Line(const std::string& out) {
  return !out.empty() && out.back() == '\n' ? out.substr(0, out.size() - 1) : out;
}

class CryptoPythonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Proc r = Shell(
        "python3 -c 'from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV; "
        "from cryptography.hazmat.primitives.kdf.scrypt import Scrypt; import tomllib'");
    python_ok_ = r.exit == 0;
    python_error_ = r.out;
  }
  void SetUp() override {
    ASSERT_TRUE(python_ok_)
        << "python3 with the cryptography package (Debian: python3-cryptography) and tomllib "
           "(Python >= 3.11) is required by this test and is missing:\n"
        << python_error_;
    ASSERT_TRUE(fs::exists(HEKA_ENCRYPTION_READER)) << HEKA_ENCRYPTION_READER;
    char tmpl[] = "/tmp/heka-crypto-py-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(WriteKeyFile(Path("key.toml"), RawKeyFile("py.example", *key_), false).ok());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& data) const {
    std::ofstream(Path(name), std::ios::binary) << data;
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The whole stored file, chunk by chunk as the cache manager writes it.
  static std::string SealFile(const FileCipher& c, const std::string& plain, uint64_t cb) {
    std::string out;
    uint64_t chunks = plain.empty() ? 1 : (plain.size() + cb - 1) / cb;
    for (uint64_t i = 0; i < chunks; ++i) {
      out += c.SealChunk(i, cb, std::string_view(plain).substr(std::min<uint64_t>(plain.size(), i * cb), cb),
                         plain.size());
    }
    return out;
  }

  static inline bool python_ok_ = false;
  static inline std::string python_error_;
  std::shared_ptr<const CellKey> key_ = CellKey::Generate();
  std::string dir_;
};

TEST_F(CryptoPythonTest, KeyFiles) {
  Proc raw = Reader("key " + Path("key.toml"));
  ASSERT_EQ(raw.exit, 0) << raw.out;
  EXPECT_EQ(Line(raw.out), Hex(key_->fingerprint()));

  ASSERT_TRUE(WriteKeyFile(Path("wrapped.toml"), WrapKey("py.example", *key_, "open sesame", 14), false).ok());
  Write("pass", "open sesame\n");
  Write("wrong", "open sesame!\n");
  Proc w = Reader("key " + Path("wrapped.toml") + " --passphrase-file " + Path("pass"));
  ASSERT_EQ(w.exit, 0) << w.out;
  EXPECT_EQ(Line(w.out), Hex(key_->fingerprint()));
  Proc bad = Reader("key " + Path("wrapped.toml") + " --passphrase-file " + Path("wrong"));
  EXPECT_EQ(bad.exit, 1) << bad.out;

  // The reader wraps (random salt and nonce), C++ unwraps.
  Proc sealed = Reader("seal-key " + Path("key.toml") + " --passphrase-file " + Path("pass") + " --log2-n 14");
  ASSERT_EQ(sealed.exit, 0) << sealed.out;
  Write("py-wrapped.toml", sealed.out);
  auto f = ReadKeyFile(Path("py-wrapped.toml"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto k = OpenKeyFile(*f, "open sesame");
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ((*k)->bytes(), key_->bytes());
  EXPECT_EQ(OpenKeyFile(*f, "open sesame!").status().code(), Code::kPermissionDenied);
}

TEST_F(CryptoPythonTest, FilesWrittenByHeka) {
  struct Case {
    uint64_t size, chunk;
  };
  for (Case c : {Case{0, 64 << 10}, Case{1, 64 << 10}, Case{4095, 64 << 10}, Case{4096, 64 << 10},
                 Case{4097, 64 << 10}, Case{100000, 64 << 10}, Case{3 * (64 << 10) + 5, 64 << 10},
                 Case{(1 << 20) + 8192 + 1, 1 << 20}}) {
    Id id = RandomId();
    FileCipher cipher(*key_, id);
    std::string plain = RandomBytes(c.size, static_cast<uint32_t>(c.size));
    std::string stored = SealFile(cipher, plain, c.chunk);
    ASSERT_EQ(stored.size(), CipherSize(c.size));
    Write("f", stored);
    Proc r = Reader("file " + Path("key.toml") + " " + Hex(id) + " " + Path("f"));
    ASSERT_EQ(r.exit, 0) << c.size << ": " << r.out.substr(0, 500);
    EXPECT_TRUE(r.out == plain) << "size " << c.size << ": the reader got " << r.out.size() << " bytes";
  }
}

TEST_F(CryptoPythonTest, ReaderRejectsTamperedFiles) {
  Id id = RandomId();
  FileCipher cipher(*key_, id);
  std::string stored = SealFile(cipher, RandomBytes(3 * 4096 + 10, 5), 64 << 10);
  std::string flipped = stored;
  flipped[68 + 4124 + 100] ^= 4;
  std::string swapped = stored;
  swapped.replace(68, 4124, stored, 68 + 4124, 4124);
  swapped.replace(68 + 4124, 4124, stored, 68, 4124);
  std::string zeroed = stored;
  std::fill(zeroed.begin() + 68, zeroed.begin() + 68 + 4124, '\0');
  for (const auto& [name, bytes] : {std::pair<std::string, std::string>{"flipped", flipped},
                                    {"swapped", swapped},
                                    {"zeroed", zeroed},
                                    {"cut-at-boundary", stored.substr(0, 68 + 3 * 4124)},
                                    {"cut-inside", stored.substr(0, stored.size() - 20)},
                                    {"cut-short", stored.substr(0, 95)}}) {
    Write(name, bytes);
    Proc r = Reader("file " + Path("key.toml") + " " + Hex(id) + " " + Path(name));
    EXPECT_EQ(r.exit, 1) << name << ": " << r.out.substr(0, 200);
  }
  Write("ok", stored);
  Proc other_id = Reader("file " + Path("key.toml") + " " + Hex(RandomId()) + " " + Path("ok"));
  EXPECT_EQ(other_id.exit, 1);
}

TEST_F(CryptoPythonTest, NamesAndTargetsWrittenByHeka) {
  Id dir = RandomId();
  for (const std::string& name : {std::string("hello.txt"), std::string("a/b"), std::string("x\0y", 3),
                                  std::string(255, 'n'), RandomBytes(200, 3), std::string("\n")}) {
    std::string sealed = SealName(*key_, dir, name);
    Proc r = Reader("name " + Path("key.toml") + " " + Hex(dir) + " " + HexOf(sealed));
    ASSERT_EQ(r.exit, 0) << r.out;
    EXPECT_TRUE(Line(r.out) == name) << HexOf(name);
    Proc other = Reader("name " + Path("key.toml") + " " + Hex(RandomId()) + " " + HexOf(sealed));
    EXPECT_EQ(other.exit, 1);
  }
  Id link = RandomId();
  for (const std::string& target : {std::string("../up/there"), std::string(), std::string(3000, 't')}) {
    std::string sealed = SealTarget(*key_, link, target);
    Proc r = Reader("target " + Path("key.toml") + " " + Hex(link) + " " + HexOf(sealed));
    ASSERT_EQ(r.exit, 0) << r.out;
    EXPECT_TRUE(Line(r.out) == target);
  }
}

TEST_F(CryptoPythonTest, WrittenByTheReader) {
  // Names: deterministic, so both sides must give the same bytes.
  Id dir = RandomId();
  for (const std::string name : {"hello.txt", "with space", "caf\xc3\xa9"}) {
    Proc r = Reader("seal-name " + Path("key.toml") + " " + Hex(dir) + " '" + name + "'");
    ASSERT_EQ(r.exit, 0) << r.out;
    EXPECT_EQ(Line(r.out), HexOf(SealName(*key_, dir, name)));
  }
  // Targets and files: random nonces from the reader, opened by C++.
  Id link = RandomId();
  Proc t = Reader("seal-target " + Path("key.toml") + " " + Hex(link) + " ../x/y");
  ASSERT_EQ(t.exit, 0) << t.out;
  std::string sealed_target;
  for (size_t i = 0; i + 1 < Line(t.out).size(); i += 2)
    sealed_target.push_back(static_cast<char>(std::stoi(t.out.substr(i, 2), nullptr, 16)));
  auto target = OpenTarget(*key_, link, sealed_target);
  ASSERT_TRUE(target.ok()) << target.status().message();
  EXPECT_EQ(*target, "../x/y");

  for (uint64_t size : std::vector<uint64_t>{0, 4096, 5000, 3 * 65536 + 4097}) {
    Id id = RandomId();
    std::string plain = RandomBytes(size, 77);
    Write("p", plain);
    Proc s = Shell("python3 " HEKA_ENCRYPTION_READER " seal-file " + Path("key.toml") + " " + Hex(id) +
                  " " + Path("p") + " > " + Path("s"));
    ASSERT_EQ(s.exit, 0) << s.out;
    std::string stored = Read("s");
    ASSERT_EQ(stored.size(), CipherSize(size));
    FileCipher cipher(*key_, id);
    for (uint64_t cb : {uint64_t{4096}, uint64_t{65536}}) {
      std::string got;
      uint64_t chunks = size == 0 ? 1 : (size + cb - 1) / cb;
      for (uint64_t i = 0; i < chunks; ++i) {
        uint64_t b = FileCipher::ChunkBegin(i, cb);
        uint64_t e = std::min<uint64_t>(FileCipher::ChunkEnd(i, cb), stored.size());
        auto r = cipher.OpenChunk(i, cb, std::string_view(stored).substr(b, e - b), size);
        ASSERT_TRUE(r.ok()) << size << " chunk " << i << ": " << r.status().message();
        got += *r;
      }
      EXPECT_TRUE(got == plain) << size << " " << cb;
    }
  }
}

}  // namespace
}  // namespace heka::cm::crypto

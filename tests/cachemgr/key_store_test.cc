// KeyStore: cell keys from raw key files, from `heka key unlock` (Install) for passphrase-
// protected ones, remembered misses, and the fingerprint check of Install. Real key files in a
// temporary directory; the clock of remembered misses is the test's.
#include "cachemgr/key_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace heka::cm {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("heka-keystore-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.key_dir = dir_.string();
    options_.test_now = [this] { return now_; };
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string PathOf(const std::string& cell) { return (dir_ / (cell + ".key")).string(); }
  void WriteRaw(const std::string& path, const std::string& cell, const crypto::CellKey& key) {
    ASSERT_TRUE(crypto::WriteKeyFile(path, crypto::RawKeyFile(cell, key), false).ok());
  }

  fs::path dir_;
  KeyStoreOptions options_;
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
};

TEST_F(KeyStoreTest, RawKeyFileIsLoadedAndKept) {
  auto key = crypto::CellKey::Generate();
  WriteRaw(PathOf("acme"), "acme", *key);
  KeyStore store(options_);
  EXPECT_TRUE(store.Status().empty());
  auto got = store.KeyFor("acme");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->fingerprint(), key->fingerprint());
  EXPECT_EQ((*got)->bytes(), key->bytes());
  auto status = store.Status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].cell, "acme");
  EXPECT_EQ(status[0].fingerprint, key->fingerprint());
  EXPECT_EQ(status[0].source, "file");
  // Kept: the file is not read again.
  fs::remove(PathOf("acme"));
  auto again = store.KeyFor("acme");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), got->get());
}

TEST_F(KeyStoreTest, WrappedKeyFileIsRefusedUntilUnlocked) {
  auto key = crypto::CellKey::Generate();
  ASSERT_TRUE(
      crypto::WriteKeyFile(PathOf("acme"), crypto::WrapKey("acme", *key, "pw", 10), false).ok());
  KeyStore store(options_);
  auto refused = store.KeyFor("acme");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(refused.status().message(),
            "the key of cell acme is passphrase-protected: run `heka key unlock -cell acme`");
  EXPECT_TRUE(store.Status().empty());

  ASSERT_TRUE(store.Install("acme", key).ok());
  auto got = store.KeyFor("acme");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->fingerprint(), key->fingerprint());
  auto status = store.Status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].source, "unlocked");
  // Unlocking again with the same key is harmless.
  EXPECT_TRUE(store.Install("acme", key).ok());
}

TEST_F(KeyStoreTest, InstallRefusesAKeyTheKeyFileDoesNotName) {
  auto right = crypto::CellKey::Generate();
  auto wrong = crypto::CellKey::Generate();
  ASSERT_TRUE(
      crypto::WriteKeyFile(PathOf("acme"), crypto::WrapKey("acme", *right, "pw", 10), false).ok());
  KeyStore store(options_);
  Status s = store.Install("acme", wrong);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(s.message().find(crypto::Hex(wrong->fingerprint())), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(crypto::Hex(right->fingerprint())), std::string::npos) << s.message();
  EXPECT_FALSE(store.KeyFor("acme").ok());
  EXPECT_TRUE(store.Status().empty());
}

TEST_F(KeyStoreTest, InstallWithoutAKeyFileIsAccepted) {
  auto key = crypto::CellKey::Generate();
  KeyStore store(options_);
  ASSERT_TRUE(store.Install("acme", key).ok());
  auto got = store.KeyFor("acme");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)->fingerprint(), key->fingerprint());
}

TEST_F(KeyStoreTest, AMissingFileIsRememberedThenFoundWhenItAppears) {
  KeyStore store(options_);
  auto missing = store.KeyFor("acme");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(missing.status().message(), "no key for cell acme (looked in " + PathOf("acme") +
                                            "): run `heka key import` or `heka key unlock`");
  auto key = crypto::CellKey::Generate();
  WriteRaw(PathOf("acme"), "acme", *key);
  now_ += std::chrono::milliseconds(1500);
  EXPECT_FALSE(store.KeyFor("acme").ok()) << "the miss is remembered for 2 s";
  now_ += seconds(1);
  auto found = store.KeyFor("acme");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ((*found)->fingerprint(), key->fingerprint());
}

TEST_F(KeyStoreTest, InstallEndsARememberedMiss) {
  KeyStore store(options_);
  EXPECT_FALSE(store.KeyFor("acme").ok());
  ASSERT_TRUE(store.Install("acme", crypto::CellKey::Generate()).ok());
  EXPECT_TRUE(store.KeyFor("acme").ok());
}

TEST_F(KeyStoreTest, PerCellKeyFileOverridesTheKeyDirectory) {
  auto key = crypto::CellKey::Generate();
  std::string elsewhere = (dir_ / "acme-2024.key").string();
  WriteRaw(elsewhere, "acme", *key);
  options_.key_files["acme"] = elsewhere;
  KeyStore store(options_);
  EXPECT_EQ(store.PathOf("acme"), elsewhere);
  EXPECT_EQ(store.PathOf("beta"), PathOf("beta"));
  auto got = store.KeyFor("acme");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->fingerprint(), key->fingerprint());
}

TEST_F(KeyStoreTest, AKeyFileOfAnotherCellOrAnUnusableOneIsRefused) {
  WriteRaw(PathOf("acme"), "beta", *crypto::CellKey::Generate());
  std::ofstream(PathOf("gamma")) << "this is not a key file\n";
  KeyStore store(options_);
  auto other = store.KeyFor("acme");
  EXPECT_EQ(other.status().code(), Code::kPermissionDenied);
  EXPECT_NE(other.status().message().find("holds the key of cell beta"), std::string::npos)
      << other.status().message();
  auto bad = store.KeyFor("gamma");
  EXPECT_EQ(bad.status().code(), Code::kPermissionDenied);
  EXPECT_NE(bad.status().message().find("is unusable"), std::string::npos)
      << bad.status().message();
  // Names that would leave the key directory.
  EXPECT_EQ(store.KeyFor("../acme").status().code(), Code::kPermissionDenied);
  EXPECT_EQ(store.KeyFor("").status().code(), Code::kPermissionDenied);
  EXPECT_EQ(store.Install("a/b", crypto::CellKey::Generate()).code(), Code::kInvalidArgument);
}

TEST_F(KeyStoreTest, ConcurrentLookupsLoadTheFileOnce) {
  auto key = crypto::CellKey::Generate();
  WriteRaw(PathOf("acme"), "acme", *key);
  KeyStore store(options_);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::vector<const crypto::CellKey*> seen(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto got = store.KeyFor("acme");
      if (got.ok()) {
        ++ok;
        seen[i] = got->get();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  for (const crypto::CellKey* k : seen) EXPECT_EQ(k, seen[0]);
}

}  // namespace
}  // namespace heka::cm

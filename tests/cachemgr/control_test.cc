// ControlHandler's key operations (KEY_UNLOCK, KEY_STATUS) without a mount: who may unlock,
// what is installed, what is listed. Through a real cache manager: fs_cli_test.cc.
#include "cachemgr/control.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace heka::cm {
namespace {

namespace cpb = ::heka::cachemgr;

class ControlKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("heka-controlkeys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    KeyStoreOptions ko;
    ko.key_dir = dir_.string();
    keys_ = std::make_unique<KeyStore>(ko);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ControlHandler Handler(int64_t private_uid) {
    ControlHandlerOptions o;
    o.keys = keys_.get();
    o.private_uid = private_uid;
    return ControlHandler(o);
  }
  static cpb::ControlRequest Unlock(const std::string& cell, const crypto::CellKey& key) {
    cpb::ControlRequest req;
    req.set_op(cpb::KEY_UNLOCK);
    req.set_cell(cell);
    req.set_key(std::string(key.bytes()));
    return req;
  }

  std::filesystem::path dir_;
  std::unique_ptr<KeyStore> keys_;
};

TEST_F(ControlKeysTest, RootUnlocksAndAnyoneSeesTheFingerprint) {
  ControlHandler h = Handler(-1);
  auto key = crypto::CellKey::Generate();
  cpb::ControlReply rep = h.Handle(Caller{0, 0, 1}, Unlock("acme", *key));
  ASSERT_EQ(rep.code(), 0u) << rep.message();
  ASSERT_EQ(rep.keys_size(), 1);
  EXPECT_EQ(rep.keys(0).fingerprint(), crypto::Hex(key->fingerprint()));
  cpb::ControlRequest status;
  status.set_op(cpb::KEY_STATUS);
  rep = h.Handle(Caller{1000, 1000, 2}, status);
  ASSERT_EQ(rep.code(), 0u) << rep.message();
  ASSERT_EQ(rep.keys_size(), 1);
  EXPECT_EQ(rep.keys(0).cell(), "acme");
  EXPECT_EQ(rep.keys(0).fingerprint(), crypto::Hex(key->fingerprint()));
  EXPECT_EQ(rep.keys(0).source(), "unlocked");
  auto held = keys_->KeyFor("acme");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)->bytes(), key->bytes());
}

TEST_F(ControlKeysTest, OnlyRootOrThePrivateMountsUserMayUnlock) {
  auto key = crypto::CellKey::Generate();
  ControlHandler shared = Handler(-1);
  cpb::ControlReply rep = shared.Handle(Caller{1000, 1000, 1}, Unlock("acme", *key));
  EXPECT_EQ(rep.code(), static_cast<uint32_t>(Code::kPermissionDenied));
  EXPECT_EQ(rep.message(), "only root (or the user of a private mount) may unlock a cell key");
  EXPECT_TRUE(keys_->Status().empty());

  ControlHandler mine = Handler(1000);
  rep = mine.Handle(Caller{1001, 1001, 1}, Unlock("acme", *key));
  EXPECT_EQ(rep.code(), static_cast<uint32_t>(Code::kPermissionDenied));
  EXPECT_TRUE(keys_->Status().empty());
  rep = mine.Handle(Caller{1000, 1000, 1}, Unlock("acme", *key));
  EXPECT_EQ(rep.code(), 0u) << rep.message();
  EXPECT_EQ(keys_->Status().size(), 1u);
}

TEST_F(ControlKeysTest, ABadRequestIsRefused) {
  ControlHandler h = Handler(-1);
  cpb::ControlRequest req = Unlock("acme", *crypto::CellKey::Generate());
  req.set_key("short");
  EXPECT_EQ(h.Handle(Caller{0, 0, 1}, req).code(), static_cast<uint32_t>(Code::kInvalidArgument));
  req = Unlock("../acme", *crypto::CellKey::Generate());
  EXPECT_EQ(h.Handle(Caller{0, 0, 1}, req).code(), static_cast<uint32_t>(Code::kInvalidArgument));
  EXPECT_TRUE(keys_->Status().empty());
}

}  // namespace
}  // namespace heka::cm

// Tests of the file-system seam: PosixEnv basics and FaultEnv's fault and crash semantics.
#include "fileserver/volume/env.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace heka::fs {
namespace {

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/heka-env-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Status WriteFile(Env* env, const std::string& path, std::string_view data, bool sync) {
    auto f = env->NewWritableFile(path);
    if (!f.ok()) return f.status();
    if (Status s = (*f)->Append(AsBytes(data)); !s.ok()) return s;
    if (sync) {
      if (Status s = (*f)->Sync(); !s.ok()) return s;
    }
    return (*f)->Close();
  }
  std::string ReadAll(const std::string& path) {
    auto size = DefaultEnv()->FileSize(path);
    if (!size.ok()) return "<" + size.status().ToString() + ">";
    auto data = DefaultEnv()->ReadAt(path, 0, *size);
    return std::string(AsChars(*data));
  }

  std::string dir_;
};

TEST_F(EnvTest, PosixBasics) {
  Env* env = DefaultEnv();
  std::string a = dir_ + "/a", b = dir_ + "/b";
  ASSERT_TRUE(WriteFile(env, a, "hello", true).ok());
  EXPECT_EQ(*env->FileSize(a), 5u);
  EXPECT_EQ(AsChars(*env->ReadAt(a, 1, 10)), "ello");
  ASSERT_TRUE(env->Link(a, b).ok());
  EXPECT_EQ(*env->Inode(a), *env->Inode(b));
  EXPECT_EQ(env->Link(a, b).code(), Code::kAlreadyExists);
  ASSERT_TRUE(env->Unlink(b).ok());
  EXPECT_EQ(env->Unlink(b).code(), Code::kNotFound);
  EXPECT_EQ(env->ReadAt(b, 0, 1).status().code(), Code::kNotFound);
  EXPECT_EQ(env->MkDir(dir_).code(), Code::kAlreadyExists);
  auto names = env->ListDir(dir_);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a"});
}

TEST_F(EnvTest, CrashDropsUnsyncedBytesAndUnsyncedNames) {
  FaultEnv env(DefaultEnv());
  std::string durable = dir_ + "/durable", loose = dir_ + "/loose";
  ASSERT_TRUE(WriteFile(&env, durable, "synced", true).ok());
  ASSERT_TRUE(env.SyncDir(dir_).ok());
  {
    auto f = env.NewWritableFile(durable + "2");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(AsBytes("abc")).ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE((*f)->Append(AsBytes("def")).ok());  // never synced
  }
  ASSERT_TRUE(env.SyncDir(dir_).ok());
  ASSERT_TRUE(WriteFile(&env, loose, "x", true).ok());  // name never made durable
  ASSERT_TRUE(env.Crash().ok());
  EXPECT_EQ(ReadAll(durable), "synced");
  EXPECT_EQ(ReadAll(durable + "2"), "abc");
  EXPECT_FALSE(env.FileExists(loose));
}

TEST_F(EnvTest, CrashUndoesRenameLinkAndUnlinkWithoutDirSync) {
  FaultEnv env(DefaultEnv());
  std::string a = dir_ + "/a", b = dir_ + "/b", c = dir_ + "/c";
  ASSERT_TRUE(WriteFile(&env, a, "new", true).ok());
  ASSERT_TRUE(WriteFile(&env, b, "old", true).ok());
  ASSERT_TRUE(env.SyncDir(dir_).ok());
  ASSERT_TRUE(env.Rename(a, b).ok());
  ASSERT_TRUE(env.Link(b, c).ok());
  EXPECT_EQ(ReadAll(b), "new");
  ASSERT_TRUE(env.Crash().ok());
  EXPECT_EQ(ReadAll(a), "new");
  EXPECT_EQ(ReadAll(b), "old");
  EXPECT_FALSE(env.FileExists(c));

  ASSERT_TRUE(env.Unlink(b).ok());
  ASSERT_TRUE(env.Crash().ok());
  EXPECT_EQ(ReadAll(b), "old");
  ASSERT_TRUE(env.Unlink(b).ok());
  ASSERT_TRUE(env.SyncDir(dir_).ok());
  ASSERT_TRUE(env.Crash().ok());
  EXPECT_FALSE(env.FileExists(b));
}

TEST_F(EnvTest, InjectedWriteFailuresAndKill) {
  FaultEnv env(DefaultEnv());
  env.test_FailWrites(1, Code::kNoSpace);
  EXPECT_EQ(WriteFile(&env, dir_ + "/f", "data", true).code(), Code::kNoSpace);
  EXPECT_TRUE(WriteFile(&env, dir_ + "/f", "data", true).ok());
  EXPECT_EQ(env.bytes_written(), 4u);
  env.test_KillAfter(2);  // create + append succeed, sync fails
  EXPECT_EQ(WriteFile(&env, dir_ + "/g", "data", true).code(), Code::kIoError);
  EXPECT_EQ(env.SyncDir(dir_).code(), Code::kIoError);
  ASSERT_TRUE(env.Crash().ok());
  EXPECT_FALSE(env.FileExists(dir_ + "/g"));
  EXPECT_TRUE(env.SyncDir(dir_).ok());  // alive again after the crash
}

}  // namespace
}  // namespace heka::fs

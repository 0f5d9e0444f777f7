// CacheManagerConfig: the key settings (key_dir, [cachemgr.keys]) and the example file.
#include "cachemgr/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace heka::cm {
namespace {

const char* kRequired =
    "[cachemgr]\ndbservers = \"db1:7003\"\nkeytab = \"/k\"\nstate_dir = \"/s\"\n";

Result<CacheManagerConfig> LoadText(const std::string& text) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("heka-cmconfig-" + std::to_string(::getpid()) + ".toml"))
                         .string();
  std::ofstream(path) << text;
  auto config = CacheManagerConfig::Load(path);
  std::filesystem::remove(path);
  return config;
}

TEST(CacheManagerConfigTest, KeysDefaultToEtcHekaKeys) {
  auto c = LoadText(kRequired);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->key_dir, "/etc/heka/keys");
  EXPECT_TRUE(c->key_files.empty());
}

TEST(CacheManagerConfigTest, KeyDirAndPerCellKeyFiles) {
  auto c = LoadText(std::string(kRequired) +
                    "key_dir = \"/var/lib/keys\"\n[cachemgr.keys]\nacme = \"/a/acme.key\"\n"
                    "\"beta.example\" = \"/b.key\"\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->key_dir, "/var/lib/keys");
  EXPECT_EQ(c->key_files, (std::map<std::string, std::string>{{"acme", "/a/acme.key"},
                                                              {"beta.example", "/b.key"}}));
}

TEST(CacheManagerConfigTest, BadKeySettingsAreRefused) {
  EXPECT_EQ(LoadText(std::string(kRequired) + "[cachemgr.keys]\nacme = 3\n").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(LoadText(std::string(kRequired) + "keys = \"x\"\n").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(LoadText(std::string(kRequired) + "key_dir = \"\"\n").status().code(),
            Code::kInvalidArgument);
}

TEST(CacheManagerConfigTest, TheExampleFileLoads) {
  auto c = CacheManagerConfig::Load(HEKA_SOURCE_DIR "/etc/cachemgr.toml.example");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->key_dir, "/etc/heka/keys");
}

}  // namespace
}  // namespace heka::cm

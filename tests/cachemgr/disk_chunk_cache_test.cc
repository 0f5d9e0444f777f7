// DiskChunkCache: chunk files plus a SQLite index that survive a restart, and never serve a
// torn or corrupt chunk. Real files in a temporary directory.
#include "cachemgr/disk_chunk_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace heka::cm {
namespace {

namespace fs = std::filesystem;

const FileKey kA{"acme", 7, 1, 1};
const FileKey kB{"acme", 7, 2, 1};

class DiskChunkCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("heka-diskcache-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<DiskChunkCache> Open(uint64_t capacity = 1 << 20) {
    auto c = DiskChunkCache::Open(dir_, capacity);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // The chunk files on disk.
  std::vector<fs::path> Files() {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_ + "/chunks")) {
      if (e.is_regular_file()) out.push_back(e.path());
    }
    return out;
  }

  std::string dir_;
};

TEST_F(DiskChunkCacheTest, KeepsChunksAcrossARestart) {
  {
    auto c = Open();
    c->Put(kA, 3, 0, "chunk zero");
    c->Put(kA, 3, 1, "chunk one");
    c->Put(kB, 9, 0, std::string(1000, 'b'));
  }
  auto c = Open();
  EXPECT_EQ(c->Get(kA, 3, 0), "chunk zero");
  EXPECT_EQ(c->Get(kA, 3, 1), "chunk one");
  EXPECT_EQ(c->Get(kB, 9, 0), std::string(1000, 'b'));
  EXPECT_FALSE(c->Get(kA, 4, 0));  // another version
  EXPECT_EQ(c->Usage().bytes, 10u + 9u + 1000u);
  auto versions = c->Versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0], std::make_pair(kA, uint64_t{3}));
  EXPECT_EQ(versions[1], std::make_pair(kB, uint64_t{9}));
}

TEST_F(DiskChunkCacheTest, ACorruptOrTruncatedChunkIsNeverServed) {
  {
    auto c = Open();
    c->Put(kA, 1, 0, std::string(4096, 'x'));
    c->Put(kA, 1, 1, std::string(4096, 'y'));
  }
  auto files = Files();
  ASSERT_EQ(files.size(), 2u);
  {  // one flipped byte in one, the other cut short
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('!');
  }
  fs::resize_file(files[1], 1000);
  auto c = Open();
  EXPECT_FALSE(c->Get(kA, 1, 0));
  EXPECT_FALSE(c->Get(kA, 1, 1));
  EXPECT_EQ(c->Usage().chunks, 0u) << "a bad chunk is dropped";
  EXPECT_TRUE(Files().empty());
  c->Put(kA, 1, 0, std::string(4096, 'x'));  // fetched again
  EXPECT_EQ(c->Get(kA, 1, 0), std::string(4096, 'x'));
}

TEST_F(DiskChunkCacheTest, StrayAndHalfWrittenFilesAreRemovedAtOpen) {
  {
    auto c = Open();
    c->Put(kA, 1, 0, "kept");
  }
  std::ofstream(dir_ + "/chunks/00/999.tmp") << "half a chunk";
  std::ofstream(dir_ + "/chunks/07/1007") << "a chunk whose row never went in";
  auto c = Open();
  EXPECT_EQ(c->Get(kA, 1, 0), "kept");
  EXPECT_FALSE(fs::exists(dir_ + "/chunks/00/999.tmp"));
  EXPECT_FALSE(fs::exists(dir_ + "/chunks/07/1007"));
  EXPECT_EQ(Files().size(), 1u);
}

TEST_F(DiskChunkCacheTest, AProcessKilledWhileWritingLeavesNoUsableHalfChunk) {
  // The child writes half of its second chunk and dies; the cache opened after it has the
  // first chunk only, and no trace of the second.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = DiskChunkCache::Open(dir_, 1 << 20);
    if (!c.ok()) ::_exit(3);
    (*c)->test_hook = [](const char* step, uint64_t n) {
      if (std::string(step) == "write" && n == 2) ::_exit(9);
    };
    (*c)->Put(kA, 1, 0, std::string(8192, 'a'));
    (*c)->Put(kA, 1, 1, std::string(8192, 'b'));
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 9);
  auto c = Open();
  EXPECT_EQ(c->Get(kA, 1, 0), std::string(8192, 'a'));
  EXPECT_FALSE(c->Get(kA, 1, 1));
  EXPECT_EQ(Files().size(), 1u);
}

TEST_F(DiskChunkCacheTest, TheBoundHoldsAndTheLeastRecentlyUsedGoFirstEvenAfterARestart) {
  {
    auto c = Open(3000);
    c->Put(kA, 1, 0, std::string(1000, 'a'));
    c->Put(kA, 1, 1, std::string(1000, 'b'));
    c->Put(kA, 1, 2, std::string(1000, 'c'));
    ASSERT_TRUE(c->Get(kA, 1, 0));  // the most recent now
  }
  auto c = Open(3000);
  c->Put(kB, 1, 0, std::string(1000, 'd'));  // evicts chunk 1, the least recently used
  EXPECT_TRUE(c->Get(kA, 1, 0));
  EXPECT_FALSE(c->Get(kA, 1, 1));
  EXPECT_TRUE(c->Get(kA, 1, 2));
  EXPECT_LE(c->Usage().bytes, 3000u);
  EXPECT_EQ(Files().size(), 3u);
  c->SetCapacity(1000);
  EXPECT_EQ(c->Usage().chunks, 1u);
  EXPECT_EQ(Files().size(), 1u);
  c.reset();
  EXPECT_EQ(Open(500)->Usage().chunks, 0u) << "opening with a smaller bound evicts";
}

TEST_F(DiskChunkCacheTest, AnotherChunkSizeEmptiesTheCache) {
  {
    auto c = Open();
    c->Put(kA, 1, 0, "one MiB chunks");
  }
  {
    auto c = DiskChunkCache::Open(dir_, 1 << 20, 1 << 20);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ((*c)->Get(kA, 1, 0), "one MiB chunks");
  }
  auto c = DiskChunkCache::Open(dir_, 1 << 20, 64 << 10);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE((*c)->Get(kA, 1, 0));
  EXPECT_TRUE(Files().empty());
}

TEST_F(DiskChunkCacheTest, AdvanceAndDropLastAcrossARestart) {
  {
    auto c = Open();
    c->Put(kA, 5, 0, "zero");
    c->Put(kA, 5, 1, "one");
    c->Put(kA, 5, 2, "two");
    c->Put(kB, 5, 0, "other");
    c->Advance(kA, 5, 6, 2, {});
    c->Drop(kB);
  }
  auto c = Open();
  EXPECT_EQ(c->Get(kA, 6, 0), "zero");
  EXPECT_EQ(c->Get(kA, 6, 1), "one");
  EXPECT_FALSE(c->Get(kA, 6, 2));
  EXPECT_FALSE(c->Get(kA, 5, 0));
  EXPECT_FALSE(c->Get(kB, 5, 0));
  EXPECT_EQ(Files().size(), 2u);
  c->Put(FileKey{"acme", 8, 1, 1}, 1, 0, "another volume");
  c->DropVolume("acme", 7);
  EXPECT_FALSE(c->Get(kA, 6, 0));
  EXPECT_TRUE(c->Get(FileKey{"acme", 8, 1, 1}, 1, 0));
  EXPECT_EQ(Files().size(), 1u);
}

}  // namespace
}  // namespace heka::cm

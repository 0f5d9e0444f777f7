// MemoryChunkCache: bytes by (file, version, index), within a bound, least recently used out.
#include "cachemgr/chunk_cache.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace heka::cm {
namespace {

const FileKey kA{"acme", 7, 1, 1};
const FileKey kB{"acme", 7, 2, 1};

TEST(MemoryChunkCacheTest, ServesOnlyTheVersionItWasGiven) {
  MemoryChunkCache cache(1 << 20);
  cache.Put(kA, 3, 0, "version three");
  EXPECT_EQ(cache.Get(kA, 3, 0), "version three");
  EXPECT_EQ(cache.Get(kA, 4, 0), std::nullopt);
  EXPECT_EQ(cache.Get(kA, 3, 1), std::nullopt);
  EXPECT_EQ(cache.Get(kB, 3, 0), std::nullopt);
  cache.Put(kA, 3, 0, "again");
  EXPECT_EQ(cache.Get(kA, 3, 0), "again");
  EXPECT_EQ(cache.Usage().bytes, 5u);
}

TEST(MemoryChunkCacheTest, StaysWithinItsBoundDroppingTheLeastRecentlyUsed) {
  MemoryChunkCache cache(300);
  cache.Put(kA, 1, 0, std::string(100, 'a'));
  cache.Put(kA, 1, 1, std::string(100, 'b'));
  cache.Put(kA, 1, 2, std::string(100, 'c'));
  ASSERT_TRUE(cache.Get(kA, 1, 0));  // now the most recent: chunk 1 goes first
  cache.Put(kB, 1, 0, std::string(100, 'd'));
  EXPECT_TRUE(cache.Get(kA, 1, 0));
  EXPECT_FALSE(cache.Get(kA, 1, 1));
  EXPECT_TRUE(cache.Get(kA, 1, 2));
  EXPECT_TRUE(cache.Get(kB, 1, 0));
  ChunkCacheUsage u = cache.Usage();
  EXPECT_EQ(u.bytes, 300u);
  EXPECT_EQ(u.chunks, 3u);
  EXPECT_EQ(u.evicted, 1u);
  cache.Put(kB, 1, 1, std::string(301, 'x'));  // larger than the bound: not held
  EXPECT_FALSE(cache.Get(kB, 1, 1));
  EXPECT_LE(cache.Usage().bytes, 300u);
  cache.SetCapacity(150);  // smaller: evicts at once
  EXPECT_EQ(cache.Usage().chunks, 1u);
  EXPECT_EQ(cache.Usage().capacity, 150u);
}

TEST(MemoryChunkCacheTest, AdvanceCarriesChunksToTheNewVersionAndDropsTheRest) {
  MemoryChunkCache cache(1 << 20);
  cache.Put(kA, 5, 0, "zero");
  cache.Put(kA, 5, 1, "one");
  cache.Put(kA, 5, 2, "two");
  cache.Put(kA, 4, 0, "older");
  cache.Put(kB, 5, 0, "other file");
  cache.Put(kA, 5, 3, "three");
  cache.Advance(kA, 5, 6, 4, {1, 3});  // chunks 1 and 3 rewritten; four chunks
  cache.Put(kA, 6, 1, "new one");
  EXPECT_EQ(cache.Get(kA, 6, 0), "zero");
  EXPECT_EQ(cache.Get(kA, 6, 1), "new one");
  EXPECT_FALSE(cache.Get(kA, 6, 3)) << "a rewritten chunk is not carried over";
  EXPECT_EQ(cache.Get(kA, 6, 2), "two");
  EXPECT_FALSE(cache.Get(kA, 5, 0));
  EXPECT_FALSE(cache.Get(kA, 4, 0));
  EXPECT_EQ(cache.Get(kB, 5, 0), "other file");
  EXPECT_EQ(cache.Usage().bytes, 4u + 7u + 3u + 10u);
  cache.Drop(kA);
  EXPECT_FALSE(cache.Get(kA, 6, 0));
  EXPECT_EQ(cache.Usage().chunks, 1u);
  cache.Put(FileKey{"acme", 8, 1, 1}, 1, 0, "another volume");
  cache.Put(FileKey{"globex", 7, 1, 1}, 1, 0, "another cell");
  cache.DropVolume("acme", 7);
  EXPECT_FALSE(cache.Get(kB, 5, 0));
  EXPECT_TRUE(cache.Get(FileKey{"acme", 8, 1, 1}, 1, 0));
  EXPECT_TRUE(cache.Get(FileKey{"globex", 7, 1, 1}, 1, 0));
}

TEST(MemoryChunkCacheTest, ManyThreadsKeepTheBound) {
  MemoryChunkCache cache(64 * 1024);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      FileKey f{"acme", 1, static_cast<uint64_t>(t), 1};
      for (uint64_t i = 0; i < 500; ++i) {
        cache.Put(f, 1, i % 50, std::string(1024, static_cast<char>('a' + t)));
        auto got = cache.Get(f, 1, (i * 7) % 50);
        if (got) {
          ASSERT_EQ(*got, std::string(1024, static_cast<char>('a' + t)));
        }
        if (i % 100 == 0) cache.Advance(f, 1, 1, 40, {});
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.Usage().bytes, 64u * 1024u);
}

}  // namespace
}  // namespace heka::cm

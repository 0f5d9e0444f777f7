// Tests of Volume's file data: stores, reads, size changes, quota, crash atomicity with
// FaultEnv, and clones.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "fileserver/volume/volume.h"

namespace heka::fs {
namespace {

constexpr uint64_t kSmallChunk = 64 * 1024;

Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 31 + i / 997);
  return b;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/heka-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.partition = dir_;
    options_.env = &env_;
    options_.chunk_size = kSmallChunk;
    options_.inline_limit = 0;  // these tests are about chunk files; inline: volume_inline_test
  }
  void TearDown() override {
    vol_.reset();
    std::filesystem::remove_all(dir_);
  }
  void MakeVolume(uint64_t id = 7) {
    auto v = Volume::Create(options_, id, "v", VolumeType::kReadWrite, 0);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
    auto f = vol_->CreateFile(kRootVnode, "f", {});
    ASSERT_TRUE(f.ok());
    file_ = f->vnode;
  }
  // Replaces the whole content of `vnode` with `data`.
  static Status StoreAll(Volume& vol, uint64_t vnode, const Bytes& data) {
    auto store = vol.BeginStore(vnode);
    if (!store.ok()) return store.status();
    const uint64_t cs = vol.chunk_size();
    for (uint64_t off = 0; off < data.size(); off += cs) {
      size_t n = std::min<uint64_t>(cs, data.size() - off);
      Status s = (*store)->WriteChunk(off / cs, ByteView(data).subspan(off, n));
      if (!s.ok()) return (*store)->Commit(data.size());  // refuses and aborts
    }
    return (*store)->Commit(data.size());
  }
  // Writes `data` at `offset`, rewriting only the chunks it touches (read-modify-write).
  static Status StoreAt(Volume& vol, uint64_t vnode, uint64_t offset, const Bytes& data) {
    auto v = vol.GetVnode(vnode);
    if (!v.ok()) return v.status();
    auto store = vol.BeginStore(vnode);
    if (!store.ok()) return store.status();
    const uint64_t cs = vol.chunk_size(), end = offset + data.size();
    const uint64_t new_size = std::max(v->size, end);
    for (uint64_t index = offset / cs; index * cs < end; ++index) {
      auto chunk = vol.Read(vnode, index * cs, cs);
      if (!chunk.ok()) return chunk.status();
      chunk->resize(std::min(cs, new_size - index * cs), 0);
      uint64_t from = std::max(offset, index * cs), to = std::min(end, (index + 1) * cs);
      std::copy(data.begin() + (from - offset), data.begin() + (to - offset),
                chunk->begin() + (from - index * cs));
      if (Status s = (*store)->WriteChunk(index, *chunk); !s.ok()) return s;
    }
    return (*store)->Commit(new_size);
  }
  Bytes ReadAll(Volume& vol, uint64_t vnode) {
    auto v = vol.GetVnode(vnode);
    EXPECT_TRUE(v.ok());
    auto data = vol.Read(vnode, 0, v->size);
    EXPECT_TRUE(data.ok()) << data.status().ToString();
    return data.ok() ? *data : Bytes();
  }
  size_t ChunkFiles(uint64_t id) {
    return std::distance(
        std::filesystem::directory_iterator(dir_ + "/V" + std::to_string(id) + "/c"),
        std::filesystem::directory_iterator());
  }

  std::string dir_;
  FaultEnv env_{DefaultEnv()};
  VolumeOptions options_;
  std::unique_ptr<Volume> vol_;
  uint64_t file_ = 0;
};

TEST_F(StoreTest, StoreReadTruncateExtendAndHoles) {
  MakeVolume();
  Bytes data = Pattern(2 * kSmallChunk + 100, 1);
  ASSERT_TRUE(StoreAll(*vol_, file_, data).ok());
  auto v = vol_->GetVnode(file_);
  EXPECT_EQ(v->size, data.size());
  EXPECT_EQ(v->data_version, 2u);
  EXPECT_EQ(vol_->Header()->usage_bytes, data.size());
  EXPECT_EQ(ReadAll(*vol_, file_), data);
  EXPECT_EQ(*vol_->Read(file_, kSmallChunk - 5, 10),
            Bytes(data.begin() + kSmallChunk - 5, data.begin() + kSmallChunk + 5));
  EXPECT_TRUE(vol_->Read(file_, data.size(), 10)->empty());
  EXPECT_EQ(ChunkFiles(7), 3u);

  // Truncate into chunk 1, then extend: the cut-off bytes read back as zeros.
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = kSmallChunk + 10}).ok());
  EXPECT_EQ(ChunkFiles(7), 2u);
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 3 * kSmallChunk}).ok());
  Bytes expect(data.begin(), data.begin() + kSmallChunk + 10);
  expect.resize(3 * kSmallChunk, 0);
  EXPECT_EQ(ReadAll(*vol_, file_), expect);
  EXPECT_EQ(vol_->Header()->usage_bytes, 3 * kSmallChunk);

  // A store of only chunk 2 of a fresh file: chunks 0 and 1 are holes.
  auto g = vol_->CreateFile(kRootVnode, "g", {});
  auto store = vol_->BeginStore(g->vnode);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(vol_->BeginStore(g->vnode).status().code(), Code::kLocked);
  ASSERT_TRUE((*store)->WriteChunk(2, Pattern(10, 5)).ok());
  ASSERT_TRUE((*store)->Commit(2 * kSmallChunk + 10).ok());
  Bytes holes(2 * kSmallChunk, 0);
  Bytes tail = Pattern(10, 5);
  holes.insert(holes.end(), tail.begin(), tail.end());
  EXPECT_EQ(ReadAll(*vol_, g->vnode), holes);
  EXPECT_EQ(vol_->BeginStore(kRootVnode).status().code(), Code::kIsDirectory);
  EXPECT_EQ(vol_->Read(kRootVnode, 0, 1).status().code(), Code::kIsDirectory);
}

TEST_F(StoreTest, AbortAndRemoveLeaveNoChunks) {
  MakeVolume();
  ASSERT_TRUE(StoreAll(*vol_, file_, Pattern(100, 1)).ok());
  {
    auto store = vol_->BeginStore(file_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->WriteChunk(0, Pattern(50, 2)).ok());
    ASSERT_TRUE((*store)->WriteChunk(1, Pattern(50, 2)).ok());
    EXPECT_EQ(ChunkFiles(7), 3u);
    ASSERT_TRUE((*store)->Abort().ok());
  }
  EXPECT_EQ(ChunkFiles(7), 1u);
  EXPECT_EQ(ReadAll(*vol_, file_), Pattern(100, 1));
  ASSERT_TRUE(vol_->Remove(kRootVnode, "f").ok());
  EXPECT_EQ(ChunkFiles(7), 0u);
  EXPECT_EQ(vol_->Header()->usage_bytes, 0u);
}

TEST_F(StoreTest, SmallStoreIntoLargeFileRewritesOneChunk) {
  options_.chunk_size = 1 << 20;
  MakeVolume();
  const uint64_t size = 64ull << 20;
  Bytes data = Pattern(size, 3);
  ASSERT_TRUE(StoreAll(*vol_, file_, data).ok());
  env_.ResetCounters();
  Bytes patch = Pattern(4096, 9);
  const uint64_t offset = (10ull << 20) + 100;
  ASSERT_TRUE(StoreAt(*vol_, file_, offset, patch).ok());
  EXPECT_EQ(env_.bytes_written(), 1u << 20);  // exactly one chunk
  EXPECT_EQ(ChunkFiles(7), 64u);
  std::copy(patch.begin(), patch.end(), data.begin() + offset);
  EXPECT_EQ(*vol_->Read(file_, offset - 10, 5000),
            Bytes(data.begin() + offset - 10, data.begin() + offset + 4990));
  EXPECT_EQ(ReadAll(*vol_, file_), data);
}

// Kills the process (every later file call fails) after each possible number of file
// operations of a store, then crashes (unsynced data and names dropped) and reopens: the
// file is exactly the old or exactly the new content, never a mix.
TEST_F(StoreTest, CrashAtEveryPointOfAStoreIsAtomic) {
  const Bytes old_data = Pattern(2 * kSmallChunk + 7, 1);
  const Bytes new_data = Pattern(3 * kSmallChunk - 5, 2);
  int saw_old = 0, saw_new = 0;
  for (int64_t k = 0;; ++k) {
    uint64_t id = 100 + k;
    MakeVolume(id);
    ASSERT_TRUE(StoreAll(*vol_, file_, old_data).ok());
    env_.test_KillAfter(k);
    Status s = StoreAll(*vol_, file_, new_data);
    vol_.reset();
    ASSERT_TRUE(env_.Crash().ok());
    auto v = Volume::Open(options_, id);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
    Bytes got = ReadAll(*vol_, file_);
    if (got == old_data) {
      saw_old++;
      EXPECT_FALSE(s.ok()) << "kill point " << k;
    } else {
      ASSERT_EQ(got, new_data) << "kill point " << k << ": a mix";
      saw_new++;
    }
    if (s.ok() && got == new_data && saw_new > 2) break;  // the kill came after the store
    ASSERT_LT(k, 200) << "store never completed";
  }
  EXPECT_GT(saw_old, 5);
  EXPECT_GT(saw_new, 0);
}

TEST_F(StoreTest, NoSpaceDuringStoreKeepsOldContents) {
  MakeVolume();
  Bytes old_data = Pattern(2 * kSmallChunk, 1);
  ASSERT_TRUE(StoreAll(*vol_, file_, old_data).ok());
  uint64_t usage = vol_->Header()->usage_bytes;
  auto store = vol_->BeginStore(file_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->WriteChunk(0, Pattern(kSmallChunk, 2)).ok());
  env_.test_FailWrites(1, Code::kNoSpace);
  EXPECT_EQ((*store)->WriteChunk(1, Pattern(kSmallChunk, 2)).code(), Code::kNoSpace);
  EXPECT_EQ((*store)->Commit(3 * kSmallChunk).code(), Code::kNoSpace);
  EXPECT_EQ(ReadAll(*vol_, file_), old_data);
  EXPECT_EQ(vol_->Header()->usage_bytes, usage);
  EXPECT_EQ(vol_->GetVnode(file_)->data_version, 2u);
  EXPECT_EQ(ChunkFiles(7), 2u);                              // new chunks and temp files removed
  EXPECT_TRUE(StoreAll(*vol_, file_, Pattern(10, 3)).ok());  // and the file still works
}

TEST_F(StoreTest, QuotaExceededChangesNothing) {
  MakeVolume();
  ASSERT_TRUE(vol_->SetQuota(kSmallChunk).ok());
  ASSERT_TRUE(StoreAll(*vol_, file_, Pattern(kSmallChunk - 10, 1)).ok());
  auto before = vol_->GetVnode(file_);
  EXPECT_EQ(StoreAll(*vol_, file_, Pattern(kSmallChunk + 1, 2)).code(), Code::kQuotaExceeded);
  EXPECT_EQ(vol_->SetAttr(file_, {.size = kSmallChunk + 1}).status().code(), Code::kQuotaExceeded);
  EXPECT_EQ(vol_->GetVnode(file_)->data_version, before->data_version);
  EXPECT_EQ(ReadAll(*vol_, file_), Pattern(kSmallChunk - 10, 1));
  EXPECT_EQ(vol_->Header()->usage_bytes, kSmallChunk - 10);
  EXPECT_EQ(ChunkFiles(7), 1u);
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = kSmallChunk}).ok());  // up to the quota is fine
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "g", {}).status().code(), Code::kQuotaExceeded);
  EXPECT_EQ(vol_->Symlink(kRootVnode, "l", "t", {}).status().code(), Code::kQuotaExceeded);
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 0}).ok());  // shrinking always works
  EXPECT_TRUE(vol_->CreateFile(kRootVnode, "g", {}).ok());
}

// Readers running alongside stores see exactly one version's content.
TEST_F(StoreTest, ConcurrentReadersNeverSeeAMix) {
  MakeVolume();
  const Bytes a = Pattern(3 * kSmallChunk, 1), b = Pattern(3 * kSmallChunk, 2);
  ASSERT_TRUE(StoreAll(*vol_, file_, a).ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, mixes{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto data = vol_->Read(file_, 0, 3 * kSmallChunk);
      if (!data.ok() || (*data != a && *data != b)) mixes++;
      reads++;
    }
  });
  // At least 40 stores, and more until the reader has overlapped some of them (on a busy
  // machine the reader thread may start late).
  for (int i = 0; i < 40 || (reads.load() < 20 && i < 100000); ++i)
    ASSERT_TRUE(StoreAll(*vol_, file_, i % 2 ? a : b).ok());
  done = true;
  reader.join();
  EXPECT_EQ(mixes.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

TEST_F(StoreTest, CloneSharesChunksAndIsCopyOnWrite) {
  MakeVolume();
  Bytes old_data = Pattern(2 * kSmallChunk + 3, 1);
  ASSERT_TRUE(StoreAll(*vol_, file_, old_data).ok());
  auto clone = vol_->Clone(8, "v.backup", VolumeType::kBackup);
  ASSERT_TRUE(clone.ok()) << clone.status().ToString();
  auto header = (*clone)->Header();
  EXPECT_EQ(header->id, 8u);
  EXPECT_EQ(header->type, VolumeType::kBackup);
  EXPECT_EQ(header->parent_id, 7u);
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/V7/c")) {
    std::string twin = dir_ + "/V8/c/" + entry.path().filename().string();
    EXPECT_EQ(*env_.Inode(entry.path()), *env_.Inode(twin));
  }
  EXPECT_EQ(ChunkFiles(8), 3u);
  EXPECT_EQ(vol_->Clone(8, "again", VolumeType::kBackup).status().code(), Code::kAlreadyExists);

  Bytes new_data = Pattern(kSmallChunk, 2);
  ASSERT_TRUE(StoreAt(*vol_, file_, 10, new_data).ok());
  ASSERT_TRUE(vol_->Remove(kRootVnode, "f").ok());
  EXPECT_EQ(ReadAll(**clone, file_), old_data);
  EXPECT_TRUE((*clone)->Lookup(kRootVnode, "f").ok());
  clone->reset();
  auto reopened = Volume::Open(options_, 8);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(ReadAll(**reopened, file_), old_data);
}

}  // namespace
}  // namespace heka::fs

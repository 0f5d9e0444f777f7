// Tests of small files inline in the volume's metadata database: round trips, growth past
// the inline limit and shrinking below it against a reference, clones, crashes (FaultEnv for
// the chunk files, a killed process for SQLite), and CreateFile with data.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "fileserver/volume/salvage.h"
#include "fileserver/volume/volume.h"

namespace heka::fs {
namespace {

constexpr uint64_t kChunk = 4096;
constexpr uint64_t kLimit = 3000;  // below the chunk size: sizes cross both

Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 13 + i / 251);
  return b;
}

// The seed of the randomised tests: HEKA_SEED if set, else a fixed one. Printed on failure.
uint64_t TestSeed() {
  const char* env = std::getenv("HEKA_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 20261122;
}

class InlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/heka-inline-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.partition = dir_;
    options_.env = &env_;
    options_.chunk_size = kChunk;
    options_.inline_limit = kLimit;
  }
  void TearDown() override {
    vol_.reset();
    std::filesystem::remove_all(dir_);
  }
  void MakeVolume(uint64_t id = 7, uint64_t quota = 0) {
    auto v = Volume::Create(options_, id, "v", VolumeType::kReadWrite, quota);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
    auto f = vol_->CreateFile(kRootVnode, "f", {});
    ASSERT_TRUE(f.ok());
    file_ = f->vnode;
  }
  void Reopen(uint64_t id = 7) {
    vol_.reset();
    auto v = Volume::Open(options_, id);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
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
  // Writes `data` at `offset`, rewriting only the chunks it touches (read-modify-write, as
  // the file server does).
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
    auto data = vol.Read(vnode, 0, v.ok() ? v->size : 0);
    EXPECT_TRUE(data.ok()) << data.status().ToString();
    return data.ok() ? *data : Bytes();
  }
  size_t ChunkFiles(uint64_t id = 7) {
    return std::distance(
        std::filesystem::directory_iterator(dir_ + "/V" + std::to_string(id) + "/c"),
        std::filesystem::directory_iterator());
  }
  SalvageReport Salvage(uint64_t id = 7) {
    vol_.reset();
    auto lock = PartitionLock::Acquire(dir_);
    EXPECT_TRUE(lock.ok()) << lock.status().ToString();
    auto report = SalvageVolume(options_, id, **lock);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : SalvageReport{};
  }

  std::string dir_;
  FaultEnv env_{DefaultEnv()};
  VolumeOptions options_;
  std::unique_ptr<Volume> vol_;
  uint64_t file_ = 0;
};

TEST_F(InlineTest, SmallFileRoundTripWritesNoFile) {
  MakeVolume();
  EXPECT_EQ(vol_->inline_limit(), kLimit);
  env_.ResetCounters();
  const Bytes data = Pattern(2000, 1);
  ASSERT_TRUE(StoreAll(*vol_, file_, data).ok());
  EXPECT_EQ(env_.syncs(), 0u);  // one SQLite commit, no chunk file
  EXPECT_EQ(env_.bytes_written(), 0u);
  EXPECT_EQ(ChunkFiles(), 0u);
  auto v = vol_->GetVnode(file_);
  EXPECT_EQ(v->size, 2000u);
  EXPECT_EQ(v->data_version, 2u);
  EXPECT_EQ(ReadAll(*vol_, file_), data);
  EXPECT_EQ(*vol_->Read(file_, 1990, 100), Bytes(data.begin() + 1990, data.end()));
  EXPECT_EQ(vol_->Header()->usage_bytes, 2000u);
  EXPECT_EQ(vol_->Header()->bytes_stored, 2000u);

  // Extending (here past the limit) stores nothing: the tail reads as zeros.
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 2 * kChunk}).ok());
  Bytes expect = data;
  expect.resize(2 * kChunk, 0);
  EXPECT_EQ(ReadAll(*vol_, file_), expect);
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 500}).ok());
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 700}).ok());
  expect.assign(data.begin(), data.begin() + 500);
  expect.resize(700, 0);
  EXPECT_EQ(ReadAll(*vol_, file_), expect);
  EXPECT_EQ(ChunkFiles(), 0u);
  Reopen();
  EXPECT_EQ(ReadAll(*vol_, file_), expect);
  EXPECT_EQ(vol_->Header()->usage_bytes, 700u);

  // A chunk 0 of more than the limit is a chunk file; truncating brings the file back inline.
  ASSERT_TRUE(StoreAll(*vol_, file_, Pattern(kLimit + 1, 2)).ok());
  EXPECT_EQ(ChunkFiles(), 1u);
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = kLimit}).ok());
  EXPECT_EQ(ChunkFiles(), 0u);
  EXPECT_EQ(ReadAll(*vol_, file_), Pattern(kLimit, 2));
  ASSERT_TRUE(vol_->Remove(kRootVnode, "f").ok());
  EXPECT_EQ(vol_->Header()->usage_bytes, 0u);
}

TEST_F(InlineTest, ChunkZeroLargerThanTheCommittedSizeIsClipped) {
  MakeVolume();
  auto store = vol_->BeginStore(file_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->WriteChunk(0, Pattern(kChunk, 3)).ok());
  ASSERT_TRUE((*store)->Commit(100).ok());
  EXPECT_EQ(ReadAll(*vol_, file_), Pattern(100, 3));
  EXPECT_EQ(ChunkFiles(), 0u);  // moved inline, the chunk file dropped
  ASSERT_TRUE(vol_->SetAttr(file_, {.size = 200}).ok());
  Bytes expect = Pattern(100, 3);
  expect.resize(200, 0);
  EXPECT_EQ(ReadAll(*vol_, file_), expect);
}

// Random stores (whole and partial), truncations and extensions with sizes around the inline
// limit and the chunk boundaries; after each, the file equals a reference, and a file within
// the limit has no chunk files. Ends with a clean salvage.
TEST_F(InlineTest, RandomStoresAndResizesMatchAReference) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with HEKA_SEED=" + std::to_string(seed) +
               ")");
  std::mt19937_64 rng(seed);
  MakeVolume();
  const std::vector<uint64_t> points = {0,          1,          kLimit - 1,    kLimit,
                                        kLimit + 1, kChunk - 1, kChunk,        kChunk + 1,
                                        2 * kChunk, 3 * kChunk, 3 * kChunk + 1};
  auto point = [&] {
    int64_t p = static_cast<int64_t>(points[rng() % points.size()]);
    if (rng() % 2) p += static_cast<int64_t>(rng() % 101) - 50;
    return static_cast<uint64_t>(std::max<int64_t>(0, p));
  };
  auto random_bytes = [&](size_t n) {
    Bytes b(n);
    for (auto& c : b) c = static_cast<uint8_t>(rng());
    return b;
  };
  Bytes ref;
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE("operation " + std::to_string(i));
    int op = static_cast<int>(rng() % 10);
    if (op < 4) {
      uint64_t offset = point();
      Bytes data = random_bytes(1 + rng() % (kChunk + 600));
      ASSERT_TRUE(StoreAt(*vol_, file_, offset, data).ok());
      if (ref.size() < offset + data.size()) ref.resize(offset + data.size(), 0);
      std::copy(data.begin(), data.end(), ref.begin() + offset);
    } else if (op < 6) {
      ref = random_bytes(point());
      ASSERT_TRUE(StoreAll(*vol_, file_, ref).ok());
    } else if (op < 9) {
      uint64_t size = point();
      ASSERT_TRUE(vol_->SetAttr(file_, {.size = size}).ok());
      ref.resize(size, 0);
    } else {
      // Chunk 0 rewritten, committed with a size that may cut it (and drop later chunks).
      Bytes chunk = random_bytes(1 + rng() % kChunk);
      uint64_t size = 1 + rng() % chunk.size();
      auto store = vol_->BeginStore(file_);
      ASSERT_TRUE(store.ok());
      ASSERT_TRUE((*store)->WriteChunk(0, chunk).ok());
      ASSERT_TRUE((*store)->Commit(size).ok());
      ref.assign(chunk.begin(), chunk.begin() + size);
    }
    if (i % 50 == 49) Reopen();
    ASSERT_EQ(vol_->GetVnode(file_)->size, ref.size());
    ASSERT_EQ(ReadAll(*vol_, file_), ref);
    ASSERT_EQ(vol_->Header()->usage_bytes, ref.size());
    if (ref.size() <= kLimit) {
      ASSERT_EQ(ChunkFiles(), 0u) << ref.size() << " bytes";
    } else {
      ASSERT_LE(ChunkFiles(), (ref.size() + kChunk - 1) / kChunk);
    }
  }
  SalvageReport report = Salvage();
  EXPECT_TRUE(report.clean()) << report.Summary();
}

TEST_F(InlineTest, CloneKeepsInlineContentIndependently) {
  MakeVolume();
  const Bytes old_f = Pattern(2000, 1), old_g = Pattern(100, 2);
  ASSERT_TRUE(StoreAll(*vol_, file_, old_f).ok());
  auto g = vol_->CreateFile(kRootVnode, "g", {}, old_g);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto clone = vol_->Clone(8, "v.backup", VolumeType::kBackup);
  ASSERT_TRUE(clone.ok()) << clone.status().ToString();
  EXPECT_EQ(ChunkFiles(8), 0u);  // nothing to link
  EXPECT_EQ((*clone)->inline_limit(), kLimit);

  ASSERT_TRUE(StoreAll(*vol_, file_, Pattern(2500, 3)).ok());            // inline → inline
  ASSERT_TRUE(StoreAt(*vol_, file_, kChunk + 10, Pattern(50, 4)).ok());  // → chunks
  ASSERT_TRUE(StoreAll(*vol_, g->vnode, Pattern(50, 5)).ok());
  EXPECT_EQ(ReadAll(**clone, file_), old_f);
  EXPECT_EQ(ReadAll(**clone, g->vnode), old_g);
  ASSERT_TRUE(vol_->Remove(kRootVnode, "f").ok());
  ASSERT_TRUE(vol_->Remove(kRootVnode, "g").ok());
  clone->reset();
  auto reopened = Volume::Open(options_, 8);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(ReadAll(**reopened, file_), old_f);
  EXPECT_EQ(ReadAll(**reopened, g->vnode), old_g);
  EXPECT_EQ(ChunkFiles(8), 0u);
}

// Before a backup, small files move from the database into chunk files, which the clone then
// shares: the content reads the same in both, later changes of either stay apart, the
// salvager finds nothing to mend, and a crash in the middle loses nothing.
TEST_F(InlineTest, SpilledSmallFilesAreSharedWithAClone) {
  MakeVolume();
  std::vector<std::pair<uint64_t, Bytes>> files;
  for (int i = 0; i < 40; ++i) {
    Bytes data = Pattern(100 + static_cast<size_t>(i) * 70, static_cast<uint8_t>(i));
    auto f = vol_->CreateFile(kRootVnode, "s" + std::to_string(i), {}, data);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    files.emplace_back(f->vnode, data);
  }
  auto before = vol_->Header();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(ChunkFiles(), 0u);
  auto moved = vol_->SpillInline();
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 40u);
  EXPECT_EQ(ChunkFiles(), 40u);
  auto after = vol_->Header();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->serial, before->serial) << "the content did not change";
  EXPECT_EQ(after->usage_bytes, before->usage_bytes);
  EXPECT_EQ(*vol_->SpillInline(), 0u) << "nothing left to move";
  auto clone = vol_->Clone(8, "v.backup", VolumeType::kBackup);
  ASSERT_TRUE(clone.ok()) << clone.status().ToString();
  EXPECT_EQ(ChunkFiles(8), 40u);
  const std::string one = dir_ + "/V8/c/" + std::filesystem::path(
      std::filesystem::directory_iterator(dir_ + "/V8/c")->path()).filename().string();
  EXPECT_EQ(std::filesystem::hard_link_count(one), 2u) << "shared, not copied";
  for (const auto& [vnode, data] : files) {
    EXPECT_EQ(ReadAll(*vol_, vnode), data);
    EXPECT_EQ(ReadAll(**clone, vnode), data);
  }
  // Changes after the clone: a small rewrite (back inline), a growth past the limit, a removal.
  ASSERT_TRUE(StoreAll(*vol_, files[0].first, Pattern(50, 99)).ok());
  ASSERT_TRUE(StoreAt(*vol_, files[1].first, kChunk + 5, Pattern(30, 98)).ok());
  ASSERT_TRUE(vol_->Remove(kRootVnode, "s2").ok());
  EXPECT_EQ(ReadAll(*vol_, files[0].first), Pattern(50, 99));
  for (const auto& [vnode, data] : files) EXPECT_EQ(ReadAll(**clone, vnode), data);
  clone->reset();
  const SalvageReport report = Salvage();
  EXPECT_EQ(report.inline_fixed, 0u);
  EXPECT_TRUE(report.clean()) << "the salvager finds a spilled volume in order";
  Reopen();
  EXPECT_EQ(ReadAll(*vol_, files[3].first), files[3].second);
  // A crash in the middle of a spill (the chunk files of a batch written, the database not
  // yet changed) loses nothing: the files still read from the database.
  auto g = vol_->CreateFile(kRootVnode, "late", {}, Pattern(500, 7));
  ASSERT_TRUE(g.ok());
  env_.test_KillAfter(1);
  EXPECT_FALSE(vol_->SpillInline().ok());
  ASSERT_TRUE(env_.Crash().ok());
  env_.test_KillAfter(-1);
  Reopen();
  EXPECT_EQ(ReadAll(*vol_, g->vnode), Pattern(500, 7));
}

TEST_F(InlineTest, CreateFileWithDataIsOneCommit) {
  options_.chunk_size = 1 << 20;
  options_.inline_limit = 64 << 10;  // the defaults
  MakeVolume();
  EXPECT_EQ(vol_->inline_limit(), 64u << 10);
  env_.ResetCounters();
  NewVnodeAttrs attrs;
  attrs.mode = 0600;
  for (int i = 0; i < 100; ++i) {
    auto v = vol_->CreateFile(kRootVnode, "small" + std::to_string(i), attrs,
                              Pattern(4096, static_cast<uint8_t>(i)));
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->size, 4096u);
    EXPECT_EQ(v->data_version, 2u);
    EXPECT_EQ(v->mode, 0600u);
  }
  EXPECT_EQ(ChunkFiles(), 0u);  // no chunk file at all
  EXPECT_EQ(env_.syncs(), 0u);  // and no fsync through the Env: one SQLite commit each
  EXPECT_EQ(env_.bytes_written(), 0u);
  auto h = vol_->Header();
  EXPECT_EQ(h->files, 102u);  // root, f and 100 files
  EXPECT_EQ(h->usage_bytes, 100u * 4096);
  EXPECT_EQ(h->stores, 100u);
  auto e = vol_->Lookup(kRootVnode, "small42");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(ReadAll(*vol_, e->vnode), Pattern(4096, 42));

  // Larger data goes to chunks; an empty one is a plain create.
  const Bytes big = Pattern((1 << 20) + 100, 9);
  auto large = vol_->CreateFile(kRootVnode, "large", {}, big);
  ASSERT_TRUE(large.ok()) << large.status().ToString();
  EXPECT_EQ(large->data_version, 2u);
  EXPECT_EQ(ChunkFiles(), 2u);
  EXPECT_EQ(ReadAll(*vol_, large->vnode), big);
  auto empty = vol_->CreateFile(kRootVnode, "empty", {}, ByteView());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size, 0u);
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "small1", {}, Pattern(10, 1)).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(vol_->Header()->files, 104u);
}

TEST_F(InlineTest, CreateFileWithDataOverQuotaLeavesNothing) {
  MakeVolume(7, /*quota=*/8000);
  ASSERT_TRUE(vol_->CreateFile(kRootVnode, "a", {}, Pattern(2900, 1)).ok());
  auto before = vol_->Header();
  // Inline: refused in its one transaction.
  ASSERT_TRUE(vol_->CreateFile(kRootVnode, "b", {}, Pattern(2900, 2)).ok());
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "c", {}, Pattern(2900, 3)).status().code(),
            Code::kQuotaExceeded);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "c").status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Header()->usage_bytes, 5800u);
  EXPECT_EQ(vol_->Header()->files, before->files + 1);
  // Chunked: created, the store refused, the file removed again with its chunks.
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "d", {}, Pattern(3 * kChunk, 4)).status().code(),
            Code::kQuotaExceeded);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "d").status().code(), Code::kNotFound);
  EXPECT_EQ(ChunkFiles(), 0u);
  auto after = vol_->Header();
  EXPECT_EQ(after->usage_bytes, 5800u);
  EXPECT_EQ(after->files, before->files + 1);
  EXPECT_EQ(vol_->List(kRootVnode, "", 100)->size(), 3u);  // f, a, b
  // A failing chunk write: the same, all or nothing.
  env_.test_FailWrites(1, Code::kNoSpace);
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "e", {}, Pattern(kChunk + 1, 5)).status().code(),
            Code::kNoSpace);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "e").status().code(), Code::kNotFound);
  EXPECT_EQ(ChunkFiles(), 0u);
}

// Kills the process's file calls after each possible number of them during stores that move
// a file between inline and chunks (and inline to inline), then crashes: exactly old or new.
// A partial store writes only the new bytes from chunk 1 on, so an inline file's bytes must
// be carried into chunk 0.
TEST_F(InlineTest, CrashDuringInlineTransitionsIsAtomic) {
  struct Case {
    size_t old_size, new_size;
    bool partial;
  };
  uint64_t id = 100;
  int saw_old = 0;
  for (Case c : {Case{2000, 3 * kChunk - 5, false}, Case{3 * kChunk - 5, 2000, false},
                 Case{2000, 2900, false}, Case{2000, kChunk + 10, true}}) {
    SCOPED_TRACE("from " + std::to_string(c.old_size) + " to " + std::to_string(c.new_size));
    const Bytes old_data = Pattern(c.old_size, 1), new_data = Pattern(c.new_size, 2);
    Bytes expect_new = new_data;
    if (c.partial) {
      expect_new = old_data;
      expect_new.resize(c.new_size, 0);
      std::copy(new_data.begin() + kChunk, new_data.end(), expect_new.begin() + kChunk);
    }
    int saw_new = 0;
    for (int64_t k = 0;; ++k) {
      MakeVolume(++id);
      ASSERT_TRUE(StoreAll(*vol_, file_, old_data).ok());
      ASSERT_TRUE(vol_->TryMarkClean());  // the store must mark it again: more kill points
      env_.test_KillAfter(k);
      Status s = c.partial ? StoreAt(*vol_, file_, kChunk,
                                     Bytes(new_data.begin() + kChunk, new_data.end()))
                           : StoreAll(*vol_, file_, new_data);
      vol_.reset();
      ASSERT_TRUE(env_.Crash().ok());
      Reopen(id);
      Bytes got = ReadAll(*vol_, file_);
      if (got == old_data) {
        saw_old++;
        EXPECT_FALSE(s.ok()) << "kill point " << k;
      } else {
        ASSERT_EQ(got, expect_new) << "kill point " << k << ": a mix";
        saw_new++;
      }
      if (s.ok() && saw_new > 2) break;
      ASSERT_LT(k, 200) << "store never completed";
    }
  }
  EXPECT_GT(saw_old, 8);
}

// SQLite does not go through the Env, so a real crash of the process is the test for the
// inline commits: a child stores different contents (inline, chunked, inline again) in a
// loop and is killed with SIGKILL at a random point; the file is then exactly one of them.
TEST_F(InlineTest, ProcessKilledDuringStoresLeavesOneVersion) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  MakeVolume();
  const std::vector<Bytes> versions = {Pattern(2000, 1), Pattern(3 * kChunk - 5, 2),
                                       Pattern(2900, 3), Pattern(10, 4)};
  ASSERT_TRUE(StoreAll(*vol_, file_, versions[0]).ok());
  vol_.reset();
  options_.env = DefaultEnv();  // the child must not share the FaultEnv's bookkeeping
  for (int round = 0; round < 8; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto v = Volume::Open(options_, 7);
      if (!v.ok()) _exit(2);
      for (size_t i = 0;; ++i) {
        if (!StoreAll(**v, file_, versions[(i + round) % versions.size()]).ok()) _exit(3);
        char c = 1;
        if (write(fds[1], &c, 1) != 1) _exit(4);
      }
    }
    close(fds[1]);
    const uint64_t stores = 1 + rng() % 20;
    char c;
    uint64_t seen = 0;
    while (seen < stores && read(fds[0], &c, 1) == 1) seen++;
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    ASSERT_EQ(seen, stores);
    Reopen();
    Bytes got = ReadAll(*vol_, file_);
    EXPECT_NE(std::find(versions.begin(), versions.end(), got), versions.end())
        << "round " << round << ": " << got.size() << " bytes, not one of the versions";
    EXPECT_EQ(vol_->Header()->usage_bytes, got.size());
    SalvageReport report = Salvage();  // at most garbage chunk files to remove
    EXPECT_EQ(report.fixes(), report.chunk_files_removed) << report.Summary();
  }
}

}  // namespace
}  // namespace heka::fs

// Tests of the salvager (damage injected by crashes and by direct SQLite edits, each repaired
// and reported once), the dirty marker, the partition lock and the persistent counters.
#include "fileserver/volume/salvage.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "util/sqlite.h"

namespace heka::fs {
namespace {

constexpr uint64_t kChunk = 4096;

Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return b;
}

class SalvageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/heka-salvage-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.partition = dir_;
    options_.env = &env_;
    options_.chunk_size = kChunk;
    options_.inline_limit = 0;  // these tests are about chunk files; inline: volume_inline_test
  }
  void TearDown() override {
    vol_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Volume `id` with /f (2.5 chunks of data) and an empty directory /d.
  void MakeVolume(uint64_t id = 7) {
    auto v = Volume::Create(options_, id, "v", VolumeType::kReadWrite, 0);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
    auto f = vol_->CreateFile(kRootVnode, "f", {});
    ASSERT_TRUE(f.ok());
    file_ = f->vnode;
    uniq_ = f->uniq;
    auto d = vol_->MakeDir(kRootVnode, "d", {});
    ASSERT_TRUE(d.ok());
    subdir_ = d->vnode;
    ASSERT_TRUE(StoreAll(*vol_, file_, Pattern(5 * kChunk / 2, 1)).ok());
  }
  static Status StoreAll(Volume& vol, uint64_t vnode, const Bytes& data) {
    auto store = vol.BeginStore(vnode);
    if (!store.ok()) return store.status();
    for (uint64_t off = 0; off < data.size(); off += kChunk) {
      size_t n = std::min<uint64_t>(kChunk, data.size() - off);
      Status s = (*store)->WriteChunk(off / kChunk, ByteView(data).subspan(off, n));
      if (!s.ok()) return (*store)->Commit(data.size());  // refuses and aborts
    }
    return (*store)->Commit(data.size());
  }
  void Reopen(uint64_t id = 7) {
    vol_.reset();
    auto v = Volume::Open(options_, id);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
  }
  Bytes ReadAll(uint64_t vnode) {
    auto v = vol_->GetVnode(vnode);
    EXPECT_TRUE(v.ok());
    auto data = vol_->Read(vnode, 0, v.ok() ? v->size : 0);
    EXPECT_TRUE(data.ok()) << data.status().ToString();
    return data.ok() ? *data : Bytes();
  }
  // Runs `sql` on the closed volume's database, as damage would.
  void Damage(const char* sql, uint64_t id = 7) {
    vol_.reset();
    auto db = SqliteDb::Open(VolumeDir(options_, id) + "/meta.sqlite", false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec(sql).ok()) << sql;
  }
  SalvageReport Salvage(uint64_t id = 7) {
    vol_.reset();
    auto lock = PartitionLock::Acquire(dir_);
    EXPECT_TRUE(lock.ok()) << lock.status().ToString();
    auto report = SalvageVolume(options_, id, **lock);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : SalvageReport{};
  }
  // Salvages once (returning that report), then again: the second run must find nothing.
  SalvageReport SalvageTwice(uint64_t id = 7) {
    SalvageReport first = Salvage(id);
    SalvageReport second = Salvage(id);
    EXPECT_TRUE(second.clean()) << second.Summary();
    EXPECT_FALSE(VolumeNeedsSalvage(options_, id));
    return first;
  }
  std::string ChunkDir(uint64_t id = 7) { return VolumeDir(options_, id) + "/c"; }
  size_t ChunkFiles(uint64_t id = 7) {
    return std::distance(std::filesystem::directory_iterator(ChunkDir(id)),
                         std::filesystem::directory_iterator());
  }
  std::string Marker(uint64_t id = 7) { return VolumeDir(options_, id) + "/dirty"; }

  std::string dir_;
  FaultEnv env_{DefaultEnv()};
  VolumeOptions options_;
  std::unique_ptr<Volume> vol_;
  uint64_t file_ = 0, uniq_ = 0, subdir_ = 0;
};

TEST_F(SalvageTest, ConsistentVolumeSalvagesClean) {
  MakeVolume();
  ASSERT_TRUE(vol_->Link(kRootVnode, file_, "f2").ok());
  ASSERT_TRUE(vol_->Symlink(subdir_, "l", "../f", {}).ok());
  ASSERT_TRUE(vol_->MakeDir(subdir_, "e", {}).ok());
  vol_.reset();
  auto reports = SalvagePartition(options_);
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_TRUE((*reports)[0].clean()) << (*reports)[0].Summary();
  EXPECT_EQ((*reports)[0].Summary(), "volume 7: clean");
  EXPECT_TRUE((*reports)[0].details.empty());
  auto needed = SalvagePartition(options_, SalvageScope::kNeeded);
  ASSERT_TRUE(needed.ok());
  EXPECT_TRUE(needed->empty());  // nothing was in use
}

// Kills the process at every point of a store, crashes, and salvages: the garbage the store
// left (temp files, uncommitted or replaced chunks) goes, the file is exactly the old or the
// new content, and a second salvage finds nothing.
TEST_F(SalvageTest, CrashDuringStoreIsRepaired) {
  const Bytes old_data = Pattern(5 * kChunk / 2, 1), new_data = Pattern(3 * kChunk - 5, 2);
  uint64_t garbage_removed = 0;
  int saw_old = 0, saw_new = 0;
  for (int64_t k = 0;; ++k) {
    uint64_t id = 100 + k;
    MakeVolume(id);
    env_.test_KillAfter(k);
    Status s = StoreAll(*vol_, file_, new_data);
    vol_.reset();
    ASSERT_TRUE(env_.Crash().ok());
    if (!s.ok()) {
      EXPECT_TRUE(VolumeNeedsSalvage(options_, id)) << "kill point " << k;
    }
    SalvageReport report = SalvageTwice(id);
    EXPECT_EQ(report.fixes(), report.chunk_files_removed) << report.Summary();
    garbage_removed += report.chunk_files_removed;
    Reopen(id);
    Bytes got = ReadAll(file_);
    EXPECT_EQ(ChunkFiles(id), 3u) << "kill point " << k;  // exactly the live chunks
    if (got == old_data) {
      saw_old++;
    } else {
      ASSERT_EQ(got, new_data) << "kill point " << k << ": a mix";
      saw_new++;
    }
    if (s.ok() && saw_new > 2) break;
    ASSERT_LT(k, 200) << "store never completed";
  }
  EXPECT_GT(saw_old, 3);
  EXPECT_GT(garbage_removed, 3u);
}

// Inline files (small, extended past the inline limit, empty) beside chunked ones salvage
// clean; usage counts the inline sizes.
TEST_F(SalvageTest, InlineFilesSalvageClean) {
  options_.inline_limit = 3000;
  MakeVolume();  // f: 2.5 chunks, in chunk files
  auto g = vol_->CreateFile(kRootVnode, "g", {}, Pattern(100, 2));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto h = vol_->CreateFile(kRootVnode, "h", {}, Pattern(2000, 3));
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(vol_->SetAttr(h->vnode, {.size = 3 * kChunk}).ok());  // zeros past the limit
  ASSERT_TRUE(vol_->CreateFile(kRootVnode, "e", {}, ByteView()).ok());
  EXPECT_EQ(ChunkFiles(), 3u);
  EXPECT_EQ(vol_->Header()->files, 6u);
  SalvageReport report = SalvageTwice();
  EXPECT_TRUE(report.clean()) << report.Summary();
  Reopen();
  EXPECT_EQ(ReadAll(file_), Pattern(5 * kChunk / 2, 1));
  EXPECT_EQ(ReadAll(g->vnode), Pattern(100, 2));
  Bytes expect = Pattern(2000, 3);
  expect.resize(3 * kChunk, 0);
  EXPECT_EQ(ReadAll(h->vnode), expect);
  EXPECT_EQ(vol_->Header()->usage_bytes, 5 * kChunk / 2 + 100 + 3 * kChunk);
}

// Inline data beside chunk rows (the size decides which stays), of a missing vnode, or past
// the file's size.
TEST_F(SalvageTest, InlineDataInconsistenciesAreRepaired) {
  options_.inline_limit = 3000;
  MakeVolume();
  auto g = vol_->CreateFile(kRootVnode, "g", {}, Pattern(100, 2));
  ASSERT_TRUE(g.ok());
  auto h = vol_->CreateFile(kRootVnode, "h", {}, Pattern(1000, 3));
  ASSERT_TRUE(h.ok());
  std::string sql = fmt::format(
      "INSERT INTO inline_data VALUES ({}, x'0102');"   // f: over the limit, its chunks stay
      "INSERT INTO chunks VALUES ({}, 0, 2, 100);"      // g: within it, its inline bytes stay
      "INSERT INTO inline_data VALUES (99, x'01');"     // no such vnode
      "UPDATE vnodes SET size = 500 WHERE vnode = {};"  // h: inline bytes past its size
      "UPDATE header SET usage = usage - 500;",
      file_, g->vnode, h->vnode);
  Damage(sql.c_str());
  std::string stray = fmt::format("{}/{}.{}.0.2", ChunkDir(), g->vnode, g->uniq);
  std::ofstream(stray) << std::string(100, 'x');
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.inline_fixed, 4u) << report.Summary();
  EXPECT_EQ(report.chunk_files_removed, 1u) << report.Summary();
  EXPECT_EQ(report.fixes(), 5u) << report.Summary();
  EXPECT_FALSE(std::filesystem::exists(stray));
  Reopen();
  EXPECT_EQ(ReadAll(file_), Pattern(5 * kChunk / 2, 1));
  EXPECT_EQ(ReadAll(g->vnode), Pattern(100, 2));
  EXPECT_EQ(ReadAll(h->vnode), Pattern(500, 3));
  ASSERT_TRUE(vol_->SetAttr(h->vnode, {.size = 1000}).ok());  // the cut bytes are gone
  Bytes expect = Pattern(500, 3);
  expect.resize(1000, 0);
  EXPECT_EQ(ReadAll(h->vnode), expect);
}

TEST_F(SalvageTest, WrongLinkCountsAreFixed) {
  MakeVolume();
  Damage(
      "UPDATE vnodes SET links = 5 WHERE vnode = 2; UPDATE vnodes SET links = 9 WHERE "
      "vnode = 1");
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.link_counts_fixed, 2u) << report.Summary();
  EXPECT_EQ(report.fixes(), 2u) << report.Summary();
  Reopen();
  EXPECT_EQ(vol_->GetVnode(file_)->link_count, 1u);
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->link_count, 3u);  // 2 + directory d
  EXPECT_TRUE(vol_->Remove(kRootVnode, "f").ok());
  EXPECT_EQ(vol_->GetVnode(file_).status().code(), Code::kNotFound);
}

TEST_F(SalvageTest, OrphansAreRemovedWithTheirChunks) {
  MakeVolume();
  // A file nothing names, with a chunk, and an unnamed directory holding another file.
  Damage(
      "INSERT INTO vnodes VALUES (50, 50, 1, 420, 0, 0, 10, 0, 0, 2, 1, 1, 1, x'', NULL);"
      "INSERT INTO chunks VALUES (50, 0, 2, 10);"
      "INSERT INTO vnodes VALUES (51, 51, 2, 493, 0, 0, 0, 0, 0, 1, 2, 1, 1, x'', NULL);"
      "INSERT INTO vnodes VALUES (52, 52, 1, 420, 0, 0, 0, 0, 0, 1, 1, 51, 1, x'', NULL);"
      "INSERT INTO dirents VALUES (51, x'78', 52, 52);"
      "INSERT INTO acls VALUES (51, -204, 0, 127);"
      "UPDATE header SET usage = usage + 10, next_vnode = 53, next_uniq = 53;");
  std::ofstream(ChunkDir() + "/50.50.0.2") << "0123456789";
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.orphans_removed, 3u) << report.Summary();
  EXPECT_EQ(report.chunk_files_removed, 1u) << report.Summary();
  EXPECT_EQ(report.usage_fixed, 1u) << report.Summary();
  EXPECT_FALSE(std::filesystem::exists(ChunkDir() + "/50.50.0.2"));
  Reopen();
  EXPECT_EQ(vol_->GetVnode(50).status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->GetVnode(51).status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Header()->usage_bytes, 5 * kChunk / 2);
}

TEST_F(SalvageTest, EntriesToMissingVnodesAreRemoved) {
  MakeVolume();
  uint64_t root_dv = vol_->GetVnode(kRootVnode)->data_version;
  Damage(
      "INSERT INTO dirents VALUES (1, x'67686f7374', 999, 999);"  // "ghost"
      "INSERT INTO dirents VALUES (1, x'626164', 2, 12345);"      // "bad": wrong uniq
      "INSERT INTO dirents VALUES (77, x'6c6f7374', 2, 2);");     // in no directory
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.dirents_removed, 3u) << report.Summary();
  EXPECT_EQ(report.fixes(), 3u) << report.Summary();
  Reopen();
  EXPECT_EQ(vol_->Lookup(kRootVnode, "ghost").status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "bad").status().code(), Code::kNotFound);
  EXPECT_GT(vol_->GetVnode(kRootVnode)->data_version, root_dv);  // caches see the change
  EXPECT_EQ(vol_->GetVnode(file_)->link_count, 1u);
}

// Binary names (an encrypted volume's) are entries like any other: a consistent volume full
// of them salvages clean and keeps them; a damaged one is removed and reported escaped.
TEST_F(SalvageTest, BinaryNamesSalvageCleanAndAreReportedEscaped) {
  using namespace std::string_literals;
  MakeVolume();
  ASSERT_TRUE(vol_->Link(kRootVnode, file_, "f\0/\xff"s).ok());
  ASSERT_TRUE(vol_->Symlink(subdir_, "/\0"s, "\0\xff"s, {}).ok());
  auto e = vol_->MakeDir(subdir_, "\xff\xfe\0"s, {});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(vol_->CreateFile(e->vnode, std::string(kMaxNameLength, '\0'), {}).ok());
  SalvageReport report = Salvage();
  EXPECT_TRUE(report.clean()) << report.Summary();
  Reopen();
  EXPECT_EQ(vol_->Lookup(kRootVnode, "f\0/\xff"s)->vnode, file_);
  EXPECT_EQ(vol_->GetVnode(file_)->link_count, 2u);
  EXPECT_TRUE(vol_->Lookup(subdir_, "/\0"s).ok());
  EXPECT_TRUE(vol_->Lookup(e->vnode, std::string(kMaxNameLength, '\0')).ok());

  Damage("INSERT INTO dirents VALUES (1, x'2f00ff27', 999, 999);");  // "/\0\xff'" → nothing
  report = SalvageTwice();
  EXPECT_EQ(report.dirents_removed, 1u) << report.Summary();
  ASSERT_EQ(report.details.size(), 1u);
  EXPECT_NE(report.details[0].find("entry '/\\x00\\xff\\x27' in directory 1"), std::string::npos)
      << report.details[0];
  Reopen();
  EXPECT_EQ(vol_->Lookup(kRootVnode, "/\0\xff'"s).status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "f\0/\xff"s)->vnode, file_);
}

TEST_F(SalvageTest, DirectoryTreeIsRepaired) {
  MakeVolume();
  auto e = vol_->MakeDir(subdir_, "e", {});
  ASSERT_TRUE(e.ok());
  // d named a second time (from root), e's parent field wrong.
  std::string sql = "INSERT INTO dirents VALUES (1, x'6432', " + std::to_string(subdir_) + ", " +
                    std::to_string(subdir_) +
                    "); UPDATE vnodes SET parent = 1 WHERE vnode = " + std::to_string(e->vnode) +
                    ";";
  Damage(sql.c_str());
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.dirents_removed, 1u) << report.Summary();
  EXPECT_EQ(report.parents_fixed, 1u) << report.Summary();
  Reopen();
  EXPECT_EQ(vol_->GetVnode(e->vnode)->parent, subdir_);
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->link_count, 3u);
  EXPECT_TRUE(vol_->Lookup(kRootVnode, "d").ok());
  EXPECT_EQ(vol_->Lookup(kRootVnode, "d2").status().code(), Code::kNotFound);
}

TEST_F(SalvageTest, MissingChunkFileBecomesAReportedHole) {
  MakeVolume();
  vol_.reset();
  ASSERT_TRUE(std::filesystem::remove(ChunkDir() + "/2." + std::to_string(uniq_) + ".1.2"));
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.missing_chunks, 1u) << report.Summary();
  EXPECT_NE(report.Summary().find("data lost"), std::string::npos) << report.Summary();
  ASSERT_EQ(report.details.size(), 1u);
  EXPECT_NE(report.details[0].find("vnode 2 chunk 1"), std::string::npos) << report.details[0];
  Reopen();
  Bytes expect = Pattern(5 * kChunk / 2, 1);
  std::fill(expect.begin() + kChunk, expect.begin() + 2 * kChunk, 0);
  EXPECT_EQ(ReadAll(file_), expect);
}

TEST_F(SalvageTest, StrayChunkFilesAreRemoved) {
  MakeVolume();
  vol_.reset();
  std::string prefix = ChunkDir() + "/2." + std::to_string(uniq_);
  std::ofstream(prefix + ".0.99") << "uncommitted";
  std::ofstream(prefix + ".0.3.tmp") << "half";
  std::ofstream(ChunkDir() + "/notes.txt") << "not ours";
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.chunk_files_removed, 2u) << report.Summary();
  EXPECT_EQ(report.fixes(), 2u) << report.Summary();
  EXPECT_TRUE(std::filesystem::exists(ChunkDir() + "/notes.txt"));  // unknown: left alone
  Reopen();
  EXPECT_EQ(ReadAll(file_), Pattern(5 * kChunk / 2, 1));
}

TEST_F(SalvageTest, WrongUsageAndHeaderIdsAreFixed) {
  MakeVolume();
  Damage("UPDATE header SET usage = 1, next_vnode = 2");
  SalvageReport report = SalvageTwice();
  EXPECT_EQ(report.usage_fixed, 1u) << report.Summary();
  EXPECT_EQ(report.header_fixed, 1u) << report.Summary();
  Reopen();
  EXPECT_EQ(vol_->Header()->usage_bytes, 5 * kChunk / 2);
  EXPECT_TRUE(vol_->CreateFile(kRootVnode, "g", {}).ok());  // no vnode number reused
}

TEST_F(SalvageTest, UnfinishedCloneIsRemoved) {
  MakeVolume();
  vol_.reset();
  std::filesystem::create_directories(ChunkDir(9));
  std::ofstream(ChunkDir(9) + "/2.2.0.2") << "linked chunk";
  std::ofstream(VolumeDir(options_, 9) + "/clone.sqlite.tmp") << "partial";
  EXPECT_EQ(*ListVolumeIds(options_), (std::vector<uint64_t>{7, 9}));
  EXPECT_TRUE(VolumeNeedsSalvage(options_, 9));
  EXPECT_FALSE(VolumeNeedsSalvage(options_, 7));
  std::vector<uint64_t> seen;
  auto reports = SalvagePartition(options_, SalvageScope::kNeeded,
                                  [&](const SalvageReport& r) { seen.push_back(r.volume_id); });
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].unfinished_clone_removed, 1u);
  EXPECT_EQ(seen, std::vector<uint64_t>{9});
  EXPECT_FALSE(std::filesystem::exists(VolumeDir(options_, 9)));
  EXPECT_EQ(*ListVolumeIds(options_), std::vector<uint64_t>{7});
}

// A database that fails PRAGMA integrity_check: reported, the volume stays offline (marker
// kept) and nothing is deleted.
TEST_F(SalvageTest, FailedIntegrityCheckKeepsVolumeOffline) {
  MakeVolume();
  ASSERT_TRUE(vol_->SetQuota(1 << 30).ok());  // leaves the marker: in use at the "crash"
  std::string db = VolumeDir(options_, 7) + "/meta.sqlite";
  int64_t page = 0, root = 0;
  {
    auto m = SqliteDb::Open(db, false);
    ASSERT_TRUE(m.ok());
    SqliteQuery q(**m, "SELECT rootpage FROM sqlite_master WHERE name = 'vnodes_by_serial'");
    ASSERT_TRUE(*q.Step());
    root = q.Int(0);
    SqliteQuery p(**m, "PRAGMA page_size");
    ASSERT_TRUE(*p.Step());
    page = p.Int(0);
  }
  vol_.reset();  // checkpoints the WAL into the file; the crash left the marker
  std::filesystem::remove(Marker());
  std::ofstream(Marker()) << "";
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((root - 1) * page);
    std::string junk(page, '\x5a');
    f.write(junk.data(), page);
  }
  size_t files = ChunkFiles();
  auto reports = SalvagePartition(options_);
  ASSERT_TRUE(reports.ok());
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_FALSE((*reports)[0].status.ok());
  EXPECT_NE((*reports)[0].Summary().find("stays offline"), std::string::npos);
  EXPECT_TRUE(VolumeNeedsSalvage(options_, 7));
  EXPECT_EQ(ChunkFiles(), files);
}

TEST_F(SalvageTest, DirtyMarkerFollowsChanges) {
  MakeVolume();
  EXPECT_TRUE(vol_->TryMarkClean());
  EXPECT_FALSE(std::filesystem::exists(Marker()));
  EXPECT_TRUE(vol_->GetVnode(file_).ok());  // reads do not mark
  EXPECT_TRUE(vol_->Read(file_, 0, 10).ok());
  EXPECT_FALSE(std::filesystem::exists(Marker()));
  ASSERT_TRUE(vol_->CreateFile(kRootVnode, "g", {}).ok());
  EXPECT_TRUE(std::filesystem::exists(Marker()));
  EXPECT_TRUE(VolumeNeedsSalvage(options_, 7));
  EXPECT_TRUE(vol_->TryMarkClean());
  EXPECT_FALSE(VolumeNeedsSalvage(options_, 7));

  auto store = vol_->BeginStore(file_);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE(std::filesystem::exists(Marker()));
  ASSERT_TRUE((*store)->WriteChunk(0, Pattern(10, 3)).ok());
  EXPECT_FALSE(vol_->TryMarkClean());  // a store is open
  EXPECT_TRUE(std::filesystem::exists(Marker()));
  ASSERT_TRUE((*store)->Commit(10).ok());
  EXPECT_TRUE(vol_->TryMarkClean());

  ASSERT_TRUE(vol_->SetAcl(kRootVnode, {{-204, kAllRights, false}}).ok());
  EXPECT_TRUE(std::filesystem::exists(Marker()));
  vol_.reset();  // a clean close removes it
  EXPECT_FALSE(VolumeNeedsSalvage(options_, 7));
}

TEST_F(SalvageTest, MarkerLeftByACrashStaysUntilSalvaged) {
  MakeVolume();
  env_.test_KillAfter(0);
  vol_.reset();  // cannot remove the marker: the process "died"
  ASSERT_TRUE(env_.Crash().ok());
  ASSERT_TRUE(VolumeNeedsSalvage(options_, 7));
  Reopen();
  EXPECT_FALSE(vol_->TryMarkClean());  // only the salvager may clear it
  vol_.reset();
  EXPECT_TRUE(VolumeNeedsSalvage(options_, 7));
  auto reports = SalvagePartition(options_, SalvageScope::kNeeded);
  ASSERT_TRUE(reports.ok());
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_TRUE((*reports)[0].clean()) << (*reports)[0].Summary();
  EXPECT_FALSE(VolumeNeedsSalvage(options_, 7));
}

TEST_F(SalvageTest, PartitionLockRefusesSecondHolder) {
  auto first = PartitionLock::Acquire(dir_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = PartitionLock::Acquire(dir_);
  ASSERT_EQ(second.status().code(), Code::kLocked);
  EXPECT_NE(second.status().message().find("another salvager is running on " + dir_),
            std::string::npos)
      << second.status().ToString();
  EXPECT_EQ(SalvagePartition(options_).status().code(), Code::kLocked);
  first->reset();
  EXPECT_TRUE(PartitionLock::Acquire(dir_).ok());
}

TEST_F(SalvageTest, CountersSurviveReopen) {
  MakeVolume();  // CreateFile, MakeDir, BeginStore: 3 operations, one store
  for (int i = 0; i < 3; ++i) ASSERT_EQ(vol_->Read(file_, 0, 100)->size(), 100u);
  ASSERT_TRUE(vol_->GetVnode(file_).ok());
  auto h = vol_->Header();
  EXPECT_EQ(h->ops, 7u);
  EXPECT_EQ(h->reads, 3u);
  EXPECT_EQ(h->bytes_read, 300u);
  EXPECT_EQ(h->stores, 1u);
  EXPECT_EQ(h->bytes_stored, 5 * kChunk / 2);
  ASSERT_TRUE(vol_->FlushCounters().ok());
  {
    auto other = Volume::Open(options_, 7);  // a second connection sees the flushed values
    ASSERT_TRUE(other.ok());
    EXPECT_EQ((*other)->Header()->reads, 3u);
  }
  ASSERT_TRUE(vol_->Read(file_, 0, 1).ok());
  ASSERT_TRUE(vol_->SetQuota(0).ok());  // folds the pending counters into its transaction
  Reopen();
  h = vol_->Header();
  EXPECT_EQ(h->ops, 9u);
  EXPECT_EQ(h->reads, 4u);
  EXPECT_EQ(h->bytes_read, 301u);
  EXPECT_EQ(h->stores, 1u);
}

}  // namespace
}  // namespace heka::fs

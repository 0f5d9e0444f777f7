// Tests of volume dumps: a full and then an incremental dump restored into another volume give
// the same tree (contents, modes, owners, times, links, ACLs, client attributes, quota), and a
// changed or cut stream is refused.
#include "fileserver/volume/volume_dump.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>

namespace heka::fs {
namespace {

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

class VolumeDumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/heka-dump-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.partition = dir_;
    options_.chunk_size = 64 << 10;  // small chunks: several per file
    options_.inline_limit = 1024;
    auto v = Volume::Create(options_, 7, "proj", VolumeType::kReadWrite, 5 << 20);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    src_ = std::move(*v);
  }
  void TearDown() override {
    src_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Dump(uint64_t from_serial) {
    auto d = VolumeDumper::Start(*src_, from_serial, {});
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    std::string out;
    for (;;) {
      auto done = (*d)->Next(100 << 10, &out);
      EXPECT_TRUE(done.ok()) << done.status().ToString();
      if (!done.ok() || *done) break;
    }
    return out;
  }

  // Feeds `stream` in uneven pieces, or whole.
  static Status Restore(Volume& into, std::string_view stream, bool whole = false) {
    VolumeRestorer r(into);
    for (size_t pos = 0, n = whole ? stream.size() : 1; pos < stream.size(); pos += n, n = n * 3 + 7) {
      if (Status s = r.Feed(stream.substr(pos, n)); !s.ok()) return s;
    }
    return r.Finish();
  }

  // Everything a user sees of the tree under `dir`, one line per thing.
  static void Describe(Volume& v, uint64_t dir, const std::string& path,
                       std::map<std::string, std::string>* out) {
    auto st = v.GetVnode(dir);
    ASSERT_TRUE(st.ok());
    auto acl = v.GetAcl(dir);
    ASSERT_TRUE(acl.ok());
    std::string acl_text;
    for (const AclEntry& e : *acl) {
      acl_text += std::to_string(e.principal) + ":" + std::to_string(e.rights) +
                  (e.negative ? "-" : "+") + " ";
    }
    (*out)[path + "/"] = "dir mode " + std::to_string(st->mode) + " owner " +
                         std::to_string(st->owner) + " mtime " + std::to_string(st->mtime_ns) +
                         " links " + std::to_string(st->link_count) + " attr " +
                         std::string(st->client_attr.begin(), st->client_attr.end()) + " acl " +
                         acl_text;
    auto entries = v.List(dir, "", 100000);
    ASSERT_TRUE(entries.ok());
    for (const DirEntry& e : *entries) {
      std::string p = path + "/" + e.name;
      auto c = v.GetVnode(e.vnode);
      ASSERT_TRUE(c.ok());
      if (c->type == VnodeType::kDir) {
        Describe(v, e.vnode, p, out);
        continue;
      }
      std::string text = "vnode " + std::to_string(c->vnode) + " mode " + std::to_string(c->mode) +
                         " owner " + std::to_string(c->owner) + " group " +
                         std::to_string(c->group) + " size " + std::to_string(c->size) +
                         " mtime " + std::to_string(c->mtime_ns) + " links " +
                         std::to_string(c->link_count) + " attr " +
                         std::string(c->client_attr.begin(), c->client_attr.end());
      if (c->type == VnodeType::kSymlink) {
        text += " -> " + *v.ReadLink(e.vnode);
      } else {
        auto data = v.Read(e.vnode, 0, c->size);
        ASSERT_TRUE(data.ok());
        text += " data " + std::string(data->begin(), data->end());
      }
      (*out)[p] = text;
    }
  }
  static std::map<std::string, std::string> Tree(Volume& v) {
    std::map<std::string, std::string> out;
    Describe(v, kRootVnode, "", &out);
    return out;
  }

  std::unique_ptr<Volume> NewTarget(uint64_t id) {
    auto v = Volume::Create(options_, id, "restored", VolumeType::kReadWrite, 0);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(*v) : nullptr;
  }

  std::string dir_;
  VolumeOptions options_;
  std::unique_ptr<Volume> src_;
};

TEST_F(VolumeDumpTest, FullThenIncrementalRestoreGivesTheSameTree) {
  Volume& v = *src_;
  auto docs = v.MakeDir(kRootVnode, "docs", {0750, 42, 43, B("dir-id-1")});
  ASSERT_TRUE(docs.ok());
  ASSERT_TRUE(v.SetAcl(docs->vnode, {{kSystemAdministrators, kAllRights, false},
                                     {1001, kRead | kLookup, false},
                                     {1002, kWrite, true}})
                  .ok());
  std::string big(200000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  auto f = v.CreateFile(docs->vnode, "big", {0640, 42, 43, B("file-id")}, B(big));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(v.CreateFile(kRootVnode, "small", {0600, 7, 8, {}}, B("hello")).ok());
  ASSERT_TRUE(v.CreateFile(kRootVnode, std::string("\xff\x01raw", 5), {}, B("bytes")).ok());
  ASSERT_TRUE(v.Link(docs->vnode, f->vnode, "big.link").ok());
  ASSERT_TRUE(v.Symlink(kRootVnode, "sym", "docs/big", {0777, 42, 43, {}}).ok());
  SetAttrRequest when;
  when.mtime_ns = 1234567890123;
  ASSERT_TRUE(v.SetAttr(f->vnode, when).ok());
  ASSERT_TRUE(v.CreateFile(kRootVnode, "goes", {}, B("to be deleted")).ok());
  ASSERT_TRUE(v.CreateFile(kRootVnode, "moves", {}, B("to be renamed")).ok());

  std::string full = Dump(0);
  const uint64_t serial = ReadDumpHeader(full)->serial();
  auto target = NewTarget(10);
  ASSERT_TRUE(target);
  Status restored = Restore(*target, full);
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(Tree(*target), Tree(v));
  EXPECT_EQ(target->Header()->quota_bytes, 5u << 20);
  EXPECT_EQ(target->Header()->usage_bytes, v.Header()->usage_bytes);

  // Changes of every kind, then an incremental dump on top.
  ASSERT_TRUE(v.Remove(kRootVnode, "goes").ok());
  ASSERT_TRUE(v.Rename(kRootVnode, "moves", docs->vnode, "moved").ok());
  auto st = v.BeginStore(f->vnode);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE((*st)->WriteChunk(1, B(std::string(64 << 10, 'Z'))).ok());
  ASSERT_TRUE((*st)->Commit(200000).ok());
  ASSERT_TRUE(v.CreateFile(kRootVnode, "new", {}, B("added later")).ok());
  ASSERT_TRUE(v.SetAcl(docs->vnode, {{kSystemAdministrators, kAllRights, false}}).ok());
  SetAttrRequest mode;
  mode.mode = 0604;
  ASSERT_TRUE(v.SetAttr(v.Lookup(kRootVnode, "small")->vnode, mode).ok());
  ASSERT_TRUE(v.SetQuota(9 << 20).ok());

  std::string incremental = Dump(serial);
  EXPECT_LT(incremental.size(), full.size()) << "only what changed";
  // In one piece: a file's unchanged chunks (same keys) are written again in the same step
  // that replaces its record, and must survive it.
  restored = Restore(*target, incremental, /*whole=*/true);
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(Tree(*target), Tree(v));
  EXPECT_EQ(target->Header()->quota_bytes, 9u << 20);
  EXPECT_EQ(target->Header()->usage_bytes, v.Header()->usage_bytes);
  EXPECT_EQ(target->Lookup(kRootVnode, "goes").status().code(), Code::kNotFound);

  // The restored volume keeps working: a new file does not collide with a restored vnode.
  auto later = target->CreateFile(kRootVnode, "after", {}, B("x"));
  ASSERT_TRUE(later.ok());
  EXPECT_GE(later->vnode, v.Header()->next_vnode);
}

TEST_F(VolumeDumpTest, AnIncrementalDumpNeedsTheStateItStartsFrom) {
  ASSERT_TRUE(src_->CreateFile(kRootVnode, "a", {}, B("1")).ok());
  const uint64_t serial = src_->Header()->serial;
  ASSERT_TRUE(src_->CreateFile(kRootVnode, "b", {}, B("2")).ok());
  auto target = NewTarget(10);
  ASSERT_TRUE(target);
  Status s = Restore(*target, Dump(serial));
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("restore the dump before it first"), std::string::npos) << s.ToString();
}

TEST_F(VolumeDumpTest, AChangedOrCutStreamIsRefused) {
  ASSERT_TRUE(src_->CreateFile(kRootVnode, "data", {}, B(std::string(150000, 'q'))).ok());
  std::string good = Dump(0);
  {
    auto target = NewTarget(10);
    std::string flipped = good;
    flipped[flipped.size() / 2] ^= 0x01;
    Status s = Restore(*target, flipped);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("not a whole Heka volume dump"), std::string::npos) << s.ToString();
  }
  {
    auto target = NewTarget(11);
    Status s = Restore(*target, std::string_view(good).substr(0, good.size() - 40));
    EXPECT_NE(s.message().find("stops before its end record"), std::string::npos) << s.ToString();
  }
  {
    auto target = NewTarget(12);
    Status s = Restore(*target, "HEKADMP1" + std::string(10, '\xff'));
    EXPECT_FALSE(s.ok());
  }
  EXPECT_FALSE(ReadDumpHeader("not a dump").ok());
}

}  // namespace
}  // namespace heka::fs

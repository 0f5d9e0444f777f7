// Tests of Volume's metadata operations: create/open, namespace operations and their error
// codes, ACLs, SetAttr, directory paging.
#include "fileserver/volume/volume.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

namespace heka::fs {
namespace {

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when there is one: each metadata commit is an fsync, and the paging test makes
    // 100,000 of them.
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/heka-vol-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.partition = dir_;
    options_.now_ns = [this] { return ++now_; };
    auto v = Volume::Create(options_, 7, "user.alice", VolumeType::kReadWrite, 0);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vol_ = std::move(*v);
  }
  void TearDown() override {
    vol_.reset();
    std::filesystem::remove_all(dir_);
  }
  uint64_t File(uint64_t dir, std::string_view name) {
    auto v = vol_->CreateFile(dir, name, {});
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->vnode : 0;
  }
  uint64_t Dir(uint64_t dir, std::string_view name) {
    auto v = vol_->MakeDir(dir, name, {});
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->vnode : 0;
  }

  std::string dir_;
  int64_t now_ = 1000;
  VolumeOptions options_;
  std::unique_ptr<Volume> vol_;
};

TEST_F(VolumeTest, CreateGivesRootAndAdminAcl) {
  auto root = vol_->GetVnode(kRootVnode);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->type, VnodeType::kDir);
  EXPECT_EQ(root->link_count, 2u);
  EXPECT_EQ(root->mode, 0755u);
  auto acl = vol_->GetAcl(kRootVnode);
  ASSERT_TRUE(acl.ok());
  ASSERT_EQ(acl->size(), 1u);
  EXPECT_EQ((*acl)[0], (AclEntry{kSystemAdministrators, kAllRights, false}));
  auto header = vol_->Header();
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->id, 7u);
  EXPECT_EQ(header->name, "user.alice");
  EXPECT_EQ(Volume::Create(options_, 7, "again", VolumeType::kReadWrite, 0).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(Volume::Open(options_, 8).status().code(), Code::kNotFound);
}

TEST_F(VolumeTest, CreateLookupAndErrors) {
  NewVnodeAttrs attrs{0600, 42, 43, Bytes{1, 2, 3}};
  auto f = vol_->CreateFile(kRootVnode, "a", attrs);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->mode, 0600u);
  EXPECT_EQ(f->owner, 42);
  EXPECT_EQ(f->client_attr, (Bytes{1, 2, 3}));
  EXPECT_EQ(f->parent, kRootVnode);
  auto e = vol_->Lookup(kRootVnode, "a");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->vnode, f->vnode);
  EXPECT_EQ(e->uniq, f->uniq);
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "a", {}).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(vol_->MakeDir(kRootVnode, "a", {}).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "b").status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Lookup(f->vnode, "x").status().code(), Code::kNotDirectory);
  EXPECT_EQ(vol_->CreateFile(f->vnode, "x", {}).status().code(), Code::kNotDirectory);
  EXPECT_EQ(vol_->CreateFile(999, "x", {}).status().code(), Code::kNotFound);
  std::string longest(kMaxNameLength, 'n');
  EXPECT_TRUE(vol_->CreateFile(kRootVnode, longest, {}).ok());
  auto too_long = vol_->CreateFile(kRootVnode, longest + "n", {});
  EXPECT_EQ(too_long.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(too_long.status().message(), "name too long");
  for (std::string_view bad : {"", ".", ".."})
    EXPECT_EQ(vol_->CreateFile(kRootVnode, bad, {}).status().code(), Code::kInvalidArgument);
}

// Names are opaque byte strings (an encrypted volume's names are raw AES-SIV output): '/',
// NUL and 0xff are ordinary bytes, names differing only after a NUL are different names, and
// directories list and page in bytewise order. Messages show such names escaped.
TEST_F(VolumeTest, NamesAreOpaqueBytes) {
  using namespace std::string_literals;
  const std::vector<std::string> names = {"a"s,
                                          "a\0"s,
                                          "a\0b"s,
                                          "a\0\0"s,
                                          "a/b"s,
                                          "/"s,
                                          "\0"s,
                                          "\0\0"s,
                                          "\xff"s,
                                          "\xff\xfe/\0"s,
                                          "a\xff"s,
                                          "//"s,
                                          "\x01\x7f\x80"s,
                                          std::string(kMaxNameLength, '\0'),
                                          std::string(kMaxNameLength, '\xff')};
  std::map<std::string, uint64_t> vnodes;  // bytewise order, as std::string compares
  for (size_t i = 0; i < names.size(); ++i) {
    NewVnodeAttrs a;
    a.client_attr = Bytes{static_cast<uint8_t>(i)};
    Result<VnodeStatus> made = i % 3 == 0   ? vol_->MakeDir(kRootVnode, names[i], a)
                               : i % 3 == 1 ? vol_->CreateFile(kRootVnode, names[i], a)
                                            : vol_->Symlink(kRootVnode, names[i], "\0t/\xff"s, a);
    ASSERT_TRUE(made.ok()) << PrintableName(names[i]) << ": " << made.status().ToString();
    ASSERT_TRUE(vnodes.emplace(names[i], made->vnode).second);
  }
  EXPECT_EQ(vol_->CreateFile(kRootVnode, "a\0b"s, {}).status().code(), Code::kAlreadyExists);
  for (const auto& [name, vnode] : vnodes) {
    auto e = vol_->Lookup(kRootVnode, name);
    ASSERT_TRUE(e.ok()) << PrintableName(name);
    EXPECT_EQ(e->vnode, vnode) << PrintableName(name);
    EXPECT_EQ(e->name, name);
  }
  EXPECT_EQ(*vol_->ReadLink(vnodes.at("a\0b"s)), "\0t/\xff"s);
  auto missing = vol_->Lookup(kRootVnode, "a\0c\xff'\\"s);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(), "no entry 'a\\x00c\\xff\\x27\\x5c'");

  // Pages of 2, each starting after a name that may hold NULs: every name once, in order.
  auto list_all = [&] {
    std::vector<std::string> listed;
    std::string after;
    for (;;) {
      auto page = vol_->List(kRootVnode, after, 2);
      EXPECT_TRUE(page.ok());
      if (!page.ok() || page->empty()) return listed;
      for (const DirEntry& e : *page) {
        EXPECT_GT(e.name, after);
        listed.push_back(e.name);
        after = e.name;
      }
    }
  };
  std::vector<std::string> want;
  for (const auto& [name, vnode] : vnodes) want.push_back(name);
  EXPECT_EQ(list_all(), want);

  // Rename within the directory and into a subdirectory whose own name is binary.
  uint64_t sub = vnodes.at("a"s);
  ASSERT_TRUE(vol_->Rename(kRootVnode, "a\0b"s, kRootVnode, "b\0a/"s).ok());
  ASSERT_TRUE(vol_->Rename(kRootVnode, "\xff\xfe/\0"s, vnodes.at("\0"s), "\0/"s).ok());
  ASSERT_TRUE(vol_->Rename(kRootVnode, "a\0"s, sub, "a\0"s).ok());
  // Replacing an existing binary name.
  ASSERT_TRUE(vol_->Rename(kRootVnode, "a\xff"s, kRootVnode, "b\0a/"s).ok());
  EXPECT_EQ(vol_->Lookup(kRootVnode, "a\0b"s).status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Lookup(kRootVnode, "b\0a/"s)->vnode, vnodes.at("a\xff"s));
  EXPECT_EQ(vol_->Lookup(vnodes.at("\0"s), "\0/"s)->vnode, vnodes.at("\xff\xfe/\0"s));
  EXPECT_EQ(vol_->Lookup(sub, "a\0"s)->vnode, vnodes.at("a\0"s));
  EXPECT_EQ(vol_->Lookup(kRootVnode, "a"s)->vnode, sub);  // "a" and "a\0" stay apart

  // Remove files, symlinks and directories by binary names.
  EXPECT_TRUE(vol_->Remove(kRootVnode, "b\0a/"s).ok());                  // a file
  EXPECT_TRUE(vol_->Remove(kRootVnode, "/"s).ok());                      // a symlink
  EXPECT_TRUE(vol_->RemoveDir(vnodes.at("\0"s), "\0/"s).ok());           // a directory
  EXPECT_EQ(vol_->RemoveDir(kRootVnode, "a"s).code(), Code::kNotEmpty);  // holds "a\0"
  EXPECT_TRUE(vol_->RemoveDir(kRootVnode, "\0"s).ok());
  EXPECT_TRUE(vol_->Remove(kRootVnode, std::string(kMaxNameLength, '\xff')).ok());  // a symlink
  for (const std::string& gone : {"b\0a/"s, "/"s, "\0"s, std::string(kMaxNameLength, '\xff')})
    EXPECT_EQ(vol_->Lookup(kRootVnode, gone).status().code(), Code::kNotFound)
        << PrintableName(gone);

  // What is left survives a reopen, byte for byte.
  std::vector<std::string> left = list_all();
  vol_.reset();
  auto v = Volume::Open(options_, 7);
  ASSERT_TRUE(v.ok());
  vol_ = std::move(*v);
  EXPECT_EQ(list_all(), left);
  EXPECT_TRUE(std::find(left.begin(), left.end(), std::string(kMaxNameLength, '\0')) != left.end());
}

TEST_F(VolumeTest, RootClientAttribute) {
  EXPECT_TRUE(vol_->GetVnode(kRootVnode)->client_attr.empty());
  Bytes attr = {'D', 1, 0, 0xff, '/', 0, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  auto v = Volume::Create(options_, 10, "secret", VolumeType::kReadWrite, 0, attr);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ((*v)->GetVnode(kRootVnode)->client_attr, attr);
  v->reset();
  auto reopened = Volume::Open(options_, 10);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->GetVnode(kRootVnode)->client_attr, attr);
}

TEST(PrintableNameTest, EscapesAllButPrintableAscii) {
  using namespace std::string_literals;
  EXPECT_EQ(PrintableName("plain name.txt"), "plain name.txt");
  EXPECT_EQ(PrintableName("a\0/\xff\n'\\"s), "a\\x00/\\xff\\x0a\\x27\\x5c");
  EXPECT_EQ(PrintableName(std::string(100, 'x')), std::string(64, 'x') + "...");
}

TEST_F(VolumeTest, DirectoriesSymlinksAndRemove) {
  uint64_t d = Dir(kRootVnode, "d");
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->link_count, 3u);
  EXPECT_EQ(vol_->GetAcl(d)->size(), 1u);  // inherited from the parent
  uint64_t f = File(d, "f");
  auto l = vol_->Symlink(d, "l", "../target", {});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*vol_->ReadLink(l->vnode), "../target");
  EXPECT_EQ(vol_->GetVnode(l->vnode)->size, 9u);
  EXPECT_EQ(vol_->ReadLink(f).status().code(), Code::kInvalidArgument);

  EXPECT_EQ(vol_->Remove(kRootVnode, "d").code(), Code::kIsDirectory);
  EXPECT_EQ(vol_->RemoveDir(kRootVnode, "d").code(), Code::kNotEmpty);
  EXPECT_EQ(vol_->RemoveDir(d, "f").code(), Code::kNotDirectory);
  EXPECT_EQ(vol_->Remove(d, "nope").code(), Code::kNotFound);
  ASSERT_TRUE(vol_->Remove(d, "f").ok());
  EXPECT_EQ(vol_->GetVnode(f).status().code(), Code::kNotFound);
  ASSERT_TRUE(vol_->Remove(d, "l").ok());
  EXPECT_EQ(vol_->Header()->usage_bytes, 0u);
  ASSERT_TRUE(vol_->RemoveDir(kRootVnode, "d").ok());
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->link_count, 2u);
  EXPECT_EQ(vol_->GetAcl(d).status().code(), Code::kNotFound);
}

TEST_F(VolumeTest, SerialIsBumpedByEveryChange) {
  uint64_t s0 = vol_->Header()->serial;
  uint64_t f = File(kRootVnode, "f");
  uint64_t s1 = vol_->Header()->serial;
  EXPECT_GT(s1, s0);
  EXPECT_EQ(vol_->GetVnode(f)->serial, s1);
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->serial, s1);
  ASSERT_TRUE(vol_->SetAttr(f, {.mode = 0700}).ok());
  EXPECT_GT(vol_->GetVnode(f)->serial, s1);
  EXPECT_EQ(vol_->GetVnode(f)->serial, vol_->Header()->serial);
}

TEST_F(VolumeTest, RenameCases) {
  uint64_t a = Dir(kRootVnode, "a");
  uint64_t b = Dir(kRootVnode, "b");
  uint64_t f = File(a, "f");
  uint64_t g = File(b, "g");
  ASSERT_TRUE(vol_->Rename(a, "f", a, "f2").ok());
  EXPECT_EQ(vol_->Lookup(a, "f").status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->Lookup(a, "f2")->vnode, f);
  // Over an existing file, across directories: the replaced file is gone.
  ASSERT_TRUE(vol_->Rename(a, "f2", b, "g").ok());
  EXPECT_EQ(vol_->Lookup(b, "g")->vnode, f);
  EXPECT_EQ(vol_->GetVnode(f)->parent, b);
  EXPECT_EQ(vol_->GetVnode(g).status().code(), Code::kNotFound);
  // Directories: into itself, over a file, a file over a directory, over a non-empty one.
  uint64_t sub = Dir(a, "sub");
  EXPECT_EQ(vol_->Rename(kRootVnode, "a", sub, "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(vol_->Rename(kRootVnode, "a", b, "g").code(), Code::kNotDirectory);
  EXPECT_EQ(vol_->Rename(b, "g", a, "sub").code(), Code::kIsDirectory);
  EXPECT_EQ(vol_->Rename(kRootVnode, "b", a, "sub2").code(), Code::kOk);
  EXPECT_EQ(vol_->GetVnode(a)->link_count, 4u);  // sub, sub2
  EXPECT_EQ(vol_->GetVnode(kRootVnode)->link_count, 3u);
  Dir(kRootVnode, "c");
  EXPECT_EQ(vol_->Rename(kRootVnode, "c", a, "sub2").code(), Code::kNotEmpty);
  ASSERT_TRUE(vol_->Rename(kRootVnode, "c", a, "sub").ok());  // over an empty directory
  EXPECT_EQ(vol_->GetVnode(sub).status().code(), Code::kNotFound);
  EXPECT_EQ(vol_->GetVnode(a)->link_count, 4u);
  EXPECT_EQ(vol_->Rename(a, "missing", a, "x").code(), Code::kNotFound);
}

TEST_F(VolumeTest, HardLinksOnlyWithinOneDirectory) {
  uint64_t a = Dir(kRootVnode, "a");
  uint64_t f = File(a, "f");
  auto linked = vol_->Link(a, f, "f2");
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->link_count, 2u);
  EXPECT_EQ(vol_->Link(kRootVnode, f, "x").status().code(), Code::kCrossDevice);
  EXPECT_EQ(vol_->Link(a, f, "f2").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(vol_->Link(kRootVnode, a, "x").status().code(), Code::kIsDirectory);
  EXPECT_EQ(vol_->Rename(a, "f", kRootVnode, "moved").code(), Code::kCrossDevice);
  ASSERT_TRUE(vol_->Rename(a, "f", a, "f2").ok());  // both name the same file: a no-op
  EXPECT_TRUE(vol_->Lookup(a, "f").ok());
  ASSERT_TRUE(vol_->Remove(a, "f").ok());
  EXPECT_EQ(vol_->GetVnode(f)->link_count, 1u);
  ASSERT_TRUE(vol_->Remove(a, "f2").ok());
  EXPECT_EQ(vol_->GetVnode(f).status().code(), Code::kNotFound);
}

TEST_F(VolumeTest, SetAttrAndAcl) {
  uint64_t f = File(kRootVnode, "f");
  auto v = vol_->SetAttr(
      f, {.mode = 0640, .owner = 5, .group = 6, .mtime_ns = 77, .client_attr = Bytes{9}});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->mode, 0640u);
  EXPECT_EQ(v->owner, 5);
  EXPECT_EQ(v->group, 6);
  EXPECT_EQ(v->mtime_ns, 77);
  EXPECT_EQ(v->client_attr, Bytes{9});
  EXPECT_EQ(vol_->SetAttr(kRootVnode, {.size = 1}).status().code(), Code::kIsDirectory);
  EXPECT_EQ(vol_->SetAttr(999, {}).status().code(), Code::kNotFound);

  std::vector<AclEntry> acl = {
      {-204, kAllRights, false}, {1001, kRead | kLookup, false}, {1002, kWrite, true}};
  ASSERT_TRUE(vol_->SetAcl(kRootVnode, acl).ok());
  auto got = vol_->GetAcl(kRootVnode);
  ASSERT_TRUE(got.ok());
  std::set<std::pair<int64_t, bool>> keys;
  for (auto& e : *got) keys.insert({e.principal, e.negative});
  std::set<std::pair<int64_t, bool>> want = {{-204, false}, {1001, false}, {1002, true}};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(vol_->SetAcl(f, acl).code(), Code::kNotDirectory);
  EXPECT_EQ(vol_->SetAcl(kRootVnode, {{1, 1u << 9, false}}).code(), Code::kInvalidArgument);
}

TEST_F(VolumeTest, ReopenKeepsEverything) {
  uint64_t d = Dir(kRootVnode, "d");
  File(d, "f");
  vol_.reset();
  auto v = Volume::Open(options_, 7);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  vol_ = std::move(*v);
  EXPECT_TRUE(vol_->Lookup(d, "f").ok());
}

std::string Name(int i) {
  char buf[32];
  snprintf(buf, sizeof buf, "entry-%06d", i);
  return buf;
}

TEST_F(VolumeTest, PagingStaysCorrectWhileTheDirectoryChanges) {
  constexpr int kEntries = 100000;
  for (int i = 0; i < kEntries; ++i) ASSERT_TRUE(vol_->CreateFile(kRootVnode, Name(i), {}).ok());
  // Between pages, delete some names (every 7th, ahead and behind the cursor) and create new
  // ones; every name never touched must appear exactly once, in order.
  std::set<std::string> touched;
  std::map<std::string, int> seen;
  std::string after;
  int page = 0, deleted = 0;
  for (;;) {
    auto entries = vol_->List(kRootVnode, after, 1000);
    ASSERT_TRUE(entries.ok());
    if (entries->empty()) break;
    for (const DirEntry& e : *entries) {
      EXPECT_GT(e.name, after);
      seen[e.name]++;
      after = e.name;
    }
    for (int k = 0; k < 10; ++k) {
      int victim = (page * 7919 + k * 7) % kEntries;
      if (touched.insert(Name(victim)).second) {
        ASSERT_TRUE(vol_->Remove(kRootVnode, Name(victim)).ok());
        deleted++;
      }
      std::string fresh = Name(victim) + "-new" + std::to_string(page);
      touched.insert(fresh);
      ASSERT_TRUE(vol_->CreateFile(kRootVnode, fresh, {}).ok());
    }
    page++;
  }
  EXPECT_GT(deleted, 500);
  for (int i = 0; i < kEntries; ++i) {
    if (touched.count(Name(i))) continue;
    ASSERT_EQ(seen[Name(i)], 1) << Name(i);
  }
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
}

}  // namespace
}  // namespace heka::fs

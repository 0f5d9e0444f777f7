// Two real heka-cachemgr mounts (two client machines) against a real cell: what one writes,
// renames or deletes, the other sees right after close; real programs on the mount.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "tests/support/fs_cell.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::cm {
namespace {

namespace pb = ::heka::fileserver;
using testing::SharedRealm;
using testing::WaitFor;
using std::chrono::seconds;

constexpr int64_t kAdmins = -204, kAuthUser = -102;

// A mounted heka-cachemgr process.
struct Mount {
  std::string dir;     // the mount point
  std::string config;
  std::string log;
  pid_t pid = -1;
};

struct World {
  std::unique_ptr<testing::FsCell> cell;
  std::map<std::string, std::string> cc;  // user -> ccache path
  rpc::Runtime runtime{{2, 2}};
  std::unique_ptr<db::DbClient> db;
  std::vector<Mount> mounts;
  pb::Fid root;

  ~World() {
    for (Mount& m : mounts) {
      testing::StopChild(m.pid);
      testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
    }
    db.reset();
    cell.reset();
  }
};

bool Mounted(const std::string& dir) {
  struct stat a {}, b {};
  if (stat(dir.c_str(), &a) != 0) return false;
  if (stat((dir + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

Mount StartMount(World& w, const std::string& name, const std::string& keytab,
                 const std::string& principal) {
  auto& realm = SharedRealm();
  Mount m;
  std::string base = realm.dir() + "/" + name;
  m.dir = base + "/mnt";
  m.config = base + ".toml";
  m.log = base + ".log";
  std::filesystem::create_directories(m.dir);
  std::filesystem::create_directories(base + "/state");
  std::ofstream(m.config) << "[cachemgr]\nmountpoint = \"" << m.dir << "\"\ndbservers = \""
                          << w.cell->db().dbservers() << "\"\ncells = [\"acme\"]\nkeytab = \""
                          << keytab << "\"\nprincipal = \"" << principal
                          << "\"\nstate_dir = \"" << base << "/state\"\n";
  m.pid = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", m.config, "--log", m.log});
  EXPECT_TRUE(WaitFor([&] { return Mounted(m.dir); }, seconds(20))) << "no mount at " << m.dir;
  return m;
}

World& TheWorld() {
  static World* world = [] {
    auto* w = new World;
    auto& realm = SharedRealm();
    for (const char* user : {"admin", "alice", "bob"}) {
      EXPECT_TRUE(realm.AddUser(user, std::string(user) + "-pw").ok());
      w->cc[user] = realm.NewCcachePath(user);
      EXPECT_TRUE(realm.Kinit(user, std::string(user) + "-pw", w->cc[user]).ok());
    }
    testing::FsCellOptions o;
    o.provider_admins = {"admin@HEKA.TEST"};
    auto cell = testing::FsCell::Create(realm, o, w->cc["admin"]);
    EXPECT_TRUE(cell.ok()) << cell.status().ToString();
    w->cell = std::move(*cell);
    EXPECT_TRUE(w->cell->StartFileServerAndWait(1).ok());
    db::DbClientOptions dbo;
    dbo.members = *db::ParseMembers(w->cell->db().dbservers());
    dbo.credentials.ccache = "FILE:" + w->cc["admin"];
    dbo.prefer_leader_reads = true;
    w->db = std::make_unique<db::DbClient>(w->runtime, dbo);
    auto write = [&](db::Command cmd) {
      auto r = w->runtime.BlockOn(w->db->Write(std::move(cmd)));
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      return r;
    };
    db::Command cell_cmd;
    cell_cmd.mutable_create_cell()->set_name("acme");
    cell_cmd.mutable_create_cell()->add_realms("HEKA.TEST");
    (void)write(cell_cmd);
    for (const char* user : {"alice", "bob"}) {
      db::Command u;
      u.mutable_create_user()->set_cell("acme");
      u.mutable_create_user()->set_principal(std::string(user) + "@HEKA.TEST");
      (void)write(u);
    }
    db::Command vol;
    db::Volume* v = vol.mutable_create_volume()->mutable_volume();
    v->set_name("root.cell");
    v->set_cell("acme");
    db::VolumeSite* site = v->add_sites();
    site->set_server_uuid(w->cell->fs_uuid(1));
    site->set_partition(w->cell->fs_partition(1));
    auto id = write(vol);
    // Create it on the file server, and let every authenticated user of the realm work there.
    fs::FileClientOptions fo;
    fo.address = w->cell->fs_address(1);
    fo.server_principal = w->cell->fs_principal(1);
    fo.credentials.ccache = "FILE:" + w->cc["admin"];
    auto admin = fs::FileClient::Create(w->runtime, fo);
    pb::CreateVolumeRequest cv;
    cv.set_cell("acme");
    cv.set_id(id.ok() ? static_cast<uint64_t>(id->id()) : 0);
    auto made = admin->CallSync<pb::CreateVolumeReply>("heka.fileserver.VolumeServer.CreateVolume", cv);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    w->root.set_cell("acme");
    w->root.set_volume(cv.id());
    w->root.set_vnode(1);
    w->root.set_uniq(1);
    // The provider admin is no cell admin: make it one to set the root ACL.
    db::Command adm_user;
    adm_user.mutable_create_user()->set_cell("acme");
    adm_user.mutable_create_user()->set_principal("admin@HEKA.TEST");
    (void)write(adm_user);
    db::Command adm;
    adm.mutable_add_member()->set_cell("acme");
    adm.mutable_add_member()->set_user("admin");
    adm.mutable_add_member()->set_group("system:administrators");
    (void)write(adm);
    pb::StoreAclRequest acl;
    *acl.mutable_dir() = w->root;
    auto* e1 = acl.add_entries();
    e1->set_principal(kAdmins);
    e1->set_rights(127);
    auto* e2 = acl.add_entries();
    e2->set_principal(kAuthUser);
    e2->set_rights(1 | 2 | 4 | 8 | 16 | 32);  // rlidwk
    EXPECT_TRUE(WaitFor(
        [&] { return admin->CallSync<pb::StoreAclReply>("heka.fileserver.File.StoreAcl", acl).ok(); },
        seconds(10)));
    for (int i = 1; i <= 2; ++i) {
      std::string host = "heka/client" + std::to_string(i);
      auto kt = realm.AddService(realm.Principal(host));
      EXPECT_TRUE(kt.ok());
      w->mounts.push_back(StartMount(*w, "client" + std::to_string(i), *kt, realm.Principal(host)));
    }
    return w;
  }();
  return *world;
}

// Runs `script` with sh as a process holding `user`'s tickets; returns its output and exit code.
testing::ProcessResult Sh(const std::string& user, const std::string& script) {
  World& w = TheWorld();
  return testing::RunProcess({"/bin/sh", "-c", script},
                             {{"KRB5CCNAME", "FILE:" + w.cc.at(user)}}, seconds(120));
}

std::string A(const std::string& path) { return TheWorld().mounts[0].dir + "/acme/" + path; }
std::string B(const std::string& path) { return TheWorld().mounts[1].dir + "/acme/" + path; }

TEST(CacheManagerTest, RootListsConfiguredCellsAndUnknownCellsFailCleanly) {
  World& w = TheWorld();
  auto ls = Sh("alice", "ls " + w.mounts[0].dir);
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_EQ(ls.output, "acme\n");
  auto missing = Sh("alice", "ls " + w.mounts[0].dir + "/nosuchcell 2>&1");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("No such file or directory"), std::string::npos) << missing.output;
}

TEST(CacheManagerTest, WhatOneClientWritesTheOtherReadsRightAfterClose) {
  auto w1 = Sh("alice", "echo first > " + A("shared.txt"));
  ASSERT_EQ(w1.exit_code, 0) << w1.output;
  auto r1 = Sh("bob", "cat " + B("shared.txt"));
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  EXPECT_EQ(r1.output, "first\n");
  // B now caches it; A changes it; B must see the change at once (the break).
  auto w2 = Sh("alice", "echo second version > " + A("shared.txt"));
  ASSERT_EQ(w2.exit_code, 0) << w2.output;
  EXPECT_EQ(Sh("bob", "cat " + B("shared.txt")).output, "second version\n");
  auto append = Sh("bob", "echo appended by bob >> " + B("shared.txt"));
  ASSERT_EQ(append.exit_code, 0) << append.output;
  EXPECT_EQ(Sh("alice", "cat " + A("shared.txt")).output, "second version\nappended by bob\n");
}

TEST(CacheManagerTest, RenamesDeletesAndDirectoriesShowOnTheOtherClient) {
  ASSERT_EQ(Sh("alice", "mkdir " + A("d") + " && echo x > " + A("d/one")).exit_code, 0);
  EXPECT_EQ(Sh("bob", "ls " + B("d")).output, "one\n");
  ASSERT_EQ(Sh("alice", "mv " + A("d/one") + " " + A("d/two")).exit_code, 0);
  EXPECT_EQ(Sh("bob", "ls " + B("d")).output, "two\n");
  EXPECT_NE(Sh("bob", "cat " + B("d/one")).exit_code, 0);
  EXPECT_EQ(Sh("bob", "cat " + B("d/two")).output, "x\n");
  ASSERT_EQ(Sh("alice", "rm " + A("d/two")).exit_code, 0);
  EXPECT_EQ(Sh("bob", "ls " + B("d")).output, "");
  auto rmdir = Sh("bob", "rmdir " + B("d"));
  EXPECT_EQ(rmdir.exit_code, 0) << rmdir.output;
  EXPECT_NE(Sh("alice", "ls " + A("d")).exit_code, 0);
}

TEST(CacheManagerTest, PosixBasics) {
  std::string script =
      "set -e\n"
      "cd " + A("") + "\n"
      "mkdir posix && cd posix\n"
      "printf abcdef > f\n"
      "test $(stat -c %s f) = 6\n"
      "truncate -s 3 f && test \"$(cat f)\" = abc\n"
      "chmod 600 f && test $(stat -c %a f) = 600\n"
      "ln -s f link && test \"$(readlink link)\" = f && test \"$(cat link)\" = abc\n"
      "ln f hard && test $(stat -c %h f) = 2\n"
      "mkdir sub\n"
      "if ln f sub/hard 2>err; then echo 'cross-directory link worked' >&2; exit 1; fi\n"
      "grep -q 'Invalid cross-device link' err\n"
      "echo new > g && mv g f && test \"$(cat f)\" = new\n"
      "touch -d '2001-02-03 04:05:06' f && test $(stat -c %Y f) = $(date -d '2001-02-03 04:05:06' +%s)\n"
      "if rmdir /dev/null/x 2>/dev/null; then exit 1; fi\n"
      "echo x > sub/y && if rmdir sub 2>err; then exit 1; fi && grep -q 'not empty' err\n"
      "dd if=/dev/urandom of=big bs=1M count=3 status=none && cmp big big\n"
      "cp big big2 && cmp big big2\n"
      "df . >/dev/null\n"
      "ls -la >/dev/null\n";
  auto r = Sh("alice", script);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto b = Sh("bob", "cmp " + A("posix/big") + " " + B("posix/big2"));
  EXPECT_EQ(b.exit_code, 0) << b.output;
}

TEST(CacheManagerTest, RealProgramsWork) {
  auto r = Sh("alice",
              "set -e\n"
              "cd " + A("") + "\n"
              "mkdir prog && cd prog\n"
              "git init -q repo && cd repo\n"
              "git config user.email a@example.org && git config user.name alice\n"
              "echo hello > README && git add README && git commit -qm first\n"
              "git status --porcelain > ../status && test ! -s ../status\n"
              "git log --oneline | grep -q first\n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace heka::cm

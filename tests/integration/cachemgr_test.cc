// Two real heka-cachemgr mounts (two client machines) against a real cell: what one writes,
// renames or deletes, the other sees right after close; real programs on the mount.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "cachemgr/crypto/crypto.h"
#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "tests/support/frame_proxy.h"
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
  int64_t id_bob = 0;
  // The cell key of acme, in <realm>/keys/acme.key (raw), which both mounts use.
  std::shared_ptr<const crypto::CellKey> key;

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
  std::ifstream mounts("/proc/mounts");
  for (std::string line; std::getline(mounts, line);) {
    if (line.find(" " + dir + " fuse.heka ") != std::string::npos) return true;
  }
  return false;
}

// Mounts a cache manager as client `name` (its state, cache included, under the realm's
// directory: the same name finds the same cache again). `extra` goes into [cachemgr]; `env`
// ("VAR=value") into its environment.
Mount StartMount(World& w, const std::string& name, const std::string& keytab,
                 const std::string& principal, const std::string& extra = "",
                 const std::vector<std::string>& env = {}) {
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
                          << "\"\nstate_dir = \"" << base << "/state\"\ncontrol_socket = \""
                          << base << "/control.sock\"\n"
                          << extra;
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  for (const std::string& a : {testing::BinDir() + "/heka-cachemgr", std::string("--config"),
                               m.config, std::string("--log"), m.log}) {
    argv.push_back(a);
  }
  m.pid = testing::Spawn(argv);
  EXPECT_TRUE(WaitFor([&] { return Mounted(m.dir); }, seconds(20))) << "no mount at " << m.dir;
  return m;
}

World* g_world = nullptr;

// Tears the shared world down after the last test (processes, mounts), failed tests or not.
class WorldCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_world;
    g_world = nullptr;
  }
};
[[maybe_unused]] const auto* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new WorldCleanup);

World& TheWorld() {
  if (!g_world) g_world = [] {
    auto* w = new World;
    auto& realm = SharedRealm();
    for (const char* user : {"admin", "alice", "bob"}) {
      EXPECT_TRUE(realm.AddUser(user, std::string(user) + "-pw").ok());
      w->cc[user] = realm.NewCcachePath(user);
      EXPECT_TRUE(realm.Kinit(user, std::string(user) + "-pw", w->cc[user]).ok());
    }
    testing::FsCellOptions o;
    o.provider_admins = {"admin@HEKA.TEST"};
    o.fileservers = 2;  // the second one for volume moves
    auto cell = testing::FsCell::Create(realm, o, w->cc["admin"]);
    EXPECT_TRUE(cell.ok()) << cell.status().ToString();
    w->cell = std::move(*cell);
    EXPECT_TRUE(w->cell->StartFileServerAndWait(1).ok());
    EXPECT_TRUE(w->cell->StartFileServerAndWait(2).ok());
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
      auto r = write(u);
      if (std::string(user) == "bob" && r.ok()) w->id_bob = r->id();
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
        seconds(30)));
    std::filesystem::create_directories(realm.dir() + "/keys");
    w->key = crypto::CellKey::Generate();
    EXPECT_TRUE(crypto::WriteKeyFile(realm.dir() + "/keys/acme.key",
                                     crypto::RawKeyFile("acme", *w->key), false).ok());
    for (int i = 1; i <= 2; ++i) {
      std::string host = "heka/client" + std::to_string(i);
      auto kt = realm.AddService(realm.Principal(host));
      EXPECT_TRUE(kt.ok());
      w->mounts.push_back(StartMount(*w, "client" + std::to_string(i), *kt, realm.Principal(host),
                                     "key_dir = \"" + realm.dir() + "/keys\"\n"));
    }
    return w;
  }();
  return *g_world;
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

namespace heka::cm {
namespace {

// An admin's client of the file server, for setting ACLs and quotas behind the mounts.
std::shared_ptr<fs::FileClient> Admin() {
  World& w = TheWorld();
  fs::FileClientOptions fo;
  fo.address = w.cell->fs_address(1);
  fo.server_principal = w.cell->fs_principal(1);
  fo.credentials.ccache = "FILE:" + w.cc["admin"];
  return fs::FileClient::Create(w.runtime, fo);
}

TEST(CacheManagerTest, CloseReportsQuotaAndTheServerKeepsThePreviousContent) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "echo precious > " + A("quota.txt")).exit_code, 0);
  auto admin = Admin();
  pb::GetVolumeStatusRequest vs;
  vs.set_cell("acme");
  vs.set_volume(w.root.volume());
  auto st = admin->CallSync<pb::GetVolumeStatusReply>("heka.fileserver.File.GetVolumeStatus", vs);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  pb::SetQuotaRequest q;
  q.set_cell("acme");
  q.set_volume(w.root.volume());
  q.set_quota_bytes(st->status().usage_bytes() + 100000);
  ASSERT_TRUE(admin->CallSync<pb::SetQuotaReply>("heka.fileserver.File.SetQuota", q).ok());
  // cp opens with O_TRUNC and closes once: the truncation and the data are one store, and
  // it is refused as a whole. (A shell redirection dup()s and closes the descriptor first,
  // which stores the truncation on its own, as close(2) must.)
  std::string big = SharedRealm().dir() + "/big-local";
  std::ofstream(big) << std::string(300000, 'z');
  auto over = Sh("alice", "cp " + big + " " + A("quota.txt"));
  EXPECT_NE(over.exit_code, 0);
  EXPECT_NE(over.output.find("Disk quota exceeded"), std::string::npos) << over.output;
  EXPECT_EQ(Sh("bob", "cat " + B("quota.txt")).output, "precious\n");
  over = Sh("alice", "dd if=" + big + " of=" + A("quota.txt") + " conv=notrunc status=none");
  EXPECT_NE(over.exit_code, 0);
  EXPECT_NE(over.output.find("Disk quota exceeded"), std::string::npos) << over.output;
  EXPECT_EQ(Sh("bob", "cat " + B("quota.txt")).output, "precious\n");
  EXPECT_EQ(Sh("alice", "cat " + A("quota.txt")).output, "precious\n");
  q.set_quota_bytes(0);
  ASSERT_TRUE(admin->CallSync<pb::SetQuotaReply>("heka.fileserver.File.SetQuota", q).ok());
  EXPECT_EQ(Sh("alice", "head -c 300000 /dev/zero > " + A("quota.txt")).exit_code, 0);
}

// Two local Unix users with their own tickets on one shared mount.
struct UnixUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string ccache;  // owned by the user, 0600
};

UnixUser MakeUnixUser(const std::string& name, const std::string& principal) {
  testing::RunProcess({"useradd", "--system", "--no-create-home", "--shell", "/bin/sh", name});
  auto id = testing::RunProcess({"id", "-u", name});
  auto gid = testing::RunProcess({"id", "-g", name});
  EXPECT_EQ(id.exit_code, 0) << "useradd " << name << " failed (the tests run as root)";
  UnixUser u;
  u.uid = static_cast<uid_t>(std::stoul(id.output));
  u.gid = static_cast<gid_t>(std::stoul(gid.output));
  u.ccache = SharedRealm().dir() + "/cc-" + name;
  EXPECT_TRUE(SharedRealm().Kinit(principal, principal + "-pw", u.ccache).ok());
  EXPECT_EQ(chown(u.ccache.c_str(), u.uid, u.gid), 0);
  chmod(u.ccache.c_str(), 0600);
  chmod(SharedRealm().dir().c_str(), 0755);  // the users reach their caches and the krb5.conf
  return u;
}

testing::ProcessResult As(const UnixUser& u, const std::string& script,
                          const std::string& ccache = "") {
  return testing::RunProcess(
      {"setpriv", "--reuid", std::to_string(u.uid), "--regid", std::to_string(u.gid),
       "--clear-groups", "/bin/sh", "-c", script},
      {{"KRB5CCNAME", "FILE:" + (ccache.empty() ? u.ccache : ccache)}}, seconds(60));
}

TEST(CacheManagerTest, EachUnixUserGetsOnlyWhatTheAclGivesTheirPrincipal) {
  World& w = TheWorld();
  UnixUser a = MakeUnixUser("heka-test-a", "alice");
  UnixUser b = MakeUnixUser("heka-test-b", "bob");
  auto admin = Admin();
  // A directory only alice may use.
  ASSERT_EQ(Sh("alice", "mkdir " + A("private") + " && echo top secret > " + A("private/secret"))
                .exit_code,
            0);
  pb::LookupRequest look;
  *look.mutable_dir() = w.root;
  look.set_name("private");
  auto dir = admin->CallSync<pb::LookupReply>("heka.fileserver.File.Lookup", look);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  auto set_acl = [&](std::vector<std::pair<int64_t, uint32_t>> entries) {
    pb::StoreAclRequest acl;
    *acl.mutable_dir() = dir->status().fid();
    for (auto [who, rights] : entries) {
      auto* e = acl.add_entries();
      e->set_principal(who);
      e->set_rights(rights);
    }
    return admin->CallSync<pb::StoreAclReply>("heka.fileserver.File.StoreAcl", acl).ok();
  };
  db::GetEntryRequest alice_req;
  alice_req.set_cell("acme");
  alice_req.set_name("alice");
  auto alice = w.runtime.BlockOn(w.db->GetEntry(alice_req));
  ASSERT_TRUE(alice.ok());
  ASSERT_TRUE(set_acl({{kAdmins, 127}, {alice->entry().id(), 1 | 8}}));

  std::string secret = w.mounts[0].dir + "/acme/private/secret";
  std::string private_dir = w.mounts[0].dir + "/acme/private";
  auto ra = As(a, "cat " + secret + " && stat -c %s " + secret + " && ls " + private_dir);
  EXPECT_EQ(ra.exit_code, 0) << ra.output;
  EXPECT_EQ(ra.output, "top secret\n11\nsecret\n");
  // bob, right after alice, on the same mount: nothing, names included.
  for (const std::string& cmd : {"cat " + secret, "stat " + secret, "ls " + private_dir}) {
    auto rb = As(b, cmd + " 2>&1");
    EXPECT_NE(rb.exit_code, 0) << cmd << ": " << rb.output;
    EXPECT_NE(rb.output.find("Permission denied"), std::string::npos) << cmd << ": " << rb.output;
  }
  // Credential theft: a points KRB5CCNAME at b's cache, directly or through a symlink.
  std::string link = "/tmp/heka-test-stolen-cc";
  std::filesystem::remove(link);
  std::filesystem::create_symlink(b.ccache, link);
  for (const std::string& stolen : {b.ccache, link}) {
    ASSERT_TRUE(set_acl({{kAdmins, 127}, {w.id_bob, 1 | 8}}));  // only bob now
    auto t = As(a, "cat " + secret + " 2>&1", stolen);
    EXPECT_NE(t.exit_code, 0) << "a read bob's file with bob's stolen cache " << stolen;
    EXPECT_NE(t.output.find("Permission denied"), std::string::npos) << t.output;
  }
  std::filesystem::remove(link);
  std::ifstream log(w.mounts[0].log);
  std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("uid " + std::to_string(a.uid)), std::string::npos)
      << "the refused credential cache must be logged";
  // Granted: bob reads it at once.
  auto rb = As(b, "cat " + secret);
  EXPECT_EQ(rb.exit_code, 0) << rb.output;
  EXPECT_EQ(rb.output, "top secret\n");
}

TEST(CacheManagerTest, FileServerKilledAndRestartedClientsResumeWithoutRemount) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "echo before > " + A("crash.txt")).exit_code, 0);
  w.cell->KillFileServer(1);
  auto during = Sh("bob", "cat " + B("crash.txt") + " 2>&1; echo > " + B("other.txt") + " 2>&1");
  EXPECT_NE(during.output.find("error"), std::string::npos) << during.output;
  ASSERT_TRUE(w.cell->StartFileServerAndWait(1).ok()) << w.cell->LogTail(1);
  EXPECT_TRUE(WaitFor([&] { return Sh("bob", "cat " + B("crash.txt")).output == "before\n"; },
                      seconds(30)));
  ASSERT_EQ(Sh("bob", "echo after > " + B("crash.txt")).exit_code, 0);
  EXPECT_EQ(Sh("alice", "cat " + A("crash.txt")).output, "after\n");
}

TEST(CacheManagerTest, KilledCacheManagerRemountsAndServesNothingStale) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "echo one > " + A("remount.txt")).exit_code, 0);
  ASSERT_EQ(Sh("bob", "cat " + B("remount.txt")).output, "one\n");
  Mount& m = w.mounts[1];
  testing::KillChild(m.pid);
  testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
  ASSERT_EQ(Sh("alice", "echo two > " + A("remount.txt")).exit_code, 0);
  m.pid = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", m.config, "--log", m.log});
  ASSERT_TRUE(WaitFor([&] { return Mounted(m.dir); }, seconds(20)));
  EXPECT_EQ(Sh("bob", "cat " + B("remount.txt")).output, "two\n");
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

bool FileSays(const std::string& path, const std::string& text) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.find(text) != std::string::npos;
}

// A lock held through one mount blocks the other mount until it is released.
TEST(CacheManagerTest, LocksOnOneClientBlockTheOther) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "head -c 4096 /dev/zero > " + A("locked.db")).exit_code, 0);
  std::string tool = testing::BinDir() + "/heka_lock_tool";
  std::string base = SharedRealm().dir() + "/lock";
  for (std::string kind : {"fcntl", "flock"}) {
    std::string marker = base + "-" + kind + ".marker";
    std::string fifo = base + "-" + kind + ".fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    std::vector<std::string> argv = {"/usr/bin/env", "KRB5CCNAME=FILE:" + w.cc.at("alice")};
    if (kind == "fcntl") {
      for (const std::string& a : {tool, std::string("hold"), A("locked.db"), std::string("100"),
                                   std::string("10"), marker, fifo}) {
        argv.push_back(a);
      }
    } else {
      for (const std::string& a : {std::string("flock"), std::string("-x"), A("locked.db"),
                                   std::string("-c"), "echo locked > " + marker + "; cat " + fifo}) {
        argv.push_back(a);
      }
    }
    pid_t holder = testing::Spawn(argv);
    ASSERT_TRUE(WaitFor([&] { return FileSays(marker, "locked"); }, seconds(20)));
    if (kind == "fcntl") {
      EXPECT_EQ(Sh("bob", tool + " try " + B("locked.db") + " 105 1").exit_code, 1)
          << "the range is locked on the other client";
      EXPECT_EQ(Sh("bob", tool + " try " + B("locked.db") + " 200 10").exit_code, 0)
          << "another range is free";
    } else {
      EXPECT_NE(Sh("bob", "flock -n -x " + B("locked.db") + " true").exit_code, 0);
    }
    std::ofstream(fifo) << "go\n";  // the holder exits, its lock goes
    int status = 0;
    waitpid(holder, &status, 0);
    std::string retry = kind == "fcntl" ? tool + " try " + B("locked.db") + " 105 1"
                                        : "flock -n -x " + B("locked.db") + " true";
    EXPECT_TRUE(WaitFor([&] { return Sh("bob", retry).exit_code == 0; }, seconds(20)))
        << kind << " lock never released";
  }
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

TEST(CacheManagerTest, UntarAndMakeASourceTree) {
  std::string src = SharedRealm().dir() + "/srcproj";
  std::filesystem::create_directories(src + "/lib");
  std::ofstream(src + "/lib/greet.h") << "const char* greet(void);\n";
  std::ofstream(src + "/lib/greet.c") << "#include \"greet.h\"\nconst char* greet(void) { return \"hello from heka\"; }\n";
  std::ofstream(src + "/main.c") << "#include <stdio.h>\n#include \"lib/greet.h\"\nint main(void) { puts(greet()); return 0; }\n";
  std::ofstream(src + "/Makefile") << "hello: main.o lib/greet.o\n\tcc -o $@ $^\n%.o: %.c\n\tcc -c -o $@ $<\n";
  auto tar = testing::RunProcess({"tar", "-C", SharedRealm().dir(), "-czf", SharedRealm().dir() + "/src.tgz", "srcproj"});
  ASSERT_EQ(tar.exit_code, 0) << tar.output;
  auto r = Sh("alice", "set -e\ncd " + A("") + "\ntar -xzf " + SharedRealm().dir() +
                           "/src.tgz\ncd srcproj\nmake -s\n./hello\nmake -s clean 2>/dev/null || true\n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("hello from heka"), std::string::npos) << r.output;
  // The other client runs the binary the first one built.
  EXPECT_EQ(Sh("bob", B("srcproj/hello")).output, "hello from heka\n");
}

TEST(CacheManagerTest, SqliteWithWritersOnTwoClients) {
  ASSERT_EQ(Sh("alice", "sqlite3 " + A("shared.db") + " 'CREATE TABLE t (who TEXT, n INT);'").exit_code, 0);
  auto writer = [](const std::string& user, const std::string& db) {
    std::string path = SharedRealm().dir() + "/writer-" + user + ".sh";
    std::ofstream(path) << "for i in $(seq 1 25); do\n  sqlite3 -cmd '.timeout 20000' " << db
                        << " \"INSERT INTO t VALUES ('" << user << "', $i);\" || exit 1\ndone\n";
    return path;
  };
  std::string a_script = writer("alice", A("shared.db"));
  std::string b_script = writer("bob", B("shared.db"));
  // Both at once, each with its own tickets, through its own mount.
  auto both = Sh("alice", "sh " + a_script + " & a=$!; KRB5CCNAME=FILE:" + TheWorld().cc.at("bob") +
                              " sh " + b_script + " & b=$!; wait $a && wait $b");
  EXPECT_EQ(both.exit_code, 0) << both.output;
  auto count = Sh("bob", "sqlite3 " + B("shared.db") + " 'SELECT who, count(*) FROM t GROUP BY who;'");
  EXPECT_EQ(count.output, "alice|25\nbob|25\n") << count.output;
  auto check = Sh("alice", "sqlite3 " + A("shared.db") + " 'PRAGMA integrity_check;'");
  EXPECT_EQ(check.output, "ok\n");
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

// An expired ticket: EACCES (from the cache too) and one log line; a new kinit works at once.
TEST(CacheManagerTest, ExpiredTicketIsRefusedUntilANewKinit) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "echo fresh > " + A("ticket.txt")).exit_code, 0);
  std::string cc = SharedRealm().NewCcachePath("alice-short");
  ASSERT_TRUE(SharedRealm().Kinit("alice", "alice-pw", cc, "6s").ok());
  auto as_short = [&](const std::string& script) {
    return testing::RunProcess({"/bin/sh", "-c", script}, {{"KRB5CCNAME", "FILE:" + cc}},
                               seconds(60));
  };
  auto ok = as_short("cat " + A("ticket.txt"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  ASSERT_EQ(ok.output, "fresh\n");
  testing::ProcessResult refused;
  ASSERT_TRUE(WaitFor(
      [&] {
        refused = as_short("cat " + A("ticket.txt") + " 2>&1");
        return refused.exit_code != 0;
      },
      seconds(30)))
      << "the expired ticket kept working";
  EXPECT_NE(refused.output.find("Permission denied"), std::string::npos) << refused.output;
  std::ifstream log(w.mounts[0].log);
  std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("has expired"), std::string::npos);
  ASSERT_TRUE(SharedRealm().Kinit("alice", "alice-pw", cc).ok());
  auto again = as_short("cat " + A("ticket.txt"));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output, "fresh\n");
}

// Calls file server 1 answered so far, by method (`heka rpc stats`, as alice).
std::map<std::string, uint64_t> ServerCalls() {
  World& w = TheWorld();
  auto r = Sh("alice", testing::BinDir() + "/heka rpc stats -server " + w.cell->fs_address(1) +
                           " -principal " + w.cell->fs_principal(1) + " -format json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::map<std::string, uint64_t> out;
  std::regex item("\"method\":\"heka\\.fileserver\\.File\\.(\\w+)\",\"calls\":(\\d+)");
  for (std::sregex_iterator it(r.output.begin(), r.output.end(), item), end; it != end; ++it) {
    out[(*it)[1]] = std::stoull((*it)[2]);
  }
  return out;
}

uint64_t CacheParm(const Mount& m, const std::string& key) {
  auto r = testing::RunProcess({testing::BinDir() + "/heka", "fs", "getcacheparms", "-format",
                                "json", "-socket", m.config.substr(0, m.config.size() - 5) +
                                                       "/control.sock"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::smatch m2;
  if (!std::regex_search(r.output, m2, std::regex("\"" + key + "\":(\\d+)"))) return 0;
  return std::stoull(m2[1]);
}

// `ls -l` of a directory another client filled: the names come with their attributes, a
// batch at a time, not a lookup per name; once the kernel lets go of the inodes, the cache
// manager does too.
TEST(CacheManagerTest, ListingsComeWithAttributesInBatchesAndForgottenInodesAreLetGo) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "mkdir " + A("many") + " && cd " + A("many") +
                            " && for i in $(seq 300); do echo $i > f$i; done")
                .exit_code,
            0);
  auto before = ServerCalls();
  auto ls = Sh("alice", "ls -l " + B("many") + " | grep -c ' f[0-9]*$'");
  EXPECT_EQ(ls.output, "300\n");
  auto after = ServerCalls();
  auto delta = [&](const std::string& m) { return after[m] - before[m]; };
  EXPECT_GE(delta("BulkStatus"), 1u);
  EXPECT_LE(delta("FetchStatus") + delta("Lookup"), 10u)
      << "FetchStatus " << delta("FetchStatus") << ", Lookup " << delta("Lookup");
  EXPECT_GE(CacheParm(w.mounts[1], "kernel_inodes"), 300u);
  // The kernel drops unused dentries and inodes, and tells the cache manager (FORGET).
  uint64_t held = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
        held = CacheParm(w.mounts[1], "kernel_inodes");
        return held < 50;
      },
      seconds(20)))
      << held << " inodes still held";
  // Forgotten, not lost: the files read back, from the same client.
  auto again = Sh("alice", "cat " + B("many/f7") + " " + B("many/f300"));
  EXPECT_EQ(again.output, "7\n300\n");
}

// kinit as another principal into the same cache: what the process does next is done as that
// principal (new connections), not over the connections the earlier ticket made.
TEST(CacheManagerTest, AKinitOfAnotherPrincipalIntoTheSameCacheActsAsThatPrincipal) {
  World& w = TheWorld();
  std::string cc = SharedRealm().NewCcachePath("switching");
  ASSERT_TRUE(SharedRealm().Kinit("alice", "alice-pw", cc).ok());
  auto as_cc = [&](const std::string& script) {
    return testing::RunProcess({"/bin/sh", "-c", script}, {{"KRB5CCNAME", "FILE:" + cc}},
                               seconds(60));
  };
  auto admin = Admin();
  auto owner_of = [&](const std::string& name) -> int64_t {
    pb::LookupRequest look;
    *look.mutable_dir() = w.root;
    look.set_name(name);
    auto r = admin->CallSync<pb::LookupReply>("heka.fileserver.File.Lookup", look);
    return r.ok() ? r->status().owner() : 0;
  };
  ASSERT_EQ(as_cc("echo a > " + A("switch-0")).exit_code, 0);
  int64_t alice_id = owner_of("switch-0");
  ASSERT_NE(alice_id, 0);
  ASSERT_NE(alice_id, w.id_bob);
  ASSERT_TRUE(SharedRealm().Kinit("bob", "bob-pw", cc).ok());
  // The cache manager looks at a cache again at least every second.
  int n = 0;
  int64_t owner = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string name = "switch-" + std::to_string(++n);
        if (as_cc("echo b > " + A(name)).exit_code != 0) return false;
        owner = owner_of(name);
        EXPECT_TRUE(owner == alice_id || owner == w.id_bob) << owner;
        return owner == w.id_bob;
      },
      seconds(30)))
      << "files made after kinit bob still belong to " << owner;
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

// Owners show as the local user their principal maps to (krb5_aname_to_localname), else nobody.
TEST(CacheManagerTest, OwnersShowAsLocalUsersOrNobody) {
  World& w = TheWorld();
  ASSERT_TRUE(SharedRealm().AddUser("heka-test-owner", "heka-test-owner-pw").ok());
  db::Command user;
  user.mutable_create_user()->set_cell("acme");
  user.mutable_create_user()->set_principal("heka-test-owner@HEKA.TEST");
  ASSERT_TRUE(w.runtime.BlockOn(w.db->Write(user)).ok());
  UnixUser owner = MakeUnixUser("heka-test-owner", "heka-test-owner");
  auto made = As(owner, "echo mine > " + A("owned.txt") + " && stat -c %U " + A("owned.txt"));
  EXPECT_EQ(made.exit_code, 0) << made.output;
  EXPECT_EQ(made.output, "heka-test-owner\n");
  ASSERT_EQ(Sh("alice", "echo hers > " + A("alices.txt")).exit_code, 0);
  EXPECT_EQ(Sh("bob", "stat -c %U " + B("owned.txt") + " " + B("alices.txt")).output,
            "heka-test-owner\nnobody\n")
      << "alice@HEKA.TEST maps to no local user here";
  EXPECT_EQ(Sh("alice", "stat -c %U " + A("alices.txt")).output, "root\n")
      << "one's own files are one's own (these tests run as root)";
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

// A private mount: one local user's, long kernel caching, and still coherent through
// callbacks. Nobody else gets in, root included.
TEST(CacheManagerTest, PrivateMountServesOnlyItsUserAndStaysCoherent) {
  World& w = TheWorld();
  UnixUser a = MakeUnixUser("heka-test-a", "alice");
  UnixUser b = MakeUnixUser("heka-test-b", "bob");
  std::string base = SharedRealm().dir() + "/private";
  std::filesystem::create_directories(base + "/mnt");
  std::filesystem::create_directories(base + "/state");
  ASSERT_EQ(chown((base + "/mnt").c_str(), a.uid, a.gid), 0);
  auto kt = SharedRealm().AddService(SharedRealm().Principal("heka/private-client"));
  ASSERT_TRUE(kt.ok());
  std::string config = base + "/cachemgr.toml";
  std::ofstream(config) << "[cachemgr]\nmountpoint = \"" << base << "/mnt\"\ndbservers = \""
                        << w.cell->db().dbservers() << "\"\ncells = [\"acme\"]\nkeytab = \"" << *kt
                        << "\"\nprincipal = \"" << SharedRealm().Principal("heka/private-client")
                        << "\"\nstate_dir = \"" << base << "/state\"\nprivate = true\n"
                        << "control_socket = \"" << base << "/control.sock\"\n";
  ASSERT_EQ(Sh("alice", "echo p1 > " + A("private.txt")).exit_code, 0);
  pid_t daemon = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", config, "--log",
                                 base + "/cachemgr.log"});
  struct Unmount {  // also when an assertion ends the test early
    pid_t pid;
    std::string dir;
    ~Unmount() {
      testing::StopChild(pid);
      testing::RunProcess({"fusermount3", "-u", "-z", dir});
    }
  } unmount{daemon, base + "/mnt"};
  ASSERT_TRUE(WaitFor([&] { return Mounted(base + "/mnt"); }, seconds(20)));
  std::string file = base + "/mnt/acme/private.txt";
  auto mine = As(a, "cat " + file);
  EXPECT_EQ(mine.exit_code, 0) << mine.output;
  EXPECT_EQ(mine.output, "p1\n");
  for (const std::string& cmd : {"ls " + base + "/mnt/acme", "cat " + file}) {
    auto other = As(b, cmd + " 2>&1");
    EXPECT_NE(other.exit_code, 0) << "another local user got into a private mount: " << cmd;
    EXPECT_NE(other.output.find("Permission denied"), std::string::npos) << other.output;
  }
  EXPECT_NE(Sh("alice", "cat " + file).exit_code, 0) << "root is another user too";
  // Another client changes the file: the private mount's long-cached copy is invalidated.
  ASSERT_EQ(Sh("bob", "echo p2 > " + B("private.txt")).exit_code, 0);
  EXPECT_EQ(As(a, "cat " + file).output, "p2\n");
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

// /etc/fstab style: mount(8) runs heka-cachemgr CONFIG DIR -o ..., which goes to the
// background once mounted; umount(8) ends it.
TEST(CacheManagerTest, MountAndUmountLikeAnyFileSystem) {
  World& w = TheWorld();
  std::string base = SharedRealm().dir() + "/fstab";
  std::filesystem::create_directories(base + "/mnt");
  auto kt = SharedRealm().AddService(SharedRealm().Principal("heka/fstab-client"));
  ASSERT_TRUE(kt.ok());
  std::string config = base + "/cachemgr.toml";
  std::ofstream(config) << "[cachemgr]\nmountpoint = \"/nonexistent\"\ndbservers = \""
                        << w.cell->db().dbservers() << "\"\ncells = [\"acme\"]\nkeytab = \"" << *kt
                        << "\"\nprincipal = \"" << SharedRealm().Principal("heka/fstab-client")
                        << "\"\nstate_dir = \"" << base << "/state\"\ncontrol_socket = \"" << base
                        << "/control.sock\"\n";
  // mount(8) runs helpers with a safe PATH: name the program in the source, as fstab can
  // ("/usr/lib/heka/heka-cachemgr#/etc/heka/cachemgr.toml /heka fuse nosuid 0 0").
  auto mounted = testing::RunProcess({"mount", "-t", "fuse", "-o",
                                      "nosuid,log=" + base + "/cachemgr.log",
                                      testing::BinDir() + "/heka-cachemgr#" + config, base + "/mnt"});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  EXPECT_TRUE(Mounted(base + "/mnt")) << "mount(8) returned before the mount was there";
  EXPECT_EQ(Sh("alice", "echo via fstab > " + base + "/mnt/acme/fstab.txt && cat " + A("fstab.txt"))
                .output,
            "via fstab\n");
  auto unmounted = testing::RunProcess({"umount", base + "/mnt"});
  EXPECT_EQ(unmounted.exit_code, 0) << unmounted.output;
  EXPECT_FALSE(Mounted(base + "/mnt"));
  if (Mounted(base + "/mnt")) testing::RunProcess({"fusermount3", "-u", "-z", base + "/mnt"});
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

// sha256sum of each file under `dir` on a mount, as `user`: "name sum" lines, sorted.
std::string Sums(const std::string& user, const std::string& dir) {
  auto r = Sh(user, "cd " + dir + " && sha256sum * | sort -k2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

uint64_t FetchedBytes() {
  World& w = TheWorld();
  auto r = Sh("alice", testing::BinDir() + "/heka rpc stats -server " + w.cell->fs_address(1) +
                           " -principal " + w.cell->fs_principal(1) + " -format json");
  std::smatch m;
  std::regex re("\"method\":\"heka\\.fileserver\\.File\\.FetchData\",\"calls\":\\d+,\"reply_bytes\":(\\d+)");
  return std::regex_search(r.output, m, re) ? std::stoull(m[1]) : 0;
}

// The cache is on disk: after a restart, a tree read before is read again without its data
// crossing the network, except for a file changed meanwhile, which shows its new version.
TEST(CacheManagerBigTest, ARestartedCacheManagerComesBackWarmAndSeesWhatChangedWhileItWasDown) {
  World& w = TheWorld();
  ASSERT_EQ(Sh("alice", "mkdir " + A("tree") + " && for i in $(seq 20); do head -c 10485760 "
                        "/dev/urandom > " + A("tree") + "/f$i || exit 1; done")
                .exit_code,
            0);
  std::string written = Sums("alice", A("tree"));
  uint64_t before_first = FetchedBytes();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Sums("bob", B("tree")), written);
  auto first = std::chrono::steady_clock::now() - t0;
  uint64_t first_bytes = FetchedBytes() - before_first;
  EXPECT_GE(first_bytes, 200u << 20) << "the first read fetches the tree";

  Mount& m = w.mounts[1];
  auto restart = [&] {
    testing::StopChild(m.pid);
    testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
  };
  auto start = [&] {
    m.pid = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", m.config, "--log", m.log});
    return WaitFor([&] { return Mounted(m.dir); }, seconds(20));
  };
  // A restart: the same tree again, none of its data fetched.
  restart();
  ASSERT_TRUE(start());
  uint64_t before_again = FetchedBytes();
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Sums("bob", B("tree")), written);
  auto again = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(FetchedBytes() - before_again, 0u) << "file data fetched again after a restart";
  std::cout << "200 MiB tree: first read " << std::chrono::duration<double>(first).count()
            << " s (" << (first_bytes >> 20) << " MiB fetched), after a restart "
            << std::chrono::duration<double>(again).count() << " s (nothing fetched)\n";
  EXPECT_TRUE(WaitFor([&] { return FileSays(m.log, "cache revalidation done"); }, seconds(20)));

  // Changed while the cache manager is down (its callback promise died with it): the new
  // version, never the old one; the rest from the cache.
  restart();
  ASSERT_EQ(Sh("alice", "head -c 10485760 /dev/urandom > " + A("tree/f3")).exit_code, 0);
  std::string changed = Sums("alice", A("tree"));
  ASSERT_NE(changed, written);
  ASSERT_TRUE(start());
  uint64_t before_changed = FetchedBytes();
  EXPECT_EQ(Sums("bob", B("tree")), changed) << "the new f3, and every other file as it was";
  EXPECT_LE(FetchedBytes() - before_changed, (10u << 20) + (1u << 20))
      << "only the changed file is fetched again";
}

// Truncated and grown again through an open descriptor that had read the file: the region
// past the truncation reads as zeros, and a write into it stores zeros around it, not the
// bytes read before the truncation.
TEST(CacheManagerTest, ATruncationThroughAnOpenFileLeavesNoOldBytesBehind) {
  ASSERT_EQ(Sh("alice", "head -c 8192 /dev/zero | tr '\\0' a > " + A("shrunk.txt")).exit_code, 0);
  auto r = Sh("alice", testing::BinDir() + "/heka_lock_tool shrink-grow " + A("shrunk.txt"));
  EXPECT_EQ(r.exit_code, 0) << "exit 3: old bytes read back after the truncation; " << r.output;
  std::string want = std::string(100, 'a') + std::string(4900, '\0') + "x" + std::string(3191, '\0');
  auto on_b = Sh("bob", "cat " + B("shrunk.txt"));
  EXPECT_EQ(on_b.output.size(), 8192u);
  EXPECT_TRUE(on_b.output == want) << "the store wrote old bytes back";
}

// The kernel keeps a file's pages across opens while the promise holds, and drops them when
// another client changes the file.
TEST(CacheManagerTest, TheKernelKeepsAFilesPagesWhileItsPromiseHolds) {
  ASSERT_EQ(Sh("alice", "head -c 1048576 /dev/urandom > " + A("paged.bin")).exit_code, 0);
  std::string want = Sh("alice", "sha256sum < " + A("paged.bin")).output;
  ASSERT_EQ(Sh("bob", "sha256sum < " + B("paged.bin")).output, want);
  auto resident = [&] {  // fincore opens the file, then counts the pages in memory
    auto r = Sh("bob", "fincore --bytes --noheadings --output RES " + B("paged.bin"));
    return r.exit_code == 0 ? std::stoull(r.output) : ~0ull;
  };
  EXPECT_EQ(resident(), 1048576u) << "a second open drops the pages the first one read";
  ASSERT_EQ(Sh("alice", "head -c 1048576 /dev/urandom > " + A("paged.bin")).exit_code, 0);
  std::string changed = Sh("alice", "sha256sum < " + A("paged.bin")).output;
  EXPECT_TRUE(WaitFor([&] { return resident() == 0; }, seconds(30)))
      << "the kernel still has the old pages after another client's change";
  EXPECT_EQ(Sh("bob", "sha256sum < " + B("paged.bin")).output, changed);
}

// A cache manager killed while it writes a chunk into its cache (half way through the file,
// or after the file is in place and before its index row): after a restart every file reads
// back exactly, nothing torn is served.
TEST(CacheManagerTest, ACacheManagerKilledWhileCachingServesNothingTornAfterARestart) {
  World& w = TheWorld();
  auto& realm = SharedRealm();
  ASSERT_EQ(Sh("alice", "head -c 8388608 /dev/urandom > " + A("crash-read.bin")).exit_code, 0);
  std::string want = Sh("alice", "sha256sum < " + A("crash-read.bin")).output;
  auto keytab = realm.AddService(realm.Principal("heka/client3"));
  ASSERT_TRUE(keytab.ok());
  for (const std::string point : {"write:3", "rename:5"}) {
    std::string name = "crash-" + point.substr(0, point.find(':'));
    Mount m = StartMount(w, name, *keytab, realm.Principal("heka/client3"), "",
                         {"HEKA_TEST_CACHE_CRASH=" + point});
    std::string file = m.dir + "/acme/crash-read.bin";
    auto during = Sh("alice", "sha256sum < " + file + " 2>&1");
    EXPECT_NE(during.exit_code, 0) << point << ": the cache manager was to die: " << during.output;
    EXPECT_TRUE(WaitFor([&] { return ::waitpid(m.pid, nullptr, WNOHANG) == m.pid; }, seconds(20)))
        << point;
    testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
    m.pid = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", m.config, "--log", m.log});
    ASSERT_TRUE(WaitFor([&] { return Mounted(m.dir); }, seconds(20)));
    EXPECT_EQ(Sh("alice", "sha256sum < " + file).output, want) << point;
    EXPECT_EQ(Sh("alice", "sha256sum < " + file).output, want) << point << ", from the cache";
    EXPECT_TRUE(FileSays(m.log, "stray files")) << point << ": the half-kept chunk was removed";
    testing::StopChild(m.pid);
  }
}

// A working set three times the cache reads correctly, and the cache stays within its bound
// (with 256 KiB chunks, not the default 1 MiB).
TEST(CacheManagerTest, AWorkingSetThreeTimesTheCacheReadsCorrectlyWithinTheBound) {
  World& w = TheWorld();
  auto& realm = SharedRealm();
  ASSERT_EQ(Sh("alice", "mkdir " + A("big") + " && for i in 1 2 3; do head -c 4194304 "
                        "/dev/urandom > " + A("big") + "/f$i || exit 1; done")
                .exit_code,
            0);
  std::string want = Sums("alice", A("big"));
  auto keytab = realm.AddService(realm.Principal("heka/client4"));
  ASSERT_TRUE(keytab.ok());
  Mount m = StartMount(w, "small-cache", *keytab, realm.Principal("heka/client4"),
                       "cache_size_mb = 4\nchunk_size_kb = 256\n");
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(Sums("alice", m.dir + "/acme/big"), want) << "round " << round;
    uint64_t used = CacheParm(m, "used_bytes");
    EXPECT_LE(used, 4u << 20);
    EXPECT_GT(used, 0u);
  }
  EXPECT_GT(CacheParm(m, "evicted_chunks"), 0u);
  uint64_t on_disk = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           m.config.substr(0, m.config.size() - 5) + "/state/cache/chunks")) {
    if (e.is_regular_file()) on_disk += e.file_size();
  }
  EXPECT_LE(on_disk, 4u << 20);
  testing::StopChild(m.pid);
  testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
}

}  // namespace
}  // namespace heka::cm

namespace heka::cm {
namespace {

std::string Lines(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One client rewrites a 200 MiB file while another checksums it in a loop: the readers only
// ever see the whole old or the whole new content; a cache manager killed in the middle of
// storing a rewrite (between two chunks, or just before the commit) leaves the last content.
TEST(CacheManagerBigTest, ReadersSeeTheWholeOldOrTheWholeNewContentOfA200MiBRewrite) {
  World& w = TheWorld();
  auto& realm = SharedRealm();
  std::string local = realm.dir() + "/big-";
  for (const char* v : {"a", "b", "c"}) {
    ASSERT_EQ(testing::RunProcess({"sh", "-c", "head -c 209715200 /dev/urandom > " + local + v})
                  .exit_code,
              0);
  }
  auto sum = [&](const std::string& v) {
    return testing::RunProcess({"sh", "-c", "sha256sum < " + local + v + " | cut -c1-64"}).output;
  };
  std::string a = sum("a"), b = sum("b");
  ASSERT_EQ(Sh("alice", "cp " + local + "a " + A("big.bin")).exit_code, 0);
  std::string sums = realm.dir() + "/big-sums", errors = realm.dir() + "/big-errors";
  std::string stop = realm.dir() + "/big-stop";
  testing::ProcessResult readers;
  std::thread reading([&] {
    // Runs until told to stop (not bounded by Sh's two minutes: a busy machine is slow).
    readers = testing::RunProcess(
        {"/bin/sh", "-c",
         "while [ ! -e " + stop + " ]; do sha256sum < " + B("big.bin") + " 2>>" + errors +
             " | cut -c1-64 >> " + sums + "; done"},
        {{"KRB5CCNAME", "FILE:" + w.cc.at("bob")}}, seconds(900));
  });
  auto lines = [&] {
    std::string all = Lines(sums);
    return static_cast<size_t>(std::count(all.begin(), all.end(), '\n'));
  };
  EXPECT_TRUE(WaitFor([&] { return lines() >= 1; }, seconds(60)));
  EXPECT_EQ(Sh("alice", "cp " + local + "b " + A("big.bin")).exit_code, 0);
  size_t after_b = lines();
  // A cache manager that dies storing a rewrite: in the middle of the chunks, or before the
  // commit. The file keeps b.
  auto keytab = realm.AddService(realm.Principal("heka/client5"));
  ASSERT_TRUE(keytab.ok());
  for (const std::string point : {"store:100", "commit:1"}) {
    Mount m = StartMount(w, "dies-storing-" + point.substr(0, point.find(':')), *keytab,
                         realm.Principal("heka/client5"), "", {"HEKA_TEST_CACHE_CRASH=" + point});
    auto cp = Sh("alice", "cp " + local + "c " + m.dir + "/acme/big.bin 2>&1");
    EXPECT_NE(cp.exit_code, 0) << point << ": the cache manager was to die: " << cp.output;
    EXPECT_TRUE(WaitFor([&] { return ::waitpid(m.pid, nullptr, WNOHANG) == m.pid; }, seconds(20)))
        << point << ": " << cp.output << Lines(m.log);
    testing::RunProcess({"fusermount3", "-u", "-z", m.dir});
  }
  EXPECT_TRUE(WaitFor([&] { return lines() >= after_b + 2; }, seconds(300)));
  std::ofstream(stop) << "\n";
  reading.join();
  std::istringstream in(Lines(sums));
  size_t seen_a = 0, seen_b = 0, other = 0;
  for (std::string line; std::getline(in, line);) {
    if (line + "\n" == a) {
      ++seen_a;
    } else if (line + "\n" == b) {
      ++seen_b;
    } else {
      ++other;
    }
  }
  EXPECT_EQ(other, 0u) << "a reader saw something that is neither the old nor the new file";
  EXPECT_GE(seen_a, 1u);
  EXPECT_GE(seen_b, 2u);
  EXPECT_EQ(Lines(errors), "") << "reads failed: " << Lines(w.mounts[1].log);
  EXPECT_EQ(Sh("alice", "sha256sum < " + A("big.bin") + " | cut -c1-64").output, b);
  EXPECT_EQ(Sh("bob", "sha256sum < " + B("big.bin") + " | cut -c1-64").output, b);
  std::cout << "readers: " << seen_a << " x old, " << seen_b << " x new\n";
  for (const char* v : {"a", "b", "c"}) std::filesystem::remove(local + v);
  (void)Sh("alice", "rm -f " + A("big.bin"));
}

}  // namespace
}  // namespace heka::cm

// ---- Encrypted volumes (issue 7, docs/formats/encryption.md) --------------------------------

namespace heka::cm {
namespace {
namespace enc {

std::string RandomHex(size_t bytes) {
  crypto::Id id = crypto::RandomId();
  return crypto::Hex(id.data(), std::min(bytes, id.size()));
}

std::string SocketOf(const Mount& m) { return m.config.substr(0, m.config.size() - 5) + "/control.sock"; }

testing::ProcessResult Heka(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> argv = {testing::BinDir() + "/heka"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunProcess(argv, env, seconds(60));
}

// The file server, as the provider administrator.
std::shared_ptr<fs::FileClient> AdminFileClient() {
  World& w = TheWorld();
  fs::FileClientOptions fo;
  fo.address = w.cell->fs_address(1);
  fo.server_principal = w.cell->fs_principal(1);
  fo.credentials.ccache = "FILE:" + w.cc["admin"];
  return fs::FileClient::Create(w.runtime, fo);
}

// A volume `name` of acme, encrypted with the world's key (or `fingerprint_of`'s), with its
// mount point /acme/<name> and every authenticated user allowed rlidwk, as `heka vos create
// -encrypt` and `heka fs mkmount` would leave it.
struct MadeVolume {
  pb::Fid root;
  crypto::Id root_id{};  // the root directory's ID (its client attribute)
};
void MakeEncryptedVolume(const std::string& name, MadeVolume* made_volume = nullptr,
                         bool encrypted = true) {
  World& w = TheWorld();
  db::Command vol;
  db::Volume* v = vol.mutable_create_volume()->mutable_volume();
  v->set_name(name);
  v->set_cell("acme");
  if (encrypted) {
    v->set_encrypted(true);
    v->set_key_fingerprint(std::string(reinterpret_cast<const char*>(w.key->fingerprint().data()),
                                       w.key->fingerprint().size()));
  }
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(w.cell->fs_uuid(1));
  site->set_partition(w.cell->fs_partition(1));
  auto id = w.runtime.BlockOn(w.db->Write(std::move(vol)));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto admin = AdminFileClient();
  pb::CreateVolumeRequest cv;
  cv.set_cell("acme");
  cv.set_id(static_cast<uint64_t>(id->id()));
  crypto::Id root_id = crypto::RandomId();
  if (encrypted) cv.set_root_client_attr(crypto::EncodeAttr(crypto::Kind::kDirectory, root_id));
  auto made = admin->CallSync<pb::CreateVolumeReply>("heka.fileserver.VolumeServer.CreateVolume", cv);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  pb::StoreAclRequest acl;
  acl.mutable_dir()->set_cell("acme");
  acl.mutable_dir()->set_volume(cv.id());
  acl.mutable_dir()->set_vnode(1);
  acl.mutable_dir()->set_uniq(1);
  auto* e1 = acl.add_entries();
  e1->set_principal(kAdmins);
  e1->set_rights(127);
  auto* e2 = acl.add_entries();
  e2->set_principal(kAuthUser);
  e2->set_rights(1 | 2 | 4 | 8 | 16 | 32);
  auto stored = admin->CallSync<pb::StoreAclReply>("heka.fileserver.File.StoreAcl", acl);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  if (made_volume) *made_volume = MadeVolume{acl.dir(), root_id};
  pb::CreateRequest mp;
  *mp.mutable_dir() = w.root;
  mp.set_name(name);
  mp.set_mode(0644);
  mp.set_target("#" + name + ".");
  auto linked = admin->CallSync<pb::CreateReply>("heka.fileserver.File.Symlink", mp);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
}

// `grep -r` of `dir` for `marker`: the files holding it.
std::string FilesHolding(const std::string& dir, const std::string& marker) {
  auto r = testing::RunProcess({"grep", "-r", "-a", "-l", "--exclude-dir=mnt", marker, dir});
  return r.output;
}

// What a tree holds, as a user compares two copies: every file's checksum, every link's target.
std::string Manifest(const std::string& user, const std::string& dir) {
  auto r = Sh(user, "cd '" + dir + "' && find . -type f -exec sha256sum {} + | sort && "
                    "find . -type l -printf '%p -> %l\\n' | sort && find . -type d | sort");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// The same changes, on a local directory and through the mount: creates, appends, writes in
// the middle, truncations down and up (mid-block), renames, links, directories.
std::string Workload(const std::string& marker) {
  return "set -e; mkdir -p dir-" + marker + "/sub; "
         "for i in $(seq 1 200); do echo \"line $i of " + marker + "\"; done > dir-" + marker + "/note-" + marker + ".txt; "
         "awk 'BEGIN { for (i = 0; i < 110000; i++) print \"" + marker + " row \" i }' > big-" + marker + "; "
         "echo appended " + marker + " >> big-" + marker + "; "
         "printf 'MIDDLE-" + marker + "' | dd of=big-" + marker + " bs=1 seek=123457 conv=notrunc status=none; "
         "printf 'ACROSS-" + marker + "' | dd of=big-" + marker + " bs=1 seek=2101240 conv=notrunc status=none; "
         "cp big-" + marker + " cut; truncate -s 70001 cut; "
         "cp dir-" + marker + "/note-" + marker + ".txt grown; truncate -s 20000 grown; echo tail >> grown; "
         "printf '' > empty; "
         "ln -s /target/of/" + marker + " link-" + marker + "; "
         "mv cut dir-" + marker + "/sub/cut-renamed; "
         "dd if=/dev/zero bs=4096 count=3 status=none | tr '\\0' 'z' > exact-blocks; "
         "echo " + marker + " > gone; rm gone";
}

}  // namespace enc

// Files, names and symlink targets written through one mount read back through the other,
// exactly as the same changes on a local disk; none of the marker strings in them is
// anywhere on the file server's partition, in the DB members' files, in either client's
// cache directory or in any log. The same marker in an unencrypted volume is found there.
TEST(EncryptionTest, WhatTheClientsWriteReadsBackAndNoPlaintextLeavesThem) {
  World& w = TheWorld();
  enc::MakeEncryptedVolume("secret");
  std::string marker = "HEKAMARK" + enc::RandomHex(8);
  std::string local = ::testing::TempDir() + "heka-enc-" + marker;
  std::filesystem::create_directories(local);
  auto mine = Sh("alice", "cd '" + local + "' && " + enc::Workload(marker));
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  auto theirs = Sh("alice", "cd '" + A("secret") + "' && " + enc::Workload(marker));
  ASSERT_EQ(theirs.exit_code, 0) << theirs.output;
  std::string expected = enc::Manifest("alice", local);
  EXPECT_EQ(enc::Manifest("bob", B("secret")), expected);
  EXPECT_EQ(enc::Manifest("alice", A("secret")), expected);
  EXPECT_EQ(Sh("bob", "ls " + B("secret") + "/dir-" + marker).output, "note-" + marker + ".txt\nsub\n");
  EXPECT_EQ(Sh("bob", "wc -c < " + B("secret/empty")).output, "0\n");

  // The control: a marker in the unencrypted root volume is found on the server.
  std::string plain_marker = "HEKAPLAIN" + enc::RandomHex(8);
  ASSERT_EQ(Sh("alice", "echo " + plain_marker + " > " + A("plain-" + plain_marker)).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return !enc::FilesHolding(w.cell->fs_partition(1), plain_marker).empty(); },
                      seconds(30)));
  // Everything of the realm's directory: partitions, DB members, both clients' state and
  // cache directories, every log; not the mount points themselves (--exclude-dir=mnt).
  EXPECT_EQ(enc::FilesHolding(SharedRealm().dir(), marker), "");

  // On the wire: a third client reaches the file server through a recording relay (the
  // server's VLDB registration points at the relay meanwhile), reads everything and writes.
  std::string address = w.cell->fs_address(1);
  testing::FrameProxy relay(address.substr(0, address.rfind(':')),
                            std::stoi(address.substr(address.rfind(':') + 1)));
  auto reregister = [&](const std::string& to) {
    db::Command cmd;
    db::FileServer* server = cmd.mutable_register_server()->mutable_server();
    server->set_uuid(w.cell->fs_uuid(1));
    server->add_addresses(to);
    server->add_partitions(w.cell->fs_partition(1));
    server->set_principal(w.cell->fs_principal(1));
    auto r = w.runtime.BlockOn(w.db->Write(std::move(cmd)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  };
  reregister(relay.address());
  auto kt = SharedRealm().AddService(SharedRealm().Principal("heka/client5"));
  ASSERT_TRUE(kt.ok());
  w.mounts.push_back(StartMount(w, "client5", *kt, SharedRealm().Principal("heka/client5"),
                                "key_dir = \"" + SharedRealm().dir() + "/keys\"\n"));
  std::string via_relay = w.mounts.back().dir + "/acme/secret";
  EXPECT_EQ(enc::Manifest("alice", via_relay), expected);
  ASSERT_EQ(Sh("alice", "echo " + marker + " > " + via_relay + "/wire-" + marker).exit_code, 0);
  reregister(address);
  EXPECT_GT(relay.recorded().size(), 600000u);  // it did carry the files
  EXPECT_FALSE(relay.Contains(marker));
  EXPECT_FALSE(relay.Contains("line 1 of"));
  std::filesystem::remove_all(local);
}

namespace enc {

// The files of the server's partition with exactly `size` bytes (chunk objects of one file).
std::vector<std::string> StoredWithSize(const std::string& partition, uint64_t size) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(partition)) {
    if (e.is_regular_file() && e.file_size() == size) out.push_back(e.path().string());
  }
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

size_t BlockAt(size_t b) { return crypto::kHeaderBytes + b * crypto::kSealedBlockBytes; }

}  // namespace enc

// Bytes changed on the server's disk, behind its back: a flipped bit, a zeroed block, two
// blocks swapped, a block from another file. Each read fails with EIO and a log line; an
// untouched file still reads.
TEST(EncryptionTest, BytesChangedOnTheServerReadAsIoErrors) {
  World& w = TheWorld();
  enc::MadeVolume volume;
  enc::MakeEncryptedVolume("tamper", &volume);
  // Sizes past the file server's inline limit (64 KiB), so each file is one chunk object.
  const std::vector<uint64_t> sizes = {300000, 300001, 300002, 300003, 300004};
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto r = Sh("alice", "head -c " + std::to_string(sizes[i]) + " /dev/urandom > " +
                             A("tamper/f" + std::to_string(i)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  std::vector<std::string> objects;
  for (uint64_t size : sizes) {
    auto found = enc::StoredWithSize(w.cell->fs_partition(1), crypto::CipherSize(size));
    ASSERT_EQ(found.size(), 1u) << "size " << size;
    objects.push_back(found[0]);
  }
  // Before the damage: the independent reader (written from the format document alone)
  // decrypts what Heka stored, contents and names, with the cell's key file.
  std::string key_file = SharedRealm().dir() + "/keys/acme.key";
  for (size_t i = 0; i < objects.size(); ++i) {
    std::string stored = enc::ReadAll(objects[i]);
    std::string file_id = crypto::Hex(reinterpret_cast<const uint8_t*>(stored.data()) + 24, 16);
    auto theirs = testing::RunProcess({"sh", "-c", "python3 " HEKA_ENCRYPTION_READER " file " + key_file +
                                                       " " + file_id + " " + objects[i] + " | sha256sum"});
    auto ours = Sh("alice", "sha256sum < " + A("tamper/f" + std::to_string(i)));
    EXPECT_EQ(theirs.output, ours.output) << "f" << i;
  }
  {
    auto admin = enc::AdminFileClient();
    pb::ListDirRequest list;
    *list.mutable_dir() = volume.root;
    list.set_limit(100);
    auto listed = admin->CallSync<pb::ListDirReply>("heka.fileserver.File.ListDir", list);
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    std::set<std::string> names;
    for (const auto& e : listed->entries()) {
      EXPECT_EQ(e.name().size(), 2 + crypto::kNameOverhead);  // "fN", sealed
      auto r = testing::RunProcess({"python3", HEKA_ENCRYPTION_READER, "name", key_file,
                                    crypto::Hex(volume.root_id),
                                    crypto::Hex(reinterpret_cast<const uint8_t*>(e.name().data()),
                                                e.name().size())});
      EXPECT_EQ(r.exit_code, 0) << r.output;
      names.insert(r.output);
    }
    EXPECT_EQ(names, (std::set<std::string>{"f0\n", "f1\n", "f2\n", "f3\n", "f4\n"}));
  }
  std::string f0 = enc::ReadAll(objects[0]), f1 = enc::ReadAll(objects[1]),
              f2 = enc::ReadAll(objects[2]), f3 = enc::ReadAll(objects[3]);
  f0[enc::BlockAt(10) + 50] ^= 0x04;                                    // a flipped bit
  std::fill_n(f1.begin() + static_cast<long>(enc::BlockAt(5)), crypto::kSealedBlockBytes, '\0');  // zeroed
  std::string b3 = f2.substr(enc::BlockAt(3), crypto::kSealedBlockBytes);  // swapped in the file
  f2.replace(enc::BlockAt(3), crypto::kSealedBlockBytes, f2.substr(enc::BlockAt(4), crypto::kSealedBlockBytes));
  f2.replace(enc::BlockAt(4), crypto::kSealedBlockBytes, b3);
  f3.replace(enc::BlockAt(7), crypto::kSealedBlockBytes,                // from another file
             f0.substr(enc::BlockAt(7), crypto::kSealedBlockBytes));
  enc::WriteAll(objects[0], f0);
  enc::WriteAll(objects[1], f1);
  enc::WriteAll(objects[2], f2);
  enc::WriteAll(objects[3], f3);
  for (int i = 0; i < 5; ++i) {
    std::string path = "tamper/f" + std::to_string(i);
    auto flushed = enc::Heka({"fs", "flush", "-path", A(path), "-socket", enc::SocketOf(w.mounts[0])},
                             {{"KRB5CCNAME", "FILE:" + w.cc["alice"]}});
    ASSERT_EQ(flushed.exit_code, 0) << flushed.output;
    for (const std::string& p : {A(path), B(path)}) {
      auto r = Sh("alice", "cat " + p + " > /dev/null");
      if (i == 4) {
        EXPECT_EQ(r.exit_code, 0) << p << ": " << r.output;
      } else {
        EXPECT_NE(r.exit_code, 0) << p;
        EXPECT_NE(r.output.find("Input/output error"), std::string::npos) << p << ": " << r.output;
      }
    }
  }
  std::string log = enc::ReadAll(w.mounts[0].log);
  EXPECT_NE(log.find("fails to authenticate"), std::string::npos);
  EXPECT_NE(log.find("damaged or tampered on its server"), std::string::npos);
}

// A client without acme's key, and one with another key: EACCES for names and contents, a
// log line saying why, nothing written; the volume stays whole for the right key. Then a
// passphrase-protected key: unlocked with `heka key unlock`, gone after a restart, never on
// disk. Then a lost key file, restored from the escrow export.
TEST(EncryptionTest, WithoutTheRightKeyAccessIsDeniedAndKeysComeBackByUnlockOrEscrow) {
  World& w = TheWorld();
  auto& realm = SharedRealm();
  enc::MakeEncryptedVolume("vault");
  ASSERT_EQ(Sh("alice", "mkdir " + A("vault/d") + " && echo precious > " + A("vault/d/file")).exit_code, 0);
  std::string before = enc::Manifest("alice", A("vault"));

  std::string no_keys = realm.dir() + "/keys-client3", other_keys = realm.dir() + "/keys-client4";
  std::filesystem::create_directories(no_keys);
  std::filesystem::create_directories(other_keys);
  ASSERT_TRUE(crypto::WriteKeyFile(other_keys + "/acme.key",
                                   crypto::RawKeyFile("acme", *crypto::CellKey::Generate()), false).ok());
  std::map<std::string, std::string> keytabs;
  auto start = [&](const std::string& name, const std::string& keys) {
    if (!keytabs.count(name)) {
      auto kt = realm.AddService(realm.Principal("heka/" + name));
      EXPECT_TRUE(kt.ok());
      keytabs[name] = *kt;
    }
    return StartMount(w, name, keytabs[name], realm.Principal("heka/" + name),
                      "key_dir = \"" + keys + "\"\n");
  };
  w.mounts.push_back(start("client3", no_keys));
  w.mounts.push_back(start("client4", other_keys));
  const size_t c = w.mounts.size() - 2, d = w.mounts.size() - 1;
  for (size_t m : {c, d}) {
    std::string vault = w.mounts[m].dir + "/acme/vault";
    auto cat = Sh("alice", "cat " + vault + "/d/file 2>&1");
    EXPECT_NE(cat.exit_code, 0);
    EXPECT_NE(cat.output.find("Permission denied"), std::string::npos) << cat.output;
    auto ls = Sh("alice", "ls " + vault + " 2>&1");
    EXPECT_NE(ls.exit_code, 0);
    EXPECT_NE(ls.output.find("Permission denied"), std::string::npos) << ls.output;
    EXPECT_NE(Sh("alice", "echo intruder > " + vault + "/new 2>&1").exit_code, 0);
    EXPECT_NE(Sh("alice", "mkdir " + vault + "/newdir 2>&1").exit_code, 0);
  }
  EXPECT_NE(enc::ReadAll(w.mounts[c].log).find("no key for cell acme"), std::string::npos);
  EXPECT_NE(enc::ReadAll(w.mounts[d].log).find("wrong key"), std::string::npos);
  EXPECT_EQ(enc::Manifest("alice", A("vault")), before);

  // A passphrase-protected key file: the daemon cannot prompt, `heka key unlock` hands it over.
  std::string pass = realm.dir() + "/vault.pass";
  std::ofstream(pass) << "correct horse battery\n";
  ASSERT_TRUE(crypto::WriteKeyFile(no_keys + "/acme.key",
                                   crypto::WrapKey("acme", *w.key, "correct horse battery", 14), false).ok());
  std::string cfile = w.mounts[c].dir + "/acme/vault/d/file";
  EXPECT_TRUE(WaitFor([&] { return enc::ReadAll(w.mounts[c].log).find("heka key unlock") != std::string::npos &&
                                   Sh("alice", "cat " + cfile).exit_code != 0; },
                      seconds(15)));
  auto unlock = [&] {
    auto r = enc::Heka({"key", "unlock", "-cell", "acme", "-keyfile", no_keys + "/acme.key", "-passfile",
                        pass, "-socket", enc::SocketOf(w.mounts[c])});
    EXPECT_EQ(r.exit_code, 0) << r.output;
  };
  unlock();
  EXPECT_EQ(Sh("alice", "cat " + cfile).output, "precious\n");
  EXPECT_EQ(enc::Manifest("alice", w.mounts[c].dir + "/acme/vault"), before);
  // The unwrapped key is nowhere on that client's disk (state, cache, log).
  std::string raw(w.key->bytes());
  std::string hex = crypto::Hex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  for (auto it = std::filesystem::recursive_directory_iterator(realm.dir() + "/client3");
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const auto& e = *it;
    if (e.path().filename() == "mnt") {  // the mount point itself: plaintext by design
      it.disable_recursion_pending();
      continue;
    }
    if (!e.is_regular_file()) continue;
    std::string bytes = enc::ReadAll(e.path().string());
    EXPECT_EQ(bytes.find(raw), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find(hex), std::string::npos) << e.path();
  }
  // A restarted cache manager has no key until the next unlock.
  Mount old = w.mounts[c];
  testing::StopChild(old.pid);
  testing::RunProcess({"fusermount3", "-u", "-z", old.dir});
  w.mounts[c] = start("client3", no_keys);
  auto locked = Sh("alice", "cat " + cfile + " 2>&1");
  EXPECT_NE(locked.exit_code, 0);
  EXPECT_NE(locked.output.find("Permission denied"), std::string::npos) << locked.output;
  unlock();
  EXPECT_EQ(Sh("alice", "cat " + cfile).output, "precious\n");

  // The key file lost: the escrow export (wrapped to a recovery passphrase) restores it.
  std::string escrow = realm.dir() + "/acme.escrow", recovery = realm.dir() + "/recovery.pass";
  std::ofstream(recovery) << "recovery phrase kept in a safe\n";
  auto exported = enc::Heka({"key", "escrow-export", "-cell", "acme", "-keyfile", realm.dir() + "/keys/acme.key",
                             "-file", escrow, "-newpassfile", recovery});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  Mount other = w.mounts[d];
  testing::StopChild(other.pid);
  testing::RunProcess({"fusermount3", "-u", "-z", other.dir});
  std::filesystem::remove(other_keys + "/acme.key");
  auto imported = enc::Heka({"key", "import", "-cell", "acme", "-file", escrow, "-keyfile",
                             other_keys + "/acme.key", "-passfile", recovery});
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  w.mounts[d] = start("client4", other_keys);
  EXPECT_EQ(enc::Manifest("alice", w.mounts[d].dir + "/acme/vault"), before);
}

// ---- Backup volumes (issue 8: vos backup) ------------------------------------------------------

// `heka vos backup` as the cell administrator.
testing::ProcessResult VosBackup(const std::string& volume) {
  World& w = TheWorld();
  return enc::Heka({"vos", "backup", "-id", volume, "-cell", "acme", "-dbservers",
                    w.cell->db().dbservers()},
                   {{"KRB5CCNAME", "FILE:" + w.cc["admin"]}});
}

// A backup is a snapshot: mounted with `heka fs mkmount`, it shows the volume as it was at
// `vos backup` while the volume changes, refuses changes (EROFS), and a new `vos backup`
// moves it on. The backup of an encrypted volume reads with the same key.
TEST(BackupTest, ABackupShowsTheSnapshotWhileTheVolumeChanges) {
  World& w = TheWorld();
  for (bool encrypted : {false, true}) {
    std::string vol = encrypted ? "encproj" : "proj";
    SCOPED_TRACE(vol);
    enc::MakeEncryptedVolume(vol, nullptr, encrypted);
    ASSERT_EQ(Sh("alice", "mkdir " + A(vol + "/src") + " && echo version one > " + A(vol + "/src/file") +
                              " && head -c 3000000 /dev/urandom > " + A(vol + "/big")).exit_code, 0);
    std::string big_sum = Sh("alice", "sha256sum < " + A(vol + "/big")).output;
    ASSERT_EQ(Sh("alice", "mkdir " + A(vol + "/small") + " && for i in $(seq 100); do echo small $i > " +
                              A(vol + "/small/s") + "$i; done").exit_code, 0);
    auto made = VosBackup(vol);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    EXPECT_NE(made.output.find("Created backup volume for " + vol), std::string::npos) << made.output;
    {  // The backup shares every file's data with the volume, small files too: no copies.
      db::GetVolumeRequest get;
      get.set_cell("acme");
      get.set_name(vol);
      auto entry = w.runtime.BlockOn(w.db->GetVolume(get));
      ASSERT_TRUE(entry.ok());
      const std::string bk = w.cell->fs_partition(1) + "/V" + std::to_string(entry->volume().id() + 2);
      size_t shared = 0, copied = 0;
      for (const auto& e : std::filesystem::directory_iterator(bk + "/c")) {
        (std::filesystem::hard_link_count(e.path()) >= 2 ? shared : copied)++;
      }
      EXPECT_GE(shared, 100u);
      EXPECT_EQ(copied, 0u);
      EXPECT_LT(std::filesystem::file_size(bk + "/meta.sqlite"), 512u << 10) << "metadata only";
    }
    auto mount = enc::Heka({"fs", "mkmount", "-dir", A(vol + "-backup"), "-vol", vol + ".backup",
                            "-socket", enc::SocketOf(w.mounts[0])},
                           {{"KRB5CCNAME", "FILE:" + w.cc["admin"]}});
    ASSERT_EQ(mount.exit_code, 0) << mount.output;
    EXPECT_EQ(Sh("alice", "cat " + A(vol + "-backup/src/file")).output, "version one\n");
    // The volume changes; the backup does not, through either client.
    ASSERT_EQ(Sh("alice", "echo version two > " + A(vol + "/src/file") + " && rm " + A(vol + "/big") +
                              " && touch " + A(vol + "/added")).exit_code, 0);
    EXPECT_EQ(Sh("bob", "cat " + B(vol + "/src/file")).output, "version two\n");
    EXPECT_EQ(Sh("bob", "cat " + B(vol + "-backup/src/file")).output, "version one\n");
    EXPECT_EQ(Sh("bob", "sha256sum < " + B(vol + "-backup/big")).output, big_sum)
        << Lines(w.mounts[1].log) << w.cell->LogTail(1);
    EXPECT_EQ(Sh("alice", "ls " + A(vol + "-backup")).output, "big\nsmall\nsrc\n");
    // No changes to a backup.
    for (const std::string& change :
         {"echo x > " + A(vol + "-backup/src/file"), "touch " + A(vol + "-backup/new"),
          "rm " + A(vol + "-backup/big"), "mkdir " + A(vol + "-backup/dir")}) {
      auto r = Sh("alice", change + " 2>&1");
      EXPECT_NE(r.exit_code, 0) << change;
      EXPECT_NE(r.output.find("Read-only file system"), std::string::npos) << change << ": " << r.output;
    }
    // A new backup replaces the old one; clients that cached it are told to revalidate.
    auto again = VosBackup(vol);
    ASSERT_EQ(again.exit_code, 0) << again.output;
    EXPECT_TRUE(WaitFor([&] { return Sh("bob", "cat " + B(vol + "-backup/src/file")).output == "version two\n"; },
                        seconds(30)));
    EXPECT_TRUE(WaitFor([&] { return Sh("alice", "ls " + A(vol + "-backup")).output == "added\nsmall\nsrc\n"; },
                        seconds(30)));
    // `vos remove` takes the backup with the volume: no instance is left on the partition.
    auto instances = [&] {
      size_t n = 0;
      for (const auto& e : std::filesystem::directory_iterator(w.cell->fs_partition(1))) {
        n += e.is_directory() && e.path().filename().string()[0] == 'V';
      }
      return n;
    };
    size_t before = instances();
    auto removed = enc::Heka({"vos", "remove", "-id", vol, "-cell", "acme", "-dbservers",
                              w.cell->db().dbservers()},
                             {{"KRB5CCNAME", "FILE:" + w.cc["admin"]}});
    ASSERT_EQ(removed.exit_code, 0) << removed.output;
    EXPECT_EQ(instances(), before - 2) << removed.output;
  }
}

std::vector<std::string> VosArgs(std::vector<std::string> args) {
  World& w = TheWorld();
  args.insert(args.begin(), "vos");
  for (std::string a : {std::string("-cell"), std::string("acme"), std::string("-dbservers"),
                        w.cell->db().dbservers()})
    args.push_back(a);
  return args;
}

testing::ProcessResult Vos(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  env["KRB5CCNAME"] = "FILE:" + TheWorld().cc["admin"];
  return enc::Heka(VosArgs(std::move(args)), env);
}

// What a user sees of a tree: every path with its type, mode, owner, size, mtime, link count
// and symlink target, and every file's checksum.
std::string TreeOf(const std::string& dir) {
  return Sh("alice", "cd " + dir + " && find . -printf '%p %y %m %U %s %T@ %n %l\\n' | sort && "
                     "find . -type f -print0 | sort -z | xargs -0 sha256sum").output;
}

// vos dump writes a volume to a file and vos restore makes a new volume of it; an incremental
// dump carries changes, deletes and renames on top. An encrypted volume's dump holds no
// plaintext, and its restore reads with the same key.
TEST(DumpTest, AFullAndAnIncrementalDumpRestoreTheVolume) {
  World& w = TheWorld();
  for (bool encrypted : {false, true}) {
    std::string vol = encrypted ? "encdumped" : "dumped";
    SCOPED_TRACE(vol);
    enc::MakeEncryptedVolume(vol, nullptr, encrypted);
    const std::string marker = "dumpmarker" + std::to_string(encrypted);
    ASSERT_EQ(Sh("alice", "cd " + A(vol) + " && mkdir -p d/e && echo " + marker + " > d/notes && "
                          "chmod 640 d/notes && head -c 2500000 /dev/urandom > d/e/big && "
                          "ln d/notes d/notes.link && ln -s d/notes sym && echo gone > gone && "
                          "echo moving > moving && touch -d 2020-01-02T03:04:05 d/notes")
                  .exit_code,
              0);
    const std::string dumps = SharedRealm().dir() + "/dumps-" + vol;
    std::filesystem::create_directories(dumps);
    auto full = Vos({"dump", "-id", vol, "-file", dumps + "/full"});
    ASSERT_EQ(full.exit_code, 0) << full.output;
    EXPECT_NE(full.output.find("Dumped volume " + vol), std::string::npos) << full.output;
    auto at = full.output.find("-fromserial ");
    ASSERT_NE(at, std::string::npos) << full.output;
    const std::string serial = std::to_string(std::stoull(full.output.substr(at + 12)));
    std::ifstream in(dumps + "/full", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(marker) == std::string::npos, encrypted)
        << "the marker is in the dump exactly when the volume is not encrypted";

    auto restored = Vos({"restore", "-server", w.cell->fs_uuid(1), "-partition",
                         w.cell->fs_partition(1), "-name", vol + ".copy", "-file", dumps + "/full"});
    ASSERT_EQ(restored.exit_code, 0) << restored.output;
    EXPECT_NE(restored.output.find("Restored volume " + vol + ".copy"), std::string::npos)
        << restored.output;
    auto mount = enc::Heka({"fs", "mkmount", "-dir", A(vol + "-copy"), "-vol", vol + ".copy",
                            "-socket", enc::SocketOf(w.mounts[0])},
                           {{"KRB5CCNAME", "FILE:" + w.cc["admin"]}});
    ASSERT_EQ(mount.exit_code, 0) << mount.output;
    const std::string original = TreeOf(A(vol));
    ASSERT_NE(original.find("./d/notes f 640"), std::string::npos) << original;
    EXPECT_EQ(TreeOf(A(vol + "-copy")), original) << w.cell->LogTail(1);
    EXPECT_EQ(TreeOf(B(vol + "-copy")), original) << "through the other client too";

    // Changes of every kind, then an incremental dump applied on top of the copy.
    ASSERT_EQ(Sh("alice", "cd " + A(vol) + " && rm gone && mv moving d/e/moved && "
                          "echo more >> d/notes && head -c 100 /dev/urandom > new && "
                          "chmod 600 d/e/big")
                  .exit_code,
              0);
    auto inc = Vos({"dump", "-id", vol, "-fromserial", serial, "-file", dumps + "/inc"});
    ASSERT_EQ(inc.exit_code, 0) << inc.output;
    EXPECT_LT(std::filesystem::file_size(dumps + "/inc"), std::filesystem::file_size(dumps + "/full"))
        << "the unchanged 2.5 MB file is not in the increment";
    auto refused = Vos({"restore", "-server", w.cell->fs_uuid(1), "-partition",
                        w.cell->fs_partition(1), "-name", vol + ".copy", "-file", dumps + "/inc"});
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.output.find("-overwrite incremental"), std::string::npos) << refused.output;
    auto applied = Vos({"restore", "-server", w.cell->fs_uuid(1), "-partition",
                        w.cell->fs_partition(1), "-name", vol + ".copy", "-file", dumps + "/inc",
                        "-overwrite", "incremental"});
    ASSERT_EQ(applied.exit_code, 0) << applied.output;
    const std::string changed = TreeOf(A(vol));
    EXPECT_EQ(changed.find("./gone"), std::string::npos);
    EXPECT_TRUE(WaitFor([&] { return TreeOf(A(vol + "-copy")) == changed; }, seconds(30)))
        << TreeOf(A(vol + "-copy")) << "\nwanted:\n" << changed;
    EXPECT_TRUE(WaitFor([&] { return TreeOf(B(vol + "-copy")) == changed; }, seconds(30)));

    // A cut dump is refused whole and leaves the copy as it was.
    std::filesystem::resize_file(dumps + "/full", std::filesystem::file_size(dumps + "/full") - 100);
    auto cut = Vos({"restore", "-server", w.cell->fs_uuid(1), "-partition", w.cell->fs_partition(1),
                    "-name", vol + ".copy", "-file", dumps + "/full", "-overwrite", "full"});
    EXPECT_NE(cut.exit_code, 0);
    EXPECT_NE(cut.output.find("stops before its end record"), std::string::npos) << cut.output;
    EXPECT_EQ(TreeOf(A(vol + "-copy")), changed);
    const std::string staging = w.cell->fs_partition(1) + "/.staging";
    EXPECT_TRUE(WaitFor([&] {
      return !std::filesystem::exists(staging) || std::filesystem::is_empty(staging);
    }, seconds(30))) << "nothing of the failed restore is left";
  }
}

// ---- vos move ----------------------------------------------------------------------------------

// Appends records ("<n> <sha256 of n>\n") to `path`, fsyncing each, until `stop` exists; then
// writes "ok <records> <longest pause in ms>" to `out`. Any error ends it without that line.
constexpr const char* kWriter = R"py(
import hashlib, os, sys, time
path, stop, out = sys.argv[1:4]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n, worst, last = 0, 0.0, time.monotonic()
while not os.path.exists(stop):
    os.write(fd, ("%d %s\n" % (n, hashlib.sha256(str(n).encode()).hexdigest())).encode())
    os.fsync(fd)
    now = time.monotonic()
    worst, last, n = max(worst, now - last), now, n + 1
os.close(fd)
with open(out + ".tmp", "w") as f:
    f.write("ok %d %d\n" % (n, worst * 1000))
os.rename(out + ".tmp", out)  # whoever waits for `out` sees it whole
)py";

// Whether `text` holds records 0 .. n-1, each once, in order, each with its checksum.
bool RecordsIntact(const std::string& text, uint64_t* n) {
  std::istringstream in(text);
  std::string line;
  *n = 0;
  while (std::getline(in, line)) {
    const std::string number = std::to_string(*n);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const uint8_t*>(number.data()), number.size(), digest);
    std::string want = number + " " + crypto::Hex(digest, sizeof(digest));
    if (line != want) return false;
    ++*n;
  }
  return true;
}

std::string VolumeDirOn(int server, uint64_t id) {
  return TheWorld().cell->fs_partition(server) + "/V" + std::to_string(id);
}

uint64_t VolumeIdOf(const std::string& name) {
  World& w = TheWorld();
  db::GetVolumeRequest get;
  get.set_cell("acme");
  get.set_name(name);
  auto v = w.runtime.BlockOn(w.db->GetVolume(get));
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? v->volume().id() : 0;
}

std::vector<std::string> MoveArgs(const std::string& vol, int from, int to) {
  World& w = TheWorld();
  return {"move", "-id", vol, "-fromserver", w.cell->fs_uuid(from), "-frompartition",
          w.cell->fs_partition(from), "-toserver", w.cell->fs_uuid(to), "-topartition",
          w.cell->fs_partition(to)};
}

// Which server the VLDB places `vol` on (1 or 2), 0 if neither.
int SiteOf(const std::string& vol) {
  World& w = TheWorld();
  db::GetVolumeRequest get;
  get.set_cell("acme");
  get.set_name(vol);
  get.mutable_options()->set_leader_only(true);
  auto v = w.runtime.BlockOn(w.db->GetVolume(get));
  if (!v.ok()) return 0;
  for (const db::VolumeSite& s : v->volume().sites()) {
    if (s.type() != db::VolumeSite::RW) continue;
    if (s.server_uuid() == w.cell->fs_uuid(1)) return 1;
    if (s.server_uuid() == w.cell->fs_uuid(2)) return 2;
  }
  return 0;
}

// A writer appends fsynced, checksummed records to a file while its volume moves between the
// two file servers and back: it sees no error, every record is there afterwards (through the
// other client too), and the longest pause is recorded.
TEST(MoveTest, AWriterKeepsWritingWhileItsVolumeMoves) {
  World& w = TheWorld();
  const std::string vol = "moving";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  ASSERT_EQ(Sh("alice", "head -c 8000000 /dev/urandom > " + A(vol + "/bulk") + " && mkdir " +
                            A(vol + "/d") + " && for i in $(seq 50); do echo $i > " + A(vol + "/d/f") +
                            "$i; done").exit_code,
            0);
  const std::string bulk = Sh("alice", "sha256sum < " + A(vol + "/bulk")).output;
  char tmpl[] = "/tmp/heka-move-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string tmp = tmpl;
  ::chmod(tmp.c_str(), 0777);
  {
    std::ofstream(tmp + "/writer.py") << kWriter;
  }
  auto started = Sh("alice", "nohup python3 " + tmp + "/writer.py " + A(vol + "/log") + " " + tmp +
                                 "/stop " + tmp + "/out > " + tmp + "/writer.log 2>&1 &");
  ASSERT_EQ(started.exit_code, 0);
  // The other client watches the log grow (AppendTest covers a reader on the same client).
  auto lines = [&] { return std::atoll(Sh("bob", "wc -l < " + B(vol + "/log") + " 2>/dev/null").output.c_str()); };
  ASSERT_TRUE(WaitFor([&] { return lines() > 2; }, seconds(20)));
  for (auto [from, to] : {std::pair{1, 2}, std::pair{2, 1}}) {
    auto moved = Vos([&] {
      auto a = MoveArgs(vol, from, to);
      a.push_back("-verbose");
      return a;
    }());
    ASSERT_EQ(moved.exit_code, 0) << moved.output << w.cell->LogTail(1) << w.cell->LogTail(2);
    EXPECT_NE(moved.output.find("Volume moving moved from"), std::string::npos) << moved.output;
    EXPECT_NE(moved.output.find("copy: "), std::string::npos) << "a progress line: " << moved.output;
    std::printf("%s", moved.output.c_str());
    EXPECT_EQ(SiteOf(vol), to);
    EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(to, id)));
    EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(from, id))) << "the source instance is gone";
    const auto mark = lines();
    EXPECT_TRUE(WaitFor([&] { return lines() > mark; }, seconds(20)))
        << "the writer goes on after the move";
  }
  std::ofstream(tmp + "/stop") << "stop";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(tmp + "/out"); }, seconds(60)))
      << Sh("alice", "cat " + tmp + "/writer.log").output << Lines(w.mounts[0].log);
  std::string result;
  std::getline(std::ifstream(tmp + "/out"), result);
  uint64_t records = 0, pause_ms = 0;
  ASSERT_EQ(std::sscanf(result.c_str(), "ok %" SCNu64 " %" SCNu64, &records, &pause_ms), 2) << result;
  std::printf("the writer appended %" PRIu64 " records during two moves; longest pause %" PRIu64 " ms\n",
              records, pause_ms);
  ::testing::Test::RecordProperty("longest_write_pause_ms", static_cast<int>(pause_ms));
  uint64_t seen = 0;
  const std::string log = Sh("bob", "cat " + B(vol + "/log")).output;
  EXPECT_TRUE(RecordsIntact(log, &seen)) << "record " << seen << " is wrong: "
                                         << log.substr(seen > 2 ? (seen - 2) * 68 : 0, 200);
  EXPECT_EQ(seen, records) << "every record the writer wrote is there";
  EXPECT_EQ(Sh("bob", "sha256sum < " + B(vol + "/bulk")).output, bulk);
  EXPECT_EQ(Sh("bob", "cat " + B(vol + "/d/f50")).output, "50\n");
  std::filesystem::remove_all(tmp);
}

// A volume with a few MB in chunks and small files in a directory; returns what a user sees
// of it.
std::string FillForMove(const std::string& vol) {
  EXPECT_EQ(Sh("alice", "head -c 3000000 /dev/urandom > " + A(vol + "/bulk") + " && mkdir " +
                            A(vol + "/d") + " && for i in $(seq 20); do echo $i > " +
                            A(vol + "/d/f") + "$i; done && ln -s d/f1 " + A(vol + "/sym"))
                .exit_code,
            0);
  return TreeOf(A(vol));
}

// A `heka vos` run that stops itself (SIGSTOP) as it enters `phase` (HEKA_VOS_TEST_STOP_AT),
// its output in a file of its own.
class PausedVos {
 public:
  // Starts it; stopped() then says whether it has reached the phase.
  PausedVos(const std::vector<std::string>& args, const std::string& phase, const std::string& name)
      : out_(SharedRealm().dir() + "/" + name + ".out") {
    std::string command = "exec env KRB5CCNAME=FILE:" + TheWorld().cc["admin"] +
                          " HEKA_VOS_TEST_STOP_AT=" + phase + " " + testing::BinDir() + "/heka";
    for (const std::string& a : VosArgs(args)) command += " '" + a + "'";
    command += " > " + out_ + " 2>&1";
    pid_ = testing::Spawn({"/bin/bash", "-c", command});
  }
  bool started() const { return pid_ > 0; }
  // Waits (with a deadline) until it has stopped itself.
  bool WaitStopped() const {
    return WaitFor([&] {
      std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
      std::string pid, name, state;
      in >> pid >> name >> state;
      return state == "T";
    }, seconds(30));
  }
  // Lets it go on to its end; returns its exit code (-1 if it did not exit), and sets `said`
  // to its output.
  int Finish(std::string* said) {
    int status = 0;
    const bool waited = ::kill(pid_, SIGCONT) == 0 && ::waitpid(pid_, &status, 0) == pid_;
    pid_ = -1;
    std::getline(std::ifstream(out_), *said, '\0');
    return waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
};

void ExpectNothingStaged() {
  for (int n : {1, 2}) {
    const std::string staging = TheWorld().cell->fs_partition(n) + "/.staging";
    EXPECT_TRUE(WaitFor([&] {
      return !std::filesystem::exists(staging) || std::filesystem::is_empty(staging);
    }, seconds(30))) << staging;
  }
}

// Restarts file server `n` (killed before) and waits until it answers volume requests.
void RestartFileServer(int n) {
  World& w = TheWorld();
  ASSERT_TRUE(w.cell->StartFileServerAndWait(n).ok()) << w.cell->LogTail(n);
  ASSERT_TRUE(WaitFor([&] { return Vos({"listvol", "-server", w.cell->fs_uuid(n)}).exit_code == 0; },
                      seconds(30))) << w.cell->LogTail(n);
}

// vos move killed (SIGKILL) at each phase boundary: `vos examine` still answers, and running
// the same command again finishes the move (or does it again), with no data lost and no stray
// instance on either server.
TEST(MoveChaosTest, AMoveKilledAtAnyPhaseIsFinishedByRunningItAgain) {
  World& w = TheWorld();
  const std::string vol = "killmove";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  const std::string tree = FillForMove(vol);
  int at = 1;
  for (std::string phase : {"copy", "increments", "freeze", "switch", "online", "cleanup"}) {
    SCOPED_TRACE(phase);
    const int to = 3 - at;
    auto args = MoveArgs(vol, at, to);
    args.push_back("-locktime");
    args.push_back("2");
    auto killed = Vos(args, {{"HEKA_VOS_TEST_KILL_AT", phase}});
    EXPECT_EQ(killed.exit_code, -1) << "killed at " << phase << ": " << killed.output;
    auto examined = Vos({"examine", "-id", vol});
    EXPECT_EQ(examined.exit_code, 0) << examined.output;
    auto again = Vos(args);  // waits for the dead move's lock to expire, then takes over
    ASSERT_EQ(again.exit_code, 0) << again.output << w.cell->LogTail(1) << w.cell->LogTail(2);
    EXPECT_EQ(SiteOf(vol), to);
    EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(to, id)));
    EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(at, id))) << "no stray instance";
    ExpectNothingStaged();
    EXPECT_TRUE(WaitFor([&] { return TreeOf(B(vol)) == tree; }, seconds(30)))
        << TreeOf(B(vol)) << "\nwanted:\n" << tree;
    at = to;
  }
}

// Fencing: a `vos move` paused (SIGSTOP) past its lock's expiry while another `vos move` takes
// the volume over fails harmlessly when it continues: the volume stays where the second move
// put it, whole.
TEST(MoveChaosTest, APausedMoveIsFencedOnceAnotherTookOver) {
  const std::string vol = "pausemove";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  const std::string tree = FillForMove(vol);
  auto args = MoveArgs(vol, 1, 2);
  args.push_back("-locktime");
  args.push_back("2");
  PausedVos paused(args, "freeze", "paused-move");
  ASSERT_TRUE(paused.started());
  ASSERT_TRUE(paused.WaitStopped()) << "it stops before its freeze";
  // Another move takes over once the paused one's lock has expired.
  testing::ProcessResult second;
  ASSERT_TRUE(WaitFor([&] {
    second = Vos(args);
    return second.exit_code == 0;
  }, seconds(30))) << second.output;
  EXPECT_NE(second.output.find("left by an earlier move"), std::string::npos) << second.output;
  std::string said;
  EXPECT_GT(paused.Finish(&said), 0) << said;
  EXPECT_NE(said.find("took this volume over"), std::string::npos) << said;
  EXPECT_EQ(SiteOf(vol), 2);
  EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id)));
  EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(1, id)));
  ExpectNothingStaged();
  EXPECT_TRUE(WaitFor([&] { return TreeOf(B(vol)) == tree; }, seconds(30))) << TreeOf(B(vol));
  EXPECT_EQ(Sh("alice", "echo after > " + A(vol + "/after") + " && cat " + A(vol + "/after")).output,
            "after\n") << "the volume works";
}

// An fcntl lock held on a file while its volume moves: the new server knows it (the other
// client still cannot take the range, also after several lease times, so its holder renews
// it there), the holder does not lose it, and it is free once the holder lets go.
TEST(MoveTest, HeldLocksMoveWithTheVolume) {
  World& w = TheWorld();
  const std::string vol = "lockmove";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  ASSERT_EQ(Sh("alice", "head -c 4096 /dev/zero > " + A(vol + "/locked.db")).exit_code, 0);
  const std::string tool = testing::BinDir() + "/heka_lock_tool";
  const std::string marker = SharedRealm().dir() + "/lockmove.marker";
  const std::string fifo = SharedRealm().dir() + "/lockmove.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  pid_t holder = testing::Spawn({"/usr/bin/env", "KRB5CCNAME=FILE:" + w.cc.at("alice"), tool, "hold",
                                 A(vol + "/locked.db"), "100", "10", marker, fifo});
  ASSERT_TRUE(WaitFor([&] { return FileSays(marker, "locked"); }, seconds(20)));
  const std::string probe = tool + " try " + B(vol + "/locked.db") + " 105 1";
  EXPECT_EQ(Sh("bob", probe).exit_code, 1) << "held before the move";
  auto moved = Vos(MoveArgs(vol, 1, 2));
  ASSERT_EQ(moved.exit_code, 0) << moved.output;
  ASSERT_EQ(SiteOf(vol), 2);
  // Three lease times (3 s each in this cell): the lock must stay held on the new server all
  // along, renewed there by its holder's client.
  const auto until = std::chrono::steady_clock::now() + seconds(10);
  int checks = 0;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(Sh("bob", probe).exit_code, 1)
        << "the moved lock was free after " << checks << " checks\n"
        << w.cell->LogTail(1, 15) << w.cell->LogTail(2, 15) << Lines(w.mounts[0].log);
    ++checks;
  }
  EXPECT_EQ(Sh("bob", tool + " try " + B(vol + "/locked.db") + " 200 10").exit_code, 0)
      << "another range is free";
  std::string log;
  std::getline(std::ifstream(w.mounts[0].log), log, '\0');
  EXPECT_EQ(log.find("lock on " + std::to_string(id) + "."), std::string::npos) << "the holder kept it";
  EXPECT_NE(log.find("advisory locks on volume " + std::to_string(id)), std::string::npos)
      << "the holder's client renews it with the new server";
  std::ofstream(fifo) << "go\n";  // the holder lets go
  int status = 0;
  waitpid(holder, &status, 0);
  EXPECT_TRUE(WaitFor([&] { return Sh("bob", probe).exit_code == 0; }, seconds(20)))
      << "released on the new server";
  ::unlink(fifo.c_str());
}

// A file server killed (SIGKILL) at each phase boundary of a move, the source or the
// destination (the move is paused there, the server killed, the move let go on): whatever the
// move then says, once the server is back, running the same command again leaves the volume
// whole on the destination, with no stray instance and nothing staged.
TEST(MoveChaosTest, AServerKilledAtAnyPhaseOfAMoveLosesNothing) {
  World& w = TheWorld();
  const std::string vol = "srvkill";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  const std::string tree = FillForMove(vol);
  int at = 1;
  for (std::string phase : {"copy", "increments", "freeze", "switch", "online", "cleanup"}) {
    for (std::string victim : {"destination", "source"}) {
      SCOPED_TRACE(phase + ", " + victim + " killed");
      const int to = 3 - at;
      const int dead = victim == "source" ? at : to;
      auto args = MoveArgs(vol, at, to);
      args.push_back("-locktime");
      args.push_back("3");  // a re-run waits for a dead move's lock to expire
      PausedVos mover(args, phase, "srvkill-move");
      ASSERT_TRUE(mover.started());
      ASSERT_TRUE(mover.WaitStopped()) << "it stops at " << phase;
      w.cell->KillFileServer(dead);
      std::string said;
      const int exit_code = mover.Finish(&said);
      if (phase == "copy" || phase == "increments" || phase == "freeze") {
        EXPECT_GT(exit_code, 0) << said;
        EXPECT_NE(said.find("rolled back"), std::string::npos) << said;
        EXPECT_EQ(SiteOf(vol), at) << "the VLDB still names the source";
      }
      RestartFileServer(dead);
      auto again = Vos(args);
      ASSERT_EQ(again.exit_code, 0) << said << again.output << w.cell->LogTail(1) << w.cell->LogTail(2);
      EXPECT_EQ(SiteOf(vol), to);
      EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(to, id)));
      EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(at, id))) << "no stray instance";
      ExpectNothingStaged();
      EXPECT_TRUE(WaitFor([&] { return TreeOf(B(vol)) == tree; }, seconds(30))) << TreeOf(B(vol));
      at = to;
    }
  }
}

// vos lock keeps a move off a volume until vos unlock; vos zap removes an instance the VLDB
// does not name (here one left by a killed move) and refuses one it names.
TEST(MoveTest, LockUnlockAndZap) {
  World& w = TheWorld();
  const std::string vol = "lockzap";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  ASSERT_EQ(Sh("alice", "echo kept > " + A(vol + "/kept")).exit_code, 0);
  auto locked = Vos({"lock", "-id", vol});
  ASSERT_EQ(locked.exit_code, 0) << locked.output;
  EXPECT_NE(locked.output.find("Locked VLDB entry for volume lockzap"), std::string::npos);
  EXPECT_NE(Vos({"examine", "-id", vol}).output.find("LOCKED"), std::string::npos);
  auto refused = Vos(MoveArgs(vol, 1, 2));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("heka vos unlock"), std::string::npos) << refused.output;
  auto unlocked = Vos({"unlock", "-id", vol});
  ASSERT_EQ(unlocked.exit_code, 0) << unlocked.output;
  EXPECT_NE(unlocked.output.find("Released lock"), std::string::npos);
  auto moved = Vos(MoveArgs(vol, 1, 2));
  ASSERT_EQ(moved.exit_code, 0) << moved.output;
  // A move back killed after its copy leaves an instance on fs1 that the VLDB does not name.
  auto args = MoveArgs(vol, 2, 1);
  args.push_back("-locktime");
  args.push_back("2");
  EXPECT_EQ(Vos(args, {{"HEKA_VOS_TEST_KILL_AT", "increments"}}).exit_code, -1);
  ASSERT_TRUE(std::filesystem::exists(VolumeDirOn(1, id)));
  auto zap_named = Vos({"zap", "-server", w.cell->fs_uuid(2), "-partition", w.cell->fs_partition(2),
                        "-id", std::to_string(id)});
  EXPECT_NE(zap_named.exit_code, 0);
  EXPECT_NE(zap_named.output.find("removes only stray ones"), std::string::npos) << zap_named.output;
  auto zapped = Vos({"zap", "-server", w.cell->fs_uuid(1), "-partition", w.cell->fs_partition(1),
                     "-id", std::to_string(id)});
  ASSERT_EQ(zapped.exit_code, 0) << zapped.output;
  EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(1, id)));
  EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id)));
  ASSERT_EQ(Vos({"unlock", "-id", vol}).exit_code, 0);  // the killed move's lock
  auto back = Vos(MoveArgs(vol, 2, 1));
  ASSERT_EQ(back.exit_code, 0) << back.output;
  EXPECT_EQ(Sh("bob", "cat " + B(vol + "/kept")).output, "kept\n");
}

// ---- vos addsite, remsite, release ----------------------------------------------------------

std::vector<std::string> SiteArgs(const std::string& command, const std::string& vol, int server) {
  World& w = TheWorld();
  return {command, "-server", w.cell->fs_uuid(server), "-partition", w.cell->fs_partition(server),
          "-id", vol};
}

// `heka fs mkmount -dir /heka/acme/<dir> -vol <volume>` through the first client.
testing::ProcessResult MkMount(const std::string& dir, const std::string& volume) {
  World& w = TheWorld();
  return enc::Heka({"fs", "mkmount", "-dir", A(dir), "-vol", volume, "-socket", enc::SocketOf(w.mounts[0])},
                   {{"KRB5CCNAME", "FILE:" + w.cc["admin"]}});
}

// "(12.3 MB sent)" of a vos release's summary line.
double MbSent(const std::string& output) {
  const size_t at = output.find(" MB sent)");
  if (at == std::string::npos) return -1;
  const size_t open = output.rfind('(', at);
  return std::atof(output.substr(open + 1, at - open - 1).c_str());
}

// vos release copies a volume to two RO sites (the RW's server, where the RO is a clone, and
// the other server); a regular mount point inside an RO volume leads to RO instances; a later
// release sends only what changed and clients see it; when the server a client reads an RO
// volume from stops, the client reads from the other site without an error.
TEST(ReleaseTest, AReleaseReachesTwoSitesAndReadersFailOverWhenOneStops) {
  World& w = TheWorld();
  const std::string vol = "repl", inner = "replinner";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  enc::MakeEncryptedVolume(inner, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  ASSERT_EQ(Sh("alice", "echo one > " + A(vol + "/f1") + " && head -c 3000000 /dev/urandom > " +
                            A(vol + "/bulk") + " && mkdir " + A(vol + "/d") +
                            " && for i in $(seq 10); do echo $i > " + A(vol + "/d/f") + "$i; done && ln -s d/f1 " +
                            A(vol + "/sym") + " && echo inside > " + A(inner + "/file")).exit_code,
            0);
  ASSERT_EQ(MkMount(vol + "/inner", inner).exit_code, 0);
  // The other server's site first: clients try RO sites in the VLDB's order, and the path to
  // the mount point goes through the root volume on the first server, which must stay up.
  for (const std::string& v : {vol, inner}) {
    for (int n : {2, 1}) {
      auto added = Vos(SiteArgs("addsite", v, n));
      ASSERT_EQ(added.exit_code, 0) << added.output;
    }
  }
  EXPECT_NE(Vos({"examine", "-id", vol}).output.find("RO (not released)"), std::string::npos);
  auto twice = Vos(SiteArgs("addsite", vol, 2));
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_NE(twice.output.find("already has a read-only site"), std::string::npos) << twice.output;
  auto early = MkMount("repl-ro", vol + ".readonly");
  EXPECT_NE(early.exit_code, 0) << "no RO instance before a release: " << early.output;

  auto first = Vos({"release", "-id", vol, "-verbose"});
  ASSERT_EQ(first.exit_code, 0) << first.output << w.cell->LogTail(1) << w.cell->LogTail(2);
  EXPECT_NE(first.output.find("Released volume repl"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("to 2 of 2 read-only sites"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("vnodes"), std::string::npos) << "a progress line: " << first.output;
  ASSERT_EQ(Vos({"release", "-id", inner}).exit_code, 0);
  const std::string examined = Vos({"examine", "-id", vol}).output;
  EXPECT_EQ(examined.find("not released"), std::string::npos) << examined;
  EXPECT_NE(examined.find("ROnly: " + std::to_string(id + 1)), std::string::npos) << examined;
  EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(1, id + 1)));
  EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id + 1)));

  // Clients that crossed these volumes' mount points before their first release learn of
  // their RO sites within a minute, or at once after `fs checkvolumes` (as in OpenAFS).
  for (const auto& m : w.mounts) {
    auto checked = enc::Heka({"fs", "checkvolumes", "-socket", enc::SocketOf(m)},
                             {{"KRB5CCNAME", "FILE:" + w.cc["alice"]}});
    ASSERT_EQ(checked.exit_code, 0) << checked.output;
  }
  auto mounted = MkMount("repl-ro", vol + ".readonly");
  ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  const std::string released = TreeOf(A(vol));
  EXPECT_EQ(TreeOf(A("repl-ro")), released);
  EXPECT_EQ(TreeOf(B("repl-ro")), released);
  // The RO volume and the RO instance its mount point leads to take no changes.
  for (const std::string& change : {"echo x > " + A("repl-ro/f1"), "touch " + A("repl-ro/inner/new")}) {
    auto r = Sh("alice", change + " 2>&1");
    EXPECT_NE(r.exit_code, 0) << change;
    EXPECT_NE(r.output.find("Read-only file system"), std::string::npos) << change << ": " << r.output << Lines(w.mounts[0].log);
  }
  EXPECT_EQ(Sh("alice", "cat " + A("repl-ro/inner/file")).output, "inside\n");

  // Changes to the RW show in the RO instances only after the next release, which sends only
  // what changed.
  ASSERT_EQ(Sh("alice", "echo two > " + A(vol + "/f1") + " && rm " + A(vol + "/d/f3") + " && mv " +
                            A(vol + "/d/f4") + " " + A(vol + "/d/f4b") + " && echo new > " +
                            A(vol + "/added")).exit_code,
            0);
  EXPECT_EQ(Sh("bob", "cat " + B("repl-ro/f1")).output, "one\n");
  auto second = Vos({"release", "-id", vol});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_GE(MbSent(first.output), 3.0) << first.output;
  EXPECT_LT(MbSent(second.output), 1.0) << "only the changes: " << second.output;
  const std::string changed = TreeOf(A(vol));
  EXPECT_TRUE(WaitFor([&] { return TreeOf(B("repl-ro")) == changed; }, seconds(30))) << TreeOf(B("repl-ro"));
  EXPECT_TRUE(WaitFor([&] { return TreeOf(A("repl-ro")) == changed; }, seconds(30))) << TreeOf(A("repl-ro"));

  // The server the first client reads the RO volume from stops; it reads on from the other.
  auto where = enc::Heka({"fs", "whereis", "-path", A("repl-ro/bulk"), "-socket", enc::SocketOf(w.mounts[0])},
                         {{"KRB5CCNAME", "FILE:" + w.cc["alice"]}});
  ASSERT_EQ(where.exit_code, 0) << where.output;
  const int used = where.output.find(w.cell->fs_address(2)) != std::string::npos ? 2 : 1;
  ASSERT_EQ(used, 2) << where.output;
  w.cell->KillFileServer(used);
  auto flushed = enc::Heka({"fs", "flushvolume", "-path", A("repl-ro"), "-socket", enc::SocketOf(w.mounts[0])},
                           {{"KRB5CCNAME", "FILE:" + w.cc["alice"]}});
  EXPECT_EQ(flushed.exit_code, 0) << flushed.output;
  for (int round = 0; round < 3; ++round) {
    auto read = Sh("alice", "cd " + A("repl-ro") + " && find . -type f -print0 | sort -z | xargs -0 sha256sum 2>&1");
    EXPECT_EQ(read.exit_code, 0) << read.output << Lines(w.mounts[0].log);
    EXPECT_NE(changed.find(read.output), std::string::npos) << read.output;
  }
  EXPECT_EQ(Sh("alice", "cat " + A("repl-ro/inner/file") + " 2>&1").output, "inside\n");
  auto again = enc::Heka({"fs", "whereis", "-path", A("repl-ro/bulk"), "-socket", enc::SocketOf(w.mounts[0])},
                         {{"KRB5CCNAME", "FILE:" + w.cc["alice"]}});
  EXPECT_NE(again.output.find(w.cell->fs_address(3 - used)), std::string::npos) << again.output;
  RestartFileServer(used);

  // /heka/.acme is the cell root's read-write path.
  const std::string root = w.mounts[0].dir;
  EXPECT_NE(Sh("alice", "ls -a " + root).output.find(".acme\n"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return Sh("alice", "cat " + root + "/.acme/" + vol + "/f1").output == "two\n"; },
                      seconds(30)));

  // A release while an RO server is down: its site keeps its previous release, and the
  // command says so and fails; run again once the server is back, it sends that site what it
  // lacks. The instances' change serials show which release each holds.
  auto serial_on = [&](int n) {
    auto r = testing::RunProcess({"python3", "-c",
                                  "import sqlite3,sys; print(sqlite3.connect('file:' + sys.argv[1] + "
                                  "'?mode=ro', uri=True).execute('SELECT serial FROM header').fetchone()[0])",
                                  VolumeDirOn(n, id + 1) + "/meta.sqlite"});
    return r.output;
  };
  w.cell->KillFileServer(2);
  ASSERT_EQ(Sh("alice", "echo three > " + A(vol + "/f1")).exit_code, 0);
  auto partial = Vos({"release", "-id", vol});
  EXPECT_NE(partial.exit_code, 0) << partial.output;
  EXPECT_NE(partial.output.find("to 1 of 2 read-only sites"), std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find("keep their previous release"), std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find("site " + w.cell->fs_address(2) + " "), std::string::npos)
      << "the site that missed the release is named by its address: " << partial.output;
  EXPECT_NE(serial_on(1), serial_on(2));
  RestartFileServer(2);
  auto caught_up = Vos({"release", "-id", vol});
  EXPECT_EQ(caught_up.exit_code, 0) << caught_up.output;
  EXPECT_LT(MbSent(caught_up.output), 1.0) << caught_up.output;
  EXPECT_EQ(serial_on(1), serial_on(2));
  EXPECT_TRUE(WaitFor([&] { return Sh("bob", "cat " + B("repl-ro/f1")).output == "three\n"; }, seconds(30)));

  // remsite takes the site out of the VLDB and its instance off the server; vos remove takes
  // every instance.
  auto removed = Vos(SiteArgs("remsite", vol, 2));
  ASSERT_EQ(removed.exit_code, 0) << removed.output;
  EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(2, id + 1)));
  EXPECT_EQ(Vos({"release", "-id", vol}).exit_code, 0) << "one site left";
  ASSERT_EQ(Vos({"remove", "-id", vol}).exit_code, 0);
  for (int n : {1, 2}) {
    for (uint64_t i : {id, id + 1, id + 2}) {
      EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(n, i))) << "server " << n << " volume " << i;
    }
  }
}

// An encrypted volume's release: the RO instance on the other server holds only ciphertext,
// and clients read it with the cell key.
TEST(ReleaseTest, AnEncryptedVolumeReleasesAndItsReplicaReadsWithTheCellKey) {
  const std::string vol = "encrepl";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/true);
  const uint64_t id = VolumeIdOf(vol);
  const std::string marker = "HEKAREPL" + enc::RandomHex(8);
  ASSERT_EQ(Sh("alice", "echo " + marker + " > " + A(vol + "/note-" + marker) + " && head -c 2500000 /dev/urandom > " +
                            A(vol + "/bulk")).exit_code, 0);
  ASSERT_EQ(Vos(SiteArgs("addsite", vol, 2)).exit_code, 0);
  auto released = Vos({"release", "-id", vol});
  ASSERT_EQ(released.exit_code, 0) << released.output;
  ASSERT_EQ(MkMount("encrepl-ro", vol + ".readonly").exit_code, 0);
  const std::string tree = TreeOf(A(vol));
  EXPECT_EQ(TreeOf(A("encrepl-ro")), tree);
  EXPECT_EQ(TreeOf(B("encrepl-ro")), tree);
  EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id + 1)));
  EXPECT_TRUE(enc::FilesHolding(VolumeDirOn(2, id + 1), marker).empty()) << "no plaintext on the RO site";
  ASSERT_EQ(Vos({"remove", "-id", vol}).exit_code, 0);
}

// After disasters: a lost VLDB entry comes back from the instances on the servers (vos
// syncvldb), and a site whose instance was lost with its disk leaves the VLDB (vos syncserv).
TEST(ReleaseTest, SyncvldbAndSyncservReconcileTheVldbWithTheServers) {
  World& w = TheWorld();
  const std::string vol = "syncme";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  ASSERT_EQ(Sh("alice", "echo kept > " + A(vol + "/kept")).exit_code, 0);
  ASSERT_EQ(VosBackup(vol).exit_code, 0);
  ASSERT_EQ(Vos(SiteArgs("addsite", vol, 2)).exit_code, 0);
  ASSERT_EQ(Vos({"release", "-id", vol}).exit_code, 0);
  const std::string before = Vos({"examine", "-id", vol}).output;
  // The VLDB entry is lost.
  db::Command del;
  del.mutable_delete_volume()->set_cell("acme");
  del.mutable_delete_volume()->set_id(id);
  ASSERT_TRUE(w.runtime.BlockOn(w.db->Write(std::move(del))).ok());
  EXPECT_NE(Vos({"examine", "-id", vol}).exit_code, 0);
  auto first = Vos({"syncvldb", "-server", w.cell->fs_uuid(1)});
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("created the VLDB entry of volume syncme"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("added the BK site"), std::string::npos) << first.output;
  auto second = Vos({"syncvldb", "-server", w.cell->fs_uuid(2)});
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("added the RO site"), std::string::npos) << second.output;
  auto again = Vos({"syncvldb", "-server", w.cell->fs_uuid(1)});
  EXPECT_NE(again.output.find(", 0 changed, 0 left"), std::string::npos) << "idempotent: " << again.output;
  const std::string after = Vos({"examine", "-id", vol}).output;
  for (const char* line : {"RW Site", "RO Site", "BK Site", "ROnly: ", "Backup: "}) {
    EXPECT_NE(after.find(line), std::string::npos) << line << " in\n" << after << "\nbefore:\n" << before;
  }
  EXPECT_EQ(Sh("bob", "cat " + B(vol + "/kept")).output, "kept\n");
  // The RO instance on the second server is lost with its disk.
  w.cell->KillFileServer(2);
  std::filesystem::remove_all(VolumeDirOn(2, id + 1));
  RestartFileServer(2);
  auto served = Vos({"syncserv", "-server", w.cell->fs_uuid(2)});
  EXPECT_EQ(served.exit_code, 0) << served.output;
  EXPECT_NE(served.output.find("removed the RO site"), std::string::npos) << served.output;
  EXPECT_EQ(Vos({"examine", "-id", vol}).output.find("RO Site"), std::string::npos);
  ASSERT_EQ(Vos({"remove", "-id", vol}).exit_code, 0);
}

// A file server killed (SIGKILL) at each phase boundary of a release, the RW's server or the
// RO site's: once it is back, running the release again brings the RO site to the RW's tree,
// with no clone left on the RW's server and nothing staged.
TEST(ReleaseChaosTest, AServerKilledAtAnyPhaseOfAReleaseLosesNothing) {
  World& w = TheWorld();
  const std::string vol = "srvkillrel";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  FillForMove(vol);
  ASSERT_EQ(Vos(SiteArgs("addsite", vol, 2)).exit_code, 0);
  ASSERT_EQ(Vos({"release", "-id", vol}).exit_code, 0);
  ASSERT_EQ(MkMount("srvkillrel-ro", vol + ".readonly").exit_code, 0);
  for (std::string phase : {"clone", "send", "cleanup"}) {
    for (int dead : {2, 1}) {
      SCOPED_TRACE(phase + ", server " + std::to_string(dead) + " killed");
      ASSERT_EQ(Sh("alice", "echo " + phase + " > " + A(vol + "/at-" + phase + "-" + std::to_string(dead)))
                    .exit_code, 0);
      const std::string tree = TreeOf(A(vol));
      std::vector<std::string> args = {"release", "-id", vol, "-locktime", "3"};
      PausedVos releaser(args, phase, "srvkill-release");
      ASSERT_TRUE(releaser.started());
      ASSERT_TRUE(releaser.WaitStopped()) << "it stops at " << phase;
      w.cell->KillFileServer(dead);
      std::string said;
      releaser.Finish(&said);
      RestartFileServer(dead);
      auto again = Vos(args);
      ASSERT_EQ(again.exit_code, 0) << said << again.output << w.cell->LogTail(1) << w.cell->LogTail(2);
      EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(1, id + 1))) << "no stray clone";
      EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id + 1)));
      ExpectNothingStaged();
      EXPECT_TRUE(WaitFor([&] { return TreeOf(B("srvkillrel-ro")) == tree; }, seconds(30)))
          << said << TreeOf(B("srvkillrel-ro")) << "\nwanted:\n" << tree;
    }
  }
}

// vos release killed (SIGKILL) at each phase boundary: `vos examine` answers and shows the
// lock, and running the release again brings the RO site to the RW's content, with no clone
// left on the RW's server (not an RO site here) and nothing staged.
TEST(ReleaseChaosTest, AReleaseKilledAtAnyPhaseIsFinishedByRunningItAgain) {
  World& w = TheWorld();
  const std::string vol = "killrel";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  const uint64_t id = VolumeIdOf(vol);
  FillForMove(vol);
  ASSERT_EQ(Vos(SiteArgs("addsite", vol, 2)).exit_code, 0);
  auto first = Vos({"release", "-id", vol});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  ASSERT_EQ(MkMount("killrel-ro", vol + ".readonly").exit_code, 0);
  // Killed as it enters a phase, it has recorded the one before.
  for (auto [phase, recorded] : {std::pair<std::string, std::string>{"clone", "start"},
                                 {"send", "clone"}, {"cleanup", "send"}}) {
    SCOPED_TRACE(phase);
    ASSERT_EQ(Sh("alice", "echo " + phase + " > " + A(vol + "/at-" + phase) + " && rm -f " +
                              A(vol + "/d/f1")).exit_code, 0);
    const std::string tree = TreeOf(A(vol));
    std::vector<std::string> args = {"release", "-id", vol, "-locktime", "2"};
    auto killed = Vos(args, {{"HEKA_VOS_TEST_KILL_AT", phase}});
    EXPECT_EQ(killed.exit_code, -1) << killed.output;
    auto examined = Vos({"examine", "-id", vol});
    EXPECT_EQ(examined.exit_code, 0) << examined.output;
    EXPECT_NE(examined.output.find("operation release, phase " + recorded), std::string::npos)
        << examined.output;
    auto again = Vos(args);  // waits for the dead release's lock to expire, then takes over
    ASSERT_EQ(again.exit_code, 0) << again.output << w.cell->LogTail(1) << w.cell->LogTail(2);
    EXPECT_FALSE(std::filesystem::exists(VolumeDirOn(1, id + 1))) << "no stray clone";
    EXPECT_TRUE(std::filesystem::exists(VolumeDirOn(2, id + 1)));
    ExpectNothingStaged();
    EXPECT_TRUE(WaitFor([&] { return TreeOf(B("killrel-ro")) == tree; }, seconds(30)))
        << TreeOf(B("killrel-ro")) << "\nwanted:\n" << tree;
  }
}

// A process appends fsynced records while another process on the same client reads the file
// over and over: every record stays (an O_APPEND write must never land on an earlier one).
TEST(AppendTest, AppendsWhileTheSameClientReadsLoseNothing) {
  const std::string vol = "appends";
  enc::MakeEncryptedVolume(vol, nullptr, /*encrypted=*/false);
  char tmpl[] = "/tmp/heka-append-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string tmp = tmpl;
  ::chmod(tmp.c_str(), 0777);
  std::ofstream(tmp + "/writer.py") << kWriter;
  ASSERT_EQ(Sh("alice", "nohup python3 " + tmp + "/writer.py " + A(vol + "/log") + " " + tmp + "/stop " +
                            tmp + "/out > " + tmp + "/writer.log 2>&1 &").exit_code,
            0);
  auto lines = [&] { return std::atoll(Sh("alice", "wc -l < " + A(vol + "/log") + " 2>/dev/null").output.c_str()); };
  EXPECT_TRUE(WaitFor([&] { return lines() > 300; }, seconds(90)));
  std::ofstream(tmp + "/stop") << "stop";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(tmp + "/out"); }, seconds(30)));
  std::string result;
  std::getline(std::ifstream(tmp + "/out"), result);
  uint64_t records = 0, pause_ms = 0, seen = 0;
  ASSERT_EQ(std::sscanf(result.c_str(), "ok %" SCNu64 " %" SCNu64, &records, &pause_ms), 2) << result;
  const std::string log = Sh("alice", "cat " + A(vol + "/log")).output;
  EXPECT_TRUE(RecordsIntact(log, &seen)) << "record " << seen << " is wrong: "
                                         << log.substr(seen > 2 ? (seen - 2) * 68 : 0, 400);
  EXPECT_EQ(seen, records);
  std::filesystem::remove_all(tmp);
}

}  // namespace
}  // namespace heka::cm

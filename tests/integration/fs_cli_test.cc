// `heka fs` against a real heka-cachemgr mount and a real cell: the commands go through the
// cache manager's control socket, which acts with the caller's own Kerberos credentials.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

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

struct World {
  std::unique_ptr<testing::FsCell> cell;
  std::map<std::string, std::string> cc;  // user -> ccache path
  rpc::Runtime runtime{{2, 2}};
  std::unique_ptr<db::DbClient> db;
  std::shared_ptr<fs::FileClient> admin;  // the file server, as the provider admin
  std::string mnt;                        // the mount point
  std::string socket;                     // its control socket
  // The cache manager's DB servers: the three members, the leader last (so it reads from a
  // follower first, as a client often does).
  std::string cm_dbservers;
  std::string keys;                       // its key_dir ($HEKA_KEY_DIR of `heka key`)
  std::string log;
  pid_t pid = -1;

  ~World() {
    if (pid > 0) testing::StopChild(pid);
    testing::RunProcess({"fusermount3", "-u", "-z", mnt});
    admin.reset();
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

Result<db::CommandResult> Write(World& w, db::Command cmd) {
  auto r = w.runtime.BlockOn(w.db->Write(std::move(cmd)));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r;
}

// A volume named `name` in `cell` on file server 1: in the VLDB, then on the server.
uint64_t CreateVolume(World& w, const std::string& name, const std::string& cell = "acme") {
  db::Command vol;
  db::Volume* v = vol.mutable_create_volume()->mutable_volume();
  v->set_name(name);
  v->set_cell(cell);
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(w.cell->fs_uuid(1));
  site->set_partition(w.cell->fs_partition(1));
  auto id = Write(w, vol);
  pb::CreateVolumeRequest cv;
  cv.set_cell(cell);
  cv.set_id(id.ok() ? static_cast<uint64_t>(id->id()) : 0);
  auto made =
      w.admin->CallSync<pb::CreateVolumeReply>("heka.fileserver.VolumeServer.CreateVolume", cv);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return cv.id();
}

void SetUp(World& w) {
  auto& realm = SharedRealm();
  for (const char* user : {"admin", "alice", "bob"}) {
    EXPECT_TRUE(realm.AddUser(user, std::string(user) + "-pw").ok());
    w.cc[user] = realm.NewCcachePath(user);
    EXPECT_TRUE(realm.Kinit(user, std::string(user) + "-pw", w.cc[user]).ok());
  }
  testing::FsCellOptions o;
  o.provider_admins = {"admin@HEKA.TEST"};
  o.db_members = 3;
  auto cell = testing::FsCell::Create(realm, o, w.cc["admin"]);
  ASSERT_TRUE(cell.ok()) << cell.status().ToString();
  w.cell = std::move(*cell);
  auto leader = w.cell->db().WaitForLeader(w.cc["admin"], std::chrono::seconds(45));
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  for (int i = 1; i <= w.cell->db().size(); ++i) {
    if (i == *leader) continue;
    w.cm_dbservers += w.cell->db().address(i) + "=" + w.cell->db().principal(i) + ",";
  }
  w.cm_dbservers += w.cell->db().address(*leader) + "=" + w.cell->db().principal(*leader);
  ASSERT_TRUE(w.cell->StartFileServerAndWait(1).ok());
  db::DbClientOptions dbo;
  dbo.members = *db::ParseMembers(w.cell->db().dbservers());
  dbo.credentials.ccache = "FILE:" + w.cc["admin"];
  dbo.prefer_leader_reads = true;
  w.db = std::make_unique<db::DbClient>(w.runtime, dbo);
  fs::FileClientOptions fo;
  fo.address = w.cell->fs_address(1);
  fo.server_principal = w.cell->fs_principal(1);
  fo.credentials.ccache = "FILE:" + w.cc["admin"];
  w.admin = fs::FileClient::Create(w.runtime, fo);

  db::Command cell_cmd;
  cell_cmd.mutable_create_cell()->set_name("acme");
  cell_cmd.mutable_create_cell()->add_realms("HEKA.TEST");
  (void)Write(w, cell_cmd);
  for (const char* user : {"alice", "bob", "admin"}) {
    db::Command u;
    u.mutable_create_user()->set_cell("acme");
    u.mutable_create_user()->set_principal(std::string(user) + "@HEKA.TEST");
    (void)Write(w, u);
  }
  db::Command adm;
  adm.mutable_add_member()->set_cell("acme");
  adm.mutable_add_member()->set_user("admin");
  adm.mutable_add_member()->set_group("system:administrators");
  (void)Write(w, adm);
  pb::Fid root;
  root.set_cell("acme");
  root.set_volume(CreateVolume(w, "root.cell"));
  root.set_vnode(1);
  root.set_uniq(1);
  pb::StoreAclRequest acl;
  *acl.mutable_dir() = root;
  auto* e1 = acl.add_entries();
  e1->set_principal(kAdmins);
  e1->set_rights(127);
  auto* e2 = acl.add_entries();
  e2->set_principal(kAuthUser);
  e2->set_rights(1 | 2 | 4 | 8 | 16 | 32);  // rlidwk
  EXPECT_TRUE(WaitFor(
      [&] { return w.admin->CallSync<pb::StoreAclReply>("heka.fileserver.File.StoreAcl", acl).ok(); },
      seconds(10)));

  std::string base = realm.dir() + "/fscli-client";
  w.mnt = base + "/mnt";
  w.socket = base + "/control.sock";
  w.keys = base + "/keys";
  w.log = base + ".log";
  std::string config = base + ".toml";
  std::filesystem::create_directories(w.mnt);
  std::filesystem::create_directories(base + "/state");
  auto kt = realm.AddService(realm.Principal("heka/fscli-client"));
  ASSERT_TRUE(kt.ok());
  std::ofstream(config) << "[cachemgr]\nmountpoint = \"" << w.mnt << "\"\ndbservers = \""
                        << w.cm_dbservers << "\"\ncells = [\"acme\"]\nkeytab = \""
                        << *kt << "\"\nprincipal = \"" << realm.Principal("heka/fscli-client")
                        << "\"\nstate_dir = \"" << base << "/state\"\ncontrol_socket = \""
                        << w.socket << "\"\nkey_dir = \"" << w.keys << "\"\n";
  w.pid = testing::Spawn({testing::BinDir() + "/heka-cachemgr", "--config", config, "--log", w.log});
  EXPECT_TRUE(WaitFor([&] { return Mounted(w.mnt); }, seconds(20))) << "no mount at " << w.mnt;
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(w.socket); }, seconds(10)));
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
    SetUp(*w);
    return w;
  }();
  return *g_world;
}

// Runs `script` with sh as a process holding `user`'s tickets ("" = no usable ticket), with
// `heka` on the PATH and the control socket in $HEKA_CACHEMGR_SOCKET.
testing::ProcessResult Sh(const std::string& user, const std::string& script) {
  World& w = TheWorld();
  std::string cc = user.empty() ? SharedRealm().dir() + "/no-such-ccache" : w.cc.at(user);
  return testing::RunProcess({"/bin/sh", "-c", script},
                             {{"KRB5CCNAME", "FILE:" + cc},
                              {"HEKA_CACHEMGR_SOCKET", w.socket},
                              {"HEKA_KEY_DIR", w.keys},
                              {"PATH", testing::BinDir() + ":/usr/bin:/bin"}},
                             seconds(120));
}

std::string P(const std::string& path) { return TheWorld().mnt + "/acme/" + path; }

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST(FsCliTest, SetAclAndListAclRoundTripWithNames) {
  std::string d = P("acl");
  ASSERT_EQ(Sh("admin", "mkdir " + d).exit_code, 0);
  auto set = Sh("admin", "heka fs setacl -dir " + d + " -acl alice rlidwka bob read");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  auto list = Sh("admin", "heka fs listacl -dir " + d);
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_EQ(list.output.rfind("Access list for " + d + " is\nNormal rights:\n", 0), 0u)
      << list.output;
  EXPECT_NE(list.output.find("\n  system:administrators rlidwka\n"), std::string::npos)
      << list.output;
  EXPECT_NE(list.output.find("\n  alice rlidwka\n"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("\n  bob rl\n"), std::string::npos) << list.output;
  EXPECT_EQ(list.output.find("Negative rights"), std::string::npos) << list.output;

  // Negative rights: bob loses l although system:authuser grants it.
  set = Sh("admin", "heka fs setacl -dir " + d + " -acl bob l -negative");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  list = Sh("alice", "heka fs listacl -dir " + d);  // alice has a now
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("Negative rights:\n  bob l\n"), std::string::npos) << list.output;
  EXPECT_NE(Sh("bob", "ls " + d).exit_code, 0);

  // "none" removes an entry; -clear starts from nothing.
  set = Sh("alice", "heka fs setacl -dir " + d + " -acl bob none -negative");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(Sh("bob", "ls " + d).exit_code, 0);
  set = Sh("admin", "heka fs setacl -dir " + d + " -clear -acl system:administrators all");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  list = Sh("admin", "heka fs listacl -dir " + d);
  EXPECT_EQ(list.output, "Access list for " + d + " is\nNormal rights:\n  system:administrators rlidwka\n");
  auto denied = Sh("alice", "ls " + d + " 2>&1");
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.output.find("Permission denied"), std::string::npos) << denied.output;
}

TEST(FsCliTest, SetAclWithoutTheARightFailsOnOneLine) {
  std::string d = P("noadmin");
  ASSERT_EQ(Sh("alice", "mkdir " + d).exit_code, 0);
  auto r = Sh("alice", "heka fs setacl -dir " + d + " -acl bob all");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Lines(r.output), 1) << r.output;
  EXPECT_EQ(r.output.rfind("heka fs setacl: permission denied", 0), 0u) << r.output;
  auto usage = Sh("alice", "heka fs setacl -dir " + d + " -acl bob");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  usage = Sh("alice", "heka fs setacl -dir " + d + " -acl bob rxq");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  auto missing = Sh("alice", "heka fs listacl -dir " + P("no-such-dir"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(Lines(missing.output), 1) << missing.output;
}

TEST(FsCliTest, MountPointLeadsToAnotherVolume) {
  World& w = TheWorld();
  uint64_t other = CreateVolume(w, "fscli.other");
  std::string m = P("other");
  auto mk = Sh("admin", "heka fs mkmount -dir " + m + " -vol fscli.other");
  ASSERT_EQ(mk.exit_code, 0) << mk.output;
  auto ls = Sh("admin", "heka fs lsmount -dir " + m);
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_EQ(ls.output, "'" + m + "' is a mount point for volume '#fscli.other.'\n");
  // The new volume's root: only administrators until its ACL says otherwise.
  auto set = Sh("admin", "heka fs setacl -dir " + m + " -acl system:authuser write");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  auto write = Sh("alice", "echo inside > " + m + "/hello && ls " + m + " && cat " + m + "/hello");
  EXPECT_EQ(write.exit_code, 0) << write.output;
  EXPECT_EQ(write.output, "hello\ninside\n");
  EXPECT_EQ(Sh("alice", "test -d " + m).exit_code, 0);
  auto ex = Sh("alice", "heka fs examine -path " + m + "/hello");
  EXPECT_EQ(ex.exit_code, 0) << ex.output;
  EXPECT_NE(ex.output.find("Volume status for vid = " + std::to_string(other) +
                           " named fscli.other\n"),
            std::string::npos)
      << ex.output;
  EXPECT_NE(ex.output.find("Current disk quota is"), std::string::npos) << ex.output;
  auto where = Sh("alice", "heka fs whereis -path " + m);
  EXPECT_EQ(where.exit_code, 0) << where.output;
  EXPECT_EQ(where.output, "File " + m + " is on host " + w.cell->fs_address(1) + "\n");
  auto root_ex = Sh("alice", "heka fs examine -path " + P(""));
  EXPECT_NE(root_ex.output.find("named root.cell\n"), std::string::npos) << root_ex.output;
  // A regular symlink stays one, and is no mount point.
  ASSERT_EQ(Sh("alice", "ln -s '#fscli.other.' " + P("fake")).exit_code, 0);
  EXPECT_EQ(Sh("alice", "readlink " + P("fake")).output, "#fscli.other.\n");
  auto not_mp = Sh("alice", "heka fs lsmount -dir " + P("fake"));
  EXPECT_EQ(not_mp.exit_code, 1);
  EXPECT_EQ(not_mp.output, "heka fs lsmount: invalid argument: '" + P("fake") +
                               "' is not a mount point\n");
  EXPECT_EQ(Sh("alice", "heka fs flush -path " + m + "/hello && cat " + m + "/hello").output,
            "inside\n");
  auto rm = Sh("admin", "heka fs rmmount -dir " + m);
  EXPECT_EQ(rm.exit_code, 0) << rm.output;
  EXPECT_NE(Sh("alice", "ls " + m).exit_code, 0);
  // The volume itself is untouched: mounted again, the file is there.
  ASSERT_EQ(Sh("admin", "heka fs mkmount -dir " + m + "2 -vol fscli.other -cell acme").exit_code, 0);
  EXPECT_EQ(Sh("alice", "cat " + m + "2/hello").output, "inside\n");
  auto bad = Sh("admin", "heka fs mkmount -dir " + P("nothing") + " -vol no.such.volume");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
}

// An administrator makes a volume, mounts it and uses the mount point at once, five times in
// a row. The cache manager asks a follower of the VLDB first, which learns of the new volume a
// moment after the leader: the mount point must not look missing meanwhile.
TEST(FsCliTest, ANewVolumeIsUsableRightAfterItsMountPointIsMade) {
  World& w = TheWorld();
  for (int i = 1; i <= 5; ++i) {
    const std::string name = "fscli.fresh" + std::to_string(i);
    CreateVolume(w, name);
    const std::string m = P("fresh" + std::to_string(i));
    auto used = Sh("admin", "heka fs mkmount -dir " + m + " -vol " + name + " && heka fs setacl -dir " +
                                m + " -acl system:authuser write && stat -c %F " + m);
    EXPECT_EQ(used.exit_code, 0) << used.output;
    EXPECT_EQ(used.output, "directory\n");
    EXPECT_EQ(Sh("alice", "echo " + name + " > " + m + "/f && cat " + m + "/f").output, name + "\n");
  }
}

TEST(FsCliTest, WhoamiAndUnlog) {
  EXPECT_EQ(Sh("alice", "heka fs whoami").output, "alice@HEKA.TEST\n");
  EXPECT_EQ(Sh("bob", "heka fs whoami").output, "bob@HEKA.TEST\n");
  EXPECT_EQ(Sh("", "heka fs whoami").output, "anonymous\n");
  ASSERT_EQ(Sh("alice", "echo before > " + P("unlog.txt")).exit_code, 0);
  auto unlog = Sh("alice", "heka fs unlog");
  EXPECT_EQ(unlog.exit_code, 0) << unlog.output;
  // The next request reads alice's ticket cache again, over new connections.
  EXPECT_EQ(Sh("alice", "cat " + P("unlog.txt")).output, "before\n");
  EXPECT_EQ(Sh("alice", "heka fs whoami").output, "alice@HEKA.TEST\n");
  auto none = Sh("", "heka fs whoami -socket " + SharedRealm().dir() + "/nowhere.sock");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(Lines(none.output), 1) << none.output;
}

// Sends `bytes` on a fresh connection to the control socket; true if the daemon then closed it.
bool ClosedAfter(const std::string& bytes) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, TheWorld().socket.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return false;
  }
  (void)!write(fd, bytes.data(), bytes.size());
  shutdown(fd, SHUT_WR);  // nothing more comes: a truncated frame is not waited for
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf);  // the daemon closes: 0 (or a reset)
  close(fd);
  return n <= 0;
}

TEST(FsCliTest, GarbageOnTheSocketClosesOnlyThatConnection) {
  TheWorld();
  EXPECT_TRUE(ClosedAfter(std::string("\xff\xff\xff\xff", 4)));          // too long
  EXPECT_TRUE(ClosedAfter(std::string("\x00\x00\x00\x05\xff\xff\xff\xff\xff", 9)));  // not protobuf
  EXPECT_TRUE(ClosedAfter(std::string("\x00\x00", 2)));                  // truncated
  EXPECT_EQ(Sh("alice", "heka fs whoami").output, "alice@HEKA.TEST\n");
  auto help = Sh("alice", "heka fs whoami -help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
}

// `heka fs -help` of each new command: usage on stdout, exit 0.
TEST(FsCliTest, EveryCommandHasHelp) {
  for (const char* cmd : {"listquota", "setquota", "flushvolume", "checkservers", "setcachesize",
                          "getcellstatus", "listcells"}) {
    auto help = Sh("alice", std::string("heka fs ") + cmd + " -help");
    EXPECT_EQ(help.exit_code, 0) << cmd << ": " << help.output;
    EXPECT_EQ(help.output.rfind(std::string("usage: heka fs ") + cmd, 0), 0u) << help.output;
  }
}

TEST(FsCliTest, SetQuotaByTheAdminShowsInListQuotaAndIsRefusedToOthers) {
  World& w = TheWorld();
  CreateVolume(w, "fscli.quota");
  std::string m = P("quota");
  ASSERT_EQ(Sh("admin", "heka fs mkmount -dir " + m + " -vol fscli.quota").exit_code, 0);
  ASSERT_EQ(Sh("admin", "heka fs setacl -dir " + m + " -acl system:authuser write").exit_code, 0);
  ASSERT_EQ(Sh("alice", "head -c 3000 /dev/zero > " + m + "/data").exit_code, 0);

  auto denied = Sh("alice", "heka fs setquota -path " + m + " -max 5000");
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_EQ(denied.output,
            "heka fs setquota: permission denied: only administrators of cell 'acme' may change "
            "a volume's quota\n");
  auto set = Sh("admin", "heka fs setquota -path " + m + " -max 5000");
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(set.output, "");

  auto list = Sh("alice", "cd " + m + " && heka fs listquota");
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_EQ(list.output.rfind("Volume Name                    Quota       Used %Used   Partition\n", 0),
            0u)
      << list.output;
  EXPECT_TRUE(std::regex_search(list.output,
                                std::regex("\nfscli\\.quota +5000 +[0-9]+ +[0-9]+%  +[0-9]+K free\n")))
      << list.output;
  auto json = Sh("alice", "heka fs listquota -format json -path " + m + " " + P(""));
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_NE(json.output.find("{\"volumes\":[{\"path\":\"" + m + "\",\"volume\":\"fscli.quota\""),
            std::string::npos)
      << json.output;
  EXPECT_NE(json.output.find("\"quota_kb\":5000,"), std::string::npos) << json.output;
  EXPECT_NE(json.output.find("\"volume\":\"root.cell\""), std::string::npos) << json.output;

  ASSERT_EQ(Sh("admin", "heka fs setquota -path " + m + " -max 0").exit_code, 0);
  list = Sh("alice", "heka fs listquota -path " + m);
  EXPECT_TRUE(std::regex_search(list.output, std::regex("\nfscli\\.quota +no limit +[0-9]+ ")))
      << list.output;
  EXPECT_EQ(Sh("admin", "heka fs setquota -path " + m + " -max lots").exit_code, 2);
  auto missing = Sh("alice", "heka fs listquota -path " + P("no-such-file"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(Lines(missing.output), 1) << missing.output;
}

std::string DaemonLog() {
  std::ifstream in(TheWorld().log);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(FsCliTest, FlushVolumeDropsTheCacheAndFilesStillRead) {
  std::string d = P("flushvol");
  ASSERT_EQ(Sh("alice", "mkdir " + d + " && echo kept > " + d + "/f && cat " + d + "/f").output,
            "kept\n");
  auto flush = Sh("alice", "heka fs flushvolume -path " + d + " " + d + "/f");
  EXPECT_EQ(flush.exit_code, 0) << flush.output;
  EXPECT_EQ(flush.output, "");
  EXPECT_EQ(Sh("alice", "cat " + d + "/f && ls " + d).output, "kept\nf\n");
  // The daemon logs how far it got: "flushvolume: N of N objects ...".
  EXPECT_TRUE(WaitFor([] {
    return std::regex_search(DaemonLog(), std::regex("flushvolume: ([0-9]+) of \\1 objects"));
  })) << DaemonLog();
  auto outside = Sh("alice", "heka fs flushvolume -path /tmp");
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_EQ(Lines(outside.output), 1) << outside.output;
  EXPECT_EQ(Sh("alice", "heka fs flushvolume -path").exit_code, 2);
}

// Two commands' JSON: getcacheparms' capacity.
std::string CapacityJson() {
  auto parms = Sh("alice", "heka fs getcacheparms -format json");
  std::smatch m;
  if (!std::regex_search(parms.output, m, std::regex("\"capacity_bytes\":([0-9]+)"))) return "";
  return m[1];
}

TEST(FsCliTest, SetCacheSizeOnlyByRoot) {
  World& w = TheWorld();
  std::string configured = CapacityJson();
  ASSERT_EQ(configured, std::to_string(1024ull << 20)) << "the default cache_size_mb";
  // Something cached first: the smaller bound evicts it at once.
  ASSERT_EQ(Sh("alice", "head -c 3000000 /dev/zero > " + P("big") + " && cat " + P("big") +
                            " > /dev/null")
                .exit_code,
            0);
  auto set = Sh("alice", "heka fs setcachesize -blocks 1024");  // the sh runs as root
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(set.output, "New cache size set.\n");
  EXPECT_EQ(CapacityJson(), "1048576");
  auto parms = Sh("alice", "heka fs getcacheparms");
  EXPECT_NE(parms.output.find("of the cache's available 1024 1K byte blocks"), std::string::npos)
      << parms.output;
  EXPECT_EQ(Sh("alice", "cmp -n 3000000 " + P("big") + " /dev/zero").exit_code, 0);

  // A local user other than root.
  testing::RunProcess({"useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                       "heka-fscli-user"});
  auto uid = testing::RunProcess({"id", "-u", "heka-fscli-user"});
  ASSERT_EQ(uid.exit_code, 0) << "useradd failed (the tests run as root)";
  chmod(SharedRealm().dir().c_str(), 0755);  // the user reaches the control socket
  auto refused = testing::RunProcess(
      {"setpriv", "--reuid", "heka-fscli-user", "--regid", "heka-fscli-user", "--clear-groups",
       testing::BinDir() + "/heka", "fs", "setcachesize", "-blocks", "10"},
      {{"HEKA_CACHEMGR_SOCKET", w.socket}});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.output,
            "heka fs setcachesize: permission denied: only root may change the cache size\n");
  EXPECT_EQ(CapacityJson(), "1048576");

  auto reset = Sh("alice", "heka fs setcachesize -reset");
  EXPECT_EQ(reset.exit_code, 0) << reset.output;
  EXPECT_EQ(reset.output, "Resetting cache size to the configured 1048576 1K byte blocks.\n");
  EXPECT_EQ(CapacityJson(), configured);
  EXPECT_EQ(Sh("alice", "heka fs setcachesize -blocks 2048 -reset").exit_code, 2);
  EXPECT_EQ(Sh("alice", "heka fs setcachesize -blocks many").exit_code, 2);
}

// `heka key unlock` hands a passphrase-protected key to the running cache manager, which then
// lists it; only root (or a private mount's user) may, and only the key the key file names.
TEST(FsCliTest, KeyUnlockAndKeyStatus) {
  World& w = TheWorld();
  std::string pw = w.keys + "-pw";
  std::ofstream(pw) << "fscli passphrase\n";
  auto none = Sh("alice", "heka key status");
  EXPECT_EQ(none.exit_code, 0) << none.output;
  EXPECT_EQ(none.output, "The cache manager holds no cell keys.\n");

  ASSERT_EQ(Sh("", "heka key init -cell acme -passphrase -newpassfile " + pw).exit_code, 0);
  std::string fp = Sh("", "heka key fingerprint -cell acme").output;
  ASSERT_EQ(fp.size(), 33u) << fp;
  fp.pop_back();
  auto unlock = Sh("alice", "heka key unlock -cell acme -passfile " + pw);  // the sh runs as root
  EXPECT_EQ(unlock.exit_code, 0) << unlock.output;
  EXPECT_EQ(unlock.output, "cell acme: key " + fp + " unlocked in the cache manager\n");
  auto status = Sh("", "heka key status");
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(status.output, "cell acme: key " + fp + " (unlocked)\n");

  // Another key for acme (a file of its own): the cell's key file names another fingerprint.
  std::string other = w.keys + "-other.key";
  ASSERT_EQ(Sh("", "heka key init -cell acme -keyfile " + other).exit_code, 0);
  std::string other_fp = Sh("", "heka key fingerprint -cell acme -keyfile " + other).output;
  ASSERT_EQ(other_fp.size(), 33u) << other_fp;
  other_fp.pop_back();
  auto wrong = Sh("", "heka key unlock -cell acme -keyfile " + other);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.output, "heka key unlock: permission denied: the key offered for cell acme has "
                          "fingerprint " + other_fp + ", but its key file " + w.keys +
                              "/acme.key names " + fp + "\n");
  EXPECT_EQ(Sh("", "heka key status").output, "cell acme: key " + fp + " (unlocked)\n");

  // A local user other than root, with a key file of their own: refused by the daemon.
  testing::RunProcess({"useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                       "heka-fscli-user"});
  ASSERT_EQ(testing::RunProcess({"id", "-u", "heka-fscli-user"}).exit_code, 0)
      << "useradd failed (the tests run as root)";
  chmod(SharedRealm().dir().c_str(), 0755);  // the user reaches the control socket
  std::string user_key = SharedRealm().dir() + "/fscli-user.key";
  std::filesystem::remove(user_key);
  ASSERT_EQ(Sh("", "heka key init -cell userscell -keyfile " + user_key +
                       " && chown heka-fscli-user " + user_key)
                .exit_code,
            0);
  auto refused = testing::RunProcess(
      {"setpriv", "--reuid", "heka-fscli-user", "--regid", "heka-fscli-user", "--clear-groups",
       testing::BinDir() + "/heka", "key", "unlock", "-cell", "userscell", "-keyfile", user_key},
      {{"HEKA_CACHEMGR_SOCKET", w.socket}});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.output, "heka key unlock: permission denied: only root (or the user of a "
                            "private mount) may unlock a cell key\n");
  auto listed = testing::RunProcess(
      {"setpriv", "--reuid", "heka-fscli-user", "--regid", "heka-fscli-user", "--clear-groups",
       testing::BinDir() + "/heka", "key", "status"},
      {{"HEKA_CACHEMGR_SOCKET", w.socket}});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(listed.output, "cell acme: key " + fp + " (unlocked)\n") << "anyone may look";

  // The daemon's log names each key it took, never the key.
  std::ifstream log_in(w.log);
  std::stringstream log;
  log << log_in.rdbuf();
  EXPECT_TRUE(std::regex_search(
      log.str(), std::regex("key of cell acme unlocked by uid 0 pid [0-9]+ \\(fingerprint " + fp +
                            "\\)")))
      << w.log;
}

TEST(FsCliTest, ListCellsAndGetCellStatus) {
  World& w = TheWorld();
  // A second cell, in the VLDB but not in the cache manager's configuration.
  db::Command cell_cmd;
  cell_cmd.mutable_create_cell()->set_name("fscli-other");
  cell_cmd.mutable_create_cell()->add_realms("HEKA.TEST");
  (void)Write(w, cell_cmd);
  CreateVolume(w, "root.cell", "fscli-other");

  std::string hosts;
  auto members = db::ParseMembers(w.cm_dbservers);
  ASSERT_TRUE(members.ok());
  for (const db::DbMember& m : *members) hosts += " " + m.address;
  auto list = Sh("alice", "heka fs listcells");
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_EQ(list.output.rfind("Cell acme on hosts" + hosts + ".\n", 0), 0u) << list.output;
  EXPECT_EQ(list.output.find("fscli-other"), std::string::npos) << list.output;

  auto status = Sh("alice", "heka fs getcellstatus -cell acme");
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(status.output, "Cell acme status: no setuid allowed (configured)\n");
  status = Sh("alice", "heka fs getcellstatus -cell fscli-other");
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(status.output,
            "Cell fscli-other status: no setuid allowed (not configured; reached by lookup)\n");
  // Looked up once, it is listed too.
  list = Sh("alice", "heka fs listcells -numeric");
  EXPECT_NE(list.output.find("\nCell fscli-other on hosts" + hosts + ".\n"), std::string::npos)
      << list.output;
  auto json = Sh("alice", "heka fs listcells -format json");
  EXPECT_EQ(json.output.rfind("{\"cells\":[{\"cell\":\"acme\",\"configured\":true,", 0), 0u)
      << json.output;

  auto unknown = Sh("alice", "heka fs getcellstatus -cell no-such-cell");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "heka fs getcellstatus: not found: no such cell 'no-such-cell'\n");
  EXPECT_EQ(Sh("alice", "heka fs getcellstatus").exit_code, 2);
}

// Last: it stops the file server (and starts it again).
TEST(FsCliTest, CheckServersNamesAStoppedFileServer) {
  World& w = TheWorld();
  auto check = Sh("alice", "heka fs checkservers");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "All servers are running.\n");
  auto json = Sh("", "heka fs checkservers -all -format json");
  EXPECT_EQ(json.output.rfind("{\"all_running\":true,\"servers\":[{\"address\":\"" +
                                  w.cell->fs_address(1) + "\"",
                              0),
            0u)
      << json.output;

  w.cell->StopFileServer(1);
  std::string down = "These servers unavailable due to network or server problems: " +
                     w.cell->fs_address(1) + ".\n";
  EXPECT_TRUE(WaitFor([&] { return Sh("alice", "heka fs checkservers").output == down; },
                      seconds(20)))
      << Sh("alice", "heka fs checkservers").output;
  check = Sh("alice", "heka fs checkservers -fast -cell acme");  // no probe: the last one's word
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, down);

  ASSERT_TRUE(w.cell->StartFileServerAndWait(1).ok());
  EXPECT_TRUE(WaitFor(
      [&] { return Sh("alice", "heka fs checkservers -cell acme").output == "All servers are running.\n"; },
      seconds(20)));
  EXPECT_EQ(Sh("alice", "heka fs checkservers -fast").output, "All servers are running.\n");
  EXPECT_TRUE(WaitFor([&] { return Sh("alice", "ls " + P("")).exit_code == 0; }, seconds(20)));
  auto unknown = Sh("alice", "heka fs checkservers -cell no-such-cell");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "heka fs checkservers: not found: no such cell 'no-such-cell'\n");
}

}  // namespace
}  // namespace heka::cm

// A real heka-fileserver with the real KDC and DB server: every file RPC and its errors, the
// ACL matrix, callback breaks, forged FIDs, a stopped callback holder, a full partition, and
// the write amplification of a small store into a huge file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "tests/support/frame_proxy.h"
#include "tests/support/fs_cell.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::fs {
namespace {

using testing::SharedRealm;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint32_t kR = 1, kW = 2, kI = 4, kL = 8, kD = 16, kK = 32, kA = 64;
constexpr int64_t kAdmins = -204, kAuthUser = -102;
constexpr const char* kFile = "heka.fileserver.File.";

// One cell for the whole binary: a DB member, one file server, cells acme and globex.
struct World {
  std::unique_ptr<testing::FsCell> cell;
  std::string small_partition;  // an 8 MiB tmpfs, the server's second partition
  std::map<std::string, std::string> cc;  // user -> ccache
  std::map<std::string, int64_t> id;      // "acme/alice" -> PTDB id
  rpc::Runtime runtime{{2, 2}};
  std::unique_ptr<db::DbClient> db;  // as the provider administrator

  ~World() {
    db.reset();
    cell.reset();
    if (!small_partition.empty()) umount2(small_partition.c_str(), MNT_DETACH);
  }
};

Result<db::CommandResult> Write(World& w, db::Command cmd) {
  return w.runtime.BlockOn(w.db->Write(std::move(cmd)));
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
    for (const char* user : {"admin", "acmeadm", "alice", "bob", "carol"}) {
      EXPECT_TRUE(realm.AddUser(user, std::string(user) + "-pw").ok());
      w->cc[user] = realm.NewCcachePath(user);
      EXPECT_TRUE(realm.Kinit(user, std::string(user) + "-pw", w->cc[user]).ok());
    }
    w->small_partition = realm.dir() + "/small";
    std::filesystem::create_directories(w->small_partition);
    EXPECT_EQ(mount("tmpfs", w->small_partition.c_str(), "tmpfs", 0, "size=8m"), 0)
        << "mounting a tmpfs needs root: " << std::strerror(errno);
    testing::FsCellOptions o;
    o.provider_admins = {"admin@HEKA.TEST"};
    o.extra_partitions = {w->small_partition};
    auto cell = testing::FsCell::Create(realm, o, w->cc["admin"]);
    EXPECT_TRUE(cell.ok()) << cell.status().ToString();
    w->cell = std::move(*cell);
    Status started = w->cell->StartFileServerAndWait(1);
    EXPECT_TRUE(started.ok()) << started.ToString();
    db::DbClientOptions dbo;
    dbo.members = *db::ParseMembers(w->cell->db().dbservers());
    dbo.credentials.ccache = "FILE:" + w->cc["admin"];
    dbo.prefer_leader_reads = true;
    w->db = std::make_unique<db::DbClient>(w->runtime, dbo);
    for (const char* c : {"acme", "globex"}) {
      db::Command cmd;
      cmd.mutable_create_cell()->set_name(c);
      cmd.mutable_create_cell()->add_realms("HEKA.TEST");
      auto r = Write(*w, cmd);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
    }
    auto user = [&](const std::string& cell, const std::string& name) {
      db::Command cmd;
      cmd.mutable_create_user()->set_cell(cell);
      cmd.mutable_create_user()->set_principal(name + "@HEKA.TEST");
      auto r = Write(*w, cmd);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      w->id[cell + "/" + name] = r.ok() ? r->id() : 0;
    };
    user("acme", "acmeadm");
    user("acme", "alice");
    user("acme", "bob");
    user("globex", "carol");
    db::Command admin;
    admin.mutable_add_member()->set_cell("acme");
    admin.mutable_add_member()->set_user("acmeadm");
    admin.mutable_add_member()->set_group("system:administrators");
    EXPECT_TRUE(Write(*w, admin).ok());
    db::Command staff;
    staff.mutable_create_group()->set_cell("acme");
    staff.mutable_create_group()->set_name("staff");
    auto g = Write(*w, staff);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    w->id["acme/staff"] = g.ok() ? g->id() : 0;
    return w;
  }();
  return *g_world;
}

std::shared_ptr<FileClient> ClientAs(const std::string& user, std::string uuid = "",
                                     std::function<void(const pb::BreakRequest&)> on_break = {},
                                     std::function<void()> on_revalidate = {}) {
  World& w = TheWorld();
  FileClientOptions o;
  o.address = w.cell->fs_address(1);
  o.server_principal = w.cell->fs_principal(1);
  o.credentials.ccache = "FILE:" + w.cc.at(user);
  o.client_uuid = std::move(uuid);
  o.on_break = std::move(on_break);
  o.on_revalidate = std::move(on_revalidate);
  return FileClient::Create(w.runtime, o);
}

// A new RW volume of `cell` on the file server; returns its root FID.
pb::Fid MakeVolume(const std::string& cell, const std::string& name, uint64_t quota = 0,
                   std::string partition = "") {
  World& w = TheWorld();
  if (partition.empty()) partition = w.cell->fs_partition(1);
  db::Command cmd;
  db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
  v->set_name(name);
  v->set_cell(cell);
  v->set_quota_bytes(quota);
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(w.cell->fs_uuid(1));
  site->set_partition(partition);
  auto r = Write(w, cmd);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  pb::CreateVolumeRequest req;
  req.set_cell(cell);
  req.set_id(r.ok() ? static_cast<uint64_t>(r->id()) : 0);
  auto made = ClientAs("admin")->CallSync<pb::CreateVolumeReply>(
      "heka.fileserver.VolumeServer.CreateVolume", req);
  EXPECT_TRUE(made.ok()) << made.status().ToString() << "\n" << w.cell->LogTail(1);
  pb::Fid root;
  root.set_cell(cell);
  root.set_volume(req.id());
  root.set_vnode(1);
  root.set_uniq(1);
  return root;
}

// Thin synchronous wrappers over the File service.
struct Fs {
  std::shared_ptr<FileClient> c;

  template <typename Rep, typename Req>
  Result<Rep> Call(const std::string& method, const Req& req) {
    return c->CallSync<Rep>(kFile + method, req);
  }
  Result<pb::CreateReply> Create(const pb::Fid& dir, const std::string& name,
                                 const std::string& kind = "CreateFile", uint32_t mode = 0,
                                 const std::string& target = "") {
    pb::CreateRequest req;
    *req.mutable_dir() = dir;
    req.set_name(name);
    req.set_mode(mode);
    req.set_target(target);
    return Call<pb::CreateReply>(kind, req);
  }
  Result<pb::Fid> File(const pb::Fid& dir, const std::string& name, uint32_t mode = 0) {
    auto r = Create(dir, name, "CreateFile", mode);
    if (!r.ok()) return r.status();
    return r->status().fid();
  }
  Result<pb::LookupReply> Lookup(const pb::Fid& dir, const std::string& name) {
    pb::LookupRequest req;
    *req.mutable_dir() = dir;
    req.set_name(name);
    return Call<pb::LookupReply>("Lookup", req);
  }
  Result<pb::FetchStatusReply> Stat(const pb::Fid& fid) {
    pb::FetchStatusRequest req;
    *req.mutable_fid() = fid;
    return Call<pb::FetchStatusReply>("FetchStatus", req);
  }
  Result<std::string> Read(const pb::Fid& fid, uint64_t offset = 0, uint64_t len = 64 << 20) {
    pb::FetchDataRequest req;
    *req.mutable_fid() = fid;
    req.set_offset(offset);
    req.set_length(len);
    auto r = Call<pb::FetchDataReply>("FetchData", req);
    if (!r.ok()) return r.status();
    return r->data();
  }
  // A whole store transaction: writes `data` at `offset`, then commits with `size`.
  Result<pb::FileStatus> Store(const pb::Fid& fid, const std::string& data, uint64_t offset = 0,
                               std::optional<uint64_t> size = std::nullopt) {
    pb::BeginStoreRequest begin;
    *begin.mutable_fid() = fid;
    auto b = Call<pb::BeginStoreReply>("BeginStore", begin);
    if (!b.ok()) return b.status();
    pb::StoreDataRequest put;
    put.set_store_id(b->store_id());
    put.set_offset(offset);
    put.set_data(data);
    auto p = Call<pb::StoreDataReply>("StoreData", put);
    if (!p.ok()) return p.status();
    pb::CommitStoreRequest commit;
    commit.set_store_id(b->store_id());
    commit.set_size(size ? *size : std::max<uint64_t>(b->status().size(), offset + data.size()));
    auto c = Call<pb::CommitStoreReply>("CommitStore", commit);
    if (!c.ok()) return c.status();
    return c->status();
  }
  Status Remove(const pb::Fid& dir, const std::string& name, bool is_dir = false) {
    pb::RemoveRequest req;
    *req.mutable_dir() = dir;
    req.set_name(name);
    auto r = Call<pb::RemoveReply>(is_dir ? "RemoveDir" : "Remove", req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status Rename(const pb::Fid& src, const std::string& a, const pb::Fid& dst, const std::string& b) {
    pb::RenameRequest req;
    *req.mutable_src_dir() = src;
    req.set_src_name(a);
    *req.mutable_dst_dir() = dst;
    req.set_dst_name(b);
    auto r = Call<pb::RenameReply>("Rename", req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status Link(const pb::Fid& dir, const std::string& name, const pb::Fid& target) {
    pb::LinkRequest req;
    *req.mutable_dir() = dir;
    req.set_name(name);
    *req.mutable_target() = target;
    auto r = Call<pb::CreateReply>("Link", req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status SetAcl(const pb::Fid& dir, const std::vector<std::tuple<int64_t, uint32_t, bool>>& acl) {
    pb::StoreAclRequest req;
    *req.mutable_dir() = dir;
    for (auto [who, rights, negative] : acl) {
      auto* e = req.add_entries();
      e->set_principal(who);
      e->set_rights(rights);
      e->set_negative(negative);
    }
    auto r = Call<pb::StoreAclReply>("StoreAcl", req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Result<pb::FileStatus> SetAttr(pb::SetAttrRequest req) {
    auto r = Call<pb::SetAttrReply>("SetAttr", req);
    if (!r.ok()) return r.status();
    return r->status();
  }
  // Every name in `dir`, read in pages of `page`.
  Result<std::vector<std::string>> ListAll(const pb::Fid& dir, uint32_t page) {
    std::vector<std::string> names;
    std::string after;
    for (;;) {
      pb::ListDirRequest req;
      *req.mutable_dir() = dir;
      req.set_after(after);
      req.set_limit(page);
      auto r = Call<pb::ListDirReply>("ListDir", req);
      if (!r.ok()) return r.status();
      for (const auto& e : r->entries()) names.push_back(e.name());
      if (r->entries_size() > 0) after = r->entries(r->entries_size() - 1).name();
      if (r->done()) return names;
    }
  }
};

Fs As(const std::string& user) { return Fs{ClientAs(user)}; }

Code CodeOf(const Status& s) { return s.code(); }
template <typename T>
Code CodeOf(const Result<T>& r) {
  return r.status().code();
}

// ---------------------------------------------------------------------------------------------

TEST(FileServerTest, EveryFileOperationAndItsErrors) {
  pb::Fid root = MakeVolume("acme", "ops");
  pb::Fid other_root = MakeVolume("acme", "ops2");
  Fs adm = As("acmeadm");

  auto st = adm.Stat(root);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->status().type(), pb::DIRECTORY);
  EXPECT_EQ(st->status().caller_rights(), 127u) << "a cell administrator has all rights here";
  EXPECT_EQ(st->status().anyuser_rights(), 0u);

  // Create, exists, store, read back.
  auto a = adm.File(root, "a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(CodeOf(adm.File(root, "a")), Code::kAlreadyExists);
  auto stored = adm.Store(*a, "hello world");
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->size(), 11u);
  EXPECT_EQ(*adm.Read(*a), "hello world");
  EXPECT_EQ(*adm.Read(*a, 6, 3), "wor");
  EXPECT_EQ(CodeOf(adm.Lookup(root, "nope")), Code::kNotFound);
  auto looked = adm.Lookup(root, "a");
  ASSERT_TRUE(looked.ok());
  EXPECT_EQ(looked->status().fid().vnode(), a->vnode());
  EXPECT_EQ(looked->status().data_version(), stored->data_version());

  // Truncate and extend through SetAttr; chmod.
  pb::SetAttrRequest set;
  *set.mutable_fid() = *a;
  set.set_size(5);
  set.set_mode(0600);
  auto after = adm.SetAttr(set);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->mode(), 0600u);
  EXPECT_EQ(*adm.Read(*a), "hello");

  // Directories: ENOTEMPTY, ENOTDIR, rmdir.
  auto d = adm.Create(root, "d", "MakeDir");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  pb::Fid dir = d->status().fid();
  ASSERT_TRUE(adm.File(dir, "x").ok());
  EXPECT_EQ(CodeOf(adm.Remove(root, "d", true)), Code::kNotEmpty);
  EXPECT_EQ(CodeOf(adm.Remove(root, "d")), Code::kIsDirectory);
  EXPECT_EQ(CodeOf(adm.Remove(root, "a", true)), Code::kNotDirectory);
  EXPECT_EQ(CodeOf(adm.Create(*a, "under-a")), Code::kNotDirectory);
  EXPECT_TRUE(adm.Remove(dir, "x").ok());
  EXPECT_TRUE(adm.Remove(root, "d", true).ok());
  EXPECT_EQ(CodeOf(adm.Remove(root, "d", true)), Code::kNotFound);

  // Symlinks read back their target.
  auto s = adm.Create(root, "s", "Symlink", 0, "a");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->status().type(), pb::SYMLINK);
  EXPECT_EQ(*adm.Read(s->status().fid()), "a");

  // Hard links: same directory only (EXDEV otherwise), and never to a directory.
  ASSERT_TRUE(adm.Link(root, "a2", *a).ok());
  EXPECT_EQ(adm.Stat(*a)->status().link_count(), 2u);
  auto d2 = adm.Create(root, "d2", "MakeDir");
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(CodeOf(adm.Link(d2->status().fid(), "a3", *a)), Code::kCrossDevice);
  EXPECT_EQ(CodeOf(adm.Link(root, "d2link", d2->status().fid())), Code::kIsDirectory);
  EXPECT_EQ(CodeOf(adm.Link(other_root, "a4", *a)), Code::kCrossDevice);

  // Rename within the volume, EXDEV across volumes, replacing a file.
  ASSERT_TRUE(adm.Rename(root, "a2", root, "b").ok());
  EXPECT_EQ(CodeOf(adm.Lookup(root, "a2")), Code::kNotFound);
  EXPECT_EQ(adm.Lookup(root, "b")->status().fid().vnode(), a->vnode());
  auto c = adm.File(root, "c");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(adm.Store(*c, "see").ok());
  EXPECT_EQ(CodeOf(adm.Rename(root, "c", other_root, "c")), Code::kCrossDevice);
  ASSERT_TRUE(adm.Rename(root, "c", root, "b").ok());
  EXPECT_EQ(*adm.Read(adm.Lookup(root, "b")->status().fid()), "see");
  EXPECT_EQ(adm.Stat(*a)->status().link_count(), 1u);

  // Names are opaque bytes (an encrypted volume's are raw AES-SIV output): 1024 bytes of
  // anything, '/' and NUL included, are fine, 1025 are ENAMETOOLONG; "", "." and ".." are not
  // names. A miss on a binary name is a plain kNotFound: the reply's message is escaped.
  std::string binary_name(1024, '\xff');
  EXPECT_TRUE(adm.File(root, binary_name).ok());
  EXPECT_EQ(CodeOf(adm.File(root, std::string(1025, 'n'))), Code::kNameTooLong);
  std::string slashed("a/b\0\xff", 5);
  auto made = adm.File(root, slashed);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(adm.Lookup(root, slashed)->status().fid().vnode(), made->vnode());
  auto missing = adm.Lookup(root, std::string("a/b\0\xfe", 5));
  EXPECT_EQ(CodeOf(missing), Code::kNotFound) << missing.status().ToString();
  ASSERT_TRUE(adm.Remove(root, slashed).ok());
  EXPECT_EQ(CodeOf(adm.File(root, "..")), Code::kInvalidArgument);

  // A deleted file's FID is stale; a file still linked is not.
  ASSERT_TRUE(adm.Remove(root, "b").ok());
  EXPECT_EQ(CodeOf(adm.Stat(*c)), Code::kNotFound);
  pb::Fid wrong_uniq = *a;
  wrong_uniq.set_uniq(a->uniq() + 1000);
  EXPECT_EQ(CodeOf(adm.Stat(wrong_uniq)), Code::kStaleFid);

  // BulkStatus answers per FID.
  pb::BulkStatusRequest bulk;
  *bulk.add_fids() = root;
  *bulk.add_fids() = *c;
  *bulk.add_fids() = *a;
  auto many = adm.Call<pb::BulkStatusReply>("BulkStatus", bulk);
  ASSERT_TRUE(many.ok());
  ASSERT_EQ(many->items_size(), 3);
  EXPECT_EQ(many->items(0).code(), 0u);
  EXPECT_EQ(many->items(0).status().type(), pb::DIRECTORY);
  EXPECT_EQ(many->items(1).code(), static_cast<uint32_t>(Code::kNotFound));
  EXPECT_EQ(many->items(2).status().fid().vnode(), a->vnode());

  // ACLs round-trip.
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL, false}}).ok());
  pb::FetchAclRequest getacl;
  *getacl.mutable_dir() = root;
  auto acl = adm.Call<pb::FetchAclReply>("FetchAcl", getacl);
  ASSERT_TRUE(acl.ok());
  ASSERT_EQ(acl->entries_size(), 2);
  EXPECT_EQ(CodeOf(adm.SetAcl(root, {{kAdmins, 1024, false}})), Code::kInvalidArgument);

  // Volume status, quota, EDQUOT with nothing partial written.
  pb::GetVolumeStatusRequest vs;
  vs.set_cell("acme");
  vs.set_volume(root.volume());
  auto vstat = adm.Call<pb::GetVolumeStatusReply>("GetVolumeStatus", vs);
  ASSERT_TRUE(vstat.ok()) << vstat.status().ToString();
  EXPECT_EQ(vstat->status().name(), "ops");
  EXPECT_EQ(vstat->root().vnode(), 1u);
  pb::SetQuotaRequest quota;
  quota.set_cell("acme");
  quota.set_volume(root.volume());
  quota.set_quota_bytes(vstat->status().usage_bytes() + 1000);
  ASSERT_TRUE(adm.Call<pb::SetQuotaReply>("SetQuota", quota).ok());
  auto big = adm.File(root, "big");
  ASSERT_TRUE(big.ok());
  ASSERT_TRUE(adm.Store(*big, std::string(900, 'q')).ok());
  EXPECT_EQ(CodeOf(adm.Store(*big, std::string(5000, 'z'))), Code::kQuotaExceeded);
  EXPECT_EQ(*adm.Read(*big), std::string(900, 'q')) << "a refused store changes nothing";
  EXPECT_EQ(CodeOf(As("alice").Call<pb::SetQuotaReply>("SetQuota", quota)),
            Code::kPermissionDenied);
  quota.set_quota_bytes(0);
  ASSERT_TRUE(adm.Call<pb::SetQuotaReply>("SetQuota", quota).ok());

  // CreateFile with data, and an aborted store that changes nothing.
  pb::CreateRequest with_data;
  *with_data.mutable_dir() = root;
  with_data.set_name("small");
  with_data.set_data("tiny content");
  auto small = adm.Call<pb::CreateReply>("CreateFile", with_data);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->status().size(), 12u);
  EXPECT_EQ(*adm.Read(small->status().fid()), "tiny content");
  pb::BeginStoreRequest begin;
  *begin.mutable_fid() = small->status().fid();
  auto b = adm.Call<pb::BeginStoreReply>("BeginStore", begin);
  ASSERT_TRUE(b.ok());
  pb::StoreDataRequest put;
  put.set_store_id(b->store_id());
  put.set_data("overwritten?");
  ASSERT_TRUE(adm.Call<pb::StoreDataReply>("StoreData", put).ok());
  // A store belongs to the connection that began it.
  EXPECT_EQ(CodeOf(As("acmeadm").Call<pb::StoreDataReply>("StoreData", put)), Code::kNotFound);
  pb::AbortStoreRequest abort;
  abort.set_store_id(b->store_id());
  ASSERT_TRUE(adm.Call<pb::AbortStoreReply>("AbortStore", abort).ok());
  EXPECT_EQ(*adm.Read(small->status().fid()), "tiny content");
  pb::CommitStoreRequest late;
  late.set_store_id(b->store_id());
  EXPECT_EQ(CodeOf(adm.Call<pb::CommitStoreReply>("CommitStore", late)), Code::kNotFound);

  // The client attribute is opaque and kept.
  pb::SetAttrRequest attr;
  *attr.mutable_fid() = small->status().fid();
  attr.set_client_attr(std::string("\0\1key-id", 8));
  auto with_attr = adm.SetAttr(attr);
  ASSERT_TRUE(with_attr.ok());
  EXPECT_EQ(adm.Stat(small->status().fid())->status().client_attr(), std::string("\0\1key-id", 8));

  // An offline volume says so to those who may see it; online again, it serves.
  pb::SetVolumeOnlineRequest offline;
  offline.set_cell("acme");
  offline.set_id(root.volume());
  offline.set_online(false);
  ASSERT_TRUE(adm.c->CallSync<pb::SetVolumeOnlineReply>("heka.fileserver.VolumeServer.SetOnline",
                                                        offline)
                  .ok());
  EXPECT_EQ(CodeOf(adm.Stat(root)), Code::kVolumeOffline);
  offline.set_online(true);
  ASSERT_TRUE(adm.c->CallSync<pb::SetVolumeOnlineReply>("heka.fileserver.VolumeServer.SetOnline",
                                                        offline)
                  .ok());
  EXPECT_TRUE(adm.Stat(root).ok());
}

TEST(FileServerTest, LargeDirectoryListsInPagesWhileItChanges) {
  pb::Fid root = MakeVolume("acme", "pages");
  Fs adm = As("acmeadm");
  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    std::string name = "f" + std::to_string(1000 + i);
    ASSERT_TRUE(adm.File(root, name).ok());
    if (i % 3 != 0) expected.insert(name);  // every third one is deleted during the listing
  }
  std::vector<std::string> seen;
  std::string after;
  int step = 0;
  for (;;) {
    pb::ListDirRequest req;
    *req.mutable_dir() = root;
    req.set_after(after);
    req.set_limit(7);
    auto r = adm.Call<pb::ListDirReply>("ListDir", req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const auto& e : r->entries()) seen.push_back(e.name());
    if (r->entries_size() > 0) after = r->entries(r->entries_size() - 1).name();
    // Churn between pages: delete the "touched" third, create new names everywhere.
    for (int k = 0; k < 3 && step < 100; ++k, ++step) {
      ASSERT_TRUE(adm.Remove(root, "f" + std::to_string(1000 + 3 * step)).ok());
      ASSERT_TRUE(adm.File(root, "g" + std::to_string(step)).ok());
    }
    if (r->done()) break;
  }
  std::map<std::string, int> count;
  for (const auto& n : seen) ++count[n];
  for (const auto& n : expected) EXPECT_EQ(count[n], 1) << n << " must appear exactly once";
}

// ---------------------------------------------------------------------------------------------

// For each single right granted to alice: which operations succeed. AFS semantics.
TEST(FileServerTest, AclMatrixGrantsExactlyWhatAfsGrants) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "matrix");
  Fs adm = As("acmeadm");
  Fs alice = As("alice");
  int64_t alice_id = w.id.at("acme/alice");

  struct Right {
    const char* name;
    uint32_t bits;
  };
  const std::vector<Right> rights = {{"r", kR}, {"l", kL}, {"i", kI}, {"d", kD},
                                     {"w", kW}, {"k", kK}, {"a", kA}};
  // op -> the rights of which any one suffices
  const std::vector<std::pair<std::string, uint32_t>> ops = {
      {"FetchStatus", kL}, {"Lookup", kL}, {"ListDir", kL},  {"FetchData", kR},
      {"StoreData", kW},   {"CreateFile", kI}, {"MakeDir", kI}, {"Remove", kD},
      {"FetchAcl", kL | kA}, {"StoreAcl", kA}};
  int n = 0;
  for (const Right& right : rights) {
    for (const auto& [op, needed] : ops) {
      ++n;
      std::string dname = "d" + std::to_string(n);
      auto d = adm.Create(root, dname, "MakeDir");
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      pb::Fid dir = d->status().fid();
      auto f = adm.File(dir, "f", 0644);
      ASSERT_TRUE(f.ok());
      ASSERT_TRUE(adm.Store(*f, "data").ok());
      ASSERT_TRUE(adm.SetAcl(dir, {{kAdmins, 127, false}, {alice_id, right.bits, false}}).ok());
      Status result;
      if (op == "FetchStatus") result = alice.Stat(*f).status();
      if (op == "Lookup") result = alice.Lookup(dir, "f").status();
      if (op == "ListDir") result = alice.ListAll(dir, 10).status();
      if (op == "FetchData") result = alice.Read(*f).status();
      if (op == "StoreData") result = alice.Store(*f, "new").status();
      if (op == "CreateFile") result = alice.File(dir, "new").status();
      if (op == "MakeDir") result = alice.Create(dir, "newdir", "MakeDir").status();
      if (op == "Remove") result = alice.Remove(dir, "f");
      if (op == "FetchAcl") {
        pb::FetchAclRequest req;
        *req.mutable_dir() = dir;
        result = alice.Call<pb::FetchAclReply>("FetchAcl", req).status();
      }
      if (op == "StoreAcl") result = alice.SetAcl(dir, {{kAdmins, 127, false}, {alice_id, 127, false}});
      bool allowed = (right.bits & needed) != 0;
      if (allowed) {
        EXPECT_TRUE(result.ok()) << op << " with only '" << right.name << "': " << result.ToString();
      } else {
        EXPECT_EQ(result.code(), Code::kPermissionDenied)
            << op << " with only '" << right.name << "': " << result.ToString();
      }
    }
  }
}

TEST(FileServerTest, NegativeEntriesModeBitsOwnersAndGroupChanges) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "neg");
  Fs adm = As("acmeadm");
  Fs alice = As("alice");
  Fs bob = As("bob");
  int64_t alice_id = w.id.at("acme/alice");
  int64_t staff = w.id.at("acme/staff");
  auto f = adm.File(root, "f");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(adm.Store(*f, "secret").ok());

  // A negative entry for alice overrides the positive one she gets through system:authuser.
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL, false},
                                {alice_id, kR, true}}).ok());
  EXPECT_EQ(CodeOf(alice.Read(*f)), Code::kPermissionDenied);
  EXPECT_TRUE(bob.Read(*f).ok());
  auto st = alice.Stat(*f);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->status().caller_rights(), kL) << "the reported rights follow the negative entry";
  EXPECT_EQ(bob.Stat(*f)->status().caller_rights(), kR | kL);

  // The owner's mode bits apply to everyone, as in AFS.
  pb::SetAttrRequest chmod;
  *chmod.mutable_fid() = *f;
  chmod.set_mode(0200);
  ASSERT_TRUE(adm.SetAttr(chmod).ok());
  EXPECT_EQ(CodeOf(bob.Read(*f)), Code::kPermissionDenied);
  EXPECT_EQ(bob.Stat(*f)->status().caller_rights(), kL);

  // A drop box: with i (and l) alone, alice creates a file and may still write her own file,
  // but not read or write anyone else's.
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {alice_id, kI | kL, false}}).ok());
  auto mine = alice.File(root, "mine");
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_TRUE(alice.Store(*mine, "dropped").ok());
  EXPECT_EQ(CodeOf(alice.Store(*f, "x")), Code::kPermissionDenied);

  // Only a cell administrator gives a file away.
  pb::SetAttrRequest chown;
  *chown.mutable_fid() = *mine;
  chown.set_owner(w.id.at("acme/bob"));
  EXPECT_EQ(CodeOf(alice.SetAttr(chown)), Code::kPermissionDenied);
  EXPECT_TRUE(adm.SetAttr(chown).ok());

  // Group membership changes take effect within seconds.
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {staff, kR | kL, false}}).ok());
  chmod.set_mode(0644);
  ASSERT_TRUE(adm.SetAttr(chmod).ok());
  EXPECT_EQ(CodeOf(alice.Read(*f)), Code::kPermissionDenied);
  db::Command add;
  add.mutable_add_member()->set_cell("acme");
  add.mutable_add_member()->set_user("alice");
  add.mutable_add_member()->set_group("staff");
  ASSERT_TRUE(Write(w, add).ok());
  auto t0 = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return alice.Read(*f).ok(); }, seconds(10)))
      << "adding alice to staff never took effect";
  auto granted_after = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  db::Command remove;
  remove.mutable_remove_member()->set_cell("acme");
  remove.mutable_remove_member()->set_user("alice");
  remove.mutable_remove_member()->set_group("staff");
  ASSERT_TRUE(Write(w, remove).ok());
  t0 = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return CodeOf(alice.Read(*f)) == Code::kPermissionDenied; }, seconds(10)))
      << "removing alice from staff never took effect";
  auto revoked_after = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  std::printf("group change took effect after %lld ms (add), %lld ms (remove)\n",
              static_cast<long long>(granted_after.count()),
              static_cast<long long>(revoked_after.count()));
  EXPECT_LT(revoked_after, seconds(5));
}

// ---------------------------------------------------------------------------------------------

TEST(FileServerTest, ForgedFidsOfAnotherCellGetOnlyPermissionErrors) {
  pb::Fid groot = MakeVolume("globex", "gsecret");
  Fs alice = As("alice");
  std::set<std::string> messages;
  auto expect_denied = [&](const Status& s, const std::string& what) {
    EXPECT_EQ(s.code(), Code::kPermissionDenied) << what << ": " << s.ToString();
    messages.insert(s.message());
  };
  for (const char* cell : {"acme", "globex", "", "nosuchcell"}) {
    for (uint64_t volume : {groot.volume(), groot.volume() + 1, groot.volume() + 7, uint64_t{99999}}) {
      for (uint64_t vnode : {1, 2, 3, 17}) {
        for (uint64_t uniq : {1, 2, 5}) {
          pb::Fid f;
          f.set_cell(cell);
          f.set_volume(volume);
          f.set_vnode(vnode);
          f.set_uniq(uniq);
          std::string what = std::string(cell) + "/" + std::to_string(volume) + "." +
                             std::to_string(vnode) + "." + std::to_string(uniq);
          expect_denied(alice.Stat(f).status(), "FetchStatus " + what);
          expect_denied(alice.Read(f).status(), "FetchData " + what);
          expect_denied(alice.File(f, "planted").status(), "CreateFile " + what);
          expect_denied(alice.Store(f, "x").status(), "Store " + what);
          expect_denied(alice.SetAcl(f, {{kAuthUser, 127, false}}), "StoreAcl " + what);
        }
      }
      pb::GetVolumeStatusRequest vs;
      vs.set_cell(cell);
      vs.set_volume(volume);
      expect_denied(alice.Call<pb::GetVolumeStatusReply>("GetVolumeStatus", vs).status(),
                    "GetVolumeStatus");
    }
  }
  EXPECT_EQ(messages.size(), 1u) << "every refusal must read the same";
}

// ---------------------------------------------------------------------------------------------

struct Holder {
  std::atomic<int> breaks{0};
  std::atomic<int> all{0};
  std::shared_ptr<FileClient> client;
};

std::unique_ptr<Holder> HolderAs(const std::string& user, const std::string& uuid) {
  auto h = std::make_unique<Holder>();
  Holder* raw = h.get();
  h->client = ClientAs(
      user, uuid,
      [raw](const pb::BreakRequest& b) {
        if (b.all()) ++raw->all;
        raw->breaks += b.fids_size();
      },
      {});
  return h;
}

TEST(FileServerTest, HoldersGetTheBreakBeforeTheChangeReturns) {
  pb::Fid root = MakeVolume("acme", "breaks");
  Fs adm = As("acmeadm");
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL | kI | kW | kD, false}}).ok());
  auto f = adm.File(root, "shared");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(adm.Store(*f, "v1").ok());

  auto alice = HolderAs("alice", "cm-alice");
  auto bob = HolderAs("bob", "cm-bob");
  Fs a{alice->client}, b{bob->client};
  auto fetched = a.Call<pb::FetchDataReply>("FetchData", [&] {
    pb::FetchDataRequest r;
    *r.mutable_fid() = *f;
    r.set_length(100);
    return r;
  }());
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_GT(fetched->callback().expires_ns(), 0) << "a cache manager gets a promise";
  ASSERT_TRUE(b.Read(*f).ok());
  ASSERT_TRUE(a.ListAll(root, 100).ok());

  // bob changes the file: alice's break has arrived when bob's store returns; bob gets none.
  ASSERT_TRUE(b.Store(*f, "v2").ok());
  EXPECT_EQ(alice->breaks.load(), 1) << "alice's break must arrive before bob's call returns";
  EXPECT_EQ(bob->breaks.load(), 0) << "the changer is not broken";
  EXPECT_EQ(*a.Read(*f), "v2");

  // A directory change breaks the directory's holders too.
  int before = alice->breaks.load();
  ASSERT_TRUE(b.File(root, "new").ok());
  EXPECT_EQ(alice->breaks.load(), before + 1);

  // A promise is broken once: a second change without a fetch sends nothing.
  before = alice->breaks.load();
  ASSERT_TRUE(b.Store(*f, "v3").ok());
  ASSERT_TRUE(b.Store(*f, "v4").ok());
  EXPECT_EQ(alice->breaks.load(), before + 1);

  // A CLI-style client (no Hello) gets no promise.
  pb::FetchStatusRequest req;
  *req.mutable_fid() = *f;
  auto plain = adm.Call<pb::FetchStatusReply>("FetchStatus", req);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->callback().expires_ns(), 0);
}

// A holder frozen with SIGSTOP holds up a writer for at most the bound, then is dropped; after
// SIGCONT it revalidates and sees the new data.
TEST(FileServerTest, StoppedHolderDoesNotHoldUpWritersAndRevalidatesAfterwards) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "frozen");
  Fs adm = As("acmeadm");
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL | kW, false}}).ok());
  auto f = adm.File(root, "f");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(adm.Store(*f, "version-1").ok());

  std::string out = SharedRealm().dir() + "/holder.out";
  pid_t holder = testing::Spawn(
      {testing::BinDir() + "/heka_fs_holder", "--address", w.cell->fs_address(1), "--principal",
       w.cell->fs_principal(1), "--ccache", w.cc.at("alice"), "--cell", "acme", "--volume",
       std::to_string(f->volume()), "--vnode", std::to_string(f->vnode()), "--uniq",
       std::to_string(f->uniq()), "--out", out});
  ASSERT_GT(holder, 0);
  auto saw = [&](const std::string& text) {
    std::ifstream in(out);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.find(text) != std::string::npos;
  };
  ASSERT_TRUE(WaitFor([&] { return saw("data version-1"); }, seconds(20))) << "holder never read";

  kill(holder, SIGSTOP);
  Fs bob = As("bob");
  auto t0 = Clock::now();
  ASSERT_TRUE(bob.Store(*f, "version-2").ok());
  auto first = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  t0 = Clock::now();
  ASSERT_TRUE(bob.Store(*f, "version-3").ok());
  auto second = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  std::printf("stores with a stopped holder: %lld ms, then %lld ms (bound %d ms)\n",
              static_cast<long long>(first.count()), static_cast<long long>(second.count()), 1000);
  EXPECT_LT(first, milliseconds(2500)) << "the bound is about a second";
  EXPECT_LT(second, milliseconds(900)) << "a dropped holder holds up nobody";

  kill(holder, SIGCONT);
  EXPECT_TRUE(WaitFor([&] { return saw("data version-3"); }, seconds(20)))
      << "after SIGCONT the holder must revalidate and see the new data";
  testing::KillChild(holder);
}

// ---------------------------------------------------------------------------------------------

TEST(FileServerTest, FullPartitionFailsCleanlyAndKeepsWhatWasStored) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "small", 0, w.small_partition);
  Fs adm = As("acmeadm");
  std::vector<std::pair<pb::Fid, std::string>> stored;
  Status failure;
  for (int i = 0; i < 20 && failure.ok(); ++i) {
    auto f = adm.File(root, "f" + std::to_string(i));
    if (!f.ok()) {
      failure = f.status();
      break;
    }
    std::string content(1 << 20, static_cast<char>('a' + i));
    auto s = adm.Store(*f, content);
    if (s.ok()) {
      stored.emplace_back(*f, content);
    } else {
      failure = s.status();
      // The refused store left the file as it was (empty).
      auto now = adm.Read(*f);
      ASSERT_TRUE(now.ok()) << now.status().ToString();
      EXPECT_EQ(now->size(), 0u);
    }
  }
  EXPECT_EQ(failure.code(), Code::kNoSpace) << failure.ToString();
  EXPECT_GE(stored.size(), 3u);
  for (const auto& [fid, content] : stored) {
    auto back = adm.Read(fid);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == content) << "file " << fid.vnode() << " changed";
  }
  // The server is still fine: removing a file frees space for a new store.
  ASSERT_TRUE(adm.Remove(root, "f0").ok());
  auto again = adm.File(root, "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(adm.Store(*again, std::string(100000, 'x')).ok());
}

// The write(2) bytes of the server process (wchar), including its sockets and SQLite.
uint64_t WrittenBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  for (std::string key; in >> key;) {
    uint64_t value = 0;
    in >> value;
    if (key == "wchar:") return value;
  }
  return 0;
}

TEST(FileServerTest, SmallStoreIntoHugeFileWritesAtMostTwoChunks) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "huge");
  Fs adm = As("acmeadm");
  auto f = adm.File(root, "huge");
  ASSERT_TRUE(f.ok());
  pb::SetAttrRequest grow;
  *grow.mutable_fid() = *f;
  grow.set_size(1ull << 30);
  ASSERT_TRUE(adm.SetAttr(grow).ok());
  // Fill the region around the target so the store has real old data to merge with.
  std::string chunk(1 << 20, 'o');
  ASSERT_TRUE(adm.Store(*f, chunk, 700ull << 20).ok());

  uint64_t before = WrittenBytes(w.cell->fs_pid(1));
  std::string small(4096, 'N');
  auto st = adm.Store(*f, small, (700ull << 20) + 12345);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  uint64_t written = WrittenBytes(w.cell->fs_pid(1)) - before;
  std::printf("a 4 KiB store into a 1 GiB file wrote %llu bytes\n",
              static_cast<unsigned long long>(written));
  EXPECT_LE(written, 2ull << 20) << "at most two chunks' worth";
  EXPECT_EQ(st->size(), 1ull << 30);
  auto back = adm.Read(*f, (700ull << 20) + 12340, 4106);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, std::string(5, 'o') + small + std::string(5, 'o'));
  EXPECT_EQ(*adm.Read(*f, 5ull << 20, 8), std::string(8, '\0')) << "holes read as zeros";
}

// One store of pieces that do not start on chunk boundaries (an encrypted file's sealed
// chunks), sent in any order, over old content: every piece lands, none is lost to the old
// version of a chunk another piece already completed, and no chunk is written twice.
TEST(FileServerTest, UnalignedPiecesOfOneStoreInAnyOrderAllLand) {
  pb::Fid root = MakeVolume("acme", "pieces");
  Fs adm = As("acmeadm");
  auto f = adm.File(root, "pieces");
  ASSERT_TRUE(f.ok());
  const uint64_t cs = 1 << 20;  // the file server's chunk size
  ASSERT_TRUE(adm.Store(*f, std::string(3 * cs, 'o')).ok());  // old content: whole chunks
  pb::BeginStoreRequest begin;
  *begin.mutable_fid() = *f;
  auto b = adm.Call<pb::BeginStoreReply>("BeginStore", begin);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(b->chunk_size(), cs);
  // Pieces [0, cs + 100), [cs + 100, 2 cs + 200), [2 cs + 200, 3 cs): the later ones first.
  const std::vector<std::pair<uint64_t, uint64_t>> pieces = {
      {2 * cs + 200, cs - 200}, {cs + 100, cs + 100}, {0, cs + 100}};
  std::string expected(3 * cs, '\0');
  char fill = 'a';
  const uint64_t before = WrittenBytes(TheWorld().cell->fs_pid(1));
  for (auto [offset, length] : pieces) {
    pb::StoreDataRequest put;
    put.set_store_id(b->store_id());
    put.set_offset(offset);
    put.set_data(std::string(length, fill));
    expected.replace(offset, length, std::string(length, fill));
    ++fill;
    auto p = adm.Call<pb::StoreDataReply>("StoreData", put);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
  }
  pb::CommitStoreRequest commit;
  commit.set_store_id(b->store_id());
  commit.set_size(3 * cs);
  ASSERT_TRUE(adm.Call<pb::CommitStoreReply>("CommitStore", commit).ok());
  const uint64_t written = WrittenBytes(TheWorld().cell->fs_pid(1)) - before;
  EXPECT_LT(written, 3 * cs + cs / 2) << "each chunk is written once, not again per piece";
  auto back = adm.Read(*f, 0, 3 * cs);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == expected) << "the pieces did not all land";
}

}  // namespace
}  // namespace heka::fs

namespace heka::fs {
namespace {

std::shared_ptr<FileClient> LockerAs(const std::string& user, const std::string& uuid,
                                     const std::string& address = "") {
  World& w = TheWorld();
  FileClientOptions o;
  o.address = address.empty() ? w.cell->fs_address(1) : address;
  o.server_principal = w.cell->fs_principal(1);
  o.credentials.ccache = "FILE:" + w.cc.at(user);
  o.client_uuid = uuid;
  o.call_timeout = milliseconds(2000);
  return FileClient::Create(w.runtime, o);
}

Status LockSync(FileClient& c, const pb::Fid& f, bool exclusive, uint64_t owner,
                uint64_t start = 0, uint64_t length = 0) {
  Status s = TheWorld().runtime.BlockOn(c.Lock(f, exclusive, start, length, owner));
  return s;
}

TEST(FileServerTest, LocksConflictByRangeAndModeAndNeedTheLockRight) {
  pb::Fid root = MakeVolume("acme", "locks");
  Fs adm = As("acmeadm");
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL | kK, false}}).ok());
  auto f = adm.File(root, "f");
  ASSERT_TRUE(f.ok());
  auto alice = LockerAs("alice", "lk-alice");
  auto bob = LockerAs("bob", "lk-bob");
  EXPECT_TRUE(LockSync(*alice, *f, false, 1).ok());
  EXPECT_TRUE(LockSync(*bob, *f, false, 1).ok()) << "shared locks coexist";
  EXPECT_EQ(LockSync(*bob, *f, true, 2).code(), Code::kLockConflict);
  EXPECT_TRUE(TheWorld().runtime.BlockOn(alice->Unlock(*f, 0, 0, 1)).ok());
  EXPECT_TRUE(TheWorld().runtime.BlockOn(bob->Unlock(*f, 0, 0, 1)).ok());
  // Byte ranges: disjoint exclusive ranges coexist, overlapping ones do not.
  EXPECT_TRUE(LockSync(*alice, *f, true, 1, 0, 100).ok());
  EXPECT_TRUE(LockSync(*bob, *f, true, 1, 100, 100).ok());
  EXPECT_EQ(LockSync(*bob, *f, false, 1, 50, 10).code(), Code::kLockConflict);
  // Without k there is no lock.
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL, false}}).ok());
  EXPECT_EQ(LockSync(*bob, *f, false, 3, 500, 1).code(), Code::kPermissionDenied);
  // A client without a UUID (a CLI) cannot hold locks.
  EXPECT_EQ(TheWorld().runtime.BlockOn(ClientAs("bob")->Lock(*f, false, 0, 0, 1)).code(),
            Code::kInvalidArgument);
}

// A holder cut off from the server past its lease loses its lock: another client gets it,
// and the holder learns it lost it (its handle then fails with EIO).
TEST(FileServerTest, HolderCutOffPastItsLeaseLosesTheLock) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "lease");
  Fs adm = As("acmeadm");
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL | kK, false}}).ok());
  auto f = adm.File(root, "f");
  ASSERT_TRUE(f.ok());
  std::string address = w.cell->fs_address(1);
  testing::FrameProxy proxy("127.0.0.1", std::stoi(address.substr(address.rfind(':') + 1)));
  auto alice = LockerAs("alice", "cut-alice", proxy.address());
  auto bob = LockerAs("bob", "cut-bob");
  ASSERT_TRUE(LockSync(*alice, *f, true, 9).ok());
  EXPECT_EQ(LockSync(*bob, *f, true, 1).code(), Code::kLockConflict);
  // While alice keeps renewing, her lock stays well past one lease.
  auto held_until = Clock::now() + milliseconds(4500);
  EXPECT_FALSE(WaitFor([&] { return LockSync(*bob, *f, true, 1).ok(); },
                       std::chrono::duration_cast<milliseconds>(held_until - Clock::now())));
  proxy.set_frozen(true);
  auto t0 = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return LockSync(*bob, *f, true, 1).ok(); }, seconds(20)))
      << "alice's lease never expired";
  std::printf("bob got the lock %lld ms after alice was cut off (lease 3000 ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));
  EXPECT_TRUE(alice->LockState(*f, 9).ok()) << "alice cannot know before she hears back";
  proxy.set_frozen(false);
  EXPECT_TRUE(WaitFor([&] { return alice->LockState(*f, 9).code() == Code::kLockLost; },
                      seconds(30)))
      << "alice must learn that her lock is gone";
}

// Last: it restarts the file server. A holder reclaims its lock in the grace period; nobody
// else gets it meanwhile, nor afterwards.
TEST(FileServerTest, LockSurvivesServerRestartByReclaim) {
  World& w = TheWorld();
  pb::Fid root = MakeVolume("acme", "reclaim");
  Fs adm = As("acmeadm");
  ASSERT_TRUE(adm.SetAcl(root, {{kAdmins, 127, false}, {kAuthUser, kR | kL | kK, false}}).ok());
  auto f = adm.File(root, "f");
  ASSERT_TRUE(f.ok());
  auto alice = LockerAs("alice", "rc-alice");
  auto bob = LockerAs("bob", "rc-bob");
  ASSERT_TRUE(LockSync(*alice, *f, true, 4).ok());
  int64_t epoch = alice->server_epoch_ns();
  // A cache manager holding a promise is told to revalidate by the restarted server.
  std::atomic<int> revalidations{0};
  auto carol = ClientAs("bob", "rc-cache", {}, [&revalidations] { ++revalidations; });
  ASSERT_TRUE(Fs{carol}.Stat(*f).ok());
  int before = revalidations.load();

  w.cell->StopFileServer(1);
  ASSERT_TRUE(w.cell->StartFileServerAndWait(1).ok()) << w.cell->LogTail(1);
  Status during;
  ASSERT_TRUE(WaitFor(
      [&] {
        during = LockSync(*bob, *f, true, 1);  // the first call may meet the old connection
        return during.code() != Code::kUnavailable;
      },
      seconds(10)));
  EXPECT_EQ(during.code(), Code::kLockConflict) << during.ToString();
  ASSERT_TRUE(WaitFor([&] { return alice->server_epoch_ns() != epoch; }, seconds(10)))
      << "alice never reconnected";
  // After the grace period bob is refused because alice holds the lock, not because of grace.
  Status after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after = LockSync(*bob, *f, true, 1);
        return after.message().find("another client") != std::string::npos || after.ok();
      },
      seconds(20)));
  EXPECT_EQ(after.code(), Code::kLockConflict) << "alice's reclaimed lock must hold";
  EXPECT_TRUE(alice->LockState(*f, 4).ok());
  EXPECT_TRUE(WaitFor([&] { return Fs{carol}.Stat(*f).ok(); }, seconds(10)));
  EXPECT_GT(revalidations.load(), before) << "the lost connection and the restarted server ask for revalidation";
  EXPECT_TRUE(w.runtime.BlockOn(alice->Unlock(*f, 0, 0, 4)).ok());
  EXPECT_TRUE(LockSync(*bob, *f, true, 1).ok());
}

}  // namespace
}  // namespace heka::fs

#include "dbserver/state/state_machine.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

namespace heka::db {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = 1000LL * 1000 * 1000;
constexpr int64_t kT0 = 1'700'000'000LL * kSecond;  // command time; never the test's clock

const char kRoot[] = "root@PROVIDER.TEST";
const char kAcmeAdmin[] = "boss@ACME.TEST";
const char kAlice[] = "alice@ACME.TEST";
const char kBob[] = "bob@ACME.TEST";
const char kCarol[] = "carol@ACME.TEST";  // trusted realm, not registered
const char kMallory[] = "mallory@EVIL.TEST";
const char kGlobexAdmin[] = "gboss@GLOBEX.TEST";
const char kFileServer[] = "heka/fs1.example@PROVIDER.TEST";

std::string NameOf(uint32_t code) { return std::string(CodeName(static_cast<Code>(code))); }

#define EXPECT_CODE(result_expr, expected)                                                 \
  do {                                                                                     \
    const CommandResult& r_ = (result_expr);                                               \
    EXPECT_EQ(NameOf(r_.code()), NameOf(static_cast<uint32_t>(expected))) << r_.message(); \
  } while (0)

#define EXPECT_STATUS(result_expr, expected)                                                     \
  do {                                                                                           \
    auto s_ = (result_expr).status();                                                            \
    EXPECT_EQ(NameOf(static_cast<uint32_t>(s_.code())), NameOf(static_cast<uint32_t>(expected))) \
        << s_.ToString();                                                                        \
  } while (0)

Caller As(const std::string& principal, bool provider_admin = false) {
  return Caller{principal, provider_admin};
}
Caller Root() { return As(kRoot, true); }

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/heka-dbstate-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sm_ = OpenAt(path());
  }
  void TearDown() override {
    sm_.reset();
    fs::remove_all(dir_);
  }

  std::string path(const std::string& name = "db.sqlite") const { return dir_ + "/" + name; }
  static std::unique_ptr<StateMachine> OpenAt(const std::string& p) {
    auto sm = StateMachine::Open(p);
    EXPECT_TRUE(sm.ok()) << sm.status().ToString();
    return sm.ok() ? std::move(*sm) : nullptr;
  }
  void Reopen() {
    sm_.reset();
    sm_ = OpenAt(path());
  }

  static Command By(const std::string& caller, bool provider_admin = false) {
    Command c;
    c.set_version(kCommandVersion);
    c.set_caller(caller);
    c.set_caller_is_provider_admin(provider_admin);
    return c;
  }
  static Command ByRoot() { return By(kRoot, true); }

  CommandResult Run(Command cmd) {
    if (cmd.time_ns() == 0) cmd.set_time_ns(now_);
    auto r = sm_->Apply(++index_, cmd);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandResult();
  }

  CommandResult CreateCell(const std::string& name, const std::string& realm) {
    Command c = ByRoot();
    c.mutable_create_cell()->set_name(name);
    c.mutable_create_cell()->add_realms(realm);
    return Run(c);
  }
  CommandResult CreateUser(const std::string& caller, const std::string& cell,
                           const std::string& principal, const std::string& name = "",
                           int64_t id = 0) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_create_user();
    op->set_cell(cell);
    op->set_principal(principal);
    op->set_name(name);
    op->set_id(id);
    return Run(c);
  }
  CommandResult CreateGroup(const std::string& caller, const std::string& cell,
                            const std::string& name, const std::string& owner = "",
                            int64_t id = 0) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_create_group();
    op->set_cell(cell);
    op->set_name(name);
    op->set_owner(owner);
    op->set_id(id);
    return Run(c);
  }
  CommandResult AddMember(const std::string& caller, const std::string& cell,
                          const std::string& user, const std::string& group) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_add_member();
    op->set_cell(cell);
    op->set_user(user);
    op->set_group(group);
    return Run(c);
  }
  CommandResult RemoveMember(const std::string& caller, const std::string& cell,
                             const std::string& user, const std::string& group) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_remove_member();
    op->set_cell(cell);
    op->set_user(user);
    op->set_group(group);
    return Run(c);
  }
  CommandResult DeleteEntry(const std::string& caller, const std::string& cell,
                            const std::string& name) {
    Command c = By(caller, caller == kRoot);
    c.mutable_delete_entry()->set_cell(cell);
    c.mutable_delete_entry()->set_name(name);
    return Run(c);
  }
  CommandResult Rename(const std::string& caller, const std::string& cell, const std::string& from,
                       const std::string& to) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_rename_entry();
    op->set_cell(cell);
    op->set_old_name(from);
    op->set_new_name(to);
    return Run(c);
  }
  CommandResult RegisterServer(const std::string& caller, const std::string& uuid,
                               const std::string& principal = "") {
    Command c = By(caller, caller == kRoot);
    FileServer* s = c.mutable_register_server()->mutable_server();
    s->set_uuid(uuid);
    s->add_addresses("10.0.0.1:7000");
    s->add_partitions("/vicepa");
    s->add_partitions("/vicepb");
    s->set_principal(principal);
    return Run(c);
  }
  CommandResult CreateVolume(const std::string& caller, const std::string& cell,
                             const std::string& name, uint64_t id = 0,
                             const std::string& server = "", const std::string& part = "/vicepa") {
    Command c = By(caller, caller == kRoot);
    Volume* v = c.mutable_create_volume()->mutable_volume();
    v->set_cell(cell);
    v->set_name(name);
    v->set_id(id);
    if (!server.empty()) {
      VolumeSite* site = v->add_sites();
      site->set_server_uuid(server);
      site->set_partition(part);
    }
    return Run(c);
  }
  CommandResult Lock(const std::string& caller, uint64_t id, uint64_t expect, int64_t time_ns,
                     const std::string& owner = "vos move", const std::string& phase = "") {
    Command c = By(caller, caller == kRoot);
    c.set_time_ns(time_ns);
    auto* op = c.mutable_lock_volume();
    op->set_id(id);
    op->set_owner(owner);
    op->set_ttl_ms(60'000);
    op->set_operation("move");
    op->set_expect_generation(expect);
    op->set_phase(phase);
    return Run(c);
  }
  CommandResult Unlock(const std::string& caller, uint64_t id, uint64_t generation,
                       bool force = false) {
    Command c = By(caller, caller == kRoot);
    c.mutable_unlock_volume()->set_id(id);
    c.mutable_unlock_volume()->set_generation(generation);
    c.mutable_unlock_volume()->set_force(force);
    return Run(c);
  }
  CommandResult SetSites(const std::string& caller, uint64_t id, uint64_t generation,
                         int64_t time_ns, const std::string& part) {
    Command c = By(caller, caller == kRoot);
    c.set_time_ns(time_ns);
    auto* op = c.mutable_set_volume_sites();
    op->set_id(id);
    op->set_generation(generation);
    VolumeSite* site = op->add_sites();
    site->set_server_uuid("fs1");
    site->set_partition(part);
    return Run(c);
  }

  // acme (ACME.TEST) with administrator boss and users alice, bob; globex (GLOBEX.TEST) with
  // administrator gboss.
  void SetUpCells() {
    EXPECT_CODE(CreateCell("acme", "ACME.TEST"), Code::kOk);
    EXPECT_CODE(CreateCell("globex", "GLOBEX.TEST"), Code::kOk);
    EXPECT_CODE(CreateUser(kRoot, "acme", kAcmeAdmin), Code::kOk);
    EXPECT_CODE(AddMember(kRoot, "acme", "boss", "system:administrators"), Code::kOk);
    EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kAlice), Code::kOk);
    EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kBob), Code::kOk);
    EXPECT_CODE(CreateUser(kRoot, "globex", kGlobexAdmin), Code::kOk);
    EXPECT_CODE(AddMember(kRoot, "globex", "gboss", "system:administrators"), Code::kOk);
  }

  int64_t IdOf(const std::string& cell, const std::string& name) {
    auto e = sm_->GetEntry(Root(), cell, name, 0);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->id() : 0;
  }

  std::string dir_;
  std::unique_ptr<StateMachine> sm_;
  uint64_t index_ = 0;
  int64_t now_ = kT0;
};

// --- Cells -------------------------------------------------------------------------------------

TEST_F(StateMachineTest, CreateCellMakesSystemGroups) {
  EXPECT_CODE(CreateCell("acme", "ACME.TEST"), Code::kOk);
  EXPECT_EQ(IdOf("acme", "system:administrators"), kAdministratorsId);
  EXPECT_EQ(IdOf("acme", "system:anyuser"), kAnyUserId);
  EXPECT_EQ(IdOf("acme", "system:authuser"), kAuthUserId);
  auto cell = sm_->GetCell(Root(), "acme");
  ASSERT_TRUE(cell.ok());
  EXPECT_EQ(cell->status(), "active");
  EXPECT_EQ(cell->created_ns(), kT0);
  ASSERT_EQ(cell->realms_size(), 1);
  EXPECT_EQ(cell->realms(0), "ACME.TEST");
}

TEST_F(StateMachineTest, CreateCellErrors) {
  Command c = By(kAlice);
  c.mutable_create_cell()->set_name("acme");
  EXPECT_CODE(Run(c), Code::kPermissionDenied);
  for (const char* bad : {"", "Acme", "-acme", "ac me", "acme_x", "acme/x"}) {
    SCOPED_TRACE(bad);
    EXPECT_CODE(CreateCell(bad, "ACME.TEST"), Code::kInvalidArgument);
  }
  EXPECT_CODE(CreateCell(std::string(64, 'a'), "ACME.TEST"), Code::kInvalidArgument);
  EXPECT_CODE(CreateCell(std::string(63, 'a'), "ACME.TEST"), Code::kOk);
  EXPECT_CODE(CreateCell("acme", "BAD REALM"), Code::kInvalidArgument);
  EXPECT_CODE(CreateCell("acme", "ACME.TEST"), Code::kOk);
  EXPECT_CODE(CreateCell("acme", "ACME.TEST"), Code::kAlreadyExists);
}

TEST_F(StateMachineTest, DeleteCell) {
  SetUpCells();
  Command c = By(kAcmeAdmin);
  c.mutable_delete_cell()->set_name("acme");
  EXPECT_CODE(Run(c), Code::kPermissionDenied);
  c = ByRoot();
  c.mutable_delete_cell()->set_name("nosuch");
  EXPECT_CODE(Run(c), Code::kNotFound);
  EXPECT_CODE(CreateVolume(kRoot, "acme", "root.cell"), Code::kOk);
  c.mutable_delete_cell()->set_name("acme");
  EXPECT_CODE(Run(c), Code::kInvalidArgument);  // still has a volume
  Command del = ByRoot();
  del.mutable_delete_volume()->set_cell("acme");
  del.mutable_delete_volume()->set_id(536870912);
  EXPECT_CODE(Run(del), Code::kOk);
  EXPECT_CODE(Run(c), Code::kOk);
  EXPECT_STATUS(sm_->GetCell(Root(), "acme"), Code::kNotFound);
  EXPECT_STATUS(sm_->GetEntry(Root(), "acme", "alice", 0), Code::kNotFound);
  auto cps = sm_->GetCps(Root(), "acme", kAlice);
  EXPECT_STATUS(cps, Code::kNotFound);
  auto cells = sm_->ListCells(Root());
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), 1u);
  EXPECT_EQ((*cells)[0].name(), "globex");
}

TEST_F(StateMachineTest, AddRealm) {
  SetUpCells();
  auto add = [&](const std::string& caller, const std::string& cell, const std::string& realm) {
    Command c = By(caller, caller == kRoot);
    c.mutable_add_realm()->set_cell(cell);
    c.mutable_add_realm()->set_realm(realm);
    return Run(c);
  };
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "dave@PARTNER.TEST"), Code::kInvalidArgument);
  EXPECT_CODE(add(kAlice, "acme", "PARTNER.TEST"), Code::kPermissionDenied);
  EXPECT_CODE(add(kGlobexAdmin, "acme", "PARTNER.TEST"), Code::kPermissionDenied);
  EXPECT_CODE(add(kAcmeAdmin, "acme", "PARTNER.TEST"), Code::kOk);
  EXPECT_CODE(add(kAcmeAdmin, "acme", "PARTNER.TEST"), Code::kAlreadyExists);
  EXPECT_CODE(add(kAcmeAdmin, "acme", "BAD/REALM"), Code::kInvalidArgument);
  EXPECT_CODE(add(kRoot, "globex", "PARTNER.TEST"), Code::kOk);
  EXPECT_CODE(add(kRoot, "nosuch", "PARTNER.TEST"), Code::kNotFound);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "dave@PARTNER.TEST"), Code::kOk);
  auto cell = sm_->GetCell(Root(), "acme");
  ASSERT_TRUE(cell.ok());
  EXPECT_EQ(cell->realms_size(), 2);
}

TEST_F(StateMachineTest, SetCellQuota) {
  SetUpCells();
  Command c = By(kAcmeAdmin);
  c.mutable_set_cell_quota()->set_cell("acme");
  c.mutable_set_cell_quota()->set_quota_bytes(1 << 30);
  EXPECT_CODE(Run(c), Code::kPermissionDenied);
  c.set_caller(kRoot);
  c.set_caller_is_provider_admin(true);
  EXPECT_CODE(Run(c), Code::kOk);
  EXPECT_EQ(sm_->GetCell(As(kAlice), "acme")->quota_bytes(), 1u << 30);
  c.mutable_set_cell_quota()->set_cell("nosuch");
  EXPECT_CODE(Run(c), Code::kNotFound);
}

// --- Users and groups --------------------------------------------------------------------------

TEST_F(StateMachineTest, CreateUser) {
  SetUpCells();
  auto alice = sm_->GetEntry(As(kAlice), "acme", "alice", 0);
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->principal(), kAlice);
  EXPECT_EQ(alice->id(), 2);  // boss got 1
  EXPECT_EQ(alice->creator_id(), 1);
  EXPECT_EQ(alice->owner_id(), 0);
  auto r = CreateUser(kAcmeAdmin, "acme", "erin/admin@ACME.TEST", "erin.admin", 500);
  EXPECT_CODE(r, Code::kOk);
  EXPECT_EQ(r.id(), 500);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", "frank@ACME.TEST").id(), 501);
  EXPECT_EQ(sm_->GetEntry(As(kAlice), "acme", "", 500)->name(), "erin.admin");
}

TEST_F(StateMachineTest, CreateUserErrors) {
  SetUpCells();
  EXPECT_CODE(CreateUser(kAlice, "acme", kCarol), Code::kPermissionDenied);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kMallory), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "host/box.acme@ACME.TEST"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "heka/fs1@ACME.TEST"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "norealm"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kAlice, "alice2"), Code::kAlreadyExists);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "alice"), Code::kAlreadyExists);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "bad:name"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "123"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "", 2), Code::kAlreadyExists);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "", -7), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "nosuch", kCarol), Code::kPermissionDenied);
  EXPECT_CODE(CreateUser(kRoot, "nosuch", kCarol), Code::kNotFound);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol), Code::kOk);
}

TEST_F(StateMachineTest, IdsAreNeverReused) {
  SetUpCells();  // acme users 1..3
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", kCarol).id(), 4);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "carol"), Code::kOk);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", kCarol).id(), 5);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", "dave@ACME.TEST", "", 4), Code::kAlreadyExists);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", "dave@ACME.TEST", "", 100).id(), 100);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", "erin@ACME.TEST").id(), 101);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", "fay@ACME.TEST", "", 50).id(), 50);
  EXPECT_EQ(CreateUser(kAcmeAdmin, "acme", "gus@ACME.TEST").id(), 102);

  EXPECT_EQ(CreateGroup(kAcmeAdmin, "acme", "staff").id(), -205);
  EXPECT_EQ(CreateGroup(kAcmeAdmin, "acme", "ops").id(), -206);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "ops"), Code::kOk);
  EXPECT_EQ(CreateGroup(kAcmeAdmin, "acme", "ops").id(), -207);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "x", "", -206), Code::kAlreadyExists);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "x", "", 7), Code::kInvalidArgument);
  EXPECT_EQ(CreateGroup(kAcmeAdmin, "acme", "x", "", -300).id(), -300);
  EXPECT_EQ(CreateGroup(kAcmeAdmin, "acme", "y").id(), -301);
  // Each cell has its own id space.
  EXPECT_EQ(CreateUser(kGlobexAdmin, "globex", "zed@GLOBEX.TEST").id(), 2);
  EXPECT_EQ(CreateGroup(kGlobexAdmin, "globex", "staff").id(), -205);
}

TEST_F(StateMachineTest, CreateGroup) {
  SetUpCells();
  auto r = CreateGroup(kAlice, "acme", "alice:friends");
  EXPECT_CODE(r, Code::kOk);
  auto g = sm_->GetEntry(As(kAlice), "acme", "alice:friends", 0);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->id(), r.id());
  EXPECT_EQ(g->owner_id(), IdOf("acme", "alice"));
  EXPECT_EQ(g->creator_id(), IdOf("acme", "alice"));
  EXPECT_TRUE(g->principal().empty());

  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kAlreadyExists);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "bob:friends"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "staff"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "system:mine"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:x", "bob"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:"), Code::kInvalidArgument);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "a:b:c"), Code::kInvalidArgument);
  EXPECT_CODE(CreateGroup(kCarol, "acme", "carol:x"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "nobody:x"), Code::kInvalidArgument);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "staff", "nobody"), Code::kNotFound);

  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "staff"), Code::kOk);
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "staff", 0)->owner_id(), IdOf("acme", "boss"));
  EXPECT_CODE(CreateGroup(kRoot, "acme", "system:ops"), Code::kOk);
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "system:ops", 0)->owner_id(), kAdministratorsId);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "bob:team"), Code::kOk);
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "bob:team", 0)->owner_id(), IdOf("acme", "bob"));
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "web", "staff"), Code::kOk);
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "web", 0)->owner_id(), IdOf("acme", "staff"));
}

TEST_F(StateMachineTest, Membership) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kBob, "acme", "bob", "alice:friends"), Code::kPermissionDenied);
  EXPECT_CODE(AddMember(kAlice, "acme", "bob", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kAlice, "acme", "bob", "alice:friends"), Code::kAlreadyExists);
  EXPECT_CODE(AddMember(kAcmeAdmin, "acme", "alice", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kAlice, "acme", "nobody", "alice:friends"), Code::kNotFound);
  EXPECT_CODE(AddMember(kAlice, "acme", "bob", "nogroup"), Code::kNotFound);
  EXPECT_CODE(AddMember(kAlice, "acme", "alice", "bob"), Code::kInvalidArgument);
  EXPECT_CODE(AddMember(kAcmeAdmin, "acme", "system:administrators", "alice:friends"),
              Code::kInvalidArgument);
  EXPECT_CODE(AddMember(kAcmeAdmin, "acme", "bob", "system:anyuser"), Code::kInvalidArgument);
  EXPECT_CODE(AddMember(kAlice, "acme", "alice", "system:administrators"), Code::kPermissionDenied);

  auto members = sm_->Membership(As(kBob), "acme", "alice:friends");
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(*members, (std::vector<std::string>{"alice", "bob"}));
  auto groups = sm_->Membership(As(kBob), "acme", "bob");
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(*groups, (std::vector<std::string>{"alice:friends"}));

  EXPECT_CODE(RemoveMember(kBob, "acme", "bob", "alice:friends"), Code::kPermissionDenied);
  EXPECT_CODE(RemoveMember(kAlice, "acme", "bob", "alice:friends"), Code::kOk);
  EXPECT_CODE(RemoveMember(kAlice, "acme", "bob", "alice:friends"), Code::kNotFound);

  // A group owned by a group: the owning group's members manage it.
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "editors"), Code::kOk);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "writers", "editors"), Code::kOk);
  EXPECT_CODE(AddMember(kBob, "acme", "alice", "writers"), Code::kPermissionDenied);
  EXPECT_CODE(AddMember(kAcmeAdmin, "acme", "bob", "editors"), Code::kOk);
  EXPECT_CODE(AddMember(kBob, "acme", "alice", "writers"), Code::kOk);
}

TEST_F(StateMachineTest, DeleteEntry) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:other"), Code::kOk);
  EXPECT_CODE(AddMember(kAlice, "acme", "bob", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kAlice, "acme", "alice", "alice:other"), Code::kOk);
  EXPECT_CODE(DeleteEntry(kBob, "acme", "alice:friends"), Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kBob, "acme", "alice"), Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kAlice, "acme", "alice"), Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "system:anyuser"), Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kRoot, "acme", "system:administrators"), Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "nobody"), Code::kNotFound);

  EXPECT_CODE(DeleteEntry(kAlice, "acme", "alice:friends"), Code::kOk);
  EXPECT_TRUE(sm_->Membership(As(kBob), "acme", "bob")->empty());

  int64_t other = IdOf("acme", "alice:other");
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "alice"), Code::kOk);
  EXPECT_STATUS(sm_->GetEntry(Root(), "acme", "alice", 0), Code::kNotFound);
  EXPECT_TRUE(sm_->Membership(Root(), "acme", "alice:other")->empty());
  // Orphaned groups fall to system:administrators.
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "", other)->owner_id(), kAdministratorsId);
  auto cps = sm_->GetCps(Root(), "acme", kAlice);
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->user_id, 0);
}

TEST_F(StateMachineTest, RenameEntry) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:pets"), Code::kOk);
  EXPECT_CODE(Rename(kAlice, "acme", "alice", "alicia"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kBob, "acme", "alice:pets", "alice:cats"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kAlice, "acme", "alice:pets", "alice:cats"), Code::kOk);
  EXPECT_CODE(Rename(kAlice, "acme", "alice:cats", "cats"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kAlice, "acme", "alice:cats", "bob:cats"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kAlice, "acme", "alice:cats", "alice:friends"), Code::kAlreadyExists);
  EXPECT_CODE(Rename(kAcmeAdmin, "acme", "system:anyuser", "x"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kAcmeAdmin, "acme", "nobody", "x"), Code::kNotFound);
  EXPECT_CODE(Rename(kAcmeAdmin, "acme", "alice", "bad:name"), Code::kInvalidArgument);

  // A collision on a prefix group undoes the whole rename.
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "alicia:friends", "boss"), Code::kInvalidArgument);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "acme", kCarol, "alicia"), Code::kOk);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "acme", "alicia:friends"), Code::kOk);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "alicia"), Code::kOk);
  EXPECT_CODE(Rename(kAcmeAdmin, "acme", "alice", "alicia"), Code::kAlreadyExists);
  EXPECT_NE(sm_->GetEntry(Root(), "acme", "alice", 0).status().code(), Code::kNotFound);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "acme", "alicia:friends"), Code::kOk);

  EXPECT_CODE(Rename(kAcmeAdmin, "acme", "alice", "alicia"), Code::kOk);
  EXPECT_TRUE(sm_->GetEntry(Root(), "acme", "alicia:friends", 0).ok());
  EXPECT_TRUE(sm_->GetEntry(Root(), "acme", "alicia:cats", 0).ok());
  EXPECT_STATUS(sm_->GetEntry(Root(), "acme", "alice:friends", 0), Code::kNotFound);
  EXPECT_EQ(sm_->GetEntry(Root(), "acme", "alicia", 0)->principal(), kAlice);
}

TEST_F(StateMachineTest, ReadsOfEntries) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  auto users = sm_->ListEntries(As(kBob), "acme", true, false);
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ((*users)[0].name(), "boss");
  auto groups = sm_->ListEntries(As(kBob), "acme", false, true);
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->size(), 4u);  // three system groups + alice:friends
  EXPECT_EQ(sm_->ListEntries(As(kBob), "acme", false, false)->size(), 7u);
  auto owned = sm_->ListOwned(As(kBob), "acme", "alice");
  ASSERT_TRUE(owned.ok());
  ASSERT_EQ(owned->size(), 1u);
  EXPECT_EQ((*owned)[0].name(), "alice:friends");
  EXPECT_EQ(sm_->ListOwned(Root(), "acme", "system:administrators")->size(), 3u);
  EXPECT_STATUS(sm_->GetEntry(As(kBob), "acme", "", 999), Code::kNotFound);
  EXPECT_STATUS(sm_->ListOwned(Root(), "acme", "nobody"), Code::kNotFound);
  EXPECT_STATUS(sm_->ListEntries(Root(), "nosuch", true, true), Code::kNotFound);
}

// --- Isolation ---------------------------------------------------------------------------------

TEST_F(StateMachineTest, CellAdminCannotTouchAnotherCell) {
  SetUpCells();
  RegisterServer(kRoot, "fs1");
  uint64_t globex_vol = CreateVolume(kGlobexAdmin, "globex", "root.cell", 0, "fs1").id();
  ASSERT_NE(globex_vol, 0u);
  EXPECT_CODE(CreateUser(kAcmeAdmin, "globex", "x@GLOBEX.TEST"), Code::kPermissionDenied);
  EXPECT_CODE(CreateGroup(kAcmeAdmin, "globex", "staff"), Code::kPermissionDenied);
  EXPECT_CODE(AddMember(kAcmeAdmin, "globex", "gboss", "system:administrators"),
              Code::kPermissionDenied);
  EXPECT_CODE(RemoveMember(kAcmeAdmin, "globex", "gboss", "system:administrators"),
              Code::kPermissionDenied);
  EXPECT_CODE(DeleteEntry(kAcmeAdmin, "globex", "gboss"), Code::kPermissionDenied);
  EXPECT_CODE(Rename(kAcmeAdmin, "globex", "gboss", "x"), Code::kPermissionDenied);
  Command realm = By(kAcmeAdmin);
  realm.mutable_add_realm()->set_cell("globex");
  realm.mutable_add_realm()->set_realm("ACME.TEST");
  EXPECT_CODE(Run(realm), Code::kPermissionDenied);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "globex", "evil"), Code::kPermissionDenied);
  Command del = By(kAcmeAdmin);
  del.mutable_delete_volume()->set_cell("globex");
  del.mutable_delete_volume()->set_id(globex_vol);
  EXPECT_CODE(Run(del), Code::kPermissionDenied);
  del.mutable_delete_volume()->set_cell("acme");  // lying about the cell
  EXPECT_CODE(Run(del), Code::kNotFound);
  // A volume id of another cell and one that does not exist get the same answer.
  CommandResult other = Lock(kAcmeAdmin, globex_vol, 0, kT0);
  CommandResult missing = Lock(kAcmeAdmin, 999, 0, kT0);
  EXPECT_CODE(other, Code::kPermissionDenied);
  EXPECT_CODE(missing, Code::kPermissionDenied);
  EXPECT_CODE(Unlock(kAcmeAdmin, globex_vol, 0, true), Code::kPermissionDenied);
  EXPECT_CODE(SetSites(kAcmeAdmin, globex_vol, 0, kT0, "/vicepb"), Code::kPermissionDenied);
  // A cell that does not exist looks the same as one that does.
  EXPECT_CODE(CreateUser(kAcmeAdmin, "nosuch", "x@GLOBEX.TEST"), Code::kPermissionDenied);
  EXPECT_TRUE(sm_->GetVolume(Root(), "globex", "root.cell", 0).ok());
}

TEST_F(StateMachineTest, ReadsAreLimitedToOwnCells) {
  SetUpCells();
  EXPECT_STATUS(sm_->GetCell(As(kAlice), "globex"), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->GetCell(As(kAlice), "nosuch"), Code::kPermissionDenied);
  EXPECT_TRUE(sm_->GetCell(As(kAlice), "acme").ok());
  auto cells = sm_->ListCells(As(kAlice));
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), 1u);
  EXPECT_EQ((*cells)[0].name(), "acme");
  EXPECT_EQ(sm_->ListCells(Root())->size(), 2u);
  EXPECT_EQ(sm_->ListCells(As(kFileServer))->size(), 2u);
  EXPECT_TRUE(sm_->ListCells(As(kMallory))->empty());

  EXPECT_STATUS(sm_->ListEntries(As(kAcmeAdmin), "globex", true, true), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->GetEntry(As(kAcmeAdmin), "globex", "gboss", 0), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->Membership(As(kAcmeAdmin), "globex", "gboss"), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->ListOwned(As(kAcmeAdmin), "globex", "gboss"), Code::kPermissionDenied);
  // Unregistered principals, even from a trusted realm, and machines cannot enumerate.
  for (const char* who : {kCarol, kMallory, kFileServer}) {
    SCOPED_TRACE(who);
    EXPECT_STATUS(sm_->ListEntries(As(who), "acme", true, true), Code::kPermissionDenied);
    EXPECT_STATUS(sm_->GetEntry(As(who), "acme", "alice", 0), Code::kPermissionDenied);
    EXPECT_STATUS(sm_->Membership(As(who), "acme", "alice"), Code::kPermissionDenied);
    EXPECT_STATUS(sm_->ListOwned(As(who), "acme", "alice"), Code::kPermissionDenied);
  }
  EXPECT_TRUE(sm_->ListEntries(Root(), "globex", true, true).ok());
}

// --- CPS ---------------------------------------------------------------------------------------

TEST_F(StateMachineTest, Cps) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kAlice, "acme", "alice", "alice:friends"), Code::kOk);
  EXPECT_CODE(AddMember(kAcmeAdmin, "acme", "alice", "system:administrators"), Code::kOk);
  int64_t friends = IdOf("acme", "alice:friends");

  auto cps = sm_->GetCps(As(kAlice), "acme", kAlice);
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->user_id, IdOf("acme", "alice"));
  EXPECT_EQ(cps->group_ids,
            (std::vector<int64_t>{kAnyUserId, kAuthUserId, kAdministratorsId, friends}));

  cps = sm_->GetCps(As(kFileServer), "acme", kCarol);  // trusted realm, unregistered
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->user_id, 0);
  EXPECT_EQ(cps->group_ids, (std::vector<int64_t>{kAnyUserId, kAuthUserId}));

  cps = sm_->GetCps(Root(), "acme", kMallory);  // untrusted realm
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->group_ids, (std::vector<int64_t>{kAnyUserId}));

  cps = sm_->GetCps(Root(), "acme", "host/box.acme@ACME.TEST");  // machine of a trusted realm
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->user_id, 0);
  EXPECT_EQ(cps->group_ids, (std::vector<int64_t>{kAnyUserId}));

  cps = sm_->GetCps(As(kAlice), "globex", kAlice);  // alice is nobody in globex
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->user_id, 0);
  EXPECT_EQ(cps->group_ids, (std::vector<int64_t>{kAnyUserId}));

  EXPECT_STATUS(sm_->GetCps(As(kBob), "acme", kAlice), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->GetCps(As(kAcmeAdmin), "acme", kAlice), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->GetCps(Root(), "nosuch", kAlice), Code::kNotFound);
  EXPECT_STATUS(sm_->GetCps(Root(), "acme", "norealm"), Code::kInvalidArgument);
}

// --- VLDB --------------------------------------------------------------------------------------

TEST_F(StateMachineTest, RegisterServer) {
  SetUpCells();
  EXPECT_CODE(RegisterServer(kAlice, "fs1"), Code::kPermissionDenied);
  EXPECT_CODE(RegisterServer("host/fs1.example@PROVIDER.TEST", "fs1"), Code::kPermissionDenied);
  EXPECT_CODE(RegisterServer(kFileServer, "fs1", "heka/other@PROVIDER.TEST"),
              Code::kPermissionDenied);
  EXPECT_CODE(RegisterServer(kFileServer, "bad uuid"), Code::kInvalidArgument);
  EXPECT_CODE(RegisterServer(kFileServer, "fs1"), Code::kOk);
  EXPECT_CODE(RegisterServer("heka/fs2.example@PROVIDER.TEST", "fs1"), Code::kPermissionDenied);
  now_ += kSecond;
  EXPECT_CODE(RegisterServer(kFileServer, "fs1"), Code::kOk);  // re-registration
  EXPECT_CODE(RegisterServer(kRoot, "fs2", "heka/fs2.example@PROVIDER.TEST"), Code::kOk);
  EXPECT_CODE(RegisterServer(kRoot, "fs3", kAlice), Code::kInvalidArgument);
  auto servers = sm_->ListServers(As(kAlice));
  ASSERT_TRUE(servers.ok());
  ASSERT_EQ(servers->size(), 2u);
  const FileServer& fs1 = (*servers)[0];
  EXPECT_EQ(fs1.uuid(), "fs1");
  EXPECT_EQ(fs1.principal(), kFileServer);
  EXPECT_EQ(fs1.registered_ns(), kT0);  // the first registration's time
  ASSERT_EQ(fs1.partitions_size(), 2);
  EXPECT_EQ(fs1.partitions(1), "/vicepb");
  ASSERT_EQ(fs1.addresses_size(), 1);
  EXPECT_EQ(fs1.addresses(0), "10.0.0.1:7000");
}

TEST_F(StateMachineTest, CreateAndDeleteVolumes) {
  SetUpCells();
  EXPECT_CODE(RegisterServer(kRoot, "fs1"), Code::kOk);
  auto r = CreateVolume(kAcmeAdmin, "acme", "root.cell", 0, "fs1");
  EXPECT_CODE(r, Code::kOk);
  EXPECT_EQ(r.id(), 536870912);
  EXPECT_EQ(CreateVolume(kAcmeAdmin, "acme", "user.alice").id(), 536870915);
  EXPECT_CODE(CreateVolume(kAlice, "acme", "mine"), Code::kPermissionDenied);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "root.cell"), Code::kAlreadyExists);
  EXPECT_CODE(CreateVolume(kGlobexAdmin, "globex", "root.cell"), Code::kOk);  // per cell
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "x.readonly"), Code::kInvalidArgument);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", std::string(23, 'v')), Code::kInvalidArgument);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "v1", 0, "nofs"), Code::kNotFound);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "v1", 0, "fs1", "/vicepz"), Code::kInvalidArgument);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "v1", 536870913), Code::kAlreadyExists);
  EXPECT_EQ(CreateVolume(kAcmeAdmin, "acme", "v1", 1000).id(), 1000);
  Command two_rw = By(kAcmeAdmin);
  Volume* v = two_rw.mutable_create_volume()->mutable_volume();
  v->set_cell("acme");
  v->set_name("v2");
  for (const char* part : {"/vicepa", "/vicepb"}) {
    VolumeSite* site = v->add_sites();
    site->set_server_uuid("fs1");
    site->set_partition(part);
  }
  EXPECT_CODE(Run(two_rw), Code::kInvalidArgument);
  v->mutable_sites(1)->set_type(VolumeSite::RO);
  EXPECT_CODE(Run(two_rw), Code::kOk);

  auto got = sm_->GetVolume(As(kAlice), "acme", "root.cell", 0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id(), 536870912u);
  EXPECT_EQ(got->created_ns(), kT0);
  ASSERT_EQ(got->sites_size(), 1);
  EXPECT_EQ(got->sites(0).server_uuid(), "fs1");
  EXPECT_FALSE(got->has_lock());
  EXPECT_EQ(sm_->GetVolume(As(kAlice), "acme", "root.cell.readonly", 0)->id(), 536870912u);
  EXPECT_EQ(sm_->GetVolume(As(kAlice), "acme", "", 536870914)->name(), "root.cell");
  EXPECT_STATUS(sm_->GetVolume(As(kAlice), "acme", "", 536870911), Code::kNotFound);
  auto on_fs1 = sm_->ListVolumes(As(kFileServer), "", "fs1");
  ASSERT_TRUE(on_fs1.ok());
  EXPECT_EQ(on_fs1->size(), 2u);  // root.cell and v2
  EXPECT_EQ(sm_->ListVolumes(As(kAlice), "acme", "")->size(), 4u);

  Command del = By(kAcmeAdmin);
  del.mutable_delete_volume()->set_cell("acme");
  del.mutable_delete_volume()->set_id(536870915);
  EXPECT_CODE(Run(del), Code::kOk);
  EXPECT_CODE(Run(del), Code::kNotFound);
  // The counter never hands an id out twice.
  EXPECT_EQ(CreateVolume(kAcmeAdmin, "acme", "user.alice").id(), 536870924);
}

TEST_F(StateMachineTest, VolumeReadAccess) {
  SetUpCells();
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "root.cell"), Code::kOk);
  EXPECT_TRUE(sm_->GetVolume(As(kCarol), "acme", "root.cell", 0).ok());  // authuser
  EXPECT_TRUE(sm_->GetVolume(As(kFileServer), "acme", "root.cell", 0).ok());
  EXPECT_STATUS(sm_->GetVolume(As(kMallory), "acme", "root.cell", 0), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->GetVolume(As(kGlobexAdmin), "acme", "root.cell", 0), Code::kPermissionDenied);
  // Asking in one's own cell for another cell's volume finds nothing.
  EXPECT_STATUS(sm_->GetVolume(As(kGlobexAdmin), "globex", "", 536870912), Code::kNotFound);
  EXPECT_STATUS(sm_->ListVolumes(As(kCarol), "acme", ""), Code::kPermissionDenied);
  EXPECT_STATUS(sm_->ListVolumes(As(kAlice), "", ""), Code::kPermissionDenied);
  EXPECT_EQ(sm_->ListVolumes(As(kFileServer), "", "")->size(), 1u);
}

// Encrypted volumes carry their cell key's 16-byte fingerprint (raw bytes, any values);
// unencrypted ones carry none. Reads by name and by any id return both fields.
TEST_F(StateMachineTest, EncryptedVolumesKeepTheirKeyFingerprint) {
  SetUpCells();
  EXPECT_CODE(RegisterServer(kRoot, "fs1"), Code::kOk);
  auto create = [&](const std::string& name, bool encrypted, const std::string& fingerprint) {
    Command c = By(kAcmeAdmin);
    Volume* v = c.mutable_create_volume()->mutable_volume();
    v->set_cell("acme");
    v->set_name(name);
    v->set_encrypted(encrypted);
    v->set_key_fingerprint(fingerprint);
    VolumeSite* site = v->add_sites();
    site->set_server_uuid("fs1");
    site->set_partition("/vicepa");
    return Run(c);
  };
  const std::string fp(
      "\x00\x01\xff/\n\x7f"
      "abcdefghij",
      16);
  ASSERT_EQ(fp.size(), kKeyFingerprintBytes);
  auto secret = create("secret", true, fp);
  EXPECT_CODE(secret, Code::kOk);
  EXPECT_CODE(create("plain", false, ""), Code::kOk);

  auto r = create("short", true, fp.substr(0, 15));
  EXPECT_CODE(r, Code::kInvalidArgument);
  EXPECT_NE(r.message().find("16-byte key fingerprint, not 15 bytes"), std::string::npos)
      << r.message();
  EXPECT_CODE(create("long", true, fp + "x"), Code::kInvalidArgument);
  EXPECT_CODE(create("none", true, ""), Code::kInvalidArgument);
  r = create("stray", false, fp);
  EXPECT_CODE(r, Code::kInvalidArgument);
  EXPECT_NE(r.message().find("unencrypted volume has no key fingerprint"), std::string::npos)
      << r.message();
  for (const char* refused : {"short", "long", "none", "stray"}) {
    EXPECT_STATUS(sm_->GetVolume(Root(), "acme", refused, 0), Code::kNotFound);
  }

  uint64_t id = static_cast<uint64_t>(secret.id());
  for (auto got : {sm_->GetVolume(As(kAlice), "acme", "secret", 0),
                   sm_->GetVolume(As(kFileServer), "acme", "", id),
                   sm_->GetVolume(As(kCarol), "acme", "", id + 1)}) {
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(got->encrypted());
    EXPECT_EQ(got->key_fingerprint(), fp);
  }
  auto plain = sm_->GetVolume(As(kAlice), "acme", "plain", 0);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->encrypted());
  EXPECT_EQ(plain->key_fingerprint(), "");
  auto all = sm_->ListVolumes(As(kAlice), "acme", "");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].key_fingerprint(), fp);
  EXPECT_TRUE((*all)[0].encrypted());
  EXPECT_FALSE((*all)[1].encrypted());

  // Stored as a 16-byte BLOB, and survives a reopen and a snapshot.
  EXPECT_NE(sm_->test_DumpAll().find("key_fingerprint=x'0001ff2f0a7f6162636465666768696a'"),
            std::string::npos)
      << sm_->test_DumpAll();
  Reopen();
  ASSERT_NE(sm_, nullptr);
  EXPECT_EQ(sm_->GetVolume(Root(), "acme", "secret", 0)->key_fingerprint(), fp);
  auto image = sm_->Snapshot();
  ASSERT_TRUE(image.ok());
  auto other = OpenAt(path("other.sqlite"));
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Restore(*image).ok());
  EXPECT_EQ(other->GetVolume(Root(), "acme", "secret", 0)->key_fingerprint(), fp);
}

// Command version 1 did not check the fingerprint: replaying a version-1 log applies it as
// that version did, so every member ends up with the same database.
TEST_F(StateMachineTest, VersionOneCreateVolumeIsNotChecked) {
  SetUpCells();
  Command c = By(kAcmeAdmin);
  c.set_version(1);
  Volume* v = c.mutable_create_volume()->mutable_volume();
  v->set_cell("acme");
  v->set_name("old");
  v->set_encrypted(true);
  v->set_key_fingerprint("0123456789abcdef0123456789abcdef");
  EXPECT_CODE(Run(c), Code::kOk);
  auto got = sm_->GetVolume(Root(), "acme", "old", 0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->key_fingerprint(), "0123456789abcdef0123456789abcdef");
  EXPECT_NE(sm_->test_DumpAll().find("key_fingerprint='0123456789abcdef"), std::string::npos);
}

TEST_F(StateMachineTest, LocksFenceAndExpireByCommandTime) {
  SetUpCells();
  EXPECT_CODE(RegisterServer(kRoot, "fs1"), Code::kOk);
  uint64_t id = CreateVolume(kAcmeAdmin, "acme", "root.cell", 0, "fs1").id();
  EXPECT_CODE(Lock(kAlice, id, 0, kT0), Code::kPermissionDenied);
  EXPECT_CODE(Lock(kRoot, 12345, 0, kT0), Code::kNotFound);

  CommandResult first = Lock(kAcmeAdmin, id, 0, kT0, "vos move by boss");
  EXPECT_CODE(first, Code::kOk);
  EXPECT_EQ(first.generation(), 1u);
  auto vol = sm_->GetVolume(Root(), "acme", "", id);
  ASSERT_TRUE(vol->has_lock());
  EXPECT_EQ(vol->lock().owner(), "vos move by boss");
  EXPECT_EQ(vol->lock().expires_ns(), kT0 + 60 * kSecond);

  CommandResult busy = Lock(kRoot, id, 0, kT0 + kSecond, "vos release by root");
  EXPECT_CODE(busy, Code::kLocked);
  EXPECT_NE(busy.message().find("vos move by boss"), std::string::npos) << busy.message();
  EXPECT_CODE(Lock(kAcmeAdmin, id, 7, kT0 + kSecond), Code::kFenced);
  CommandResult renew = Lock(kAcmeAdmin, id, 1, kT0 + 30 * kSecond, "", "copying");
  EXPECT_CODE(renew, Code::kOk);
  EXPECT_EQ(renew.generation(), 1u);
  vol = sm_->GetVolume(Root(), "acme", "", id);
  EXPECT_EQ(vol->lock().phase(), "copying");
  EXPECT_EQ(vol->lock().expires_ns(), kT0 + 90 * kSecond);

  // Fenced site changes while the lock is live.
  EXPECT_CODE(SetSites(kAcmeAdmin, id, 0, kT0 + 31 * kSecond, "/vicepb"), Code::kFenced);
  EXPECT_CODE(SetSites(kAcmeAdmin, id, 1, kT0 + 31 * kSecond, "/vicepb"), Code::kOk);
  EXPECT_EQ(sm_->GetVolume(Root(), "acme", "", id)->sites(0).partition(), "/vicepb");
  Command del = By(kAcmeAdmin);
  del.set_time_ns(kT0 + 32 * kSecond);
  del.mutable_delete_volume()->set_cell("acme");
  del.mutable_delete_volume()->set_id(id);
  EXPECT_CODE(Run(del), Code::kLocked);

  // Expiry is judged by the command's time: at +91 s another operation may take over.
  EXPECT_CODE(Lock(kRoot, id, 0, kT0 + 89 * kSecond, "root"), Code::kLocked);
  CommandResult second = Lock(kRoot, id, 0, kT0 + 91 * kSecond, "vos release by root");
  EXPECT_CODE(second, Code::kOk);
  EXPECT_EQ(second.generation(), 2u);
  EXPECT_CODE(Lock(kAcmeAdmin, id, 1, kT0 + 92 * kSecond), Code::kFenced);
  EXPECT_CODE(SetSites(kAcmeAdmin, id, 1, kT0 + 92 * kSecond, "/vicepa"), Code::kFenced);
  EXPECT_CODE(Unlock(kAcmeAdmin, id, 1), Code::kFenced);
  EXPECT_CODE(Unlock(kRoot, id, 2), Code::kOk);
  EXPECT_FALSE(sm_->GetVolume(Root(), "acme", "", id)->has_lock());
  EXPECT_CODE(Unlock(kRoot, id, 2), Code::kFenced);  // no longer locked
  EXPECT_CODE(SetSites(kAcmeAdmin, id, 2, kT0 + 93 * kSecond, "/vicepa"), Code::kFenced);
  EXPECT_CODE(SetSites(kAcmeAdmin, id, 0, kT0 + 93 * kSecond, "/vicepa"), Code::kOk);

  // Generations are never reset; force breaks a lock.
  CommandResult third = Lock(kAcmeAdmin, id, 0, kT0 + 100 * kSecond);
  EXPECT_EQ(third.generation(), 3u);
  EXPECT_CODE(Unlock(kAcmeAdmin, id, 0, true), Code::kOk);
  EXPECT_EQ(Lock(kAcmeAdmin, id, 0, kT0 + 101 * kSecond).generation(), 4u);
  Command bad_ttl = By(kAcmeAdmin);
  bad_ttl.mutable_lock_volume()->set_id(id);
  bad_ttl.mutable_lock_volume()->set_owner("x");
  EXPECT_CODE(Run(bad_ttl), Code::kInvalidArgument);
}

TEST_F(StateMachineTest, SetMember) {
  auto set = [&](const std::string& caller, uint64_t id, const std::string& address,
                 bool remove = false) {
    Command c = By(caller, caller == kRoot);
    auto* op = c.mutable_set_member();
    op->set_id(id);
    op->set_principal("heka/db" + std::to_string(id) + "@PROVIDER.TEST");
    op->set_address(address);
    op->set_remove(remove);
    return Run(c);
  };
  EXPECT_CODE(set(kAlice, 1, "a:1"), Code::kPermissionDenied);
  EXPECT_CODE(set(kRoot, 2, "b:1"), Code::kOk);
  EXPECT_CODE(set(kRoot, 1, "a:1"), Code::kOk);
  EXPECT_CODE(set(kRoot, 1, "a:2"), Code::kOk);
  EXPECT_CODE(set(kRoot, 0, "a:2"), Code::kInvalidArgument);
  EXPECT_CODE(set(kRoot, 3, ""), Code::kInvalidArgument);
  auto members = sm_->Members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].id(), 1u);
  EXPECT_EQ(members[0].address(), "a:2");
  EXPECT_EQ(members[1].principal(), "heka/db2@PROVIDER.TEST");
  EXPECT_CODE(set(kRoot, 2, "", true), Code::kOk);
  EXPECT_CODE(set(kRoot, 2, "", true), Code::kNotFound);
  EXPECT_EQ(sm_->Members().size(), 1u);
}

// --- Apply mechanics ---------------------------------------------------------------------------

TEST_F(StateMachineTest, RequestIdsApplyOnce) {
  SetUpCells();
  Command c = By(kAcmeAdmin);
  c.set_request_id("req-1");
  c.mutable_create_user()->set_cell("acme");
  c.mutable_create_user()->set_principal(kCarol);
  CommandResult first = Run(c);
  EXPECT_CODE(first, Code::kOk);
  uint64_t first_index = index_;
  std::string dump = sm_->test_DumpAll();
  CommandResult again = Run(c);  // a retry after "outcome unknown", at a later index
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(again.index(), first_index);
  EXPECT_EQ(sm_->last_applied(), index_);
  EXPECT_EQ(sm_->ListEntries(Root(), "acme", true, false)->size(), 4u);

  // Failures are remembered too.
  Command bad = c;
  bad.set_request_id("req-2");
  CommandResult exists = Run(bad);
  EXPECT_CODE(exists, Code::kAlreadyExists);
  EXPECT_EQ(Run(bad).SerializeAsString(), exists.SerializeAsString());

  // The same id from another caller is another request.
  Command other = By(kRoot, true);
  other.set_request_id("req-1");
  other.mutable_create_group()->set_cell("acme");
  other.mutable_create_group()->set_name("staff");
  EXPECT_CODE(Run(other), Code::kOk);
  // Without a request id nothing is deduplicated.
  Command plain = c;
  plain.clear_request_id();
  EXPECT_CODE(Run(plain), Code::kAlreadyExists);
  // After the window (command time), the id is forgotten.
  Command late = By(kAcmeAdmin);
  late.set_request_id("req-1");
  late.set_time_ns(kT0 + 25 * 3600 * kSecond);
  late.mutable_create_user()->set_cell("acme");
  late.mutable_create_user()->set_principal("dave@ACME.TEST");
  CommandResult fresh = Run(late);
  EXPECT_CODE(fresh, Code::kOk);
  EXPECT_EQ(fresh.index(), index_);
}

TEST_F(StateMachineTest, OldIndexesAreSkipped) {
  SetUpCells();
  std::string dump = sm_->test_DumpAll();
  uint64_t applied = sm_->last_applied();
  EXPECT_EQ(applied, index_);
  Command c = By(kAcmeAdmin);
  c.mutable_create_user()->set_cell("acme");
  c.mutable_create_user()->set_principal(kCarol);
  c.set_time_ns(kT0);
  for (uint64_t index : {applied, applied - 1, uint64_t{1}}) {
    auto r = sm_->Apply(index, c);
    ASSERT_TRUE(r.ok());
    EXPECT_CODE(*r, Code::kOk);
    EXPECT_EQ(r->message(), "already applied");
  }
  EXPECT_EQ(sm_->test_DumpAll(), dump);
  EXPECT_EQ(sm_->last_applied(), applied);
}

TEST_F(StateMachineTest, VersionsAndEmptyCommands) {
  Command future = ByRoot();
  future.set_version(kCommandVersion + 1);
  future.set_time_ns(kT0);
  future.mutable_noop();
  auto r = sm_->Apply(1, future);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(sm_->last_applied(), 0u);
  Command zero = ByRoot();
  zero.set_version(0);
  zero.mutable_create_cell()->set_name("acme");
  index_ = 0;
  EXPECT_CODE(Run(zero), Code::kInvalidArgument);
  EXPECT_EQ(sm_->last_applied(), 1u);
  EXPECT_STATUS(sm_->GetCell(Root(), "acme"), Code::kNotFound);
  EXPECT_CODE(Run(ByRoot()), Code::kInvalidArgument);  // no operation
  Command noop = By(kMallory);
  noop.mutable_noop();
  EXPECT_CODE(Run(noop), Code::kOk);
  EXPECT_EQ(sm_->last_applied(), 3u);
}

TEST_F(StateMachineTest, ReopenKeepsStateAndLastApplied) {
  SetUpCells();
  EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:friends"), Code::kOk);
  std::string dump = sm_->test_DumpAll();
  uint64_t applied = sm_->last_applied();
  Reopen();
  ASSERT_NE(sm_, nullptr);
  EXPECT_EQ(sm_->last_applied(), applied);
  EXPECT_EQ(sm_->test_DumpAll(), dump);
  // Raft replays the log after a restart: nothing is applied twice.
  Command c = By(kAlice);
  c.set_time_ns(kT0);
  c.mutable_create_group()->set_cell("acme");
  c.mutable_create_group()->set_name("alice:more");
  auto r = sm_->Apply(applied, c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->message(), "already applied");
  EXPECT_EQ(sm_->test_DumpAll(), dump);
  EXPECT_EQ(CreateGroup(kAlice, "acme", "alice:more").id(), -206);
}

TEST_F(StateMachineTest, SnapshotRestoresIdenticalState) {
  SetUpCells();
  EXPECT_CODE(RegisterServer(kRoot, "fs1"), Code::kOk);
  EXPECT_CODE(CreateVolume(kAcmeAdmin, "acme", "root.cell", 0, "fs1"), Code::kOk);
  EXPECT_CODE(Lock(kAcmeAdmin, 536870912, 0, kT0), Code::kOk);
  Command rid = By(kAlice);
  rid.set_request_id("r1");
  rid.mutable_create_group()->set_cell("acme");
  rid.mutable_create_group()->set_name("alice:friends");
  EXPECT_CODE(Run(rid), Code::kOk);
  auto image = sm_->Snapshot();
  ASSERT_TRUE(image.ok()) << image.status().ToString();

  auto other = OpenAt(path("other.sqlite"));
  ASSERT_NE(other, nullptr);
  Command stray = ByRoot();
  stray.set_time_ns(kT0);
  stray.mutable_create_cell()->set_name("stray");
  ASSERT_TRUE(other->Apply(1, stray).ok());
  ASSERT_TRUE(other->Restore(*image).ok());
  EXPECT_EQ(other->test_DumpAll(), sm_->test_DumpAll());
  EXPECT_EQ(other->last_applied(), sm_->last_applied());
  EXPECT_STATUS(other->GetCell(Root(), "stray"), Code::kNotFound);
  EXPECT_FALSE(fs::exists(path("other.sqlite.restore")));

  // Both continue alike, including the dedup table and the counters.
  Command next = By(kAcmeAdmin);
  next.set_time_ns(kT0 + kSecond);
  next.mutable_create_user()->set_cell("acme");
  next.mutable_create_user()->set_principal(kCarol);
  uint64_t index = sm_->last_applied() + 1;
  for (StateMachine* m : {sm_.get(), other.get()}) {
    auto r = m->Apply(index, next);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->id(), 4);
    rid.set_time_ns(kT0 + kSecond);
    auto d = m->Apply(index + 1, rid);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->index(), index_);  // the stored result of the first application
  }
  EXPECT_EQ(other->test_DumpAll(), sm_->test_DumpAll());

  // The restored file survives a reopen.
  std::string dump = other->test_DumpAll();
  other.reset();
  other = OpenAt(path("other.sqlite"));
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->test_DumpAll(), dump);
}

TEST_F(StateMachineTest, RestoreRefusesGarbageAndKeepsState) {
  SetUpCells();
  std::string dump = sm_->test_DumpAll();
  Bytes garbage(4096, 0x5a);
  EXPECT_FALSE(sm_->Restore(garbage).ok());
  auto image = sm_->Snapshot();
  ASSERT_TRUE(image.ok());
  Bytes truncated(image->begin(), image->begin() + 100);
  EXPECT_FALSE(sm_->Restore(truncated).ok());
  EXPECT_EQ(sm_->test_DumpAll(), dump);
  ASSERT_TRUE(sm_->Restore(*image).ok());  // restoring onto itself is harmless
  EXPECT_EQ(sm_->test_DumpAll(), dump);
}

TEST_F(StateMachineTest, ApplyThroughput) {
  SetUpCells();
  constexpr int kCommands = 2000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCommands; ++i) {
    Command c = By(kAcmeAdmin);
    c.set_request_id("bulk-" + std::to_string(i));
    c.mutable_create_user()->set_cell("acme");
    c.mutable_create_user()->set_principal("user" + std::to_string(i) + "@ACME.TEST");
    ASSERT_EQ(Run(c).code(), 0u);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d applies in %.3f s: %.0f/s\n", kCommands, seconds, kCommands / seconds);
  EXPECT_EQ(sm_->ListEntries(Root(), "acme", true, false)->size(), 3u + kCommands);
}

TEST_F(StateMachineTest, ReadsRunConcurrentlyWithApplies) {
  SetUpCells();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      auto cps = sm_->GetCps(Root(), "acme", kAlice);
      ASSERT_TRUE(cps.ok());
      ASSERT_TRUE(sm_->ListEntries(Root(), "acme", true, true).ok());
      (void)sm_->last_applied();
    }
  });
  for (int i = 0; i < 200; ++i) {
    EXPECT_CODE(CreateGroup(kAlice, "acme", "alice:g" + std::to_string(i)), Code::kOk);
  }
  done = true;
  reader.join();
}

}  // namespace
}  // namespace heka::db

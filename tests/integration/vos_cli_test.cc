// `heka vos create|remove|examine|listvol` against a real cell: the KDC, one DB member and two
// heka-fileserver processes, driven through the CLI as a cell administrator, a plain cell
// member and a provider administrator.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cachemgr/crypto/crypto.h"
#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "rpc/runtime.h"
#include "tests/support/fs_cell.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka {
namespace {

using testing::FsCell;
using testing::ProcessResult;
using testing::SharedRealm;

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The id in "Volume <id> created on partition ...".
uint64_t CreatedId(const std::string& output) {
  size_t at = output.find("Volume ");
  if (at == std::string::npos) return 0;
  return std::strtoull(output.c_str() + at + 7, nullptr, 10);
}

class VosCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto& realm = SharedRealm();
    for (const char* user : {"admin", "acmeadm", "carol"}) {
      ASSERT_TRUE(realm.AddUser(user, std::string(user) + "-pw").ok());
      std::string cc = realm.NewCcachePath(user);
      ASSERT_TRUE(realm.Kinit(user, std::string(user) + "-pw", cc).ok());
      ccaches_[user] = cc;
    }
    testing::FsCellOptions o;
    o.fileservers = 2;
    o.provider_admins = {"admin@HEKA.TEST"};
    auto cell = FsCell::Create(realm, o, Cc("admin"));
    ASSERT_TRUE(cell.ok()) << cell.status().ToString();
    cell_ = std::move(*cell);
    for (int n = 1; n <= 2; ++n) {
      Status s = cell_->StartFileServerAndWait(n);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    ExpectOk(Heka("admin", {"cell", "create", "-name", "acme", "-realm", "HEKA.TEST"}));
    ExpectOk(Heka("admin", {"pts", "createuser", "-name", "acmeadm@HEKA.TEST", "-cell", "acme"}));
    ExpectOk(Heka("admin", {"pts", "adduser", "-user", "acmeadm", "-group", "system:administrators",
                            "-cell", "acme"}));
    ExpectOk(Heka("admin", {"pts", "createuser", "-name", "carol@HEKA.TEST", "-cell", "acme"}));
  }

  static void TearDownTestSuite() {
    cell_.reset();
    for (const std::string& dir : key_dirs_) std::filesystem::remove_all(dir);
  }

  static std::string Cc(const std::string& user) { return ccaches_.at(user); }

  // "addr=principal,..." so the CLI knows each DB member's principal.
  static std::string DbServers() {
    std::string out;
    for (int id = 1; id <= cell_->db().size(); ++id) {
      out += (out.empty() ? "" : ",") + cell_->db().address(id) + "=" + cell_->db().principal(id);
    }
    return out;
  }

  // `key_dir`: $HEKA_KEY_DIR for the command (unset when empty).
  static ProcessResult Heka(const std::string& user, std::vector<std::string> args,
                            const std::string& key_dir = "") {
    std::vector<std::string> argv = {testing::BinDir() + "/heka"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env = {{"KRB5_CONFIG", SharedRealm().krb5_config()},
                                              {"KRB5CCNAME", "FILE:" + Cc(user)},
                                              {"HEKA_DBSERVERS", DbServers()}};
    if (!key_dir.empty()) env["HEKA_KEY_DIR"] = key_dir;
    return testing::RunProcess(argv, env);
  }

  static void ExpectOk(const ProcessResult& r) { EXPECT_EQ(r.exit_code, 0) << r.output; }

  // A one-line failure with exit code 1 that mentions `what`.
  static void ExpectFailure(const ProcessResult& r, const std::string& what) {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(Lines(r.output), 1) << r.output;
    EXPECT_TRUE(Has(r.output, what)) << "wanted '" << what << "' in:\n" << r.output;
  }

  static ProcessResult Create(const std::string& user, const std::string& name, int fs,
                              std::vector<std::string> more = {}, const std::string& key_dir = "") {
    std::vector<std::string> args = {"vos",        "create",
                                     "-server",    cell_->fs_address(fs),
                                     "-partition", cell_->fs_partition(fs),
                                     "-name",      name,
                                     "-cell",      "acme"};
    args.insert(args.end(), more.begin(), more.end());
    return Heka(user, args, key_dir);
  }

  static bool InVldb(const std::string& name) {
    auto r = Heka("acmeadm", {"vos", "listvldb", "-cell", "acme"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return Has(r.output, name + "   (cell acme)");
  }

  static bool OnServer(const std::string& name, int fs) {
    auto r = Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_address(fs), "-cell", "acme"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return Has(r.output, name + " ");
  }

  // A VLDB entry with an RW site on file server `fs`, without the volume on the server.
  static uint64_t CreateVldbEntryOnly(const std::string& name, int fs) {
    rpc::Runtime runtime({1, 1});
    db::DbClientOptions o;
    o.members = *db::ParseMembers(DbServers());
    o.credentials.ccache = "FILE:" + Cc("acmeadm");
    db::DbClient client(runtime, std::move(o));
    db::Command cmd;
    db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
    v->set_name(name);
    v->set_cell("acme");
    db::VolumeSite* site = v->add_sites();
    site->set_server_uuid(cell_->fs_uuid(fs));
    site->set_partition(cell_->fs_partition(fs));
    site->set_type(db::VolumeSite::RW);
    auto r = client.Sync(client.Write(std::move(cmd)));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? static_cast<uint64_t>(r->id()) : 0;
  }

  // The client attribute of volume `id`'s root directory, fetched from file server `fs` as
  // acmeadm.
  static Result<std::string> RootClientAttr(uint64_t id, int fs) {
    rpc::Runtime runtime({1, 1});
    fs::FileClientOptions o;
    o.address = cell_->fs_address(fs);
    o.server_principal = cell_->fs_principal(fs);
    o.credentials.ccache = "FILE:" + Cc("acmeadm");
    auto client = fs::FileClient::Create(runtime, std::move(o));
    fs::pb::GetVolumeStatusRequest vreq;
    vreq.set_cell("acme");
    vreq.set_volume(id);
    auto vol = client->CallSync<fs::pb::GetVolumeStatusReply>(
        "heka.fileserver.File.GetVolumeStatus", vreq);
    Result<fs::pb::FetchStatusReply> st = vol.status();
    if (vol.ok()) {
      fs::pb::FetchStatusRequest sreq;
      *sreq.mutable_fid() = vol->root();
      st = client->CallSync<fs::pb::FetchStatusReply>("heka.fileserver.File.FetchStatus", sreq);
    }
    client->Close();
    if (!st.ok()) return st.status();
    return st->status().client_attr();
  }

  // A new temporary directory for key files (removed at the end of the suite's process).
  static std::string NewKeyDir() {
    std::string tmpl = "/tmp/heka-vos-keys-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    key_dirs_.push_back(tmpl);
    return tmpl;
  }

  static inline std::unique_ptr<FsCell> cell_;
  static inline std::vector<std::string> key_dirs_;
  static inline std::map<std::string, std::string> ccaches_;  // user -> ccache path
};

TEST_F(VosCliTest, CreateListExamineRemove) {
  auto created = Create("acmeadm", "projects", 1, {"-maxquota", "10240"});  // KiB, as in AFS
  ExpectOk(created);
  uint64_t id = CreatedId(created.output);
  ASSERT_NE(id, 0u) << created.output;
  EXPECT_TRUE(Has(created.output,
                  "created on partition " + cell_->fs_partition(1) + " of " + cell_->fs_address(1)))
      << created.output;

  auto list = Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_address(1), "-cell", "acme"});
  ExpectOk(list);
  EXPECT_TRUE(Has(list.output, "projects")) << list.output;
  EXPECT_TRUE(Has(list.output, std::to_string(id) + " RW")) << list.output;
  EXPECT_TRUE(Has(list.output, "On-line")) << list.output;
  EXPECT_TRUE(Has(list.output, "Total number of volumes on server " + cell_->fs_address(1) +
                                   " partition " + cell_->fs_partition(1) + ": 1"))
      << list.output;
  EXPECT_TRUE(Has(list.output, "Total volumes: 1 on-line, 0 off-line")) << list.output;

  // Another name of the advertised host, with the port, names the same server.
  std::string port = cell_->fs_address(1).substr(cell_->fs_address(1).rfind(':') + 1);
  auto byname =
      Heka("acmeadm", {"vos", "listvol", "-server", "localhost:" + port, "-cell", "acme"});
  ExpectOk(byname);
  EXPECT_TRUE(Has(byname.output, "projects")) << byname.output;

  auto json = Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_uuid(1), "-cell", "acme",
                               "-format", "json"});
  ExpectOk(json);
  EXPECT_TRUE(Has(json.output, "\"name\": \"projects\"")) << json.output;
  EXPECT_TRUE(Has(json.output, "\"quota_bytes\": \"10485760\"")) << json.output;

  auto ex = Heka("acmeadm", {"vos", "examine", "-id", "projects", "-cell", "acme"});
  ExpectOk(ex);
  EXPECT_TRUE(Has(ex.output, "MaxQuota      10240 K  (10485760 bytes)")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "    Usage ")) << ex.output;
  EXPECT_TRUE(Has(ex.output, " files\n")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "On-line")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "Partition " + cell_->fs_partition(1) + ": ")) << ex.output;
  EXPECT_TRUE(Has(ex.output, " K free")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "operations: ")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "RWrite: " + std::to_string(id))) << ex.output;
  EXPECT_TRUE(Has(ex.output, "server " + cell_->fs_address(1) + " partition " +
                                 cell_->fs_partition(1) + " RW Site"))
      << ex.output;

  auto exj = Heka(
      "acmeadm", {"vos", "examine", "-id", std::to_string(id), "-cell", "acme", "-format", "json"});
  ExpectOk(exj);
  EXPECT_TRUE(Has(exj.output, "\"volume\": {")) << exj.output;
  EXPECT_TRUE(Has(exj.output, "\"status\": {")) << exj.output;
  EXPECT_TRUE(Has(exj.output, "\"online\":true")) << exj.output;

  auto rm = Heka("acmeadm", {"vos", "remove", "-id", "projects", "-cell", "acme"});
  ExpectOk(rm);
  EXPECT_TRUE(Has(rm.output, "Volume " + std::to_string(id) + " on partition " +
                                 cell_->fs_partition(1) + " of " + cell_->fs_address(1) +
                                 " deleted"))
      << rm.output;
  EXPECT_TRUE(Has(rm.output, "VLDB entry for volume projects")) << rm.output;
  EXPECT_FALSE(InVldb("projects"));
  EXPECT_FALSE(OnServer("projects", 1));
  ExpectFailure(Heka("acmeadm", {"vos", "examine", "-id", "projects", "-cell", "acme"}),
                "not found");
}

// -encrypt: the VLDB entry records the fingerprint of the cell's key (from its key file in
// $HEKA_KEY_DIR or -keyfile), the root directory gets a directory ID attribute, and examine /
// listvldb show which kind a volume is, as text and as JSON.
TEST_F(VosCliTest, EncryptedVolumeRecordsTheKeyFingerprint) {
  namespace crypto = cm::crypto;
  std::string key_dir = NewKeyDir();
  auto key = crypto::CellKey::Generate();
  ASSERT_TRUE(
      crypto::WriteKeyFile(key_dir + "/acme.key", crypto::RawKeyFile("acme", *key), false).ok());
  const std::string hex = crypto::Hex(key->fingerprint());

  auto created = Create("acmeadm", "secret", 1, {"-encrypt"}, key_dir);
  ExpectOk(created);
  uint64_t id = CreatedId(created.output);
  ASSERT_NE(id, 0u) << created.output;
  EXPECT_TRUE(Has(created.output, "encrypted, key fingerprint " + hex)) << created.output;
  auto plain_created = Create("acmeadm", "plain", 1);
  ExpectOk(plain_created);

  auto ex = Heka("acmeadm", {"vos", "examine", "-id", "secret", "-cell", "acme"});
  ExpectOk(ex);
  EXPECT_TRUE(Has(ex.output, "    encrypted, key fingerprint " + hex + "\n")) << ex.output;
  auto plain = Heka("acmeadm", {"vos", "examine", "-id", "plain", "-cell", "acme"});
  ExpectOk(plain);
  EXPECT_TRUE(Has(plain.output, "    unencrypted\n")) << plain.output;
  EXPECT_FALSE(Has(plain.output, "fingerprint")) << plain.output;

  auto exj =
      Heka("acmeadm", {"vos", "examine", "-id", "secret", "-cell", "acme", "-format", "json"});
  ExpectOk(exj);
  EXPECT_TRUE(Has(exj.output, "\"encrypted\":true")) << exj.output;
  EXPECT_TRUE(Has(exj.output, "\"key_fingerprint\":\"" + hex + "\"")) << exj.output;
  auto plainj =
      Heka("acmeadm", {"vos", "examine", "-id", "plain", "-cell", "acme", "-format", "json"});
  ExpectOk(plainj);
  EXPECT_TRUE(Has(plainj.output, "\"encrypted\":false")) << plainj.output;
  EXPECT_TRUE(Has(plainj.output, "\"key_fingerprint\":\"\"")) << plainj.output;

  auto list = Heka("acmeadm", {"vos", "listvldb", "-cell", "acme"});
  ExpectOk(list);
  EXPECT_TRUE(Has(list.output, "secret   (cell acme)\n    RWrite: " + std::to_string(id)))
      << list.output;
  EXPECT_TRUE(Has(list.output, "    encrypted, key fingerprint " + hex + "\n")) << list.output;
  EXPECT_TRUE(Has(list.output, "    unencrypted\n")) << list.output;
  auto listj = Heka("acmeadm", {"vos", "listvldb", "-cell", "acme", "-format", "json"});
  ExpectOk(listj);
  EXPECT_TRUE(Has(listj.output, "\"encrypted\": true")) << listj.output;
  EXPECT_TRUE(Has(listj.output, "\"key_fingerprint\": \"" + hex + "\"")) << listj.output;
  EXPECT_TRUE(Has(listj.output, "\"encrypted\": false")) << listj.output;
  EXPECT_TRUE(Has(listj.output, "\"key_fingerprint\": \"\"")) << listj.output;

  // The root directory carries a directory ID; an unencrypted root carries nothing.
  auto attr = RootClientAttr(id, 1);
  ASSERT_TRUE(attr.ok()) << attr.status().ToString();
  auto decoded = crypto::DecodeAttr(*attr);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(decoded->has_value());
  EXPECT_EQ((*decoded)->kind, crypto::Kind::kDirectory);
  auto plain_attr = RootClientAttr(CreatedId(plain_created.output), 1);
  ASSERT_TRUE(plain_attr.ok()) << plain_attr.status().ToString();
  EXPECT_EQ(*plain_attr, "");

  // -keyfile names the file directly.
  std::string elsewhere = NewKeyDir() + "/k.key";
  auto other = crypto::CellKey::Generate();
  ASSERT_TRUE(crypto::WriteKeyFile(elsewhere, crypto::RawKeyFile("acme", *other), false).ok());
  auto second = Create("acmeadm", "secret2", 1, {"-encrypt", "-keyfile", elsewhere});
  ExpectOk(second);
  auto ex2 = Heka("acmeadm", {"vos", "examine", "-id", "secret2", "-cell", "acme"});
  EXPECT_TRUE(Has(ex2.output, "encrypted, key fingerprint " + crypto::Hex(other->fingerprint())))
      << ex2.output;
  // A key file of another cell is refused.
  ASSERT_TRUE(
      crypto::WriteKeyFile(key_dir + "/globex.key", crypto::RawKeyFile("globex", *other), false)
          .ok());
  ExpectFailure(
      Create("acmeadm", "wrongcell", 1, {"-encrypt", "-keyfile", key_dir + "/globex.key"}),
      "is cell globex's, not acme's");
  EXPECT_FALSE(InVldb("wrongcell"));

  for (const char* name : {"secret", "plain", "secret2"}) {
    ExpectOk(Heka("acmeadm", {"vos", "remove", "-id", name, "-cell", "acme"}));
  }
}

// -encrypt without the cell's key file: one line saying how to make one, and nothing created.
TEST_F(VosCliTest, EncryptWithoutKeyFileCreatesNothing) {
  std::string key_dir = NewKeyDir();  // empty
  auto r = Create("acmeadm", "nokey", 1, {"-encrypt"}, key_dir);
  ExpectFailure(r, "heka vos create: no key file for cell acme at " + key_dir +
                       "/acme.key: run `heka key init -cell acme` first");
  EXPECT_FALSE(InVldb("nokey"));
  EXPECT_FALSE(OnServer("nokey", 1));

  std::string missing = key_dir + "/nowhere.key";
  ExpectFailure(Create("acmeadm", "nokey", 1, {"-encrypt", "-keyfile", missing}),
                "no key file for cell acme at " + missing + ": run `heka key init -cell acme`");
  EXPECT_FALSE(InVldb("nokey"));

  auto usage = Create("acmeadm", "nokey", 1, {"-keyfile", missing});
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_TRUE(Has(usage.output, "-keyfile needs -encrypt")) << usage.output;
  EXPECT_FALSE(InVldb("nokey"));
}

TEST_F(VosCliTest, ServerByUuidQuotaSuffixAndRemoveBySite) {
  auto created = Heka(
      "acmeadm", {"vos", "create", "-server", cell_->fs_uuid(1), "-partition",
                  cell_->fs_partition(1), "-name", "home.bob", "-cell", "acme", "-maxquota", "5M"});
  ExpectOk(created);
  auto ex = Heka("acmeadm", {"vos", "examine", "-id", "home.bob", "-cell", "acme"});
  ExpectOk(ex);
  EXPECT_TRUE(Has(ex.output, "MaxQuota       5120 K  (5242880 bytes)")) << ex.output;

  // -partition without -server is a usage error; a site the volume does not have is refused.
  auto usage = Heka("acmeadm", {"vos", "remove", "-id", "home.bob", "-cell", "acme", "-partition",
                                cell_->fs_partition(1)});
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  ExpectFailure(Heka("acmeadm", {"vos", "remove", "-id", "home.bob", "-cell", "acme", "-server",
                                 cell_->fs_address(2)}),
                "no RW site");
  EXPECT_TRUE(InVldb("home.bob"));

  ExpectOk(Heka("acmeadm", {"vos", "remove", "-id", "home.bob", "-cell", "acme", "-server",
                            cell_->fs_address(1), "-partition", cell_->fs_partition(1)}));
  EXPECT_FALSE(InVldb("home.bob"));
  EXPECT_FALSE(OnServer("home.bob", 1));

  auto bad =
      Heka("acmeadm", {"vos", "create", "-server", cell_->fs_address(1), "-partition",
                       cell_->fs_partition(1), "-name", "x", "-cell", "acme", "-maxquota", "12Q"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(Has(bad.output, "-maxquota wants a size")) << bad.output;
}

TEST_F(VosCliTest, NonAdministratorGetsOneLinePermissionError) {
  ExpectOk(Create("acmeadm", "shared", 1));
  ExpectFailure(Create("carol", "mine", 1), "permission denied");
  EXPECT_FALSE(InVldb("mine"));
  ExpectFailure(Heka("carol", {"vos", "listvol", "-server", cell_->fs_address(1), "-cell", "acme"}),
                "permission denied");
  ExpectFailure(Heka("carol", {"vos", "remove", "-id", "shared", "-cell", "acme"}),
                "permission denied");
  EXPECT_TRUE(InVldb("shared"));
  EXPECT_TRUE(OnServer("shared", 1));
  // A cell administrator must name the cell; a provider administrator need not.
  ExpectFailure(Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_address(1)}),
                "cell administrators give -cell");
  auto all = Heka("admin", {"vos", "listvol", "-server", cell_->fs_address(1)});
  ExpectOk(all);
  EXPECT_TRUE(Has(all.output, "shared ")) << all.output;
  ExpectOk(Heka("acmeadm", {"vos", "remove", "-id", "shared", "-cell", "acme"}));
}

TEST_F(VosCliTest, BadServerIsAClearError) {
  ExpectFailure(Heka("acmeadm", {"vos", "create", "-server", "nosuch.invalid", "-partition",
                                 cell_->fs_partition(1), "-name", "vol.a", "-cell", "acme"}),
                "no file server 'nosuch.invalid' is registered");
  ExpectFailure(Heka("acmeadm", {"vos", "listvol", "-server", "127.0.0.1:1", "-cell", "acme"}),
                "no file server '127.0.0.1:1' is registered");
  // Both file servers listen on 127.0.0.1: the bare host names two of them.
  ExpectFailure(Heka("acmeadm", {"vos", "listvol", "-server", "127.0.0.1", "-cell", "acme"}),
                "is ambiguous");
  EXPECT_FALSE(InVldb("vol.a"));
}

TEST_F(VosCliTest, MissingPartitionLeavesNoVldbEntry) {
  auto r = Heka("acmeadm", {"vos", "create", "-server", cell_->fs_address(1), "-partition",
                            "/vicepzz", "-name", "nowhere", "-cell", "acme"});
  ExpectFailure(r, "has no partition '/vicepzz'");
  EXPECT_FALSE(InVldb("nowhere"));
  ExpectFailure(Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_address(1), "-partition",
                                 "/vicepzz", "-cell", "acme"}),
                "has no partition");
}

TEST_F(VosCliTest, VolumeMissingOnServerIsAWarningForRemove) {
  uint64_t id = CreateVldbEntryOnly("ghost", 1);
  ASSERT_NE(id, 0u);
  // examine: the VLDB part, then one line on stderr saying why the header is missing.
  auto ex = Heka("acmeadm", {"vos", "examine", "-id", "ghost", "-cell", "acme"});
  EXPECT_EQ(ex.exit_code, 1) << ex.output;
  EXPECT_TRUE(Has(ex.output, "RWrite: " + std::to_string(id))) << ex.output;
  EXPECT_TRUE(Has(ex.output, "heka vos examine: not found: volume header not shown: file server " +
                                 cell_->fs_address(1)))
      << ex.output;
  auto rm = Heka("acmeadm", {"vos", "remove", "-id", "ghost", "-cell", "acme"});
  ExpectOk(rm);
  EXPECT_TRUE(Has(rm.output, "heka vos remove: warning: volume " + std::to_string(id) +
                                 " was not on partition"))
      << rm.output;
  EXPECT_FALSE(InVldb("ghost"));
}

// File server 2 goes down: examine still shows the VLDB part, create undoes its VLDB entry,
// remove keeps the entry; after the restart remove completes.
TEST_F(VosCliTest, UnreachableFileServer) {
  ExpectOk(Create("acmeadm", "on.fs2", 2));
  cell_->KillFileServer(2);

  auto ex = Heka("acmeadm", {"vos", "examine", "-id", "on.fs2", "-cell", "acme"});
  EXPECT_EQ(ex.exit_code, 1) << ex.output;
  EXPECT_TRUE(Has(ex.output, "number of sites -> 1")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "heka vos examine: ")) << ex.output;
  EXPECT_TRUE(Has(ex.output, "volume header not shown: file server " + cell_->fs_address(2)))
      << ex.output;

  auto cr = Create("acmeadm", "late", 2);
  ExpectFailure(cr, "the VLDB entry of volume ");
  EXPECT_TRUE(Has(cr.output, "was deleted again")) << cr.output;
  EXPECT_FALSE(InVldb("late"));

  ExpectFailure(Heka("acmeadm", {"vos", "remove", "-id", "on.fs2", "-cell", "acme"}), "is kept");
  EXPECT_TRUE(InVldb("on.fs2"));

  ASSERT_TRUE(cell_->StartFileServer(2).ok());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Heka("acmeadm", {"vos", "listvol", "-server", cell_->fs_address(2), "-cell", "acme"})
                   .exit_code == 0;
      },
      std::chrono::seconds(30)))
      << cell_->LogTail(2);
  ExpectOk(Heka("acmeadm", {"vos", "remove", "-id", "on.fs2", "-cell", "acme"}));
  EXPECT_FALSE(InVldb("on.fs2"));
  EXPECT_FALSE(OnServer("on.fs2", 2));
}

}  // namespace
}  // namespace heka

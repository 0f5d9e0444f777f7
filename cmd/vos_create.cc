// heka vos create — a new RW volume: the VLDB entry first (which allocates the id and names
// the site), then the volume on the file server, which checks that the VLDB names it. When
// the file server step fails the VLDB entry is deleted again, so nothing half-made remains.
// With -encrypt the volume is client-side encrypted (docs/formats/encryption.md): the VLDB
// entry records the fingerprint of the cell's key, read from the cell's key file (the key
// itself is neither unwrapped nor sent anywhere), and the root directory gets its random ID.
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cachemgr/crypto/crypto.h"
#include "cachemgr/key_store.h"
#include "cmd/commands.h"
#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

namespace crypto = cm::crypto;

// The key file of the cell: -keyfile, else $HEKA_KEY_DIR/<cell>.key, else
// /etc/heka/keys/<cell>.key (as `heka key` and the cache manager look for it).
Result<std::string> KeyFilePath(const DbCommand& c) {
  if (c.Has("keyfile")) {
    if (c.Get("keyfile").empty()) return Error(Code::kInvalidArgument, "-keyfile is empty");
    return c.Get("keyfile");
  }
  std::string cell = c.Get("cell");
  if (Status s = cm::CheckCellName(cell); !s.ok()) return s;
  const char* dir = std::getenv(cm::kKeyDirEnv);
  return std::string(dir != nullptr && *dir != '\0' ? dir : cm::kDefaultKeyDir) + "/" + cell +
         ".key";
}

// The fingerprint of the cell's key, from its key file. A missing file is the one-line error
// that says how to make one; a file of another cell is refused.
Result<crypto::KeyId> CellKeyFingerprint(const DbCommand& c) {
  auto path = KeyFilePath(c);
  if (!path.ok()) return path.status();
  const std::string cell = c.Get("cell");
  auto file = crypto::ReadKeyFile(*path);
  if (file.status().code() == Code::kNotFound) {
    return Error(Code::kNotFound, "no key file for cell " + cell + " at " + *path +
                                      ": run `heka key init -cell " + cell + "` first");
  }
  if (!file.ok()) return file.status();
  ::explicit_bzero(file->key.data(), file->key.size());  // a raw key: not needed here
  if (file->cell != cell) {
    return Error(Code::kInvalidArgument,
                 "key file " + *path + " is cell " + file->cell + "'s, not " + cell + "'s");
  }
  return file->fingerprint;
}

}  // namespace

Result<uint64_t> CreateEntry(DbCommand& c, const NamedServer& server, uint64_t quota,
                             const std::optional<std::string>& fingerprint) {
  db::Command cmd;
  db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
  v->set_name(c.Get("name"));
  v->set_cell(c.Get("cell"));
  v->set_quota_bytes(quota);
  if (fingerprint) {
    v->set_encrypted(true);
    v->set_key_fingerprint(*fingerprint);
  }
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(server.server.uuid());
  site->set_partition(c.Get("partition"));
  site->set_type(db::VolumeSite::RW);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  if (!r.ok()) return r.status().WithContext("VLDB");
  return static_cast<uint64_t>(r->id());
}

// After a failed file server step: deletes the VLDB entry again and says what is left. When
// the server may have created the volume after all (no answer in time, connection lost), it
// is asked to delete it first, best effort.
Status Undo(DbCommand& c, VolumeServerClient& fs, uint64_t id, const Status& why) {
  if (why.code() == Code::kDeadlineExceeded || why.code() == Code::kConnectionClosed) {
    fs::pb::DeleteVolumeRequest del;
    del.set_cell(c.Get("cell"));
    del.set_id(id);
    (void)fs.Delete(del);
  }
  db::Command cmd;
  cmd.mutable_delete_volume()->set_cell(c.Get("cell"));
  cmd.mutable_delete_volume()->set_id(id);
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  std::string vol = "volume " + std::to_string(id);
  if (r.ok()) return why.WithContext("the VLDB entry of " + vol + " was deleted again");
  return why.WithContext("deleting the VLDB entry of " + vol + " failed too (" +
                         r.status().ToString() + "; run heka vos remove -id " + std::to_string(id) +
                         " -cell " + c.Get("cell") + ")");
}

// heka vos create -server S -partition P -name N -cell C [-maxquota SIZE]
//                 [-encrypt [-keyfile PATH]]
int VosCreate(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos create", argc, argv,
      {{"server", true, "file server: UUID, host:port or host (required)"},
       {"partition", true, "partition on that server, e.g. /vicepa (required)"},
       {"name", true, "volume name (required)"},
       {"cell", true, "the cell (required)"},
       {"maxquota", true, "quota: KiB as in OpenAFS (10240), or with K/M/G/T (500M); 0 = none"},
       {"encrypt", false, "client-side encrypted with the cell's key (see heka key init)"},
       {"keyfile", true,
        "with -encrypt: the cell's key file (default $HEKA_KEY_DIR/<cell>.key, else "
        "/etc/heka/keys/<cell>.key)"}},
      {"server", "partition", "name", "cell"});
  if (c.exit) return *c.exit;
  uint64_t quota = 0;
  if (c.Has("maxquota")) {
    auto q = ParseQuota(c.Get("maxquota"));
    if (!q.ok()) return UsageError(c.name, q.status());
    quota = *q;
  }
  if (c.Has("keyfile") && !c.Has("encrypt")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-keyfile needs -encrypt"));
  }
  std::optional<crypto::KeyId> fingerprint;
  if (c.Has("encrypt")) {
    auto fp = CellKeyFingerprint(c);
    if (fp.status().code() == Code::kNotFound) {
      std::fprintf(stderr, "heka %s: %s\n", c.name.c_str(), fp.status().message().c_str());
      return kExitFailed;
    }
    if (!fp.ok()) return c.Fail(fp.status());
    fingerprint = *fp;
  }
  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return c.Fail(s);

  std::optional<std::string> fp;
  if (fingerprint) fp.emplace(reinterpret_cast<const char*>(fingerprint->data()), fingerprint->size());
  auto id = CreateEntry(c, *server, quota, fp);
  if (!id.ok()) return c.Fail(id.status());
  fs::pb::CreateVolumeRequest req;
  req.set_cell(c.Get("cell"));
  req.set_id(*id);
  req.set_partition(c.Get("partition"));
  req.set_quota_bytes(quota);
  if (fingerprint) {
    req.set_root_client_attr(crypto::EncodeAttr(crypto::Kind::kDirectory, crypto::RandomId()));
  }
  VolumeServerClient fs(*c.db, *server);
  auto r = fs.Create(req);
  if (!r.ok()) {
    return c.Fail(Undo(c, fs, *id, r.status().WithContext("file server " + server->address)));
  }
  std::printf("Volume %llu created on partition %s of %s\n", static_cast<unsigned long long>(*id),
              c.Get("partition").c_str(), server->address.c_str());
  if (fingerprint) {
    std::printf("    encrypted, key fingerprint %s\n", crypto::Hex(*fingerprint).c_str());
  }
  return kExitOk;
}

}  // namespace heka::cli

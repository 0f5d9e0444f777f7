// What the `heka vos` commands share: VLDB lookups and printing, naming a file server on the
// command line (-server), talking to its VolumeServer service, and sizes (-maxquota, "K").
// Single-threaded, like the CLI itself.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cmd/db_common.h"
#include "fileserver/client/file_client.h"

namespace heka::cli {

using ServerNames = std::map<std::string, std::string>;  // uuid -> "host:port"

// Best effort: a caller who may not list the servers sees their UUIDs.
ServerNames LoadServerNames(DbSession& db);

// A GetVolume request for `name_or_id` (a number is an id). `leader_only` before a write.
db::GetVolumeRequest VolumeRequest(const std::string& cell, const std::string& name_or_id,
                                   bool leader_only = false);

// "RW", "RO", "BK" ("??" for anything else); the file server's uint32 type the same way.
const char* SiteType(db::VolumeSite::Type t);
// An RO site, released or not (vos addsite, vos release).
inline bool IsRoSite(db::VolumeSite::Type t) {
  return t == db::VolumeSite::RO || t == db::VolumeSite::RO_UNRELEASED;
}
const char* VolumeTypeName(uint32_t type);

// The VLDB entry as `vos listvldb` and `vos examine` print it, with a line
// "encrypted, key fingerprint <hex>" or "unencrypted".
void PrintEntry(const db::Volume& v, const ServerNames& names);

// A volume's key fingerprint as lower-case hex (32 digits; "" for an unencrypted volume), the
// form key files and `heka key fingerprint` show.
std::string FingerprintHex(const db::Volume& v);

// VLDB entries as JSON, like ToJson (one volume) and PrintJson (a listing), except that
// "key_fingerprint" is FingerprintHex rather than proto3 JSON's base64 of the bytes.
Result<std::string> VolumeToJson(const db::Volume& v);
Status PrintVolumesJson(const db::ListVolumesReply& reply);

// Prints `m` as JSON; a failure to print is the command's failure.
int PrintOrFail(const DbCommand& c, const google::protobuf::Message& m);

// `m` as one JSON value, in PrintJson's style (proto field names, every field), for commands
// that print several messages as one object.
Result<std::string> ToJson(const google::protobuf::Message& m);

// A file server as named by -server: its VLDB registration, the address to dial and the name
// to show the user.
struct NamedServer {
  db::FileServer server;
  std::string address;  // the advertised "host:port" to dial
};

// Resolves -server: the server's UUID, one of its advertised "host:port" addresses, or a host
// (name or IP address) that is the host of an advertised address. kNotFound for no match,
// kInvalidArgument naming the candidates when more than one server matches.
Result<NamedServer> ResolveServer(DbSession& db, const std::string& name);

// The registered server with `uuid` (kNotFound if none).
Result<NamedServer> ServerByUuid(DbSession& db, const std::string& uuid);

// kInvalidArgument unless `partition` is one the server registered.
Status CheckPartition(const NamedServer& s, const std::string& partition);

// A VolumeServer connection to one file server, on the DB session's runtime, authenticated
// with the caller's default ccache and the server's registered principal. REQUIRES: the
// DbSession outlives it.
class VolumeServerClient {
 public:
  VolumeServerClient(DbSession& db, const NamedServer& server);
  ~VolumeServerClient();
  VolumeServerClient(const VolumeServerClient&) = delete;
  VolumeServerClient& operator=(const VolumeServerClient&) = delete;

  Result<fs::pb::CreateVolumeReply> Create(const fs::pb::CreateVolumeRequest& req);
  Result<fs::pb::DeleteVolumeReply> Delete(const fs::pb::DeleteVolumeRequest& req);
  Result<fs::pb::ListVolumesReply> List(const fs::pb::ListVolumesRequest& req);
  Result<fs::pb::ExamineVolumeReply> Examine(const fs::pb::ExamineVolumeRequest& req);
  Result<fs::pb::CloneVolumeReply> Clone(const fs::pb::CloneVolumeRequest& req);
  Result<fs::pb::DumpVolumeReply> Dump(const fs::pb::DumpVolumeRequest& req);
  Result<fs::pb::RestoreVolumeReply> Restore(const fs::pb::RestoreVolumeRequest& req);
  Result<fs::pb::SetVolumeOnlineReply> SetOnline(const fs::pb::SetVolumeOnlineRequest& req);
  Result<fs::pb::FreezeVolumeReply> Freeze(const fs::pb::FreezeVolumeRequest& req);
  Result<fs::pb::VolumeMovedReply> Moved(const fs::pb::VolumeMovedRequest& req);

 private:
  std::shared_ptr<fs::FileClient> client_;
};

// The VLDB entry of a new RW volume named -name of -cell on `server`'s -partition (vos create,
// vos restore); returns the allocated volume id. `fingerprint`: the cell key's, for an
// encrypted volume.
Result<uint64_t> CreateEntry(DbCommand& c, const NamedServer& server, uint64_t quota,
                             const std::optional<std::string>& fingerprint);

// After a failed file server step of a new volume: deletes the VLDB entry again and returns
// `why` saying what is left. When the server may have created the volume after all (no answer
// in time, connection lost), it is asked to delete it first, best effort.
Status Undo(DbCommand& c, VolumeServerClient& fs, uint64_t id, const Status& why);

// Replaces the sites of VLDB entry `id` (generation 0: only while no live operation lock is
// held; else the holder's lock generation). Errors say "VLDB".
Status WriteVolumeSites(DbCommand& c, uint64_t id,
                        const google::protobuf::RepeatedPtrField<db::VolumeSite>& sites,
                        uint64_t generation = 0);

// -maxquota: a plain number is KiB (as OpenAFS's vos); a K, M, G or T suffix (powers of
// 1024, case-insensitive, optionally followed by "B" or "iB") gives the unit. 0 = unlimited.
Result<uint64_t> ParseQuota(const std::string& text);

// Bytes in KiB, rounded up ("0" for 0), as OpenAFS prints sizes.
std::string Kib(uint64_t bytes);

}  // namespace heka::cli

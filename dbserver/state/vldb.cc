// VLDB commands and reads: file servers, volumes, and the DB member list.
#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

#include "dbserver/state/internal/schema.h"
#include "dbserver/state/internal/volumes.h"
#include "krb/identity.h"

namespace heka::db::internal {

namespace {

std::string JoinLines(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += '\n';
    out += item;
  }
  return out;
}

void SplitLines(const std::string& text, google::protobuf::RepeatedPtrField<std::string>* out) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out->Add(text.substr(start, end - start));
    start = end + 1;
  }
}

bool ValidListItem(const std::string& item) {
  return !item.empty() && item.size() <= 255 &&
         std::none_of(item.begin(), item.end(), [](char c) { return c == '\n' || c == '\0'; });
}

bool ValidUuid(const std::string& uuid) {
  return !uuid.empty() && uuid.size() <= 64 && std::all_of(uuid.begin(), uuid.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

Result<std::optional<FileServer>> LoadServer(Database& db, const std::string& uuid) {
  Query q(db,
          "SELECT uuid, principal, addresses, partitions, registered_ns FROM servers "
          "WHERE uuid = ?",
          uuid);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<FileServer>();
  FileServer s;
  s.set_uuid(q.Text(0));
  s.set_principal(q.Text(1));
  SplitLines(q.Text(2), s.mutable_addresses());
  SplitLines(q.Text(3), s.mutable_partitions());
  s.set_registered_ns(q.Int(4));
  return std::optional<FileServer>(std::move(s));
}

Status CheckServer(const FileServer& s) {
  if (!ValidUuid(s.uuid())) return Error(Code::kInvalidArgument, "invalid uuid '" + s.uuid() + "'");
  for (const auto& list : {&s.addresses(), &s.partitions()}) {
    for (const auto& item : *list) {
      if (!ValidListItem(item)) return Error(Code::kInvalidArgument, "invalid '" + item + "'");
    }
  }
  if (s.principal().empty()) return Status::Ok();
  auto id = krb::Identity::Parse(s.principal());
  if (!id.ok() || !id->is_machine()) {
    return Error(Code::kInvalidArgument, "'" + s.principal() + "' is not a machine principal");
  }
  return Status::Ok();
}

// The principal to store: a file server registers itself as its own heka/ principal; a
// provider administrator may name any machine principal (empty keeps the stored one).
Result<std::string> RegisteringPrincipal(const Actor& actor, const FileServer& s,
                                         const std::optional<FileServer>& existing) {
  bool is_server = actor.valid && actor.machine && actor.first_component == "heka";
  if (!actor.provider_admin && !is_server) {
    return Error(Code::kPermissionDenied, actor.principal + " may not register file servers");
  }
  std::string stored = existing ? existing->principal() : "";
  if (!actor.provider_admin && !stored.empty() && stored != actor.principal) {
    return Error(Code::kPermissionDenied,
                 "file server " + s.uuid() + " is registered to " + stored);
  }
  if (actor.provider_admin) return s.principal().empty() ? stored : s.principal();
  if (!s.principal().empty() && s.principal() != actor.principal) {
    return Error(Code::kPermissionDenied, actor.principal + " may only register itself");
  }
  return actor.principal;
}

}  // namespace

Status ApplyRegisterServer(ApplyContext& ctx, const RegisterServer& op) {
  const FileServer& s = op.server();
  Status st = CheckServer(s);
  if (!st.ok()) return st;
  auto existing = LoadServer(ctx.db, s.uuid());
  if (!existing.ok()) return existing.status();
  auto principal = RegisteringPrincipal(ctx.actor, s, *existing);
  if (!principal.ok()) return principal.status();
  int64_t registered = existing->has_value() ? (*existing)->registered_ns() : ctx.cmd.time_ns();
  Query q(ctx.db,
          "INSERT INTO servers (uuid, principal, addresses, partitions, registered_ns) "
          "VALUES (?, ?, ?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET principal = excluded.principal, "
          "addresses = excluded.addresses, partitions = excluded.partitions",
          s.uuid(), *principal, JoinLines(s.addresses()), JoinLines(s.partitions()), registered);
  return q.Run();
}

// --- Volume rows ---------------------------------------------------------------------------

Result<std::optional<VolumeRow>> LoadVolume(Database& db, uint64_t id) {
  Query q(db,
          "SELECT id, cell, name, encrypted, key_fingerprint, quota_bytes, created_ns, "
          "lock_generation, lock_held, lock_owner, lock_expires_ns, lock_operation, lock_phase "
          "FROM volumes WHERE id = ?",
          id);
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<VolumeRow>();
  VolumeRow r;
  Volume& v = r.volume;
  v.set_id(q.Uint(0));
  v.set_cell(q.Text(1));
  v.set_name(q.Text(2));
  v.set_encrypted(q.Int(3) != 0);
  Bytes fingerprint = q.Blob(4);
  v.set_key_fingerprint(std::string(fingerprint.begin(), fingerprint.end()));
  v.set_quota_bytes(q.Uint(5));
  v.set_created_ns(q.Int(6));
  r.generation = q.Uint(7);
  r.lock_held = q.Int(8) != 0;
  if (r.lock_held) {
    VolumeLock* lock = v.mutable_lock();
    lock->set_generation(r.generation);
    lock->set_owner(q.Text(9));
    lock->set_expires_ns(q.Int(10));
    lock->set_operation(q.Text(11));
    lock->set_phase(q.Text(12));
  }
  Query sites(db,
              "SELECT server_uuid, partition, type FROM volume_sites WHERE volume_id = ? "
              "ORDER BY position",
              id);
  for (;;) {
    auto s = sites.Step();
    if (!s.ok()) return s.status();
    if (!*s) break;
    VolumeSite* site = v.add_sites();
    site->set_server_uuid(sites.Text(0));
    site->set_partition(sites.Text(1));
    site->set_type(static_cast<VolumeSite::Type>(sites.Int(2)));
  }
  return std::optional<VolumeRow>(std::move(r));
}

Status ValidateSites(Database& db, const google::protobuf::RepeatedPtrField<VolumeSite>& sites) {
  std::set<std::tuple<std::string, std::string, int>> seen;
  int rw = 0;
  for (const auto& site : sites) {
    if (!VolumeSite::Type_IsValid(site.type())) {
      return Error(Code::kInvalidArgument, "unknown site type " + std::to_string(site.type()));
    }
    if (!seen.emplace(site.server_uuid(), site.partition(), site.type()).second) {
      return Error(Code::kInvalidArgument,
                   "duplicate site " + site.server_uuid() + " " + site.partition());
    }
    if (site.type() == VolumeSite::RW && ++rw > 1) {
      return Error(Code::kInvalidArgument, "a volume has at most one RW site");
    }
    auto server = LoadServer(db, site.server_uuid());
    if (!server.ok()) return server.status();
    if (!server->has_value()) {
      return Error(Code::kNotFound, "no file server " + site.server_uuid());
    }
    const auto& parts = (*server)->partitions();
    if (std::find(parts.begin(), parts.end(), site.partition()) == parts.end()) {
      return Error(Code::kInvalidArgument, "file server " + site.server_uuid() +
                                               " has no partition '" + site.partition() + "'");
    }
  }
  return Status::Ok();
}

Status WriteSites(Database& db, uint64_t id,
                  const google::protobuf::RepeatedPtrField<VolumeSite>& sites) {
  Query del(db, "DELETE FROM volume_sites WHERE volume_id = ?", id);
  Status s = del.Run();
  int position = 0;
  for (const auto& site : sites) {
    if (!s.ok()) return s;
    Query q(db,
            "INSERT INTO volume_sites (volume_id, position, server_uuid, partition, type) "
            "VALUES (?, ?, ?, ?, ?)",
            id, position++, site.server_uuid(), site.partition(), static_cast<int>(site.type()));
    s = q.Run();
  }
  return s;
}

// --- Volume commands -----------------------------------------------------------------------

namespace {

// Picks the RW id: the requested one if its range id..id+2 is free, else the global counter.
// The counter steps by 3 and moves past every id handed out, so it never repeats.
Result<uint64_t> AllocateVolumeId(Database& db, uint64_t requested) {
  auto next = GetMeta(db, kMetaNextVolumeId);
  if (!next.ok()) return next.status();
  int64_t id = static_cast<int64_t>(requested);
  if (requested == 0) {
    id = *next;
  } else if (requested > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - 5)) {
    return Error(Code::kInvalidArgument, "volume id " + std::to_string(requested) + " too large");
  }
  Query q(db, "SELECT id FROM volumes WHERE id BETWEEN ?1 - 2 AND ?1 + 2", id);
  auto taken = q.Step();
  if (!taken.ok()) return taken.status();
  if (*taken) {
    return Error(
        requested == 0 ? Code::kInternal : Code::kAlreadyExists,
        "volume id " + std::to_string(id) + " overlaps volume " + std::to_string(q.Int(0)));
  }
  Status s = SetMeta(db, kMetaNextVolumeId, std::max(*next, id + kVolumeIdStep));
  if (!s.ok()) return s;
  return static_cast<uint64_t>(id);
}

Status InsertVolume(ApplyContext& ctx, const Volume& v) {
  Query q(ctx.db,
          "INSERT INTO volumes (id, cell, name, encrypted, key_fingerprint, quota_bytes, "
          "created_ns, lock_generation, lock_held, lock_owner, lock_expires_ns, lock_operation, "
          "lock_phase) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0, '', '')",
          v.id(), v.cell(), v.name(), v.encrypted());
  // Raw bytes: a BLOB from command version 2 on (the column is declared TEXT, which SQLite
  // keeps BLOBs in as they are); version 1 wrote TEXT, and a replay must write the same.
  if (ctx.cmd.version() >= kCommandVersionVolumeKeys) {
    q.BindBlob(AsBytes(v.key_fingerprint()));
  } else {
    q.Bind(std::string_view(v.key_fingerprint()));
  }
  q.Bind(v.quota_bytes()).Bind(ctx.cmd.time_ns());
  Status s = q.Run();
  if (!s.ok()) return s;
  return WriteSites(ctx.db, v.id(), v.sites());
}

// An encrypted volume names its cell key by the key's 16-byte fingerprint; an unencrypted one
// has none. Checked from command version 2 on: version 1 stored whatever it was given, and
// replaying its log must give the same database.
Status CheckEncryption(const Command& cmd, const Volume& v) {
  if (cmd.version() < kCommandVersionVolumeKeys) return Status::Ok();
  if (v.encrypted() && v.key_fingerprint().size() != kKeyFingerprintBytes) {
    return Error(Code::kInvalidArgument, "an encrypted volume needs a " +
                                             std::to_string(kKeyFingerprintBytes) +
                                             "-byte key fingerprint, not " +
                                             std::to_string(v.key_fingerprint().size()) + " bytes");
  }
  if (!v.encrypted() && !v.key_fingerprint().empty()) {
    return Error(Code::kInvalidArgument, "an unencrypted volume has no key fingerprint");
  }
  return Status::Ok();
}

}  // namespace

Status ApplyCreateVolume(ApplyContext& ctx, const CreateVolume& op) {
  Volume v = op.volume();
  Status s = RequireCellAdmin(ctx.db, ctx.actor, v.cell());
  if (!s.ok()) return s;
  if (!ValidVolumeName(v.name())) {
    return Error(Code::kInvalidArgument, "invalid volume name '" + v.name() + "'");
  }
  s = CheckEncryption(ctx.cmd, v);
  if (!s.ok()) return s;
  Query q(ctx.db, "SELECT id FROM volumes WHERE cell = ? AND name = ?", v.cell(), v.name());
  auto row = q.Step();
  if (!row.ok()) return row.status();
  if (*row) return Error(Code::kAlreadyExists, "volume '" + v.name() + "' exists");
  s = ValidateSites(ctx.db, v.sites());
  if (!s.ok()) return s;
  auto id = AllocateVolumeId(ctx.db, v.id());
  if (!id.ok()) return id.status();
  v.set_id(*id);
  ctx.result->set_id(static_cast<int64_t>(*id));
  return InsertVolume(ctx, v);
}

Status ApplyDeleteVolume(ApplyContext& ctx, const DeleteVolume& op) {
  Status s = RequireCellAdmin(ctx.db, ctx.actor, op.cell());
  if (!s.ok()) return s;
  auto row = LoadVolume(ctx.db, op.id());
  if (!row.ok()) return row.status();
  if (!row->has_value() || (*row)->volume.cell() != op.cell()) {
    return Error(Code::kNotFound,
                 "no volume " + std::to_string(op.id()) + " in cell '" + op.cell() + "'");
  }
  if (LockLive(**row, ctx.cmd.time_ns())) {
    const VolumeLock& lock = (*row)->volume.lock();
    return Error(Code::kLocked, "volume " + std::to_string(op.id()) + " is locked by " +
                                    lock.owner() + " for " + lock.operation());
  }
  s = WriteSites(ctx.db, op.id(), {});
  if (!s.ok()) return s;
  Query q(ctx.db, "DELETE FROM volumes WHERE id = ?", op.id());
  return q.Run();
}

Status ApplySetMember(ApplyContext& ctx, const SetMember& op) {
  if (!ctx.actor.provider_admin) {
    return Error(Code::kPermissionDenied, "only provider administrators change DB members");
  }
  if (op.id() == 0) return Error(Code::kInvalidArgument, "member id 0");
  if (op.remove()) {
    Query q(ctx.db, "DELETE FROM db_members WHERE id = ?", op.id());
    Status s = q.Run();
    if (!s.ok()) return s;
    if (q.changes() == 0) return Error(Code::kNotFound, "no member " + std::to_string(op.id()));
    return Status::Ok();
  }
  if (op.principal().empty() || op.address().empty()) {
    return Error(Code::kInvalidArgument, "a member needs a principal and an address");
  }
  Query q(ctx.db,
          "INSERT INTO db_members (id, principal, address) VALUES (?, ?, ?) ON CONFLICT (id) DO "
          "UPDATE SET principal = excluded.principal, address = excluded.address",
          op.id(), op.principal(), op.address());
  return q.Run();
}

// --- Reads ---------------------------------------------------------------------------------

namespace {

// Volume lookups: provider administrators, machine principals, registered users of the
// cell and principals of a realm it trusts (they are system:authuser there).
Status RequireVolumeReader(Database& db, const Actor& actor, const std::string& cell,
                           bool enumerate) {
  if (actor.provider_admin || actor.machine) return Status::Ok();
  auto access = AccessTo(db, actor, cell);
  if (!access.ok()) return access.status();
  if (access->exists && access->user_id != 0) return Status::Ok();
  if (access->exists && !enumerate && actor.valid) {
    auto trusted = TrustsRealm(db, cell, actor.realm);
    if (!trusted.ok()) return trusted.status();
    if (*trusted) return Status::Ok();
  }
  return Error(Code::kPermissionDenied,
               actor.principal + " may not look up volumes of cell '" + cell + "'");
}

std::string BaseVolumeName(const std::string& name) {
  for (std::string_view suffix : {".readonly", ".backup"}) {
    if (name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
  }
  return name;
}

}  // namespace

// By name ("x", "x.readonly", "x.backup") or by any of its ids (RW, RO = +1, BK = +2).
Result<Volume> ReadVolume(Database& db, const Actor& actor, const std::string& cell,
                          const std::string& name, uint64_t id) {
  Status s = RequireVolumeReader(db, actor, cell, false);
  if (!s.ok()) return s;
  Query q(db,
          name.empty() ? "SELECT id FROM volumes WHERE cell = ?1 AND id BETWEEN ?2 - 2 AND ?2"
                       : "SELECT id FROM volumes WHERE cell = ?1 AND name = ?2",
          cell);
  if (name.empty()) {
    q.Bind(static_cast<int64_t>(std::min<uint64_t>(id, std::numeric_limits<int64_t>::max())));
  } else {
    q.Bind(BaseVolumeName(name));
  }
  auto found = q.Step();
  if (!found.ok()) return found.status();
  std::string what = name.empty() ? std::to_string(id) : "'" + name + "'";
  if (!*found) return Error(Code::kNotFound, "no volume " + what + " in cell '" + cell + "'");
  auto row = LoadVolume(db, q.Uint(0));
  if (!row.ok()) return row.status();
  if (!row->has_value()) return Error(Code::kInternal, "volume " + what + " vanished");
  return (*row)->volume;
}

// Every volume of `cell` (all cells when empty: provider administrators and file servers
// only), optionally only those with a site on `server_uuid`.
Result<std::vector<Volume>> ReadVolumes(Database& db, const Actor& actor, const std::string& cell,
                                        const std::string& server_uuid) {
  if (cell.empty() && !actor.provider_admin && !actor.machine) {
    return Error(Code::kPermissionDenied, actor.principal + " may not list every cell's volumes");
  }
  if (!cell.empty()) {
    Status s = RequireVolumeReader(db, actor, cell, true);
    if (!s.ok()) return s;
  }
  Query q(db,
          "SELECT v.id FROM volumes v WHERE (?1 = '' OR v.cell = ?1) AND (?2 = '' OR EXISTS "
          "(SELECT 1 FROM volume_sites s WHERE s.volume_id = v.id AND s.server_uuid = ?2)) "
          "ORDER BY v.id",
          cell, server_uuid);
  std::vector<Volume> volumes;
  for (;;) {
    auto found = q.Step();
    if (!found.ok()) return found.status();
    if (!*found) return volumes;
    auto row = LoadVolume(db, q.Uint(0));
    if (!row.ok()) return row.status();
    if (row->has_value()) volumes.push_back(std::move((*row)->volume));
  }
}

// Server addresses are no tenant's data: every authenticated caller may read them, as
// clients need them to reach a volume's sites.
Result<std::vector<FileServer>> ReadServers(Database& db, const Actor& actor) {
  if (!actor.valid && !actor.provider_admin) {
    return Error(Code::kPermissionDenied, "unauthenticated caller");
  }
  Query q(db, "SELECT uuid FROM servers ORDER BY uuid");
  std::vector<FileServer> servers;
  for (;;) {
    auto found = q.Step();
    if (!found.ok()) return found.status();
    if (!*found) return servers;
    auto server = LoadServer(db, q.Text(0));
    if (!server.ok()) return server.status();
    if (server->has_value()) servers.push_back(std::move(**server));
  }
}

Result<std::vector<SetMember>> ReadMembers(Database& db) {
  Query q(db, "SELECT id, principal, address FROM db_members ORDER BY id");
  std::vector<SetMember> members;
  for (;;) {
    auto found = q.Step();
    if (!found.ok()) return found.status();
    if (!*found) return members;
    SetMember m;
    m.set_id(q.Uint(0));
    m.set_principal(q.Text(1));
    m.set_address(q.Text(2));
    members.push_back(std::move(m));
  }
}

}  // namespace heka::db::internal

#include "cmd/vos_common.h"

#include <google/protobuf/util/json_util.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>

#include "cachemgr/crypto/crypto.h"

namespace heka::cli {
namespace {

constexpr const char* kCreateVolume = "heka.fileserver.VolumeServer.CreateVolume";
constexpr const char* kDeleteVolume = "heka.fileserver.VolumeServer.DeleteVolume";
constexpr const char* kListVolumes = "heka.fileserver.VolumeServer.ListVolumes";
constexpr const char* kExamineVolume = "heka.fileserver.VolumeServer.ExamineVolume";

void PrintIds(const db::Volume& v) {
  bool ro = false, bk = false;
  for (const auto& s : v.sites()) {
    ro |= IsRoSite(s.type());
    bk |= s.type() == db::VolumeSite::BK;
  }
  std::printf("    RWrite: %llu", static_cast<unsigned long long>(v.id()));
  if (ro) std::printf("    ROnly: %llu", static_cast<unsigned long long>(v.id() + 1));
  if (bk) std::printf("    Backup: %llu", static_cast<unsigned long long>(v.id() + 2));
  std::printf("\n");
}

void PrintLock(const db::Volume& v) {
  if (!v.has_lock() || v.lock().owner().empty()) return;
  const db::VolumeLock& l = v.lock();
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::printf("    Volume is %s by %s (operation %s, phase %s, generation %llu, expires %s)\n",
              l.expires_ns() > now ? "currently LOCKED" : "left locked (lock expired)",
              l.owner().c_str(), l.operation().c_str(), l.phase().empty() ? "-" : l.phase().c_str(),
              static_cast<unsigned long long>(l.generation()), FormatTime(l.expires_ns()).c_str());
}

Result<db::ListServersReply> ListServers(DbSession& db) {
  auto r = db.Run(db.client->ListServers(db::ListServersRequest()));
  if (!r.ok()) return r.status().WithContext("listing the file servers");
  return r;
}

// "host" of "host:port" or "[v6]:port"; the whole string when there is no port.
std::string HostOf(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    return close == std::string::npos ? address : address.substr(1, close - 1);
  }
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || address.find(':') != colon) return address;  // bare v6
  return address.substr(0, colon);
}

// "port" of "host:port" or "[v6]:port"; "" when there is none.
std::string PortOf(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "";
  if (!address.empty() && address.front() == '[') {
    return colon > 0 && address[colon - 1] == ']' ? address.substr(colon + 1) : "";
  }
  return address.find(':') == colon ? address.substr(colon + 1) : "";
}

// The numeric addresses `host` resolves to (empty when it does not resolve).
std::set<std::string> Resolve(const std::string& host) {
  std::set<std::string> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char buf[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) {
      out.insert(buf);
    }
  }
  freeaddrinfo(res);
  return out;
}

NamedServer Named(const db::FileServer& s, const std::string& address) {
  return NamedServer{s, address.empty() && s.addresses_size() > 0 ? s.addresses(0) : address};
}

// The servers (and the matching address of each) for which `match(address)` holds.
template <typename Match>
std::vector<NamedServer> Matching(const db::ListServersReply& all, Match match) {
  std::vector<NamedServer> out;
  for (const db::FileServer& s : all.servers()) {
    for (const std::string& a : s.addresses()) {
      if (match(a)) {
        out.push_back(Named(s, a));
        break;
      }
    }
  }
  return out;
}

// `m` as JSON with the key fingerprints of `volumes` (every Volume in `m`, in the order the
// printer meets them) in hex. The fingerprints are cleared and printed as "" first: only a
// Volume has a "key_fingerprint" key, and the quotes of a string value are escaped, so the
// k-th `"key_fingerprint": ""` of the output is the k-th volume's.
Result<std::string> JsonWithHexFingerprints(google::protobuf::Message& m,
                                            const std::vector<db::Volume*>& volumes, bool pretty) {
  std::vector<std::string> hex;
  for (db::Volume* v : volumes) {
    hex.push_back(FingerprintHex(*v));
    v->clear_key_fingerprint();
  }
  auto json = MessageJson(m, pretty);
  if (!json.ok()) return json;
  const std::string empty = pretty ? "\"key_fingerprint\": \"\"" : "\"key_fingerprint\":\"\"";
  size_t at = 0;
  for (const std::string& h : hex) {
    at = json->find(empty, at);
    if (at == std::string::npos) break;
    at += empty.size() - 1;  // at the closing quote
    json->insert(at, h);
    at += h.size() + 1;
  }
  if (at == std::string::npos || json->find(empty, at) != std::string::npos) {
    return Error(Code::kInternal, "cannot print the key fingerprints as JSON");
  }
  return json;
}

Result<NamedServer> OneOf(const std::vector<NamedServer>& found, const std::string& name) {
  if (found.size() == 1) return found.front();
  std::string list;
  for (const NamedServer& n : found) list += (list.empty() ? "" : ", ") + n.address;
  return Error(Code::kInvalidArgument, "-server " + name + " is ambiguous: it names " +
                                           std::to_string(found.size()) + " file servers (" + list +
                                           "); give a host:port or a UUID");
}

}  // namespace

ServerNames LoadServerNames(DbSession& db) {
  ServerNames names;
  auto r = db.Run(db.client->ListServers(db::ListServersRequest()));
  if (!r.ok()) return names;
  for (const db::FileServer& s : r->servers()) {
    if (s.addresses_size() > 0) names[s.uuid()] = s.addresses(0);
  }
  return names;
}

db::GetVolumeRequest VolumeRequest(const std::string& cell, const std::string& name_or_id,
                                   bool leader_only) {
  db::GetVolumeRequest req;
  req.set_cell(cell);
  req.mutable_options()->set_leader_only(leader_only);
  char* end = nullptr;
  unsigned long long id = std::strtoull(name_or_id.c_str(), &end, 10);
  if (!name_or_id.empty() && *end == '\0') {
    req.set_id(id);
  } else {
    req.set_name(name_or_id);
  }
  return req;
}

const char* SiteType(db::VolumeSite::Type t) {
  switch (t) {
    case db::VolumeSite::RW:
      return "RW";
    case db::VolumeSite::RO:
      return "RO";
    case db::VolumeSite::RO_UNRELEASED:
      return "RO (not released)";
    case db::VolumeSite::BK:
      return "BK";
    default:
      return "??";
  }
}

const char* VolumeTypeName(uint32_t type) {
  return type <= 2 ? SiteType(static_cast<db::VolumeSite::Type>(type)) : "??";
}

void PrintEntry(const db::Volume& v, const ServerNames& names) {
  std::printf("%s   (cell %s)\n", v.name().c_str(), v.cell().c_str());
  PrintIds(v);
  std::printf("    number of sites -> %d\n", v.sites_size());
  for (const db::VolumeSite& s : v.sites()) {
    auto it = names.find(s.server_uuid());
    std::printf("       server %s partition %s %s Site\n",
                it == names.end() ? s.server_uuid().c_str() : it->second.c_str(),
                s.partition().c_str(), SiteType(s.type()));
  }
  if (v.encrypted()) {
    std::printf("    encrypted, key fingerprint %s\n", FingerprintHex(v).c_str());
  } else {
    std::printf("    unencrypted\n");
  }
  PrintLock(v);
}

std::string FingerprintHex(const db::Volume& v) {
  const std::string& fp = v.key_fingerprint();
  return cm::crypto::Hex(reinterpret_cast<const uint8_t*>(fp.data()), fp.size());
}

Result<std::string> VolumeToJson(const db::Volume& v) {
  db::Volume copy = v;
  return JsonWithHexFingerprints(copy, {&copy}, false);
}

Status PrintVolumesJson(const db::ListVolumesReply& reply) {
  db::ListVolumesReply copy = reply;
  std::vector<db::Volume*> volumes;
  for (db::Volume& v : *copy.mutable_volumes()) volumes.push_back(&v);
  auto json = JsonWithHexFingerprints(copy, volumes, true);
  if (!json.ok()) return json.status();
  if (json->empty() || json->back() != '\n') json->push_back('\n');
  std::fputs(json->c_str(), stdout);
  return Status::Ok();
}

int PrintOrFail(const DbCommand& c, const google::protobuf::Message& m) {
  Status s = PrintJson(m);
  return s.ok() ? kExitOk : c.Fail(s);
}

Result<std::string> ToJson(const google::protobuf::Message& m) { return MessageJson(m, false); }

Result<NamedServer> ResolveServer(DbSession& db, const std::string& name) {
  auto all = ListServers(db);
  if (!all.ok()) return all.status();
  for (const db::FileServer& s : all->servers()) {
    if (s.uuid() == name) return Named(s, "");
  }
  auto found = Matching(*all, [&](const std::string& a) { return a == name; });
  if (found.empty()) {
    found = Matching(*all, [&](const std::string& a) { return HostOf(a) == name; });
  }
  if (found.empty()) {
    // Another name of an advertised host ("localhost" for 127.0.0.1), with or without the port.
    const std::string port = PortOf(name);
    std::set<std::string> ips = Resolve(HostOf(name));
    if (!ips.empty()) {
      found = Matching(*all, [&](const std::string& a) {
        if (!port.empty() && PortOf(a) != port) return false;
        std::set<std::string> theirs = Resolve(HostOf(a));
        return std::any_of(theirs.begin(), theirs.end(),
                           [&](const std::string& ip) { return ips.count(ip) > 0; });
      });
    }
  }
  if (found.empty()) {
    return Error(Code::kNotFound, "no file server '" + name +
                                      "' is registered in the VLDB (give its UUID, one of its "
                                      "advertised host:port addresses, or its host)");
  }
  return OneOf(found, name);
}

Result<NamedServer> ServerByUuid(DbSession& db, const std::string& uuid) {
  auto all = ListServers(db);
  if (!all.ok()) return all.status();
  for (const db::FileServer& s : all->servers()) {
    if (s.uuid() == uuid) {
      if (s.addresses_size() == 0) {
        return Error(Code::kUnavailable, "file server " + uuid + " advertises no address");
      }
      return Named(s, "");
    }
  }
  return Error(Code::kNotFound, "file server " + uuid + " is not registered in the VLDB");
}

Status CheckPartition(const NamedServer& s, const std::string& partition) {
  const auto& parts = s.server.partitions();
  if (std::find(parts.begin(), parts.end(), partition) != parts.end()) return Status::Ok();
  std::string list;
  for (const std::string& p : parts) list += (list.empty() ? "" : ", ") + p;
  return Error(Code::kInvalidArgument, "file server " + s.address + " has no partition '" +
                                           partition +
                                           "' (it has: " + (list.empty() ? "none" : list) + ")");
}

VolumeServerClient::VolumeServerClient(DbSession& db, const NamedServer& server) {
  fs::FileClientOptions o;
  o.address = server.address;
  o.server_principal = server.server.principal();
  client_ = fs::FileClient::Create(*db.runtime, std::move(o));
}

VolumeServerClient::~VolumeServerClient() { client_->Close(); }

Result<fs::pb::CreateVolumeReply> VolumeServerClient::Create(
    const fs::pb::CreateVolumeRequest& req) {
  return client_->CallSync<fs::pb::CreateVolumeReply>(kCreateVolume, req);
}

Result<fs::pb::DeleteVolumeReply> VolumeServerClient::Delete(
    const fs::pb::DeleteVolumeRequest& req) {
  return client_->CallSync<fs::pb::DeleteVolumeReply>(kDeleteVolume, req);
}

Result<fs::pb::ListVolumesReply> VolumeServerClient::List(const fs::pb::ListVolumesRequest& req) {
  return client_->CallSync<fs::pb::ListVolumesReply>(kListVolumes, req);
}

Result<fs::pb::ExamineVolumeReply> VolumeServerClient::Examine(
    const fs::pb::ExamineVolumeRequest& req) {
  return client_->CallSync<fs::pb::ExamineVolumeReply>(kExamineVolume, req);
}

Result<fs::pb::CloneVolumeReply> VolumeServerClient::Clone(const fs::pb::CloneVolumeRequest& req) {
  return client_->CallSync<fs::pb::CloneVolumeReply>("heka.fileserver.VolumeServer.CloneVolume", req);
}

Result<fs::pb::DumpVolumeReply> VolumeServerClient::Dump(const fs::pb::DumpVolumeRequest& req) {
  return client_->CallSync<fs::pb::DumpVolumeReply>("heka.fileserver.VolumeServer.DumpVolume", req);
}

Result<fs::pb::RestoreVolumeReply> VolumeServerClient::Restore(
    const fs::pb::RestoreVolumeRequest& req) {
  return client_->CallSync<fs::pb::RestoreVolumeReply>("heka.fileserver.VolumeServer.RestoreVolume",
                                                       req);
}

Result<fs::pb::SetVolumeOnlineReply> VolumeServerClient::SetOnline(
    const fs::pb::SetVolumeOnlineRequest& req) {
  return client_->CallSync<fs::pb::SetVolumeOnlineReply>("heka.fileserver.VolumeServer.SetOnline", req);
}

Result<fs::pb::FreezeVolumeReply> VolumeServerClient::Freeze(const fs::pb::FreezeVolumeRequest& req) {
  return client_->CallSync<fs::pb::FreezeVolumeReply>("heka.fileserver.VolumeServer.FreezeVolume", req);
}

Result<fs::pb::VolumeMovedReply> VolumeServerClient::Moved(const fs::pb::VolumeMovedRequest& req) {
  return client_->CallSync<fs::pb::VolumeMovedReply>("heka.fileserver.VolumeServer.VolumeMoved", req);
}

Status WriteVolumeSites(DbCommand& c, uint64_t id,
                        const google::protobuf::RepeatedPtrField<db::VolumeSite>& sites,
                        uint64_t generation) {
  db::Command cmd;
  db::SetVolumeSites* set = cmd.mutable_set_volume_sites();
  set->set_id(id);
  set->set_generation(generation);
  *set->mutable_sites() = sites;
  auto r = c.db->Run(c.db->client->Write(std::move(cmd)));
  return r.ok() ? Status::Ok() : r.status().WithContext("VLDB");
}

Result<uint64_t> ParseQuota(const std::string& text) {
  auto bad = [&] {
    return Error(Code::kInvalidArgument,
                 "-maxquota wants a size such as 10240 (KiB), 500M or 2G, not '" + text + "'");
  };
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return bad();
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (errno == ERANGE) return bad();
  std::string unit(end);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  if (unit.size() > 1 && (unit.substr(1) == "B" || unit.substr(1) == "IB")) unit.resize(1);
  static const std::map<std::string, int> kShift = {
      {"", 10}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}};
  auto it = kShift.find(unit);
  if (it == kShift.end()) return bad();
  if (n > (std::numeric_limits<uint64_t>::max() >> it->second)) return bad();
  return static_cast<uint64_t>(n) << it->second;
}

std::string Kib(uint64_t bytes) { return std::to_string(bytes / 1024 + (bytes % 1024 != 0)); }

}  // namespace heka::cli

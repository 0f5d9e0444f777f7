// heka vos release — copies a RW volume to all its read-only sites, as OpenAFS's:
//   clone    a read-only clone (volume id + 1) of the RW, on its partition: the snapshot every
//            site gets, made in an instant (hard links). On the RW's server it is the RO
//            instance itself; elsewhere it is only the source of the copies.
//   send     each other RO site gets what its instance lacks: a dump of the clone since the
//            change serial that instance holds (everything for a new site, or with -f). The
//            site swaps the new instance in whole, so clients see the old or the new release,
//            and are told to revalidate.
//   cleanup  a clone that is not an RO site goes.
// The release holds the VLDB operation lock (fenced as in vos move). A site that cannot be
// reached keeps its previous release; the command says so and fails, and running it again
// brings that site up to date. A release killed at any point is finished by running it again.
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/vos_common.h"
#include "cmd/vos_operation.h"

namespace heka::cli {
namespace {

using Clock = std::chrono::steady_clock;

class Release {
 public:
  Release(DbCommand& c, int64_t ttl_ms, bool verbose, bool full)
      : c_(c), lock_(c, "release", ttl_ms, verbose), full_(full) {}

  int Run();

 private:
  // Brings the RO instance at `site` up to the clone's serial; *bytes what was sent.
  Status Send(const db::VolumeSite& site, uint64_t serial, uint64_t* bytes);
  Status Fail(const Status& s) {
    lock_.Unlock();
    if (s.code() == Code::kFenced) {
      return s.WithContext("another operation took this volume over; this release stops");
    }
    return s;
  }

  DbCommand& c_;
  OperationLock lock_;
  const bool full_;
  db::Volume v_;
  std::optional<NamedServer> rw_server_;
  std::unique_ptr<VolumeServerClient> rw_;
};

Status Release::Send(const db::VolumeSite& site, uint64_t serial, uint64_t* bytes) {
  auto server = ServerByUuid(*c_.db, site.server_uuid());
  if (!server.ok()) return server.status();
  VolumeServerClient dst(*c_.db, *server);
  const uint64_t ro = v_.id() + 1;
  uint64_t from = 0;
  if (!full_) {
    fs::pb::ExamineVolumeRequest ex;
    ex.set_cell(v_.cell());
    ex.set_id(ro);
    auto have = dst.Examine(ex);
    if (have.ok() && have->status().type() == 1 && have->status().serial() <= serial) {
      from = have->status().serial();
    } else if (!have.ok() && have.status().code() != Code::kNotFound) {
      return have.status().WithContext(server->address);
    }
  }
  if (from == serial) {
    lock_.Say("site " + server->address + " has this release already (serial " + std::to_string(serial) + ")");
    std::fprintf(stderr, "Releasing volume %s: %s %s is up to date\n", v_.name().c_str(),
                 server->address.c_str(), site.partition().c_str());
    return Status::Ok();
  }
  lock_.Say("site " + server->address + ": " +
            (from == 0 ? std::string("a full copy") : "the changes after serial " + std::to_string(from)));
  fs::pb::DumpVolumeRequest dump;
  dump.set_cell(v_.cell());
  dump.set_id(ro);
  dump.set_from_serial(from);
  dump.set_encrypted(v_.encrypted());
  dump.set_key_fingerprint(v_.key_fingerprint());
  dump.set_lock_generation(lock_.generation());
  fs::pb::RestoreVolumeRequest restore;
  restore.set_cell(v_.cell());
  restore.set_id(ro);
  restore.set_read_only(true);
  restore.set_lock_generation(lock_.generation());
  Clock::time_point shown = Clock::now(), began = Clock::now();
  const uint64_t before = *bytes;
  auto last = PumpDump(
      {rw_.get(), rw_server_->address}, std::move(dump), {&dst, server->address}, std::move(restore),
      [&](const fs::pb::DumpVolumeReply& d, uint64_t sent) -> Status {
        *bytes = before + sent;
        if (std::chrono::duration<double>(Clock::now() - shown).count() >= 1.0 || d.done()) {
          shown = Clock::now();
          const double seconds = std::max(std::chrono::duration<double>(Clock::now() - began).count(), 1e-3);
          std::fprintf(stderr, "Releasing volume %s: %s %s: %llu/%llu vnodes, %.1f MB, %.1f MB/s\n",
                       v_.name().c_str(), server->address.c_str(), site.partition().c_str(),
                       static_cast<unsigned long long>(d.vnodes_done()),
                       static_cast<unsigned long long>(d.vnodes_total()),
                       static_cast<double>(sent) / 1e6, static_cast<double>(sent) / 1e6 / seconds);
        }
        return lock_.RenewIfDue();
      });
  return last.ok() ? Status::Ok() : last.status();
}

int Release::Run() {
  auto entry = c_.db->Run(c_.db->client->GetVolume(VolumeRequest(c_.Get("cell"), c_.Get("id"), true)));
  if (!entry.ok()) return c_.Fail(entry.status());
  v_ = entry->volume();
  if (Status s = lock_.Lock(v_.cell(), v_.id(), v_.name()); !s.ok()) {
    return c_.Fail(s.WithContext("locking volume " + v_.name()));
  }
  // The entry as of the lock.
  entry = c_.db->Run(c_.db->client->GetVolume(VolumeRequest(v_.cell(), std::to_string(v_.id()), true)));
  if (!entry.ok()) return c_.Fail(Fail(entry.status()));
  v_ = entry->volume();
  const db::VolumeSite* rw = nullptr;
  std::vector<db::VolumeSite> ros;
  for (const db::VolumeSite& s : v_.sites()) {
    if (s.type() == db::VolumeSite::RW) rw = &s;
    if (IsRoSite(s.type())) ros.push_back(s);
  }
  if (rw == nullptr) return c_.Fail(Fail(Error(Code::kNotFound, "volume " + v_.name() + " has no RW site")));
  if (ros.empty()) {
    return c_.Fail(Fail(Error(Code::kInvalidArgument, "volume " + v_.name() +
                                                          " has no read-only sites: add one with "
                                                          "heka vos addsite")));
  }
  auto server = ServerByUuid(*c_.db, rw->server_uuid());
  if (!server.ok()) return c_.Fail(Fail(server.status()));
  rw_server_ = *server;
  rw_ = std::make_unique<VolumeServerClient>(*c_.db, *rw_server_);
  bool clone_is_site = false;
  for (const db::VolumeSite& s : ros) clone_is_site |= s.server_uuid() == rw->server_uuid();

  if (Status s = lock_.SetPhase("clone"); !s.ok()) return c_.Fail(Fail(s));
  fs::pb::CloneVolumeRequest clone;
  clone.set_cell(v_.cell());
  clone.set_id(v_.id());
  clone.set_read_only(true);
  clone.set_lock_generation(lock_.generation());
  auto cloned = rw_->Clone(clone);
  if (!cloned.ok()) return c_.Fail(Fail(cloned.status().WithContext("cloning on " + rw_server_->address)));
  const uint64_t serial = cloned->status().serial();
  lock_.Say("cloned " + std::to_string(cloned->status().files()) + " files at serial " + std::to_string(serial));

  if (Status s = lock_.SetPhase("send"); !s.ok()) return c_.Fail(Fail(s));
  uint64_t bytes = 0;
  size_t released = clone_is_site ? 1 : 0;
  std::vector<std::string> failed;
  std::set<std::string> reached;  // servers whose RO instance now holds this release
  if (clone_is_site) reached.insert(rw->server_uuid());
  for (const db::VolumeSite& site : ros) {
    if (site.server_uuid() == rw->server_uuid()) continue;
    Status s = Send(site, serial, &bytes);
    if (s.code() == Code::kFenced) return c_.Fail(Fail(s));
    if (!s.ok()) {
      failed.push_back(s.ToString());
      auto named = ServerByUuid(*c_.db, site.server_uuid());
      const std::string where = named.ok() ? named->address : site.server_uuid();
      std::fprintf(stderr, "heka vos release: site %s %s keeps its previous release: %s\n",
                   where.c_str(), site.partition().c_str(), s.ToString().c_str());
      continue;
    }
    reached.insert(site.server_uuid());
    ++released;
  }

  if (Status s = lock_.SetPhase("cleanup"); !s.ok()) return c_.Fail(Fail(s));
  // Sites reached for the first time are released now: clients may use them.
  auto sites = v_.sites();
  bool newly = false;
  for (db::VolumeSite& site : sites) {
    if (site.type() == db::VolumeSite::RO_UNRELEASED && reached.count(site.server_uuid())) {
      site.set_type(db::VolumeSite::RO);
      newly = true;
    }
  }
  if (newly) {
    if (Status s = WriteVolumeSites(c_, v_.id(), sites, lock_.generation()); !s.ok()) {
      return c_.Fail(Fail(s));
    }
  }
  if (!clone_is_site) {
    fs::pb::DeleteVolumeRequest del;
    del.set_cell(v_.cell());
    del.set_id(v_.id() + 1);
    del.set_lock_generation(lock_.generation());
    if (auto d = rw_->Delete(del); !d.ok() && d.status().code() != Code::kNotFound) {
      return c_.Fail(Fail(d.status().WithContext("removing the release clone on " + rw_server_->address)));
    }
  }
  lock_.Unlock();
  std::printf("Released volume %s (serial %llu) to %zu of %zu read-only sites in %.2f s (%.1f MB sent)\n",
              v_.name().c_str(), static_cast<unsigned long long>(serial), released, ros.size(),
              lock_.Elapsed(), static_cast<double>(bytes) / 1e6);
  if (!failed.empty()) {
    return c_.Fail(Error(Code::kUnavailable,
                         std::to_string(failed.size()) + " site(s) keep their previous release (" +
                             failed.front() + "); run heka vos release again once they are back"));
  }
  return kExitOk;
}

}  // namespace

// heka vos release -id V -cell C [-f] [-locktime S] [-verbose]
int VosRelease(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos release", argc, argv,
      {{"id", true, "volume name or id (required)"},
       {"cell", true, "the cell (required)"},
       {"f", false, "send every site a full copy, not only what it lacks"},
       {"locktime", true, "seconds the operation lock lasts between renewals (default 60)"},
       {"verbose", false, "explain each phase"}},
      {"id", "cell"});
  if (c.exit) return *c.exit;
  auto ttl_ms = LockTimeMs(c);
  if (!ttl_ms.ok()) return UsageError(c.name, ttl_ms.status());
  Release release(c, *ttl_ms, c.Has("verbose"), c.Has("f"));
  return release.Run();
}

}  // namespace heka::cli

// heka vos move — moves a RW volume to another server or partition while clients keep using
// it, as OpenAFS's, but online:
//   copy        a full dump of a clone of the volume, restored on the destination (offline)
//   increments  dumps of what changed since, until what is left is small
//   freeze      the source refuses new operations (clients wait and retry) and lets the ones
//               in progress end; the last increment goes over
//   switch      the VLDB names the new site (fenced by the operation lock's generation)
//   online      the destination serves the volume
//   cleanup     the source drops its instance (clients that ask it are told "moved") and its
//               backup, whose BK site leaves the VLDB
// Advisory locks held on the volume move with it: the freeze returns them, the destination
// takes them over as it goes online, and their holders learn at their next lease renewal.
// The whole move holds the VLDB operation lock; every file-server step carries its
// generation, so a move paused past its lock's expiry can do nothing once another took over.
// A move that died is finished or rolled back by running the same command again: a
// destination instance the VLDB does not name is removed, a frozen source thaws (also by
// itself, after the lock's expiry).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cmd/commands.h"
#include "cmd/vos_common.h"
#include "cmd/vos_operation.h"

namespace heka::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class Move {
 public:
  Move(DbCommand& c, int64_t ttl_ms, bool verbose) : c_(c), lock_(c, "move", ttl_ms, verbose) {}

  int Run();

 private:
  Status SetPhase(const std::string& phase) { return lock_.SetPhase(phase); }
  void Unlock() { lock_.Unlock(); }
  void Say(const std::string& line) { lock_.Say(line); }
  // Dumps the changes after `from_serial` (0: all) from the source into the destination.
  // Returns the dump's serial; *vnodes the vnodes sent.
  Result<uint64_t> Transfer(uint64_t from_serial, uint64_t* vnodes, uint64_t* bytes);
  Status Fail(const Status& s, bool thaw);

  DbCommand& c_;
  OperationLock lock_;
  db::Volume v_;
  std::optional<NamedServer> from_, to_;
  std::string from_partition_, to_partition_;
  std::unique_ptr<VolumeServerClient> src_, dst_;
  uint64_t total_bytes_ = 0;
};

Result<uint64_t> Move::Transfer(uint64_t from_serial, uint64_t* vnodes, uint64_t* bytes) {
  fs::pb::DumpVolumeRequest dump;
  dump.set_cell(v_.cell());
  dump.set_id(v_.id());
  dump.set_from_serial(from_serial);
  dump.set_encrypted(v_.encrypted());
  dump.set_key_fingerprint(v_.key_fingerprint());
  dump.set_lock_generation(lock_.generation());
  fs::pb::RestoreVolumeRequest restore;
  restore.set_cell(v_.cell());
  restore.set_id(v_.id());
  restore.set_name(v_.name());
  restore.set_lock_generation(lock_.generation());
  restore.set_partition(to_partition_);
  Clock::time_point shown = Clock::now(), began = Clock::now();
  auto last = PumpDump(
      {src_.get(), from_->address}, std::move(dump), {dst_.get(), to_->address}, std::move(restore),
      [&](const fs::pb::DumpVolumeReply& d, uint64_t sent) -> Status {
        *bytes = sent;
        *vnodes = d.vnodes_done();
        if (from_serial == 0 && (Since(shown) >= 1.0 || d.done())) {
          shown = Clock::now();
          double seconds = std::max(Since(began), 1e-3);
          std::fprintf(stderr, "Moving volume %s: copy: %llu/%llu vnodes, %.1f MB, %.1f MB/s\n",
                       v_.name().c_str(), static_cast<unsigned long long>(d.vnodes_done()),
                       static_cast<unsigned long long>(d.vnodes_total()),
                       static_cast<double>(sent) / 1e6, static_cast<double>(sent) / 1e6 / seconds);
        }
        return lock_.RenewIfDue();
      });
  if (!last.ok()) return last.status();
  total_bytes_ += *bytes;
  return last->serial();
}

// Undoes what a failed move did before its switch: the source thaws, the destination's
// instance goes; the lock is released. The VLDB still names the source.
Status Move::Fail(const Status& s, bool thaw) {
  if (s.code() == Code::kFenced) {
    return s.WithContext("another operation took this volume over; this move stops and changes "
                         "nothing more");
  }
  if (thaw) {
    fs::pb::FreezeVolumeRequest req;
    req.set_cell(v_.cell());
    req.set_id(v_.id());
    req.set_lock_generation(lock_.generation());
    req.set_freeze(false);
    (void)src_->Freeze(req);
  }
  fs::pb::DeleteVolumeRequest del;
  del.set_cell(v_.cell());
  del.set_id(v_.id());
  del.set_lock_generation(lock_.generation());
  (void)dst_->Delete(del);
  Unlock();
  return s.WithContext("the move was rolled back; volume " + v_.name() + " stays on " +
                       from_->address);
}

int Move::Run() {
  auto entry = c_.db->Run(c_.db->client->GetVolume(VolumeRequest(c_.Get("cell"), c_.Get("id"), true)));
  if (!entry.ok()) return c_.Fail(entry.status());
  v_ = entry->volume();
  auto from = ResolveServer(*c_.db, c_.Get("fromserver"));
  if (!from.ok()) return c_.Fail(from.status());
  auto to = ResolveServer(*c_.db, c_.Get("toserver"));
  if (!to.ok()) return c_.Fail(to.status());
  from_ = *from;
  to_ = *to;
  from_partition_ = c_.Get("frompartition");
  to_partition_ = c_.Get("topartition");
  if (Status s = CheckPartition(*to_, to_partition_); !s.ok()) return c_.Fail(s);
  if (from_->server.uuid() == to_->server.uuid()) {
    return c_.Fail(Error(Code::kInvalidArgument,
                         "moving between partitions of one server is not supported yet: move it "
                         "to another server"));
  }
  const db::VolumeSite* rw = nullptr;
  for (const db::VolumeSite& s : v_.sites()) {
    if (s.type() == db::VolumeSite::RW) rw = &s;
  }
  if (rw == nullptr) return c_.Fail(Error(Code::kNotFound, "volume " + v_.name() + " has no RW site"));
  src_ = std::make_unique<VolumeServerClient>(*c_.db, *from_);
  dst_ = std::make_unique<VolumeServerClient>(*c_.db, *to_);
  if (Status s = lock_.Lock(v_.cell(), v_.id(), v_.name()); !s.ok()) {
    return c_.Fail(s.WithContext("locking volume " + v_.name()));
  }
  // The entry as of the lock: an earlier run may have switched it already.
  entry = c_.db->Run(c_.db->client->GetVolume(VolumeRequest(v_.cell(), std::to_string(v_.id()), true)));
  if (!entry.ok()) {
    Unlock();
    return c_.Fail(entry.status());
  }
  v_ = entry->volume();
  for (const db::VolumeSite& s : v_.sites()) {
    if (s.type() == db::VolumeSite::RW) rw = &s;
  }
  const bool at_source = rw->server_uuid() == from_->server.uuid() && rw->partition() == from_partition_;
  const bool at_dest = rw->server_uuid() == to_->server.uuid() && rw->partition() == to_partition_;
  if (!at_source && !at_dest) {
    Unlock();
    return c_.Fail(Error(Code::kInvalidArgument,
                         "volume " + v_.name() + " is not on " + c_.Get("fromserver") + " " +
                             from_partition_ + " (heka vos examine -id " + v_.name() + ")"));
  }
  if (at_dest) {  // an earlier move switched the VLDB and died: finish its cleanup
    // The source gives up its instance and its advisory locks, which the destination takes.
    fs::pb::VolumeMovedRequest moved;
    moved.set_cell(v_.cell());
    moved.set_id(v_.id());
    moved.set_lock_generation(lock_.generation());
    auto gone = src_->Moved(moved);
    fs::pb::SetVolumeOnlineRequest online;
    online.set_cell(v_.cell());
    online.set_id(v_.id());
    online.set_online(true);
    online.set_lock_generation(lock_.generation());
    if (gone.ok()) *online.mutable_locks() = gone->locks();
    auto on = dst_->SetOnline(online);
    Unlock();
    if (!on.ok()) return c_.Fail(on.status().WithContext("bringing it online on " + to_->address));
    if (!gone.ok()) {
      return c_.Fail(gone.status().WithContext("removing the source instance on " + from_->address +
                                               " (run this command again once it answers)"));
    }
    std::printf("Volume %s was already moved to %s %s; finished the cleanup of that move\n",
                v_.name().c_str(), to_->address.c_str(), to_partition_.c_str());
    return kExitOk;
  }
  // A destination instance the VLDB does not name is left from a move that died: it goes.
  {
    fs::pb::DeleteVolumeRequest del;
    del.set_cell(v_.cell());
    del.set_id(v_.id());
    del.set_lock_generation(lock_.generation());
    auto d = dst_->Delete(del);
    if (d.ok()) {
      std::fprintf(stderr, "Removed the instance of %s on %s left by an earlier move\n",
                   v_.name().c_str(), to_->address.c_str());
    } else if (d.status().code() != Code::kNotFound) {
      Unlock();
      return c_.Fail(d.status().WithContext("removing a stale instance on " + to_->address));
    }
  }
  // A source left frozen by an earlier move thaws (it belongs to this lock now).
  {
    fs::pb::FreezeVolumeRequest thaw;
    thaw.set_cell(v_.cell());
    thaw.set_id(v_.id());
    thaw.set_lock_generation(lock_.generation());
    thaw.set_freeze(false);
    (void)src_->Freeze(thaw);
  }

  if (Status s = SetPhase("copy"); !s.ok()) return c_.Fail(Fail(s, false));
  uint64_t vnodes = 0, bytes = 0;
  auto serial = Transfer(0, &vnodes, &bytes);
  if (!serial.ok()) return c_.Fail(Fail(serial.status(), false));
  Say("copied " + std::to_string(vnodes) + " vnodes, " + std::to_string(bytes) + " bytes, up to serial " +
      std::to_string(*serial));
  if (Status s = SetPhase("increments"); !s.ok()) return c_.Fail(Fail(s, false));
  for (int round = 0; round < 5; ++round) {  // until what changes meanwhile is small
    auto next = Transfer(*serial, &vnodes, &bytes);
    if (!next.ok()) return c_.Fail(Fail(next.status(), false));
    Say("increment " + std::to_string(round + 1) + ": " + std::to_string(vnodes) + " vnodes, " +
        std::to_string(bytes) + " bytes, up to serial " + std::to_string(*next));
    const bool small = vnodes < 64 && bytes < (8u << 20);
    serial = next;
    if (small) break;
  }
  if (Status s = SetPhase("freeze"); !s.ok()) return c_.Fail(Fail(s, false));
  const auto frozen_at = Clock::now();
  fs::pb::FreezeVolumeRequest freeze;
  freeze.set_cell(v_.cell());
  freeze.set_id(v_.id());
  freeze.set_lock_generation(lock_.generation());
  freeze.set_freeze(true);
  auto frozen = src_->Freeze(freeze);
  if (!frozen.ok()) return c_.Fail(Fail(frozen.status(), true));
  auto last = Transfer(*serial, &vnodes, &bytes);
  if (!last.ok()) return c_.Fail(Fail(last.status(), true));
  Say("final increment: " + std::to_string(vnodes) + " vnodes, " + std::to_string(bytes) +
      " bytes, up to serial " + std::to_string(*last));
  if (Status s = SetPhase("switch"); !s.ok()) return c_.Fail(Fail(s, true));
  // The VLDB names the destination; the backup (on the source's partition) is not moved.
  db::Command sites;
  db::SetVolumeSites* set = sites.mutable_set_volume_sites();
  set->set_id(v_.id());
  set->set_generation(lock_.generation());
  bool had_backup = false;
  for (const db::VolumeSite& s : v_.sites()) {
    if (s.type() == db::VolumeSite::BK) {
      had_backup = true;
      continue;
    }
    db::VolumeSite* out = set->add_sites();
    *out = s;
    if (s.type() == db::VolumeSite::RW) {
      out->set_server_uuid(to_->server.uuid());
      out->set_partition(to_partition_);
    }
  }
  auto switched = c_.db->Run(c_.db->client->Write(std::move(sites)));
  if (!switched.ok()) return c_.Fail(Fail(switched.status().WithContext("VLDB"), true));
  if (Status s = SetPhase("online"); !s.ok()) return c_.Fail(s.WithContext("after the VLDB switch; run the same vos move again"));
  fs::pb::SetVolumeOnlineRequest online;
  online.set_cell(v_.cell());
  online.set_id(v_.id());
  online.set_online(true);
  online.set_lock_generation(lock_.generation());
  *online.mutable_locks() = frozen->locks();  // held advisory locks move with the volume
  if (auto on = dst_->SetOnline(online); !on.ok()) {
    return c_.Fail(on.status().WithContext("after the VLDB switch; run the same vos move again"));
  }
  const double freeze_ms = Since(frozen_at) * 1000;
  if (Status s = SetPhase("cleanup"); !s.ok()) return c_.Fail(s.WithContext("after the switch; run the same vos move again"));
  fs::pb::VolumeMovedRequest moved;
  moved.set_cell(v_.cell());
  moved.set_id(v_.id());
  moved.set_lock_generation(lock_.generation());
  if (auto gone = src_->Moved(moved); !gone.ok()) {
    return c_.Fail(gone.status().WithContext("removing the source instance; run the same vos move again"));
  }
  if (had_backup) {
    fs::pb::DeleteVolumeRequest del;
    del.set_cell(v_.cell());
    del.set_id(v_.id() + 2);
    (void)src_->Delete(del);
  }
  Unlock();
  std::printf("Volume %s moved from %s %s to %s %s in %.2f s (%.1f MB; clients waited at most "
              "%.0f ms, the freeze)\n",
              v_.name().c_str(), from_->address.c_str(), from_partition_.c_str(),
              to_->address.c_str(), to_partition_.c_str(), lock_.Elapsed(),
              static_cast<double>(total_bytes_) / 1e6, freeze_ms);
  if (had_backup) std::printf("    its backup volume was removed (run heka vos backup again)\n");
  return kExitOk;
}

}  // namespace

// heka vos move -id V -fromserver S -frompartition P -toserver S -topartition P -cell C
int VosMove(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos move", argc, argv,
      {{"id", true, "volume name or id (required)"},
       {"fromserver", true, "the server it is on (required)"},
       {"frompartition", true, "the partition it is on (required)"},
       {"toserver", true, "the server it goes to (required)"},
       {"topartition", true, "the partition it goes to (required)"},
       {"cell", true, "the cell (required)"},
       {"locktime", true, "seconds the operation lock lasts between renewals (default 60)"},
       {"verbose", false, "explain each phase"}},
      {"id", "fromserver", "frompartition", "toserver", "topartition", "cell"});
  if (c.exit) return *c.exit;
  auto ttl_ms = LockTimeMs(c);
  if (!ttl_ms.ok()) return UsageError(c.name, ttl_ms.status());
  Move move(c, *ttl_ms, c.Has("verbose"));
  return move.Run();
}

}  // namespace heka::cli

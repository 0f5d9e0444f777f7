#include "cmd/vos_operation.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "cmd/vos_common.h"

namespace heka::cli {
namespace {

std::string Host() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

// Whether `owner` ("vos <op> pid N on <host>") is a vos of this host whose process is gone.
bool OwnerIsGone(const std::string& owner) {
  const std::string suffix = " on " + Host();
  const size_t pid_at = owner.find(" pid ");
  if (owner.rfind("vos ", 0) != 0 || pid_at == std::string::npos || !owner.ends_with(suffix)) {
    return false;
  }
  const size_t from = pid_at + 5;
  if (owner.size() < from + suffix.size()) return false;
  const std::string pid = owner.substr(from, owner.size() - from - suffix.size());
  char* end = nullptr;
  long n = std::strtol(pid.c_str(), &end, 10);
  if (pid.empty() || *end != '\0' || n <= 0) return false;
  return ::kill(static_cast<pid_t>(n), 0) != 0 && errno == ESRCH;
}

void MaybeDie(const std::string& phase) {
  const char* kill_at = std::getenv("HEKA_VOS_TEST_KILL_AT");
  if (kill_at != nullptr && phase == kill_at) ::raise(SIGKILL);
  const char* stop_at = std::getenv("HEKA_VOS_TEST_STOP_AT");
  if (stop_at != nullptr && phase == stop_at) ::raise(SIGSTOP);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OperationLock::OperationLock(DbCommand& c, std::string operation, int64_t ttl_ms, bool verbose)
    : c_(c), operation_(std::move(operation)), ttl_ms_(ttl_ms), verbose_(verbose) {}

Status OperationLock::Lock(const std::string& cell, uint64_t id, const std::string& name) {
  id_ = id;
  for (;;) {
    db::Command cmd;
    db::LockVolume* lock = cmd.mutable_lock_volume();
    lock->set_id(id);
    lock->set_owner("vos " + operation_ + " pid " + std::to_string(::getpid()) + " on " + Host());
    lock->set_ttl_ms(ttl_ms_);
    lock->set_operation(operation_);
    lock->set_phase("start");
    auto r = c_.db->Run(c_.db->client->Write(std::move(cmd)));
    if (r.ok()) {
      generation_ = r->generation();
      phase_ = "start";
      renewed_ = std::chrono::steady_clock::now();
      return Status::Ok();
    }
    if (r.status().code() != Code::kLocked) return r.status();
    // An operation of a vos that died holds it: wait for its expiry, then take over.
    auto entry = c_.db->Run(c_.db->client->GetVolume(VolumeRequest(cell, std::to_string(id), true)));
    if (!entry.ok()) return entry.status();
    const db::VolumeLock& held = entry->volume().lock();
    if (!OwnerIsGone(held.owner())) {
      return r.status().WithContext("wait for it to finish, or run heka vos unlock -id " + name +
                                    " if it is dead");
    }
    const int64_t left_ms = std::max<int64_t>(0, (held.expires_ns() - NowNs()) / 1000000) + 50;
    if (left_ms > 10 * 60 * 1000) return r.status();
    std::fprintf(stderr,
                 "The lock is held by %s, which is gone (operation %s, phase %s); taking over "
                 "when it expires in %.1f s\n",
                 held.owner().c_str(), held.operation().c_str(), held.phase().c_str(),
                 static_cast<double>(left_ms) / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(left_ms));
  }
}

Status OperationLock::SetPhase(const std::string& phase) {
  MaybeDie(phase);
  db::Command cmd;
  db::LockVolume* lock = cmd.mutable_lock_volume();
  lock->set_id(id_);
  lock->set_ttl_ms(ttl_ms_);
  lock->set_expect_generation(generation_);
  lock->set_phase(phase);
  auto r = c_.db->Run(c_.db->client->Write(std::move(cmd)));
  if (!r.ok()) return r.status().WithContext("renewing the " + operation_ + "'s lock");
  renewed_ = std::chrono::steady_clock::now();
  phase_ = phase;
  Say("phase " + phase + " (" + std::to_string(static_cast<int>(Elapsed() * 1000)) + " ms)");
  return Status::Ok();
}

Status OperationLock::RenewIfDue() {
  const double since =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - renewed_).count();
  if (since <= static_cast<double>(ttl_ms_) / 3) return Status::Ok();
  db::Command cmd;
  db::LockVolume* lock = cmd.mutable_lock_volume();
  lock->set_id(id_);
  lock->set_ttl_ms(ttl_ms_);
  lock->set_expect_generation(generation_);
  auto r = c_.db->Run(c_.db->client->Write(std::move(cmd)));
  if (!r.ok()) return r.status().WithContext("renewing the " + operation_ + "'s lock");
  renewed_ = std::chrono::steady_clock::now();
  return Status::Ok();
}

void OperationLock::Unlock() {
  db::Command cmd;
  cmd.mutable_unlock_volume()->set_id(id_);
  cmd.mutable_unlock_volume()->set_generation(generation_);
  (void)c_.db->Run(c_.db->client->Write(std::move(cmd)));
}

double OperationLock::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void OperationLock::Say(const std::string& line) const {
  if (verbose_) std::fprintf(stderr, "%s\n", line.c_str());
}

Result<fs::pb::DumpVolumeReply> PumpDump(
    const Endpoint& src, fs::pb::DumpVolumeRequest dump, const Endpoint& dst,
    fs::pb::RestoreVolumeRequest restore,
    const std::function<Status(const fs::pb::DumpVolumeReply&, uint64_t)>& each) {
  using Piece = Result<fs::pb::DumpVolumeReply>;
  Piece piece = src.client->Dump(dump);
  uint64_t bytes = 0;
  for (;;) {
    if (!piece.ok()) return piece.status().WithContext("dumping on " + src.name);
    dump.set_session(piece->session());
    const bool last = piece->done();
    std::future<Piece> next;  // the next piece, fetched meanwhile
    if (!last) {
      next = std::async(std::launch::async, [client = src.client, dump] { return client->Dump(dump); });
    }
    auto finish = [&](Status s) -> Piece {
      if (next.valid()) (void)next.get();
      return s;
    };
    bytes += piece->data().size();
    restore.set_data(std::move(*piece->mutable_data()));
    restore.set_last(last);
    auto r = dst.client->Restore(restore);
    if (!r.ok()) return finish(r.status().WithContext("restoring on " + dst.name));
    restore.set_session(r->session());
    if (Status s = each(*piece, bytes); !s.ok()) return finish(s);
    if (last) return piece;
    piece = next.get();
  }
}

Result<int64_t> LockTimeMs(const DbCommand& c) {
  if (!c.Has("locktime")) return int64_t{60000};
  const std::string text = c.Get("locktime");
  char* end = nullptr;
  double seconds = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(seconds > 0)) {
    return Error(Code::kInvalidArgument, "-locktime wants seconds");
  }
  return static_cast<int64_t>(seconds * 1000);
}

}  // namespace heka::cli

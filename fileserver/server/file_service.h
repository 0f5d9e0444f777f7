// FileService: the heka.fileserver.File and heka.fileserver.VolumeServer handlers of one heka-fileserver.
// Every request names a volume and the cell it believes that volume is in; a volume this
// server does not hold, or one of another cell, is refused with a bare "permission denied".
// The caller's rights come from the ACL of the directory concerned and the caller's CPS in
// the volume's cell (rights.h); every status reply carries them. Volume work (SQLite,
// fsync) runs on the service's disk pool, never on an I/O thread; breaks of the vnodes a
// request changed are sent after its volume work and before its reply (callbacks.h).
// Thread-safe: handlers run concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "dbserver/client/db_client.h"
#include "fileserver/server/callbacks.h"
#include "fileserver/server/config.h"
#include "fileserver/server/locks.h"
#include "fileserver/server/rights.h"
#include "fileserver/volume/volume.h"
#include "proto/fileserver.pb.h"
#include "rpc/registry.h"
#include "rpc/runtime.h"

namespace heka::fs {

struct DumpSession;  // a dump or restore in progress (volume_service.cc)

// One volume instance this server serves.
struct ServedVolume {
  std::unique_ptr<Volume> volume;
  VolumeType type = VolumeType::kReadWrite;  // a backup (or replica) refuses every change
  std::string cell;
  std::string partition;
  std::atomic<bool> online{true};
  // `vos move`: moved away (clients get kVolumeMoved); frozen by a move whose lock has this
  // generation, until this steady-clock time (then the server checks the VLDB and thaws it if
  // the move did not finish); operations running now (a freeze waits for them to end).
  std::atomic<bool> moved{false};
  std::atomic<uint64_t> frozen_generation{0};
  std::atomic<int64_t> frozen_until_ns{0};
  std::atomic<int> in_flight{0};
  // A restore or release is putting a new instance in its place: clients wait and retry
  // (kVolumeBusy) instead of failing.
  std::atomic<bool> swapping{false};
};

// Counts an operation on a volume while it runs.
class InFlight {
 public:
  InFlight() = default;
  ~InFlight() { Release(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  void Hold(std::shared_ptr<ServedVolume> vol) {
    Release();
    vol_ = std::move(vol);
    vol_->in_flight.fetch_add(1);
  }
  void Release() {
    if (vol_) vol_->in_flight.fetch_sub(1);
    vol_.reset();
  }

 private:
  std::shared_ptr<ServedVolume> vol_;
};

// The volumes of this server, by id. Thread-safe.
class VolumeTable {
 public:
  void Put(uint64_t id, std::shared_ptr<ServedVolume> volume);
  std::shared_ptr<ServedVolume> Find(uint64_t id) const;
  std::shared_ptr<ServedVolume> Take(uint64_t id);  // removes it
  std::vector<std::pair<uint64_t, std::shared_ptr<ServedVolume>>> All() const;

 private:
  mutable std::shared_mutex mu_;
  std::map<uint64_t, std::shared_ptr<ServedVolume>> volumes_;
};

// Callers' CPS per (cell, principal), fetched from the PTDB and kept for `ttl`, so a
// membership change takes effect within that time. Get() blocks: call it off the I/O threads.
class CpsCache {
 public:
  CpsCache(rpc::Runtime& runtime, db::DbClient& db, std::chrono::milliseconds ttl);
  Result<Cps> Get(const std::string& cell, const std::string& principal);

 private:
  struct Entry {
    Cps cps;
    std::chrono::steady_clock::time_point fetched;
  };
  rpc::Runtime& runtime_;
  db::DbClient& db_;
  const std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Entry> entries_;  // mu_
};

struct FileServiceDeps {
  const FileServerConfig* config = nullptr;
  rpc::Runtime* runtime = nullptr;
  db::DbClient* db = nullptr;
  Env* env = nullptr;          // storage seam (DefaultEnv() in the daemon)
  std::string server_uuid;     // as registered in the VLDB
  int64_t epoch_ns = 0;        // this process's start time
};

class FileService {
 public:
  explicit FileService(FileServiceDeps deps);
  ~FileService();

  void Register(rpc::HandlerRegistry& registry);
  // A clean stop: waits for the volume work in flight (call before stopping the runtime) and
  // records whether advisory locks were held (if none, the next start has no grace period).
  void Shutdown();
  // Removes the dirty marker of volumes changed since the last call that are now idle, so
  // that after a crash only the volumes being changed then need a salvage. Call every few
  // seconds; the work runs on the disk pool.
  void MarkIdleVolumesClean();
  VolumeTable& volumes() { return volumes_; }
  Callbacks& callbacks() { return callbacks_; }
  VolumeOptions OptionsFor(const std::string& partition) const;
  // Records the cell of a volume in its directory (read back by LoadCell at start).
  static Status SaveCell(Env& env, const std::string& volume_dir, const std::string& cell);
  static Result<std::string> LoadCell(const std::string& volume_dir);

 private:
  // What one request knows about its caller and the volume it touches.
  struct Op {
    krb::Identity peer;
    std::string client;           // the caller's cache manager UUID ("" if none)
    std::shared_ptr<rpc::Connection> conn;
    std::shared_ptr<ServedVolume> vol;
    std::string cell;
    uint64_t volume = 0;
    Cps cps;
    std::vector<pb::Fid> breaks;      // vnodes this request changed
    bool changes = false;             // a method that changes the volume (refused on a backup)
    InFlight in_flight;               // on `vol`, from Enter on
  };
  // A vnode with the caller's rights on it.
  struct Node {
    VnodeStatus v;
    uint32_t dir_rights = 0;      // rights from the governing directory's ACL
    uint32_t rights = 0;          // as reported (file mode bits applied)
    uint32_t anyuser = 0;
  };
  struct Store;
  struct PartialChunk;
  static constexpr size_t kMaxPartialChunks = 16;

  template <typename Req, typename Rep>
  void Add(rpc::HandlerRegistry& registry, std::string_view method,
           Result<Rep> (FileService::*fn)(Op&, const Req&));

  Status Enter(Op& op, const std::string& cell, uint64_t volume);
  Result<Node> Load(Op& op, const pb::Fid& fid);
  Result<Node> LoadVnode(Op& op, uint64_t vnode);
  Result<Node> LoadDir(Op& op, const pb::Fid& fid);
  Status Hide(Op& op, Status s);  // "not found" becomes "permission denied" for outsiders
  pb::Fid FidOf(const Op& op, const VnodeStatus& v) const;
  pb::Fid FidOf(const Op& op, uint64_t vnode, uint64_t uniq) const;
  void Fill(const Op& op, const Node& n, pb::FileStatus* out) const;
  void Grant(Op& op, const Node& n, pb::Callback* out);
  Result<pb::FileStatus> StatusOf(Op& op, uint64_t vnode);
  bool IsProviderAdmin(const krb::Identity& peer) const;

  // heka.fileserver.File
  Result<pb::FetchStatusReply> FetchStatus(Op& op, const pb::FetchStatusRequest& req);
  Result<pb::BulkStatusReply> BulkStatus(Op& op, const pb::BulkStatusRequest& req);
  Result<pb::LookupReply> Lookup(Op& op, const pb::LookupRequest& req);
  Result<pb::ListDirReply> ListDir(Op& op, const pb::ListDirRequest& req);
  Result<pb::FetchDataReply> FetchData(Op& op, const pb::FetchDataRequest& req);
  Result<pb::BeginStoreReply> BeginStore(Op& op, const pb::BeginStoreRequest& req);
  Result<pb::StoreDataReply> StoreData(Op& op, const pb::StoreDataRequest& req);
  Result<pb::CommitStoreReply> CommitStore(Op& op, const pb::CommitStoreRequest& req);
  Result<pb::AbortStoreReply> AbortStore(Op& op, const pb::AbortStoreRequest& req);
  Result<pb::CreateReply> Create(Op& op, const pb::CreateRequest& req, VnodeType type);
  Result<pb::CreateReply> CreateFile(Op& op, const pb::CreateRequest& req);
  Result<pb::CreateReply> MakeDir(Op& op, const pb::CreateRequest& req);
  Result<pb::CreateReply> Symlink(Op& op, const pb::CreateRequest& req);
  Result<pb::CreateReply> Link(Op& op, const pb::LinkRequest& req);
  Result<pb::RenameReply> Rename(Op& op, const pb::RenameRequest& req);
  Result<pb::RemoveReply> Remove(Op& op, const pb::RemoveRequest& req, bool dir);
  Result<pb::RemoveReply> RemoveFile(Op& op, const pb::RemoveRequest& req);
  Result<pb::RemoveReply> RemoveDir(Op& op, const pb::RemoveRequest& req);
  Result<pb::SetAttrReply> SetAttr(Op& op, const pb::SetAttrRequest& req);
  Result<pb::FetchAclReply> FetchAcl(Op& op, const pb::FetchAclRequest& req);
  Result<pb::StoreAclReply> StoreAcl(Op& op, const pb::StoreAclRequest& req);
  Result<pb::GetVolumeStatusReply> GetVolumeStatus(Op& op, const pb::GetVolumeStatusRequest& req);
  Result<pb::SetQuotaReply> SetQuota(Op& op, const pb::SetQuotaRequest& req);
  Result<pb::SetLockReply> SetLock(Op& op, const pb::SetLockRequest& req);
  Result<pb::ReleaseLockReply> ReleaseLock(Op& op, const pb::ReleaseLockRequest& req);
  Result<pb::RenewLocksReply> RenewLocks(Op& op, const pb::RenewLocksRequest& req);

  // heka.fileserver.VolumeServer (volume_service.cc)
  Status RequireVolumeAdmin(Op& op, const std::string& cell);
  Result<pb::VolumeStatus> Describe(uint64_t id, const ServedVolume& vol) const;
  Result<pb::CreateVolumeReply> CreateVolume(Op& op, const pb::CreateVolumeRequest& req);
  Result<pb::DeleteVolumeReply> DeleteVolume(Op& op, const pb::DeleteVolumeRequest& req);
  Result<pb::ListVolumesReply> ListVolumes(Op& op, const pb::ListVolumesRequest& req);
  Result<pb::ExamineVolumeReply> ExamineVolume(Op& op, const pb::ExamineVolumeRequest& req);
  Result<pb::SetQuotaReply> VolSetQuota(Op& op, const pb::SetQuotaRequest& req);
  Result<pb::SetVolumeOnlineReply> SetOnline(Op& op, const pb::SetVolumeOnlineRequest& req);
  Result<pb::CloneVolumeReply> CloneVolume(Op& op, const pb::CloneVolumeRequest& req);
  Result<pb::DumpVolumeReply> DumpVolume(Op& op, const pb::DumpVolumeRequest& req);
  Result<pb::RestoreVolumeReply> RestoreVolume(Op& op, const pb::RestoreVolumeRequest& req);
  Result<pb::FreezeVolumeReply> FreezeVolume(Op& op, const pb::FreezeVolumeRequest& req);
  Result<pb::VolumeMovedReply> VolumeMoved(Op& op, const pb::VolumeMovedRequest& req);
  // kFenced unless the VLDB's operation lock of `cell`'s volume `id` is held, unexpired, with
  // `generation`. Returns the entry.
  Result<db::Volume> CheckLock(const std::string& cell, uint64_t id, uint64_t generation);
  // CheckLock's status for a request that carries `generation`; OK for 0 (no operation lock).
  Status Fenced(const std::string& cell, uint64_t id, uint64_t generation);
  // Stops serving `old`, an instance about to be replaced: new operations get kVolumeBusy
  // (clients retry), running ones end first; its Volume is closed. Returns its directory.
  std::string Retire(ServedVolume& old);
  // Waits up to 30 s for the operations running on `vol` to end; false if they did not.
  bool WaitIdle(ServedVolume& vol);
  // Whether `vol` (volume `id`) may serve operations now: kVolumeMoved, kVolumeOffline; a
  // freeze past its lock's expiry is lifted here if the VLDB still places the volume here.
  Status Available(uint64_t id, ServedVolume& vol);
  // Takes `vol` offline for the move of lock `generation`, until that lock's expiry.
  void Freeze(ServedVolume& vol, const std::string& cell, uint64_t id, uint64_t generation);
  Result<std::shared_ptr<DumpSession>> StartDump(Op& op, const pb::DumpVolumeRequest& req);
  Result<std::shared_ptr<DumpSession>> StartRestore(Op& op, const pb::RestoreVolumeRequest& req);
  Result<std::shared_ptr<DumpSession>> FindSession(const Op& op, uint64_t id);
  uint64_t RegisterSession(Op& op, std::shared_ptr<DumpSession> session);
  // Session *id of this connection, or, for *id 0, a new one made by `start` (*id set).
  Result<std::shared_ptr<DumpSession>> OpenSession(
      Op& op, uint64_t* id, const std::function<Result<std::shared_ptr<DumpSession>>()>& start);
  Result<pb::VolumeStatus> SwapInRestored(Op& op, DumpSession& s);
  // The partition where the VLDB places `cell`'s volume `id` (RW site) on this server.
  Result<std::string> RwPartitionHere(const std::string& cell, uint64_t id, std::string* name);

  // Store transactions in progress, by id; each belongs to one connection.
  Result<std::shared_ptr<Store>> FindStore(const Op& op, uint64_t id);
  void DropStoresOf(const rpc::Connection* conn);
  Status FlushChunk(Store& store, uint64_t index);
  Status FlushPartial(Store& store);
  Status EndStore(Store& store, uint64_t id, Status why);  // REQUIRES store.mu held

  // Dumps and restores in progress (volume_service.cc), by session id; each belongs to one
  // connection and holds a staging directory that goes with it.
  std::mutex sessions_mu_;
  std::map<uint64_t, std::shared_ptr<DumpSession>> sessions_;
  uint64_t next_session_ = 1;

  FileServiceDeps deps_;
  const FileServerConfig& config_;
  VolumeTable volumes_;
  Callbacks callbacks_;
  CpsCache cps_;
  LockTable locks_;
  std::set<std::string> provider_admins_;
  rpc::asio::thread_pool disk_{8};

  std::mutex stores_mu_;
  uint64_t next_store_ = 1;                                    // stores_mu_
  std::unordered_map<uint64_t, std::shared_ptr<Store>> stores_;  // stores_mu_
  std::set<const rpc::Connection*> observed_;                  // stores_mu_
  std::mutex touched_mu_;
  std::set<uint64_t> touched_;  // touched_mu_: volumes changed since MarkIdleVolumesClean
};

}  // namespace heka::fs

// DbClient: the client library of the replicated database (the heka.db.Db service). Every
// other component and the `heka` CLI reach the VLDB and PTDB only through it (DESIGN.md §1).
// It keeps one rpc::Client per DB member and sends writes (and leader_only reads) to the
// leader, following "not leader, try X" hints; other reads fail over to any member. Writes
// carry a request id that every retry reuses, so a retry after "outcome unknown" applies
// once (DESIGN.md §4).
//
// Retry policy of one call: a member that cannot be asked (kUnavailable, kDeadlineExceeded,
// kConnectionClosed, kProtocolError, kUnknownServer, kBadServerKey) or cannot answer
// (kNoQuorum, kStale) sends the call to the next member; kNotLeader follows its "leader="
// hint; any other status is the answer. A round in which every member was unreachable ends
// the call (kUnavailable). Otherwise it pauses retry_pause after each round and gives up at
// retry_deadline: kNoQuorum for leader calls that met no leader, else the last status; the
// message then lists each member's latest error.
//
// Thread-safety: every method may be called concurrently from any thread or coroutine; the
// member table is guarded by an internal mutex that is never held across a suspension.
// The coroutines capture `this`: the DbClient must outlive every call it started, and the
// rpc::Runtime must outlive the DbClient.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "krb/gss.h"
#include "proto/db.pb.h"
#include "rpc/client.h"
#include "rpc/handshake.h"
#include "rpc/runtime.h"
#include "util/status.h"

namespace heka::db {

using std::chrono::milliseconds;

// One DB member as a client sees it.
struct DbMember {
  std::string address;  // "host:port" or "[v6]:port". Required.
  // e.g. "heka/db1.example@REALM". Default (empty): heka/<host>@<default realm>.
  std::string principal;
  bool operator==(const DbMember&) const = default;
};

struct DbClientOptions {
  std::vector<DbMember> members;       // REQUIRES: not empty.
  krb::ClientCredentials credentials;  // Default: the process's default ccache.
  // How long a call keeps trying other members while no leader answers (kNoQuorum, a chain
  // of kNotLeader hints, unreachable leaders). Default 5 s.
  milliseconds retry_deadline{5000};
  milliseconds call_timeout{10000};     // one attempt at one member. Default 10 s.
  milliseconds backup_timeout{120000};  // one Backup attempt (a whole image). Default 120 s.
  milliseconds retry_pause{100};        // pause after every member was tried once. Default 100 ms.
  milliseconds connect_timeout{3000};   // TCP connect to one member. Default 3 s.
  // Reads go to the leader when one answers within a second (so a script sees its own
  // writes), and to any member otherwise. Default false: any member (AFS semantics).
  bool prefer_leader_reads = false;
  rpc::ContextFactory test_context;     // test seam; empty = GSS-API with `credentials`.
};

// Parses "host:port,host:port=heka/host@REALM,..." (the -dbservers / HEKA_DBSERVERS syntax):
// comma- or space-separated members, each an endpoint optionally followed by "=principal".
Result<std::vector<DbMember>> ParseMembers(std::string_view list);

// The leader address named by a kNotLeader message ("leader=db2:7003"), if any.
std::optional<std::string> ParseLeaderHint(std::string_view message);

// A fresh random 128-bit request id, as 32 lower-case hex digits.
std::string NewRequestId();

class DbClient {
 public:
  explicit DbClient(rpc::Runtime& runtime, DbClientOptions options);
  DbClient(rpc::Runtime& runtime, std::vector<DbMember> members,
           krb::ClientCredentials credentials);
  ~DbClient();
  DbClient(const DbClient&) = delete;
  DbClient& operator=(const DbClient&) = delete;

  // ---- Coroutines. Each takes its arguments by value (it may run after the caller's
  // temporaries are gone). Errors are heka Statuses: a server's refusal keeps its code.

  // Proposes `command` at the leader and returns what applying it produced. An empty
  // request_id is filled with NewRequestId(); every retry of this call sends the same id.
  // A CommandResult whose code is not kOk comes back as that Status (code and message).
  // After retry_deadline without a leader: kNoQuorum.
  rpc::awaitable<Result<CommandResult>> Write(Command command);

  // Reads. Any member answers (failing over on unreachable members) unless
  // request.options().leader_only, which asks the leader (read-your-writes).
  rpc::awaitable<Result<GetCellReply>> GetCell(GetCellRequest request);
  rpc::awaitable<Result<ListCellsReply>> ListCells(ListCellsRequest request);
  rpc::awaitable<Result<GetEntryReply>> GetEntry(GetEntryRequest request);
  rpc::awaitable<Result<ListEntriesReply>> ListEntries(ListEntriesRequest request);
  rpc::awaitable<Result<MembershipReply>> Membership(MembershipRequest request);
  rpc::awaitable<Result<ListOwnedReply>> ListOwned(ListOwnedRequest request);
  // Authorisation read: a member cut off from its leader answers kStale and another is asked.
  rpc::awaitable<Result<GetCpsReply>> GetCps(GetCpsRequest request);
  rpc::awaitable<Result<GetVolumeReply>> GetVolume(GetVolumeRequest request);
  rpc::awaitable<Result<ListVolumesReply>> ListVolumes(ListVolumesRequest request);
  rpc::awaitable<Result<ListServersReply>> ListServers(ListServersRequest request);

  // The Status of exactly the member at `address` (no failover). An address that is not a
  // known member is added to the member table with the default principal.
  rpc::awaitable<Result<StatusReply>> StatusOf(std::string address);
  // Membership change at the leader (provider administrators).
  rpc::awaitable<Result<ChangeMemberReply>> ChangeMember(ChangeMemberRequest request);
  // A consistent image of the database, preferably from the leader (provider administrators).
  rpc::awaitable<Result<BackupReply>> Backup();

  // ---- Synchronous facade for CLIs: Sync(client.GetCell(req)).
  // REQUIRES: not called from one of the runtime's I/O threads.
  template <typename T>
  T Sync(rpc::awaitable<T> task) {
    return runtime_.BlockOn(std::move(task));
  }

  // The member table (the configured members, then any learnt from hints), and the address
  // of the member currently believed to lead ("" before any leader was found).
  std::vector<DbMember> members() const;
  std::string leader() const;

 private:
  // kAny: any member, starting with the last that answered; kLeader: the leader only,
  // following hints; kPreferLeader: any member, starting with the believed leader.
  enum class Route { kAny, kLeader, kPreferLeader };
  enum class Next { kDone, kFollowHint, kTryNext };
  struct Peer {
    DbMember member;
    std::shared_ptr<rpc::Client> client;
  };
  struct Attempt;  // the bookkeeping of one routed call

  // Sends `request` to members chosen by `route` until one answers or retrying is pointless.
  template <typename Rep, typename Req>
  rpc::awaitable<Result<Rep>> Routed(std::string method, Req request, Route route,
                                     milliseconds retry_deadline,
                                     milliseconds timeout);
  template <typename Rep, typename Req>
  rpc::awaitable<Result<Rep>> Read(std::string method, Req request);

  static Next Classify(const Status& status);
  Status GiveUp(const Attempt& attempt, Route route) const;
  static rpc::awaitable<void> Pause(milliseconds how_long);

  // Under mu_: index of `address` in peers_, adding a peer if it is unknown.
  size_t IndexOfLocked(const std::string& address);
  std::shared_ptr<rpc::Client> NewClientLocked(const DbMember& member);
  std::pair<std::shared_ptr<rpc::Client>, std::string> PeerAt(size_t index) const;
  size_t StartIndex(Route route) const;
  void Remember(Route route, size_t index);
  size_t FollowHint(const std::string& address);
  size_t PeerCount() const;

  rpc::Runtime& runtime_;
  const DbClientOptions options_;
  mutable std::mutex mu_;
  std::vector<Peer> peers_;    // mu_; append-only
  size_t leader_ = 0;          // mu_; index of the member believed to lead
  bool leader_known_ = false;  // mu_
  size_t reader_ = 0;          // mu_; where reads start: the last member that answered one
};

}  // namespace heka::db

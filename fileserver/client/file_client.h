// FileClient: the client library of one file server (heka.fileserver.File and
// heka.fileserver.VolumeServer).
// Every other component reaches a file server only through it (DESIGN.md §1).
//
// It keeps one rpc::Client. When `client_uuid` is set (a cache manager), every new
// connection first says Hello with it, before any other call goes out on that connection;
// the server then makes callback promises to that UUID and breaks them by calling
// heka.fileserver.CallbackService.Break on the connection. On receipt of a break the client
// runs `on_break` (which only marks) and acknowledges at once. When Hello answers that the
// server holds no promises for us (a restarted server, or promises dropped after we were
// silent), `on_revalidate` runs. Without `client_uuid` (CLI tools) there is no Hello and no
// callback.
// Thread-safe. The coroutines take their arguments by value. The rpc::Runtime must outlive
// the FileClient.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "krb/gss.h"
#include "proto/fileserver.pb.h"
#include "rpc/client.h"
#include "rpc/handshake.h"
#include "rpc/runtime.h"
#include "util/status.h"

namespace heka::fs {

namespace pb = ::heka::fileserver;  // the wire messages (proto/fileserver.proto)

struct FileClientOptions {
  std::string address;                 // "host:port". Required.
  std::string server_principal;        // Default: heka/<host>@<default realm>.
  krb::ClientCredentials credentials;  // Default: the process's default ccache.
  std::string client_uuid;             // the cache manager's UUID; empty: no callbacks
  // Runs on receipt of a break, on an I/O thread, just before the acknowledgement goes out:
  // it must only mark what it cached as invalid and return (kernel invalidation and the
  // like are to be posted elsewhere).
  std::function<void(const pb::BreakRequest&)> on_break;
  // Runs (on an I/O thread) when the server says we must revalidate everything, and when a
  // connection that said Hello closes (breaks cannot reach us any more).
  std::function<void()> on_revalidate;
  // Runs (on an I/O thread; post any blocking work elsewhere) when the server says that
  // locks this client holds moved with their volume to another server: they are no longer
  // renewed here; give them to the client for the new server (Adopt).
  // The second argument is the lease (ms) they were held under.
  std::function<void(std::vector<pb::SetLockRequest>, int64_t)> on_locks_moved;
  std::chrono::milliseconds call_timeout{30000};
  rpc::ContextFactory test_context;    // test seam; empty = GSS-API with `credentials`.
};

class FileClient : public std::enable_shared_from_this<FileClient> {
 public:
  static std::shared_ptr<FileClient> Create(rpc::Runtime& runtime, FileClientOptions options);

  // One call of `method` ("heka.fileserver.File.FetchStatus"), after Hello on a new connection.
  template <typename Rep, typename Req>
  rpc::awaitable<Result<Rep>> Call(std::string method, Req request) {
    auto conn = co_await Ready();
    if (!conn.ok()) co_return conn.status();
    co_return co_await (*conn)->template Call<Rep>(method, request, options_.call_timeout);
  }

  // Synchronous facade for CLIs and tests. REQUIRES: not on one of the runtime's I/O threads.
  template <typename Rep, typename Req>
  Result<Rep> CallSync(std::string method, Req request) {
    return runtime_.BlockOn(Call<Rep>(std::move(method), std::move(request)));
  }

  // ---- Advisory locks (REQUIRES client_uuid). They are leases: once this client holds one, it
  // renews them in the background every lease/3, and after a server restart it reclaims them
  // on its first new connection. A lock the server released (lease expired while we were cut
  // off, or not reclaimable) is lost: LockState says so until the owner locks that file again.
  // kLockConflict when someone else holds an overlapping lock. length 0: to the end.
  rpc::awaitable<Status> Lock(pb::Fid fid, bool exclusive, uint64_t start, uint64_t length,
                              uint64_t owner);
  rpc::awaitable<Status> Unlock(pb::Fid fid, uint64_t start, uint64_t length, uint64_t owner);
  // OK, or kLockLost if a lock of `owner` on `fid` was lost: I/O on that handle must then fail
  // with EIO rather than silently carry on.
  Status LockState(const pb::Fid& fid, uint64_t owner) const;
  // Locks that the server (of this client) took over from another one with their volume:
  // they are renewed here from now on.
  // `lease_ms`: the lease they were held under, until this server says its own.
  void Adopt(const std::vector<pb::SetLockRequest>& locks, int64_t lease_ms);

  // Closes the current connection; the next call reconnects (and says Hello again).
  void Close() { client_->Close(); }
  // The server's epoch from the last Hello (0 before any).
  int64_t server_epoch_ns() const { return epoch_.load(); }

 private:
  FileClient(rpc::Runtime& runtime, FileClientOptions options);
  rpc::awaitable<Result<std::shared_ptr<rpc::Connection>>> Ready();
  struct HeldLock {
    pb::Fid fid;
    bool exclusive = false;
    uint64_t start = 0;
    uint64_t length = 0;
    uint64_t owner = 0;
  };
  using LockId = std::tuple<uint64_t, uint64_t, uint64_t>;  // volume, vnode, owner
  void MarkLost(uint64_t volume, uint64_t vnode);
  rpc::awaitable<void> Reclaim(std::shared_ptr<rpc::Connection> conn);
  static rpc::awaitable<void> RenewLoop(std::weak_ptr<FileClient> weak);

  rpc::Runtime& runtime_;
  const FileClientOptions options_;
  std::shared_ptr<rpc::Client> client_;
  mutable std::mutex mu_;
  std::weak_ptr<rpc::Connection> greeted_;  // mu_: the connection that has had its Hello
  std::atomic<int64_t> epoch_{0};
  std::vector<HeldLock> held_;      // mu_
  std::set<LockId> lost_;           // mu_
  bool renewing_ = false;           // mu_: a RenewLoop runs
  int64_t lease_ms_ = 30000;        // mu_: as the server last said
};

}  // namespace heka::fs

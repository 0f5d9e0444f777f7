#include "fileserver/client/file_client.h"

#include <spdlog/spdlog.h>

namespace heka::fs {

namespace asio = rpc::asio;

std::shared_ptr<FileClient> FileClient::Create(rpc::Runtime& runtime, FileClientOptions options) {
  return std::shared_ptr<FileClient>(new FileClient(runtime, std::move(options)));
}

FileClient::FileClient(rpc::Runtime& runtime, FileClientOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  rpc::ClientOptions copts;
  copts.address = options_.address;
  copts.server_principal = options_.server_principal;
  copts.credentials = options_.credentials;
  copts.test_context = options_.test_context;
  if (!options_.client_uuid.empty()) {
    auto handlers = std::make_shared<rpc::HandlerRegistry>();
    auto on_break = options_.on_break;
    handlers->Register<pb::BreakRequest, pb::BreakReply>(
        "heka.fileserver.CallbackService.Break",
        [on_break](rpc::CallContext&,
                             const pb::BreakRequest& req) -> rpc::awaitable<Result<pb::BreakReply>> {
          // Mark, then acknowledge; the slow invalidation is the caller's to post.
          if (on_break) on_break(req);
          co_return pb::BreakReply();
        });
    copts.handlers = std::move(handlers);
  }
  client_ = rpc::Client::Create(runtime, copts);
}

rpc::awaitable<Result<std::shared_ptr<rpc::Connection>>> FileClient::Ready() {
  auto conn = co_await client_->GetConnection();
  if (!conn.ok() || options_.client_uuid.empty()) co_return conn;
  {
    std::lock_guard lock(mu_);
    if (greeted_.lock() == *conn) co_return conn;
  }
  pb::HelloRequest hello;
  hello.set_client_uuid(options_.client_uuid);
  auto rep = co_await (*conn)->Call<pb::HelloReply>("heka.fileserver.File.Hello", hello, options_.call_timeout);
  if (!rep.ok()) co_return rep.status();
  {
    std::lock_guard lock(mu_);
    greeted_ = *conn;
  }
  // Breaks can only reach us on a live connection: once it closes, nothing we cached from
  // this server is covered by a promise any more.
  if (options_.on_revalidate) {
    auto revalidate = options_.on_revalidate;
    (*conn)->AddCloseObserver([revalidate](const Status&) { revalidate(); });
  }
  int64_t old_epoch = epoch_.exchange(rep->server_epoch_ns());
  if (rep->revalidate() && options_.on_revalidate) options_.on_revalidate();
  if (old_epoch != 0 && old_epoch != rep->server_epoch_ns()) co_await Reclaim(*conn);
  co_return conn;
}

void FileClient::MarkLost(uint64_t volume, uint64_t vnode) {
  // REQUIRES: mu_ held.
  std::erase_if(held_, [&](const HeldLock& h) {
    if (h.fid.volume() != volume || h.fid.vnode() != vnode) return false;
    lost_.insert({volume, vnode, h.owner});
    spdlog::warn("lock on {}.{} (owner {}) was lost: its handle now fails with EIO", volume,
                 vnode, h.owner);
    return true;
  });
}

rpc::awaitable<void> FileClient::Reclaim(std::shared_ptr<rpc::Connection> conn) {
  std::vector<HeldLock> held;
  {
    std::lock_guard lock(mu_);
    held = held_;
  }
  for (const HeldLock& h : held) {
    pb::SetLockRequest req;
    *req.mutable_fid() = h.fid;
    req.set_exclusive(h.exclusive);
    req.set_start(h.start);
    req.set_length(h.length);
    req.set_owner(h.owner);
    req.set_reclaim(true);
    auto r = co_await conn->Call<pb::SetLockReply>("heka.fileserver.File.SetLock", req,
                                                   options_.call_timeout);
    if (!r.ok() && (r.status().code() == Code::kLockLost ||
                    r.status().code() == Code::kLockConflict ||
                    r.status().code() == Code::kPermissionDenied ||
                    r.status().code() == Code::kNotFound)) {
      std::lock_guard lock(mu_);
      MarkLost(h.fid.volume(), h.fid.vnode());
    }
  }
}

rpc::awaitable<Status> FileClient::Lock(pb::Fid fid, bool exclusive, uint64_t start,
                                        uint64_t length, uint64_t owner) {
  if (options_.client_uuid.empty()) {
    co_return Error(Code::kInvalidArgument, "locks need a client uuid");
  }
  pb::SetLockRequest req;
  *req.mutable_fid() = fid;
  req.set_exclusive(exclusive);
  req.set_start(start);
  req.set_length(length);
  req.set_owner(owner);
  auto r = co_await Call<pb::SetLockReply>("heka.fileserver.File.SetLock", req);
  if (!r.ok()) co_return r.status();
  bool start_renewing = false;
  {
    std::lock_guard lock(mu_);
    lease_ms_ = r->lease_ms();
    lost_.erase({fid.volume(), fid.vnode(), owner});
    std::erase_if(held_, [&](const HeldLock& h) {
      return h.fid.volume() == fid.volume() && h.fid.vnode() == fid.vnode() && h.owner == owner &&
             h.start == start && h.length == length;
    });
    held_.push_back(HeldLock{fid, exclusive, start, length, owner});
    start_renewing = !renewing_;
    renewing_ = true;
  }
  if (start_renewing) {
    asio::co_spawn(runtime_.executor(), RenewLoop(weak_from_this()), asio::detached);
  }
  co_return Status::Ok();
}

rpc::awaitable<Status> FileClient::Unlock(pb::Fid fid, uint64_t start, uint64_t length,
                                          uint64_t owner) {
  {
    std::lock_guard lock(mu_);
    std::erase_if(held_, [&](const HeldLock& h) {
      return h.fid.volume() == fid.volume() && h.fid.vnode() == fid.vnode() && h.owner == owner &&
             h.start == start && h.length == length;
    });
  }
  pb::ReleaseLockRequest req;
  *req.mutable_fid() = fid;
  req.set_start(start);
  req.set_length(length);
  req.set_owner(owner);
  auto r = co_await Call<pb::ReleaseLockReply>("heka.fileserver.File.ReleaseLock", req);
  co_return r.ok() ? Status::Ok() : r.status();
}

Status FileClient::LockState(const pb::Fid& fid, uint64_t owner) const {
  std::lock_guard lock(mu_);
  if (lost_.count({fid.volume(), fid.vnode(), owner})) {
    return Error(Code::kLockLost, "the lock on this file was lost (lease expired)");
  }
  return Status::Ok();
}

rpc::awaitable<void> FileClient::RenewLoop(std::weak_ptr<FileClient> weak) {
  for (;;) {
    std::chrono::milliseconds pause;
    {
      auto self = weak.lock();
      if (!self) co_return;
      std::lock_guard lock(self->mu_);
      if (self->held_.empty()) {
        self->renewing_ = false;
        co_return;
      }
      pause = std::chrono::milliseconds(std::max<int64_t>(self->lease_ms_ / 3, 50));
    }
    asio::steady_timer timer(co_await asio::this_coro::executor, pause);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    auto self = weak.lock();
    if (!self) co_return;
    auto r = co_await self->Call<pb::RenewLocksReply>("heka.fileserver.File.RenewLocks",
                                                      pb::RenewLocksRequest());
    if (!r.ok()) continue;  // unreachable for now: the server decides, we retry
    std::vector<pb::SetLockRequest> moved;
    int64_t lease_ms = 0;
    {
      std::lock_guard lock(self->mu_);
      self->lease_ms_ = r->lease_ms();
      lease_ms = r->lease_ms();
      for (const pb::Fid& f : r->lost()) self->MarkLost(f.volume(), f.vnode());
      for (const pb::Fid& f : r->moved()) {
        std::erase_if(self->held_, [&](const HeldLock& h) {
          if (h.fid.volume() != f.volume() || h.fid.vnode() != f.vnode()) return false;
          pb::SetLockRequest m;
          *m.mutable_fid() = h.fid;
          m.set_exclusive(h.exclusive);
          m.set_start(h.start);
          m.set_length(h.length);
          m.set_owner(h.owner);
          moved.push_back(std::move(m));
          return true;
        });
      }
    }
    if (!moved.empty()) {
      spdlog::info("{} advisory locks moved with their volume from {}", moved.size(),
                   self->options_.address);
      if (self->options_.on_locks_moved) self->options_.on_locks_moved(std::move(moved), lease_ms);
    }
  }
}

void FileClient::Adopt(const std::vector<pb::SetLockRequest>& locks, int64_t lease_ms) {
  if (locks.empty()) return;
  bool start_renewing = false;
  {
    std::lock_guard lock(mu_);
    if (held_.empty() && lease_ms > 0) lease_ms_ = lease_ms;
    for (const pb::SetLockRequest& l : locks) {
      held_.push_back(HeldLock{l.fid(), l.exclusive(), l.start(), l.length(), l.owner()});
    }
    start_renewing = !renewing_;
    renewing_ = true;
  }
  if (start_renewing) {
    asio::co_spawn(runtime_.executor(), RenewLoop(weak_from_this()), asio::detached);
  }
  // One renewal at once: the new server's lease for them started when it took them over.
  asio::co_spawn(
      runtime_.executor(),
      [weak = weak_from_this()]() -> rpc::awaitable<void> {
        auto self = weak.lock();
        if (!self) co_return;
        auto r = co_await self->Call<pb::RenewLocksReply>("heka.fileserver.File.RenewLocks",
                                                          pb::RenewLocksRequest());
        if (!r.ok()) co_return;
        std::lock_guard lock(self->mu_);
        self->lease_ms_ = r->lease_ms();
      },
      asio::detached);
}

}  // namespace heka::fs

#include "fileserver/server/callbacks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace heka::fs {
namespace {

namespace asio = rpc::asio;
constexpr const char* kBreakMethod = "heka.fileserver.CallbackService.Break";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One round of breaks: how many holders have yet to answer, and who acknowledged.
struct Round {
  std::mutex mu;
  size_t pending = 0;
  std::vector<bool> acked;
  std::function<void()> resume;  // set by the waiter; run once
  bool fired = false;
};

// Resumes the caller when every holder answered or `bound` passed, whichever comes first.
auto WaitRound(std::shared_ptr<Round> round, std::chrono::milliseconds bound) {
  return asio::async_initiate<const asio::use_awaitable_t<>, void()>(
      [](auto handler, std::shared_ptr<Round> round, std::chrono::milliseconds bound) {
        auto ex = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto fire = [ex, shared] { asio::post(ex, [shared] { (*shared)(); }); };
        {
          std::lock_guard lock(round->mu);
          if (round->pending == 0) {
            round->fired = true;
            fire();
            return;
          }
          round->resume = fire;
        }
        auto timer = std::make_shared<asio::steady_timer>(ex, bound);
        timer->async_wait([round, timer](const boost::system::error_code&) {
          std::function<void()> f;
          {
            std::lock_guard lock(round->mu);
            if (round->fired) return;
            round->fired = true;
            f = std::move(round->resume);
          }
          f();
        });
      },
      asio::use_awaitable, std::move(round), bound);
}

}  // namespace

Callbacks::Callbacks(rpc::Runtime& runtime, CallbacksOptions options)
    : runtime_(runtime), options_(options) {}

bool Callbacks::Hello(const std::string& client_uuid,
                      const std::shared_ptr<rpc::Connection>& conn) {
  bool revalidate;
  {
    std::lock_guard lock(mu_);
    auto old = conn_client_.find(conn.get());
    if (old != conn_client_.end() && old->second == client_uuid) return !clients_[client_uuid].known;
    conn_client_[conn.get()] = client_uuid;
    Client& c = clients_[client_uuid];
    std::erase_if(c.conns, [](const auto& w) { return w.expired(); });
    c.conns.push_back(conn);
    revalidate = !c.known;
    c.known = true;
  }
  const rpc::Connection* raw = conn.get();
  conn->AddCloseObserver([this, raw](const Status&) { OnClose(raw); });
  return revalidate;
}

std::string Callbacks::ClientOf(const rpc::Connection* conn) const {
  std::lock_guard lock(mu_);
  auto it = conn_client_.find(conn);
  return it == conn_client_.end() ? "" : it->second;
}

void Callbacks::OnClose(const rpc::Connection* conn) {
  std::lock_guard lock(mu_);
  auto it = conn_client_.find(conn);
  if (it == conn_client_.end()) return;
  std::string uuid = it->second;
  conn_client_.erase(it);
  auto c = clients_.find(uuid);
  if (c == clients_.end()) return;
  std::erase_if(c->second.conns, [conn](const std::weak_ptr<rpc::Connection>& w) {
    auto p = w.lock();
    return !p || p.get() == conn || p->closed();
  });
  if (c->second.conns.empty()) {
    DropLocked(uuid, c->second);
    clients_.erase(c);
  }
}

int64_t Callbacks::Grant(const std::string& client_uuid, uint64_t volume, uint64_t vnode) {
  if (client_uuid.empty()) return 0;
  int64_t expires = NowNs() + std::chrono::nanoseconds(options_.ttl).count();
  std::lock_guard lock(mu_);
  auto c = clients_.find(client_uuid);
  if (c == clients_.end()) return 0;
  Key key{volume, vnode};
  promises_[key][client_uuid] = expires;
  c->second.held.insert(key);
  return expires;
}

void Callbacks::DropLocked(const std::string& uuid, Client& client) {
  for (const Key& key : client.held) {
    auto p = promises_.find(key);
    if (p == promises_.end()) continue;
    p->second.erase(uuid);
    if (p->second.empty()) promises_.erase(p);
  }
  client.held.clear();
  client.known = false;
}

std::shared_ptr<rpc::Connection> Callbacks::LiveConnLocked(Client& client) {
  for (auto it = client.conns.rbegin(); it != client.conns.rend(); ++it) {
    auto conn = it->lock();
    if (conn && !conn->closed()) return conn;
  }
  return nullptr;
}

size_t Callbacks::promises() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [key, holders] : promises_) n += holders.size();
  return n;
}

void Callbacks::BreakVolume(uint64_t volume) {
  std::vector<std::string> holders;
  {
    std::lock_guard lock(mu_);
    for (auto& [uuid, client] : clients_) {
      auto it = client.held.lower_bound(Key{volume, 0});
      if (it == client.held.end() || it->volume != volume) continue;
      DropLocked(uuid, client);  // an all-break: it revalidates everything
      holders.push_back(uuid);
    }
  }
  for (const std::string& uuid : holders) SendAllBreak(uuid);
}

void Callbacks::SendAllBreak(const std::string& uuid) {
  std::shared_ptr<rpc::Connection> conn;
  {
    std::lock_guard lock(mu_);
    auto c = clients_.find(uuid);
    if (c == clients_.end()) return;
    conn = LiveConnLocked(c->second);
  }
  if (!conn) return;
  pb::BreakRequest all;
  all.set_all(true);
  asio::co_spawn(runtime_.executor(),
                 conn->Call<pb::BreakReply>(kBreakMethod, all, std::chrono::seconds(60)),
                 [conn](std::exception_ptr, Result<pb::BreakReply>) {});  // conn: kept alive
}

rpc::awaitable<void> Callbacks::Break(std::vector<pb::Fid> changed, std::string except) {
  struct Holder {
    std::string uuid;
    std::shared_ptr<rpc::Connection> conn;
    pb::BreakRequest request;
  };
  std::vector<Holder> holders;
  std::vector<std::string> unreachable;
  int64_t now = NowNs();
  {
    std::lock_guard lock(mu_);
    std::map<std::string, size_t> index;
    for (const pb::Fid& fid : changed) {
      auto p = promises_.find(Key{fid.volume(), fid.vnode()});
      if (p == promises_.end()) continue;
      for (auto h = p->second.begin(); h != p->second.end();) {
        if (h->first == except) {
          ++h;
          continue;
        }
        if (h->second > now) {
          auto [it, fresh] = index.try_emplace(h->first, holders.size());
          if (fresh) holders.push_back(Holder{h->first, nullptr, {}});
          *holders[it->second].request.add_fids() = fid;
        }
        auto c = clients_.find(h->first);
        if (c != clients_.end()) c->second.held.erase(p->first);
        h = p->second.erase(h);
      }
      if (p->second.empty()) promises_.erase(p);
    }
    for (Holder& h : holders) {
      auto c = clients_.find(h.uuid);
      if (c != clients_.end()) h.conn = LiveConnLocked(c->second);
      if (!h.conn) {
        if (c != clients_.end()) DropLocked(h.uuid, c->second);
        unreachable.push_back(h.uuid);
      }
    }
  }
  std::erase_if(holders, [](const Holder& h) { return !h.conn; });
  if (holders.empty()) co_return;

  auto round = std::make_shared<Round>();
  round->pending = holders.size();
  round->acked.assign(holders.size(), false);
  for (size_t i = 0; i < holders.size(); ++i) {
    asio::co_spawn(runtime_.executor(),
                   holders[i].conn->Call<pb::BreakReply>(kBreakMethod, holders[i].request,
                                                     options_.bound),
                   [round, i, conn = holders[i].conn](std::exception_ptr e,
                                                      Result<pb::BreakReply> r) {
                     (void)conn;  // keeps the connection alive until the call is done
                     std::function<void()> f;
                     {
                       std::lock_guard lock(round->mu);
                       round->acked[i] = !e && r.ok();
                       if (--round->pending == 0 && !round->fired && round->resume) {
                         round->fired = true;
                         f = std::move(round->resume);
                       }
                     }
                     if (f) f();
                   });
  }
  co_await WaitRound(round, options_.bound);

  std::vector<std::string> silent;
  {
    std::lock_guard round_lock(round->mu);
    for (size_t i = 0; i < holders.size(); ++i) {
      if (!round->acked[i]) silent.push_back(holders[i].uuid);
    }
  }
  for (const std::string& uuid : silent) {
    {
      std::lock_guard lock(mu_);
      auto c = clients_.find(uuid);
      if (c != clients_.end()) DropLocked(uuid, c->second);
    }
    spdlog::warn("client {} did not acknowledge a callback break within {} ms: its promises "
                 "are dropped and it must revalidate",
                 uuid, options_.bound.count());
    SendAllBreak(uuid);
  }
}

}  // namespace heka::fs

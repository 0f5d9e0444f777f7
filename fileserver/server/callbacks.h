// Callbacks: the callback promises this file server has made, per cache manager (by the
// client UUID its connections announce in Hello, not per user connection), and the breaks
// that a change sends to their holders (DESIGN.md §5).
//
// A promise on (volume, vnode) lasts until its expiry or its first break. Break() removes
// the promises of the changed vnodes, calls heka.fileserver.CallbackService.Break on one live connection
// of each other holder, and returns once every holder has acknowledged or the bound has
// passed; a holder that stayed silent, or that has no live connection, loses every promise
// it held here, and is sent an "all" break so it revalidates everything when it wakes up.
// When the last connection of a client closes, its promises go too. Hello tells a client
// whether it must revalidate (this server holds no promises for it).
// Thread-safe. Break() holds no lock while waiting.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/fileserver.pb.h"
#include "rpc/connection.h"
#include "rpc/runtime.h"

namespace heka::fs {

namespace pb = ::heka::fileserver;  // the wire messages (proto/fileserver.proto)

struct CallbacksOptions {
  std::chrono::milliseconds bound{1000};  // wait for acks at most this long
  std::chrono::seconds ttl{600};          // a promise's lifetime
};

class Callbacks {
 public:
  Callbacks(rpc::Runtime& runtime, CallbacksOptions options);

  // Records that `conn` belongs to cache manager `client_uuid`. True when the client must
  // revalidate what it cached from this server.
  bool Hello(const std::string& client_uuid, const std::shared_ptr<rpc::Connection>& conn);
  // The client UUID of a connection ("" if it never said Hello: CLIs, servers).
  std::string ClientOf(const rpc::Connection* conn) const;

  // Promises (volume, vnode) to `client_uuid`; returns the expiry in ns since the epoch, or
  // 0 for a connection without a client UUID (no promise).
  int64_t Grant(const std::string& client_uuid, uint64_t volume, uint64_t vnode);

  // Breaks the promises on `changed` held by every client but `except` (the changer).
  rpc::awaitable<void> Break(std::vector<pb::Fid> changed, std::string except);

  // Every promise on `volume` is gone (a backup replaced by a new one): each client that
  // held one is told to revalidate everything it cached from this server.
  void BreakVolume(uint64_t volume);

  size_t promises() const;  // for tests and status

 private:
  struct Key {
    uint64_t volume = 0;
    uint64_t vnode = 0;
    auto operator<=>(const Key&) const = default;
  };
  struct Client {
    std::vector<std::weak_ptr<rpc::Connection>> conns;
    std::set<Key> held;
    bool known = false;  // promises intact since its last revalidation
  };
  void OnClose(const rpc::Connection* conn);
  void DropLocked(const std::string& uuid, Client& client);
  std::shared_ptr<rpc::Connection> LiveConnLocked(Client& client);
  void SendAllBreak(const std::string& uuid);

  rpc::Runtime& runtime_;
  const CallbacksOptions options_;
  mutable std::mutex mu_;
  std::map<Key, std::map<std::string, int64_t>> promises_;  // mu_: holder uuid → expiry
  std::unordered_map<std::string, Client> clients_;         // mu_
  std::unordered_map<const rpc::Connection*, std::string> conn_client_;  // mu_
};

}  // namespace heka::fs

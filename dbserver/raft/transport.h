// RaftTransport: C-Raft's raft_uv_transport, carried over Heka's authenticated, encrypted RPC
// connections instead of raw TCP. Each raft stream is one RPC connection between members:
// the connecting side calls heka.db.Raft.Open, then both sides relay the bytes of a local
// socketpair (whose other end raft reads and writes as a uv_pipe) as ordered
// heka.db.Raft.Data pushes. A peer is admitted only if its Kerberos principal is the one the
// member list names for the member id it claims.
// Thread-safety: the raft_uv_transport callbacks run on the UvLoop thread; the RPC side on
// the Asio threads; shared state is under mu_.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "dbserver/raft/loop.h"
#include "krb/gss.h"
#include "proto/db.pb.h"
#include "rpc/client.h"
#include "rpc/registry.h"
#include "rpc/runtime.h"

namespace heka::db {

inline constexpr char kRaftOpen[] = "heka.db.Raft.Open";
inline constexpr char kRaftData[] = "heka.db.Raft.Data";

struct MemberInfo {
  std::string address;    // RPC endpoint, also the raft address
  std::string principal;  // e.g. heka/db1@REALM
};

struct RaftTransportOptions {
  uint64_t self_id = 0;
  krb::ClientCredentials credentials;  // this member's key, for outgoing streams
  // Member id -> who it must be. Called on Asio threads.
  std::function<std::optional<MemberInfo>(uint64_t id)> lookup;
  rpc::ConnectionOptions connection;
};

class Relay;

class RaftTransport {
 public:
  RaftTransport(rpc::Runtime& runtime, UvLoop& loop, RaftTransportOptions options);
  ~RaftTransport();

  // The C interface to hand to raft_uv_init.
  raft_uv_transport* raw() { return &raw_; }
  // Adds Raft.Open and Raft.Data to the server's registry.
  void RegisterHandlers(rpc::HandlerRegistry& registry);

 private:
  static int Init(raft_uv_transport* t, raft_id id, const char* address);
  static int Listen(raft_uv_transport* t, raft_uv_accept_cb cb);
  static int Connect(raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address,
                     raft_uv_connect_cb cb);
  static void Close(raft_uv_transport* t, raft_uv_transport_close_cb cb);

  rpc::awaitable<Result<RaftOpenReply>> ServeOpen(rpc::CallContext& ctx, const RaftOpen& req);
  void OnData(rpc::Connection& conn, ByteView data, bool eof);
  rpc::awaitable<void> DoConnect(raft_uv_connect* req, uint64_t id, std::string address);
  // Opens a socketpair, relays one end over `conn`, returns the other end's fd.
  Result<int> StartRelay(std::shared_ptr<rpc::Connection> conn, std::shared_ptr<rpc::Client> owner);
  // On the loop thread: wraps `fd` in a raft_malloc'ed uv_pipe_t.
  uv_stream_t* OpenPipe(int fd);
  void FinishConnect(raft_uv_connect* req, int fd);

  rpc::Runtime& runtime_;
  UvLoop& loop_;
  const RaftTransportOptions options_;
  raft_uv_transport raw_{};
  std::shared_ptr<const rpc::HandlerRegistry> client_handlers_;

  std::mutex mu_;
  raft_uv_accept_cb accept_cb_ = nullptr;                      // mu_
  bool closing_ = false;                                       // mu_
  std::set<raft_uv_connect*> pending_;                         // mu_ (connects not yet answered)
  std::unordered_map<rpc::Connection*, std::shared_ptr<Relay>> relays_;  // mu_
};

}  // namespace heka::db

// HandlerRegistry: the typed table of methods a process serves, and of the one-way push
// messages it accepts. Method names are the full protobuf names of methods declared in
// proto/ ("heka.diag.Diag.Echo"); Register() checks the name and both message types
// against the generated descriptors, so a method exists only where proto/ declares it.
// Build it completely, then share it as a const object: lookups are then thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "krb/identity.h"
#include "rpc/asio.h"
#include "util/bytes.h"
#include "util/status.h"

namespace heka::rpc {

class Connection;

// What a handler knows about its call.
struct CallContext {
  const krb::Identity& peer;                // authenticated caller
  std::shared_ptr<Connection> connection;   // to push to the caller, or call it back
  std::chrono::steady_clock::time_point deadline;  // caller's deadline (max() if none)
};

// Aborts with a message if `method` is not declared in proto/ with these message types.
// Used by Register() and RegisterPush() so a server with a typo fails loudly at start;
// a client calling an unknown name gets kUnknownMethod from the server.
void CheckMethod(std::string_view method, const google::protobuf::Descriptor* request,
                 const google::protobuf::Descriptor* reply);

class HandlerRegistry {
 public:
  using RawHandler = std::function<awaitable<Result<Bytes>>(CallContext&, ByteView body)>;
  using RawPushHandler = std::function<void(Connection&, ByteView body)>;

  // Registers a request handler. REQUIRES: `method` declared in proto/ as rpc(Req) returns (Rep).
  template <typename Req, typename Rep>
  void Register(std::string_view method,
                std::function<awaitable<Result<Rep>>(CallContext&, const Req&)> fn) {
    CheckMethod(method, Req::descriptor(), Rep::descriptor());
    auto stats = std::make_shared<MethodCounters>();
    stats_[std::string(method)] = stats;
    handlers_[std::string(method)] = [fn = std::move(fn), stats](
                                         CallContext& ctx, ByteView body) -> awaitable<Result<Bytes>> {
      stats->calls.fetch_add(1, std::memory_order_relaxed);
      Req req;
      if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
        co_return Error(Code::kInvalidArgument, "malformed request body");
      }
      Result<Rep> rep = co_await fn(ctx, req);
      if (!rep.ok()) co_return rep.status();
      Bytes out(rep->ByteSizeLong());
      rep->SerializeWithCachedSizesToArray(out.data());
      stats->reply_bytes.fetch_add(out.size(), std::memory_order_relaxed);
      co_return out;
    };
  }

  // Calls served and reply bytes, per method (Diag.Stats).
  struct MethodCounters {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> reply_bytes{0};
  };
  const std::unordered_map<std::string, std::shared_ptr<MethodCounters>>& stats() const {
    return stats_;
  }

  // Registers a handler for one-way pushes of `method` carrying Msg. Push handlers run in
  // arrival order on the connection's strand: they must not block (post longer work).
  template <typename Msg>
  void RegisterPush(std::string_view method, std::function<void(Connection&, const Msg&)> fn) {
    CheckMethod(method, Msg::descriptor(), nullptr);
    push_handlers_[std::string(method)] = [fn = std::move(fn), m = std::string(method)](
                                              Connection& conn, ByteView body) {
      Msg msg;
      if (!msg.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
      fn(conn, msg);
    };
  }

  const RawHandler* Find(std::string_view method) const {
    auto it = handlers_.find(std::string(method));
    return it == handlers_.end() ? nullptr : &it->second;
  }
  const RawPushHandler* FindPush(std::string_view method) const {
    auto it = push_handlers_.find(std::string(method));
    return it == push_handlers_.end() ? nullptr : &it->second;
  }

 private:
  std::unordered_map<std::string, RawHandler> handlers_;
  std::unordered_map<std::string, RawPushHandler> push_handlers_;
  std::unordered_map<std::string, std::shared_ptr<MethodCounters>> stats_;
};

}  // namespace heka::rpc

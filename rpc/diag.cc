#include "rpc/diag.h"

#include <algorithm>

#include "proto/diag.pb.h"
#include "rpc/connection.h"

namespace heka::rpc {
namespace {

constexpr uint32_t kMaxDelayMs = 10'000;
constexpr uint32_t kMaxPushes = 100'000;

awaitable<Result<diag::EchoReply>> Echo(CallContext& ctx, const diag::EchoRequest& req) {
  for (uint32_t i = 0; i < std::min(req.push_count(), kMaxPushes); ++i) {
    diag::Pushed msg;
    msg.set_seq(i);
    if (Status s = ctx.connection->Push(kDiagPush, msg); !s.ok()) co_return s;
  }
  if (req.delay_ms() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(milliseconds(std::min(req.delay_ms(), kMaxDelayMs)));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  diag::EchoReply reply;
  if (req.reply_size() > 0) {
    reply.mutable_payload()->assign(std::min<uint32_t>(req.reply_size(), 16u << 20), 'x');
  } else {
    reply.set_payload(req.payload());
  }
  reply.set_client_principal(ctx.peer.principal());
  co_return reply;
}

awaitable<Result<diag::PingReply>> Ping(CallContext& ctx, const diag::PingRequest&) {
  diag::PingReply reply;
  reply.set_server_principal(ctx.connection->self().principal());
  reply.set_client_principal(ctx.peer.principal());
  reply.set_protocol_version(ctx.connection->protocol_version());
  co_return reply;
}

}  // namespace

void RegisterDiag(HandlerRegistry& registry) {
  registry.Register<diag::EchoRequest, diag::EchoReply>(kDiagEcho, Echo);
  registry.Register<diag::PingRequest, diag::PingReply>(kDiagPing, Ping);
  const HandlerRegistry* all = &registry;  // outlives every call it serves
  registry.Register<diag::StatsRequest, diag::StatsReply>(
      kDiagStats, [all](CallContext&, const diag::StatsRequest&) -> awaitable<Result<diag::StatsReply>> {
        diag::StatsReply reply;
        for (const auto& [method, counters] : all->stats()) {
          diag::MethodStats* m = reply.add_methods();
          m->set_method(method);
          m->set_calls(counters->calls.load(std::memory_order_relaxed));
          m->set_reply_bytes(counters->reply_bytes.load(std::memory_order_relaxed));
        }
        co_return reply;
      });
}

}  // namespace heka::rpc

// heka rpc ping -server HOST:PORT [-principal heka/host@REALM] [-count N]
// Authenticates to a Heka server with the caller's Kerberos ticket and reports who is who
// and the round-trip time: the first thing to try when something cannot connect.
#include <chrono>
#include <cstdio>

#include "cmd/commands.h"
#include "proto/diag.pb.h"
#include "rpc/client.h"
#include "rpc/diag.h"

namespace heka::cli {

int RpcPing(int argc, char** argv) {
  const std::string cmd = "rpc ping";
  auto sw = Parse(cmd, argc, argv,
                  {{"server", true, "server endpoint, host:port or [v6]:port (required)"},
                   {"principal", true, "server principal (default heka/<host>@<default realm>)"},
                   {"count", true, "number of pings (default 1)"}});
  if (!sw.ok()) return sw.status().code() == Code::kCancelled ? kExitOk : UsageError(cmd, sw.status());
  if (!sw->count("server")) return Fail(cmd, Error(Code::kInvalidArgument, "-server is required"));
  int count = sw->count("count") ? std::atoi((*sw)["count"].c_str()) : 1;
  if (count < 1) return Fail(cmd, Error(Code::kInvalidArgument, "-count must be at least 1"));

  rpc::Runtime runtime({1, 1});
  rpc::ClientOptions o;
  o.address = (*sw)["server"];
  o.server_principal = sw->count("principal") ? (*sw)["principal"] : "";
  auto client = rpc::Client::Create(runtime, o);
  for (int i = 0; i < count; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = runtime.BlockOn(client->Call<diag::PingReply>(rpc::kDiagPing, diag::PingRequest()));
    if (!r.ok()) return Fail(cmd, r.status());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: server %s, you are %s, protocol v%u, %.2f ms\n", o.address.c_str(),
                r->server_principal().c_str(), r->client_principal().c_str(),
                r->protocol_version(), ms);
  }
  client->Close();
  return kExitOk;
}

}  // namespace heka::cli

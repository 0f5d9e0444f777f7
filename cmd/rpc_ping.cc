// heka rpc ping -server HOST:PORT [-principal heka/host@REALM] [-count N]
// heka rpc stats -server HOST:PORT [-principal P] [-format json]
// Authenticates to a Heka server with the caller's Kerberos ticket and reports who is who
// and the round-trip time: the first thing to try when something cannot connect.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

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

namespace heka::cli {

// heka rpc stats -server HOST:PORT [-principal P] [-format json]: the calls a server answered
// since it started, per method (Diag.Stats).
int RpcStats(int argc, char** argv) {
  const std::string cmd = "rpc stats";
  auto sw = Parse(cmd, argc, argv,
                  {{"server", true, "server endpoint, host:port or [v6]:port (required)"},
                   {"principal", true, "server principal (default heka/<host>@<default realm>)"},
                   {"format", true, "json: one JSON object"}});
  if (!sw.ok()) return sw.status().code() == Code::kCancelled ? kExitOk : UsageError(cmd, sw.status());
  if (!sw->count("server")) return Fail(cmd, Error(Code::kInvalidArgument, "-server is required"));
  rpc::Runtime runtime({1, 1});
  rpc::ClientOptions o;
  o.address = (*sw)["server"];
  o.server_principal = sw->count("principal") ? (*sw)["principal"] : "";
  auto client = rpc::Client::Create(runtime, o);
  auto r = runtime.BlockOn(client->Call<diag::StatsReply>(rpc::kDiagStats, diag::StatsRequest()));
  client->Close();
  if (!r.ok()) return Fail(cmd, r.status());
  std::vector<const diag::MethodStats*> methods;
  for (const auto& m : r->methods()) {
    if (m.calls() > 0) methods.push_back(&m);
  }
  std::sort(methods.begin(), methods.end(),
            [](auto* a, auto* b) { return a->method() < b->method(); });
  bool json = sw->count("format") && (*sw)["format"] == "json";
  if (json) std::printf("{\"methods\":[");
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto& m = *methods[i];
    if (json) {
      std::printf("%s{\"method\":\"%s\",\"calls\":%llu,\"reply_bytes\":%llu}", i ? "," : "",
                  m.method().c_str(), static_cast<unsigned long long>(m.calls()),
                  static_cast<unsigned long long>(m.reply_bytes()));
    } else {
      std::printf("%-44s %10llu calls %14llu reply bytes\n", m.method().c_str(),
                  static_cast<unsigned long long>(m.calls()),
                  static_cast<unsigned long long>(m.reply_bytes()));
    }
  }
  if (json) std::printf("]}\n");
  return kExitOk;
}

}  // namespace heka::cli

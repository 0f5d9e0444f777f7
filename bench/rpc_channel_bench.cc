// rpc_channel (BENCHMARKS.md): one connection on loopback, with a real KDC.
//  (a) 1 MiB calls: AES-256-GCM channel vs. the same path with a null cipher vs. a raw TCP
//      socket moving the same bytes with the same number of calls in flight;
//  (b) small calls from one caller: calls/s, p50/p99 latency;
//  (c) small calls from 64 concurrent callers on the same connection.
// Client and server each get their own Runtime (one I/O thread), like two processes.
// Usage: heka_bench_rpc [--seconds N] [--json FILE]
#include <getopt.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "proto/diag.pb.h"
#include "rpc/client.h"
#include "rpc/diag.h"
#include "rpc/server.h"
#include "tests/support/test_realm.h"
#include "util/log.h"

namespace heka::bench {
namespace {

using namespace heka::rpc;  // NOLINT
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1 << 20;
constexpr int kWindow = 4;  // 1 MiB calls in flight

// Test-only: the same frame path without encryption.
class NullCipher final : public FrameCipher {
 public:
  size_t overhead() const override { return 16; }
  Status Seal(ByteView, std::span<uint8_t>) override { return Status::Ok(); }
  Status Open(ByteView, std::span<uint8_t>) override { return Status::Ok(); }
};

struct Cell {
  std::unique_ptr<testing::TestRealm> realm;
  std::string keytab;
  std::string ccache;
};

struct Setup {
  Runtime server_rt{{1, 2}};
  Runtime client_rt{{1, 2}};
  std::shared_ptr<Server> server;
  std::shared_ptr<Client> client;
};

std::unique_ptr<Setup> Start(const Cell& cell, bool null_cipher) {
  auto s = std::make_unique<Setup>();
  auto registry = std::make_shared<HandlerRegistry>();
  RegisterDiag(*registry);
  ServerOptions so;
  so.listen = {"127.0.0.1:0"};
  so.credentials.keytab = cell.keytab;
  if (null_cipher) so.connection.test_cipher = [](ByteView) { return std::make_unique<NullCipher>(); };
  s->server = Server::Create(s->server_rt, so, registry);
  if (!s->server->Start().ok()) std::abort();
  ClientOptions co;
  co.address = s->server->endpoints()[0].ToString();
  co.server_principal = cell.realm->Principal("heka/localhost");
  co.credentials.ccache = "FILE:" + cell.ccache;
  co.connection.test_cipher = so.connection.test_cipher;
  s->client = Client::Create(s->client_rt, co);
  return s;
}

// Process CPU time (user + system) in seconds.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

// Each worker loops 1 MiB calls until the deadline; returns MB/s over all workers.
double BigCalls(Setup& s, double seconds) {
  std::atomic<uint64_t> bytes{0};
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  auto worker = [&]() -> awaitable<void> {
    diag::EchoRequest req;
    req.mutable_payload()->assign(kMiB, 'a');
    req.set_reply_size(1);
    while (Clock::now() < deadline) {
      auto r = co_await s.client->Call<diag::EchoReply>(kDiagEcho, req);
      if (!r.ok()) {
        std::fprintf(stderr, "call failed: %s\n", r.status().ToString().c_str());
        std::abort();
      }
      bytes += kMiB;
    }
  };
  (void)s.client_rt.BlockOn(s.client->GetConnection());  // handshake outside the timing
  auto start = Clock::now();
  double cpu0 = CpuSeconds();
  std::vector<std::future<void>> fs;
  for (int i = 0; i < kWindow; ++i) fs.push_back(asio::co_spawn(s.client_rt.io(), worker(), asio::use_future));
  for (auto& f : fs) f.get();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (std::getenv("HEKA_BENCH_VERBOSE")) {
    std::fprintf(stderr, "  cores busy: %.2f, CPU ms per MiB: %.3f\n", (CpuSeconds() - cpu0) / secs,
                 (CpuSeconds() - cpu0) * 1e3 / (bytes.load() / double(kMiB)));
  }
  return bytes.load() / secs / 1e6;
}

// The same bytes over a plain TCP socket: 1 MiB messages, a 1-byte ack each, kWindow in flight.
double RawSocket(double seconds) {
  int sv[2];
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(listener, 1);
  socklen_t len = sizeof a;
  getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  sv[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(sv[0], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  sv[1] = accept(listener, nullptr, nullptr);
  close(listener);
  std::thread server([fd = sv[1]] {
    std::vector<char> buf(kMiB);
    for (;;) {
      size_t got = 0;
      while (got < kMiB) {
        ssize_t n = read(fd, buf.data() + got, kMiB - got);
        if (n <= 0) return;
        got += static_cast<size_t>(n);
      }
      char ack = 1;
      if (write(fd, &ack, 1) != 1) return;
    }
  });
  std::atomic<int> in_flight{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> acked{0};
  std::thread acks([&] {
    char c;
    while (read(sv[0], &c, 1) == 1) {
      acked++;
      in_flight--;
      in_flight.notify_one();
    }
  });
  std::vector<char> msg(kMiB, 'a');
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int cur = in_flight.load();
    while (cur >= kWindow) {
      in_flight.wait(cur);
      cur = in_flight.load();
    }
    in_flight++;
    size_t sent = 0;
    while (sent < kMiB) {
      ssize_t n = write(sv[0], msg.data() + sent, kMiB - sent);
      if (n <= 0) std::abort();
      sent += static_cast<size_t>(n);
    }
  }
  while (in_flight.load() > 0) in_flight.wait(in_flight.load());
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  shutdown(sv[0], SHUT_WR);
  server.join();
  close(sv[1]);
  acks.join();
  close(sv[0]);
  return acked.load() * static_cast<double>(kMiB) / secs / 1e6;
}

struct Latency {
  double calls_per_s;
  double p50_us;
  double p99_us;
};

Latency SmallCalls(Setup& s, int callers, double seconds) {
  std::mutex mu;
  std::vector<double> samples;
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  auto worker = [&]() -> awaitable<void> {
    diag::EchoRequest req;
    req.set_payload(std::string(64, 's'));
    std::vector<double> mine;
    while (Clock::now() < deadline) {
      auto t0 = Clock::now();
      auto r = co_await s.client->Call<diag::EchoReply>(kDiagEcho, req);
      if (!r.ok()) std::abort();
      mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::lock_guard lock(mu);
    samples.insert(samples.end(), mine.begin(), mine.end());
  };
  (void)s.client_rt.BlockOn(s.client->GetConnection());
  auto start = Clock::now();
  std::vector<std::future<void>> fs;
  for (int i = 0; i < callers; ++i) fs.push_back(asio::co_spawn(s.client_rt.io(), worker(), asio::use_future));
  for (auto& f : fs) f.get();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) { return samples[static_cast<size_t>(p * (samples.size() - 1))]; };
  return {samples.size() / secs, pct(0.50), pct(0.99)};
}

}  // namespace
}  // namespace heka::bench

int main(int argc, char** argv) {
  using namespace heka::bench;  // NOLINT
  double seconds = 3;
  std::string json;
  static option opts[] = {{"seconds", required_argument, nullptr, 's'},
                          {"json", required_argument, nullptr, 'j'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    if (c == 's') seconds = std::atof(optarg);
    else if (c == 'j') json = optarg;
    else return 2;
  }
  heka::InitLogging({"heka-bench", "warn", ""});
  Cell cell;
  auto realm = heka::testing::TestRealm::Start();
  if (!realm.ok()) {
    std::fprintf(stderr, "cannot start a KDC: %s\n", realm.status().ToString().c_str());
    return 1;
  }
  cell.realm = std::move(*realm);
  cell.realm->SetEnv();
  cell.keytab = *cell.realm->AddService("heka/localhost");
  (void)cell.realm->AddUser("bench", "bench-pw");
  cell.ccache = cell.realm->NewCcachePath("bench");
  (void)cell.realm->Kinit("bench", "bench-pw", cell.ccache);

  // Interleave the three 1 MiB measurements and take medians: the machine is shared.
  std::vector<double> enc, null, raw;
  for (int round = 0; round < 3; ++round) {
    { auto s = Start(cell, false); enc.push_back(BigCalls(*s, seconds)); }
    { auto s = Start(cell, true); null.push_back(BigCalls(*s, seconds)); }
    raw.push_back(RawSocket(seconds));
  }
  auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  double e = median(enc), n = median(null), r = median(raw);
  auto s = Start(cell, false);
  Latency one = SmallCalls(*s, 1, seconds);
  Latency many = SmallCalls(*s, 64, seconds);

  std::printf("rpc_channel, 1 MiB calls, %d in flight, median of 3 x %.0f s:\n", kWindow, seconds);
  std::printf("  AES-256-GCM   %8.0f MB/s\n  null cipher   %8.0f MB/s\n  raw socket    %8.0f MB/s\n", e, n, r);
  std::printf("  encrypted / null = %.2f (target >= 0.70), encrypted / raw = %.2f (target >= 0.40)\n",
              e / n, e / r);
  std::printf("small calls, 1 caller:   %8.0f calls/s  p50 %6.0f us  p99 %6.0f us\n", one.calls_per_s,
              one.p50_us, one.p99_us);
  std::printf("small calls, 64 callers: %8.0f calls/s  p50 %6.0f us  p99 %6.0f us\n",
              many.calls_per_s, many.p50_us, many.p99_us);
  if (!json.empty()) {
    std::ofstream out(json);
    out << "{\"rpc_channel\": {\"encrypted_MBps\": " << e << ", \"null_MBps\": " << n
        << ", \"raw_MBps\": " << r << ", \"encrypted_over_null\": " << e / n
        << ", \"encrypted_over_raw\": " << e / r << ", \"small_1_calls_per_s\": " << one.calls_per_s
        << ", \"small_1_p50_us\": " << one.p50_us << ", \"small_1_p99_us\": " << one.p99_us
        << ", \"small_64_calls_per_s\": " << many.calls_per_s << ", \"small_64_p50_us\": "
        << many.p50_us << ", \"small_64_p99_us\": " << many.p99_us << "}}\n";
  }
  return 0;
}

// db_write and db_failover (BENCHMARKS.md): three real heka-dbserver processes with fsync,
// writes through the real RPC path (GSS + AES-GCM) to the leader.
//   db_write: PTDB writes (pts createuser) with 1 and 64 concurrent writers: writes/s, p50/p99.
//   db_failover: kill -9 of the leader -> first committed write, median of 5.
// Usage: heka_bench_db [--seconds N] [--json FILE]
#include <getopt.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "proto/db.pb.h"
#include "rpc/client.h"
#include "tests/support/db_cluster.h"
#include "tests/support/test_realm.h"
#include "util/log.h"

namespace heka::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::DbCluster;

struct Run {
  double writes_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

std::shared_ptr<rpc::Client> ClientFor(rpc::Runtime& rt, DbCluster& c, int id,
                                       const std::string& cc) {
  rpc::ClientOptions o;
  o.address = c.address(id);
  o.server_principal = c.principal(id);
  o.credentials.ccache = "FILE:" + cc;
  o.connect_timeout = std::chrono::milliseconds(300);
  return rpc::Client::Create(rt, o);
}

db::Command CreateUser(const std::string& cell, int n) {
  db::Command cmd;
  cmd.set_request_id("u-" + std::to_string(n) + "-" + std::to_string(Clock::now().time_since_epoch().count()));
  cmd.mutable_create_user()->set_cell(cell);
  cmd.mutable_create_user()->set_principal("user" + std::to_string(n) + "@HEKA.TEST");
  return cmd;
}

Run Writes(rpc::Runtime& rt, std::shared_ptr<rpc::Client> leader, int writers, double seconds,
           std::atomic<int>& counter) {
  std::mutex mu;
  std::vector<double> lat;
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  auto worker = [&]() -> rpc::awaitable<void> {
    std::vector<double> mine;
    while (Clock::now() < deadline) {
      db::WriteRequest req;
      *req.mutable_command() = CreateUser("bench", counter++);
      auto t0 = Clock::now();
      auto r = co_await leader->Call<db::WriteReply>("heka.db.Db.Write", req);
      if (!r.ok() || r->result().code() != 0) {
        std::fprintf(stderr, "write failed: %s\n",
                     r.ok() ? r->result().message().c_str() : r.status().ToString().c_str());
        std::abort();
      }
      mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::lock_guard lock(mu);
    lat.insert(lat.end(), mine.begin(), mine.end());
  };
  auto start = Clock::now();
  std::vector<std::future<void>> fs;
  for (int i = 0; i < writers; ++i) fs.push_back(rpc::asio::co_spawn(rt.io(), worker(), rpc::asio::use_future));
  for (auto& f : fs) f.get();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  return {lat.size() / secs, lat[lat.size() / 2], lat[static_cast<size_t>(0.99 * (lat.size() - 1))]};
}

// Tries each running member until a write commits; returns seconds from `start`.
double FirstWrite(rpc::Runtime& rt, DbCluster& c, const std::string& cc, Clock::time_point start,
                  std::atomic<int>& counter) {
  for (;;) {
    for (int id = 1; id <= c.size(); ++id) {
      if (!c.running(id)) continue;
      db::WriteRequest req;
      *req.mutable_command() = CreateUser("bench", counter++);
      auto r = rt.BlockOn(ClientFor(rt, c, id, cc)->Call<db::WriteReply>(
          "heka.db.Db.Write", req, std::chrono::milliseconds(500)));
      if (r.ok() && r->result().code() == 0) {
        return std::chrono::duration<double>(Clock::now() - start).count();
      }
    }
  }
}

}  // namespace
}  // namespace heka::bench

int main(int argc, char** argv) {
  using namespace heka;
  using namespace heka::bench;
  double seconds = 5;
  std::string json;
  static option opts[] = {{"seconds", required_argument, nullptr, 's'},
                          {"json", required_argument, nullptr, 'j'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    if (c == 's') seconds = std::atof(optarg);
    else if (c == 'j') json = optarg;
    else return 2;
  }
  InitLogging({"heka-bench", "warn", ""});
  auto realm = testing::TestRealm::Start();
  if (!realm.ok()) {
    std::fprintf(stderr, "cannot start a KDC: %s\n", realm.status().ToString().c_str());
    return 1;
  }
  (*realm)->SetEnv();
  (void)(*realm)->AddUser("admin", "admin-pw");
  std::string cc = (*realm)->NewCcachePath("admin");
  (void)(*realm)->Kinit("admin", "admin-pw", cc);
  testing::DbClusterOptions o;
  o.provider_admins = {"admin@HEKA.TEST"};
  auto cluster = DbCluster::Create(**realm, o);
  if (!cluster.ok() || !(*cluster)->StartAll().ok()) return 1;
  DbCluster& c = **cluster;
  rpc::Runtime rt({2, 2});
  std::atomic<int> counter{0};
  int leader = *c.WaitForLeader(cc, std::chrono::seconds(15));
  auto client = ClientFor(rt, c, leader, cc);
  db::WriteRequest cell;
  cell.mutable_command()->mutable_create_cell()->set_name("bench");
  cell.mutable_command()->mutable_create_cell()->add_realms("HEKA.TEST");
  (void)rt.BlockOn(client->Call<db::WriteReply>("heka.db.Db.Write", cell));
  Run one = Writes(rt, client, 1, seconds, counter);
  Run many = Writes(rt, client, 64, seconds, counter);
  std::printf("db_write, 3 members, fsync, through GSS+AES-GCM RPC:\n");
  std::printf("   1 writer : %7.0f writes/s  p50 %6.2f ms  p99 %6.2f ms  (target >= 2000/s)\n",
              one.writes_per_s, one.p50_ms, one.p99_ms);
  std::printf("  64 writers: %7.0f writes/s  p50 %6.2f ms  p99 %6.2f ms  (target >= 5000/s)\n",
              many.writes_per_s, many.p50_ms, many.p99_ms);

  std::vector<double> failovers;
  for (int i = 0; i < 5; ++i) {
    leader = *c.WaitForLeader(cc, std::chrono::seconds(15));
    auto start = Clock::now();
    c.Kill(leader);
    failovers.push_back(FirstWrite(rt, c, cc, start, counter));
    (void)c.Start(leader);
    // Let the restarted member catch up before the next round.
    std::this_thread::sleep_for(std::chrono::seconds(1));  // benchmark pacing, not a sync point
  }
  std::sort(failovers.begin(), failovers.end());
  std::printf("db_failover: kill -9 leader -> first committed write: median %.2f s (min %.2f, "
              "max %.2f; target < 2 s; OpenAFS 146-177 s)\n",
              failovers[2], failovers.front(), failovers.back());
  if (!json.empty()) {
    std::ofstream out(json);
    out << "{\"db_write\": {\"writers_1_per_s\": " << one.writes_per_s << ", \"writers_1_p50_ms\": "
        << one.p50_ms << ", \"writers_1_p99_ms\": " << one.p99_ms << ", \"writers_64_per_s\": "
        << many.writes_per_s << ", \"writers_64_p50_ms\": " << many.p50_ms
        << ", \"writers_64_p99_ms\": " << many.p99_ms << "}, \"db_failover\": {\"median_s\": "
        << failovers[2] << ", \"min_s\": " << failovers.front() << ", \"max_s\": "
        << failovers.back() << "}}\n";
  }
  return 0;
}

// The replicated database under faults, through real heka-dbserver processes and the real KDC
// (DESIGN.md §4: "no acknowledged write is ever lost"): random kill -9 under concurrent
// writers, membership 3 -> 5 -> 3 under writes, a member with the wrong key, a restart that
// must not re-apply the log, and a snapshot installed onto a lagging member.
//
// Faults come from a std::mt19937_64 seeded from HEKA_TEST_SEED (or the clock); the seed is
// printed at the start and again on failure. HEKA_TEST_SEED=<seed> replays the fault schedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dbserver/client/db_client.h"
#include "dbserver/state/state_machine.h"
#include "proto/db.pb.h"
#include "rpc/client.h"
#include "tests/support/db_cluster.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::db {
namespace {

using testing::DbCluster;
using testing::SharedRealm;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kAdmin = "admin@HEKA.TEST";

const std::string& AdminCcache() {
  static const std::string cc = [] {
    auto& realm = SharedRealm();
    EXPECT_TRUE(realm.AddUser("admin", "admin-pw").ok());
    std::string path = realm.NewCcachePath("admin");
    EXPECT_TRUE(realm.Kinit("admin", "admin-pw", path).ok());
    return path;
  }();
  return cc;
}

uint64_t SeedFromEnvOrClock() {
  if (const char* s = std::getenv("HEKA_TEST_SEED"); s && *s) return std::strtoull(s, nullptr, 10);
  return static_cast<uint64_t>(Clock::now().time_since_epoch().count());
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Codes after which a write's outcome is unknown or it simply found no quorum: not an error
// under faults (the write is just not acknowledged). Anything else is an anomaly.
bool OutcomeUnknown(Code c) {
  return c == Code::kNoQuorum || c == Code::kUnavailable || c == Code::kDeadlineExceeded ||
         c == Code::kConnectionClosed || c == Code::kNotLeader || c == Code::kProtocolError;
}

// "line N: <a> | <b>" for the first line where two dumps differ.
std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t line = 1, i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) {
    if (a[i] == '\n') ++line;
    ++i;
  }
  auto line_at = [](const std::string& s, size_t pos) {
    size_t start = s.rfind('\n', pos == 0 ? 0 : pos - 1);
    start = start == std::string::npos ? 0 : start + 1;
    return s.substr(start, s.find('\n', pos) - start);
  };
  return "line " + std::to_string(line) + ": '" + line_at(a, i) + "' vs '" + line_at(b, i) +
         "' (sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + ")";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The last `n` lines of a member's log, leaving out the per-write audit lines.
std::string LogTail(const std::string& path, size_t n) {
  std::ifstream f(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(f, line);) {
    if (line.find("] audit: ") != std::string::npos) continue;
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The applied index in the last "raft: member N started at ... (applied X)" line; -1 if none.
int64_t LastStartApplied(const std::string& log) {
  static const std::regex re(R"(raft: member \d+ started at \S+ \(applied (\d+)\))");
  int64_t out = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
       ++it) {
    out = std::stoll((*it)[1].str());
  }
  return out;
}

// One acknowledged write: the entry's name and the id the cluster returned for it.
struct Ack {
  std::string name;
  int64_t id = 0;
};

// Writer threads, each with its own DbClient, creating users <p><k>-<n>@HEKA.TEST and groups
// g-<p><k>-<n> (alternately) in one cell. Records every acknowledged write. Writes are back
// to back: each is a real RPC round trip, so the writers do not spin.
class WriterPool {
 public:
  WriterPool(rpc::Runtime& runtime, DbClientOptions options, std::string cell, std::string prefix)
      : runtime_(runtime), options_(std::move(options)), cell_(std::move(cell)),
        prefix_(std::move(prefix)) {}
  ~WriterPool() { Stop(); }

  // `limit` writes per writer, or until Stop() when 0.
  void Start(int writers, int limit) {
    for (int k = 0; k < writers; ++k) threads_.emplace_back([this, k, limit] { Run(k, limit); });
  }
  void Stop() {
    stop_ = true;
    Join();
  }
  void Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  size_t ack_count() const { return acked_; }
  int failed() const { return failed_; }
  std::vector<Ack> acks() const {
    std::lock_guard lock(mu_);
    return acks_;
  }
  std::vector<std::string> anomalies() const {
    std::lock_guard lock(mu_);
    return anomalies_;
  }

 private:
  void Run(int k, int limit) {
    DbClient client(runtime_, options_);
    for (int n = 0; !stop_ && (limit == 0 || n < limit); ++n) {
      std::string tag = prefix_ + std::to_string(k) + "-" + std::to_string(n);
      bool group = n % 2 == 1;
      Command cmd;
      if (group) {
        cmd.mutable_create_group()->set_cell(cell_);
        cmd.mutable_create_group()->set_name("g-" + tag);
      } else {
        cmd.mutable_create_user()->set_cell(cell_);
        cmd.mutable_create_user()->set_principal(tag + "@HEKA.TEST");
      }
      // DbClient fills a request id once; every retry inside this Write reuses it.
      Result<CommandResult> r = client.Sync(client.Write(cmd));
      Record(group ? "g-" + tag : tag, group, r);
      if (!r.ok()) WaitFor([this] { return stop_.load(); }, milliseconds(50));  // no hot loop
    }
  }

  void Record(const std::string& name, bool group, const Result<CommandResult>& r) {
    std::lock_guard lock(mu_);
    if (r.ok() && (group ? r->id() < 0 : r->id() > 0)) {
      acks_.push_back({name, r->id()});
      ++acked_;
    } else if (r.ok()) {
      anomalies_.push_back(name + ": acknowledged with id " + std::to_string(r->id()));
    } else if (OutcomeUnknown(r.status().code())) {
      ++failed_;
    } else {
      anomalies_.push_back(name + ": " + r.status().ToString());
    }
  }

  rpc::Runtime& runtime_;
  const DbClientOptions options_;
  const std::string cell_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> acked_{0};
  std::atomic<int> failed_{0};
  mutable std::mutex mu_;
  std::vector<Ack> acks_;               // mu_
  std::vector<std::string> anomalies_;  // mu_
  std::vector<std::thread> threads_;
};

class DbChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = SeedFromEnvOrClock();
    rng_.seed(seed_);
    std::printf("seed=%llu (replay with HEKA_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    admin_cc_ = AdminCcache();
  }

  void TearDown() override {
    if (!HasFailure() || !cluster_) return;
    std::printf("FAILED with seed=%llu (replay with HEKA_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    for (int id = 1; id <= cluster_->size(); ++id) {
      std::printf("--- %s (last lines, audit lines left out)\n%s\n",
                  cluster_->log_path(id).c_str(), LogTail(cluster_->log_path(id), 25).c_str());
    }
  }

  void StartCluster(testing::DbClusterOptions o = {}) {
    o.provider_admins = {kAdmin};
    auto c = DbCluster::Create(SharedRealm(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cluster_ = std::move(*c);
    ASSERT_TRUE(cluster_->StartAll().ok());
    auto leader = cluster_->WaitForLeader(admin_cc_, seconds(15));
    ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  }

  std::vector<int> Ids(int n) const {
    std::vector<int> out;
    for (int id = 1; id <= n; ++id) out.push_back(id);
    return out;
  }

  DbClientOptions ClientOptions(const std::vector<int>& ids) const {
    DbClientOptions o;
    for (int id : ids) o.members.push_back({cluster_->address(id), cluster_->principal(id)});
    o.credentials.ccache = "FILE:" + admin_cc_;
    o.retry_deadline = milliseconds(8000);
    o.call_timeout = milliseconds(3000);
    o.connect_timeout = milliseconds(500);
    return o;
  }

  void CreateCell(const std::string& name) {
    DbClient client(runtime_, ClientOptions(Ids(cluster_->size())));
    Command cmd;
    cmd.mutable_create_cell()->set_name(name);
    cmd.mutable_create_cell()->add_realms("HEKA.TEST");
    auto r = client.Sync(client.Write(cmd));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  Status ChangeMember(const std::vector<int>& via, int id, ChangeMemberRequest::Op op,
                      milliseconds retry_deadline = milliseconds(8000)) {
    DbClientOptions o = ClientOptions(via);
    o.retry_deadline = retry_deadline;
    o.call_timeout = milliseconds(60000);  // a promotion waits for the catch-up rounds
    DbClient client(runtime_, o);
    ChangeMemberRequest req;
    req.set_id(id);
    req.set_address(cluster_->address(id));
    req.set_principal(cluster_->principal(id));
    req.set_op(op);
    return client.Sync(client.ChangeMember(req)).status();
  }

  // Starts member `id` (from AddMemberConfig), adds it as a spare, promotes it to voter and
  // waits until it has applied what the leader had applied once the promotion was done.
  Status AddVoter(int id) {
    if (Status s = cluster_->Start(id); !s.ok()) return s;
    Status s = ChangeMember(Ids(3), id, ChangeMemberRequest::ADD);
    if (!s.ok()) return Error(s.code(), "ADD " + std::to_string(id) + ": " + s.ToString());
    s = ChangeMember(Ids(3), id, ChangeMemberRequest::PROMOTE);
    if (!s.ok()) return Error(s.code(), "PROMOTE " + std::to_string(id) + ": " + s.ToString());
    auto leader = cluster_->StatusOf(Leader(), admin_cc_);
    if (!leader.ok()) return leader.status();
    uint64_t target = leader->self().applied();
    bool caught_up = WaitFor(
        [&] {
          auto st = cluster_->StatusOf(id, admin_cc_);
          return st.ok() && st->self().applied() >= target;
        },
        seconds(20));
    if (caught_up) return Status::Ok();
    return Error(Code::kDeadlineExceeded,
                 "member " + std::to_string(id) + " never caught up to index " + std::to_string(target));
  }

  // Waits until the leader's configuration (what `heka db status` shows; it is published
  // every 100 ms) is exactly `want`, all voters. `seen`: the last configuration seen.
  bool WaitForVoters(const std::set<int>& want, std::string* seen) {
    return WaitFor(
        [&] {
          auto status = cluster_->StatusOf(Leader(), admin_cc_);
          if (!status.ok()) return false;
          std::set<int> voters;
          seen->clear();
          for (const MemberStatus& m : status->members()) {
            *seen += std::to_string(m.id()) + "=" + m.role() + " ";
            if (m.role() == "voter") voters.insert(static_cast<int>(m.id()));
          }
          return voters == want && status->members_size() == static_cast<int>(want.size());
        },
        seconds(5));
  }

  int Leader() {
    auto l = cluster_->WaitForLeader(admin_cc_, seconds(15));
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : 1;
  }

  // Every user and group of `cell` as member `id` itself answers (no failover): name -> id.
  // Users and groups are listed separately to keep each reply well under the frame limit.
  Result<std::map<std::string, int64_t>> EntriesOn(int id, const std::string& cell) {
    rpc::ClientOptions o;
    o.address = cluster_->address(id);
    o.server_principal = cluster_->principal(id);
    o.credentials.ccache = "FILE:" + admin_cc_;
    o.connect_timeout = milliseconds(500);
    auto client = rpc::Client::Create(runtime_, o);
    std::map<std::string, int64_t> out;
    std::set<int64_t> ids;
    for (bool users : {true, false}) {
      ListEntriesRequest req;
      req.set_cell(cell);
      req.set_users(users);
      req.set_groups(!users);
      auto r = runtime_.BlockOn(
          client->Call<ListEntriesReply>("heka.db.Db.ListEntries", req, milliseconds(10000)));
      if (!r.ok()) return r.status();
      for (const Entry& e : r->entries()) {
        out[e.name()] = e.id();
        if (!ids.insert(e.id()).second) {
          return Error(Code::kInternal, "member " + std::to_string(id) + " lists id " +
                                            std::to_string(e.id()) + " twice");
        }
      }
    }
    client->Close();
    return out;
  }

  // Waits until every member in `ids` answers Status with the same applied index twice in a
  // row; returns that index.
  Result<uint64_t> WaitConverged(const std::vector<int>& ids, seconds timeout = seconds(30)) {
    uint64_t previous = 0, converged = 0;
    std::string last;
    bool ok = WaitFor(
        [&] {
          std::set<uint64_t> applied;
          last.clear();
          for (int id : ids) {
            auto s = cluster_->StatusOf(id, admin_cc_);
            if (!s.ok()) {
              last += " member " + std::to_string(id) + ": " + s.status().ToString();
              return false;
            }
            applied.insert(s->self().applied());
            last += " member " + std::to_string(id) + " applied " +
                    std::to_string(s->self().applied());
          }
          bool same = applied.size() == 1 && *applied.begin() > 0;
          bool stable = same && *applied.begin() == previous;
          previous = same ? *applied.begin() : 0;
          if (stable) converged = previous;
          return stable;
        },
        timeout);
    if (!ok) return Error(Code::kDeadlineExceeded, "members did not converge:" + last);
    return converged;
  }

  // Every acknowledged write is on each member of `ids` with its acknowledged id; ids are
  // unique; every member lists the same entries.
  void ExpectAcksOn(const std::vector<int>& ids, const std::string& cell,
                    const std::vector<Ack>& acks) {
    std::set<int64_t> ack_ids;
    for (const Ack& a : acks) EXPECT_TRUE(ack_ids.insert(a.id).second) << "id handed out twice: " << a.id;
    std::map<std::string, int64_t> first;
    for (int id : ids) {
      auto entries = EntriesOn(id, cell);
      ASSERT_TRUE(entries.ok()) << entries.status().ToString();
      int missing = 0, wrong = 0;
      for (const Ack& a : acks) {
        auto it = entries->find(a.name);
        if (it == entries->end()) {
          if (++missing <= 5) ADD_FAILURE() << "member " << id << " lacks acknowledged " << a.name;
        } else if (it->second != a.id) {
          if (++wrong <= 5) {
            ADD_FAILURE() << "member " << id << ": " << a.name << " has id " << it->second
                          << ", acknowledged " << a.id;
          }
        }
      }
      EXPECT_EQ(missing, 0) << "member " << id;
      EXPECT_EQ(wrong, 0) << "member " << id;
      if (first.empty()) {
        first = *entries;
      } else {
        EXPECT_TRUE(first == *entries) << "member " << id << " lists " << entries->size()
                                       << " entries, member " << ids[0] << " " << first.size();
      }
    }
  }

  std::string DumpOf(int id) {
    auto sm = StateMachine::Open(cluster_->data_dir(id) + "/db.sqlite");
    EXPECT_TRUE(sm.ok()) << sm.status().ToString();
    return sm.ok() ? (*sm)->test_DumpAll() : "";
  }

  uint64_t LastAppliedOf(int id) {
    auto sm = StateMachine::Open(cluster_->data_dir(id) + "/db.sqlite");
    EXPECT_TRUE(sm.ok()) << sm.status().ToString();
    return sm.ok() ? (*sm)->last_applied() : 0;
  }

  // Stops `ids` and compares their databases offline.
  void StopAndExpectIdenticalDatabases(const std::vector<int>& ids) {
    for (int id : ids) cluster_->Stop(id);
    std::string reference = DumpOf(ids[0]);
    EXPECT_NE(reference.find("entries"), std::string::npos);
    for (size_t i = 1; i < ids.size(); ++i) {
      std::string other = DumpOf(ids[i]);
      EXPECT_TRUE(other == reference) << "member " << ids[i] << " differs from member " << ids[0]
                                      << " at " << FirstDifference(reference, other);
    }
  }

  // The first Status a freshly started member answers once Raft runs (role set).
  Result<StatusReply> FirstStatusAfterStart(int id) {
    Result<StatusReply> s = Error(Code::kUnavailable, "not asked");
    WaitFor(
        [&] {
          s = cluster_->StatusOf(id, admin_cc_);
          return s.ok() && !s->self().role().empty();
        },
        seconds(15));
    return s;
  }

  void ExpectNoAnomalies(const WriterPool& w) {
    auto a = w.anomalies();
    EXPECT_TRUE(a.empty()) << a.size() << " writes failed unexpectedly, first: " << a[0];
  }

  milliseconds Uniform(int lo_ms, int hi_ms) {
    return milliseconds(std::uniform_int_distribution<int>(lo_ms, hi_ms)(rng_));
  }

  struct FaultLog {
    int kills = 0;
    int leader_kills = 0;
  };

  // Every 1-4 s kill -9 a random member and restart it 0.5-3 s later (one down at a time, so
  // a majority stays up), for `duration`. The pauses are the fault schedule drawn from the
  // seed, not synchronisation.
  FaultLog RunFaults(seconds duration) {
    FaultLog log;
    auto start = Clock::now();
    auto never = [] { return false; };
    while (Clock::now() - start < duration) {
      WaitFor(never, Uniform(1000, 4000));
      int victim = std::uniform_int_distribution<int>(1, cluster_->size())(rng_);
      auto s = cluster_->StatusOf(victim, admin_cc_);
      bool leader = s.ok() && s->self().role() == "leader";
      cluster_->Kill(victim);
      ++log.kills;
      log.leader_kills += leader;
      milliseconds down = Uniform(500, 3000);
      std::printf("[%6.2fs] kill -9 member %d%s, restart in %lld ms\n", SecondsSince(start),
                  victim, leader ? " (leader)" : "", static_cast<long long>(down.count()));
      std::fflush(stdout);
      WaitFor(never, down);
      if (!cluster_->Start(victim).ok()) ADD_FAILURE() << "cannot restart member " << victim;
    }
    return log;
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::string admin_cc_;
  rpc::Runtime runtime_{{2, 4}};
  std::unique_ptr<DbCluster> cluster_;
};

// ---- 1. Chaos. -------------------------------------------------------------------------------

TEST_F(DbChaosTest, AcknowledgedWritesSurviveRandomKillsAndRestarts) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(CreateCell("chaos"));
  WriterPool writers(runtime_, ClientOptions(Ids(3)), "chaos", "w");
  writers.Start(4, 0);
  FaultLog faults = RunFaults(seconds(60));
  writers.Stop();
  for (int id : Ids(3)) ASSERT_TRUE(cluster_->Start(id).ok());
  auto applied = WaitConverged(Ids(3));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();

  std::vector<Ack> acks = writers.acks();
  std::printf("chaos: %zu acknowledged writes, %d not acknowledged (no quorum / outcome unknown), "
              "%d kills (%d of the leader), applied index %llu, seed %llu\n",
              acks.size(), writers.failed(), faults.kills, faults.leader_kills,
              static_cast<unsigned long long>(*applied), static_cast<unsigned long long>(seed_));
  ExpectNoAnomalies(writers);
  EXPECT_GT(acks.size(), 100u) << "writes hardly ever succeeded under faults";
  EXPECT_GE(faults.kills, 10);
  ExpectAcksOn(Ids(3), "chaos", acks);
  StopAndExpectIdenticalDatabases(Ids(3));
}

// ---- 2. Membership 3 -> 5 -> 3 under writes. ---------------------------------------------------

TEST_F(DbChaosTest, MembershipGrowsToFiveAndShrinksToThreeUnderWrites) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(CreateCell("grow"));
  auto m4 = cluster_->AddMemberConfig();
  auto m5 = cluster_->AddMemberConfig();
  ASSERT_TRUE(m4.ok() && m5.ok());
  WriterPool writer(runtime_, ClientOptions(Ids(5)), "grow", "w");
  writer.Start(1, 0);

  for (int id : {*m4, *m5}) {
    Status s = AddVoter(id);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::vector<int> removed;
  for (int round = 0; round < 2; ++round) {
    int leader = Leader();
    int victim = 0;
    for (int id : Ids(3)) {
      if (id != leader && std::find(removed.begin(), removed.end(), id) == removed.end()) {
        victim = id;
        break;
      }
    }
    Status s = ChangeMember(Ids(5), victim, ChangeMemberRequest::REMOVE);
    ASSERT_TRUE(s.ok()) << "REMOVE " << victim << ": " << s.ToString();
    cluster_->Stop(victim);
    removed.push_back(victim);
  }
  std::vector<int> remaining;
  for (int id : Ids(5)) {
    if (std::find(removed.begin(), removed.end(), id) == removed.end()) remaining.push_back(id);
  }

  std::string seen;
  EXPECT_TRUE(WaitForVoters(std::set<int>(remaining.begin(), remaining.end()), &seen))
      << "the leader's configuration: " << seen;

  size_t before = writer.ack_count();
  EXPECT_TRUE(WaitFor([&] { return writer.ack_count() >= before + 20; }, seconds(15)))
      << "the background writer stopped making progress with members " << remaining[0] << ","
      << remaining[1] << "," << remaining[2];
  WriterPool after(runtime_, ClientOptions(remaining), "grow", "x");
  after.Start(2, 25);
  after.Join();
  EXPECT_EQ(after.ack_count(), 50u) << "writes through the remaining three failed";
  writer.Stop();
  ExpectNoAnomalies(writer);
  ExpectNoAnomalies(after);

  std::vector<Ack> acks = writer.acks();
  for (const Ack& a : after.acks()) acks.push_back(a);
  std::printf("membership: %zu acknowledged writes, %d not acknowledged; removed %d and %d\n",
              acks.size(), writer.failed() + after.failed(), removed[0], removed[1]);
  auto applied = WaitConverged(remaining);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ExpectAcksOn(remaining, "grow", acks);
  StopAndExpectIdenticalDatabases(remaining);
  // The removed members are gone from the replicated member list too (no longer admitted).
  auto sm = StateMachine::Open(cluster_->data_dir(remaining[0]) + "/db.sqlite");
  ASSERT_TRUE(sm.ok()) << sm.status().ToString();
  std::vector<uint64_t> listed;
  for (const SetMember& m : (*sm)->Members()) listed.push_back(m.id());
  for (int gone : removed) {
    EXPECT_EQ(std::count(listed.begin(), listed.end(), static_cast<uint64_t>(gone)), 0)
        << "member " << gone << " is still in the member list";
  }
  EXPECT_EQ(listed.size(), 3u);
}

// ---- 3. A member with another service's key. ----------------------------------------------------

TEST_F(DbChaosTest, AMemberWithAnotherServicesKeyNeverJoins) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(CreateCell("guarded"));
  auto& realm = SharedRealm();
  auto keytab = realm.AddService(realm.Principal("heka/fs-chaos"));
  ASSERT_TRUE(keytab.ok()) << keytab.status().ToString();
  auto bad = cluster_->AddMemberConfig(*keytab);
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  ASSERT_TRUE(cluster_->Start(*bad).ok());
  WriterPool writer(runtime_, ClientOptions(Ids(3)), "guarded", "w");
  writer.Start(1, 0);

  Status added = ChangeMember(Ids(3), *bad, ChangeMemberRequest::ADD);
  EXPECT_TRUE(added.ok()) << added.ToString();
  // The leader now tries to bring it up to date; it cannot authenticate as heka/db<N>.
  auto start = Clock::now();
  Status promoted = ChangeMember(Ids(3), *bad, ChangeMemberRequest::PROMOTE, milliseconds(1000));
  std::printf("promotion of the member with the wrong key: %s after %.1f s\n",
              promoted.ToString().c_str(), SecondsSince(start));
  EXPECT_FALSE(promoted.ok()) << "a member that cannot authenticate became a voter";

  auto st = cluster_->StatusOf(*bad, admin_cc_);
  if (st.ok()) {
    EXPECT_EQ(st->self().applied(), 0u) << "the member with the wrong key received entries";
  } else {
    std::printf("Status of the member with the wrong key: %s\n", st.status().ToString().c_str());
  }
  size_t before = writer.ack_count();
  EXPECT_TRUE(WaitFor([&] { return writer.ack_count() >= before + 20; }, seconds(10)))
      << "the cluster stopped serving writes";
  Status removed = ChangeMember(Ids(3), *bad, ChangeMemberRequest::REMOVE);
  EXPECT_TRUE(removed.ok()) << removed.ToString();
  writer.Stop();
  ExpectNoAnomalies(writer);
  auto applied = WaitConverged(Ids(3));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ExpectAcksOn(Ids(3), "guarded", writer.acks());

  cluster_->Stop(*bad);
  auto sm = StateMachine::Open(cluster_->data_dir(*bad) + "/db.sqlite");
  ASSERT_TRUE(sm.ok()) << sm.status().ToString();
  EXPECT_EQ((*sm)->last_applied(), 0u);
  auto cells = (*sm)->ListCells(Caller{kAdmin, true});
  ASSERT_TRUE(cells.ok());
  EXPECT_TRUE(cells->empty()) << "the member with the wrong key holds " << cells->size()
                              << " cells";
}

// ---- 4. A restart does not re-apply the log. ---------------------------------------------------

TEST_F(DbChaosTest, ARestartedFollowerComesBackWithoutReapplying) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(CreateCell("restart"));
  WriterPool writers(runtime_, ClientOptions(Ids(3)), "restart", "w");
  auto start = Clock::now();
  writers.Start(16, 125);
  writers.Join();
  std::printf("restart: %zu writes by 16 writers in %.1f s\n", writers.ack_count(),
              SecondsSince(start));
  ExpectNoAnomalies(writers);
  EXPECT_EQ(writers.ack_count(), 2000u);
  auto applied = WaitConverged(Ids(3));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();

  int leader = Leader();
  int follower = leader % 3 + 1;
  cluster_->Kill(follower);
  EXPECT_EQ(LastAppliedOf(follower), *applied) << "kill -9 lost applied entries";
  std::string before = DumpOf(follower);

  ASSERT_TRUE(cluster_->Start(follower).ok());
  auto first = FirstStatusAfterStart(follower);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->self().applied(), *applied) << "the restarted member did not resume at its "
                                                  "last applied index";
  EXPECT_EQ(LastStartApplied(ReadFile(cluster_->log_path(follower))),
            static_cast<int64_t>(*applied));
  ExpectAcksOn({follower}, "restart", writers.acks());
  cluster_->Stop(follower);
  std::string after = DumpOf(follower);
  EXPECT_TRUE(before == after) << "the database changed across a restart without new writes: "
                               << FirstDifference(before, after);

  ASSERT_TRUE(cluster_->Start(follower).ok());
  WriterPool more(runtime_, ClientOptions(Ids(3)), "restart", "x");
  more.Start(2, 20);
  more.Join();
  EXPECT_EQ(more.ack_count(), 40u);
  auto later = WaitConverged(Ids(3));
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_GT(*later, *applied);
  std::vector<Ack> acks = writers.acks();
  for (const Ack& a : more.acks()) acks.push_back(a);
  ExpectAcksOn(Ids(3), "restart", acks);
}

// ---- 5. Snapshot install onto a lagging member. ------------------------------------------------

TEST_F(DbChaosTest, ALaggingMemberCatchesUpFromASnapshot) {
  testing::DbClusterOptions o;
  o.snapshot_threshold = 64;
  ASSERT_NO_FATAL_FAILURE(StartCluster(o));
  ASSERT_NO_FATAL_FAILURE(CreateCell("snap"));
  int leader = Leader();
  int lagging = leader % 3 + 1;
  cluster_->Stop(lagging);

  WriterPool writers(runtime_, ClientOptions(Ids(3)), "snap", "w");
  writers.Start(4, 125);
  writers.Join();
  ExpectNoAnomalies(writers);
  EXPECT_EQ(writers.ack_count(), 500u);

  ASSERT_TRUE(cluster_->Start(lagging).ok());
  auto applied = WaitConverged(Ids(3));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  std::string log = ReadFile(cluster_->log_path(lagging));
  EXPECT_NE(log.find("raft: installed a snapshot at index"), std::string::npos)
      << "member " << lagging << " caught up without a snapshot (threshold 64, 500 writes)";
  ExpectAcksOn({lagging}, "snap", writers.acks());

  cluster_->Stop(lagging);
  ASSERT_TRUE(cluster_->Start(lagging).ok());
  auto first = FirstStatusAfterStart(lagging);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->self().applied(), *applied);
  auto again = WaitConverged(Ids(3));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *applied);
  ExpectAcksOn(Ids(3), "snap", writers.acks());
  StopAndExpectIdenticalDatabases(Ids(3));
}

}  // namespace
}  // namespace heka::db

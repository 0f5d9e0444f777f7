// Deterministic cluster tests of Heka's own state machine (StateMachine behind StateMachineFsm)
// under C-Raft's in-memory cluster (raft/fixture.h): elections, kills, partitions, snapshots
// and restarts with controllable time. Each member has its own SQLite file.
//
// Faults (which member leads, which one dies, latencies, election timeouts, how many writes)
// come from a seed; a failure prints it, and HEKA_TEST_SEED=<n> runs only that seed.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dbserver/raft/fsm.h"
#include "dbserver/raft/raft.h"
#include "dbserver/state/state_machine.h"

// dbserver/raft/raft.h is where C-Raft is included; the fixture is test-only, and its header
// needs the same extern "C" wrapping (its own include of raft.h is already guarded).
extern "C" {
#include <raft/fixture.h>
}

namespace heka::db {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = 1000LL * 1000 * 1000;
constexpr int64_t kT0 = 1'700'000'000LL * kSecond;  // command time; never the test's clock
constexpr unsigned kWaitMs = 30'000;                // fixture time allowed for one wait
constexpr unsigned kMembers = 3;

const char kRoot[] = "root@PROVIDER.TEST";
const char kCell[] = "acme";
const char kRealm[] = "ACME.TEST";

std::vector<uint64_t> Seeds() {
  if (const char* env = getenv("HEKA_TEST_SEED")) return {strtoull(env, nullptr, 0)};
  return {1, 2, 3};
}

Command ByRoot() {
  Command c;
  c.set_version(kCommandVersion);
  c.set_caller(kRoot);
  c.set_caller_is_provider_admin(true);
  return c;
}

Command CreateCellCommand() {
  Command c = ByRoot();
  c.mutable_create_cell()->set_name(kCell);
  c.mutable_create_cell()->add_realms(kRealm);
  return c;
}

Command CreateUserCommand(const std::string& principal) {
  Command c = ByRoot();
  c.mutable_create_user()->set_cell(kCell);
  c.mutable_create_user()->set_principal(principal);
  return c;
}

std::string UserName(int n) { return "user" + std::to_string(n); }
std::string Principal(int n) { return UserName(n) + "@" + kRealm; }

// A log entry as raft persisted it, to load into a restarted fixture.
struct SavedEntry {
  raft_term term = 0;
  unsigned short type = 0;
  std::vector<uint8_t> data;
};

// The entries of `r`'s in-memory log (struct raft_log in raft.h is a circular buffer).
std::vector<SavedEntry> SaveLog(const raft* r) {
  const raft_log& log = r->log;
  size_t n = log.back >= log.front ? log.back - log.front : log.size - log.front + log.back;
  std::vector<SavedEntry> out;
  for (size_t k = 0; k < n; ++k) {
    const raft_entry& e = log.entries[(log.front + k) % log.size];
    const auto* p = static_cast<const uint8_t*>(e.buf.base);
    out.push_back(SavedEntry{e.term, e.type, std::vector<uint8_t>(p, p + e.buf.len)});
  }
  return out;
}

class RaftFixtureTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  struct Member {
    std::unique_ptr<StateMachine> state;
    std::unique_ptr<StateMachineFsm> fsm;
    std::vector<std::pair<uint64_t, std::string>> fatal;  // what the fatal handler saw
  };
  // A raft_apply this test proposed; lives until the fixture is closed.
  struct Write {
    struct raft_apply req {};
    StateMachineFsm* fsm = nullptr;  // the leader's, which holds the result
    bool done = false;
    int status = 0;
    std::optional<CommandResult> result;
  };

  void SetUp() override {
    seed_ = GetParam();
    trace_.emplace(
        __FILE__, __LINE__,
        "seed " + std::to_string(seed_) + " (rerun: HEKA_TEST_SEED=" + std::to_string(seed_) + ")");
    rng_.seed(seed_);
    char tmpl[] = "/tmp/heka-raftfx-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    CloseFixture();
    fs::remove_all(dir_);
    trace_.reset();
  }

  unsigned Draw(unsigned lo, unsigned hi) {  // uniform in [lo, hi]
    return lo + static_cast<unsigned>(rng_() % (hi - lo + 1));
  }

  raft_fixture* f() { return fixture_.get(); }
  raft* R(unsigned i) { return raft_fixture_get(f(), i); }
  StateMachine& State(unsigned i) { return *members_[i]->state; }
  StateMachineFsm& Fsm(unsigned i) { return *members_[i]->fsm; }
  std::string PathOf(unsigned i) const { return dir_ + "/member" + std::to_string(i) + ".sqlite"; }

  // A fixture of kMembers servers, each with its StateMachine opened from PathOf(i) (created
  // if new). Latencies and election timeouts are drawn from the seed. Not started.
  void NewFixture(unsigned snapshot_threshold = 0, unsigned snapshot_trailing = 0) {
    fixture_ = std::make_unique<raft_fixture>();
    ASSERT_EQ(raft_fixture_initialize(f()), 0);
    for (unsigned i = 0; i < kMembers; ++i) {
      auto m = std::make_unique<Member>();
      auto state = StateMachine::Open(PathOf(i));
      ASSERT_TRUE(state.ok()) << state.status().ToString();
      m->state = std::move(*state);
      Member* raw = m.get();
      // The fixture's raft instances live in f()->servers[], so the address is known before
      // raft_fixture_grow initialises it.
      m->fsm = std::make_unique<StateMachineFsm>(*m->state, &f()->servers[i].raft,
                                                 [raw](uint64_t index, const std::string& message) {
                                                   raw->fatal.emplace_back(index, message);
                                                 });
      ASSERT_EQ(raft_fixture_grow(f(), m->fsm->fsm()), 0);
      members_.push_back(std::move(m));
    }
    // The fixture's "random" election timeout is one fixed value per member; two members
    // whose values differ by less than the network latency split the vote forever. So the
    // seed picks the order in which they time out, spaced well apart.
    std::vector<unsigned> slots(kMembers);
    for (unsigned i = 0; i < kMembers; ++i) slots[i] = i;
    std::shuffle(slots.begin(), slots.end(), rng_);
    for (unsigned i = 0; i < kMembers; ++i) {
      raft_fixture_set_network_latency(f(), i, Draw(5, 30));
      raft_fixture_set_disk_latency(f(), i, Draw(2, 20));
      raft_fixture_set_randomized_election_timeout(f(), i, 1000 + 300 * slots[i] + Draw(0, 99));
      if (snapshot_threshold != 0) {
        raft_set_snapshot_threshold(R(i), snapshot_threshold);
        raft_set_snapshot_trailing(R(i), snapshot_trailing);
      }
    }
  }

  // A brand-new cluster: bootstrapped with every member a voter, started, and a leader
  // drawn from the seed elected. Returns the leader's index.
  unsigned StartCluster(unsigned snapshot_threshold = 0, unsigned snapshot_trailing = 0) {
    NewFixture(snapshot_threshold, snapshot_trailing);
    raft_configuration conf;
    EXPECT_EQ(raft_fixture_configuration(f(), kMembers, &conf), 0);
    EXPECT_EQ(raft_fixture_bootstrap(f(), &conf), 0);
    raft_configuration_close(&conf);
    EXPECT_EQ(raft_fixture_start(f()), 0);
    return Elect(Draw(0, kMembers - 1));
  }

  unsigned Elect(unsigned i) {
    raft_fixture_elect(f(), i);
    EXPECT_EQ(raft_fixture_leader_index(f()), i);
    return i;
  }

  // Closes raft on every member, then the state machines (their SQLite files stay).
  void CloseFixture() {
    if (fixture_) raft_fixture_close(f());  // fails pending writes: writes_ must still exist
    fixture_.reset();
    writes_.clear();
    barriers_.clear();
    members_.clear();
  }

  static void OnWriteApplied(struct raft_apply* req, int status, void*) {
    auto* w = static_cast<Write*>(req->data);
    w->done = true;
    w->status = status;
    w->result = w->fsm->TakeResult(req->index);
  }

  // Proposes `cmd` on the current leader (null, with a test failure, if none or refused).
  Write* Propose(Command cmd) {
    unsigned leader = raft_fixture_leader_index(f());
    if (leader >= kMembers) {
      ADD_FAILURE() << "no leader";
      return nullptr;
    }
    ++proposed_;
    if (cmd.time_ns() == 0) cmd.set_time_ns(kT0 + proposed_ * kSecond);
    if (cmd.request_id().empty()) cmd.set_request_id("req-" + std::to_string(proposed_));
    raft_buffer buf = EncodeEntry(cmd);
    Write& w = writes_.emplace_back();
    w.req.data = &w;
    w.fsm = &Fsm(leader);
    int rv = raft_apply(R(leader), &w.req, &buf, 1, &RaftFixtureTest::OnWriteApplied);
    if (rv != 0) {
      raft_free(buf.base);
      ADD_FAILURE() << "raft_apply: " << raft_strerror(rv);
      return nullptr;
    }
    w.fsm->ExpectResult(w.req.index);
    return &w;
  }

  // Proposes `cmd` and steps the cluster until the leader has applied it.
  CommandResult Run(Command cmd) {
    Write* w = Propose(std::move(cmd));
    if (w == nullptr) return CommandResult();
    bool done = raft_fixture_step_until(
        f(), [](raft_fixture*, void* arg) { return static_cast<Write*>(arg)->done; }, w, kWaitMs);
    EXPECT_TRUE(done) << "write at index " << w->req.index << " not applied on the leader";
    EXPECT_EQ(w->status, 0) << raft_strerror(w->status);
    if (!done || w->status != 0 || !w->result) {
      ADD_FAILURE() << "no result for the write at index " << w->req.index;
      return CommandResult();
    }
    EXPECT_EQ(w->result->index(), w->req.index);
    return *w->result;
  }

  // Creates users [first, last) on the leader; remembers their ids in ids_.
  void CreateUsers(int first, int last) {
    for (int n = first; n < last; ++n) {
      CommandResult r = Run(CreateUserCommand(Principal(n)));
      ASSERT_EQ(r.code(), 0u) << r.message();
      ASSERT_NE(r.id(), 0);
      ids_[UserName(n)] = r.id();
    }
  }

  // Steps until each of `members` has applied (raft's view) up to `index`.
  bool StepUntilApplied(std::vector<unsigned> members, raft_index index) {
    struct Target {
      RaftFixtureTest* self;
      std::vector<unsigned> members;
      raft_index index;
    } target{this, std::move(members), index};
    return raft_fixture_step_until(
        f(),
        [](raft_fixture*, void* arg) {
          auto* t = static_cast<Target*>(arg);
          for (unsigned i : t->members) {
            if (raft_last_applied(t->self->R(i)) < t->index) return false;
          }
          return true;
        },
        &target, kWaitMs);
  }
  bool StepUntilAllApplied() {
    unsigned leader = Leader();
    if (leader >= kMembers) return false;
    return StepUntilApplied({0, 1, 2}, raft_last_index(R(leader)));
  }

  unsigned Leader() { return raft_fixture_leader_index(f()); }

  // The cluster at a glance, for failure messages.
  std::string Describe() {
    static const char* const kStates[] = {"unavailable", "follower", "candidate", "leader"};
    std::string out = "t=" + std::to_string(raft_fixture_time(f())) + "ms";
    for (unsigned i = 0; i < kMembers; ++i) {
      raft* r = R(i);
      out += "; member " + std::to_string(i) + (raft_fixture_alive(f(), i) ? "" : " (dead)") +
             ": " + kStates[raft_state(r) & 3] + " term " + std::to_string(r->current_term) +
             " last " + std::to_string(raft_last_index(r)) + " applied " +
             std::to_string(raft_last_applied(r)) + " voted " +
             std::to_string(raft_fixture_voted_for(f(), i));
    }
    return out;
  }

  // Steps until the fixture sees a stable leader other than `not_this` (raft_fixture_kill
  // does not clear the fixture's idea of the leader: that happens on the next step).
  bool StepUntilStableLeader(unsigned not_this = kMembers) {
    struct Target {
      RaftFixtureTest* self;
      unsigned not_this;
    } target{this, not_this};
    raft_fixture_step(f());
    return raft_fixture_step_until(
        f(),
        [](raft_fixture*, void* arg) {
          auto* t = static_cast<Target*>(arg);
          unsigned leader = t->self->Leader();
          return leader < kMembers && leader != t->not_this;
        },
        &target, kWaitMs);
  }

  // Every member in `members` has the same database, byte for byte in the dump.
  void ExpectIdentical(const std::vector<unsigned>& members = {0, 1, 2}) {
    std::string first = State(members[0]).test_DumpAll();
    ASSERT_EQ(first.rfind("error:", 0), std::string::npos) << first;
    for (unsigned i : members) {
      EXPECT_EQ(State(i).last_applied(), State(members[0]).last_applied()) << "member " << i;
      EXPECT_TRUE(State(i).test_DumpAll() == first)
          << "member " << i << " differs from member " << members[0];
    }
  }

  // Every user created so far has the id the leader's apply returned, on every member.
  void ExpectSameIds(const std::vector<unsigned>& members = {0, 1, 2}) {
    ASSERT_FALSE(ids_.empty());
    Caller root{kRoot, true};
    for (unsigned i : members) {
      for (const auto& [name, id] : ids_) {
        auto entry = State(i).GetEntry(root, kCell, name, 0);
        ASSERT_TRUE(entry.ok()) << "member " << i << " " << name << ": "
                                << entry.status().ToString();
        EXPECT_EQ(entry->id(), id) << "member " << i << " " << name;
      }
    }
  }

  uint64_t seed_ = 0;
  std::optional<::testing::ScopedTrace> trace_;
  std::mt19937_64 rng_;
  std::string dir_;
  std::unique_ptr<raft_fixture> fixture_;
  std::vector<std::unique_ptr<Member>> members_;
  std::deque<Write> writes_;
  std::deque<struct raft_barrier> barriers_;
  int64_t proposed_ = 0;
  std::map<std::string, int64_t> ids_;  // user name -> id from the leader's result
};

// (a), (f): writes on the leader reach every member, which end identical with the same ids.
TEST_P(RaftFixtureTest, WritesReplicateToIdenticalMembers) {
  unsigned leader = StartCluster();
  ASSERT_EQ(Run(CreateCellCommand()).code(), 0u);
  CreateUsers(0, static_cast<int>(Draw(5, 15)));
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  for (unsigned i = 0; i < kMembers; ++i) {
    EXPECT_EQ(raft_last_applied(R(i)), raft_last_applied(R(leader)));
    EXPECT_TRUE(members_[i]->fatal.empty());
  }
  ExpectIdentical();
  ExpectSameIds();
  EXPECT_GT(State(0).last_applied(), 1u);
}

// (b): the leader dies, another is elected and takes writes; the old leader comes back as a
// follower and catches up. Then leadership is deposed and handed back to it.
TEST_P(RaftFixtureTest, RevivedOldLeaderCatchesUp) {
  unsigned old_leader = StartCluster();
  ASSERT_EQ(Run(CreateCellCommand()).code(), 0u);
  CreateUsers(0, static_cast<int>(Draw(2, 6)));
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();

  raft_fixture_kill(f(), old_leader);
  ASSERT_TRUE(StepUntilStableLeader(old_leader)) << Describe();
  unsigned new_leader = Leader();
  ASSERT_NE(new_leader, old_leader);
  CreateUsers(100, 100 + static_cast<int>(Draw(3, 8)));
  std::vector<unsigned> survivors;
  for (unsigned i = 0; i < kMembers; ++i) {
    if (i != old_leader) survivors.push_back(i);
  }
  ASSERT_TRUE(StepUntilApplied(survivors, raft_last_index(R(new_leader)))) << Describe();
  EXPECT_LT(State(old_leader).last_applied(), State(new_leader).last_applied());

  raft_fixture_revive(f(), old_leader);
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  EXPECT_EQ(raft_state(R(old_leader)), RAFT_FOLLOWER);
  ExpectIdentical();
  ExpectSameIds();

  // Depose the new leader and elect the old one again; it takes more writes.
  raft_fixture_depose(f());
  ASSERT_EQ(Leader(), kMembers);
  ASSERT_TRUE(raft_fixture_step_until_state_is(f(), new_leader, RAFT_FOLLOWER, kWaitMs));
  Elect(old_leader);
  CreateUsers(200, 203);
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  ExpectIdentical();
  ExpectSameIds();
  for (unsigned i = 0; i < kMembers; ++i) EXPECT_TRUE(members_[i]->fatal.empty());
}

// (c): with a low snapshot threshold and trailing, a follower that misses more than the
// trailing log catches up by InstallSnapshot (StateMachine::Restore), then by entries again.
class RaftSnapshotTest : public RaftFixtureTest {
 protected:
  // `partition`: cut off from the others instead of killed (it keeps ticking and campaigning).
  void CatchUpBySnapshot(bool partition) {
    unsigned leader = StartCluster(/*snapshot_threshold=*/4, /*snapshot_trailing=*/2);
    ASSERT_EQ(Run(CreateCellCommand()).code(), 0u);
    CreateUsers(0, 3);
    ASSERT_TRUE(StepUntilAllApplied()) << Describe();

    unsigned lagging = (leader + Draw(1, kMembers - 1)) % kMembers;
    if (partition) {
      for (unsigned j = 0; j < kMembers; ++j) {
        if (j == lagging) continue;
        raft_fixture_disconnect(f(), lagging, j);  // one direction each
        raft_fixture_disconnect(f(), j, lagging);
      }
    } else {
      raft_fixture_kill(f(), lagging);
    }
    raft_index behind = raft_last_applied(R(lagging));
    // The first write it misses: registered on the lagging member, which never applies it
    // itself if the snapshot replaces it.
    uint64_t missed = raft_last_index(R(leader)) + 1;
    Fsm(lagging).ExpectResult(missed);
    CreateUsers(10, 10 + static_cast<int>(Draw(12, 20)));
    std::vector<unsigned> others;
    for (unsigned i = 0; i < kMembers; ++i) {
      if (i != lagging) others.push_back(i);
    }
    ASSERT_TRUE(StepUntilApplied(others, raft_last_index(R(leader)))) << Describe();
    // The leader has compacted its log past what the lagging member has.
    ASSERT_GT(R(leader)->log.snapshot.last_index, behind + 2);
    unsigned before = raft_fixture_n_recv(f(), lagging, RAFT_IO_INSTALL_SNAPSHOT);

    if (partition) {
      for (unsigned j = 0; j < kMembers; ++j) {
        if (j == lagging) continue;
        raft_fixture_reconnect(f(), lagging, j);
        raft_fixture_reconnect(f(), j, lagging);
      }
    } else {
      raft_fixture_revive(f(), lagging);
    }
    // A partitioned member may have raised its term and forced an election.
    ASSERT_TRUE(StepUntilStableLeader()) << Describe();
    ASSERT_TRUE(StepUntilAllApplied()) << Describe();
    EXPECT_GT(raft_fixture_n_recv(f(), lagging, RAFT_IO_INSTALL_SNAPSHOT), before);
    EXPECT_EQ(Fsm(lagging).TakeResult(missed), std::nullopt)
        << "entry " << missed << " was applied one by one, not through the snapshot";
    EXPECT_GE(R(lagging)->log.snapshot.last_index, missed);
    ExpectIdentical();
    ExpectSameIds();

    // It goes on applying entries after the snapshot.
    CreateUsers(50, 53);
    ASSERT_TRUE(StepUntilAllApplied()) << Describe();
    ExpectIdentical();
    ExpectSameIds();
    for (unsigned i = 0; i < kMembers; ++i) EXPECT_TRUE(members_[i]->fatal.empty());
  }
};

TEST_P(RaftSnapshotTest, KilledFollowerCatchesUpBySnapshot) { CatchUpBySnapshot(false); }
TEST_P(RaftSnapshotTest, PartitionedFollowerCatchesUpBySnapshot) { CatchUpBySnapshot(true); }

// (d): every member restarts with its raft log and its SQLite file (closed and reopened).
// Raft delivers the whole log to the state machine again; entries up to last_applied are
// skipped, so nothing changes; new writes continue with the next ids.
TEST_P(RaftFixtureTest, RestartReplaysAppliedEntriesWithoutChange) {
  StartCluster();
  ASSERT_EQ(Run(CreateCellCommand()).code(), 0u);
  CreateUsers(0, static_cast<int>(Draw(4, 10)));
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  ExpectIdentical();

  std::vector<std::vector<SavedEntry>> logs;
  std::vector<raft_term> terms;
  std::vector<std::string> dumps;
  uint64_t applied = State(0).last_applied();
  for (unsigned i = 0; i < kMembers; ++i) {
    ASSERT_EQ(R(i)->log.snapshot.last_index, 0u);  // no snapshot: the whole log is kept
    logs.push_back(SaveLog(R(i)));
    ASSERT_EQ(logs.back().size(), raft_last_index(R(i)));
    terms.push_back(R(i)->current_term);
    dumps.push_back(State(i).test_DumpAll());
  }
  CloseFixture();

  NewFixture();
  for (unsigned i = 0; i < kMembers; ++i) {
    ASSERT_EQ(State(i).last_applied(), applied);  // reopened from the same file
    raft_fixture_set_term(f(), i, terms[i]);
    for (const SavedEntry& saved : logs[i]) {
      raft_entry e{};
      e.term = saved.term;
      e.type = saved.type;
      e.buf.len = saved.data.size();
      e.buf.base = raft_malloc(saved.data.size());  // the in-memory disk frees it
      std::memcpy(e.buf.base, saved.data.data(), saved.data.size());
      raft_fixture_add_entry(f(), i, &e);
    }
    // Watch every re-delivered command.
    for (uint64_t index = 1; index <= logs[i].size(); ++index) Fsm(i).ExpectResult(index);
  }
  ASSERT_EQ(raft_fixture_start(f()), 0);
  // Only the bootstrap configuration (index 1) counts as applied before a leader commits.
  for (unsigned i = 0; i < kMembers; ++i) EXPECT_LE(raft_last_applied(R(i)), 1u);
  unsigned leader = Elect(Draw(0, kMembers - 1));

  // A barrier commits the old entries in the new term; every member applies them again.
  struct raft_barrier& barrier = barriers_.emplace_back();
  barrier.data = nullptr;
  ASSERT_EQ(raft_barrier(R(leader), &barrier, [](struct raft_barrier*, int) {}), 0);
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  for (unsigned i = 0; i < kMembers; ++i) {
    EXPECT_GT(raft_last_applied(R(i)), logs[i].size());
    EXPECT_EQ(State(i).last_applied(), applied) << "member " << i;
    EXPECT_TRUE(State(i).test_DumpAll() == dumps[i]) << "member " << i << " changed on replay";
    int redelivered = 0;
    for (uint64_t index = 1; index <= logs[i].size(); ++index) {
      std::optional<CommandResult> r = Fsm(i).TakeResult(index);
      if (logs[i][index - 1].type != RAFT_COMMAND) continue;
      ASSERT_TRUE(r.has_value()) << "member " << i << " entry " << index << " not re-delivered";
      EXPECT_EQ(r->message(), "already applied") << "member " << i << " entry " << index;
      ++redelivered;
    }
    EXPECT_GT(redelivered, 0);
  }

  // Writes go on after the restart; new ids do not reuse old ones, and all members agree.
  CreateUsers(500, 503);
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  ExpectIdentical();
  ExpectSameIds();
  std::set<int64_t> distinct;
  for (const auto& [name, id] : ids_) distinct.insert(id);
  EXPECT_EQ(distinct.size(), ids_.size());
  for (unsigned i = 0; i < kMembers; ++i) EXPECT_TRUE(members_[i]->fatal.empty());
}

// (e): a command from a newer build is not skipped: every member calls the fatal handler at
// that index and applies nothing from it on.
TEST_P(RaftFixtureTest, NewerCommandVersionIsFatalOnEveryMember) {
  StartCluster();
  ASSERT_EQ(Run(CreateCellCommand()).code(), 0u);
  CreateUsers(0, 2);
  ASSERT_TRUE(StepUntilAllApplied()) << Describe();
  uint64_t applied = State(0).last_applied();

  Command future = CreateUserCommand(Principal(99));
  future.set_version(kCommandVersion + 1);
  Write* w = Propose(future);
  ASSERT_NE(w, nullptr);
  uint64_t bad = w->req.index;
  struct Members {
    std::vector<std::unique_ptr<Member>>* members;
  } target{&members_};
  ASSERT_TRUE(raft_fixture_step_until(
      f(),
      [](raft_fixture*, void* arg) {
        for (const auto& m : *static_cast<Members*>(arg)->members) {
          if (m->fatal.empty()) return false;
        }
        return true;
      },
      &target, kWaitMs));
  raft_fixture_step_until_elapsed(f(), 2000);  // raft may retry; it never gets past it

  EXPECT_FALSE(w->done && w->status == 0) << "the leader reported the write applied";
  EXPECT_EQ(w->result, std::nullopt);
  for (unsigned i = 0; i < kMembers; ++i) {
    const auto& fatal = members_[i]->fatal;
    ASSERT_FALSE(fatal.empty());
    for (const auto& [index, message] : fatal) {
      EXPECT_EQ(index, bad) << "member " << i;
      EXPECT_NE(message.find("newer than this build"), std::string::npos) << message;
    }
    EXPECT_EQ(State(i).last_applied(), applied) << "member " << i;
    EXPECT_LT(raft_last_applied(R(i)), bad) << "member " << i << " skipped the entry";
  }
}

std::string SeedName(const ::testing::TestParamInfo<uint64_t>& info) {
  return "seed" + std::to_string(info.param);
}
INSTANTIATE_TEST_SUITE_P(Seeds, RaftFixtureTest, ::testing::ValuesIn(Seeds()), SeedName);
INSTANTIATE_TEST_SUITE_P(Seeds, RaftSnapshotTest, ::testing::ValuesIn(Seeds()), SeedName);

// ---- StateMachineFsm without a cluster: formats and failure handling. ---------------------

class StateMachineFsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/heka-fsm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    state_ = Open("a.sqlite");
    ASSERT_NE(state_, nullptr);
    fsm_ = std::make_unique<StateMachineFsm>(*state_, &raft_,
                                             [this](uint64_t index, const std::string& message) {
                                               fatal_.emplace_back(index, message);
                                             });
  }
  void TearDown() override {
    fsm_.reset();
    state_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<StateMachine> Open(const std::string& name) {
    auto sm = StateMachine::Open(dir_ + "/" + name);
    EXPECT_TRUE(sm.ok()) << sm.status().ToString();
    return sm.ok() ? std::move(*sm) : nullptr;
  }
  // Calls the apply callback as raft does, with raft's last_applied at `index` - 1.
  static int ApplyAt(StateMachineFsm& fsm, raft& r, uint64_t index, const Command& cmd) {
    raft_buffer buf = EncodeEntry(cmd);
    r.last_applied = index - 1;
    void* result = nullptr;
    int rv = fsm.fsm()->apply(fsm.fsm(), &buf, &result);
    if (rv == 0) r.last_applied = index;
    raft_free(buf.base);
    return rv;
  }

  std::string dir_;
  raft raft_{};  // only last_applied is used: the FSM reads raft_last_applied()
  std::unique_ptr<StateMachine> state_;
  std::unique_ptr<StateMachineFsm> fsm_;
  std::vector<std::pair<uint64_t, std::string>> fatal_;
};

TEST_F(StateMachineFsmTest, EntriesArePaddedToEightBytes) {
  for (int n = 0; n < 16; ++n) {
    Command cmd = CreateUserCommand(std::string(static_cast<size_t>(n), 'x') + "@ACME.TEST");
    raft_buffer buf = EncodeEntry(cmd);
    EXPECT_EQ(buf.len % 8, 0u);
    const auto* p = static_cast<const uint8_t*>(buf.base);
    size_t size = p[0] | p[1] << 8 | p[2] << 16 | size_t{p[3]} << 24;
    EXPECT_EQ(size, cmd.ByteSizeLong());
    EXPECT_LT(buf.len - 4 - size, 8u);
    for (size_t k = 4 + size; k < buf.len; ++k) EXPECT_EQ(p[k], 0) << "padding byte " << k;
    Command back;
    ASSERT_TRUE(DecodeEntry(buf, &back));
    EXPECT_EQ(back.SerializeAsString(), cmd.SerializeAsString());
    raft_free(buf.base);
  }
}

TEST_F(StateMachineFsmTest, AppliesAtRaftIndexAndHandsOverResults) {
  fsm_->ExpectResult(3);
  ASSERT_EQ(ApplyAt(*fsm_, raft_, 3, CreateCellCommand()), 0);
  EXPECT_EQ(state_->last_applied(), 3u);
  auto r = fsm_->TakeResult(3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code(), 0u) << r->message();
  EXPECT_EQ(r->index(), 3u);
  EXPECT_EQ(fsm_->TakeResult(3), std::nullopt);  // taken once
  // Re-delivering index 3 (a restart replays the log) is skipped.
  std::string dump = state_->test_DumpAll();
  fsm_->ExpectResult(3);
  ASSERT_EQ(ApplyAt(*fsm_, raft_, 3, CreateUserCommand(Principal(1))), 0);
  EXPECT_EQ(fsm_->TakeResult(3)->message(), "already applied");
  EXPECT_EQ(state_->test_DumpAll(), dump);
  EXPECT_TRUE(fatal_.empty());
}

TEST_F(StateMachineFsmTest, UndecodableEntryIsFatal) {
  auto* base = static_cast<uint8_t*>(raft_malloc(8));
  std::memset(base, 0xff, 8);  // claims a length far beyond the buffer
  raft_buffer buf{base, 8};
  raft_.last_applied = 6;
  void* result = nullptr;
  EXPECT_NE(fsm_->fsm()->apply(fsm_->fsm(), &buf, &result), 0);
  raft_free(base);
  ASSERT_EQ(fatal_.size(), 1u);
  EXPECT_EQ(fatal_[0].first, 7u);
  EXPECT_NE(fatal_[0].second.find("cannot be decoded"), std::string::npos);
  EXPECT_EQ(state_->last_applied(), 0u);
}

TEST_F(StateMachineFsmTest, SnapshotRestoresOnlyWhenNewer) {
  ASSERT_EQ(ApplyAt(*fsm_, raft_, 2, CreateCellCommand()), 0);
  ASSERT_EQ(ApplyAt(*fsm_, raft_, 3, CreateUserCommand(Principal(1))), 0);
  raft_buffer* bufs = nullptr;
  unsigned n = 0;
  ASSERT_EQ(fsm_->fsm()->snapshot(fsm_->fsm(), &bufs, &n), 0);
  ASSERT_EQ(n, 1u);
  auto copy = [&] {
    raft_buffer b{raft_malloc(bufs[0].len), bufs[0].len};
    std::memcpy(b.base, bufs[0].base, b.len);
    return b;
  };
  const auto* p = static_cast<const uint8_t*>(bufs[0].base);
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= uint64_t{p[i]} << (8 * i);
  EXPECT_EQ(header, 3u);

  auto other = Open("b.sqlite");
  raft other_raft{};
  StateMachineFsm other_fsm(*other, &other_raft, [this](uint64_t index, const std::string& m) {
    fatal_.emplace_back(index, m);
  });
  raft_buffer b = copy();
  ASSERT_EQ(other_fsm.fsm()->restore(other_fsm.fsm(), &b), 0);  // takes ownership
  EXPECT_EQ(other->last_applied(), 3u);
  EXPECT_EQ(other->test_DumpAll(), state_->test_DumpAll());

  // An image not newer than the database is ignored.
  ASSERT_EQ(ApplyAt(other_fsm, other_raft, 4, CreateUserCommand(Principal(2))), 0);
  std::string dump = other->test_DumpAll();
  b = copy();
  ASSERT_EQ(other_fsm.fsm()->restore(other_fsm.fsm(), &b), 0);
  EXPECT_EQ(other->last_applied(), 4u);
  EXPECT_EQ(other->test_DumpAll(), dump);

  ASSERT_EQ(fsm_->fsm()->snapshot_finalize(fsm_->fsm(), &bufs, &n), 0);
  EXPECT_EQ(bufs, nullptr);
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(fatal_.empty());
}

}  // namespace
}  // namespace heka::db

// RaftNode: one DB member's Raft instance (C-Raft with libuv I/O and RaftTransport) driving
// the StateMachine. All raft_* calls run on the UvLoop thread; the public methods may be
// called from any thread and complete through callbacks (which run on the loop thread: post
// onwards, never block in them).
//
// Safety settings (RAFT-NOTES.md): entry buffers padded to 8 bytes and allocated with
// raft_malloc; auto-recovery off; pre-vote on; election timeout 400 ms; heartbeat 60 ms;
// snapshot threshold and trailing 8192; connect retry 100 ms.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dbserver/raft/fsm.h"
#include "dbserver/raft/loop.h"
#include "dbserver/raft/transport.h"
#include "dbserver/state/state_machine.h"

namespace heka::db {

struct RaftPeer {
  uint64_t id = 0;
  std::string address;
};

struct RaftNodeOptions {
  uint64_t id = 0;
  std::string address;            // this member's RPC endpoint (also its raft address)
  std::string raft_dir;           // raft log and snapshots
  // Initial voters. Used only by the first start of a brand-new cluster; a member joining
  // an existing cluster starts with an empty list and is added by the leader.
  std::vector<RaftPeer> bootstrap;
  unsigned election_timeout_ms = 400;
  unsigned heartbeat_timeout_ms = 60;
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 8192;
  std::chrono::milliseconds stale_after{3000};  // no known leader this long: stale
};

struct NodeStatus {
  std::string role;               // leader, follower, candidate, unavailable
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied = 0;           // the state machine's last_applied
  uint64_t leader_id = 0;
  std::string leader_address;
  bool stale = false;
  std::vector<MemberStatus> members;  // raft configuration (id, address, role voter/spare)
};

class RaftNode {
 public:
  using WriteDone = std::function<void(Result<CommandResult>)>;

  RaftNode(RaftNodeOptions options, StateMachine& state, RaftTransport& transport, UvLoop& loop);
  ~RaftNode();

  // Starts raft on the loop thread (bootstrapping a new cluster if configured); returns once
  // raft_start has run.
  Status Start();
  // Closes raft and waits for it; safe to call once.
  void Stop();

  // Appends `command` to the log; `done` gets the applied result, or kNotLeader (not the
  // leader: see status().leader_address), or kNoQuorum (leadership lost before commit: the
  // outcome is unknown, retry with the same request id).
  void Propose(const Command& command, WriteDone done);
  // Membership changes, on the leader: add as spare, promote to voter, remove.
  void ChangeMember(ChangeMemberRequest::Op op, uint64_t id, const std::string& address,
                    std::function<void(Status)> done);

  NodeStatus status() const;
  // True when this member has not known a leader for longer than stale_after.
  bool stale() const;

 private:
  struct PendingWrite;
  static void OnApplied(struct raft_apply* req, int status, void* result);
  static void OnTick(uv_timer_t* timer);
  void StartOnLoop(std::promise<Status>* started);
  void UpdateStatus();

  const RaftNodeOptions options_;
  StateMachine& state_;
  RaftTransport& transport_;
  UvLoop& loop_;
  raft_io io_{};
  raft raft_{};
  StateMachineFsm fsm_;  // applies entries to state_; holds results of this member's writes
  uv_timer_t tick_{};
  bool started_ = false;
  bool stopped_ = false;
  // Loop thread only:
  std::unordered_map<uint64_t, PendingWrite*> pending_by_index_;
  // Published by the loop thread for other threads.
  mutable std::mutex status_mu_;
  NodeStatus status_;  // status_mu_
  std::chrono::steady_clock::time_point last_leader_seen_;  // status_mu_
};

}  // namespace heka::db

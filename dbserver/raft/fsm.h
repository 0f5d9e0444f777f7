// StateMachineFsm: the raft_fsm that C-Raft calls to apply committed entries to a
// StateMachine, to snapshot it and to restore it. RaftNode owns one; the fixture tests
// (tests/dbserver/raft_fixture_test.cc) drive the same class with C-Raft's in-memory cluster.
// Loop thread only: every method and callback runs where the raft instance's calls run.
//
// Formats (RAFT-NOTES.md trap 1):
//   log entry  [u32 LE length][Command protobuf][zero padding to a multiple of 8 bytes],
//              allocated with raft_malloc.
//   snapshot   one buffer: [u64 LE last_applied][SQLite image from StateMachine::Snapshot].
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "dbserver/raft/raft.h"
#include "dbserver/state/state_machine.h"

namespace heka::db {

// Encodes `cmd` as a log entry (format above). The caller owns the buffer (raft_free, or
// hand it to raft_apply).
raft_buffer EncodeEntry(const Command& cmd);
// Decodes a log entry; false when it is malformed.
bool DecodeEntry(const raft_buffer& buf, Command* cmd);

class StateMachineFsm {
 public:
  // Called when an entry cannot be decoded or StateMachine::Apply fails: the member must not
  // go on (skipping the entry would make it diverge). `index` is the entry's log index.
  // Default: log critical and _exit(3). Tests inject one that records the failure; if it
  // returns, the apply callback returns an error and raft retries the entry later (it is
  // never skipped).
  using FatalHandler = std::function<void(uint64_t index, const std::string& message)>;

  // `r` is the raft instance this FSM is (or will be) registered with: the index of an entry
  // being applied is raft_last_applied(r) + 1. Neither is owned; both must outlive this.
  StateMachineFsm(StateMachine& state, raft* r, FatalHandler fatal = {});
  StateMachineFsm(const StateMachineFsm&) = delete;
  StateMachineFsm& operator=(const StateMachineFsm&) = delete;

  // What to pass to raft_init (version 2, with snapshot_finalize).
  raft_fsm* fsm() { return &fsm_; }
  StateMachine& state() { return state_; }

  // Keeps the CommandResult of the entry at `index` when it is applied on this member (the
  // leader registers the index raft_apply assigned). TakeResult returns it (nullopt when not
  // applied yet, e.g. the write failed) and forgets the index.
  void ExpectResult(uint64_t index);
  std::optional<CommandResult> TakeResult(uint64_t index);
  // Forgets every registered index (shutdown).
  void ForgetResults() { pending_.clear(); }

 private:
  static int Apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int Restore(raft_fsm* fsm, raft_buffer* buf);

  StateMachine& state_;
  raft* const raft_;
  const FatalHandler fatal_;
  raft_fsm fsm_{};
  // Index -> result once applied (nullopt until then).
  std::unordered_map<uint64_t, std::optional<CommandResult>> pending_;
};

}  // namespace heka::db

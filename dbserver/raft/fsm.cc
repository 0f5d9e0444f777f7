#include "dbserver/raft/fsm.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>

namespace heka::db {
namespace {

constexpr size_t kEntryHeader = 4;     // little-endian length of the protobuf that follows
constexpr size_t kSnapshotHeader = 8;  // little-endian last_applied of the image that follows

void ExitFatal(uint64_t, const std::string& message) {
  spdlog::critical("raft: {}", message);
  _exit(3);
}

}  // namespace

// RAFT-NOTES trap 1: every entry buffer must be a multiple of 8 bytes, from raft_malloc.
raft_buffer EncodeEntry(const Command& cmd) {
  size_t size = cmd.ByteSizeLong();
  size_t padded = (kEntryHeader + size + 7) & ~size_t{7};
  auto* base = static_cast<uint8_t*>(raft_malloc(padded));
  std::memset(base, 0, padded);
  for (int i = 0; i < 4; ++i) base[i] = static_cast<uint8_t>(size >> (8 * i));
  cmd.SerializeWithCachedSizesToArray(base + kEntryHeader);
  return raft_buffer{base, padded};
}

bool DecodeEntry(const raft_buffer& buf, Command* cmd) {
  if (buf.len < kEntryHeader) return false;
  const auto* p = static_cast<const uint8_t*>(buf.base);
  size_t size = 0;
  for (int i = 0; i < 4; ++i) size |= size_t{p[i]} << (8 * i);
  if (size > buf.len - kEntryHeader) return false;
  return cmd->ParseFromArray(p + kEntryHeader, static_cast<int>(size));
}

StateMachineFsm::StateMachineFsm(StateMachine& state, raft* r, FatalHandler fatal)
    : state_(state), raft_(r), fatal_(fatal ? std::move(fatal) : FatalHandler(&ExitFatal)) {
  fsm_.version = 2;
  fsm_.data = this;
  fsm_.apply = &StateMachineFsm::Apply;
  fsm_.snapshot = &StateMachineFsm::Snapshot;
  fsm_.snapshot_finalize = &StateMachineFsm::SnapshotFinalize;
  fsm_.restore = &StateMachineFsm::Restore;
}

void StateMachineFsm::ExpectResult(uint64_t index) { pending_[index]; }

std::optional<CommandResult> StateMachineFsm::TakeResult(uint64_t index) {
  auto it = pending_.find(index);
  if (it == pending_.end()) return std::nullopt;
  std::optional<CommandResult> result = std::move(it->second);
  pending_.erase(it);
  return result;
}

int StateMachineFsm::Apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  auto* self = static_cast<StateMachineFsm*>(fsm->data);
  *result = nullptr;
  // C-Raft advances last_applied after this callback returns.
  uint64_t index = raft_last_applied(self->raft_) + 1;
  Command cmd;
  if (!DecodeEntry(*buf, &cmd)) {
    self->fatal_(index, "log entry " + std::to_string(index) +
                            " cannot be decoded; stopping so nothing is skipped");
    return RAFT_CORRUPT;
  }
  Result<CommandResult> r = self->state_.Apply(index, cmd);
  if (!r.ok()) {
    self->fatal_(index, "cannot apply log entry " + std::to_string(index) + ": " +
                            r.status().ToString() + "; stopping this member");
    return RAFT_IOERR;
  }
  r->set_index(index);
  auto it = self->pending_.find(index);
  if (it != self->pending_.end()) it->second = std::move(*r);
  return 0;
}

int StateMachineFsm::Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
  auto* self = static_cast<StateMachineFsm*>(fsm->data);
  uint64_t applied = self->state_.last_applied();
  Result<Bytes> image = self->state_.Snapshot();
  if (!image.ok()) {
    spdlog::error("raft: snapshot failed: {}", image.status().ToString());
    return RAFT_IOERR;
  }
  auto* base = static_cast<uint8_t*>(raft_malloc(kSnapshotHeader + image->size()));
  for (int i = 0; i < 8; ++i) base[i] = static_cast<uint8_t>(applied >> (8 * i));
  std::memcpy(base + kSnapshotHeader, image->data(), image->size());
  *bufs = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  (*bufs)[0] = raft_buffer{base, kSnapshotHeader + image->size()};
  *n = 1;
  return 0;
}

int StateMachineFsm::SnapshotFinalize(raft_fsm*, raft_buffer* bufs[], unsigned* n) {
  for (unsigned i = 0; i < *n; ++i) raft_free((*bufs)[i].base);
  raft_free(*bufs);
  *bufs = nullptr;
  *n = 0;
  return 0;
}

// Takes ownership of buf->base.
int StateMachineFsm::Restore(raft_fsm* fsm, raft_buffer* buf) {
  auto* self = static_cast<StateMachineFsm*>(fsm->data);
  const auto* p = static_cast<const uint8_t*>(buf->base);
  if (buf->len < kSnapshotHeader) {
    raft_free(buf->base);
    return RAFT_CORRUPT;
  }
  uint64_t applied = 0;
  for (int i = 0; i < 8; ++i) applied |= uint64_t{p[i]} << (8 * i);
  int rv = 0;
  // At start-up raft restores its latest snapshot; the database on disk is usually newer
  // (it is the source of truth), and then the snapshot is not needed.
  if (applied > self->state_.last_applied()) {
    Status s = self->state_.Restore(ByteView(p + kSnapshotHeader, buf->len - kSnapshotHeader));
    if (!s.ok()) {
      spdlog::error("raft: installing a snapshot failed: {}", s.ToString());
      rv = RAFT_IOERR;
    } else {
      spdlog::info("raft: installed a snapshot at index {}", applied);
    }
  }
  raft_free(buf->base);
  return rv;
}

}  // namespace heka::db

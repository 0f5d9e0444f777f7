#include "fileserver/server/locks.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace heka::fs {

LockTable::LockTable(std::chrono::milliseconds lease, std::chrono::milliseconds grace)
    : lease_(lease), grace_end_(Clock::now() + grace) {}

void LockTable::ExpireLocked(Clock::time_point now) {
  for (auto it = lease_end_.begin(); it != lease_end_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const std::string client = it->first;
    size_t dropped = 0;
    for (auto l = locks_.begin(); l != locks_.end();) {
      auto& held = l->second;
      size_t before = held.size();
      std::erase_if(held, [&](const Lock& x) { return x.client == client; });
      if (held.size() != before) {
        lost_[client].insert(l->first);
        dropped += before - held.size();
      }
      l = held.empty() ? locks_.erase(l) : std::next(l);
    }
    spdlog::warn("lock lease of client {} expired: {} locks released", client, dropped);
    it = lease_end_.erase(it);
  }
}

Status LockTable::Set(const std::string& client, Key key, uint64_t start, uint64_t length,
                      uint64_t owner, bool exclusive, bool reclaim) {
  uint64_t end = length == 0 || start > std::numeric_limits<uint64_t>::max() - length
                     ? std::numeric_limits<uint64_t>::max()
                     : start + length;
  auto now = Clock::now();
  std::lock_guard lock(mu_);
  ExpireLocked(now);
  if (reclaim && now >= grace_end_) {
    return Error(Code::kLockLost, "the grace period for reclaiming locks is over");
  }
  if (!reclaim && now < grace_end_) {
    return Error(Code::kLockConflict, "the server restarted recently: locks are being "
                                      "reclaimed, retry in a few seconds");
  }
  auto& held = locks_[key];
  for (const Lock& l : held) {
    bool same = l.client == client && l.owner == owner;
    bool overlap = l.start < end && start < l.end;
    if (!same && overlap && (exclusive || l.exclusive)) {
      return Error(Code::kLockConflict, "an overlapping lock is held by another client");
    }
  }
  // As fcntl: the new lock replaces the owner's locks on [start, end), splitting them.
  CutLocked(held, client, owner, start, end);
  held.push_back(Lock{client, owner, start, end, exclusive});
  lease_end_[client] = now + lease_;
  return Status::Ok();
}

bool LockTable::CutLocked(std::vector<Lock>& held, const std::string& client, uint64_t owner,
                          uint64_t start, uint64_t end) {
  std::vector<Lock> kept;
  bool cut = false;
  for (Lock& l : held) {
    bool mine = l.client == client && l.owner == owner;
    if (!mine || l.end <= start || end <= l.start) {
      kept.push_back(std::move(l));
      continue;
    }
    cut = true;
    if (l.start < start) kept.push_back(Lock{l.client, l.owner, l.start, start, l.exclusive});
    if (end < l.end) kept.push_back(Lock{l.client, l.owner, end, l.end, l.exclusive});
  }
  held = std::move(kept);
  return cut;
}

Status LockTable::Release(const std::string& client, Key key, uint64_t start, uint64_t length,
                          uint64_t owner) {
  uint64_t end = length == 0 || start > std::numeric_limits<uint64_t>::max() - length
                     ? std::numeric_limits<uint64_t>::max()
                     : start + length;
  std::lock_guard lock(mu_);
  ExpireLocked(Clock::now());
  auto it = locks_.find(key);
  if (it == locks_.end()) return Error(Code::kNotFound, "no such lock");
  bool found = CutLocked(it->second, client, owner, start, end);
  if (it->second.empty()) locks_.erase(it);
  return found ? Status::Ok() : Error(Code::kNotFound, "no such lock");
}

bool LockTable::empty() {
  std::lock_guard lock(mu_);
  return locks_.empty();
}

LockTable::Renewed LockTable::Renew(const std::string& client) {
  auto now = Clock::now();
  std::lock_guard lock(mu_);
  ExpireLocked(now);
  auto it = lease_end_.find(client);
  if (it != lease_end_.end()) it->second = now + lease_;
  Renewed out;
  for (auto [from, to] : {std::pair{&lost_, &out.lost}, std::pair{&moved_, &out.moved}}) {
    auto l = from->find(client);
    if (l == from->end()) continue;
    to->assign(l->second.begin(), l->second.end());
    from->erase(l);
  }
  return out;
}

std::vector<LockTable::Record> LockTable::Export(uint64_t volume) {
  std::lock_guard lock(mu_);
  ExpireLocked(Clock::now());
  std::vector<Record> out;
  for (auto it = locks_.lower_bound(Key{volume, 0}); it != locks_.end() && it->first.volume == volume; ++it) {
    for (const Lock& l : it->second) {
      out.push_back({l.client, it->first.vnode, l.owner, l.start, l.end, l.exclusive});
    }
  }
  return out;
}

void LockTable::Import(uint64_t volume, const std::vector<Record>& records) {
  auto now = Clock::now();
  std::lock_guard lock(mu_);
  for (const Record& r : records) {
    auto& held = locks_[Key{volume, r.vnode}];
    CutLocked(held, r.client, r.owner, r.start, r.end);
    held.push_back(Lock{r.client, r.owner, r.start, r.end, r.exclusive});
    lease_end_[r.client] = std::max(lease_end_[r.client], now + lease_);
  }
  if (!records.empty()) {
    spdlog::info("volume {}: {} advisory locks taken over from its previous server", volume,
                 records.size());
  }
}

std::vector<LockTable::Record> LockTable::MoveOut(uint64_t volume) {
  std::vector<Record> out = Export(volume);
  std::lock_guard lock(mu_);
  for (auto it = locks_.lower_bound(Key{volume, 0}); it != locks_.end() && it->first.volume == volume;) {
    for (const Lock& l : it->second) moved_[l.client].insert(it->first);
    it = locks_.erase(it);
  }
  return out;
}

}  // namespace heka::fs

#include "cachemgr/key_store.h"

#include <spdlog/spdlog.h>

namespace heka::cm {

KeyStore::KeyStore(KeyStoreOptions options) : options_(std::move(options)) {}

std::chrono::steady_clock::time_point KeyStore::Now() const {
  return options_.test_now ? options_.test_now() : std::chrono::steady_clock::now();
}

std::string KeyStore::PathOf(const std::string& cell) const {
  auto it = options_.key_files.find(cell);
  if (it != options_.key_files.end()) return it->second;
  return options_.key_dir + "/" + cell + ".key";
}

Result<std::shared_ptr<const crypto::CellKey>> KeyStore::KeyFor(const std::string& cell) {
  if (heka::Status s = CheckCellName(cell); !s.ok()) {
    return Error(Code::kPermissionDenied, s.message());
  }
  std::lock_guard lock(mu_);
  if (auto it = keys_.find(cell); it != keys_.end()) return it->second.key;
  auto miss = misses_.find(cell);
  if (miss != misses_.end() && Now() - miss->second.at < options_.miss_ttl) {
    return miss->second.status;
  }
  auto key = LoadLocked(cell);
  if (!key.ok()) {
    // One log line per new reason, not one per look.
    if (miss == misses_.end() || miss->second.status != key.status()) {
      spdlog::warn("keys: {}", key.status().message());
    }
    misses_[cell] = Miss{Now(), key.status()};
    return key.status();
  }
  misses_.erase(cell);
  keys_[cell] = Held{*key, "file"};
  spdlog::info("key of cell {} loaded from {} (fingerprint {})", cell, PathOf(cell),
               crypto::Hex((*key)->fingerprint()));
  return *key;
}

Result<std::shared_ptr<const crypto::CellKey>> KeyStore::LoadLocked(const std::string& cell) {
  const std::string path = PathOf(cell);
  auto file = crypto::ReadKeyFile(path);
  if (!file.ok()) {
    if (file.status().code() == Code::kNotFound) {
      return Error(Code::kPermissionDenied, "no key for cell " + cell + " (looked in " + path +
                                                "): run `heka key import` or `heka key unlock`");
    }
    return Error(Code::kPermissionDenied,  // the message names the file
                 "the key file of cell " + cell + " is unusable: " + file.status().message());
  }
  if (file->cell != cell) {
    return Error(Code::kPermissionDenied, "the key file " + path + " holds the key of cell " +
                                              file->cell + ", not of cell " + cell);
  }
  if (file->wrapped) {
    return Error(Code::kPermissionDenied, "the key of cell " + cell +
                                              " is passphrase-protected: run `heka key unlock "
                                              "-cell " +
                                              cell + "`");
  }
  auto key = crypto::OpenKeyFile(*file, "");
  if (!key.ok()) {
    return Error(Code::kPermissionDenied, "the key file " + path + " of cell " + cell +
                                              " is unusable: " + key.status().message());
  }
  return key;
}

heka::Status KeyStore::Install(const std::string& cell, std::shared_ptr<const crypto::CellKey> key,
                               const std::string& by) {
  if (heka::Status s = CheckCellName(cell); !s.ok()) return s;
  const std::string path = PathOf(cell);
  const std::string offered = crypto::Hex(key->fingerprint());
  // The key file names the cell's key; an unlock may not bring another one.
  auto file = crypto::ReadKeyFile(path);
  if (!file.ok() && file.status().code() != Code::kNotFound) {
    return Error(Code::kPermissionDenied, "cannot check the key " + offered + " of cell " + cell +
                                              " against its key file " + path + ": " +
                                              file.status().message());
  }
  if (file.ok() && file->fingerprint != key->fingerprint()) {
    return Error(Code::kPermissionDenied, "the key offered for cell " + cell + " has fingerprint " +
                                              offered + ", but its key file " + path + " names " +
                                              crypto::Hex(file->fingerprint));
  }
  std::lock_guard lock(mu_);
  auto old = keys_.find(cell);
  if (old != keys_.end() && old->second.key->fingerprint() != key->fingerprint()) {
    spdlog::warn("key of cell {}: {} replaces {}", cell, offered,
                 crypto::Hex(old->second.key->fingerprint()));
  }
  keys_[cell] = Held{std::move(key), "unlocked"};
  misses_.erase(cell);
  spdlog::info("key of cell {} unlocked{} (fingerprint {})", cell, by.empty() ? "" : " by " + by,
               offered);
  return heka::Status::Ok();
}

std::vector<KeyStore::Loaded> KeyStore::Status() const {
  std::lock_guard lock(mu_);
  std::vector<Loaded> out;
  for (const auto& [cell, held] : keys_)
    out.push_back({cell, held.key->fingerprint(), held.source});
  return out;
}

}  // namespace heka::cm

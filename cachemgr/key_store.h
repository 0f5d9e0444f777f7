// KeyStore: the cache manager's cell keys (docs/formats/encryption.md, "Key files"). A key
// comes from the cell's key file when that file holds it raw, or from `heka key unlock`
// (KEY_UNLOCK on the control socket) when the file is passphrase-protected: the daemon cannot
// prompt. Keys are held only as crypto::CellKey (locked memory) and never written anywhere.
// Thread-safe: every method may be called from any thread (FUSE and control threads).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cachemgr/crypto/crypto.h"
#include "util/status.h"

namespace heka::cm {

// Where key files live unless the config (`key_dir`) or, for `heka key`, $HEKA_KEY_DIR says
// otherwise: <dir>/<cell>.key.
inline constexpr const char* kDefaultKeyDir = "/etc/heka/keys";
inline constexpr const char* kKeyDirEnv = "HEKA_KEY_DIR";

// kInvalidArgument unless `cell` can name a key file: not empty, no '/', not starting with '.'.
inline Status CheckCellName(const std::string& cell) {
  if (cell.empty() || cell[0] == '.' || cell.find('/') != std::string::npos ||
      cell.find('\0') != std::string::npos) {
    return Error(Code::kInvalidArgument, "'" + cell + "' is not a cell name");
  }
  return Status::Ok();
}

struct KeyStoreOptions {
  // The directory of key files <cell>.key. Default kDefaultKeyDir.
  std::string key_dir = kDefaultKeyDir;
  // Per-cell key file paths, overriding key_dir (config [cachemgr.keys]).
  std::map<std::string, std::string> key_files;
  // How long a missing or passphrase-protected key file is remembered before it is looked at
  // again. Default 2 s.
  std::chrono::milliseconds miss_ttl{2000};
  // The clock of miss_ttl; default std::chrono::steady_clock::now. Tests make time jump.
  std::function<std::chrono::steady_clock::time_point()> test_now;
};

class KeyStore {
 public:
  // A cell with a key, as `heka key status` shows it.
  struct Loaded {
    std::string cell;
    crypto::KeyId fingerprint{};
    std::string source;  // "file" (a raw key file) or "unlocked" (`heka key unlock`)
  };

  explicit KeyStore(KeyStoreOptions options);
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  // The key file path of `cell`: its [cachemgr.keys] entry, else <key_dir>/<cell>.key.
  std::string PathOf(const std::string& cell) const;

  // The key of `cell`: the one installed or loaded before; else the key of its key file if
  // that file holds it raw (kept from then on). kPermissionDenied, with what to run, when
  // the file is passphrase-protected (until Install), missing, or unusable. A missing or
  // protected file is looked at again only after miss_ttl, so a file put there later is
  // found.
  Result<std::shared_ptr<const crypto::CellKey>> KeyFor(const std::string& cell);

  // Installs `key` as the key of `cell` (from KEY_UNLOCK), replacing any other. If the cell
  // has a key file, `key` must have the fingerprint the file names: kPermissionDenied (both
  // fingerprints in the message) otherwise, and for a key file that cannot be read.
  // `by` says who in the log line ("uid 0 pid 42"). REQUIRES: key != nullptr.
  heka::Status Install(const std::string& cell, std::shared_ptr<const crypto::CellKey> key,
                       const std::string& by = "");

  // The cells with a key, by name.
  std::vector<Loaded> Status() const;

 private:
  struct Held {
    std::shared_ptr<const crypto::CellKey> key;
    std::string source;
  };
  struct Miss {
    std::chrono::steady_clock::time_point at;
    heka::Status status;
  };

  std::chrono::steady_clock::time_point Now() const;
  // The key of `cell`'s key file. REQUIRES: mu_ held.
  Result<std::shared_ptr<const crypto::CellKey>> LoadLocked(const std::string& cell);

  const KeyStoreOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Held> keys_;    // mu_
  std::map<std::string, Miss> misses_;  // mu_: cells whose key file gave no key, and why
};

}  // namespace heka::cm

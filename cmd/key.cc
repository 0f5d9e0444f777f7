// heka key init | wrap | unlock | fingerprint | escrow-export | import | status: the cell keys
// of encrypted volumes (docs/formats/encryption.md, "The cell key" and "Key files"). Keys stay
// on clients: these commands write key files (mode 0600) and hand a key to the local cache
// manager; no server ever sees one.
#include <string.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "cmd/commands.h"
#include "cmd/key_common.h"

namespace heka::cli {
namespace {

namespace crypto = cm::crypto;

const Switch kCell = {"cell", true, "the cell whose key it is (required)"};
const Switch kKeyFile = {"keyfile", true,
                         "the key file (default $HEKA_KEY_DIR/<cell>.key, else "
                         "/etc/heka/keys/<cell>.key)"};
const Switch kPassFile = {"passfile", true,
                          "read the key file's passphrase from this file's first line"};
const Switch kNewPassFile = {"newpassfile", true,
                             "read the new passphrase from this file's first line"};

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Writes `file` (its raw key wiped afterwards, written or not).
Status Write(const std::string& path, crypto::KeyFile file, bool overwrite) {
  Status s = crypto::WriteKeyFile(path, file, overwrite);
  ::explicit_bzero(file.key.data(), file.key.size());
  if (s.code() == Code::kAlreadyExists) {
    return Error(Code::kAlreadyExists, path + " already exists");
  }
  return s;
}

// The key file for `key` of `cell`: raw, or wrapped with a new passphrase.
Result<crypto::KeyFile> NewKeyFile(const FsCommand& c, const std::string& cell,
                                   const crypto::CellKey& key, bool wrapped,
                                   const std::string& prompt) {
  if (!wrapped) return crypto::RawKeyFile(cell, key);
  auto passphrase = ReadNewPassphrase(c, "newpassfile", prompt);
  if (!passphrase.ok()) return passphrase.status();
  return crypto::WrapKey(cell, key, passphrase->text());
}

std::string Fingerprint(const crypto::CellKey& key) { return crypto::Hex(key.fingerprint()); }

}  // namespace

// heka key init -cell C [-keyfile PATH] [-passphrase [-newpassfile FILE]]
int KeyInit(int argc, char** argv) {
  FsCommand c = StartKeyCommand("key init", argc, argv,
                                {kCell,
                                 kKeyFile,
                                 {"passphrase", false, "protect the new key with a passphrase"},
                                 kNewPassFile},
                                {"cell"});
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell");
  auto path = KeyFilePathForWriting(c);
  if (!path.ok()) return c.Fail(path.status());
  if (Exists(*path)) {
    return c.Fail(Error(Code::kAlreadyExists,
                        *path + " already exists: cell " + cell +
                            " has a key (heka key fingerprint); a new key would not read what "
                            "the old one wrote"));
  }
  auto key = crypto::CellKey::Generate();
  auto file = NewKeyFile(c, cell, *key, c.Has("passphrase"),
                         "New passphrase for the key of cell " + cell + ": ");
  if (!file.ok()) return c.Fail(file.status());
  if (Status s = Write(*path, std::move(*file), false); !s.ok()) return c.Fail(s);
  std::printf("cell %s: new key %s in %s%s\n", cell.c_str(), Fingerprint(*key).c_str(),
              path->c_str(), c.Has("passphrase") ? " (passphrase-protected)" : "");
  return kExitOk;
}

// heka key wrap -cell C [-keyfile PATH] [-passfile FILE] [-newpassfile FILE]: a raw key file
// protected with a passphrase; a protected one gets a new passphrase.
int KeyWrap(int argc, char** argv) {
  FsCommand c =
      StartKeyCommand("key wrap", argc, argv, {kCell, kKeyFile, kPassFile, kNewPassFile}, {"cell"});
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell");
  auto path = KeyFilePath(c);
  if (!path.ok()) return c.Fail(path.status());
  auto key = OpenKey(c, cell, *path);
  if (!key.ok()) return c.Fail(key.status());
  auto file = NewKeyFile(c, cell, **key, true, "New passphrase for the key of cell " + cell + ": ");
  if (!file.ok()) return c.Fail(file.status());
  if (Status s = Write(*path, std::move(*file), true); !s.ok()) return c.Fail(s);
  std::printf("cell %s: key %s in %s is passphrase-protected\n", cell.c_str(),
              Fingerprint(**key).c_str(), path->c_str());
  return kExitOk;
}

// heka key unlock -cell C [-keyfile PATH] [-passfile FILE] [-socket S]
int KeyUnlock(int argc, char** argv) {
  FsCommand c = StartKeyCommand("key unlock", argc, argv, {kCell, kKeyFile, kPassFile}, {"cell"},
                                /*socket=*/true);
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell");
  auto path = KeyFilePath(c);
  if (!path.ok()) return c.Fail(path.status());
  auto key = OpenKey(c, cell, *path);
  if (!key.ok()) return c.Fail(key.status());
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::KEY_UNLOCK);
  req.set_cell(cell);
  req.set_key(std::string((*key)->bytes()));
  auto rep = AskCacheManager(c, req);
  ::explicit_bzero(req.mutable_key()->data(), req.key().size());
  if (!rep.ok()) return c.Fail(rep.status());
  std::printf("cell %s: key %s unlocked in the cache manager\n", cell.c_str(),
              Fingerprint(**key).c_str());
  return kExitOk;
}

// heka key fingerprint -cell C [-keyfile PATH]: no passphrase needed.
int KeyFingerprint(int argc, char** argv) {
  FsCommand c = StartKeyCommand("key fingerprint", argc, argv, {kCell, kKeyFile}, {"cell"});
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell");
  auto path = KeyFilePath(c);
  if (!path.ok()) return c.Fail(path.status());
  auto file = crypto::ReadKeyFile(*path);
  if (!file.ok()) {
    if (file.status().code() == Code::kNotFound) {
      return c.Fail(Error(Code::kNotFound, "no key file " + *path + " for cell " + cell));
    }
    return c.Fail(file.status());  // it names the file
  }
  if (file->cell != cell) {
    return c.Fail(Error(Code::kInvalidArgument,
                        *path + " holds the key of cell " + file->cell + ", not of cell " + cell));
  }
  if (!file->wrapped) {  // the key is there: check it is the one the file names
    auto key = crypto::OpenKeyFile(*file, "");
    ::explicit_bzero(file->key.data(), file->key.size());
    if (!key.ok()) return c.Fail(key.status().WithContext(*path));
  }
  std::printf("%s\n", crypto::Hex(file->fingerprint).c_str());
  return kExitOk;
}

// heka key escrow-export -cell C -file OUT [-keyfile PATH] [-passfile F] [-newpassfile F]: a
// recovery copy wrapped with a recovery passphrase of its own.
int KeyEscrowExport(int argc, char** argv) {
  FsCommand c = StartKeyCommand(
      "key escrow-export", argc, argv,
      {kCell,
       {"file", true, "the recovery copy to write (required)"},
       kKeyFile,
       kPassFile,
       {"newpassfile", true, "read the recovery passphrase from this file's first line"}},
      {"cell", "file"});
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell"), out = c.Get("file");
  auto path = KeyFilePath(c);
  if (!path.ok()) return c.Fail(path.status());
  if (Exists(out)) return c.Fail(Error(Code::kAlreadyExists, out + " already exists"));
  auto key = OpenKey(c, cell, *path);
  if (!key.ok()) return c.Fail(key.status());
  auto file = NewKeyFile(c, cell, **key, true, "Recovery passphrase for cell " + cell + ": ");
  if (!file.ok()) return c.Fail(file.status());
  if (Status s = Write(out, std::move(*file), false); !s.ok()) return c.Fail(s);
  std::printf("cell %s: recovery copy of key %s written to %s\n", cell.c_str(),
              Fingerprint(**key).c_str(), out.c_str());
  return kExitOk;
}

// heka key import -cell C -file IN [-keyfile PATH] [-passfile F] [-passphrase [-newpassfile F]]
// [-force]: the cell's key file from an escrow export (or any key file of the cell).
int KeyImport(int argc, char** argv) {
  FsCommand c = StartKeyCommand(
      "key import", argc, argv,
      {kCell,
       {"file", true, "the escrow export (or key file) to read (required)"},
       kKeyFile,
       {"passfile", true, "read the passphrase of -file from this file's first line"},
       {"passphrase", false, "protect the imported key with a new passphrase"},
       kNewPassFile,
       {"force", false, "replace an existing key file"}},
      {"cell", "file"});
  if (c.exit) return *c.exit;
  const std::string cell = c.Get("cell"), in = c.Get("file");
  auto path = KeyFilePathForWriting(c);
  if (!path.ok()) return c.Fail(path.status());
  if (!c.Has("force") && Exists(*path)) {
    return c.Fail(Error(Code::kAlreadyExists, *path + " already exists (-force replaces it)"));
  }
  auto key = OpenKey(c, cell, in);
  if (!key.ok()) return c.Fail(key.status());
  auto file = NewKeyFile(c, cell, **key, c.Has("passphrase"),
                         "New passphrase for the key of cell " + cell + ": ");
  if (!file.ok()) return c.Fail(file.status());
  if (Status s = Write(*path, std::move(*file), c.Has("force")); !s.ok()) return c.Fail(s);
  std::printf("cell %s: key %s imported into %s%s\n", cell.c_str(), Fingerprint(**key).c_str(),
              path->c_str(), c.Has("passphrase") ? " (passphrase-protected)" : "");
  return kExitOk;
}

// heka key status [-socket S]: the cell keys the cache manager holds.
int KeyStatus(int argc, char** argv) {
  FsCommand c = StartKeyCommand("key status", argc, argv, {}, {}, /*socket=*/true);
  if (c.exit) return *c.exit;
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::KEY_STATUS);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  if (rep->keys().empty()) std::printf("The cache manager holds no cell keys.\n");
  for (const cachemgr::KeyInfo& k : rep->keys()) {
    std::printf("cell %s: key %s (%s)\n", k.cell().c_str(), k.fingerprint().c_str(),
                k.source() == "unlocked" ? "unlocked" : "from its key file");
  }
  return kExitOk;
}

}  // namespace heka::cli

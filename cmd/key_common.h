// What the `heka key` commands share: where a cell's key file is, reading passphrases, and
// opening a key file (docs/formats/encryption.md, "Key files"). Single-threaded.
//
// Passphrases never come from the command line: from -passfile / -newpassfile (the file's
// first line), else from the terminal without echo when stdin is one, else one line of stdin
// each (so scripts can pipe them in, in the order the command asks).
#pragma once

#include <memory>
#include <string>

#include "cachemgr/crypto/crypto.h"
#include "cmd/fs_common.h"

namespace heka::cli {

// A passphrase, wiped when it goes.
class Passphrase {
 public:
  Passphrase() = default;
  explicit Passphrase(std::string text) : text_(std::move(text)) {}
  ~Passphrase();
  // Copies, then wipes `other` (a moved std::string may leave its bytes behind).
  Passphrase(Passphrase&& other) noexcept { *this = std::move(other); }
  Passphrase& operator=(Passphrase&& other) noexcept;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// The key file of -cell: -keyfile, else $HEKA_KEY_DIR/<cell>.key, else
// /etc/heka/keys/<cell>.key. kInvalidArgument for a name that cannot be a cell.
Result<std::string> KeyFilePath(const FsCommand& c);
// The same, and the default directory created (mode 0700) when it is missing.
Result<std::string> KeyFilePathForWriting(const FsCommand& c);

// The passphrase of an existing key file: from the file named by switch `file_switch` if
// given, else the terminal (prompting with `prompt`) or a line of stdin.
Result<Passphrase> ReadPassphrase(const FsCommand& c, const std::string& file_switch,
                                  const std::string& prompt);
// A new passphrase: the same, but asked twice at a terminal; an empty one is refused.
Result<Passphrase> ReadNewPassphrase(const FsCommand& c, const std::string& file_switch,
                                     const std::string& prompt);

// The key of the key file `path` of `cell`: a raw one as it is, a wrapped one with the
// passphrase from -passfile (or asked). The file must be that cell's.
Result<std::shared_ptr<const cm::crypto::CellKey>> OpenKey(const FsCommand& c,
                                                           const std::string& cell,
                                                           const std::string& path);
// The same for a key file already read.
Result<std::shared_ptr<const cm::crypto::CellKey>> OpenKey(const FsCommand& c,
                                                           const std::string& cell,
                                                           const std::string& path,
                                                           const cm::crypto::KeyFile& file);

// Starts a key command: `switches` parsed (plus -socket when `socket`), `required` checked.
FsCommand StartKeyCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                          std::initializer_list<const char*> required, bool socket = false);

}  // namespace heka::cli

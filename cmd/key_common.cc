#include "cmd/key_common.h"

#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "cachemgr/key_store.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

namespace crypto = cm::crypto;

std::string KeyDir() {
  if (const char* env = std::getenv(cm::kKeyDirEnv); env && *env) return env;
  return cm::kDefaultKeyDir;
}

void StripNewline(std::string* line) {
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
}

// The first line of `path`.
Result<Passphrase> FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(Code::kNotFound, "cannot read the passphrase file " + path);
  std::string line;
  std::getline(in, line);
  StripNewline(&line);
  return Passphrase(std::move(line));
}

// One line typed at the terminal, not echoed.
Result<Passphrase> FromTerminal(const std::string& prompt) {
  std::fprintf(stderr, "%s", prompt.c_str());
  std::fflush(stderr);
  termios old{};
  bool restore = ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  bool got = static_cast<bool>(std::getline(std::cin, line));
  if (restore) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  std::fprintf(stderr, "\n");
  if (!got) return Error(Code::kCancelled, "no passphrase typed");
  StripNewline(&line);
  return Passphrase(std::move(line));
}

// The next line of a stdin that is not a terminal (a script's pipe).
Result<Passphrase> FromStdin() {
  std::string line;
  if (!std::getline(std::cin, line)) {
    return Error(Code::kInvalidArgument,
                 "no passphrase: stdin is not a terminal and has no more lines (use -passfile "
                 "or -newpassfile)");
  }
  StripNewline(&line);
  return Passphrase(std::move(line));
}

}  // namespace

Passphrase::~Passphrase() { ::explicit_bzero(text_.data(), text_.size()); }

Passphrase& Passphrase::operator=(Passphrase&& other) noexcept {
  if (this == &other) return *this;
  ::explicit_bzero(text_.data(), text_.size());
  text_ = other.text_;
  ::explicit_bzero(other.text_.data(), other.text_.size());
  other.text_.clear();
  return *this;
}

Result<std::string> KeyFilePath(const FsCommand& c) {
  std::string cell = c.Get("cell");
  if (Status s = cm::CheckCellName(cell); !s.ok()) return s;
  if (c.Has("keyfile")) {
    if (c.Get("keyfile").empty()) return Error(Code::kInvalidArgument, "-keyfile is empty");
    return c.Get("keyfile");
  }
  return KeyDir() + "/" + cell + ".key";
}

Result<std::string> KeyFilePathForWriting(const FsCommand& c) {
  auto path = KeyFilePath(c);
  if (!path.ok() || c.Has("keyfile")) return path;
  std::string dir = KeyDir();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(Code::kIoError,
                 "cannot create the key directory " + dir + ": " + std::strerror(errno));
  }
  return path;
}

Result<Passphrase> ReadPassphrase(const FsCommand& c, const std::string& file_switch,
                                  const std::string& prompt) {
  if (c.Has(file_switch)) return FromFile(c.Get(file_switch));
  if (::isatty(STDIN_FILENO)) return FromTerminal(prompt);
  return FromStdin();
}

Result<Passphrase> ReadNewPassphrase(const FsCommand& c, const std::string& file_switch,
                                     const std::string& prompt) {
  auto first = ReadPassphrase(c, file_switch, prompt);
  if (!first.ok()) return first.status();
  if (first->text().empty()) {
    return Error(Code::kInvalidArgument, "an empty passphrase is no protection");
  }
  if (!c.Has(file_switch) && ::isatty(STDIN_FILENO)) {
    auto again = FromTerminal("Again: ");
    if (!again.ok()) return again.status();
    if (again->text() != first->text()) {
      return Error(Code::kInvalidArgument, "the two passphrases differ");
    }
  }
  return first;
}

Result<std::shared_ptr<const crypto::CellKey>> OpenKey(const FsCommand& c, const std::string& cell,
                                                       const std::string& path) {
  auto file = crypto::ReadKeyFile(path);
  if (!file.ok()) {
    if (file.status().code() == Code::kNotFound) {
      return Error(Code::kNotFound, "no key file " + path + " for cell " + cell +
                                        " (heka key init, or heka key import)");
    }
    return file.status();  // it names the file
  }
  return OpenKey(c, cell, path, *file);
}

Result<std::shared_ptr<const crypto::CellKey>> OpenKey(const FsCommand& c, const std::string& cell,
                                                       const std::string& path,
                                                       const crypto::KeyFile& file) {
  if (file.cell != cell) {
    return Error(Code::kInvalidArgument,
                 path + " holds the key of cell " + file.cell + ", not of cell " + cell);
  }
  Passphrase passphrase;
  if (file.wrapped) {
    auto p = ReadPassphrase(c, "passfile", "Passphrase of " + path + ": ");
    if (!p.ok()) return p.status();
    passphrase = std::move(*p);
  }
  auto key = crypto::OpenKeyFile(file, passphrase.text());
  if (!key.ok()) {
    if (key.status().code() == Code::kPermissionDenied) {
      return Error(Code::kPermissionDenied, "wrong passphrase for " + path);
    }
    return key.status().WithContext(path);
  }
  return key;
}

FsCommand StartKeyCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                          std::initializer_list<const char*> required, bool socket) {
  return StartFsCommand(std::move(name), argc, argv, std::move(switches), required, socket);
}

}  // namespace heka::cli

// `heka key` on key files (no servers): init, fingerprint, wrap, escrow-export and import, as a
// user runs them, exit codes and one-line errors included. Passphrases come from -passfile /
// -newpassfile or from a pipe, never from the command line. `heka key unlock` and `status`
// against a running cache manager are in fs_cli_test.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.h"

namespace heka {
namespace {

namespace fs = std::filesystem;
using testing::BinDir;
using testing::RunProcess;

class KeyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("heka-keycli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    keys_ = (dir_ / "keys").string();  // made by the first command that writes a key
    std::ofstream(Path("pw1")) << "correct horse\n";
    std::ofstream(Path("pw2")) << "battery staple\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  std::string KeyFile(const std::string& cell = "acme") { return keys_ + "/" + cell + ".key"; }

  testing::ProcessResult Key(std::vector<std::string> args) {
    args.insert(args.begin(), {BinDir() + "/heka", "key"});
    return RunProcess(args, {{"HEKA_KEY_DIR", keys_}});
  }
  // `script` with sh, `heka` on the PATH (for passphrases piped in).
  testing::ProcessResult Sh(const std::string& script) {
    return RunProcess({"/bin/sh", "-c", script},
                      {{"HEKA_KEY_DIR", keys_}, {"PATH", BinDir() + ":/usr/bin:/bin"}});
  }
  std::string Fingerprint(const std::string& cell = "acme") {
    auto r = Key({"fingerprint", "-cell", cell});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }
  static std::string Contents(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The value of `field = "..."` in a key file.
  static std::string Field(const std::string& text, const std::string& field) {
    size_t at = text.find("\n" + field + " = ");
    if (at == std::string::npos) return "";
    size_t open = text.find_first_of("\"'", at + field.size() + 3);
    if (open == std::string::npos) return "";
    size_t close = text.find(text[open], open + 1);
    return text.substr(open + 1, close - open - 1);
  }
  static int Lines(const std::string& s) {
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  }

  fs::path dir_;
  std::string keys_;
};

TEST_F(KeyCliTest, InitWritesAPrivateKeyFileAndPrintsItsFingerprint) {
  auto init = Key({"init", "-cell", "acme"});
  ASSERT_EQ(init.exit_code, 0) << init.output;
  std::string fp = Fingerprint();
  ASSERT_EQ(fp.size(), 33u) << fp;  // 32 hex digits and a newline
  EXPECT_EQ(init.output, "cell acme: new key " + fp.substr(0, 32) + " in " + KeyFile() + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(KeyFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(keys_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::string text = Contents(KeyFile());
  EXPECT_EQ(Field(text, "format"), "raw");
  EXPECT_EQ(Field(text, "fingerprint") + "\n", fp);
  EXPECT_EQ(Field(text, "key").size(), 64u);
  // Another cell gets another key.
  ASSERT_EQ(Key({"init", "-cell", "beta"}).exit_code, 0);
  EXPECT_NE(Fingerprint("beta"), fp);
}

TEST_F(KeyCliTest, InitRefusesToReplaceAKey) {
  ASSERT_EQ(Key({"init", "-cell", "acme"}).exit_code, 0);
  std::string before = Contents(KeyFile());
  auto again = Key({"init", "-cell", "acme"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(Lines(again.output), 1) << again.output;
  EXPECT_EQ(
      again.output.rfind("heka key init: already exists: " + KeyFile() + " already exists", 0), 0u)
      << again.output;
  EXPECT_EQ(Contents(KeyFile()), before);
  // -keyfile elsewhere, for the same cell, is another file.
  auto elsewhere = Key({"init", "-cell", "acme", "-keyfile", Path("other.key")});
  EXPECT_EQ(elsewhere.exit_code, 0) << elsewhere.output;
  EXPECT_TRUE(fs::exists(Path("other.key")));
}

TEST_F(KeyCliTest, WrapKeepsTheFingerprintAndHidesTheKey) {
  ASSERT_EQ(Key({"init", "-cell", "acme"}).exit_code, 0);
  std::string fp = Fingerprint();
  std::string raw = Field(Contents(KeyFile()), "key");
  ASSERT_EQ(raw.size(), 64u);
  auto wrap = Key({"wrap", "-cell", "acme", "-newpassfile", Path("pw1")});
  ASSERT_EQ(wrap.exit_code, 0) << wrap.output;
  EXPECT_EQ(wrap.output, "cell acme: key " + fp.substr(0, 32) + " in " + KeyFile() +
                             " is passphrase-protected\n");
  EXPECT_EQ(Fingerprint(), fp);  // no passphrase needed
  std::string text = Contents(KeyFile());
  EXPECT_EQ(text.find(raw), std::string::npos) << "the raw key is still in the file";
  EXPECT_EQ(Field(text, "format"), "scrypt");
  EXPECT_EQ(Field(text, "key"), "");
  struct stat st {};
  ASSERT_EQ(::stat(KeyFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Wrapping again changes the passphrase: the old one is asked, then the new one.
  auto rewrap =
      Key({"wrap", "-cell", "acme", "-passfile", Path("pw1"), "-newpassfile", Path("pw2")});
  ASSERT_EQ(rewrap.exit_code, 0) << rewrap.output;
  EXPECT_EQ(Fingerprint(), fp);
  auto old = Key({"escrow-export", "-cell", "acme", "-file", Path("esc"), "-passfile", Path("pw1"),
                  "-newpassfile", Path("pw1")});
  EXPECT_EQ(old.exit_code, 1) << "the old passphrase opens it no more";
}

TEST_F(KeyCliTest, EscrowExportRestoresALostKeyFile) {
  ASSERT_EQ(Key({"init", "-cell", "acme", "-passphrase", "-newpassfile", Path("pw1")}).exit_code,
            0);
  std::string fp = Fingerprint();
  auto out = Key({"escrow-export", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile",
                  Path("pw1"), "-newpassfile", Path("pw2")});
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_EQ(out.output, "cell acme: recovery copy of key " + fp.substr(0, 32) + " written to " +
                            Path("acme.escrow") + "\n");
  EXPECT_EQ(Field(Contents(Path("acme.escrow")), "format"), "scrypt");
  // An export is not overwritten either.
  EXPECT_EQ(Key({"escrow-export", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile",
                 Path("pw1"), "-newpassfile", Path("pw2")})
                .exit_code,
            1);

  fs::remove(KeyFile());
  auto lost = Key({"fingerprint", "-cell", "acme"});
  EXPECT_EQ(lost.exit_code, 1);
  EXPECT_EQ(lost.output,
            "heka key fingerprint: not found: no key file " + KeyFile() + " for cell acme\n");
  // The recovery passphrase opens the export; the cell's own one does not.
  auto wrong =
      Key({"import", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile", Path("pw1")});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.output, "heka key import: permission denied: wrong passphrase for " +
                              Path("acme.escrow") + "\n");
  EXPECT_FALSE(fs::exists(KeyFile()));
  auto import =
      Key({"import", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile", Path("pw2")});
  ASSERT_EQ(import.exit_code, 0) << import.output;
  EXPECT_EQ(import.output,
            "cell acme: key " + fp.substr(0, 32) + " imported into " + KeyFile() + "\n");
  EXPECT_EQ(Fingerprint(), fp);
  EXPECT_EQ(Field(Contents(KeyFile()), "format"), "raw");

  // Not over an existing key file without -force; with it, protected by a new passphrase.
  auto twice =
      Key({"import", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile", Path("pw2")});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(twice.output, "heka key import: already exists: " + KeyFile() +
                              " already exists (-force replaces it)\n");
  auto forced = Key({"import", "-cell", "acme", "-file", Path("acme.escrow"), "-passfile",
                     Path("pw2"), "-force", "-passphrase", "-newpassfile", Path("pw1")});
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_EQ(Field(Contents(KeyFile()), "format"), "scrypt");
  EXPECT_EQ(Fingerprint(), fp);
  // An export of another cell is not taken for this one.
  auto other =
      Key({"import", "-cell", "beta", "-file", Path("acme.escrow"), "-passfile", Path("pw2")});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(Lines(other.output), 1) << other.output;
  EXPECT_NE(other.output.find("holds the key of cell acme, not of cell beta"), std::string::npos)
      << other.output;
}

TEST_F(KeyCliTest, WrongPassphraseFailsWithOneClearLine) {
  ASSERT_EQ(Key({"init", "-cell", "acme", "-passphrase", "-newpassfile", Path("pw1")}).exit_code,
            0);
  auto wrong = Key({"escrow-export", "-cell", "acme", "-file", Path("esc"), "-passfile",
                    Path("pw2"), "-newpassfile", Path("pw2")});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.output,
            "heka key escrow-export: permission denied: wrong passphrase for " + KeyFile() + "\n");
  EXPECT_FALSE(fs::exists(Path("esc")));
  auto unlock =
      Key({"unlock", "-cell", "acme", "-passfile", Path("pw2"), "-socket", Path("no-such.sock")});
  EXPECT_EQ(unlock.exit_code, 1);
  EXPECT_EQ(unlock.output,
            "heka key unlock: permission denied: wrong passphrase for " + KeyFile() + "\n");
}

TEST_F(KeyCliTest, PassphrasesComeFromAPipeWhenStdinIsNoTerminal) {
  // init -passphrase reads the new one; wrap of a protected key reads the old, then the new.
  auto init = Sh("echo 'first pass' | heka key init -cell acme -passphrase");
  ASSERT_EQ(init.exit_code, 0) << init.output;
  std::string fp = Fingerprint();
  auto wrap = Sh("printf 'first pass\\nsecond pass\\n' | heka key wrap -cell acme");
  ASSERT_EQ(wrap.exit_code, 0) << wrap.output;
  std::ofstream(Path("second")) << "second pass\n";
  auto out = Key({"escrow-export", "-cell", "acme", "-file", Path("esc"), "-passfile",
                  Path("second"), "-newpassfile", Path("pw1")});
  EXPECT_EQ(out.exit_code, 0) << out.output;
  // Nothing left on stdin: one clear line, not a hang.
  auto none = Sh("heka key wrap -cell acme < /dev/null");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(Lines(none.output), 1) << none.output;
  EXPECT_NE(none.output.find("-passfile"), std::string::npos) << none.output;
  // An empty new passphrase is refused.
  auto empty = Sh("printf 'second pass\\n\\n' | heka key wrap -cell acme");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_EQ(Fingerprint(), fp);
}

TEST_F(KeyCliTest, BadUsage) {
  for (const char* cmd :
       {"init", "wrap", "unlock", "fingerprint", "escrow-export", "import", "status"}) {
    auto help = Key({cmd, "-help"});
    EXPECT_EQ(help.exit_code, 0) << cmd << ": " << help.output;
    EXPECT_EQ(help.output.rfind(std::string("usage: heka key ") + cmd, 0), 0u) << help.output;
  }
  EXPECT_EQ(Key({"init"}).exit_code, 2);                            // no -cell
  EXPECT_EQ(Key({"escrow-export", "-cell", "acme"}).exit_code, 2);  // no -file
  EXPECT_EQ(Key({"import", "-cell", "acme"}).exit_code, 2);         // no -file
  EXPECT_EQ(Key({"init", "-cell", "acme", "-passphrase", "secret"}).exit_code, 2)
      << "a passphrase is never taken from the command line";
  auto bad = Key({"init", "-cell", "../etc"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output, "heka key init: invalid argument: '../etc' is not a cell name\n");
}

}  // namespace
}  // namespace heka

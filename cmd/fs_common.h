// What the `heka fs` commands share: they ask the local cache manager (heka-cachemgr) over
// its control socket, which acts with the caller's own credentials (found from the calling
// process, as for file access). The socket: -socket, else $HEKA_CACHEMGR_SOCKET, else
// /run/heka-cachemgr.sock (the daemon's default `control_socket`). Single-threaded.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cmd/cli.h"
#include "proto/cachemgr.pb.h"

namespace heka::cli {

// The start of every fs command: parse `switches` (plus -socket), check `required`.
struct FsCommand {
  std::string name;  // "fs listacl", for the error line
  Switches sw;
  std::optional<int> exit;  // set: stop and return it (help shown, or a usage error reported)

  int Fail(const Status& status) const { return cli::Fail(name, status); }
  std::string Get(const std::string& key) const {
    auto it = sw.find(key);
    return it == sw.end() ? std::string() : it->second;
  }
  bool Has(const std::string& key) const { return sw.count(key) > 0; }
};
// `socket` false: a command that does not talk to the cache manager (no -socket switch).
FsCommand StartFsCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                         std::initializer_list<const char*> required, bool socket = true);

// An AFS switch taking several values ("-path a b c", "-acl alice rl bob r"), which getopt
// cannot parse: TakeList takes "-<name>" (or a prefix of it, or "--<name>") and the values
// after it (up to the next switch; "-204" is a value) out of argv. `rest` gets the other
// arguments, argv[0] first and null-terminated, for StartFsCommand. REQUIRES: no other switch
// of the command starts with a prefix the user may type for `name`.
struct ListSwitch {
  bool given = false;
  std::vector<std::string> values;
};
ListSwitch TakeList(int argc, char** argv, const std::string& name, std::vector<char*>* rest);

// -format: false for none or "text" (or "table"), true for "json"; else kInvalidArgument.
Result<bool> JsonOutput(const FsCommand& c);

// `path` made absolute for the daemon. `follow`: the whole path resolved by the kernel
// (symlinks followed, a mount point is the volume it leads to); otherwise only its
// directory, the last component kept as it is (for the mount point commands).
Result<std::string> AbsolutePath(const std::string& path, bool follow);

// Sends `req` to the cache manager and returns its reply; a reply with an error code comes
// back as that Status.
Result<cachemgr::ControlReply> AskCacheManager(const FsCommand& c,
                                                const cachemgr::ControlRequest& req);

}  // namespace heka::cli

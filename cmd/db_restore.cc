// heka db restore -file BACKUP -config DBSERVER.toml
// Disaster recovery, on the machine of one (stopped, empty) database member: fills its data
// directory from a `heka db backup` image by running `heka-dbserver --restore`, which lives
// next to this binary. Then start the members with --bootstrap (docs/admin-db.md).
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <string>

#include "cmd/commands.h"

namespace heka::cli {

int DbRestore(int argc, char** argv) {
  const std::string cmd = "db restore";
  auto sw = Parse(cmd, argc, argv,
                  {{"file", true, "the backup image written by `heka db backup` (required)"},
                   {"config", true, "this member's heka-dbserver config (required)"}});
  if (!sw.ok()) return sw.status().code() == Code::kCancelled ? kExitOk : UsageError(cmd, sw.status());
  if (!sw->count("file") || !sw->count("config")) {
    return UsageError(cmd, Error(Code::kInvalidArgument, "-file and -config are required"));
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return Fail(cmd, Error(Code::kInternal, "cannot find this program's directory"));
  self[n] = '\0';
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));
  std::string server = dir + "/heka-dbserver";
  std::string config = (*sw)["config"], file = (*sw)["file"];
  execl(server.c_str(), server.c_str(), "--config", config.c_str(), "--restore", file.c_str(),
        static_cast<char*>(nullptr));
  return Fail(cmd, Error(Code::kNotFound, "cannot run " + server + " (install heka-dbserver "
                                          "next to heka)"));
}

}  // namespace heka::cli

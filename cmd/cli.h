// Shared pieces of the `heka` command suites: AFS-style switch parsing (glibc
// getopt_long_only, so "-server", "--server" and unique prefixes such as "-s" all work),
// one-line errors, and the exit codes. Single-threaded, like the CLI itself.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace heka::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the operation failed; one line on stderr says why
inline constexpr int kExitUsage = 2;   // bad command line

struct Switch {
  const char* name;     // "server"
  bool takes_value;     // "-server HOST:PORT" vs "-verbose"
  const char* help;     // one line
};

// Parsed switches: name -> value ("" for flags). Positional arguments are refused.
using Switches = std::map<std::string, std::string>;

// Parses argv (argv[0] is the subcommand name). On error prints usage and returns nullopt.
Result<Switches> Parse(const std::string& command, int argc, char** argv,
                       const std::vector<Switch>& switches);

// Prints "heka <command>: <status>" on stderr and returns kExitFailed.
int Fail(const std::string& command, const Status& status);
// The same for a bad command line; returns kExitUsage.
int UsageError(const std::string& command, const Status& status);

}  // namespace heka::cli

// Runs a program to completion for a test: captures its stdout and stderr (combined) and its
// exit code, with a deadline. The environment is this process's plus `env` overrides.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace heka::testing {

struct ProcessResult {
  int exit_code = -1;      // -1 if killed by a signal or the deadline
  std::string output;      // stdout and stderr, interleaved
};

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::seconds deadline = std::chrono::seconds(60));

// Directory of the built binaries (build/bin), known at compile time.
std::string BinDir();

}  // namespace heka::testing

// Runs a program to completion for a test: captures its stdout and stderr (combined) and its
// exit code, with a deadline. The environment is this process's plus `env` overrides.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

namespace heka::testing {

struct ProcessResult {
  int exit_code = -1;      // -1 if killed by a signal or the deadline
  std::string output;      // stdout and stderr, interleaved
};

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::seconds deadline = std::chrono::seconds(60));

// Starts a long-running child (a server) that is killed when the test process dies. Returns
// its pid, or -1 if fork failed. Its output goes wherever the program's own --log puts it.
pid_t Spawn(const std::vector<std::string>& argv);
// SIGTERM, then waits up to `grace` for the exit; SIGKILL after that. Reaps the child.
void StopChild(pid_t pid, std::chrono::seconds grace = std::chrono::seconds(10));
// SIGKILL and reap.
void KillChild(pid_t pid);

// Directory of the built binaries (build/bin), known at compile time.
std::string BinDir();

}  // namespace heka::testing

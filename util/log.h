// Logging setup for every Heka process and test: one spdlog logger, one line per event.
// Call InitLogging once from main() before any thread starts; everything else uses the
// spdlog free functions (spdlog::info(...)), which are thread-safe.
#pragma once

#include <string>

namespace heka {

struct LogOptions {
  std::string program;   // shown in each line, e.g. "heka-dbserver". Default: "heka".
  std::string level;     // "trace".."critical". Default: "info"; HEKA_LOG_LEVEL overrides.
  std::string file;      // log to this file instead of stderr. Default: stderr.
};

void InitLogging(const LogOptions& options);

}  // namespace heka

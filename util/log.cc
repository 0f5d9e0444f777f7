#include "util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace heka {

void InitLogging(const LogOptions& options) {
  std::string program = options.program.empty() ? "heka" : options.program;
  std::shared_ptr<spdlog::logger> logger;
  if (options.file.empty()) {
    logger = spdlog::stderr_logger_mt(program);
  } else {
    logger = spdlog::basic_logger_mt(program, options.file);
  }
  // ISO time, level, program[pid], message.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L %n[%P] %v");
  std::string level = options.level.empty() ? "info" : options.level;
  if (const char* env = std::getenv("HEKA_LOG_LEVEL"); env && *env) level = env;
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace heka

#include "cmd/cli.h"

#include <getopt.h>

#include <cstdio>

namespace heka::cli {

Result<Switches> Parse(const std::string& command, int argc, char** argv,
                       const std::vector<Switch>& switches) {
  std::vector<option> opts;
  for (size_t i = 0; i < switches.size(); ++i) {
    opts.push_back({switches[i].name, switches[i].takes_value ? required_argument : no_argument,
                    nullptr, static_cast<int>(256 + i)});
  }
  opts.push_back({"help", no_argument, nullptr, 'h'});
  opts.push_back({nullptr, 0, nullptr, 0});
  Switches out;
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long_only(argc, argv, "", opts.data(), nullptr);
    if (c == -1) break;
    if (c >= 256) {
      out[switches[c - 256].name] = optarg ? optarg : "";
      continue;
    }
    std::string usage = "usage: heka " + command;
    for (const auto& s : switches) {
      usage += std::string(" [-") + s.name + (s.takes_value ? " <value>]" : "]");
    }
    if (c == 'h') {
      std::printf("%s\n", usage.c_str());
      for (const auto& s : switches) std::printf("  -%-12s %s\n", s.name, s.help);
      return Error(Code::kCancelled, "help");
    }
    const char* bad = argv[optind - 1];
    return Error(Code::kInvalidArgument,
                 std::string("unknown or ambiguous switch '") + bad + "' (" + usage + ")");
  }
  if (optind < argc) {
    return Error(Code::kInvalidArgument, std::string("unexpected argument '") + argv[optind] + "'");
  }
  return out;
}

int Fail(const std::string& command, const Status& status) {
  std::fprintf(stderr, "heka %s: %s\n", command.c_str(), status.ToString().c_str());
  return kExitFailed;
}

int UsageError(const std::string& command, const Status& status) {
  Fail(command, status);
  return kExitUsage;
}

}  // namespace heka::cli

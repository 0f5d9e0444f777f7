// Every `heka` subcommand, one function (and one file) each. Each returns the process exit
// code: 0 on success, 1 with one line on stderr when the operation failed, 2 on bad usage.
#pragma once

#include "cmd/cli.h"

namespace heka::cli {

int RpcPing(int argc, char** argv);

}  // namespace heka::cli

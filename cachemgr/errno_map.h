// The errno a POSIX caller sees for a Heka status (docs/formats/status-codes.md lists them).
#pragma once

#include "util/status.h"

namespace heka::cm {

int ErrnoOf(const Status& status);

}  // namespace heka::cm

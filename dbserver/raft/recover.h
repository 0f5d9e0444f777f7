// Last-resort recovery when a majority of DB members is lost for good: rewrites this
// member's Raft configuration to contain only itself as a voter (C-Raft's raft_recover), so it
// can elect itself and take new members. Entries the lost majority committed that this member
// never received are gone. REQUIRES: the member is stopped (no RaftNode running on raft_dir).
#pragma once

#include <string>

#include "util/status.h"

namespace heka::db {

Status RecoverAsSoleVoter(uint64_t id, const std::string& address, const std::string& raft_dir);

}  // namespace heka::db

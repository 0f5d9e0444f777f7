// The one place C-Raft is included (its header has no extern "C" guard). Keep every raft_*
// call behind RaftNode and RaftTransport so the library can be swapped (RAFT-NOTES trap 7).
#pragma once

extern "C" {
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>
}

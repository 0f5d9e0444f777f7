#include "dbserver/raft/recover.h"

#include "dbserver/raft/raft.h"

namespace heka::db {
namespace {

// raft_recover only appends a configuration entry; it never calls the state machine.
int NoApply(raft_fsm*, const raft_buffer*, void**) { return RAFT_INVALID; }
int NoSnapshot(raft_fsm*, raft_buffer**, unsigned*) { return RAFT_INVALID; }
int NoRestore(raft_fsm*, raft_buffer*) { return RAFT_INVALID; }

}  // namespace

Status RecoverAsSoleVoter(uint64_t id, const std::string& address, const std::string& raft_dir) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  raft_uv_transport transport{};
  int rv = raft_uv_tcp_init(&transport, &loop);  // never listens or connects here
  raft_io io{};
  if (rv == 0) rv = raft_uv_init(&io, &loop, raft_dir.c_str(), &transport);
  if (rv != 0) {
    uv_loop_close(&loop);
    return Error(Code::kIoError, "cannot open the raft log in " + raft_dir);
  }
  raft_uv_set_auto_recovery(&io, false);
  raft_fsm fsm{};
  fsm.version = 1;
  fsm.apply = NoApply;
  fsm.snapshot = NoSnapshot;
  fsm.restore = NoRestore;
  raft r{};
  Status result;
  rv = raft_init(&r, &io, &fsm, id, address.c_str());
  if (rv == 0) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    raft_configuration_add(&conf, id, address.c_str(), RAFT_VOTER);
    rv = raft_recover(&r, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
      result = Error(Code::kIoError, std::string("raft_recover: ") + raft_strerror(rv) + " (" +
                                         raft_errmsg(&r) + ")");
    }
    raft_close(&r, nullptr);
  } else {
    result = Error(Code::kIoError, std::string("raft_init: ") + raft_strerror(rv));
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // let the close finish
  raft_uv_close(&io);
  raft_uv_tcp_close(&transport);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return result;
}

}  // namespace heka::db

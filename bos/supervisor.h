// Supervisor: runs and watches the server processes ("instances") of one machine, as AFS's
// bosserver does (DESIGN.md §8). Each instance is a command line; its stdout and stderr go,
// through a pipe, to <log_dir>/<name>.log, rotated at log_max_bytes (log_keep old files kept).
// An instance that exits while wanted is restarted after a backoff that doubles with each
// quick exit (min_backoff .. max_backoff, reset after a run of a minute); crash_loop_count
// exits within crash_loop_window mark it "crash-looping" (restarted at max_backoff only). An
// "fs" instance runs its salvage command after a crash, before it is started again.
// Instances are children of the supervisor and are stopped with it (SIGTERM, then SIGKILL
// after stop_grace): a restarted bosserver cannot re-adopt processes it did not fork, since
// only a parent can wait for a process's exit status.
// Thread-safe. One supervision thread plus one log thread per running instance.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/bos.pb.h"
#include "util/status.h"

namespace heka::bos {

struct SupervisorOptions {
  std::string log_dir;                                // REQUIRES: exists
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  int crash_loop_count = 5;
  std::chrono::milliseconds crash_loop_window{60000};
  std::chrono::milliseconds stop_grace{10000};
  uint64_t log_max_bytes = 10 << 20;
  int log_keep = 3;
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options);
  ~Supervisor();  // stops every instance

  // Adds and starts an instance. kAlreadyExists, kInvalidArgument (no command, bad type/name).
  Status Create(const CreateRequest& instance);
  Status Delete(const std::string& name);  // stops it, forgets it (its log stays)
  Status Start(const std::string& name);
  Status Stop(const std::string& name);    // waits until it has exited
  Status Restart(const std::string& name);
  // Stops an instance, runs its salvage command, starts it again if it was wanted.
  Result<SalvageReply> Salvage(const std::string& name);

  Result<InstanceStatus> StatusOf(const std::string& name);
  std::vector<InstanceStatus> All();
  std::vector<CreateRequest> Instances();  // as created, for persisting
  Result<GetLogReply> Log(const std::string& name, uint64_t max_bytes);

 private:
  struct Instance;
  void Loop();
  void StartLocked(Instance& in);               // REQUIRES: mu_
  void OnExitLocked(Instance& in, int status);  // REQUIRES: mu_
  void StopLocked(std::unique_lock<std::mutex>& lock, Instance& in);
  int RunSalvage(Instance& in, std::string* output);  // blocking; no lock held
  InstanceStatus Describe(const Instance& in) const;

  const SupervisorOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Instance>> instances_;  // mu_
  bool stopping_ = false;                                        // mu_
  std::thread thread_;
};

}  // namespace heka::bos

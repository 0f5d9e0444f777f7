// BosService: the heka.bos.Bos RPC handlers of heka-bosserver. Every method is for provider
// administrators only: those in the config plus those added with `bos adduser` (kept, with
// the instances made by `bos create`, in <state_dir>/bos-state.txtpb). Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "bos/supervisor.h"
#include "rpc/registry.h"
#include "rpc/runtime.h"

namespace heka::bos {

class BosService {
 public:
  BosService(Supervisor& supervisor, rpc::Runtime& runtime, std::vector<std::string> admins,
             std::string state_path);
  // Reads the state file (instances to create, added administrators). A missing file is fine.
  Result<BosState> LoadState();
  void Register(rpc::HandlerRegistry& registry);
  // Instances that come from the config file: never written to the state file.
  void SetConfigInstances(std::set<std::string> names) {
    std::lock_guard lock(mu_);
    from_config_ = std::move(names);
  }

 private:
  template <typename Req, typename Rep>
  void Add(rpc::HandlerRegistry& registry, std::string_view method, bool mutating,
           std::function<Result<Rep>(const Req&)> fn);
  Status SaveState();

  Supervisor& supervisor_;
  rpc::Runtime& runtime_;
  const std::string state_path_;
  const int64_t started_ns_;
  std::mutex mu_;
  std::set<std::string> admins_;     // mu_
  std::set<std::string> added_;      // mu_: admins added by `bos adduser`
  std::set<std::string> from_config_;  // mu_
};

}  // namespace heka::bos

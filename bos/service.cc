#include "bos/service.h"

#include <google/protobuf/text_format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace heka::bos {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

BosService::BosService(Supervisor& supervisor, rpc::Runtime& runtime,
                       std::vector<std::string> admins, std::string state_path)
    : supervisor_(supervisor), runtime_(runtime), state_path_(std::move(state_path)),
      started_ns_(NowNs()), admins_(admins.begin(), admins.end()) {}

Result<BosState> BosService::LoadState() {
  BosState state;
  std::ifstream in(state_path_);
  if (!in) return state;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!google::protobuf::TextFormat::ParseFromString(text, &state)) {
    return Error(Code::kInvalidArgument, state_path_ + " is not a valid bos state file");
  }
  std::lock_guard lock(mu_);
  for (const auto& a : state.admins()) {
    admins_.insert(a);
    added_.insert(a);
  }
  return state;
}

Status BosService::SaveState() {
  BosState state;
  for (const CreateRequest& c : supervisor_.Instances()) {
    std::lock_guard lock(mu_);
    if (!from_config_.count(c.name())) *state.add_instances() = c;
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& a : added_) state.add_admins(a);
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(state, &text);
  std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return Error(Code::kIoError, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, state_path_, ec);
  if (ec) return Error(Code::kIoError, "cannot write " + state_path_ + ": " + ec.message());
  return Status::Ok();
}

template <typename Req, typename Rep>
void BosService::Add(rpc::HandlerRegistry& registry, std::string_view method, bool mutating,
                     std::function<Result<Rep>(const Req&)> fn) {
  std::string name(method);
  registry.Register<Req, Rep>(
      method, [this, fn, mutating, name](rpc::CallContext& ctx,
                                         const Req& req) -> rpc::awaitable<Result<Rep>> {
        bool admin;
        {
          std::lock_guard lock(mu_);
          admin = admins_.count(ctx.peer.principal()) > 0;
        }
        if (!admin) {
          spdlog::warn("bos: {} refused for {}: not a provider administrator", name,
                       ctx.peer.principal());
          co_return Error(Code::kPermissionDenied,
                          ctx.peer.principal() + " is not a provider administrator of this bosserver");
        }
        if (mutating) spdlog::info("bos: {} by {}", name, ctx.peer.principal());
        auto work = [fn, req] { return fn(req); };  // Stop may wait for a process: not on I/O
        co_return co_await rpc::RunBlocking(runtime_.blocking_pool(), std::move(work));
      });
}

void BosService::Register(rpc::HandlerRegistry& r) {
  Supervisor& s = supervisor_;
  auto one = [&s](const std::string& name) -> Result<InstanceReply> {
    auto st = s.StatusOf(name);
    if (!st.ok()) return st.status();
    InstanceReply rep;
    *rep.mutable_status() = std::move(*st);
    return rep;
  };
  Add<StatusRequest, StatusReply>(r, "heka.bos.Bos.Status", false, [this, &s](const StatusRequest& req) -> Result<StatusReply> {
    StatusReply rep;
    rep.set_bos_started_ns(started_ns_);
    if (!req.name().empty()) {
      auto st = s.StatusOf(req.name());
      if (!st.ok()) return st.status();
      *rep.add_instances() = std::move(*st);
      return rep;
    }
    for (auto& st : s.All()) *rep.add_instances() = std::move(st);
    return rep;
  });
  Add<InstanceRequest, InstanceReply>(r, "heka.bos.Bos.Start", true, [&s, one](const InstanceRequest& req) -> Result<InstanceReply> {
    if (Status st = s.Start(req.name()); !st.ok()) return st;
    return one(req.name());
  });
  Add<InstanceRequest, InstanceReply>(r, "heka.bos.Bos.Stop", true, [&s, one](const InstanceRequest& req) -> Result<InstanceReply> {
    if (Status st = s.Stop(req.name()); !st.ok()) return st;
    return one(req.name());
  });
  Add<InstanceRequest, InstanceReply>(r, "heka.bos.Bos.Restart", true, [&s, one](const InstanceRequest& req) -> Result<InstanceReply> {
    if (Status st = s.Restart(req.name()); !st.ok()) return st;
    return one(req.name());
  });
  Add<CreateRequest, InstanceReply>(r, "heka.bos.Bos.Create", true, [this, &s, one](const CreateRequest& req) -> Result<InstanceReply> {
    if (Status st = s.Create(req); !st.ok()) return st;
    if (Status st = SaveState(); !st.ok()) return st;
    return one(req.name());
  });
  Add<InstanceRequest, InstanceReply>(r, "heka.bos.Bos.Delete", true, [this, &s](const InstanceRequest& req) -> Result<InstanceReply> {
    auto before = s.StatusOf(req.name());
    if (!before.ok()) return before.status();
    if (Status st = s.Delete(req.name()); !st.ok()) return st;
    if (Status st = SaveState(); !st.ok()) return st;
    InstanceReply rep;
    *rep.mutable_status() = std::move(*before);
    rep.mutable_status()->set_state("deleted");
    return rep;
  });
  Add<GetLogRequest, GetLogReply>(r, "heka.bos.Bos.GetLog", false, [&s](const GetLogRequest& req) {
    return s.Log(req.name(), req.max_bytes());
  });
  Add<SalvageRequest, SalvageReply>(r, "heka.bos.Bos.Salvage", true, [&s](const SalvageRequest& req) {
    return s.Salvage(req.name());
  });
  auto users = [this]() {
    UsersReply rep;
    std::lock_guard lock(mu_);
    for (const auto& a : admins_) rep.add_principals(a);
    return rep;
  };
  Add<UsersRequest, UsersReply>(r, "heka.bos.Bos.ListUsers", false, [users](const UsersRequest&) -> Result<UsersReply> {
    return users();
  });
  Add<UserRequest, UsersReply>(r, "heka.bos.Bos.AddUser", true, [this, users](const UserRequest& req) -> Result<UsersReply> {
    if (req.principal().find('@') == std::string::npos) {
      return Error(Code::kInvalidArgument, "give a full principal (name@REALM)");
    }
    {
      std::lock_guard lock(mu_);
      admins_.insert(req.principal());
      added_.insert(req.principal());
    }
    if (Status st = SaveState(); !st.ok()) return st;
    return users();
  });
  Add<UserRequest, UsersReply>(r, "heka.bos.Bos.RemoveUser", true, [this, users](const UserRequest& req) -> Result<UsersReply> {
    {
      std::lock_guard lock(mu_);
      if (!added_.count(req.principal())) {
        return Error(admins_.count(req.principal()) ? Code::kInvalidArgument : Code::kNotFound,
                     admins_.count(req.principal())
                         ? req.principal() + " comes from the config file: remove it there"
                         : req.principal() + " is not an administrator here");
      }
      added_.erase(req.principal());
      admins_.erase(req.principal());
    }
    if (Status st = SaveState(); !st.ok()) return st;
    return users();
  });
}

}  // namespace heka::bos

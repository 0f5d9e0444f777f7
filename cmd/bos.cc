// heka bos status|start|stop|restart|create|delete|getlog|salvage|listusers|adduser|removeuser
// Talks to one heka-bosserver (-server HOST:PORT [-principal heka/host@REALM]) with the
// caller's ticket; only provider administrators are answered.
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>

#include "cmd/commands.h"
#include "proto/bos.pb.h"
#include "rpc/client.h"

namespace heka::cli {
namespace {

struct BosCall {
  std::string name;
  Switches sw;
  std::optional<int> exit;
};

BosCall Start(const std::string& name, int argc, char** argv, std::vector<Switch> switches,
              std::initializer_list<const char*> required) {
  switches.push_back({"server", true, "the bosserver, host:port (required)"});
  switches.push_back({"principal", true, "its principal (default heka/<host>@<default realm>)"});
  BosCall c;
  c.name = name;
  auto sw = Parse(name, argc, argv, switches);
  if (!sw.ok()) {
    c.exit = sw.status().code() == Code::kCancelled ? kExitOk : UsageError(name, sw.status());
    return c;
  }
  c.sw = std::move(*sw);
  for (const char* r : required) {
    if (!c.sw.count(r)) {
      c.exit = UsageError(name, Error(Code::kInvalidArgument, std::string("-") + r + " is required"));
      return c;
    }
  }
  if (!c.sw.count("server")) {
    c.exit = UsageError(name, Error(Code::kInvalidArgument, "-server is required"));
  }
  return c;
}

template <typename Rep, typename Req>
Result<Rep> Call(const BosCall& c, const std::string& method, const Req& req) {
  rpc::Runtime runtime({1, 1});
  rpc::ClientOptions o;
  o.address = c.sw.at("server");
  if (c.sw.count("principal")) o.server_principal = c.sw.at("principal");
  auto client = rpc::Client::Create(runtime, o);
  auto r = runtime.BlockOn(client->Call<Rep>("heka.bos.Bos." + method, req, std::chrono::seconds(120)));
  client->Close();
  return r;
}

std::string When(int64_t ns) {
  if (ns <= 0) return "never";
  time_t t = static_cast<time_t>(ns / 1000000000);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

void Print(const bos::InstanceStatus& s, bool longer) {
  std::string what = s.state();
  if (s.state() == "running") {
    what = "currently running normally";
  } else if (s.state() == "stopped") {
    what = "disabled, currently shutdown";
  } else if (s.state() == "backing-off" || s.state() == "crash-looping") {
    what = (s.state() == "crash-looping" ? "crash-looping, " : "") +
           std::string("waiting to restart at ") + When(s.next_start_ns());
  }
  std::printf("Instance %s, %s.\n", s.name().c_str(), what.c_str());
  if (!longer) return;
  std::string cmd;
  for (const auto& a : s.command()) cmd += (cmd.empty() ? "" : " ") + a;
  std::printf("    type %s, pid %lld, started %s, %u automatic restarts\n", s.type().c_str(),
              static_cast<long long>(s.pid()), When(s.started_ns()).c_str(), s.restarts());
  if (s.last_exit_ns() > 0) {
    std::printf("    last exit at %s: %s\n", When(s.last_exit_ns()).c_str(),
                s.last_signal() ? ("signal " + std::to_string(s.last_signal())).c_str()
                                : ("exit code " + std::to_string(s.last_exit_code())).c_str());
  }
  std::printf("    command: %s\n", cmd.c_str());
}

int InstanceOp(const std::string& op, int argc, char** argv) {
  BosCall c = Start("bos " + op, argc, argv, {{"instance", true, "instance name (required)"}},
                    {"instance"});
  if (c.exit) return *c.exit;
  bos::InstanceRequest req;
  req.set_name(c.sw.at("instance"));
  std::string method = op == "start" ? "Start" : op == "stop" ? "Stop" : op == "restart" ? "Restart" : "Delete";
  auto r = Call<bos::InstanceReply>(c, method, req);
  if (!r.ok()) return Fail(c.name, r.status());
  Print(r->status(), false);
  return kExitOk;
}

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

int Users(const std::string& op, int argc, char** argv) {
  bool needs_user = op != "listusers";
  BosCall c = Start("bos " + op, argc, argv, {{"user", true, "principal, e.g. admin@REALM"}},
                    {});
  if (c.exit) return *c.exit;
  if (needs_user && !c.sw.count("user")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-user is required"));
  }
  Result<bos::UsersReply> r = Error(Code::kInternal, "unreachable");
  if (op == "listusers") {
    r = Call<bos::UsersReply>(c, "ListUsers", bos::UsersRequest());
  } else {
    bos::UserRequest req;
    req.set_principal(c.sw.at("user"));
    r = Call<bos::UsersReply>(c, op == "adduser" ? "AddUser" : "RemoveUser", req);
  }
  if (!r.ok()) return Fail(c.name, r.status());
  std::printf("SUsers are:");
  for (const auto& p : r->principals()) std::printf(" %s", p.c_str());
  std::printf("\n");
  return kExitOk;
}

}  // namespace

int BosStatus(int argc, char** argv) {
  BosCall c = Start("bos status", argc, argv,
                    {{"instance", true, "only this instance"}, {"long", false, "more detail"}}, {});
  if (c.exit) return *c.exit;
  bos::StatusRequest req;
  if (c.sw.count("instance")) req.set_name(c.sw.at("instance"));
  auto r = Call<bos::StatusReply>(c, "Status", req);
  if (!r.ok()) return Fail(c.name, r.status());
  for (const auto& s : r->instances()) Print(s, c.sw.count("long") > 0);
  if (c.sw.count("long")) std::printf("bosserver started %s\n", When(r->bos_started_ns()).c_str());
  return kExitOk;
}

int BosStart(int argc, char** argv) { return InstanceOp("start", argc, argv); }
int BosStop(int argc, char** argv) { return InstanceOp("stop", argc, argv); }
int BosRestart(int argc, char** argv) { return InstanceOp("restart", argc, argv); }
int BosDelete(int argc, char** argv) { return InstanceOp("delete", argc, argv); }

int BosCreate(int argc, char** argv) {
  BosCall c = Start("bos create", argc, argv,
                    {{"instance", true, "instance name (required)"},
                     {"type", true, "simple or fs (default simple)"},
                     {"cmd", true, "command line, absolute path first (required)"},
                     {"salvagecmd", true, "fs instances: the salvager's command line"}},
                    {"instance", "cmd"});
  if (c.exit) return *c.exit;
  bos::CreateRequest req;
  req.set_name(c.sw.at("instance"));
  req.set_type(c.sw.count("type") ? c.sw.at("type") : "simple");
  for (const auto& w : Words(c.sw.at("cmd"))) req.add_command(w);
  if (c.sw.count("salvagecmd")) {
    for (const auto& w : Words(c.sw.at("salvagecmd"))) req.add_salvage_command(w);
  }
  auto r = Call<bos::InstanceReply>(c, "Create", req);
  if (!r.ok()) return Fail(c.name, r.status());
  Print(r->status(), false);
  return kExitOk;
}

int BosGetLog(int argc, char** argv) {
  BosCall c = Start("bos getlog", argc, argv,
                    {{"instance", true, "instance name (required)"},
                     {"bytes", true, "at most this many bytes from the end (default 64 KiB)"}},
                    {"instance"});
  if (c.exit) return *c.exit;
  bos::GetLogRequest req;
  req.set_name(c.sw.at("instance"));
  if (c.sw.count("bytes")) req.set_max_bytes(std::strtoull(c.sw.at("bytes").c_str(), nullptr, 10));
  auto r = Call<bos::GetLogReply>(c, "GetLog", req);
  if (!r.ok()) return Fail(c.name, r.status());
  std::printf("Fetching log file '%s'...\n", r->path().c_str());
  std::fwrite(r->data().data(), 1, r->data().size(), stdout);
  return kExitOk;
}

int BosSalvage(int argc, char** argv) {
  BosCall c = Start("bos salvage", argc, argv, {{"instance", true, "the fs instance (required)"}},
                    {"instance"});
  if (c.exit) return *c.exit;
  bos::SalvageRequest req;
  req.set_name(c.sw.at("instance"));
  std::fprintf(stderr, "Stopping %s, salvaging, starting it again...\n", req.name().c_str());
  auto r = Call<bos::SalvageReply>(c, "Salvage", req);
  if (!r.ok()) return Fail(c.name, r.status());
  std::fwrite(r->output().data(), 1, r->output().size(), stdout);
  if (r->exit_code() != 0) {
    return Fail(c.name, Error(Code::kIoError, "the salvager exited with " + std::to_string(r->exit_code())));
  }
  return kExitOk;
}

int BosListUsers(int argc, char** argv) { return Users("listusers", argc, argv); }
int BosAddUser(int argc, char** argv) { return Users("adduser", argc, argv); }
int BosRemoveUser(int argc, char** argv) { return Users("removeuser", argc, argv); }

}  // namespace heka::cli

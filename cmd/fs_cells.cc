// heka fs checkservers | listcells | getcellstatus: the file servers and cells the local cache
// manager reaches, in OpenAFS's words.
#include <netdb.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/db_common.h"
#include "cmd/fs_common.h"

namespace heka::cli {
namespace {

const Switch kFormat = {"format", true, "output format: text (default) or json"};

// "db1.example.org:7003" -> "192.0.2.7:7003" ("[v6]:port" for IPv6); unchanged if the name
// does not resolve.
std::string NumericAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  std::string host = address.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') return address;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return address;
  char numeric[NI_MAXHOST];
  int rc = ::getnameinfo(found->ai_addr, found->ai_addrlen, numeric, sizeof numeric, nullptr, 0,
                         NI_NUMERICHOST);
  bool v6 = found->ai_family == AF_INET6;
  ::freeaddrinfo(found);
  if (rc != 0) return address;
  return (v6 ? "[" + std::string(numeric) + "]" : std::string(numeric)) + address.substr(colon);
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ",") + i;
  return "[" + out + "]";
}

}  // namespace

// heka fs checkservers [-cell C] [-all] [-fast] [-format json]
int FsCheckServers(int argc, char** argv) {
  FsCommand c = StartFsCommand(
      "fs checkservers", argc, argv,
      {{"cell", true, "the cell whose file servers to check (default: the configured cells)"},
       {"all", false, "check every registered file server"},
       {"fast", false, "do not probe: report what the last probes found"},
       kFormat},
      {});
  if (c.exit) return *c.exit;
  auto json = JsonOutput(c);
  if (!json.ok()) return UsageError(c.name, json.status());
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::CHECK_SERVERS);
  req.set_cell(c.Get("cell"));
  req.set_all(c.Has("all"));
  req.set_fast(c.Has("fast"));
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  std::vector<std::string> down, objects;
  for (const cachemgr::ServerCheck& s : rep->servers_checked()) {
    if (!s.up()) down.push_back(s.address());
    objects.push_back(
        "{\"address\":" + JsonQuote(s.address()) + ",\"principal\":" + JsonQuote(s.principal()) +
        ",\"uuid\":" + JsonQuote(s.uuid()) + ",\"up\":" + (s.up() ? "true" : "false") +
        ",\"error\":" + JsonQuote(s.error()) + "}");
  }
  if (*json) {
    std::printf("{\"all_running\":%s,\"servers\":%s}\n", down.empty() ? "true" : "false",
                JsonList(objects).c_str());
  } else if (down.empty()) {
    std::printf("All servers are running.\n");
  } else {
    std::string names;
    for (const std::string& d : down) names += (names.empty() ? "" : " ") + d;
    std::printf("These servers unavailable due to network or server problems: %s.\n",
                names.c_str());
  }
  return kExitOk;  // as OpenAFS: servers being down is the answer, not a failure
}

// heka fs listcells [-numeric] [-format json]
int FsListCells(int argc, char** argv) {
  FsCommand c = StartFsCommand(
      "fs listcells", argc, argv,
      {{"numeric", false, "database servers as IP addresses, not names"}, kFormat}, {});
  if (c.exit) return *c.exit;
  auto json = JsonOutput(c);
  if (!json.ok()) return UsageError(c.name, json.status());
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::LIST_CELLS);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  std::vector<std::string> objects;
  for (const cachemgr::CellInfo& cell : rep->cells()) {
    std::vector<std::string> hosts;
    for (const std::string& h : cell.dbservers()) {
      hosts.push_back(c.Has("numeric") ? NumericAddress(h) : h);
    }
    if (*json) {
      std::vector<std::string> quoted;
      for (const std::string& h : hosts) quoted.push_back(JsonQuote(h));
      objects.push_back("{\"cell\":" + JsonQuote(cell.name()) +
                        ",\"configured\":" + (cell.configured() ? "true" : "false") +
                        ",\"root_volume\":" + std::to_string(cell.root_volume()) +
                        ",\"hosts\":" + JsonList(quoted) + "}");
      continue;
    }
    std::string line;
    for (const std::string& h : hosts) line += " " + h;
    std::printf("Cell %s on hosts%s.\n", cell.name().c_str(), line.c_str());
  }
  if (*json) std::printf("{\"cells\":%s}\n", JsonList(objects).c_str());
  return kExitOk;
}

// heka fs getcellstatus -cell C... [-format json]
int FsGetCellStatus(int argc, char** argv) {
  std::vector<char*> rest;
  ListSwitch cells = TakeList(argc, argv, "cell", &rest);
  FsCommand c = StartFsCommand("fs getcellstatus", static_cast<int>(rest.size()) - 1, rest.data(),
                               {{"cell", false, "CELL... the cells (required)"}, kFormat}, {});
  if (c.exit) return *c.exit;
  auto json = JsonOutput(c);
  if (!json.ok()) return UsageError(c.name, json.status());
  if (cells.values.empty()) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-cell is required"));
  }
  int exit = kExitOk;
  std::vector<std::string> objects;
  for (const std::string& name : cells.values) {
    cachemgr::ControlRequest req;
    req.set_op(cachemgr::GET_CELL_STATUS);
    req.set_cell(name);
    auto rep = AskCacheManager(c, req);
    if (!rep.ok() || rep->cells_size() != 1) {  // the other cells are still reported
      exit = c.Fail(rep.ok() ? Error(Code::kInternal, "no answer about " + name) : rep.status());
      continue;
    }
    const cachemgr::CellInfo& cell = rep->cells(0);
    if (*json) {
      objects.push_back("{\"cell\":" + JsonQuote(cell.name()) + ",\"setuid\":false" +
                        ",\"configured\":" + (cell.configured() ? "true" : "false") + "}");
      continue;
    }
    std::printf("Cell %s status: no setuid allowed (%s)\n", cell.name().c_str(),
                cell.configured() ? "configured" : "not configured; reached by lookup");
  }
  if (*json) std::printf("{\"cells\":%s}\n", JsonList(objects).c_str());
  return exit;
}

}  // namespace heka::cli

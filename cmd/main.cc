// heka: the admin and user CLI. `heka <suite> <command> [-switch value ...]`.
// Suites arrive with the components they drive (DESIGN.md §1): vos, pts, fs, bos, cell, key.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "util/log.h"

namespace {

using Command = std::function<int(int, char**)>;

const std::map<std::string, std::map<std::string, Command>>& Suites() {
  static const std::map<std::string, std::map<std::string, Command>> suites = {
      {"rpc", {{"ping", heka::cli::RpcPing}, {"stats", heka::cli::RpcStats}}},
      {"pts",
       {{"createuser", heka::cli::PtsCreateUser},
        {"creategroup", heka::cli::PtsCreateGroup},
        {"delete", heka::cli::PtsDelete},
        {"adduser", heka::cli::PtsAddUser},
        {"removeuser", heka::cli::PtsRemoveUser},
        {"rename", heka::cli::PtsRename},
        {"membership", heka::cli::PtsMembership},
        {"examine", heka::cli::PtsExamine},
        {"listowned", heka::cli::PtsListOwned},
        {"listentries", heka::cli::PtsListEntries}}},
      {"cell",
       {{"create", heka::cli::CellCreate},
        {"list", heka::cli::CellList},
        {"show", heka::cli::CellShow},
        {"delete", heka::cli::CellDelete},
        {"addrealm", heka::cli::CellAddRealm}}},
      {"vos",
       {{"create", heka::cli::VosCreate},
        {"remove", heka::cli::VosRemove},
        {"backup", heka::cli::VosBackup},
        {"dump", heka::cli::VosDump},
        {"restore", heka::cli::VosRestore},
        {"move", heka::cli::VosMove},
        {"lock", heka::cli::VosLock},
        {"unlock", heka::cli::VosUnlock},
        {"zap", heka::cli::VosZap},
        {"addsite", heka::cli::VosAddSite},
        {"remsite", heka::cli::VosRemSite},
        {"release", heka::cli::VosRelease},
        {"syncvldb", heka::cli::VosSyncVldb},
        {"syncserv", heka::cli::VosSyncServ},
        {"examine", heka::cli::VosExamine},
        {"listvol", heka::cli::VosListVol},
        {"listvldb", heka::cli::VosListVldb}}},
      {"fs",
       {{"listacl", heka::cli::FsListAcl},
        {"setacl", heka::cli::FsSetAcl},
        {"examine", heka::cli::FsExamine},
        {"whereis", heka::cli::FsWhereIs},
        {"flush", heka::cli::FsFlush},
        {"whoami", heka::cli::FsWhoami},
        {"unlog", heka::cli::FsUnlog},
        {"mkmount", heka::cli::FsMkMount},
        {"lsmount", heka::cli::FsLsMount},
        {"rmmount", heka::cli::FsRmMount},
        {"getcacheparms", heka::cli::FsGetCacheParms},
        {"setcachesize", heka::cli::FsSetCacheSize},
        {"listquota", heka::cli::FsListQuota},
        {"setquota", heka::cli::FsSetQuota},
        {"flushvolume", heka::cli::FsFlushVolume},
        {"checkservers", heka::cli::FsCheckServers},
        {"checkvolumes", heka::cli::FsCheckVolumes},
        {"listcells", heka::cli::FsListCells},
        {"getcellstatus", heka::cli::FsGetCellStatus}}},
      {"key",
       {{"init", heka::cli::KeyInit},
        {"wrap", heka::cli::KeyWrap},
        {"unlock", heka::cli::KeyUnlock},
        {"fingerprint", heka::cli::KeyFingerprint},
        {"escrow-export", heka::cli::KeyEscrowExport},
        {"import", heka::cli::KeyImport},
        {"status", heka::cli::KeyStatus}}},
      {"bos",
       {{"status", heka::cli::BosStatus},
        {"start", heka::cli::BosStart},
        {"stop", heka::cli::BosStop},
        {"restart", heka::cli::BosRestart},
        {"create", heka::cli::BosCreate},
        {"delete", heka::cli::BosDelete},
        {"getlog", heka::cli::BosGetLog},
        {"salvage", heka::cli::BosSalvage},
        {"listusers", heka::cli::BosListUsers},
        {"adduser", heka::cli::BosAddUser},
        {"removeuser", heka::cli::BosRemoveUser}}},
      {"db",
       {{"status", heka::cli::DbStatus},
        {"backup", heka::cli::DbBackup},
        {"addmember", heka::cli::DbAddMember},
        {"removemember", heka::cli::DbRemoveMember},
        {"restore", heka::cli::DbRestore}}},
  };
  return suites;
}

int Usage(FILE* out) {
  std::fprintf(out, "usage: heka <suite> <command> [switches]   (heka <suite> help lists commands)\n");
  for (const auto& [suite, commands] : Suites()) {
    for (const auto& [name, fn] : commands) std::fprintf(out, "  heka %s %s\n", suite.c_str(), name.c_str());
  }
  std::fprintf(out, "  heka version\n");
  return out == stderr ? heka::cli::kExitUsage : heka::cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  heka::InitLogging({"heka", "error", ""});  // the CLI prints its own one-line errors
  // Called through a suite's link (build/bin/fs -> heka): "fs listacl ..." is "heka fs listacl".
  std::string self = argv[0];
  self = self.substr(self.rfind('/') + 1);
  std::vector<char*> args(argv, argv + argc);
  if (self != "heka" && Suites().count(self)) {
    args.insert(args.begin() + 1, self.data());
    args[0] = const_cast<char*>("heka");
    argc = static_cast<int>(args.size());
    argv = args.data();
  }
  if (argc < 2) return Usage(stderr);
  std::string suite = argv[1];
  if (suite == "help" || suite == "-help" || suite == "--help") return Usage(stdout);
  if (suite == "version") {
    std::printf("heka 0.1.0 (RPC protocol 1)\n");
    return 0;
  }
  auto s = Suites().find(suite);
  if (s == Suites().end()) {
    std::fprintf(stderr, "heka: unknown suite '%s'\n", suite.c_str());
    return Usage(stderr);
  }
  if (argc < 3 || std::strcmp(argv[2], "help") == 0) {
    for (const auto& [name, fn] : s->second) std::printf("heka %s %s\n", suite.c_str(), name.c_str());
    return argc < 3 ? heka::cli::kExitUsage : 0;
  }
  auto c = s->second.find(argv[2]);
  if (c == s->second.end()) {
    std::fprintf(stderr, "heka %s: unknown command '%s' (heka %s help lists them)\n", suite.c_str(),
                 argv[2], suite.c_str());
    return heka::cli::kExitUsage;
  }
  // The command sees argv[0] = its name, then its switches.
  return c->second(argc - 2, argv + 2);
}

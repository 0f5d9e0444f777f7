// heka fs listacl | setacl: a directory's access list, AFS style, through the cache manager
// (which reads and stores it as the caller and maps PTDB ids to names in the directory's cell).
#include <cstdio>
#include <cstring>

#include "cmd/commands.h"
#include "cmd/fs_common.h"

namespace heka::cli {
namespace {

constexpr const char* kLetters = "rlidwka";
constexpr uint32_t kBits[] = {1, 8, 4, 16, 2, 32, 64};  // in the order of kLetters

std::string RightsString(uint32_t rights) {
  std::string out;
  for (size_t i = 0; i < 7; ++i) {
    if (rights & kBits[i]) out.push_back(kLetters[i]);
  }
  return out;
}

// AFS rights: letters from "rlidwka", or read (rl), write (rlidwk), all (rlidwka), none (0:
// the entry is removed).
Result<uint32_t> ParseRights(const std::string& text) {
  if (text == "read") return 1u | 8u;
  if (text == "write") return 1u | 8u | 4u | 16u | 2u | 32u;
  if (text == "all") return 127u;
  if (text == "none") return 0u;
  uint32_t out = 0;
  for (char ch : text) {
    const char* at = std::strchr(kLetters, ch);
    if (ch == '\0' || at == nullptr) {
      return Error(Code::kInvalidArgument,
                   "bad rights '" + text + "' (letters from rlidwka, or read, write, all, none)");
    }
    out |= kBits[at - kLetters];
  }
  if (text.empty()) return Error(Code::kInvalidArgument, "empty rights");
  return out;
}

}  // namespace

// heka fs listacl -dir D
int FsListAcl(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs listacl", argc, argv,
                               {{"dir", true, "the directory (required)"}}, {"dir"});
  if (c.exit) return *c.exit;
  auto path = AbsolutePath(c.Get("dir"), true);
  if (!path.ok()) return c.Fail(path.status());
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::LIST_ACL);
  req.set_path(*path);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  std::printf("Access list for %s is\nNormal rights:\n", c.Get("dir").c_str());
  bool any_negative = false;
  for (const auto& e : rep->acl()) {
    if (e.negative()) any_negative = true;
    if (!e.negative()) std::printf("  %s %s\n", e.name().c_str(), RightsString(e.rights()).c_str());
  }
  if (any_negative) std::printf("Negative rights:\n");
  for (const auto& e : rep->acl()) {
    if (e.negative()) std::printf("  %s %s\n", e.name().c_str(), RightsString(e.rights()).c_str());
  }
  return kExitOk;
}

// heka fs setacl -dir D -acl NAME RIGHTS [NAME RIGHTS ...] [-negative] [-clear]
int FsSetAcl(int argc, char** argv) {
  // -acl takes name/rights pairs: take them out before the switches are parsed.
  std::vector<char*> rest;
  std::vector<std::string> pairs = TakeList(argc, argv, "acl", &rest).values;
  FsCommand c = StartFsCommand("fs setacl", static_cast<int>(rest.size()) - 1, rest.data(),
                               {{"dir", true, "the directory (required)"},
                                {"acl", false, "NAME RIGHTS [NAME RIGHTS ...] (required); "
                                               "rights: rlidwka letters, read, write, all, none"},
                                {"negative", false, "change the negative rights"},
                                {"clear", false, "start from an empty access list"}},
                               {"dir"});
  if (c.exit) return *c.exit;
  if (pairs.empty() || pairs.size() % 2 != 0) {
    return UsageError(c.name, Error(Code::kInvalidArgument,
                                    "-acl wants NAME RIGHTS pairs (e.g. -acl alice rlidwk)"));
  }
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::SET_ACL);
  req.set_negative(c.Has("negative"));
  req.set_clear(c.Has("clear"));
  for (size_t i = 0; i < pairs.size(); i += 2) {
    auto rights = ParseRights(pairs[i + 1]);
    if (!rights.ok()) return UsageError(c.name, rights.status());
    auto* e = req.add_acl();
    e->set_name(pairs[i]);
    e->set_rights(*rights);
  }
  auto path = AbsolutePath(c.Get("dir"), true);
  if (!path.ok()) return c.Fail(path.status());
  req.set_path(*path);
  auto rep = AskCacheManager(c, req);
  return rep.ok() ? kExitOk : c.Fail(rep.status());
}

}  // namespace heka::cli

// heka fs listquota | setquota | flushvolume: the quota of a path's volume (asked of and set on
// its file server as the caller) and dropping everything cached of a volume.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cmd/commands.h"
#include "cmd/db_common.h"
#include "cmd/fs_common.h"

namespace heka::cli {
namespace {

const Switch kPaths = {"path", false, "files or directories in /heka (default: .)"};

// The paths of -path P..., "." (the current directory, as OpenAFS) when it is not given.
Result<std::vector<std::string>> PathsOf(const ListSwitch& paths) {
  if (!paths.given) return std::vector<std::string>{"."};
  if (paths.values.empty()) return Error(Code::kInvalidArgument, "-path wants at least one path");
  return paths.values;
}

Result<cachemgr::ControlReply> AskAboutPath(const FsCommand& c, cachemgr::ControlOp op,
                                            const std::string& path,
                                            cachemgr::ControlRequest req = {}) {
  auto abs = AbsolutePath(path, true);
  if (!abs.ok()) return abs.status();
  req.set_op(op);
  req.set_path(*abs);
  return AskCacheManager(c, req);
}

// 1 KiB blocks, as OpenAFS counts.
unsigned long long Kb(uint64_t bytes) { return (bytes + 1023) / 1024; }

double PercentUsed(const cachemgr::VolumeInfo& v) {
  if (v.quota_bytes() == 0) return 0;
  return 100.0 * static_cast<double>(v.usage_bytes()) / static_cast<double>(v.quota_bytes());
}

// OpenAFS's columns; the file server reports no partition size, so the partition's column
// gives its free space instead of a percentage.
void PrintQuotaLine(const cachemgr::VolumeInfo& v) {
  std::string quota = v.quota_bytes() == 0 ? "no limit" : std::to_string(v.quota_bytes() / 1024);
  double used = PercentUsed(v);
  std::printf("%-25s %10s %10llu%5.0f%%%s %10lluK free%s\n", v.name().c_str(), quota.c_str(),
              Kb(v.usage_bytes()), used, used > 90.0 ? "<<" : "  ",
              static_cast<unsigned long long>(v.partition_free_bytes() / 1024),
              used > 90.0 ? "  <<WARNING" : "");
}

std::string QuotaJson(const std::string& path, const cachemgr::VolumeInfo& v) {
  auto n = [](uint64_t x) { return std::to_string(x); };
  char percent[32];
  std::snprintf(percent, sizeof percent, "%.1f", PercentUsed(v));
  return "{\"path\":" + JsonQuote(path) + ",\"volume\":" + JsonQuote(v.name()) +
         ",\"id\":" + n(v.id()) + ",\"cell\":" + JsonQuote(v.cell()) +
         ",\"quota_kb\":" + n(v.quota_bytes() / 1024) + ",\"used_kb\":" + n(Kb(v.usage_bytes())) +
         ",\"percent_used\":" + percent + ",\"partition\":" + JsonQuote(v.partition()) +
         ",\"partition_free_kb\":" + n(v.partition_free_bytes() / 1024) + "}";
}

// "1000", "10M", "2G": kilobytes, as OpenAFS's -max (suffixes K, M, G, T).
Result<uint64_t> ParseKbytes(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string suffix = text.substr(digits);
  uint64_t scale = suffix.empty() || suffix == "K" || suffix == "k" ? 1
                   : suffix == "M" || suffix == "m"                 ? 1ull << 10
                   : suffix == "G" || suffix == "g"                 ? 1ull << 20
                   : suffix == "T" || suffix == "t"                 ? 1ull << 30
                                                                    : 0;
  Status bad =
      Error(Code::kInvalidArgument,
            "-max wants kilobytes (a number, optionally with K, M, G or T), not '" + text + "'");
  if (digits == 0 || digits > 15 || scale == 0) return bad;
  uint64_t kb = std::stoull(text.substr(0, digits));
  if (kb > (UINT64_MAX / 1024) / scale) return bad;
  return kb * scale;
}

}  // namespace

// heka fs listquota [-path P...] [-format json]
int FsListQuota(int argc, char** argv) {
  std::vector<char*> rest;
  ListSwitch paths = TakeList(argc, argv, "path", &rest);
  FsCommand c =
      StartFsCommand("fs listquota", static_cast<int>(rest.size()) - 1, rest.data(),
                     {kPaths, {"format", true, "output format: text (default) or json"}}, {});
  if (c.exit) return *c.exit;
  auto json = JsonOutput(c);
  if (!json.ok()) return UsageError(c.name, json.status());
  auto list = PathsOf(paths);
  if (!list.ok()) return UsageError(c.name, list.status());
  std::string objects;
  for (const std::string& path : *list) {
    auto rep = AskAboutPath(c, cachemgr::EXAMINE, path);
    if (!rep.ok()) return c.Fail(rep.status());
    if (*json) {
      objects += (objects.empty() ? "" : ",") + QuotaJson(path, rep->volume());
      continue;
    }
    if (&path == &list->front()) {
      std::printf("%-25s%-11s%-11s%-7s%-11s\n", "Volume Name", "      Quota", "       Used",
                  " %Used", "  Partition");
    }
    PrintQuotaLine(rep->volume());
  }
  if (*json) std::printf("{\"volumes\":[%s]}\n", objects.c_str());
  return kExitOk;
}

// heka fs setquota [-path P] -max KBYTES
int FsSetQuota(int argc, char** argv) {
  FsCommand c = StartFsCommand(
      "fs setquota", argc, argv,
      {{"path", true, "a file or directory in the volume (default: .)"},
       {"max", true, "the quota in 1K blocks, or with M, G, T (0 = no limit) (required)"}},
      {"max"});
  if (c.exit) return *c.exit;
  auto kb = ParseKbytes(c.Get("max"));
  if (!kb.ok()) return UsageError(c.name, kb.status());
  cachemgr::ControlRequest req;
  req.set_quota_bytes(*kb * 1024);
  auto rep = AskAboutPath(c, cachemgr::SET_QUOTA, c.Has("path") ? c.Get("path") : ".", req);
  return rep.ok() ? kExitOk : c.Fail(rep.status());
}

// heka fs flushvolume [-path P...]
int FsFlushVolume(int argc, char** argv) {
  std::vector<char*> rest;
  ListSwitch paths = TakeList(argc, argv, "path", &rest);
  FsCommand c = StartFsCommand("fs flushvolume", static_cast<int>(rest.size()) - 1, rest.data(),
                               {kPaths}, {});
  if (c.exit) return *c.exit;
  auto list = PathsOf(paths);
  if (!list.ok()) return UsageError(c.name, list.status());
  for (const std::string& path : *list) {
    auto rep = AskAboutPath(c, cachemgr::FLUSH_VOLUME, path);
    if (!rep.ok()) return c.Fail(rep.status());
  }
  return kExitOk;
}

}  // namespace heka::cli

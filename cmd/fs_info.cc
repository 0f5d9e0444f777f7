// heka fs examine | whereis | flush | whoami | unlog | getcacheparms | setcachesize: what the
// cache manager knows about a path's volume, its cache, and the caller's identity.
#include <cstdint>
#include <cstdio>
#include <string>

#include "cmd/commands.h"
#include "cmd/fs_common.h"

namespace heka::cli {
namespace {

Result<cachemgr::ControlReply> AskAboutPath(const FsCommand& c, cachemgr::ControlOp op) {
  auto path = AbsolutePath(c.Get("path"), true);
  if (!path.ok()) return path.status();
  cachemgr::ControlRequest req;
  req.set_op(op);
  req.set_path(*path);
  return AskCacheManager(c, req);
}

const Switch kPath = {"path", true, "a file or directory in /heka (required)"};

}  // namespace

// heka fs examine -path P
int FsExamine(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs examine", argc, argv, {kPath}, {"path"});
  if (c.exit) return *c.exit;
  auto rep = AskAboutPath(c, cachemgr::EXAMINE);
  if (!rep.ok()) return c.Fail(rep.status());
  const auto& v = rep->volume();
  std::printf("File %s is in volume %s (cell %s)\n", c.Get("path").c_str(), v.name().c_str(),
              v.cell().c_str());
  std::printf("Volume status for vid = %llu named %s\n", static_cast<unsigned long long>(v.id()),
              v.name().c_str());
  if (v.quota_bytes() == 0) {
    std::printf("Current disk quota is unlimited\n");
  } else {
    std::printf("Current disk quota is %llu\n",
                static_cast<unsigned long long>(v.quota_bytes() / 1024));
  }
  std::printf("Current blocks used are %llu\n",
              static_cast<unsigned long long>((v.usage_bytes() + 1023) / 1024));
  std::printf("The partition %s has %llu blocks available\n", v.partition().c_str(),
              static_cast<unsigned long long>(v.partition_free_bytes() / 1024));
  return kExitOk;
}

// heka fs whereis -path P
int FsWhereIs(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs whereis", argc, argv, {kPath}, {"path"});
  if (c.exit) return *c.exit;
  auto rep = AskAboutPath(c, cachemgr::WHERE_IS);
  if (!rep.ok()) return c.Fail(rep.status());
  std::string hosts;
  for (const std::string& s : rep->servers()) hosts += (hosts.empty() ? "" : " ") + s;
  std::printf("File %s is on host %s\n", c.Get("path").c_str(), hosts.c_str());
  return kExitOk;
}

// heka fs flush -path P
int FsFlush(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs flush", argc, argv, {kPath}, {"path"});
  if (c.exit) return *c.exit;
  auto rep = AskAboutPath(c, cachemgr::FLUSH);
  return rep.ok() ? kExitOk : c.Fail(rep.status());
}

// heka fs whoami
int FsWhoami(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs whoami", argc, argv, {}, {});
  if (c.exit) return *c.exit;
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::WHOAMI);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  std::printf("%s\n", rep->principal().empty() ? "anonymous" : rep->principal().c_str());
  return kExitOk;
}

// heka fs checkvolumes: the cache manager forgets what the VLDB said of volumes (as OpenAFS's),
// so that it sees a volume's new sites (a vos release, addsite, move) at once.
int FsCheckVolumes(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs checkvolumes", argc, argv, {}, {});
  if (c.exit) return *c.exit;
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::CHECK_VOLUMES);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  std::printf("All volumeID/name mappings checked.\n");
  return kExitOk;
}

// heka fs getcacheparms [-format json]: how much the cache holds, of how much.
int FsGetCacheParms(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs getcacheparms", argc, argv,
                               {{"format", true, "output format: text (default) or json"}}, {});
  if (c.exit) return *c.exit;
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::GET_CACHE_PARMS);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  const cachemgr::CacheParms& p = rep->cache();
  auto n = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (c.Get("format") == "json") {
    std::printf("{\"used_bytes\":%llu,\"capacity_bytes\":%llu,\"chunks\":%llu,"
                "\"evicted_chunks\":%llu,\"kernel_inodes\":%llu,\"objects\":%llu}\n",
                n(p.used_bytes()), n(p.capacity_bytes()), n(p.chunks()), n(p.evicted_chunks()),
                n(p.kernel_inodes()), n(p.objects()));
  } else {
    // OpenAFS counts 1 KiB blocks; so does this line.
    std::printf("Heka using %llu of the cache's available %llu 1K byte blocks.\n",
                n((p.used_bytes() + 1023) / 1024), n(p.capacity_bytes() / 1024));
    std::printf("%llu chunks cached (%llu evicted), %llu objects, %llu inodes held by the kernel.\n",
                n(p.chunks()), n(p.evicted_chunks()), n(p.objects()), n(p.kernel_inodes()));
  }
  return kExitOk;
}

// heka fs setcachesize -blocks N | -reset: a new bound on cached file data (root only).
int FsSetCacheSize(int argc, char** argv) {
  FsCommand c = StartFsCommand(
      "fs setcachesize", argc, argv,
      {{"blocks", true, "the cache's size in 1K blocks (0 = the configured size)"},
       {"reset", false, "back to the configured size"}},
      {});
  if (c.exit) return *c.exit;
  if (c.Has("blocks") == c.Has("reset")) {
    return UsageError(c.name, Error(Code::kInvalidArgument, "give either -blocks N or -reset"));
  }
  uint64_t blocks = 0;
  if (c.Has("blocks")) {
    const std::string& text = c.Get("blocks");
    bool digits = !text.empty() && text.size() <= 15 &&
                  text.find_first_not_of("0123456789") == std::string::npos;
    if (!digits) {
      return UsageError(c.name, Error(Code::kInvalidArgument,
                                      "-blocks wants a number of 1K blocks, not '" + text + "'"));
    }
    blocks = std::stoull(text);
  }
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::SET_CACHE_SIZE);
  req.set_cache_bytes(blocks * 1024);
  auto rep = AskCacheManager(c, req);
  if (!rep.ok()) return c.Fail(rep.status());
  if (blocks == 0) {
    std::printf("Resetting cache size to the configured %llu 1K byte blocks.\n",
                static_cast<unsigned long long>(rep->cache().capacity_bytes() / 1024));
  } else {
    std::printf("New cache size set.\n");
  }
  return kExitOk;
}

// heka fs unlog
int FsUnlog(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs unlog", argc, argv, {}, {});
  if (c.exit) return *c.exit;
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::UNLOG);
  auto rep = AskCacheManager(c, req);
  return rep.ok() ? kExitOk : c.Fail(rep.status());
}

}  // namespace heka::cli

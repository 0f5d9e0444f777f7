// heka fs mkmount | lsmount | rmmount: AFS-style mount points (a symlink with mode 0644 whose
// target is "#vol." or "#cell:vol."), made and removed by the cache manager as the caller.
#include <cstdio>

#include "cmd/commands.h"
#include "cmd/fs_common.h"

namespace heka::cli {
namespace {

Result<cachemgr::ControlReply> AskAbout(const FsCommand& c, cachemgr::ControlOp op) {
  auto path = AbsolutePath(c.Get("dir"), false);
  if (!path.ok()) return path.status();
  cachemgr::ControlRequest req;
  req.set_op(op);
  req.set_path(*path);
  return AskCacheManager(c, req);
}

Status NotMountPoint(const FsCommand& c, const Status& s) {
  if (s.code() != Code::kInvalidArgument || s.message() != "not a mount point") return s;
  return Error(s.code(), "'" + c.Get("dir") + "' is not a mount point");
}

}  // namespace

// heka fs mkmount -dir D -vol V [-cell C] [-rw]
int FsMkMount(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs mkmount", argc, argv,
                               {{"dir", true, "the mount point to create (required)"},
                                {"vol", true, "the volume's name (required)"},
                                {"cell", true, "the volume's cell (default: the directory's)"},
                                {"rw", false, "a read-write mount point ('%' instead of '#')"}},
                               {"dir", "vol"});
  if (c.exit) return *c.exit;
  auto path = AbsolutePath(c.Get("dir"), false);
  if (!path.ok()) return c.Fail(path.status());
  cachemgr::ControlRequest req;
  req.set_op(cachemgr::MAKE_MOUNT);
  req.set_path(*path);
  req.set_volume(c.Get("vol"));
  req.set_cell(c.Get("cell"));
  req.set_rw(c.Has("rw"));
  auto rep = AskCacheManager(c, req);
  return rep.ok() ? kExitOk : c.Fail(rep.status());
}

// heka fs lsmount -dir D
int FsLsMount(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs lsmount", argc, argv,
                               {{"dir", true, "the mount point (required)"}}, {"dir"});
  if (c.exit) return *c.exit;
  auto rep = AskAbout(c, cachemgr::LIST_MOUNT);
  if (!rep.ok()) return c.Fail(NotMountPoint(c, rep.status()));
  std::printf("'%s' is a mount point for volume '%s'\n", c.Get("dir").c_str(),
              rep->target().c_str());
  return kExitOk;
}

// heka fs rmmount -dir D
int FsRmMount(int argc, char** argv) {
  FsCommand c = StartFsCommand("fs rmmount", argc, argv,
                               {{"dir", true, "the mount point to remove (required)"}}, {"dir"});
  if (c.exit) return *c.exit;
  auto rep = AskAbout(c, cachemgr::REMOVE_MOUNT);
  return rep.ok() ? kExitOk : c.Fail(NotMountPoint(c, rep.status()));
}

}  // namespace heka::cli

// AFS-style mount points: a symlink with mode 0644 whose target is "#vol." or "#cell:vol."
// ('%' instead of '#': the read-write volume; both lead to the RW volume in this part).
// Pure functions; any thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace heka::cm {

inline constexpr mode_t kMountPointMode = 0644;

struct MountPointTarget {
  std::string cell;  // "" = the mount point's own cell
  std::string volume;
  bool rw = false;
};

// What a symlink with target `target` and permission bits `mode` leads to, if it is a mount
// point: the target matches ^[#%]([^:/]+:)?[^/]+\.$ and the mode is exactly 0644.
std::optional<MountPointTarget> ParseMountPoint(std::string_view target, mode_t mode);

// "#vol." / "#cell:vol." / "%vol."
std::string MountPointString(const MountPointTarget& t);

}  // namespace heka::cm

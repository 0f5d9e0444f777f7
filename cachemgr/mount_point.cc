#include "cachemgr/mount_point.h"

namespace heka::cm {

std::optional<MountPointTarget> ParseMountPoint(std::string_view target, mode_t mode) {
  if ((mode & 07777) != kMountPointMode) return std::nullopt;
  if (target.size() < 3 || (target[0] != '#' && target[0] != '%') || target.back() != '.') {
    return std::nullopt;
  }
  MountPointTarget out;
  out.rw = target[0] == '%';
  std::string_view body = target.substr(1, target.size() - 2);
  if (body.find('/') != std::string_view::npos) return std::nullopt;
  if (size_t colon = body.find(':'); colon != std::string_view::npos) {
    out.cell = std::string(body.substr(0, colon));
    body = body.substr(colon + 1);
    if (out.cell.empty()) return std::nullopt;
  }
  if (body.empty()) return std::nullopt;
  out.volume = std::string(body);
  return out;
}

std::string MountPointString(const MountPointTarget& t) {
  std::string out(1, t.rw ? '%' : '#');
  if (!t.cell.empty()) out += t.cell + ":";
  return out + t.volume + ".";
}

}  // namespace heka::cm

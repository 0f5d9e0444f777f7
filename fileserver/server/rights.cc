#include "fileserver/server/rights.h"

#include <algorithm>

namespace heka::fs {

bool Cps::Has(int64_t id) const {
  if (id > 0) return user_id == id;
  return std::find(groups.begin(), groups.end(), id) != groups.end();
}

Cps Cps::AnyUser() {
  Cps cps;
  cps.groups.push_back(kAnyUserGroup);
  return cps;
}

uint32_t DirectoryRights(const std::vector<AclEntry>& acl, const Cps& cps, bool volume_owner) {
  uint32_t positive = 0;
  uint32_t negative = 0;
  for (const AclEntry& e : acl) {
    if (!cps.Has(e.principal)) continue;
    (e.negative ? negative : positive) |= e.rights;
  }
  uint32_t rights = positive & ~negative;
  if (cps.cell_admin()) rights |= kLookup | kAdminister;
  if (volume_owner) rights |= kAdminister;
  return rights & kAllRights;
}

uint32_t FileRights(uint32_t dir_rights, uint32_t mode) {
  uint32_t rights = dir_rights;
  if (!(mode & 0400)) rights &= ~static_cast<uint32_t>(kRead);
  if (!(mode & 0200)) rights &= ~static_cast<uint32_t>(kWrite);
  return rights;
}

// The owner of a file may read and write it with i alone: in a drop box (i without r or w)
// one can still finish writing the files one created.
bool MayRead(uint32_t dir_rights, uint32_t mode, bool owner) {
  if (!(mode & 0400)) return false;
  return (dir_rights & kRead) || (owner && (dir_rights & kInsert));
}

// The owner writes its own file whatever its mode bits (a file created 0444, as git creates its
// objects, is written through the descriptor that created it); everybody else needs 0200.
bool MayWrite(uint32_t dir_rights, uint32_t mode, bool owner) {
  if (owner) return (dir_rights & (kWrite | kInsert)) != 0;
  return (mode & 0200) && (dir_rights & kWrite);
}

bool MayLookup(uint32_t dir_rights) { return dir_rights & kLookup; }
bool MayInsert(uint32_t dir_rights) { return dir_rights & kInsert; }
bool MayDelete(uint32_t dir_rights) { return dir_rights & kDelete; }
bool MayAdminister(uint32_t dir_rights) { return dir_rights & kAdminister; }
bool MayLock(uint32_t dir_rights) { return dir_rights & kLock; }

}  // namespace heka::fs

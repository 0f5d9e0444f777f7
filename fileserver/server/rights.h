// Rights: AFS access rights of a caller, from a directory's ACL and the caller's CPS (the
// user id and group ids the PTDB gives the caller's principal in the volume's cell).
// Pure functions; the rules are listed in docs/formats/fileserver-rpc.md ("Rights").
#pragma once

#include <cstdint>
#include <vector>

#include "fileserver/volume/volume.h"

namespace heka::fs {

inline constexpr int64_t kAnyUserGroup = -101;   // system:anyuser
inline constexpr int64_t kAuthUserGroup = -102;  // system:authuser

// A caller's current protection subdomain in one cell.
struct Cps {
  int64_t user_id = 0;          // 0: not a registered user of the cell
  std::vector<int64_t> groups;  // system:anyuser always; system:authuser for trusted realms
  bool Has(int64_t id) const;
  bool cell_admin() const { return Has(kSystemAdministrators); }
  // The CPS of system:anyuser alone (a caller without a user entry or trusted realm).
  static Cps AnyUser();
};

// What the ACL grants: the union of matching positive entries minus the union of matching
// negative entries. A cell administrator also always has l and a (as in AFS); the owner of
// the volume's root directory always has a (it may repair the ACLs of its own volume).
uint32_t DirectoryRights(const std::vector<AclEntry>& acl, const Cps& cps, bool volume_owner);

// The rights reported on a file or symlink, whose access follows its directory's ACL: the
// directory's rights, with r and w taken away when the owner's mode bits (0400, 0200) forbid
// them, as AFS applies the owner bits to everyone.
uint32_t FileRights(uint32_t dir_rights, uint32_t mode);

// The checks of each operation (true: allowed). `owner`: the caller owns the vnode.
bool MayRead(uint32_t dir_rights, uint32_t mode, bool owner);   // FetchData on a file
bool MayWrite(uint32_t dir_rights, uint32_t mode, bool owner);  // StoreData, truncate, chmod
                                                                // (owners: mode bits ignored)
bool MayLookup(uint32_t dir_rights);                            // status, lookup, list, readlink
bool MayInsert(uint32_t dir_rights);                            // create, mkdir, symlink, link
bool MayDelete(uint32_t dir_rights);                            // remove, rmdir, rename source
bool MayAdminister(uint32_t dir_rights);                        // StoreAcl
bool MayLock(uint32_t dir_rights);                              // SetLock

}  // namespace heka::fs

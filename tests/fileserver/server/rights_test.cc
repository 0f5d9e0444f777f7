// AFS rights from an ACL and a CPS, and the checks built on them.
#include "fileserver/server/rights.h"

#include <gtest/gtest.h>

namespace heka::fs {
namespace {

constexpr int64_t kAlice = 501, kBob = 502, kStaff = -300;

Cps Of(int64_t user, std::vector<int64_t> groups) {
  Cps c;
  c.user_id = user;
  c.groups = std::move(groups);
  c.groups.push_back(kAnyUserGroup);
  return c;
}

TEST(RightsTest, UnionOfPositiveEntriesMinusNegativeOnes) {
  std::vector<AclEntry> acl = {{kAuthUserGroup, kRead | kLookup, false},
                               {kStaff, kWrite | kInsert, false},
                               {kAlice, kRead, true}};
  Cps alice = Of(kAlice, {kAuthUserGroup, kStaff});
  EXPECT_EQ(DirectoryRights(acl, alice, false), kLookup | kWrite | kInsert);
  Cps bob = Of(kBob, {kAuthUserGroup});
  EXPECT_EQ(DirectoryRights(acl, bob, false), kRead | kLookup);
  EXPECT_EQ(DirectoryRights(acl, Cps::AnyUser(), false), 0u);
}

TEST(RightsTest, NegativeGroupEntryBeatsPositiveUserEntry) {
  std::vector<AclEntry> acl = {{kAlice, kAllRights, false}, {kStaff, kDelete | kAdminister, true}};
  EXPECT_EQ(DirectoryRights(acl, Of(kAlice, {kStaff}), false),
            kAllRights & ~static_cast<uint32_t>(kDelete | kAdminister));
}

TEST(RightsTest, CellAdministratorsAlwaysHaveLookupAndAdminister) {
  Cps admin = Of(kBob, {kSystemAdministrators});
  EXPECT_EQ(DirectoryRights({}, admin, false), kLookup | kAdminister);
  // ...even against a negative entry: they can always repair an ACL.
  EXPECT_EQ(DirectoryRights({{kBob, kAllRights, true}}, admin, false), kLookup | kAdminister);
}

TEST(RightsTest, VolumeOwnerMayAlwaysAdminister) {
  EXPECT_EQ(DirectoryRights({}, Of(kAlice, {}), true), kAdminister);
}

TEST(RightsTest, OwnerModeBitsApplyToEveryone) {
  uint32_t dir = kRead | kWrite | kLookup;
  EXPECT_EQ(FileRights(dir, 0644), dir);
  EXPECT_EQ(FileRights(dir, 0444), kRead | kLookup);
  EXPECT_EQ(FileRights(dir, 0200), kWrite | kLookup);
  EXPECT_FALSE(MayRead(dir, 0244, false));
  EXPECT_FALSE(MayWrite(dir, 0444, false));
  EXPECT_TRUE(MayWrite(dir, 0444, true)) << "the owner writes its read-only file (git objects)";
}

TEST(RightsTest, OwnerWithInsertReadsAndWritesOwnFiles) {
  EXPECT_TRUE(MayWrite(kInsert, 0644, true));
  EXPECT_TRUE(MayRead(kInsert, 0644, true));
  EXPECT_FALSE(MayWrite(kInsert, 0644, false));
  EXPECT_FALSE(MayRead(kInsert, 0644, false));
}

}  // namespace
}  // namespace heka::fs

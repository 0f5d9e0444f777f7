// The advisory lock table: conflicts, leases, and the grace period after a restart.
#include "fileserver/server/locks.h"

#include <gtest/gtest.h>


#include "tests/support/wait.h"

namespace heka::fs {
namespace {

using std::chrono::milliseconds;
const LockTable::Key kF{7, 3};

TEST(LockTableTest, SharedLocksCoexistExclusiveOnesConflict) {
  LockTable t(milliseconds(10000), milliseconds(0));
  EXPECT_TRUE(t.Set("a", kF, 0, 0, 1, false, false).ok());
  EXPECT_TRUE(t.Set("b", kF, 0, 0, 1, false, false).ok());
  EXPECT_EQ(t.Set("b", kF, 0, 0, 2, true, false).code(), Code::kLockConflict);
  EXPECT_TRUE(t.Release("a", kF, 0, 0, 1).ok());
  EXPECT_EQ(t.Set("b", kF, 0, 0, 2, true, false).code(), Code::kLockConflict)
      << "b's own shared lock of owner 1 is another owner's";
  EXPECT_TRUE(t.Release("b", kF, 0, 0, 1).ok());
  EXPECT_TRUE(t.Set("b", kF, 0, 0, 2, true, false).ok());
  EXPECT_EQ(t.Release("a", kF, 0, 0, 1).code(), Code::kNotFound);
}

TEST(LockTableTest, RangesConflictOnlyWhenTheyOverlap) {
  LockTable t(milliseconds(10000), milliseconds(0));
  EXPECT_TRUE(t.Set("a", kF, 0, 100, 1, true, false).ok());
  EXPECT_TRUE(t.Set("b", kF, 100, 100, 1, true, false).ok());
  EXPECT_EQ(t.Set("b", kF, 99, 2, 2, false, false).code(), Code::kLockConflict);
  EXPECT_EQ(t.Set("c", kF, 150, 0, 1, false, false).code(), Code::kLockConflict)
      << "length 0 reaches the end of the file";
  EXPECT_TRUE(t.Set("c", kF, 200, 0, 1, true, false).ok());
  EXPECT_TRUE(t.Set("a", LockTable::Key{7, 4}, 0, 0, 1, true, false).ok()) << "another file";
}

TEST(LockTableTest, UnlockingPartOfARangeSplitsItAsFcntlDoes) {
  LockTable t(milliseconds(10000), milliseconds(0));
  ASSERT_TRUE(t.Set("a", kF, 0, 300, 1, true, false).ok());
  ASSERT_TRUE(t.Release("a", kF, 100, 100, 1).ok());
  EXPECT_TRUE(t.Set("b", kF, 100, 100, 1, true, false).ok()) << "the middle is free";
  EXPECT_EQ(t.Set("b", kF, 50, 10, 2, true, false).code(), Code::kLockConflict);
  EXPECT_EQ(t.Set("b", kF, 250, 10, 2, true, false).code(), Code::kLockConflict);
  // Re-locking part of one's own range with another mode splits it too.
  ASSERT_TRUE(t.Set("a", kF, 0, 50, 1, false, false).ok());
  EXPECT_TRUE(t.Set("c", kF, 10, 10, 1, false, false).ok()) << "[0, 50) is shared now";
  EXPECT_EQ(t.Set("c", kF, 60, 10, 1, false, false).code(), Code::kLockConflict);
}

TEST(LockTableTest, SameOwnerUpgradesInPlace) {
  LockTable t(milliseconds(10000), milliseconds(0));
  EXPECT_TRUE(t.Set("a", kF, 0, 0, 1, false, false).ok());
  EXPECT_TRUE(t.Set("a", kF, 0, 0, 1, true, false).ok());
  EXPECT_EQ(t.Set("b", kF, 0, 0, 1, false, false).code(), Code::kLockConflict);
}

TEST(LockTableTest, ExpiredLeaseReleasesLocksAndReportsThemLost) {
  LockTable t(milliseconds(200), milliseconds(0));
  ASSERT_TRUE(t.Set("a", kF, 0, 0, 1, true, false).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return t.Set("b", kF, 0, 0, 1, true, false).ok(); },
                               std::chrono::seconds(5)));
  std::vector<LockTable::Key> lost = t.Renew("a").lost;
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], kF);
  EXPECT_TRUE(t.Renew("a").lost.empty()) << "reported once";
}

TEST(LockTableTest, RenewingKeepsTheLease) {
  LockTable t(milliseconds(300), milliseconds(0));
  ASSERT_TRUE(t.Set("a", kF, 0, 0, 1, true, false).ok());
  auto end = std::chrono::steady_clock::now() + milliseconds(900);
  bool stolen = false;
  testing::WaitFor(
      [&] {
        EXPECT_TRUE(t.Renew("a").lost.empty());
        stolen = stolen || t.Set("b", kF, 0, 0, 1, true, false).ok();
        return std::chrono::steady_clock::now() >= end;
      },
      std::chrono::seconds(5));
  EXPECT_FALSE(stolen);
}

TEST(LockTableTest, GraceAdmitsOnlyReclaimsThenRefusesLateOnes) {
  LockTable t(milliseconds(10000), milliseconds(300));
  EXPECT_TRUE(t.in_grace());
  EXPECT_EQ(t.Set("b", kF, 0, 0, 1, true, false).code(), Code::kLockConflict);
  EXPECT_TRUE(t.Set("a", kF, 0, 0, 1, true, true).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return !t.in_grace(); }, std::chrono::seconds(5)));
  EXPECT_EQ(t.Set("c", kF, 0, 0, 1, true, true).code(), Code::kLockLost);
  EXPECT_EQ(t.Set("b", kF, 0, 0, 1, true, false).code(), Code::kLockConflict)
      << "the reclaimed lock holds";
}

// A volume's move: its locks go to the destination's table with fresh leases and conflict
// there as before; the source drops them and tells each holder once that they moved.
TEST(LockTableTest, AMovedVolumesLocksGoToTheOtherTable) {
  LockTable src(milliseconds(60000), milliseconds(0)), dst(milliseconds(60000), milliseconds(0));
  const LockTable::Key other{kF.volume + 3, 5};
  ASSERT_TRUE(src.Set("a", kF, 0, 10, 1, true, false).ok());
  ASSERT_TRUE(src.Set("b", kF, 20, 0, 2, false, false).ok());
  ASSERT_TRUE(src.Set("a", other, 0, 0, 1, true, false).ok());
  auto records = src.Export(kF.volume);
  ASSERT_EQ(records.size(), 2u);
  dst.Import(kF.volume, records);
  EXPECT_EQ(dst.Set("c", kF, 5, 1, 3, false, false).code(), Code::kLockConflict);
  EXPECT_EQ(dst.Set("c", kF, 30, 1, 3, true, false).code(), Code::kLockConflict);
  EXPECT_TRUE(dst.Set("c", kF, 12, 2, 3, true, false).ok()) << "between the two";
  auto moved = src.MoveOut(kF.volume);
  EXPECT_EQ(moved.size(), 2u);
  EXPECT_TRUE(src.Set("c", kF, 0, 0, 3, true, false).ok()) << "gone from the source";
  auto renewed = src.Renew("a");
  ASSERT_EQ(renewed.moved.size(), 1u);
  EXPECT_EQ(renewed.moved[0], kF);
  EXPECT_TRUE(renewed.lost.empty());
  EXPECT_TRUE(src.Renew("a").moved.empty()) << "reported once";
  EXPECT_EQ(src.Set("c", other, 0, 0, 3, true, false).code(), Code::kLockConflict)
      << "another volume's locks stay";
}

}  // namespace
}  // namespace heka::fs

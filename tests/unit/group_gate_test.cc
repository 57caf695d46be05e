// The group gate's specification: slots one interval apart at a group's
// rate, no saved-up burst, pauses that hold a group and then spread its
// jobs at the rate, reserved slots that go, and groups it does not name
// that always go.
#include "group_gate.h"

#include "gtest/gtest.h"

namespace batchbus {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(GroupGate, SpreadsAGroupsJobsAtItsRateAndLeavesOthersAlone) {
  GroupGate gate({{"slow-api", 10.0}});
  EXPECT_FALSE(gate.open());
  EXPECT_EQ(gate.Admit("slow-api", false, kT0), kT0);
  EXPECT_EQ(gate.Admit("slow-api", false, kT0), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(gate.Admit("slow-api", false, kT0), kT0 + absl::Milliseconds(200));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(gate.Admit("other", false, kT0), kT0);
  // A job that took its slot goes when it comes back.
  EXPECT_EQ(gate.Admit("slow-api", true, kT0 + absl::Milliseconds(100)),
            kT0 + absl::Milliseconds(100));
  // Idle time is not saved up as a burst.
  const absl::Time later = kT0 + absl::Minutes(1);
  EXPECT_EQ(gate.Admit("slow-api", false, later), later);
  EXPECT_EQ(gate.Admit("slow-api", false, later), later + absl::Milliseconds(100));
}

TEST(GroupGate, APauseHoldsTheGroupThenItsJobsComeAtTheRate) {
  GroupGate gate({{"pay", 2.0}});
  gate.Pause("pay", kT0 + absl::Seconds(30));
  EXPECT_EQ(gate.Admit("pay", false, kT0), kT0 + absl::Seconds(30));
  EXPECT_EQ(gate.Admit("pay", false, kT0), kT0 + absl::Seconds(30) + absl::Milliseconds(500));
  // A reserved job that comes back during a pause takes a new slot.
  EXPECT_EQ(gate.Admit("pay", true, kT0 + absl::Seconds(1)),
            kT0 + absl::Seconds(31));
  EXPECT_EQ(gate.Admit("other", false, kT0), kT0);
  gate.Pause("pay", absl::InfinitePast());  // Resumed; the rate remains.
  EXPECT_EQ(gate.Admit("pay", true, kT0 + absl::Seconds(40)), kT0 + absl::Seconds(40));
}

TEST(GroupGate, AGroupWithoutARateIsHeldOnlyWhilePaused) {
  GroupGate gate({});
  EXPECT_TRUE(gate.open());
  EXPECT_EQ(gate.Admit("g", false, kT0), kT0);
  gate.Pause("g", kT0 + absl::Seconds(5));
  EXPECT_FALSE(gate.open());
  // Without a rate, every held job comes back when the pause ends.
  EXPECT_EQ(gate.Admit("g", false, kT0), kT0 + absl::Seconds(5));
  EXPECT_EQ(gate.Admit("g", false, kT0), kT0 + absl::Seconds(5));
  EXPECT_EQ(gate.Admit("g", false, kT0 + absl::Seconds(6)), kT0 + absl::Seconds(6));
}

}  // namespace
}  // namespace batchbus

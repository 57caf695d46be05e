#include "log_throttle.h"

#include "gtest/gtest.h"

namespace batchbus {
namespace {

TEST(LogThrottle, LetsOneLineOutPerPeriodAndCountsTheOthers) {
  LogThrottle throttle(absl::Milliseconds(200));
  uint64_t held_back = 99;
  EXPECT_TRUE(throttle.Allow(held_back));
  EXPECT_EQ(held_back, 0u);
  EXPECT_FALSE(throttle.Allow(held_back));
  EXPECT_FALSE(throttle.Allow(held_back));
  absl::SleepFor(absl::Milliseconds(250));
  EXPECT_TRUE(throttle.Allow(held_back));
  EXPECT_EQ(held_back, 2u);
}

TEST(LogThrottle, HeldBackNoteSaysHowManyOnlyWhenAnyWere) {
  EXPECT_EQ(LogThrottle::HeldBack(0), "");
  EXPECT_EQ(LogThrottle::HeldBack(7), " (7 more since the last line)");
}

}  // namespace
}  // namespace batchbus

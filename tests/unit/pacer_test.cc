// Realtime pacing: how fast normal and slow jobs may go while realtime
// messages arrive late, with a fake clock.
#include "pacer.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace batchbus {
namespace {

constexpr absl::Duration kMs = absl::Milliseconds(1);

// Jobs TryTake lets through during `span`, asking every `step`.
int Taken(Pacer& pacer, absl::Time& now, absl::Duration span,
          absl::Duration step = absl::Microseconds(10)) {
  int n = 0;
  for (const absl::Time end = now + span; now < end; now += step) {
    absl::Duration wait;
    while (pacer.TryTake(now, wait)) ++n;
  }
  return n;
}

TEST(PacerTest, WithoutRealtimeTrafficEverythingGoes) {
  Pacer pacer({});
  absl::Time now = absl::FromUnixSeconds(1000);
  absl::Duration wait;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(pacer.TryTake(now, wait));
  EXPECT_FALSE(pacer.engaged());
}

TEST(PacerTest, LateRealtimeMessagesCutTheRateDownToTheFloor) {
  Pacer::Options options;
  options.min_rate = 1000;
  Pacer pacer(options);
  absl::Time now = absl::FromUnixSeconds(1000);
  pacer.OnRealtime(now, 1 * kMs);  // The base: 1 ms.
  EXPECT_TRUE(pacer.active(now));
  const double start = pacer.rate();
  // 40 ms late, every millisecond for a second: halved every 10 ms.
  for (int i = 0; i < 1000; ++i) {
    now += kMs;
    pacer.OnRealtime(now, 40 * kMs);
  }
  EXPECT_LT(pacer.rate(), start);
  EXPECT_EQ(pacer.rate(), 1000);
  // At 1,000 jobs/s, about 100 jobs in 100 ms (plus the 1-job burst).
  const int n = Taken(pacer, now, 100 * kMs);
  EXPECT_GE(n, 95);
  EXPECT_LE(n, 102);
}

TEST(PacerTest, RefusalSaysHowLongToWait) {
  Pacer::Options options;
  options.min_rate = 1000;
  Pacer pacer(options);
  absl::Time now = absl::FromUnixSeconds(1000);
  pacer.OnRealtime(now, 0 * kMs);
  for (int i = 0; i < 300; ++i) {
    now += kMs;
    pacer.OnRealtime(now, 50 * kMs);
  }
  absl::Duration wait;
  while (pacer.TryTake(now, wait)) {
  }
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait, kMs);  // One job's worth at 1,000 jobs/s.
  now += wait;
  EXPECT_TRUE(pacer.TryTake(now, wait));
}

TEST(PacerTest, RateRecoversWhenRealtimeIsOnTimeAgain) {
  Pacer pacer({});
  absl::Time now = absl::FromUnixSeconds(1000);
  pacer.OnRealtime(now, 2 * kMs);
  for (int i = 0; i < 100; ++i) {
    now += kMs;
    pacer.OnRealtime(now, 30 * kMs);
  }
  const double low = pacer.rate();
  for (int i = 0; i < 100; ++i) {
    now += kMs;
    pacer.OnRealtime(now, 2 * kMs);  // Back at the base.
  }
  // Up to +50% per 100 ms.
  EXPECT_GT(pacer.rate(), low * 1.4);
  EXPECT_LT(pacer.rate(), low * 1.7);
}

TEST(PacerTest, ConstantClockOffsetIsNotQueueing) {
  // The submitter's clock is 500 ms ahead: every delay reads -500 ms plus
  // the real 1 ms. Only changes above the smallest delay count.
  Pacer pacer({});
  absl::Time now = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 1000; ++i) {
    now += kMs;
    pacer.OnRealtime(now, -499 * kMs + (i % 3) * kMs);
  }
  EXPECT_GE(pacer.rate(), Pacer::kStartRate);
}

TEST(PacerTest, PacingEndsAfterTheHold) {
  Pacer::Options options;
  options.hold = absl::Seconds(1);
  Pacer pacer(options);
  absl::Time now = absl::FromUnixSeconds(1000);
  pacer.OnRealtime(now, 0 * kMs);
  for (int i = 0; i < 200; ++i) {
    now += kMs;
    pacer.OnRealtime(now, 60 * kMs);
  }
  EXPECT_TRUE(pacer.engaged());
  now += absl::Seconds(1);
  absl::Duration wait;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(pacer.TryTake(now, wait));
  EXPECT_FALSE(pacer.engaged());
  // The next realtime message starts pacing afresh, from the start rate.
  pacer.OnRealtime(now, 0 * kMs);
  EXPECT_TRUE(pacer.engaged());
  EXPECT_GE(pacer.rate(), Pacer::kStartRate);
}

}  // namespace
}  // namespace batchbus

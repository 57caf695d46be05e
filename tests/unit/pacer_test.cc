// Realtime pacing: it holds normal and slow jobs back only while that makes
// realtime jobs faster. Simulated with a fake clock.
#include "pacer.h"

#include <algorithm>
#include <deque>
#include <functional>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "random.h"

namespace batchbus {
namespace {

constexpr absl::Duration kMs = absl::Milliseconds(1);
constexpr absl::Duration kStep = absl::Microseconds(100);

// A processor working a low-priority backlog at up to `capacity` jobs/s,
// asking the pacer before each job, with a realtime message arriving every
// millisecond. `lag(rate)` is that message's delay beyond the 1 ms base,
// given the low-priority rate of the last 10 ms: it models whether the
// low-priority load is what makes realtime late.
class Simulation {
 public:
  Simulation(double capacity, std::function<absl::Duration(double)> lag,
             Pacer::Options options = {})
      : pacer_(options), capacity_(capacity), lag_(std::move(lag)) {}

  void Run(absl::Duration span) {
    const int per_step =
        static_cast<int>(capacity_ * absl::ToDoubleSeconds(kStep));
    for (const absl::Time end = now_ + span; now_ < end; now_ += kStep) {
      int taken = 0;
      absl::Duration wait;
      while (taken < per_step && pacer_.TryTake(now_, wait)) ++taken;
      taken_ += taken;
      recent_.push_back(taken);
      recent_sum_ += taken;
      if (recent_.size() > 100) {
        recent_sum_ -= recent_.front();
        recent_.pop_front();
      }
      if (++steps_ % 10 == 0) {
        const absl::Duration excess = lag_(RecentRate());
        pacer_.OnRealtime(now_, kMs + excess);
        max_excess_seen_ = steps_ > 20000 ? std::max(max_excess_seen_, excess)
                                          : max_excess_seen_;
      }
      min_rate_ = std::min(min_rate_, pacer_.rate());
    }
  }
  double RecentRate() const { return recent_sum_ / 0.01; }

  Pacer pacer_;
  absl::Time now_ = absl::FromUnixSeconds(1000);
  uint64_t taken_ = 0;
  double min_rate_ = Pacer::kMaxRate;
  absl::Duration max_excess_seen_;  // After the first 2 s.

 private:
  double capacity_;
  std::function<absl::Duration(double)> lag_;
  std::deque<int> recent_;
  double recent_sum_ = 0;
  uint64_t steps_ = 0;
};

constexpr double kCapacity = 100'000;  // Jobs/s the simulated processor does.

TEST(Pacer, WithoutRealtimeTrafficEverythingGoes) {
  Pacer pacer({});
  absl::Time now = absl::FromUnixSeconds(1000);
  absl::Duration wait;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(pacer.TryTake(now, wait));
  EXPECT_FALSE(pacer.engaged());
  EXPECT_EQ(pacer.rate(), Pacer::kMaxRate);
}

TEST(Pacer, RealtimeOnTimeHoldsNothingBack) {
  Simulation sim(kCapacity, [](double) { return absl::ZeroDuration(); });
  sim.Run(absl::Seconds(5));
  EXPECT_EQ(sim.pacer_.trials(), 0u);
  EXPECT_GE(sim.taken_, 0.99 * kCapacity * 5);
}

TEST(Pacer, LatenessBelowTwiceTheTargetStartsNoTrial) {
  // Every realtime message is 3 ms late (above the 2 ms target, below
  // twice it) however fast the backlog goes: not worth a trial.
  Simulation sim(kCapacity, [](double rate) {
    return rate > 0 ? absl::Milliseconds(3) : absl::ZeroDuration();
  });
  sim.Run(absl::Seconds(5));
  EXPECT_EQ(sim.pacer_.trials(), 0u);
  EXPECT_GE(sim.taken_, 0.99 * kCapacity * 5);
}

TEST(Pacer, SlowDrainIsCutRelativeToItselfWithNoAbsoluteFloor) {
  // A backlog drained at only 10,000 jobs/s that does delay realtime: the
  // cut goes to a twentieth of that, 500 jobs/s, below any fixed floor of
  // 1,000 jobs/s (which, for a drain rate under it, would hold nothing).
  constexpr double kSlow = 10'000;
  Simulation sim(kSlow, [](double rate) {
    return rate <= 2'500 ? absl::ZeroDuration() : absl::Milliseconds(20);
  });
  sim.Run(absl::Seconds(5));
  EXPECT_GE(sim.pacer_.trials(), 1u);
  EXPECT_LT(sim.min_rate_, 1'000);
  EXPECT_GE(sim.min_rate_, 0.05 * kSlow * 0.9);
}

TEST(Pacer, LagTheLoadDoesNotCauseCostsLessThanTenPercent) {
  // Realtime jitters by 0-10 ms whatever the processor does (a busy
  // submitter host, the network, the embedded cluster's fetch waits).
  Xoshiro256 random(7);
  Simulation sim(kCapacity, [&](double) {
    return absl::Microseconds(static_cast<int64_t>(random.Next() % 10000));
  });
  sim.Run(absl::Seconds(20));
  EXPECT_GE(sim.taken_, 0.9 * kCapacity * 20);
  EXPECT_GE(sim.pacer_.gave_up(), 1u);
  // Backing off: trials at about 0, 1, 3, 7 and 15 s.
  EXPECT_LE(sim.pacer_.trials(), 6u);
  EXPECT_EQ(sim.pacer_.state(), Pacer::State::kFree);
}

TEST(Pacer, LagTheLoadCausesIsCutAndStaysCut) {
  // Above 40,000 jobs/s the low-priority load delays realtime messages, by
  // up to 30 ms at full speed.
  Simulation sim(kCapacity, [](double rate) {
    return rate <= 40'000 ? absl::ZeroDuration()
                          : absl::Milliseconds(30) * ((rate - 40'000) / 60'000);
  });
  sim.Run(absl::Seconds(10));
  EXPECT_NE(sim.pacer_.state(), Pacer::State::kFree);
  EXPECT_LT(sim.pacer_.rate(), kCapacity);
  // It keeps the low priorities moving: never below a twentieth of the
  // drain rate measured before the cut.
  EXPECT_GE(sim.min_rate_, 0.05 * kCapacity * 0.95);
  EXPECT_GE(sim.taken_, 0.25 * kCapacity * 10);
  // Realtime excess is brought down from 30 ms to a few targets.
  EXPECT_LT(sim.max_excess_seen_, absl::Milliseconds(15));
}

TEST(Pacer, GivesUpWhenEvenTheDeepestCutDoesNotHelp) {
  // The load causes a little of the lag; most of it (0-20 ms) stays at
  // any rate.
  Xoshiro256 random(11);
  Simulation noisy(kCapacity, [&](double rate) {
    return absl::Milliseconds(static_cast<int64_t>(random.Next() % 20)) +
           absl::Milliseconds(2) * (rate / kCapacity);
  });
  noisy.Run(absl::Seconds(10));
  EXPECT_GE(noisy.pacer_.gave_up(), 1u);
  EXPECT_GE(noisy.taken_, 0.85 * kCapacity * 10);
  EXPECT_GE(noisy.min_rate_, 0.05 * kCapacity * 0.95);
}

TEST(Pacer, RefusalSaysHowLongToWait) {
  Simulation sim(kCapacity, [](double rate) {
    return rate > 40'000 ? absl::Milliseconds(30) : absl::ZeroDuration();
  });
  sim.Run(absl::Seconds(2));  // 1 s of warm-up, then a trial.
  ASSERT_NE(sim.pacer_.state(), Pacer::State::kFree);
  absl::Duration wait;
  while (sim.pacer_.TryTake(sim.now_, wait)) {
  }
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait,
            absl::Seconds(1.0 / sim.pacer_.rate()) + absl::Microseconds(1));
  sim.now_ += wait;
  EXPECT_TRUE(sim.pacer_.TryTake(sim.now_, wait));
}

TEST(Pacer, EveryDecisionIsReportedOnce) {
  Xoshiro256 random(3);
  Simulation sim(kCapacity, [&](double) {
    return absl::Microseconds(static_cast<int64_t>(random.Next() % 10000));
  });
  sim.Run(absl::Milliseconds(1600));  // Warm-up, a trial, it gave up.
  ASSERT_GE(sim.pacer_.decisions(), 2u);
  const Pacer::Decision& d = sim.pacer_.last_decision();
  EXPECT_EQ(d.kind, Pacer::Decision::kGaveUp);
  EXPECT_EQ(Pacer::KindName(d.kind), "gave up");
  EXPECT_NEAR(d.drain_rate, kCapacity, 0.1 * kCapacity);
  EXPECT_EQ(d.retry_in, absl::Seconds(1));
}

// Until realtime messages have been seen for a second, the quickest delay
// is a guess: a start-up's warm-up must not look like lateness.
TEST(Pacer, NoTrialInTheFirstSecondOfRealtimeTraffic) {
  Simulation sim(kCapacity, [](double rate) {
    return rate > 40'000 ? absl::Milliseconds(30) : absl::ZeroDuration();
  });
  sim.Run(absl::Milliseconds(900));
  EXPECT_EQ(sim.pacer_.trials(), 0u);
  EXPECT_EQ(sim.pacer_.state(), Pacer::State::kFree);
  sim.Run(absl::Milliseconds(400));
  EXPECT_EQ(sim.pacer_.trials(), 1u);
}

TEST(Pacer, ConstantClockOffsetIsNotQueueing) {
  // The submitter's clock is 500 ms ahead: every delay reads -500 ms plus
  // the real 1 ms. Only changes above the smallest delay count.
  Pacer pacer({});
  absl::Time now = absl::FromUnixSeconds(1000);
  absl::Duration wait;
  for (int i = 0; i < 1000; ++i) {
    now += kMs;
    pacer.OnRealtime(now, -499 * kMs + (i % 3) * kMs);
    for (int j = 0; j < 100; ++j) ASSERT_TRUE(pacer.TryTake(now, wait));
  }
  EXPECT_EQ(pacer.trials(), 0u);
}

TEST(Pacer, EverythingGoesAgainAfterTheHold) {
  Pacer::Options options;
  options.hold = absl::Seconds(1);
  Simulation sim(kCapacity, [](double rate) {
    return rate > 40'000 ? absl::Milliseconds(30) : absl::ZeroDuration();
  }, options);
  sim.Run(absl::Seconds(2));
  ASSERT_TRUE(sim.pacer_.engaged());
  ASSERT_NE(sim.pacer_.state(), Pacer::State::kFree);
  sim.now_ += absl::Seconds(1);  // No realtime message for the hold.
  absl::Duration wait;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(sim.pacer_.TryTake(sim.now_, wait));
  }
  EXPECT_FALSE(sim.pacer_.engaged());
  EXPECT_EQ(sim.pacer_.state(), Pacer::State::kFree);
}

}  // namespace
}  // namespace batchbus

// Admission's specification: the in-flight job and byte limits, the wait
// and fail policies, and closing.
#include "admission.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

Admission::Limits Limits(uint64_t jobs, uint64_t bytes,
                         BackpressurePolicy policy,
                         absl::Duration wait = absl::ZeroDuration()) {
  return {jobs, bytes, policy, wait};
}

TEST(Admission, FailPolicyRefusesAtOnceWhenFull) {
  Mutex mu;
  Admission admission(Limits(2, 1000, BackpressurePolicy::kFail,
                             absl::Seconds(30)));
  MutexLock lock(&mu);
  EXPECT_TRUE(admission.Admit(10, mu).ok());
  EXPECT_TRUE(admission.Admit(10, mu).ok());
  const absl::Time start = absl::Now();
  absl::Status s = admission.Admit(10, mu);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("max_inflight_jobs = 2"), std::string::npos) << s;
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_EQ(admission.jobs(), 2u);
  EXPECT_EQ(admission.bytes(), 20u);
}

TEST(Admission, ByteLimitCountsEncodedBytes) {
  Mutex mu;
  Admission admission(Limits(100, 100, BackpressurePolicy::kFail));
  MutexLock lock(&mu);
  EXPECT_TRUE(admission.Admit(60, mu).ok());
  EXPECT_EQ(admission.Admit(41, mu).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(admission.Admit(40, mu).ok());
}

TEST(Admission, AJobLargerThanTheByteLimitGoesWhenNothingElseIsInFlight) {
  Mutex mu;
  Admission admission(Limits(100, 100, BackpressurePolicy::kFail));
  MutexLock lock(&mu);
  EXPECT_TRUE(admission.Admit(500, mu).ok());
  EXPECT_EQ(admission.Admit(1, mu).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(Admission, WaitPolicyWaitsUpToSubmitWaitThenRefuses) {
  Mutex mu;
  Admission admission(Limits(1, 1000, BackpressurePolicy::kWait,
                             absl::Milliseconds(100)));
  MutexLock lock(&mu);
  ASSERT_TRUE(admission.Admit(1, mu).ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(admission.Admit(1, mu).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
}

TEST(Admission, ReleasedRoomLetsAWaiterIn) {
  Mutex mu;
  Admission admission(Limits(1, 1000, BackpressurePolicy::kWait,
                             absl::Seconds(30)));
  {
    MutexLock lock(&mu);
    ASSERT_TRUE(admission.Admit(5, mu).ok());
  }
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(50));
    MutexLock lock(&mu);
    admission.Release(1, 5);
  });
  MutexLock lock(&mu);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(admission.Admit(7, mu).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(admission.bytes(), 7u);
  MutexUnlock unlock(&mu);
  releaser.join();
}

TEST(Admission, CloseTurnsWaitersAndLaterCallersAway) {
  Mutex mu;
  Admission admission(Limits(1, 1000, BackpressurePolicy::kWait,
                             absl::Seconds(30)));
  {
    MutexLock lock(&mu);
    ASSERT_TRUE(admission.Admit(1, mu).ok());
  }
  std::atomic<bool> refused{false};
  std::thread waiter([&] {
    MutexLock lock(&mu);
    refused = admission.Admit(1, mu).code() ==
              absl::StatusCode::kFailedPrecondition;
  });
  absl::SleepFor(absl::Milliseconds(50));
  {
    MutexLock lock(&mu);
    admission.Close();
  }
  waiter.join();
  EXPECT_TRUE(refused.load());
  MutexLock lock(&mu);
  admission.Release(1, 1);
  EXPECT_EQ(admission.Admit(1, mu).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(Admission, WaitIdleReturnsWhenTheLastJobEndsOrAtTheDeadline) {
  Mutex mu;
  Admission admission(Limits(10, 1000, BackpressurePolicy::kFail));
  MutexLock lock(&mu);
  ASSERT_TRUE(admission.Admit(1, mu).ok());
  EXPECT_FALSE(admission.WaitIdle(mu, absl::Now() + absl::Milliseconds(20)));
  std::thread releaser([&] {
    MutexLock inner(&mu);
    admission.Release(1, 1);
  });
  EXPECT_TRUE(admission.WaitIdle(mu, absl::Now() + absl::Seconds(30)));
  MutexUnlock unlock(&mu);
  releaser.join();
}

}  // namespace
}  // namespace batchbus

#include "mutex.h"

#include <thread>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

TEST(CondVar, WaitWithTimeoutReportsTheTimeoutWhenNobodySignals) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  absl::Time start = absl::Now();
  bool timed_out = false;
  while (!timed_out) {
    timed_out = cv.WaitWithTimeout(&mu, absl::Milliseconds(20));
  }
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

TEST(CondVar, WaitWithDeadlineInThePastReturnsAtOnce) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::Now() - absl::Seconds(1)));
}

TEST(CondVar, SignalWakesAWaiterThatSeesTheGuardedChange) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread signaller([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    // A day-long bound: the signal, not the timeout, ends the wait.
    while (!ready) cv.WaitWithTimeout(&mu, absl::InfiniteDuration());
  }
  signaller.join();
}

TEST(MutexUnlock, ReleasesTheLockForItsScope) {
  Mutex mu;
  MutexLock lock(&mu);
  {
    MutexUnlock unlock(&mu);
    std::thread other([&] { MutexLock inner(&mu); });
    other.join();  // would deadlock if mu were still held
  }
}

}  // namespace
}  // namespace batchbus

// Mutex, MutexLock and CondVar: locks whose use clang's -Wthread-safety
// checks (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED), built on std::mutex.
//
// Why not absl::Mutex itself: the distribution's libabsl is not built with
// ThreadSanitizer, so TSan cannot see absl::Mutex's happens-before edges and
// reports every guarded access as a race. std::mutex goes through pthread,
// which TSan intercepts. The annotations are Abseil's, so the checking is the
// same as with absl::Mutex.
#ifndef BATCHBUS_LIB_MUTEX_H_
#define BATCHBUS_LIB_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace batchbus {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells the analysis that the caller holds the lock (checked by nothing at
  // run time); for callbacks that run under a lock taken elsewhere.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

// Releases a held `mu` for its scope and takes it again at the end: for calls
// that must not run under the lock (librdkafka, logging, user callbacks).
class ABSL_SCOPED_LOCKABLE MutexUnlock {
 public:
  explicit MutexUnlock(Mutex* mu) ABSL_UNLOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Unlock();
  }
  MutexUnlock(const MutexUnlock&) = delete;
  MutexUnlock& operator=(const MutexUnlock&) = delete;
  ~MutexUnlock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_->Lock(); }

 private:
  Mutex* const mu_;
};

// A condition variable for Mutex. Waits may wake spuriously: callers loop on
// their condition.
class CondVar {
 public:
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns true when `deadline` passed.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    return WaitWithTimeout(mu, left);
  }
  // Returns true when `timeout` passed.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    // An infinite timeout would overflow the clock: wait a day at a time.
    if (timeout > absl::Hours(24)) timeout = absl::Hours(24);
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    std::cv_status status =
        cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout));
    lock.release();
    return status == std::cv_status::timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_MUTEX_H_

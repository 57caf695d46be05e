// Admission: the in-flight limits (jobs and encoded bytes submitted that
// have no terminal result yet) and what Submit does when they are reached:
// wait up to submit_wait for room (BackpressurePolicy::kWait), or refuse at
// once (kFail). Also the one "closed" switch that Submit checks.
//
// Threads: not thread-safe by itself. The Submitter calls every method
// under its state lock, and passes that lock to the calls that wait on it.
#ifndef BATCHBUS_LIB_ADMISSION_H_
#define BATCHBUS_LIB_ADMISSION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "mutex.h"

namespace batchbus {

class Admission {
 public:
  struct Limits {
    uint64_t max_jobs = 0;
    uint64_t max_bytes = 0;
    BackpressurePolicy policy = BackpressurePolicy::kWait;
    absl::Duration wait = absl::ZeroDuration();
  };
  static Limits LimitsOf(const Config& config) {
    return {config.max_inflight_jobs, config.max_inflight_bytes,
            config.backpressure, config.submit_wait};
  }

  explicit Admission(const Limits& limits) : limits_(limits) {}

  // Takes room for one job of `bytes`, waiting on `mu` (which guards this
  // object and is held) as the policy says. ResourceExhausted when there is
  // no room in time, FailedPrecondition once closed. A job larger than
  // max_bytes is admitted when nothing else is in flight.
  absl::Status Admit(uint64_t bytes, Mutex& mu)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Gives back the room of `jobs` ended jobs holding `bytes`; wakes waiters.
  void Release(uint64_t jobs, uint64_t bytes);

  // Refuses every Admit from now on, including those waiting.
  void Close();
  bool closed() const { return closed_; }

  // Waits on `mu` until nothing is in flight or `deadline`; true when idle.
  bool WaitIdle(Mutex& mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  uint64_t jobs() const { return jobs_; }
  uint64_t bytes() const { return bytes_; }

 private:
  bool Full(uint64_t bytes) const {
    return jobs_ + 1 > limits_.max_jobs ||
           (bytes_ > 0 && bytes_ + bytes > limits_.max_bytes);
  }
  absl::Status Refusal() const;

  const Limits limits_;
  uint64_t jobs_ = 0;
  uint64_t bytes_ = 0;
  bool closed_ = false;
  int room_waiters_ = 0;
  int idle_waiters_ = 0;
  CondVar room_cv_;
  CondVar idle_cv_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_ADMISSION_H_

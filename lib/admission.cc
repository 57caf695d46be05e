#include "admission.h"

#include "strcat.h"

namespace batchbus {

absl::Status Admission::Admit(uint64_t bytes, Mutex& mu) {
  if (!closed_ && Full(bytes) &&
      limits_.policy == BackpressurePolicy::kWait) {
    const absl::Time deadline = absl::Now() + limits_.wait;
    ++room_waiters_;
    while (!closed_ && Full(bytes)) {
      if (room_cv_.WaitWithDeadline(&mu, deadline)) break;
    }
    --room_waiters_;
  }
  if (closed_) return absl::FailedPreconditionError("submitter is closed");
  if (Full(bytes)) return Refusal();
  ++jobs_;
  bytes_ += bytes;
  return absl::OkStatus();
}

absl::Status Admission::Refusal() const {
  return absl::ResourceExhaustedError(StrCat(
      "submitter is full: ", jobs_, " jobs and ", bytes_,
      " bytes in flight (max_inflight_jobs = ", limits_.max_jobs,
      ", max_inflight_bytes = ", limits_.max_bytes, ")"));
}

void Admission::Release(uint64_t jobs, uint64_t bytes) {
  if (jobs == 0) return;
  jobs_ -= jobs;
  bytes_ -= bytes;
  if (room_waiters_ > 0) room_cv_.SignalAll();
  if (idle_waiters_ > 0 && jobs_ == 0) idle_cv_.SignalAll();
}

void Admission::Close() {
  closed_ = true;
  room_cv_.SignalAll();
}

bool Admission::WaitIdle(Mutex& mu, absl::Time deadline) {
  ++idle_waiters_;
  while (jobs_ > 0) {
    if (idle_cv_.WaitWithDeadline(&mu, deadline)) break;
  }
  --idle_waiters_;
  return jobs_ == 0;
}

}  // namespace batchbus

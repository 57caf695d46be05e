#include "completions.h"

#include <exception>
#include <utility>

#include "log.h"

namespace batchbus {

bool ResultWaiter::Deliver(const JobResult& result, Counter& counted) {
  MutexLock lock(&mu_);
  if (abandoned_) return false;
  counted.Add();
  result_ = result;
  cv_.Signal();
  return true;
}

std::optional<JobResult> ResultWaiter::WaitFor(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!result_.has_value()) {
    if (cv_.WaitWithDeadline(&mu_, deadline) && !result_.has_value()) {
      abandoned_ = true;
      return std::nullopt;
    }
  }
  return std::move(*result_);
}

void CompletionDispatcher::SetLateHook(Submitter::LateResultHook hook) {
  MutexLock lock(&hook_mu_);
  hook_ = std::move(hook);
}

void CompletionDispatcher::Run(Outcome& outcome) {
  if (!outcome.events.empty()) DeliverEvents(outcome.events);
  if (!outcome.completions.empty()) {
    RecordRoundTrips(outcome.completions);
    Count(outcome.completions, outcome.late);
    for (Completion& c : outcome.completions) Call(c);
    outcome.completions.clear();
  }
  ReportLate(outcome.late);
  outcome.jobs_freed = 0;
  outcome.bytes_freed = 0;
  outcome.noted_events = 0;
  outcome.noted_completions = 0;
}

Counter& CompletionDispatcher::CounterFor(JobStatus status) {
  switch (status) {
    case JobStatus::kProcessedOk:
      return counters_.processed_ok;
    case JobStatus::kProcessedError:
      return counters_.processed_error;
    case JobStatus::kExpired:
      return counters_.expired;
    default:
      return counters_.batch_failed;
  }
}

void CompletionDispatcher::RecordRoundTrips(
    const std::vector<Completion>& completions) {
  const absl::Time now = absl::Now();
  for (const Completion& c : completions) {
    if (c.sent == absl::InfinitePast()) continue;
    counters_.round_trip[c.result.priority].Record(now - c.sent);
  }
}

// Waiters get their result here, counted as they take it; a waiter that
// gave up already got its BATCH_FAILED answer, so its result is late and
// counted only as late. Jobs with callbacks are tallied and counted once per
// status, before any callback runs.
void CompletionDispatcher::Count(std::vector<Completion>& completions,
                                 std::vector<JobResult>& late) {
  // Consecutive jobs mostly share a status: one Add per run of them.
  Counter* run = nullptr;
  uint64_t run_length = 0;
  for (Completion& c : completions) {
    if (c.sink.waiter) {
      if (!c.sink.waiter->Deliver(c.result, CounterFor(c.result.status))) {
        late.push_back(std::move(c.result));
      }
      continue;
    }
    Counter* counter = &CounterFor(c.result.status);
    if (counter != run) {
      if (run != nullptr) run->Add(run_length);
      run = counter;
      run_length = 0;
    }
    ++run_length;
  }
  if (run != nullptr) run->Add(run_length);
}

void CompletionDispatcher::Call(Completion& c) {
  if (c.sink.waiter) return;  // Delivered by Count.
  try {
    c.sink.callback(c.result);
  } catch (const std::exception& e) {
    uint64_t held_back = 0;
    if (callback_log_.Allow(held_back)) {
      log::Error("submitter", "a job callback threw: ", e.what(), " (and ", held_back,
                 " more since the last report)");
    }
  } catch (...) {
    uint64_t held_back = 0;
    if (callback_log_.Allow(held_back)) {
      log::Error("submitter", "a job callback threw a non-standard exception (and ",
                 held_back, " more since the last report)");
    }
  }
}

void CompletionDispatcher::DeliverEvents(std::vector<EventDelivery>& events) {
  // Counted before the callbacks run, as completions are.
  uint64_t delivered = 0;
  for (const EventDelivery& e : events) delivered += e.callback ? 1 : 0;
  if (delivered > 0) counters_.events.Add(delivered);
  for (EventDelivery& e : events) {
    if (!e.callback) continue;  // Kept for the status book only.
    try {
      e.callback(e.event);
    } catch (...) {
      uint64_t held_back = 0;
      if (callback_log_.Allow(held_back)) {
        log::Error("submitter", "a job event callback threw (and ", held_back,
                   " more since the last report)");
      }
    }
  }
  events.clear();
}

void CompletionDispatcher::ReportLate(std::vector<JobResult>& late) {
  if (late.empty()) return;
  counters_.late_results.Add(late.size());
  Submitter::LateResultHook hook;
  {
    MutexLock lock(&hook_mu_);
    hook = hook_;
  }
  if (hook) {
    for (const JobResult& r : late) {
      try {
        hook(r);
      } catch (...) {
        uint64_t held_back = 0;
        if (hook_log_.Allow(held_back)) {
          log::Error("submitter", "the late-result hook threw (and ", held_back,
                     " more times since the last report)");
        }
      }
    }
  }
  late.clear();
}

}  // namespace batchbus

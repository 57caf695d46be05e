#include "completions.h"

#include <exception>
#include <utility>

#include "log.h"

namespace batchbus {

bool ResultWaiter::Deliver(const JobResult& result) {
  MutexLock lock(&mu_);
  if (abandoned_) return false;
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
  // Counted once per run, not per job.
  if (!outcome.events.empty()) DeliverEvents(outcome.events);
  PerStatus tally{};
  if (!outcome.completions.empty()) RecordRoundTrips(outcome.completions);
  for (Completion& c : outcome.completions) Deliver(c, tally, outcome.late);
  outcome.completions.clear();
  if (tally.ok > 0) counters_.processed_ok.Add(tally.ok);
  if (tally.error > 0) counters_.processed_error.Add(tally.error);
  if (tally.failed > 0) counters_.batch_failed.Add(tally.failed);
  if (tally.expired > 0) counters_.expired.Add(tally.expired);
  ReportLate(outcome.late);
  outcome.jobs_freed = 0;
  outcome.bytes_freed = 0;
  outcome.noted_events = 0;
  outcome.noted_completions = 0;
}

void CompletionDispatcher::RecordRoundTrips(
    const std::vector<Completion>& completions) {
  const absl::Time now = absl::Now();
  for (const Completion& c : completions) {
    if (c.sent == absl::InfinitePast()) continue;
    counters_.round_trip[c.result.priority].Record(now - c.sent);
  }
}

void CompletionDispatcher::Deliver(Completion& c, PerStatus& tally,
                                   std::vector<JobResult>& late) {
  if (c.sink.waiter) {
    // A caller that gave up already got its BATCH_FAILED answer: this
    // result is late, and counted only as late.
    if (!c.sink.waiter->Deliver(c.result)) {
      late.push_back(std::move(c.result));
      return;
    }
  }
  switch (c.result.status) {
    case JobStatus::kProcessedOk:
      ++tally.ok;
      break;
    case JobStatus::kProcessedError:
      ++tally.error;
      break;
    case JobStatus::kExpired:
      ++tally.expired;
      break;
    default:
      ++tally.failed;
      break;
  }
  if (c.sink.waiter) return;
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
  uint64_t delivered = 0;
  for (EventDelivery& e : events) {
    if (!e.callback) continue;  // Kept for the status book only.
    ++delivered;
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
  if (delivered > 0) counters_.events.Add(delivered);
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

// Completion dispatcher: hands each job's terminal result to where it goes
// (the user's callback, or a SubmitAndWait caller), passes late results to
// the late-result hook, keeps exceptions from escaping either, and counts
// results by status. The one place where results are counted.
//
// Threads: Run() is called outside the Submitter's state lock, by whichever
// thread ended the jobs (usually the internal thread; a Submit or Close
// caller when a batch could not be sent). SetLateHook() from any thread.
// Locks: `hook_mu_` guards the hook only; it is taken once per Run that has
// late results, never per job.
#ifndef BATCHBUS_LIB_COMPLETIONS_H_
#define BATCHBUS_LIB_COMPLETIONS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "batchbus/submitter.h"
#include "log_throttle.h"
#include "mutex.h"
#include "submitter_counters.h"

namespace batchbus {

// A SubmitAndWait caller's mailbox. The caller may give up; a result that
// arrives after that is late.
class ResultWaiter {
 public:
  // False when the caller already gave up (the result is then late).
  // Otherwise `counted` is added to before the caller wakes, so the
  // caller's own job is in the stats it reads next.
  bool Deliver(const JobResult& result, Counter& counted);
  // The result, or nullopt when `timeout` passed first; from then on the
  // waiter counts as abandoned.
  std::optional<JobResult> WaitFor(absl::Duration timeout);

 private:
  Mutex mu_;
  CondVar cv_;
  std::optional<JobResult> result_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

// Where one job's terminal result goes: `callback`, or `waiter` when set;
// its events go to `events`, when set (behind a pointer: most jobs have
// none, and every in-flight job carries a sink).
struct ResultSink {
  Submitter::Callback callback;
  std::shared_ptr<ResultWaiter> waiter;
  std::unique_ptr<Submitter::EventCallback> events;
};

struct Completion {
  ResultSink sink;
  JobResult result;
  // When its batch was sent (InfinitePast: never), for the round-trip
  // histogram.
  absl::Time sent = absl::InfinitePast();
};

struct EventDelivery {
  Submitter::EventCallback callback;
  JobEvent event;
};

// What one step of the job ledger ended: events of jobs still running
// (handed out before any completion, so each comes before its job's
// result), results to hand out (each job's one terminal result), answers
// that came for jobs already ended, and the in-flight room the ended jobs
// held.
struct Outcome {
  std::vector<EventDelivery> events;
  std::vector<Completion> completions;
  std::vector<JobResult> late;
  uint64_t jobs_freed = 0;
  uint64_t bytes_freed = 0;
  // Events and completions already noted in the status book.
  size_t noted_events = 0;
  size_t noted_completions = 0;

  bool empty() const {
    return events.empty() && completions.empty() && late.empty();
  }
};

class CompletionDispatcher {
 public:
  explicit CompletionDispatcher(SubmitterCounters& counters)
      : counters_(counters) {}

  void SetLateHook(Submitter::LateResultHook hook);

  // Counts and hands out everything in `outcome`, then clears it (keeping
  // its capacity). Every job is counted before any callback runs, so a
  // callback that reads the stats sees its own job. A callback or hook that
  // throws is skipped, and logged at most once a second.
  void Run(Outcome& outcome);

 private:
  Counter& CounterFor(JobStatus status);
  void DeliverEvents(std::vector<EventDelivery>& events);
  void RecordRoundTrips(const std::vector<Completion>& completions);
  void Count(std::vector<Completion>& completions,
             std::vector<JobResult>& late);
  void Call(Completion& completion);
  void ReportLate(std::vector<JobResult>& late);

  SubmitterCounters& counters_;
  LogThrottle callback_log_;
  LogThrottle hook_log_;
  Mutex hook_mu_;
  Submitter::LateResultHook hook_ ABSL_GUARDED_BY(hook_mu_);
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_COMPLETIONS_H_

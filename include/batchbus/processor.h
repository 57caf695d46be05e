// batchbus/processor.h — hands out jobs in strict priority order and sends
// their results back to the submitters that asked.
//
// A Processor runs inside a worker application named by `processor` (e.g.
// "payments"). It consumes that application's job topics in its consumer
// group (the realtime topic through a consumer of its own, in the group
// "<group>.realtime"), so several processor instances share the partitions,
// and
// hands out jobs one by one: whenever a realtime job is available it comes
// before any normal or slow job (also one that arrives while a slow batch is
// half handed out), and normal before slow. Low priorities are prefetched
// only up to Config::prefetch_jobs decoded jobs.
//
// Delivery is at least once. A batch's offset is committed only after every
// job in it has been answered and the results were acknowledged by the
// broker; a processor that stops or dies mid-batch hands the batch to the
// next owner of its partition, which processes it again. Handlers must
// therefore be idempotent: check whether the work was already done before
// doing it.
//
// Lifecycle: a job whose deadline (Job::deadline, less
// Config::deadline_skew) has passed when a worker would take it is not
// handed out: it ends EXPIRED at its submitter, which may resubmit it. A
// group's validator (SetValidator) refuses bad job data the same way, with
// PROCESSED_ERROR. A submitter that asked for events gets a `started` event
// at hand-out and each Task::Progress, always before the result.
//
// A malformed message on a job topic never stops the processor: it is
// counted, logged once with its topic/partition/offset, copied to the dead
// letter topic, and passed. So are results that cannot be delivered to the
// reply address their batch names (a partition or topic that does not
// exist, one the processor may not write to): after bounded retries they
// are copied to the dead letter topic, counted in
// Stats::results_dead_lettered, and their batches are committed.
//
// Thread-safety: every method is safe from any thread; several worker
// threads may call Next() at once. Shutdown() is async-signal-safe.
//
// Lifetime: Close() waits for handed-out Tasks to be answered; the
// destructor calls Close(config.close_timeout). A Task answered after Close()
// returned (or after the Processor was destroyed) gets FailedPrecondition,
// and its batch is processed again by the partition's next owner.
#ifndef BATCHBUS_PROCESSOR_H_
#define BATCHBUS_PROCESSOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "batchbus/job.h"

namespace batchbus {

class Processor;

// One job handed out by Processor::Next(). Answer it exactly once with
// Complete() or Fail(); Progress() may come before. A Task destroyed unanswered is failed with
// "handler returned without answering the job". Move-only. The string views
// stay valid for the Task's lifetime.
class Task {
 public:
  Task() = default;
  Task(Task&& other) noexcept;
  Task& operator=(Task&& other) noexcept;
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task();

  const JobId& id() const;
  std::string_view processor() const;
  std::string_view group() const;
  Priority priority() const;
  // The job's data as raw JSON text, exactly as submitted.
  std::string_view data() const;
  // Which delivery of the job this is, from 1.
  uint32_t attempt() const;
  // The job's deadline (Job::deadline), InfiniteFuture when it has none.
  // A handler passes the time left to the calls it makes upstream.
  absl::Time deadline() const;
  // The job's W3C trace context (Job::traceparent, Job::tracestate); empty
  // when it has none. A handler starts its span as a child of it.
  std::string_view traceparent() const;
  std::string_view tracestate() const;

  // Reports progress, any JSON value, to the submitter's event callback
  // (Submitter::Submit with an EventCallback). Sent with the results,
  // always before the job's result. OK and nothing sent when the submitter
  // did not ask for events; InvalidArgument when `json` is not valid JSON
  // or too large for a message; FailedPrecondition once answered.
  absl::Status Progress(std::string_view json);

  // PROCESSED_OK with `result_json` (any JSON value). InvalidArgument when
  // it is not valid JSON (the task stays open); FailedPrecondition when
  // already answered.
  absl::Status Complete(std::string_view result_json = "null");
  // PROCESSED_ERROR with `error` as the message: final, never retried.
  absl::Status Fail(std::string_view error);
  // Ends this attempt as retriable: the job is delivered again, as attempt
  // attempt()+1, after `delay` (by default the group's exponential backoff
  // with jitter, Config::RetryFor). The job is written back to Kafka before
  // its batch is committed, so a retry survives a processor crash. When no
  // retry may follow (the last attempt, a deadline or the submitter's
  // timeout would pass first, a version-1 submitter) the job ends
  // PROCESSED_ERROR with `reason` instead, and after its last attempt it is
  // also copied to the dead letter topic. FailedPrecondition when already
  // answered.
  absl::Status Retry(std::string_view reason,
                     absl::Duration delay = absl::InfiniteDuration());

  bool answered() const;
  explicit operator bool() const { return state_ != nullptr; }

  struct State;

 private:
  friend class ProcessorCore;
  explicit Task(State* state) : state_(state) {}
  void Reset();
  State* state_ = nullptr;
};

class Processor {
 public:
  // Called for each job of its group; answer with task.Complete / task.Fail.
  // An exception escaping a handler fails the job with its what().
  using Handler = std::function<void(Task& task)>;

  struct Stats {
    uint64_t handed_out = 0;       // Jobs returned by Next().
    uint64_t processed_ok = 0;
    uint64_t processed_error = 0;
    uint64_t batches_received = 0;
    uint64_t batches_committed = 0;
    uint64_t malformed_messages = 0;  // Sent to the dead letter topic.
    uint64_t result_messages = 0;     // Acknowledged by the broker.
    uint64_t unknown_group = 0;       // Run() had no handler.
    // Jobs ended EXPIRED, not handed out: their deadline had passed.
    uint64_t expired = 0;
    // Jobs ended PROCESSED_ERROR by their group's validator, not handed out.
    uint64_t invalid = 0;
    // Attempts ended with Task::Retry that were scheduled again.
    uint64_t retried = 0;
    // Jobs that came before their Job::not_before, sent to wait.
    uint64_t delayed = 0;
    // Jobs sent to wait for their slot: their group was paused
    // (PauseGroup) or at its max_rate (Config::group_max_rate).
    uint64_t held = 0;
    // Jobs that ended failed after their last attempt (or, with
    // Config::dead_letter_failed_jobs, any failed job), copied to the dead
    // letter topic.
    uint64_t jobs_dead_lettered = 0;
    // Result messages that could not be delivered (their reply address
    // does not exist, or they kept failing), copied to the dead letter
    // topic instead; their batches are committed.
    uint64_t results_dead_lettered = 0;
    // Times Next() held a normal or slow job back for realtime pacing
    // (Config::realtime_pacing).
    uint64_t paced = 0;
    // Pacing trials started, and given up because cutting did not help.
    uint64_t pacing_trials = 0;
    uint64_t pacing_gave_up = 0;
    // Normal and slow jobs/s that pacing allows now; 0 while it holds
    // nothing back.
    double pacing_rate = 0;
    // Normal and slow jobs/s taken, measured while pacing held nothing
    // back (what a cut is bounded by); 0 without realtime traffic.
    double pacing_drain_rate = 0;
  };

  // Checks a job's data before it is handed out; a job it refuses ends
  // PROCESSED_ERROR ("invalid job data: <its message>") and no handler sees
  // it. Runs on the thread calling Next(), outside the processor's locks.
  using Validator = std::function<absl::Status(std::string_view data)>;

  // Joins the consumer groups "{namespace}.{processor}" (normal and slow
  // topics) and "{namespace}.{processor}.realtime" (realtime topic).
  static absl::StatusOr<std::unique_ptr<Processor>> Create(
      Config config, std::string processor);

  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // The next job, highest priority first. DeadlineExceeded when none came
  // within `timeout`; Cancelled once Shutdown() was requested (jobs not yet
  // handed out are left for the next owner of their partition).
  absl::StatusOr<Task> Next(absl::Duration timeout);

  // Loops over Next() until Shutdown(), calling the handler of each job's
  // group. A job with no handler for its group ends PROCESSED_ERROR
  // ("no handler for group 'x'"). Returns OK after a requested shutdown.
  absl::Status Run(const absl::flat_hash_map<std::string, Handler>& handlers);

  // Sets the validator of `group`'s jobs (replacing any). Call before the
  // first Next() or Run(): validators are read without a lock.
  void SetValidator(std::string group, Validator validator);

  // Holds `group`'s jobs for `duration` from now (zero or less: resumes it):
  // the ones taken meanwhile wait in the delay tiers, not in memory, and
  // other groups keep flowing. When the pause ends they come back at the
  // group's max_rate (Config::group_max_rate), all at once without one. A
  // job whose deadline or submitter's timeout comes first ends EXPIRED.
  // This instance only: each processor of a name is paused on its own.
  void PauseGroup(std::string_view group, absl::Duration duration);

  // Requests a graceful stop: Next() returns Cancelled, Run() returns.
  // Async-signal-safe; returns at once.
  void Shutdown();
  bool shutdown_requested() const;

  // Stops handing out jobs, waits up to `timeout` for handed-out jobs to be
  // answered and their results acknowledged, commits, and leaves the group.
  // Bounded even with the broker gone. Idempotent.
  absl::Status Close(absl::Duration timeout);

  Stats GetStats() const;
  const std::string& name() const;

  struct Impl;

 private:
  friend class MetricsAccess;  // batchbus/metrics.h
  explicit Processor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace batchbus

#endif  // BATCHBUS_PROCESSOR_H_

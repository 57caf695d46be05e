// batchbus/submitter.h — collects jobs into batches and gets their results.
//
// A Submitter is created once per application (or per remote) and shared by
// all request handlers. Submit() appends a job to the open batch of its
// processor and priority; a batch is published to that processor's topic when
// it is full (jobs or bytes) or when its linger time passes. Realtime jobs go
// out at once as batches of one. Results come back on this instance's reply
// partition and are handed to each job's callback.
//
// Guarantees:
//  * Every job accepted by Submit (OK status) ends with exactly one terminal
//    JobResult: the processor's answer, BATCH_FAILED when no answer came
//    within its priority's batch_timeout or the batch could not be delivered,
//    or BATCH_FAILED when the submitter is closed first.
//  * A result arriving after its job ended is never delivered to the job's
//    callback; it is counted (Stats::late_results) and passed to the
//    late-result hook if one is set.
//  * Delivery to processors is at least once: a job may be processed more
//    than once, so handlers must be idempotent.
//
// Thread-safety: all methods are safe from any thread. Callbacks and hooks
// run on the submitter's internal thread: they must be quick and must not
// block or call Close(). They may call Submit() only with
// BackpressurePolicy::kFail semantics in mind (a full submitter would
// otherwise wait on itself).
//
// Lifetime: the destructor calls Close(config.close_timeout).
#ifndef BATCHBUS_SUBMITTER_H_
#define BATCHBUS_SUBMITTER_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "batchbus/job.h"

namespace batchbus {

class Submitter {
 public:
  using Callback = std::function<void(const JobResult&)>;
  using EventCallback = std::function<void(const JobEvent&)>;
  // Checks a job's data at Submit; a job it refuses is not submitted.
  using Validator = std::function<absl::Status(std::string_view data)>;
  using LateResultHook = std::function<void(const JobResult&)>;

  struct Stats {
    uint64_t submitted = 0;        // Accepted by Submit.
    uint64_t rejected = 0;         // Refused by Submit (bad input, full).
    uint64_t batches_sent = 0;     // Acknowledged by the broker.
    uint64_t processed_ok = 0;
    uint64_t processed_error = 0;
    uint64_t batch_failed = 0;     // Timed out, undeliverable or closed.
    uint64_t expired = 0;          // Not processed: deadline or timeout.
    uint64_t events = 0;           // Passed to event callbacks.
    uint64_t late_results = 0;     // Arrived after their job had ended.
    uint64_t foreign_results = 0;  // For other instances on our partition.
    uint64_t inflight_jobs = 0;
    uint64_t inflight_bytes = 0;
  };

  // Connects, creates missing topics when config.create_topics, and starts
  // the internal thread. Fails with InvalidArgument on a bad config and
  // Unavailable when the cluster cannot be reached.
  static absl::StatusOr<std::unique_ptr<Submitter>> Create(Config config);

  ~Submitter();
  Submitter(const Submitter&) = delete;
  Submitter& operator=(const Submitter&) = delete;

  // Queues `job`; `done` is called exactly once with its terminal result.
  // Returns InvalidArgument for an empty processor or group, invalid JSON
  // data, data its group's validator refuses, or a job too large for one
  // message; ResourceExhausted when the
  // in-flight limits stay full (see Config::backpressure);
  // InvalidArgument for a not_before after its deadline or after its
  // batch timeout; DeadlineExceeded for a deadline that already passed;
  // FailedPrecondition after Close. On error `done` is never called.
  // `job.id`, when zero, is set to a fresh random id.
  absl::Status Submit(Job& job, Callback done);
  absl::Status Submit(Job&& job, Callback done) { return Submit(job, done); }
  // Like Submit; `events` also gets the job's started and progress events
  // (JobEvent), on the internal thread, each before `done`.
  absl::Status Submit(Job& job, Callback done, EventCallback events);

  // Like Submit, with the result delivered through a future.
  absl::StatusOr<std::future<JobResult>> SubmitAsync(Job job);

  // Submits and blocks until the result or `timeout`. A job that is still
  // pending at `timeout` keeps running; this returns a BATCH_FAILED result
  // whose error says the wait timed out, and the job's real result, when it
  // comes, is counted as late and passed to the late-result hook. Submit
  // errors come back as the status.
  absl::StatusOr<JobResult> SubmitAndWait(Job job, absl::Duration timeout);

  // Sends every open batch now (does not wait for results).
  void Flush();

  // Sets the validator of `group`'s jobs (replacing any): Submit returns
  // InvalidArgument ("invalid job data: <its message>") for a job it
  // refuses. Runs on the submitting thread. Call before the first Submit:
  // validators are read without a lock.
  void SetValidator(std::string group, Validator validator);

  // Called with results that arrive after their job ended. Set before
  // submitting; runs on the internal thread.
  void SetLateResultHook(LateResultHook hook);

  // Stops accepting jobs, sends open batches, waits up to `timeout` for
  // outstanding results, ends the rest as BATCH_FAILED ("submitter closed"),
  // and stops the internal thread. Bounded even with the broker gone.
  // Idempotent; returns DeadlineExceeded when jobs had to be failed.
  absl::Status Close(absl::Duration timeout);

  // What this submitter knows of a job it submitted (status_retention_ms
  // above 0 keeps it; it then asks processors for every job's started and
  // progress events).
  struct JobState {
    enum Phase : uint8_t {
      kSubmitted,  // Batched or sent; no processor said it started.
      kStarted,    // A processor handed it out (attempt `attempt`).
      kProgress,   // Its handler reported `progress` (JSON).
      kEnded,      // It ended with `result`.
    };
    Phase phase = kSubmitted;
    uint32_t attempt = 0;
    std::string progress;  // The last progress, kept once ended.
    JobResult result;      // kEnded only (else just its job_id).
  };
  // The job's state; NotFound for a job this submitter does not hold or
  // has forgotten (status_retention after it ended); FailedPrecondition
  // when Config::status_retention is zero.
  absl::StatusOr<JobState> GetJobState(const JobId& id) const;

  Stats GetStats() const;
  // This instance's id, carried in every batch so results find their way
  // back.
  const std::string& instance_id() const;
  const Config& config() const;

  struct Impl;

 private:
  friend class MetricsAccess;  // batchbus/metrics.h
  explicit Submitter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace batchbus

#endif  // BATCHBUS_SUBMITTER_H_

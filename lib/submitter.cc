// Submitter: the public facade, the wiring of its parts, the internal I/O
// loop and the Close sequence. The parts:
//   admission.h    in-flight limits and back-pressure
//   batcher.h      open batches per (processor, priority) and sealing
//   job_ledger.h   jobs of sealed batches, timeouts, matching answers
//   publisher.h    producing batch messages, delivery reports
//   reply_reader.h this instance's reply partitions
//   completions.h  callbacks, the late-result hook, counting by status
//   status_book.h  job states for GetJobState (status_retention_ms)
//
// Threads: callers of Submit() and Flush() admit jobs and append them to
// open batches under `mu`, and publish the batches that fill up after
// releasing it. One internal thread publishes batches whose linger expired,
// serves delivery reports, reads results, expires batch timeouts and runs
// callbacks. Callbacks and librdkafka calls never run under `mu`.
// Locks: `mu` (the state lock) guards admission, batcher, ledger and the
// status book;
// `close_mu` makes concurrent Close calls wait for the first one.
#include "batchbus/submitter.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "admission.h"
#include "batcher.h"
#include "completions.h"
#include "job_ledger.h"
#include "lane.h"
#include "metrics_access.h"
#include "metrics_server.h"
#include "mutex.h"
#include "publisher.h"
#include "reply_reader.h"
#include "secrets.h"
#include "status_book.h"
#include "strcat.h"
#include "submitter_counters.h"
#include "wakeup.h"

namespace batchbus {
namespace {

using Messages = std::vector<std::unique_ptr<BatchMessage>>;

PerPriority<absl::Duration> BatchTimeouts(const Config& config) {
  PerPriority<absl::Duration> timeouts;
  for (Priority p : kAllPriorities) timeouts[p] = config.For(p).batch_timeout;
  return timeouts;
}

}  // namespace

struct Submitter::Impl final : private Publisher::Listener {
  explicit Impl(Config c)
      : config(std::move(c)),
        instance(JobId::Random().ToString()),
        header_bytes(BatchHeaderBytes(instance, config.ReplyTopic())),
        admission(Admission::LimitsOf(config)),
        batcher(config, instance, config.ReplyTopic()),
        ledger(BatchTimeouts(config),
               config.status_retention > absl::ZeroDuration()),
        status(config.status_retention),
        publisher(config, counters, this),
        replies(config, instance, counters) {}

  absl::Status Start();
  absl::Status Submit(Job& job, ResultSink sink);
  void Flush();
  void Seal(std::vector<SealedBatch>& sealed, Messages& out, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Release(Outcome& outcome) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void OnUnsent(uint64_t seq, std::string_view why) override;
  void OnAnswers(const std::vector<wire::ResultEntry>& answers);
  void IoLoop();
  void ReadReplies();
  absl::Time ExpireAndLinger(Messages& to_publish);
  absl::Status Close(absl::Duration timeout);
  void StopIo();

  const Config config;
  const std::string instance;
  const size_t header_bytes;  // Of every batch, without the processor name.
  SubmitterCounters counters;
  WakeupPipe wakeup;
  CompletionDispatcher completions{counters};

  // Set before the first Submit, then only read (SetValidator).
  absl::flat_hash_map<std::string, Submitter::Validator> validators;

  Mutex mu;
  Admission admission ABSL_GUARDED_BY(mu);
  Batcher batcher ABSL_GUARDED_BY(mu);
  JobLedger ledger ABSL_GUARDED_BY(mu);
  StatusBook status ABSL_GUARDED_BY(mu);  // Config::status_retention > 0.

  // After the state above: the publisher's reports reach it until the
  // publisher is closed or destroyed.
  Publisher publisher;
  ReplyReader replies;
  std::thread io_thread;
  std::atomic<bool> stop_io{false};
  Outcome io_outcome;  // Internal thread only.

  Mutex close_mu;
  bool close_done ABSL_GUARDED_BY(close_mu) = false;

  MetricsRegistration metrics;  // Config::metrics_port.
};

// ------------------------------------------------------------------ setup

absl::Status Submitter::Impl::Start() {
  if (!wakeup.ok()) return absl::InternalError("could not create a pipe");
  if (auto s = publisher.Start(wakeup.write_fd()); !s.ok()) return s;
  if (auto s = replies.Start(publisher.client(), wakeup.write_fd());
      !s.ok()) {
    return s;
  }
  {
    MutexLock lock(&mu);
    batcher.SetReplyPartitions(replies.partitions());
  }
  io_thread = std::thread([this] { IoLoop(); });
  return absl::OkStatus();
}

// ----------------------------------------------------------------- submit

absl::Status Submitter::Impl::Submit(Job& job, ResultSink sink) {
  absl::StatusOr<size_t> job_size =
      CheckJob(job,
               JobFieldsOf(job, sink.events != nullptr ||
                                    config.status_retention > absl::ZeroDuration()),
               config.max_message_bytes, header_bytes);
  if (job_size.ok() && !validators.empty()) {
    if (auto it = validators.find(ToAbsl(job.group)); it != validators.end()) {
      if (absl::Status valid = it->second(job.data); !valid.ok()) {
        job_size = absl::InvalidArgumentError(
            StrCat("invalid job data: ", FromAbsl(valid.message())));
      }
    }
  }
  if (job_size.ok() && (job.deadline != absl::InfiniteFuture() ||
                        job.not_before != absl::InfinitePast())) {
    if (absl::Status s =
            CheckTiming(job, config.For(job.priority).batch_timeout, absl::Now());
        !s.ok()) {
      job_size = s;
    }
  }
  if (!job_size.ok()) {
    counters.rejected.Add();
    return job_size.status();
  }
  if (job.id.IsZero()) job.id = JobId::Random();
  std::vector<SealedBatch> sealed;
  Messages to_publish;
  bool wake_io = false;
  {
    MutexLock lock(&mu);
    if (absl::Status s = admission.Admit(*job_size, mu); !s.ok()) {
      counters.rejected.Add();
      return s;
    }
    const absl::Time now = absl::Now();
    if (config.status_retention > absl::ZeroDuration()) status.Submitted(job.id);
    wake_io = batcher.Add(job, *job_size, std::move(sink), now, sealed);
    if (!sealed.empty()) Seal(sealed, to_publish, now);
  }
  counters.submitted.Add();
  job.status = JobStatus::kSubmitted;
  if (wake_io) wakeup.Notify();
  publisher.Publish(to_publish);
  return absl::OkStatus();
}

// Hands the jobs of sealed batches to the ledger and their messages to `out`.
void Submitter::Impl::Seal(std::vector<SealedBatch>& sealed, Messages& out,
                           absl::Time now) {
  for (SealedBatch& batch : sealed) {
    batch.message->acknowledged = std::make_shared<std::atomic<bool>>(false);
    ledger.Track(batch.message->seq, batch.message->topic,
                 std::move(batch.jobs), now, batch.message->acknowledged);
    out.push_back(std::move(batch.message));
  }
  sealed.clear();
}

void Submitter::Impl::Flush() {
  std::vector<SealedBatch> sealed;
  Messages to_publish;
  {
    MutexLock lock(&mu);
    batcher.SealAll(sealed);
    Seal(sealed, to_publish, absl::Now());
  }
  publisher.Publish(to_publish);
}

// Gives back the room of the jobs `outcome` ended.
// Notes what it ended and reported in the status book, when kept.
void Submitter::Impl::Release(Outcome& outcome) {
  admission.Release(outcome.jobs_freed, outcome.bytes_freed);
  outcome.jobs_freed = 0;
  outcome.bytes_freed = 0;
  if (config.status_retention <= absl::ZeroDuration()) return;
  const absl::Time now = absl::Now();
  for (size_t i = outcome.noted_events; i < outcome.events.size(); ++i) {
    status.Event(outcome.events[i].event);
  }
  for (size_t i = outcome.noted_completions; i < outcome.completions.size(); ++i) {
    status.Ended(outcome.completions[i].result, now);
  }
  outcome.noted_events = outcome.events.size();
  outcome.noted_completions = outcome.completions.size();
  status.Forget(now);
}

// A batch that could not be sent ends its jobs now. Called by Publish (any
// thread) or by delivery reports (the internal thread, or Close).
void Submitter::Impl::OnUnsent(uint64_t seq, std::string_view why) {
  Outcome outcome;
  {
    MutexLock lock(&mu);
    ledger.FailBatch(seq, why, outcome);
    Release(outcome);
  }
  completions.Run(outcome);
}

// ---------------------------------------------------------------- io loop

void Submitter::Impl::OnAnswers(const std::vector<wire::ResultEntry>& answers) {
  MutexLock lock(&mu);
  ledger.Answer(answers, io_outcome);
  Release(io_outcome);
}

// Realtime results first; the others a message at a time (one may hold
// hundreds of results), checking for realtime results again in between.
void Submitter::Impl::ReadReplies() {
  auto on_answers = [this](const std::vector<wire::ResultEntry>& answers) {
    OnAnswers(answers);
  };
  bool more = true;
  while (more) {
    if (replies.separate_realtime()) {
      replies.Read(Lane::kRealtime, SIZE_MAX, 64, on_answers);
    }
    more = replies.Read(Lane::kBulk, 1, 1, on_answers);
    completions.Run(io_outcome);
  }
}

// Ends timed-out batches and seals lingering ones; returns when the next
// timeout or linger is due.
absl::Time Submitter::Impl::ExpireAndLinger(Messages& to_publish) {
  const absl::Time now = absl::Now();
  std::vector<SealedBatch> sealed;
  MutexLock lock(&mu);
  const absl::Time next_timeout = ledger.Expire(now, io_outcome);
  Release(io_outcome);
  const absl::Time next_linger = batcher.SealExpired(now, sealed);
  Seal(sealed, to_publish, now);
  return std::min(next_timeout, next_linger);
}

void Submitter::Impl::IoLoop() {
  Messages to_publish;
  while (!stop_io.load(std::memory_order_acquire)) {
    publisher.Poll();  // Delivery reports.
    replies.Poll();    // Consumer errors and logs.
    ReadReplies();
    const absl::Time next_wake = std::min(ExpireAndLinger(to_publish),
                                          absl::Now() + absl::Milliseconds(100));
    publisher.Publish(to_publish);
    completions.Run(io_outcome);
    const absl::Time now = absl::Now();
    if (next_wake > now) wakeup.Wait(next_wake - now);
  }
}

// --------------------------------------------------------------- shutdown

void Submitter::Impl::StopIo() {
  stop_io.store(true, std::memory_order_release);
  wakeup.Notify();
  if (io_thread.joinable()) io_thread.join();
}

absl::Status Submitter::Impl::Close(absl::Duration timeout) {
  MutexLock close_lock(&close_mu);
  if (close_done) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + timeout;
  // Refuse new jobs, send what is batched, wait for results.
  std::vector<SealedBatch> sealed;
  Messages to_publish;
  {
    MutexLock lock(&mu);
    admission.Close();
    batcher.SealAll(sealed);
    Seal(sealed, to_publish, absl::Now());
  }
  publisher.Publish(to_publish);
  {
    MutexLock lock(&mu);
    admission.WaitIdle(mu, deadline);
  }
  StopIo();
  // Fail what is left, then stop the clients within what is left of the
  // bound. Reports of purged batches find their jobs already ended.
  Outcome outcome;
  size_t failed = 0;
  {
    MutexLock lock(&mu);
    failed = ledger.FailAll("submitter closed before the result arrived",
                            outcome);
    Release(outcome);
  }
  completions.Run(outcome);
  publisher.Close(deadline);
  replies.Close(deadline);
  close_done = true;
  if (failed > 0) {
    return absl::DeadlineExceededError(StrCat(
        failed, " job(s) had no result when the submitter closed; they were "
                "ended as BATCH_FAILED"));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------- public API

absl::StatusOr<std::unique_ptr<Submitter>> Submitter::Create(Config config) {
  RememberSecrets(config);
  if (auto s = config.Validate(); !s.ok()) return Scrub(s);
  if (config.log_level) SetLogLevel(*config.log_level);
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto s = impl->Start(); !s.ok()) {
    impl->StopIo();
    return Scrub(s);
  }
  std::unique_ptr<Submitter> submitter(new Submitter(std::move(impl)));
  const Config& c = submitter->impl_->config;
  if (c.metrics_port > 0) {
    absl::StatusOr<MetricsRegistration> metrics = RegisterMetrics(
        c.metrics_address, c.metrics_port,
        [s = submitter.get()](MetricsWriter& w) { MetricsAccess::Collect(*s, w); });
    if (!metrics.ok()) return metrics.status();  // Closes the submitter.
    submitter->impl_->metrics = *std::move(metrics);
  }
  return submitter;
}

Submitter::Submitter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Submitter::~Submitter() {
  if (!impl_) return;
  impl_->metrics.Reset();  // No scrape reaches a submitter being destroyed.
  (void)impl_->Close(impl_->config.close_timeout);
}

absl::Status Submitter::Submit(Job& job, Callback done) {
  if (!done) {
    impl_->counters.rejected.Add();
    return absl::InvalidArgumentError("Submit needs a callback");
  }
  return impl_->Submit(job, ResultSink{std::move(done), nullptr});
}

absl::Status Submitter::Submit(Job& job, Callback done, EventCallback events) {
  if (!done) {
    impl_->counters.rejected.Add();
    return absl::InvalidArgumentError("Submit needs a callback");
  }
  return impl_->Submit(
      job, ResultSink{std::move(done), nullptr,
                      events ? std::make_unique<EventCallback>(std::move(events))
                             : nullptr});
}

absl::StatusOr<Submitter::JobState> Submitter::GetJobState(const JobId& id) const {
  if (impl_->config.status_retention <= absl::ZeroDuration()) {
    return absl::FailedPreconditionError(
        "job states are not kept: set status_retention_ms above 0");
  }
  std::optional<JobState> state;
  {
    MutexLock lock(&impl_->mu);
    impl_->status.Forget(absl::Now());
    state = impl_->status.Find(id);
  }
  if (!state) {
    return absl::NotFoundError(StrCat("job ", id.ToString(),
                                      " is not held by this submitter (never "
                                      "submitted here, or forgotten after "
                                      "status_retention_ms)"));
  }
  return *std::move(state);
}

void Submitter::SetValidator(std::string group, Validator validator) {
  impl_->validators[std::move(group)] = std::move(validator);
}

absl::StatusOr<std::future<JobResult>> Submitter::SubmitAsync(Job job) {
  auto promise = std::make_shared<std::promise<JobResult>>();
  std::future<JobResult> future = promise->get_future();
  absl::Status s = Submit(job, [promise](const JobResult& r) {
    promise->set_value(r);
  });
  if (!s.ok()) return s;
  return future;
}

absl::StatusOr<JobResult> Submitter::SubmitAndWait(Job job,
                                                   absl::Duration timeout) {
  auto waiter = std::make_shared<ResultWaiter>();
  absl::Status s = impl_->Submit(job, ResultSink{nullptr, waiter});
  if (!s.ok()) return s;
  if (std::optional<JobResult> r = waiter->WaitFor(timeout)) {
    return std::move(*r);
  }
  // The job goes on; its result, when it comes, is late.
  JobResult r;
  r.job_id = job.id;
  r.status = JobStatus::kBatchFailed;
  r.priority = job.priority;
  r.error = StrCat("SubmitAndWait gave up after ",
                   absl::FormatDuration(timeout),
                   "; the job is still pending");
  return r;
}

void Submitter::Flush() { impl_->Flush(); }

void Submitter::SetLateResultHook(LateResultHook hook) {
  impl_->completions.SetLateHook(std::move(hook));
}

absl::Status Submitter::Close(absl::Duration timeout) {
  return impl_->Close(timeout);
}

Submitter::Stats Submitter::GetStats() const {
  Stats s = impl_->counters.Snapshot();
  MutexLock lock(&impl_->mu);
  s.inflight_jobs = impl_->admission.jobs();
  s.inflight_bytes = impl_->admission.bytes();
  return s;
}

void MetricsAccess::Collect(const Submitter& submitter, MetricsWriter& w) {
  struct Field {
    const char* name;
    const char* help;
    uint64_t Submitter::Stats::*value;
  };
  static constexpr Field kCounters[] = {
      {"batchbus_submitter_submitted", "Jobs accepted by Submit.",
       &Submitter::Stats::submitted},
      {"batchbus_submitter_rejected", "Jobs refused by Submit (bad input, full).",
       &Submitter::Stats::rejected},
      {"batchbus_submitter_batches_sent", "Batches acknowledged by the broker.",
       &Submitter::Stats::batches_sent},
      {"batchbus_submitter_processed_ok", "Jobs that ended PROCESSED_OK.",
       &Submitter::Stats::processed_ok},
      {"batchbus_submitter_processed_error", "Jobs that ended PROCESSED_ERROR.",
       &Submitter::Stats::processed_error},
      {"batchbus_submitter_batch_failed",
       "Jobs that ended BATCH_FAILED (timed out, undeliverable or closed).",
       &Submitter::Stats::batch_failed},
      {"batchbus_submitter_expired",
       "Jobs that ended EXPIRED (not processed: deadline or timeout).",
       &Submitter::Stats::expired},
      {"batchbus_submitter_events", "Events passed to event callbacks.",
       &Submitter::Stats::events},
      {"batchbus_submitter_late_results",
       "Results that arrived after their job had ended.",
       &Submitter::Stats::late_results},
      {"batchbus_submitter_foreign_results",
       "Results for other submitter instances read on this one's partition.",
       &Submitter::Stats::foreign_results},
  };
  const Submitter::Stats s = submitter.GetStats();
  const MetricsWriter::Labels labels = {{"instance", submitter.instance_id()}};
  for (const Field& f : kCounters) w.Counter(f.name, f.help, labels, s.*f.value);
  w.Gauge("batchbus_submitter_inflight_jobs",
          "Jobs submitted and not ended yet.", labels,
          static_cast<double>(s.inflight_jobs));
  w.Gauge("batchbus_submitter_inflight_bytes",
          "Encoded bytes of the jobs in flight.", labels,
          static_cast<double>(s.inflight_bytes));
  for (Priority p : kAllPriorities) {
    w.Histogram("batchbus_submitter_round_trip_seconds",
                "From a batch's send to each of its jobs' terminal results.",
                {{"instance", submitter.instance_id()},
                 {"priority", PriorityName(p)}},
                submitter.impl_->counters.round_trip[p].Get());
  }
}

const std::string& Submitter::instance_id() const { return impl_->instance; }
const Config& Submitter::config() const { return impl_->config; }

}  // namespace batchbus

// The processor's core: what ties the parts of a Processor together. The
// facade (batchbus/processor.h) and every handed-out Task refer to it; it
// is deleted when the last of them lets go (Orphan(), Release()).
//
// Threads: one internal poller thread runs the Kafka side: rebalances,
// reading job messages while the scheduler has room, sealing lingering
// result messages, delivery reports and retries. Worker threads call Next()
// and answer Tasks. State shared between them is guarded by `mu_`; no
// librdkafka call and no log line happens under it on the per-job path.
//
// Files: processor.cc (setup, the poller, Next, Close, the facade),
// task.cc (answers and Task), batch_settlement.cc (assignment, deliveries,
// commits and dead-lettered results).
#ifndef BATCHBUS_LIB_PROCESSOR_CORE_H_
#define BATCHBUS_LIB_PROCESSOR_CORE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "batchbus/processor.h"
#include "delay_line.h"
#include "group_gate.h"
#include "histogram.h"
#include "in_batch.h"
#include "intake.h"
#include "job_consumers.h"
#include "log_throttle.h"
#include "mutex.h"
#include "offset_tracker.h"
#include "outbox.h"
#include "processor_counters.h"
#include "result_batcher.h"
#include "scheduler.h"
#include "wakeup.h"

namespace batchbus {

inline PerPriority<std::string> TopicsOf(const Config& config,
                                  const std::string& name) {
  PerPriority<std::string> topics;
  for (Priority p : kAllPriorities) topics[p] = config.TopicFor(name, p);
  return topics;
}

inline Scheduler::Options SchedulerOptions(const Config& config) {
  Scheduler::Options o;
  o.prefetch_jobs = config.prefetch_jobs;
  o.pacing = config.realtime_pacing;
  o.pacer.target = config.realtime_pacing_target;
  return o;
}

// Offsets to store once the state lock is released.
using Commits = std::vector<std::pair<PartitionKey, int64_t>>;

// Unix ms from which a job may no longer start: its deadline less `skew`,
// or the moment its submitter stops waiting, whichever comes first
// (INT64_MAX: neither).
inline int64_t LastStartMs(const wire::DecodedBatch& batch,
                           const wire::JobFields& fields, absl::Duration skew) {
  int64_t limit = fields.deadline_ms != 0
                      ? fields.deadline_ms - absl::ToInt64Milliseconds(skew)
                      : INT64_MAX;
  const int64_t expires =
      fields.expires_ms != 0 ? fields.expires_ms : batch.expires_ms;
  if (expires != 0) limit = std::min(limit, expires);
  return limit;
}

class ProcessorCore final : JobConsumers::Listener,
                            Outbox::Listener {
 public:
  ProcessorCore(Config config, std::string name)
      : config_(std::move(config)),
        name_(std::move(name)),
        topics_(TopicsOf(config_, name_)),
        intake_(name_, config_.DeadLetterTopicFor(name_)),
        scheduler_(SchedulerOptions(config_)),
        gate_(config_.group_max_rate),
        results_({config_.max_message_bytes, config_.result_max_bytes,
                  config_.result_linger}),
        outbox_(config_, this),
        consumers_(config_, name_, topics_, this),
        delay_line_(config_, name_, topics_) {}

  absl::Status Start();
  absl::StatusOr<Task> Next(absl::Duration timeout);
  absl::Status Answer(Task::State* state, bool ok, std::string_view text);
  absl::Status Progress(Task::State* state, std::string_view json);
  // Task::Retry: the job comes back after `delay` (InfiniteDuration: the
  // group's backoff), or ends failed when it may not (retry.cc).
  absl::Status Retry(Task::State* state, std::string_view reason,
                     absl::Duration delay);
  void PauseGroup(std::string_view group, absl::Duration duration) {
    MutexLock lock(&mu_);
    gate_.Pause(group, absl::Now() + duration);
  }
  void SetValidator(std::string group, Processor::Validator validator) {
    validators_[std::move(group)] = std::move(validator);
  }
  // `last`: the caller must delete the core (see Orphan()).
  bool Release(Task::State* state, bool& last);
  // The facade lets go of the core after Close. True when no Task is out,
  // and the caller deletes it; else the last Task to go does.
  bool Orphan() {
    MutexLock lock(&mu_);
    orphaned_ = true;
    return tasks_out_ == 0;
  }
  bool Answered(const Task::State* state) {
    MutexLock lock(&mu_);
    return state->answered;
  }
  absl::Status Close(absl::Duration timeout);
  void Shutdown() {
    shutdown_.store(true, std::memory_order_release);
    wakeup_.Notify();
  }
  bool shutdown_requested() const {
    return shutdown_.load(std::memory_order_acquire);
  }
  void CountUnknownGroup(std::string_view group);
  Processor::Stats Stats();
  const std::string& name() const { return name_; }
  const Config& config() const { return config_; }

 private:
  // JobConsumers::Listener (poller thread, and Close).
  void OnAssigned(PartitionKey partition) override;
  void OnRevoked(PartitionKey partition) override;
  void OnStray(Priority p, kafka::MessagePtr msg) override { Accept(p, std::move(msg)); }
  // Outbox::Listener.
  void OnSent(std::unique_ptr<OutMessage> msg) override;
  void OnUndeliverable(std::unique_ptr<OutMessage> msg, Outbox::Failure failure,
                       std::string why) override;

  void PollerLoop();
  // The next job to hand out, waiting until `deadline` (set from `timeout`
  // when the wait begins). Jobs past their deadline end EXPIRED on the way.
  absl::StatusOr<Task::State*> Take(absl::Duration timeout,
                                    absl::Time& deadline);
  // Ends EXPIRED a job that was picked but not handed out.
  void Expire(InBatch* batch, uint32_t index, int64_t deadline_ms,
              std::vector<std::unique_ptr<OutMessage>>& sealed,
              bool& opened) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireWith(InBatch* batch, uint32_t index, std::string_view why,
                  std::vector<std::unique_ptr<OutMessage>>& sealed,
                  bool& opened) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A picked job its group's gate holds: sent to wait for its slot, or
  // EXPIRED when the slot comes after its deadline or its submitter's
  // timeout. False when it may go now.
  bool Hold(InBatch* batch, uint32_t index, absl::Time now,
            std::vector<std::unique_ptr<OutMessage>>& sealed, bool& opened)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK while `state`'s job may still be answered (or retried).
  absl::Status Answerable(const Task::State& state) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // From the job's hand-out to `now`, into its group's histogram.
  void RecordHandlerTime(const Task::State& state, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the group's validator; a refused job is answered here (false).
  bool Admit(Task& task);
  // Job `index` of `batch` as a one-job batch with `fields`, sent to the
  // delay tier for `due`; the job counts as answered once it is written.
  std::unique_ptr<OutMessage> Forward(InBatch* batch, uint32_t index,
                                      wire::JobFields fields, absl::Time due,
                                      absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A dead-letter copy of a job that ended failed; its batch waits for it.
  std::unique_ptr<OutMessage> FailedJobCopy(InBatch* batch, uint32_t index,
                                            std::string_view reason,
                                            int64_t first_attempt_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReadPriority(Priority p);
  void Accept(Priority p, kafka::MessagePtr msg);
  void DeadLetterResults(std::unique_ptr<OutMessage> msg, std::string why);
  // Counts the batches a message acknowledged as acknowledged.
  void Acknowledge(const OutMessage& msg, Commits& commits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits a batch that is done, and frees one that nothing refers to.
  void Settle(InBatch* batch, Commits& commits) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Store(const Commits& commits);
  void Send(std::vector<std::unique_ptr<OutMessage>>& messages);
  std::optional<Pacer::Decision> PacingToLog(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LogPacing(const Pacer::Decision& decision);
  friend class MetricsAccess;

  const Config config_;
  const std::string name_;
  const PerPriority<std::string> topics_;
  // Set before the first Next(), then only read (SetValidator).
  absl::flat_hash_map<std::string, Processor::Validator> validators_;
  WakeupPipe wakeup_;
  Intake intake_;  // Poller thread only.
  ProcessorCounters counters_;
  LogThrottle malformed_log_, dead_letter_log_;
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> stop_poller_{false};

  Mutex mu_;
  CondVar ready_cv_;  // Next() waiters.
  CondVar done_cv_;   // Close() waiting for answers and deliveries.
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  GroupGate gate_ ABSL_GUARDED_BY(mu_);
  ResultBatcher results_ ABSL_GUARDED_BY(mu_);
  OffsetTracker offsets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::unique_ptr<InBatch>> batches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<PartitionKey> assigned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> warned_groups_ ABSL_GUARDED_BY(mu_);
  // Handler time per group (metrics).
  absl::flat_hash_map<std::string, std::unique_ptr<Histogram>> handler_time_
      ABSL_GUARDED_BY(mu_);
  std::string last_handler_group_ ABSL_GUARDED_BY(mu_);
  Histogram* last_handler_time_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t outstanding_answers_ ABSL_GUARDED_BY(mu_) = 0;  // Handed, unanswered.
  size_t unsent_ ABSL_GUARDED_BY(mu_) = 0;  // Sealed, not yet in the outbox.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // Answers are refused.
  size_t tasks_out_ ABSL_GUARDED_BY(mu_) = 0;   // Task objects handed out.
  bool orphaned_ ABSL_GUARDED_BY(mu_) = false;  // The facade let go.
  uint64_t logged_decisions_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_pacing_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  Mutex close_mu_;  // Serializes Close() calls.
  bool close_done_ ABSL_GUARDED_BY(close_mu_) = false;

  // Last: destroyed first, so that no librdkafka callback reaches a field
  // that is already gone.
  Outbox outbox_;
  JobConsumers consumers_;
  DelayLine delay_line_;  // Poller thread, then Close.
  std::thread poller_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PROCESSOR_CORE_H_

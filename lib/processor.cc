// Processor: the core that ties its parts together, and the public facade.
//
// Parts (each in a file pair of its own): job_consumers (the two consumers
// and their assignment), intake (decoding, malformed messages), scheduler
// (ready jobs by priority, prefetch, pacing), result_batcher (result
// messages per submitter instance), outbox (producing results and
// dead-letter copies), offset_tracker (commits of done prefixes).
//
// Threads: one internal poller thread runs the Kafka side: rebalances,
// reading job messages while the scheduler has room, sealing lingering
// result messages, delivery reports and retries. Worker threads call Next()
// and answer Tasks. State shared between them is guarded by `mu_`; no
// librdkafka call and no log line happens under it on the per-job path.
//
// Lifetime: the core is shared by the facade and every handed-out Task, so
// a Task that outlives the Processor reaches a closed core, not freed state.
#include "batchbus/processor.h"

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "counter.h"
#include "in_batch.h"
#include "intake.h"
#include "job_consumers.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "log_throttle.h"
#include "mutex.h"
#include "offset_tracker.h"
#include "outbox.h"
#include "processor_counters.h"
#include "result_batcher.h"
#include "scheduler.h"
#include "strcat.h"
#include "wakeup.h"

namespace batchbus {

namespace {

PerPriority<std::string> TopicsOf(const Config& config,
                                  const std::string& name) {
  PerPriority<std::string> topics;
  for (Priority p : kAllPriorities) topics[p] = config.TopicFor(name, p);
  return topics;
}

Scheduler::Options SchedulerOptions(const Config& config) {
  Scheduler::Options o;
  o.prefetch_jobs = config.prefetch_jobs;
  o.pacing = config.realtime_pacing;
  o.pacer.target = config.realtime_pacing_target;
  return o;
}

// Offsets to store once the state lock is released.
using Commits = std::vector<std::pair<PartitionKey, int64_t>>;

}  // namespace

class ProcessorCore final : public std::enable_shared_from_this<ProcessorCore>,
                            JobConsumers::Listener,
                            Outbox::Listener {
 public:
  ProcessorCore(Config config, std::string name)
      : config_(std::move(config)),
        name_(std::move(name)),
        topics_(TopicsOf(config_, name_)),
        intake_(name_, config_.DeadLetterTopicFor(name_)),
        scheduler_(SchedulerOptions(config_)),
        results_({config_.max_message_bytes, config_.result_max_bytes,
                  config_.result_linger}),
        outbox_(config_, this),
        consumers_(config_, name_, topics_, this) {}

  absl::Status Start();
  absl::StatusOr<Task> Next(absl::Duration timeout);
  absl::Status Answer(Task::State* state, bool ok, std::string_view text);
  bool Release(Task::State* state);
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

  const Config config_;
  const std::string name_;
  const PerPriority<std::string> topics_;
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
  ResultBatcher results_ ABSL_GUARDED_BY(mu_);
  OffsetTracker offsets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::unique_ptr<InBatch>> batches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<PartitionKey> assigned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> warned_groups_ ABSL_GUARDED_BY(mu_);
  size_t outstanding_answers_ ABSL_GUARDED_BY(mu_) = 0;  // Handed, unanswered.
  size_t unsent_ ABSL_GUARDED_BY(mu_) = 0;  // Sealed, not yet in the outbox.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // Answers are refused.
  uint64_t logged_decisions_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_pacing_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  Mutex close_mu_;  // Serializes Close() calls.
  bool close_done_ ABSL_GUARDED_BY(close_mu_) = false;

  // Last: destroyed first, so that no librdkafka callback reaches a field
  // that is already gone.
  Outbox outbox_;
  JobConsumers consumers_;
  std::thread poller_;
};

// ------------------------------------------------------------------ setup

absl::Status ProcessorCore::Start() {
  if (!wakeup_.ok()) return absl::InternalError("could not create a pipe");
  if (auto s = outbox_.Start(wakeup_.write_fd()); !s.ok()) return s;
  std::vector<std::string> wanted(topics_.begin(), topics_.end());
  wanted.push_back(config_.DeadLetterTopicFor(name_));
  wanted.push_back(config_.ReplyTopic());
  if (auto s = kafka::EnsureTopics(outbox_.handle(), config_, wanted,
                                   absl::Seconds(15));
      !s.ok()) {
    return s;
  }
  if (auto s = consumers_.Start(wakeup_.write_fd()); !s.ok()) return s;
  poller_ = std::thread([this] { PollerLoop(); });
  log::Info("processor ", name_, " consuming ", topics_[Priority::kRealtime],
            ", ", topics_[Priority::kNormal], ", ", topics_[Priority::kSlow],
            " in group ", config_.GroupIdFor(name_));
  return absl::OkStatus();
}

// ----------------------------------------------------------------- poller

void ProcessorCore::PollerLoop() {
  while (!stop_poller_.load(std::memory_order_acquire)) {
    consumers_.PollEvents();
    absl::Time now = absl::Now();
    absl::Time next_wake = std::min(now + absl::Milliseconds(100), outbox_.Poll(now));
    bool busy = false;
    if (!shutdown_requested()) {
      for (Priority p : kAllPriorities) busy |= ReadPriority(p);
    }
    std::vector<std::unique_ptr<OutMessage>> sealed;
    std::optional<Pacer::Decision> pacing;
    {
      MutexLock lock(&mu_);
      next_wake = std::min(next_wake, results_.SealDue(now, sealed));
      unsent_ += sealed.size();
      pacing = PacingToLog(now);
    }
    Send(sealed);
    if (pacing) LogPacing(*pacing);
    if (busy) continue;
    now = absl::Now();
    if (next_wake > now) wakeup_.Wait(next_wake - now);
  }
}

// Reads what priority `p` may take now; true when it took something.
bool ProcessorCore::ReadPriority(Priority p) {
  {
    MutexLock lock(&mu_);
    if (!scheduler_.HasRoom(p)) return false;
  }
  // Realtime is drained; a lower priority takes one message (one batch) at
  // a time, so its prefetch bound is overshot by at most one batch.
  rd_kafka_message_t* msgs[64];
  const size_t n = consumers_.Read(p, msgs, p == Priority::kRealtime ? 64 : 1);
  for (size_t i = 0; i < n; ++i) Accept(p, kafka::MessagePtr(msgs[i]));
  return n > 0;
}

void ProcessorCore::Accept(Priority p, kafka::MessagePtr msg) {
  if (msg->err) {
    if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      log::Warning("processor ", name_, ": ", rd_kafka_message_errstr(msg.get()));
    }
    return;
  }
  // How late a realtime message is: the producer's timestamp to now.
  absl::Time arrived = absl::InfinitePast();
  absl::Duration delay;
  if (p == Priority::kRealtime) {
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(msg.get(), &type);
    if (ts >= 0) {
      arrived = absl::Now();
      delay = arrived - absl::FromUnixMillis(ts);
    }
  }
  const Intake::Message in{
      p, topics_[p], msg->partition, msg->offset,
      {static_cast<const char*>(msg->key), msg->key ? msg->key_len : 0},
      {static_cast<const char*>(msg->payload), msg->len}};
  absl::StatusOr<std::unique_ptr<InBatch>> batch = intake_.Decode(in);
  std::vector<std::unique_ptr<OutMessage>> copy;
  Commits commits;
  {
    MutexLock lock(&mu_);
    if (arrived != absl::InfinitePast()) scheduler_.OnRealtime(arrived, delay);
    const PartitionKey key{p, in.partition};
    if (!assigned_.contains(key)) return;  // Revoked while queued.
    if (!batch.ok()) {
      // Kept (with no jobs) until its copy is written, so that its offset
      // is committed only then.
      auto placeholder = std::make_unique<InBatch>();
      placeholder->priority = p;
      placeholder->partition = in.partition;
      placeholder->offset = in.offset;
      placeholder->dead_letter_pending = true;
      copy.push_back(intake_.DeadLetterCopy(in, FromAbsl(batch.status().message())));
      copy.back()->kind = OutMessage::Kind::kMalformedCopy;
      copy.back()->dead_letter_for = placeholder.get();
      offsets_.Begin(key, in.offset);
      batches_.insert(std::move(placeholder));
      unsent_ += 1;
    } else {
      InBatch* b = batch->get();
      offsets_.Begin(key, b->offset);
      batches_.insert(std::move(*batch));
      scheduler_.Add(b);
      if (b->size == 0) Settle(b, commits);
      ready_cv_.SignalAll();
    }
  }
  if (!copy.empty()) {
    counters_.malformed_messages.Add();
    uint64_t held_back = 0;
    if (malformed_log_.Allow(held_back)) {
      log::Warning("malformed message at ", Intake::Where(in), " (",
                   FromAbsl(batch.status().message()), "); copied to ",
                   config_.DeadLetterTopicFor(name_), " and skipped (",
                   held_back, " more since the last line)");
    }
  } else {
    counters_.batches_received.Add();
  }
  Send(copy);
  Store(commits);
}

// A pacing decision not logged yet, at most one a second.
std::optional<Pacer::Decision> ProcessorCore::PacingToLog(absl::Time now) {
  const Pacer& pacer = scheduler_.pacer();
  if (pacer.decisions() == logged_decisions_ || now < next_pacing_log_) {
    return std::nullopt;
  }
  logged_decisions_ = pacer.decisions();
  next_pacing_log_ = now + absl::Seconds(1);
  return pacer.last_decision();
}

void ProcessorCore::LogPacing(const Pacer::Decision& decision) {
  log::Info("processor ", name_, ": realtime pacing ",
            Pacer::KindName(decision.kind), ": normal and slow jobs at ",
            static_cast<int64_t>(decision.rate), "/s (drain rate before ",
            static_cast<int64_t>(decision.drain_rate),
            "/s, realtime excess delay ", absl::FormatDuration(decision.excess),
            ")");
}

// ------------------------------------------------------------- assignment

void ProcessorCore::OnAssigned(PartitionKey partition) {
  MutexLock lock(&mu_);
  assigned_.insert(partition);
}

void ProcessorCore::OnRevoked(PartitionKey partition) {
  Commits ignored;  // A revoked partition commits nothing more.
  MutexLock lock(&mu_);
  assigned_.erase(partition);
  offsets_.Forget(partition);
  scheduler_.Revoke(partition.first, partition.second);
  std::vector<InBatch*> revoked;
  for (const auto& b : batches_) {
    if (b->priority == partition.first && b->partition == partition.second) {
      revoked.push_back(b.get());
    }
  }
  for (InBatch* b : revoked) {
    b->revoked = true;
    Settle(b, ignored);
  }
}

// ---------------------------------------------------------------- settling

void ProcessorCore::Settle(InBatch* b, Commits& commits) {
  if (!b->done()) return;
  if (!b->finished && !b->revoked) {
    b->finished = true;
    const PartitionKey key{b->priority, b->partition};
    if (auto next = offsets_.Finish(key, b->offset)) {
      commits.emplace_back(key, *next);
    }
    counters_.batches_committed.Add();
  }
  if (b->idle()) {
    auto it = batches_.find(b);
    if (it != batches_.end()) batches_.erase(it);
  }
}

void ProcessorCore::Store(const Commits& commits) {
  for (const auto& [partition, offset] : commits) {
    consumers_.StoreOffset(partition, offset);
  }
}

void ProcessorCore::Send(std::vector<std::unique_ptr<OutMessage>>& messages) {
  if (messages.empty()) return;
  for (auto& msg : messages) outbox_.Send(std::move(msg));
  MutexLock lock(&mu_);
  unsent_ -= messages.size();
  messages.clear();
}

void ProcessorCore::Acknowledge(const OutMessage& msg, Commits& commits) {
  if (msg.dead_letter_for != nullptr) {
    msg.dead_letter_for->dead_letter_pending = false;
    Settle(msg.dead_letter_for, commits);
  }
  for (const auto& [b, n] : msg.acks) {
    b->acked += n;
    Settle(b, commits);
  }
}

void ProcessorCore::OnSent(std::unique_ptr<OutMessage> msg) {
  if (msg->kind == OutMessage::Kind::kResults) counters_.result_messages.Add();
  Commits commits;
  {
    MutexLock lock(&mu_);
    Acknowledge(*msg, commits);
    done_cv_.SignalAll();
  }
  Store(commits);
}

void ProcessorCore::OnUndeliverable(std::unique_ptr<OutMessage> msg,
                                    Outbox::Failure failure, std::string why) {
  if (failure == Outbox::Failure::kClosed) {
    // Its batches stay uncommitted: the next owner processes them again.
    MutexLock lock(&mu_);
    done_cv_.SignalAll();
    return;
  }
  if (msg->kind == OutMessage::Kind::kResults) {
    DeadLetterResults(std::move(msg), std::move(why));
    return;
  }
  // Even its dead-letter copy could not be written: say so, and pass it.
  uint64_t held_back = 0;
  if (dead_letter_log_.Allow(held_back)) {
    log::Error("could not write to the dead letter topic ", msg->topic, ": ",
               why, "; the message is skipped (", held_back,
               " more since the last line)");
  }
  OnSent(std::move(msg));
}

// Results that cannot reach their submitter: copied to the dead letters
// with the reason and where their jobs came from, so that the batches'
// offsets pass and the processor does not retry them forever. The
// submitter ends those jobs BATCH_FAILED at its timeout.
void ProcessorCore::DeadLetterResults(std::unique_ptr<OutMessage> msg,
                                      std::string why) {
  counters_.results_dead_lettered.Add();
  auto copy = std::make_unique<OutMessage>();
  copy->kind = OutMessage::Kind::kResultsCopy;
  copy->topic = config_.DeadLetterTopicFor(name_);
  copy->key = std::move(msg->key);
  copy->payload = std::move(msg->payload);
  std::string origin;
  for (const auto& [b, n] : msg->acks) {
    if (!origin.empty()) origin += ",";
    origin += StrCat(topics_[b->priority], "[", b->partition, "]@", b->offset);
  }
  const std::string error = StrCat("results not delivered: ", why);
  copy->headers = {{"batchbus.error", error}, {"batchbus.origin", origin}};
  copy->acks = std::move(msg->acks);
  uint64_t held_back = 0;
  if (dead_letter_log_.Allow(held_back)) {
    log::Warning("processor ", name_, ": ", error, "; copied to ", copy->topic,
                 " (jobs from ", origin, "; ", held_back,
                 " more since the last line)");
  }
  outbox_.Send(std::move(copy));
}

// ------------------------------------------------------------------- jobs

absl::StatusOr<Task> ProcessorCore::Next(absl::Duration timeout) {
  absl::Time deadline = absl::InfiniteFuture();  // Read the clock only to wait.
  bool room_opened = false;
  Task::State* state = nullptr;
  {
    MutexLock lock(&mu_);
    while (state == nullptr) {
      if (shutdown_requested()) {
        return absl::CancelledError("processor is shutting down");
      }
      absl::Duration pace_wait = absl::InfiniteDuration();
      const absl::Time now = scheduler_.pacer().engaged() ? absl::Now()
                                                          : absl::InfinitePast();
      if (auto pick = scheduler_.Take(now, pace_wait)) {
        state = &pick->batch->tasks[pick->index];
        state->core = shared_from_this();
        ++pick->batch->live;
        ++outstanding_answers_;
        room_opened = pick->room_opened;
        break;
      }
      const absl::Time t = absl::Now();
      if (deadline == absl::InfiniteFuture()) deadline = t + timeout;
      if (t >= deadline) return absl::DeadlineExceededError("no job within the timeout");
      // Wake at least every 50 ms to notice a Shutdown() from a signal
      // handler, which cannot signal a condition variable.
      ready_cv_.WaitWithTimeout(
          &mu_, std::min({deadline - t, absl::Milliseconds(50), pace_wait}));
    }
  }
  counters_.handed_out.Add();
  if (room_opened) wakeup_.Notify();
  return Task(state);
}

absl::Status ProcessorCore::Answer(Task::State* state, bool ok,
                                   std::string_view text) {
  // An error message is for people: cap it rather than refuse it.
  constexpr size_t kMaxErrorBytes = 16 * 1024;
  std::string capped;
  if (ok) {
    if (auto s = json::Validate(text, "result"); !s.ok()) return s;
    text = json::TrimWhitespace(text);
  } else if (text.size() > kMaxErrorBytes) {
    capped = StrCat(text.substr(0, kMaxErrorBytes), "... (truncated)");
    text = capped;
  }
  if (ResultBatcher::EntryBytes(ok, text) + wire::kResultOverhead >
      config_.max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "result of ", text.size(), " bytes does not fit in one message ",
        "(max_message_bytes = ", config_.max_message_bytes, ")"));
  }
  std::vector<std::unique_ptr<OutMessage>> sealed;
  bool opened = false;
  {
    MutexLock lock(&mu_);
    if (closed_) {
      return absl::FailedPreconditionError(
          "the processor is closed; the job's batch is processed again by "
          "the next owner of its partition");
    }
    if (state->answered) {
      return absl::FailedPreconditionError("job was already answered");
    }
    state->answered = true;
    opened = results_.Add(state->batch, state->index, ok, text, absl::Now(), sealed);
    unsent_ += sealed.size();
    if (--outstanding_answers_ == 0) done_cv_.SignalAll();
  }
  (ok ? counters_.answered_ok : counters_.answered_error).Add();
  if (opened) wakeup_.Notify();  // The poller seals it when it lingered.
  Send(sealed);
  return absl::OkStatus();
}

// A Task lets go of its job. Returns false, releasing nothing, when the job
// was never answered and can still be: the caller answers it first.
bool ProcessorCore::Release(Task::State* state) {
  Commits commits;
  {
    MutexLock lock(&mu_);
    if (!state->answered) {
      if (!closed_) return false;
      --outstanding_answers_;  // Left unanswered: its batch stays uncommitted.
    }
    InBatch* batch = state->batch;
    state->core.reset();  // The caller holds a reference until it returns.
    --batch->live;
    Settle(batch, commits);
  }
  Store(commits);
  return true;
}

void ProcessorCore::CountUnknownGroup(std::string_view group) {
  counters_.unknown_group.Add();
  bool first = false;
  {
    MutexLock lock(&mu_);
    first = warned_groups_.insert(std::string(group)).second;
  }
  if (first) {
    log::Warning("processor ", name_, " has no handler for group '", group,
                 "'; such jobs end PROCESSED_ERROR");
  }
}

Processor::Stats ProcessorCore::Stats() {
  Processor::Stats s = counters_.Snapshot();
  MutexLock lock(&mu_);
  s.paced = scheduler_.paced();
  s.pacing_trials = scheduler_.pacer().trials();
  s.pacing_gave_up = scheduler_.pacer().gave_up();
  return s;
}

// ---------------------------------------------------------------- closing

absl::Status ProcessorCore::Close(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  shutdown_.store(true, std::memory_order_release);
  MutexLock close_lock(&close_mu_);
  if (close_done_) return absl::OkStatus();
  close_done_ = true;
  absl::Status status = absl::OkStatus();
  {
    // Handed-out jobs get answered, then every result is sealed, sent and
    // acknowledged; the poller keeps serving delivery reports meanwhile.
    MutexLock lock(&mu_);
    ready_cv_.SignalAll();
    while (outstanding_answers_ > 0 && !done_cv_.WaitWithDeadline(&mu_, deadline)) {
    }
    std::vector<std::unique_ptr<OutMessage>> sealed;
    results_.SealAll(sealed);
    unsent_ += sealed.size();
    {
      MutexUnlock unlock(&mu_);
      Send(sealed);
    }
    // The outbox counts without this lock: look again every few ms.
    while ((unsent_ > 0 || outbox_.pending() > 0) && absl::Now() < deadline) {
      done_cv_.WaitWithTimeout(
          &mu_, std::min(absl::Milliseconds(5), deadline - absl::Now()));
    }
    if (outstanding_answers_ > 0 || unsent_ > 0 || outbox_.pending() > 0) {
      status = absl::DeadlineExceededError(StrCat(
          "closed with ", outstanding_answers_, " unanswered job(s) and ",
          unsent_ + outbox_.pending(),
          " unacknowledged message(s); their batches stay uncommitted and "
          "will be processed again"));
    }
    closed_ = true;
  }
  stop_poller_.store(true, std::memory_order_release);
  wakeup_.Notify();
  if (poller_.joinable()) poller_.join();
  consumers_.Close(deadline);  // Commits the stored offsets.
  outbox_.Close(deadline);
  return status;
}

// ------------------------------------------------------------- Processor

struct Processor::Impl {
  std::shared_ptr<ProcessorCore> core;
};

absl::StatusOr<std::unique_ptr<Processor>> Processor::Create(
    Config config, std::string processor) {
  if (auto s = config.Validate(); !s.ok()) return s;
  if (processor.empty()) {
    return absl::InvalidArgumentError("processor name must not be empty");
  }
  auto core = std::make_shared<ProcessorCore>(std::move(config),
                                              std::move(processor));
  if (auto s = core->Start(); !s.ok()) {
    (void)core->Close(absl::ZeroDuration());  // Before any field goes.
    return s;
  }
  return std::unique_ptr<Processor>(
      new Processor(std::make_unique<Impl>(Impl{std::move(core)})));
}

Processor::Processor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Processor::~Processor() {
  if (impl_) (void)impl_->core->Close(impl_->core->config().close_timeout);
}

absl::StatusOr<Task> Processor::Next(absl::Duration timeout) {
  return impl_->core->Next(timeout);
}

absl::Status Processor::Run(
    const absl::flat_hash_map<std::string, Handler>& handlers) {
  while (true) {
    absl::StatusOr<Task> task = Next(absl::Milliseconds(200));
    if (!task.ok()) {
      if (absl::IsDeadlineExceeded(task.status())) continue;
      if (absl::IsCancelled(task.status())) return absl::OkStatus();
      return task.status();
    }
    auto it = handlers.find(ToAbsl(task->group()));
    if (it == handlers.end()) {
      impl_->core->CountUnknownGroup(task->group());
      (void)task->Fail(StrCat("no handler for group '", task->group(), "'"));
      continue;
    }
    try {
      it->second(*task);
    } catch (const std::exception& e) {
      if (!task->answered()) (void)task->Fail(StrCat("handler threw: ", e.what()));
    } catch (...) {
      if (!task->answered()) (void)task->Fail("handler threw an exception");
    }
  }
}

void Processor::Shutdown() { impl_->core->Shutdown(); }

bool Processor::shutdown_requested() const {
  return impl_->core->shutdown_requested();
}

absl::Status Processor::Close(absl::Duration timeout) {
  return impl_->core->Close(timeout);
}

Processor::Stats Processor::GetStats() const { return impl_->core->Stats(); }

const std::string& Processor::name() const { return impl_->core->name(); }

// ------------------------------------------------------------------ Task

Task::Task(Task&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

Task& Task::operator=(Task&& other) noexcept {
  if (this != &other) {
    Reset();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

Task::~Task() { Reset(); }

// Lets go of the job, failing it first when it was not answered.
void Task::Reset() {
  if (state_ == nullptr) return;
  // Held here: releasing the last job may drop the last other reference.
  std::shared_ptr<ProcessorCore> core = state_->core;
  if (!core->Release(state_)) {
    (void)core->Answer(state_, false, "handler returned without answering the job");
    core->Release(state_);
  }
  state_ = nullptr;
}

const JobId& Task::id() const { return state_->batch->decoded.jobs[state_->index].id; }
std::string_view Task::processor() const { return state_->batch->decoded.processor; }
std::string_view Task::group() const {
  return state_->batch->decoded.jobs[state_->index].group;
}
Priority Task::priority() const { return state_->batch->priority; }
std::string_view Task::data() const {
  return state_->batch->decoded.jobs[state_->index].data;
}

bool Task::answered() const {
  return state_ == nullptr || state_->core->Answered(state_);
}

absl::Status Task::Complete(std::string_view result_json) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Answer(state_, true, result_json);
}

absl::Status Task::Fail(std::string_view error) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Answer(state_, false, error);
}

}  // namespace batchbus

// Processor: setup, the poller loop, Next, Close and the public facade.
// The core's other files: task.cc, batch_settlement.cc (processor_core.h
// lists what each holds).
//
// Parts (each in a file pair of its own): job_consumers (the two consumers
// and their assignment), intake (decoding, malformed messages), scheduler
// (ready jobs by priority, prefetch, pacing), result_batcher (result
// messages per submitter instance), outbox (producing results and
// dead-letter copies), offset_tracker (commits of done prefixes).
//
// Lifetime: the core lives until the facade and every handed-out Task let
// go of it, so a Task that outlives the Processor reaches a closed core,
// not freed state. It counts its Tasks under its lock: no atomic per job.
#include "batchbus/processor.h"

#include <algorithm>

#include "delay_tiers.h"
#include "kafka.h"
#include "log.h"
#include "metrics_access.h"
#include "metrics_server.h"
#include "processor_core.h"
#include "secrets.h"
#include "strcat.h"

namespace batchbus {

// ------------------------------------------------------------------ setup

absl::Status ProcessorCore::Start() {
  if (!wakeup_.ok()) return absl::InternalError("could not create a pipe");
  if (auto s = outbox_.Start(wakeup_.write_fd()); !s.ok()) return s;
  std::vector<std::string> wanted(topics_.begin(), topics_.end());
  for (const DelayTier& tier : kDelayTiers) {
    wanted.push_back(DelayTopic(config_, name_, tier));
  }
  wanted.push_back(config_.DeadLetterTopicFor(name_));
  wanted.push_back(config_.ReplyTopic());
  if (auto s = kafka::EnsureTopics(outbox_.handle(), config_, wanted,
                                   absl::Seconds(15));
      !s.ok()) {
    return s;
  }
  // Results mostly go to the configured reply topic.
  outbox_.KnowTopic(config_.ReplyTopic());
  if (auto s = consumers_.Start(wakeup_.write_fd()); !s.ok()) return s;
  if (auto s = consumers_.CheckGroupAccess(absl::Seconds(5)); !s.ok()) {
    return s;
  }
  if (auto s = delay_line_.Start(wakeup_.write_fd()); !s.ok()) return s;
  poller_ = std::thread([this] { PollerLoop(); });
  log::Info("processor", "processor ", name_, " consuming ", topics_[Priority::kRealtime],
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
      std::vector<std::unique_ptr<OutMessage>> relays;
      next_wake = std::min(next_wake, delay_line_.Poll(now, relays));
      for (auto& relay : relays) outbox_.Send(std::move(relay));
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
      log::Warning("processor", "processor ", name_, ": ", rd_kafka_message_errstr(msg.get()));
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
      log::Warning("processor", "malformed message at ", Intake::Where(in), " (",
                   FromAbsl(batch.status().message()), "); copied to ",
                   config_.DeadLetterTopicFor(name_), " and skipped",
                   LogThrottle::HeldBack(held_back));
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
  log::Info("processor", "processor ", name_, ": realtime pacing ",
            Pacer::KindName(decision.kind), ": normal and slow jobs at ",
            static_cast<int64_t>(decision.rate), "/s (drain rate before ",
            static_cast<int64_t>(decision.drain_rate),
            "/s, realtime excess delay ", absl::FormatDuration(decision.excess),
            ")");
}

// ------------------------------------------------------------------- jobs

absl::StatusOr<Task> ProcessorCore::Next(absl::Duration timeout) {
  absl::Time deadline = absl::InfiniteFuture();  // Read the clock only to wait.
  while (true) {
    absl::StatusOr<Task::State*> state = Take(timeout, deadline);
    if (!state.ok()) return state.status();
    Task task(*state);
    if (!Admit(task)) continue;  // Answered; its Task lets go of it here.
    counters_.handed_out.Add();
    return task;
  }
}

absl::StatusOr<Task::State*> ProcessorCore::Take(absl::Duration timeout,
                                                 absl::Time& deadline) {
  bool room_opened = false;
  bool opened = false;  // A result message, which the poller seals.
  std::vector<std::unique_ptr<OutMessage>> sealed;
  Task::State* state = nullptr;
  absl::Status status = absl::OkStatus();
  {
    MutexLock lock(&mu_);
    while (state == nullptr) {
      if (shutdown_requested()) {
        status = absl::CancelledError("processor is shutting down");
        break;
      }
      absl::Duration pace_wait = absl::InfiniteDuration();
      const absl::Time now = scheduler_.pacer().engaged() ? absl::Now()
                                                          : absl::InfinitePast();
      if (auto pick = scheduler_.Take(now, pace_wait)) {
        room_opened |= pick->room_opened;
        InBatch* batch = pick->batch;
        const wire::JobFields& fields = batch->decoded.jobs[pick->index].fields;
        if (fields.deadline_ms != 0 &&
            absl::ToUnixMillis(absl::Now() + config_.deadline_skew) >=
                fields.deadline_ms) {
          Expire(batch, pick->index, fields.deadline_ms, sealed, opened);
          continue;
        }
        if (fields.not_before_ms != 0) {
          const absl::Time t = absl::Now();
          if (fields.not_before_ms > absl::ToUnixMillis(t)) {
            // Early: it waits in a delay tier, not here.
            sealed.push_back(Forward(batch, pick->index, fields,
                                     absl::FromUnixMillis(fields.not_before_ms), t));
            counters_.delayed.Add();
            continue;
          }
        }
        if (!gate_.open() && Hold(batch, pick->index, absl::Now(), sealed, opened)) {
          continue;
        }
        if (fields.events) {
          opened |= results_.AddEvent(batch, pick->index,
                                      wire::ResultEntry::Kind::kStarted, "",
                                      [] { return absl::Now(); }, sealed);
        }
        state = &batch->tasks[pick->index];
        state->core = this;
        state->handed_at = absl::Now();
        ++tasks_out_;
        ++batch->live;
        ++outstanding_answers_;
        break;
      }
      const absl::Time t = absl::Now();
      if (deadline == absl::InfiniteFuture()) deadline = t + timeout;
      if (t >= deadline) {
        status = absl::DeadlineExceededError("no job within the timeout");
        break;
      }
      // Wake at least every 50 ms to notice a Shutdown() from a signal
      // handler, which cannot signal a condition variable.
      ready_cv_.WaitWithTimeout(
          &mu_, std::min({deadline - t, absl::Milliseconds(50), pace_wait}));
    }
    unsent_ += sealed.size();
  }
  if (room_opened || opened) wakeup_.Notify();
  Send(sealed);
  if (!status.ok()) return status;
  return state;
}

void ProcessorCore::Expire(InBatch* batch, uint32_t index, int64_t deadline_ms,
                           std::vector<std::unique_ptr<OutMessage>>& sealed,
                           bool& opened) {
  ExpireWith(
      batch, index,
      StrCat("deadline ", absl::FormatTime(absl::FromUnixMillis(deadline_ms)),
             " passed before a processor took the job; it was not processed"),
      sealed, opened);
}

void ProcessorCore::ExpireWith(InBatch* batch, uint32_t index,
                               std::string_view why,
                               std::vector<std::unique_ptr<OutMessage>>& sealed,
                               bool& opened) {
  batch->tasks[index].answered = true;
  opened |= results_.AddExpired(batch, index, why, [] { return absl::Now(); },
                                sealed);
  counters_.expired.Add();
}

bool ProcessorCore::Hold(InBatch* batch, uint32_t index, absl::Time now,
                         std::vector<std::unique_ptr<OutMessage>>& sealed,
                         bool& opened) {
  // A version-1 submitter could not read the answer of a job sent to wait.
  if (batch->decoded.version < 2) return false;
  const wire::DecodedJob& job = batch->decoded.jobs[index];
  const absl::Time slot = gate_.Admit(job.group, job.fields.reserved, now);
  if (slot <= now) return false;
  if (absl::ToUnixMillis(slot) >=
      LastStartMs(batch->decoded, job.fields, config_.deadline_skew)) {
    ExpireWith(batch, index,
               StrCat("group '", job.group, "' is paused or at its max_rate "
                      "until ", absl::FormatTime(slot), ", past the job's "
                      "deadline or its submitter's timeout; it was not "
                      "processed"),
               sealed, opened);
    return true;
  }
  wire::JobFields held = job.fields;
  held.reserved = true;
  sealed.push_back(Forward(batch, index, held, slot, now));
  counters_.held.Add();
  return true;
}

bool ProcessorCore::Admit(Task& task) {
  if (validators_.empty()) return true;
  auto it = validators_.find(ToAbsl(task.group()));
  if (it == validators_.end()) return true;
  absl::Status valid = it->second(task.data());
  if (valid.ok()) return true;
  counters_.invalid.Add();
  (void)task.Fail(StrCat("invalid job data: ", FromAbsl(valid.message())));
  return false;
}

void ProcessorCore::CountUnknownGroup(std::string_view group) {
  counters_.unknown_group.Add();
  bool first = false;
  {
    MutexLock lock(&mu_);
    first = warned_groups_.insert(std::string(group)).second;
  }
  if (first) {
    log::Warning("processor", "processor ", name_, " has no handler for group '", group,
                 "'; such jobs end PROCESSED_ERROR");
  }
}

Processor::Stats ProcessorCore::Stats() {
  Processor::Stats s = counters_.Snapshot();
  MutexLock lock(&mu_);
  s.paced = scheduler_.paced();
  s.pacing_trials = scheduler_.pacer().trials();
  s.pacing_gave_up = scheduler_.pacer().gave_up();
  const Pacer& pacer = scheduler_.pacer();
  s.pacing_rate = pacer.state() == Pacer::State::kFree ? 0 : pacer.rate();
  s.pacing_drain_rate = pacer.drain_rate();
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
  // Handed-out jobs get answered, then every result is sealed, sent and
  // acknowledged; the poller keeps serving delivery reports meanwhile.
  std::vector<std::unique_ptr<OutMessage>> sealed;
  {
    MutexLock lock(&mu_);
    ready_cv_.SignalAll();
    while (outstanding_answers_ > 0 && !done_cv_.WaitWithDeadline(&mu_, deadline)) {
    }
    results_.SealAll(sealed);
    unsent_ += sealed.size();
  }
  Send(sealed);
  {
    MutexLock lock(&mu_);
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
  delay_line_.Close(deadline);  // Commits what was relayed.
  return status;
}

// ------------------------------------------------------------- Processor

// Owns the core until Close; then the last handed-out Task may.
struct Processor::Impl {
  ProcessorCore* core;
  MetricsRegistration metrics;  // Config::metrics_port.
};

absl::StatusOr<std::unique_ptr<Processor>> Processor::Create(
    Config config, std::string processor) {
  RememberSecrets(config);
  if (auto s = config.Validate(); !s.ok()) return Scrub(s);
  if (config.log_level) SetLogLevel(*config.log_level);
  if (processor.empty()) {
    return absl::InvalidArgumentError("processor name must not be empty");
  }
  auto core = std::make_unique<ProcessorCore>(std::move(config),
                                              std::move(processor));
  if (auto s = core->Start(); !s.ok()) {
    (void)core->Close(absl::ZeroDuration());  // Before any field goes.
    return Scrub(s);
  }
  std::unique_ptr<Processor> p(
      new Processor(std::make_unique<Impl>(Impl{core.release(), {}})));
  const Config& c = p->impl_->core->config();
  if (c.metrics_port > 0) {
    absl::StatusOr<MetricsRegistration> metrics = RegisterMetrics(
        c.metrics_address, c.metrics_port,
        [q = p.get()](MetricsWriter& w) { MetricsAccess::Collect(*q, w); });
    if (!metrics.ok()) return metrics.status();  // Closes the processor.
    p->impl_->metrics = *std::move(metrics);
  }
  return p;
}

Processor::Processor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Processor::~Processor() {
  if (!impl_) return;
  impl_->metrics.Reset();  // No scrape reaches a processor being destroyed.
  (void)impl_->core->Close(impl_->core->config().close_timeout);
  if (impl_->core->Orphan()) delete impl_->core;
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

void Processor::PauseGroup(std::string_view group, absl::Duration duration) {
  impl_->core->PauseGroup(group, duration);
}

void Processor::SetValidator(std::string group, Validator validator) {
  impl_->core->SetValidator(std::move(group), std::move(validator));
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

void MetricsAccess::Collect(const Processor& processor, MetricsWriter& w) {
  struct Field {
    const char* name;
    const char* help;
    uint64_t Processor::Stats::*value;
  };
  using S = Processor::Stats;
  static constexpr Field kCounters[] = {
      {"batchbus_processor_handed_out", "Jobs returned by Next().",
       &S::handed_out},
      {"batchbus_processor_processed_ok", "Jobs answered PROCESSED_OK.",
       &S::processed_ok},
      {"batchbus_processor_processed_error", "Jobs answered PROCESSED_ERROR.",
       &S::processed_error},
      {"batchbus_processor_batches_received", "Job batches read.",
       &S::batches_received},
      {"batchbus_processor_batches_committed", "Job batches committed.",
       &S::batches_committed},
      {"batchbus_processor_malformed_messages",
       "Malformed job messages, sent to the dead letter topic.",
       &S::malformed_messages},
      {"batchbus_processor_result_messages",
       "Result messages acknowledged by the broker.", &S::result_messages},
      {"batchbus_processor_unknown_group", "Jobs Run() had no handler for.",
       &S::unknown_group},
      {"batchbus_processor_expired",
       "Jobs ended EXPIRED, not handed out: their deadline had passed.",
       &S::expired},
      {"batchbus_processor_invalid",
       "Jobs ended PROCESSED_ERROR by their group's validator.", &S::invalid},
      {"batchbus_processor_retried", "Attempts ended with Task::Retry.",
       &S::retried},
      {"batchbus_processor_delayed",
       "Jobs that came before their not_before, sent to wait.", &S::delayed},
      {"batchbus_processor_held",
       "Jobs sent to wait for their group's slot (paused or at max_rate).",
       &S::held},
      {"batchbus_processor_jobs_dead_lettered",
       "Failed jobs copied to the dead letter topic.", &S::jobs_dead_lettered},
      {"batchbus_processor_results_dead_lettered",
       "Undeliverable result messages copied to the dead letter topic.",
       &S::results_dead_lettered},
      {"batchbus_processor_paced",
       "Times Next() held a normal or slow job back for realtime pacing.",
       &S::paced},
      {"batchbus_processor_pacing_trials", "Realtime pacing trials started.",
       &S::pacing_trials},
      {"batchbus_processor_pacing_gave_up",
       "Pacing trials given up because cutting did not help.",
       &S::pacing_gave_up},
  };
  ProcessorCore& core = *processor.impl_->core;
  const S s = core.Stats();
  const MetricsWriter::Labels labels = {{"processor", core.name()}};
  for (const Field& f : kCounters) w.Counter(f.name, f.help, labels, s.*f.value);
  w.Gauge("batchbus_processor_pacing_rate",
          "Normal and slow jobs/s realtime pacing allows; 0 while it holds "
          "nothing back.",
          labels, s.pacing_rate);
  w.Gauge("batchbus_processor_pacing_drain_rate",
          "Normal and slow jobs/s taken while pacing held nothing back.",
          labels, s.pacing_drain_rate);
  MutexLock lock(&core.mu_);
  for (Priority p : kAllPriorities) {
    w.Gauge("batchbus_processor_ready_jobs",
            "Jobs read and waiting to be handed out.",
            {{"processor", core.name()}, {"priority", PriorityName(p)}},
            static_cast<double>(core.scheduler_.ready_jobs(p)));
  }
  w.Gauge("batchbus_processor_outstanding_jobs",
          "Jobs handed out and not answered yet.", labels,
          static_cast<double>(core.outstanding_answers_));
  for (const auto& [group, histogram] : core.handler_time_) {
    w.Histogram("batchbus_processor_handler_seconds",
                "From a job's hand-out by Next() to its answer.",
                {{"processor", core.name()}, {"group", group}},
                histogram->Get());
  }
}

}  // namespace batchbus

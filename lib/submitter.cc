// Submitter: batches jobs per (processor, priority), publishes them, and
// matches results coming back on this instance's reply partition.
//
// Threads: callers of Submit() append to open batches under `mu_` and
// publish batches that fill up. One internal thread publishes batches whose
// linger expired, serves delivery reports, reads results, expires batch
// timeouts and runs every callback (outside `mu_`, so callbacks may Submit).
//
// Timeouts: the batch timeout is fixed per priority, so batches sealed in
// order expire in order; one FIFO per priority is the whole timer structure.
#include "batchbus/submitter.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "strcat.h"
#include "absl/time/clock.h"
#include "json.h"
#include "simdjson.h"
#include "kafka.h"
#include "log.h"
#include "names.h"
#include "wakeup.h"
#include "wire.h"

namespace batchbus {
namespace {

constexpr size_t kMaxNameBytes = 200;
constexpr size_t kMaxGroupBytes = 1024;

// One job waiting for its result.
struct Slot {
  JobId id;
  Submitter::Callback done;
  uint32_t bytes = 0;
  bool finished = false;
};

struct Batch {
  uint64_t seq = 0;
  Priority priority = Priority::kNormal;
  std::string processor;
  std::string topic;
  wire::BatchWriter writer;  // While open.
  std::vector<Slot> slots;
  size_t unfinished = 0;
  absl::Time linger_deadline;
};

// Handed to librdkafka with each batch message; freed by the delivery
// report.
struct InFlightMessage {
  uint64_t seq;
  Priority priority;
  std::string topic;
  std::string payload;
};

// A callback to run outside the lock.
struct Completion {
  Submitter::Callback done;
  JobResult result;
};

}  // namespace

struct Submitter::Impl {
  Config config;
  std::string instance;
  std::string reply_topic;
  // Realtime results come back on a partition of their own (when the reply
  // topic has more than one), read before the others, so a flood of slow
  // results never delays a realtime one.
  std::array<int32_t, 2> reply_partitions{};  // [0] realtime, [1] others.
  int reply_streams = 1;

  // Producers by kind of batch: [0] realtime, [1] normal and slow. A
  // realtime batch has a connection of its own, so it never waits behind
  // megabytes of slow batches that the broker is still taking in.
  std::array<kafka::KafkaPtr, 2> producers;
  // One consumer per reply partition: realtime results have a connection of
  // their own, so they never queue behind a large fetch of slow results.
  std::array<kafka::KafkaPtr, 2> consumers;
  std::array<kafka::QueuePtr, 2> producer_queues;  // Delivery reports.
  std::array<kafka::TopicPtr, 2> reply_topic_handles;
  std::mutex topics_mu;
  // Per producer, as in `producers`.
  std::array<absl::flat_hash_map<std::string, kafka::TopicPtr>, 2> topic_handles
      ABSL_GUARDED_BY(topics_mu);
  std::array<kafka::QueuePtr, 2> reply_queues;  // Per reply partition.
  WakeupPipe wakeup;
  std::thread io_thread;
  std::atomic<bool> stop_io{false};

  mutable std::mutex mu;
  std::condition_variable room_cv;   // Back-pressure waiters.
  std::condition_variable idle_cv;   // Close() waiting for in-flight jobs.
  int room_waiters = 0;
  bool closed = false;
  bool close_done = false;
  uint64_t next_seq = 1;
  // Open batches per processor, index by priority.
  absl::flat_hash_map<std::string, std::array<std::unique_ptr<Batch>, 3>> open;
  // Sealed batches with unfinished jobs.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Batch>> sealed;
  std::array<std::deque<std::pair<absl::Time, uint64_t>>, kNumPriorities>
      timers;
  uint64_t inflight_jobs = 0;
  uint64_t inflight_bytes = 0;
  Submitter::Stats stats;
  LateResultHook late_hook;

  // Only touched by the io thread.
  wire::Decoder decoder;
  absl::Time last_undelivered_log = absl::InfinitePast();
  uint64_t undelivered_unlogged = 0;
  std::vector<wire::ResultEntry> entries;

  absl::Status Init();
  absl::Status Submit(Job& job, Callback done);
  void SealLocked(std::unique_ptr<Batch>& slot, std::vector<InFlightMessage*>& out);
  void Publish(std::vector<InFlightMessage*>& messages);
  rd_kafka_topic_t* TopicHandle(const std::string& topic, Priority priority);
  void FailSlotsLocked(Batch& batch, std::string_view why,
                       std::vector<Completion>& out);
  void ReleaseLocked(const Slot& slot);
  void RunCompletions(std::vector<Completion>& completions);
  void IoLoop();
  bool HandleReplies(rd_kafka_queue_t* queue, size_t max_messages,
                     size_t per_round,
                     std::vector<Completion>& completions,
                     std::vector<JobResult>& late);
  void HandleDelivery(rd_kafka_message_t* msg);
  void ReportLate(std::vector<JobResult>& late);
  absl::Status Close(absl::Duration timeout);

  static void DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg,
                             void* opaque) noexcept;
};

// ------------------------------------------------------------------ setup

absl::Status Submitter::Impl::Init() {
  if (!wakeup.ok()) return absl::InternalError("could not create a pipe");
  instance = JobId::Random().ToString();
  reply_topic = config.ReplyTopic();

  auto pconf = kafka::MakeConf(
      config, kafka::Role::kProducer,
      {{"linger.ms", "0"},
       {"message.max.bytes",
        std::to_string(std::max<size_t>(config.max_message_bytes + 4096,
                                        1'000'000))},
       {"queue.buffering.max.messages", "1000000"}});
  if (!pconf.ok()) return pconf.status();
  rd_kafka_conf_set_dr_msg_cb(pconf->get(), &Impl::DeliveryReport);
  rd_kafka_conf_set_opaque(pconf->get(), this);
  auto rtp = kafka::MakeHandle(RD_KAFKA_PRODUCER,
                               kafka::ConfPtr(rd_kafka_conf_dup(pconf->get())));
  if (!rtp.ok()) return rtp.status();
  producers[0] = std::move(*rtp);
  auto p = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
  if (!p.ok()) return p.status();
  producers[1] = std::move(*p);
  rd_kafka_t* producer = producers[1].get();

  if (auto s = kafka::EnsureTopics(producer, config, {reply_topic},
                                   absl::Seconds(15));
      !s.ok()) {
    return s;
  }
  auto partitions =
      kafka::PartitionCount(producer, reply_topic, absl::Seconds(10));
  if (!partitions.ok()) return partitions.status();
  if (config.reply_partition >= *partitions) {
    return absl::InvalidArgumentError(StrCat(
        "reply_partition ", config.reply_partition, " but topic ",
        reply_topic, " has only ", *partitions, " partitions"));
  }
  const int32_t base =
      config.reply_partition >= 0
          ? config.reply_partition
          : static_cast<int32_t>(absl::HashOf(instance) %
                                 static_cast<size_t>(*partitions));
  reply_partitions = {base, (base + 1) % *partitions};
  reply_streams = reply_partitions[0] == reply_partitions[1] ? 1 : 2;

  // If unread results ever expire (the mock cluster keeps ~5 MiB per
  // partition), resume from the oldest one still there rather than the end.
  auto cconf = kafka::MakeConf(config, kafka::Role::kConsumer,
                               {{"enable.auto.commit", "false"},
                                {"auto.offset.reset", "earliest"},
                                {"enable.partition.eof", "false"},
                                {"fetch.wait.max.ms", "10"},
                                {"fetch.error.backoff.ms", "10"}});
  if (!cconf.ok()) return cconf.status();
  rd_kafka_conf_t* cconf_template = cconf->get();
  // Start exactly at the current end, resolved now: results for batches we
  // are about to send can never land before our starting offset.
  // Plain partition consumers: no group, nothing committed.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  for (int r = 0; r < reply_streams; ++r) {
    const int32_t partition = reply_partitions[r];
    auto c = kafka::MakeHandle(RD_KAFKA_CONSUMER,
                               kafka::ConfPtr(rd_kafka_conf_dup(cconf_template)));
    if (!c.ok()) return c.status();
    consumers[r] = std::move(*c);
    rd_kafka_t* consumer = consumers[r].get();
    reply_topic_handles[r].reset(
        rd_kafka_topic_new(consumer, reply_topic.c_str(), nullptr));
    int64_t low = 0, high = 0;
    while (true) {
      rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
          consumer, reply_topic.c_str(), partition, &low, &high, 5000);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      // Leadership may still be settling right after the topic was created.
      if (absl::Now() > deadline) {
        return kafka::ToStatus(err, StrCat("reading the end of ", reply_topic,
                                           "[", partition, "]"));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    reply_queues[r].reset(rd_kafka_queue_new(consumer));
    if (rd_kafka_consume_start_queue(reply_topic_handles[r].get(), partition,
                                     high,
                                     reply_queues[r].get()) != 0) {
      return kafka::ToStatus(rd_kafka_last_error(),
                             "starting to read the reply partition");
    }
    rd_kafka_queue_io_event_enable(reply_queues[r].get(), wakeup.write_fd(),
                                   "1", 1);
    log::Info("submitter ", instance, " reading ",
              r == 0 && reply_streams == 2 ? "realtime " : "", "results from ",
              reply_topic, "[", partition, "] from offset ", high);
  }
  for (int k = 0; k < 2; ++k) {
    producer_queues[k].reset(rd_kafka_queue_get_main(producers[k].get()));
    rd_kafka_queue_io_event_enable(producer_queues[k].get(), wakeup.write_fd(),
                                   "1", 1);
  }
  io_thread = std::thread([this] { IoLoop(); });
  return absl::OkStatus();
}

// ----------------------------------------------------------------- submit

absl::Status Submitter::Impl::Submit(Job& job, Callback done) {
  if (job.processor.empty() || job.processor.size() > kMaxNameBytes ||
      !HasOnlyTopicChars(job.processor)) {
    return absl::InvalidArgumentError(StrCat(
        "job processor name '", job.processor,
        "' must be 1-200 characters of [A-Za-z0-9._-] (it names a topic)"));
  }
  if (job.group.empty() || job.group.size() > kMaxGroupBytes ||
      !simdjson::validate_utf8(job.group.data(), job.group.size())) {
    return absl::InvalidArgumentError(
        "job group must be a non-empty UTF-8 name of at most 1024 bytes");
  }
  if (!done) return absl::InvalidArgumentError("Submit needs a callback");
  if (auto s = json::Validate(job.data, "job data"); !s.ok()) return s;
  const std::string_view data = json::TrimWhitespace(job.data);
  const Priority priority = job.priority;
  const PriorityConfig& pc = config.For(priority);
  const size_t job_size = wire::BatchWriter::JobSize(job.group, data);
  const size_t header_size = wire::kBatchOverhead + instance.size() +
                             reply_topic.size() + job.processor.size();
  if (header_size + job_size > config.max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "job of ", job_size, " encoded bytes does not fit in one message (",
        "max_message_bytes = ", config.max_message_bytes, ")"));
  }
  if (job.id.IsZero()) job.id = JobId::Random();

  std::vector<InFlightMessage*> to_publish;
  bool wake_io = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    if (closed) {
      ++stats.rejected;
      return absl::FailedPreconditionError("submitter is closed");
    }
    auto full = [&] {
      return inflight_jobs + 1 > config.max_inflight_jobs ||
             (inflight_bytes > 0 &&
              inflight_bytes + job_size > config.max_inflight_bytes);
    };
    if (full()) {
      if (config.backpressure == BackpressurePolicy::kWait) {
        ++room_waiters;
        room_cv.wait_for(lock, absl::ToChronoNanoseconds(config.submit_wait),
                         [&] { return !full() || closed; });
        --room_waiters;
      }
      if (full() || closed) {
        ++stats.rejected;
        return closed ? absl::FailedPreconditionError("submitter is closed")
                      : absl::ResourceExhaustedError(StrCat(
                            "submitter is full: ", inflight_jobs,
                            " jobs and ", inflight_bytes,
                            " bytes in flight (max_inflight_jobs = ",
                            config.max_inflight_jobs,
                            ", max_inflight_bytes = ",
                            config.max_inflight_bytes, ")"));
      }
    }
    auto& per_priority = open[job.processor];
    std::unique_ptr<Batch>& batch = per_priority[static_cast<int>(priority)];
    if (batch && batch->writer.jobs() > 0 &&
        batch->writer.FinishedSize() + job_size > pc.max_bytes) {
      SealLocked(batch, to_publish);
    }
    if (!batch) {
      batch = std::make_unique<Batch>();
      batch->seq = next_seq++;
      batch->priority = priority;
      batch->processor = job.processor;
      batch->topic = config.TopicFor(job.processor, priority);
      // Expect a full batch of jobs like this one.
      batch->writer.Reserve(std::min(
          pc.max_bytes, header_size + (job_size + 1) * std::max<size_t>(
                                                          pc.max_jobs, 1)));
      batch->writer.Begin(
          {instance, batch->seq, reply_topic,
           reply_partitions[priority == Priority::kRealtime ? 0 : 1],
           job.processor, priority});
      batch->slots.reserve(std::min<size_t>(pc.max_jobs, 4096));
      batch->linger_deadline = absl::Now() + pc.max_linger;
      wake_io = priority != Priority::kRealtime;
    }
    batch->writer.AddJob(job.id, job.group, data);
    Slot& slot = batch->slots.emplace_back();
    slot.id = job.id;
    slot.done = std::move(done);
    slot.bytes = static_cast<uint32_t>(job_size);
    ++batch->unfinished;
    ++inflight_jobs;
    inflight_bytes += job_size;
    ++stats.submitted;
    job.status = JobStatus::kSubmitted;
    if (batch->slots.size() >= pc.max_jobs ||
        batch->writer.FinishedSize() >= pc.max_bytes) {
      SealLocked(batch, to_publish);
    }
  }
  if (wake_io) wakeup.Notify();
  Publish(to_publish);
  return absl::OkStatus();
}

void Submitter::Impl::SealLocked(std::unique_ptr<Batch>& batch,
                                 std::vector<InFlightMessage*>& out) {
  auto* msg =
      new InFlightMessage{batch->seq, batch->priority, batch->topic,
                          batch->writer.Finish()};
  // A batch sealed early by its linger gives back what it reserved.
  if (msg->payload.capacity() > 2 * msg->payload.size() + 4096) {
    msg->payload.shrink_to_fit();
  }
  const absl::Duration timeout = config.For(batch->priority).batch_timeout;
  timers[static_cast<int>(batch->priority)].emplace_back(
      absl::Now() + timeout, batch->seq);
  sealed.emplace(batch->seq, std::move(batch));
  out.push_back(msg);
}

// A topic handle whose message.timeout.ms is the priority's batch timeout
// (unless the user set message.timeout.ms): a batch that librdkafka cannot
// deliver in that time fails with the reason instead of a plain timeout, and
// one that is still being retried is not abandoned before its jobs are.
rd_kafka_topic_t* Submitter::Impl::TopicHandle(const std::string& topic,
                                               Priority priority) {
  const int k = priority == Priority::kRealtime ? 0 : 1;
  rd_kafka_t* producer = producers[k].get();
  std::lock_guard<std::mutex> lock(topics_mu);
  auto it = topic_handles[k].find(topic);
  if (it != topic_handles[k].end()) return it->second.get();
  // Start from the default topic configuration, which carries the user's
  // topic-level kafka.* properties.
  rd_kafka_topic_conf_t* conf = rd_kafka_default_topic_conf_dup(producer);
  if (!kafka::UserSets(config, kafka::Role::kProducer, "message.timeout.ms")) {
    char err[256];
    rd_kafka_topic_conf_set(
        conf, "message.timeout.ms",
        std::to_string(kafka::ToMillis(config.For(priority).batch_timeout))
            .c_str(),
        err, sizeof err);
  }
  kafka::TopicPtr handle(rd_kafka_topic_new(producer, topic.c_str(), conf));
  rd_kafka_topic_t* raw = handle.get();
  topic_handles[k].emplace(topic, std::move(handle));
  return raw;
}

void Submitter::Impl::Publish(std::vector<InFlightMessage*>& messages) {
  for (InFlightMessage* msg : messages) {
    const std::string& topic = msg->topic;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producers[msg->priority == Priority::kRealtime ? 0 : 1].get(),
        RD_KAFKA_V_RKT(TopicHandle(topic, msg->priority)),
        RD_KAFKA_V_VALUE(msg->payload.data(), msg->payload.size()),
        RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
    if (err) {
      // Not queued (e.g. the local queue is full): end its jobs now, outside
      // the lock.
      std::vector<Completion> completions;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = sealed.find(msg->seq);
        if (it != sealed.end()) {
          FailSlotsLocked(*it->second,
                          StrCat("could not publish the batch to ", topic,
                                       ": ", rd_kafka_err2str(err)),
                          completions);
          sealed.erase(it);
        }
      }
      delete msg;
      RunCompletions(completions);
    }
  }
  messages.clear();
}

void Submitter::Impl::ReleaseLocked(const Slot& slot) {
  --inflight_jobs;
  inflight_bytes -= slot.bytes;
}

void Submitter::Impl::FailSlotsLocked(Batch& batch, std::string_view why,
                                      std::vector<Completion>& out) {
  for (uint32_t i = 0; i < batch.slots.size(); ++i) {
    Slot& slot = batch.slots[i];
    if (slot.finished) continue;
    slot.finished = true;
    ReleaseLocked(slot);
    ++stats.batch_failed;
    Completion& c = out.emplace_back();
    c.done = std::move(slot.done);
    c.result.job_id = slot.id;
    c.result.status = JobStatus::kBatchFailed;
    c.result.error = std::string(why);
    c.result.priority = batch.priority;
  }
  batch.unfinished = 0;
}

void Submitter::Impl::RunCompletions(std::vector<Completion>& completions) {
  for (Completion& c : completions) {
    try {
      c.done(c.result);
    } catch (const std::exception& e) {
      log::Error("a job callback threw: ", e.what());
    } catch (...) {
      log::Error("a job callback threw a non-standard exception");
    }
  }
  if (!completions.empty()) {
    std::lock_guard<std::mutex> lock(mu);
    if (room_waiters > 0) room_cv.notify_all();
    if (inflight_jobs == 0) idle_cv.notify_all();
  }
  completions.clear();
}

// ---------------------------------------------------------------- io loop

void Submitter::Impl::DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg,
                                     void* opaque) noexcept {
  try {
    static_cast<Impl*>(opaque)->HandleDelivery(
        const_cast<rd_kafka_message_t*>(msg));
  } catch (const std::exception& e) {
    log::Error("delivery report handling failed: ", e.what());
  } catch (...) {
    log::Error("delivery report handling failed");
  }
}

void Submitter::Impl::HandleDelivery(rd_kafka_message_t* msg) {
  std::unique_ptr<InFlightMessage> sent(
      static_cast<InFlightMessage*>(msg->_private));
  std::vector<Completion> completions;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++stats.batches_sent;
      return;
    }
    auto it = sealed.find(sent->seq);
    if (it != sealed.end()) {
      FailSlotsLocked(
          *it->second,
          StrCat("could not deliver the batch to ", it->second->topic,
                       ": ", rd_kafka_err2str(msg->err)),
          completions);
      sealed.erase(it);
    }
  }
  // One line per second at most: during an outage every batch fails.
  const absl::Time now = absl::Now();
  ++undelivered_unlogged;
  if (now - last_undelivered_log >= absl::Seconds(1)) {
    log::Warning(undelivered_unlogged, " batch(es) not delivered, latest ",
                 sent->seq, " to ", sent->topic, ": ",
                 rd_kafka_err2str(msg->err));
    last_undelivered_log = now;
    undelivered_unlogged = 0;
  }
  RunCompletions(completions);
}

// Reads up to `max_messages` result messages from `queue`, `per_round` at a
// time; true when it stopped at that limit (more may be waiting).
bool Submitter::Impl::HandleReplies(rd_kafka_queue_t* queue,
                                    size_t max_messages, size_t per_round,
                                    std::vector<Completion>& completions,
                                    std::vector<JobResult>& late) {
  rd_kafka_message_t* msgs[64];
  per_round = std::min<size_t>(per_round, 64);
  for (size_t taken = 0; taken < max_messages; taken += per_round) {
    ssize_t n = rd_kafka_consume_batch_queue(queue, 0, msgs, per_round);
    if (n <= 0) return false;
    for (ssize_t m = 0; m < n; ++m) {
      kafka::MessagePtr msg(msgs[m]);
      if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          log::Warning("reading results from ", reply_topic, ": ",
                       rd_kafka_message_errstr(msg.get()));
        }
        continue;
      }
      std::string_view key(static_cast<const char*>(msg->key), msg->key_len);
      if (key != instance) {
        std::lock_guard<std::mutex> lock(mu);
        ++stats.foreign_results;
        continue;
      }
      std::string_view addressee;
      absl::Status s = decoder.DecodeResults(
          std::string_view(static_cast<const char*>(msg->payload), msg->len),
          addressee, entries);
      if (!s.ok() || addressee != instance) {
        log::Warning("skipping a result message at ", reply_topic, "[",
                     msg->partition, "]@", msg->offset, ": ",
                     s.ok() ? "addressed to another instance" : s.message());
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      // Results of one batch come together: look the batch up once per run.
      uint64_t cached_seq = 0;
      auto it = sealed.end();
      for (const wire::ResultEntry& e : entries) {
        if (e.seq != cached_seq || it == sealed.end()) {
          it = sealed.find(e.seq);
          cached_seq = e.seq;
        }
        Slot* slot = nullptr;
        if (it != sealed.end() && e.index < it->second->slots.size() &&
            it->second->slots[e.index].id == e.id) {
          slot = &it->second->slots[e.index];
        }
        JobResult result;
        result.job_id = e.id;
        result.status = e.status;
        result.data = std::string(e.data);
        result.error = std::string(e.error);
        if (slot == nullptr || slot->finished) {
          ++stats.late_results;
          late.push_back(std::move(result));
          continue;
        }
        Batch& batch = *it->second;
        result.priority = batch.priority;
        slot->finished = true;
        ReleaseLocked(*slot);
        ++(e.status == JobStatus::kProcessedOk ? stats.processed_ok
                                               : stats.processed_error);
        completions.push_back({std::move(slot->done), std::move(result)});
        if (--batch.unfinished == 0) {
          sealed.erase(it);
          it = sealed.end();
        }
      }
    }
  }
  return true;
}

void Submitter::Impl::ReportLate(std::vector<JobResult>& late) {
  if (late.empty()) return;
  LateResultHook hook;
  {
    std::lock_guard<std::mutex> lock(mu);
    hook = late_hook;
  }
  if (hook) {
    for (const JobResult& r : late) {
      try {
        hook(r);
      } catch (...) {
        log::Error("the late-result hook threw");
      }
    }
  }
  late.clear();
}

void Submitter::Impl::IoLoop() {
  std::vector<Completion> completions;
  std::vector<JobResult> late;
  std::vector<InFlightMessage*> to_publish;
  while (!stop_io.load(std::memory_order_acquire)) {
    for (auto& p : producers) rd_kafka_poll(p.get(), 0);  // Delivery reports.
    for (int r = 0; r < reply_streams; ++r) {
      rd_kafka_poll(consumers[r].get(), 0);  // Errors and logs.
    }
    // Realtime results first; the others a round at a time, checking for
    // realtime results again in between.
    bool more = true;
    while (more) {
      if (reply_streams == 2) {
        HandleReplies(reply_queues[0].get(), SIZE_MAX, 64, completions, late);
      }
      // A result message may hold hundreds of results: one at a time.
      more = HandleReplies(reply_queues[reply_streams - 1].get(), 1, 1,
                           completions, late);
      RunCompletions(completions);
    }

    absl::Time now = absl::Now();
    absl::Time next_wake = now + absl::Milliseconds(100);
    {
      std::lock_guard<std::mutex> lock(mu);
      // Batch timeouts, oldest first per priority.
      for (int p = 0; p < kNumPriorities; ++p) {
        auto& fifo = timers[p];
        while (!fifo.empty() && fifo.front().first <= now) {
          auto it = sealed.find(fifo.front().second);
          if (it != sealed.end()) {
            FailSlotsLocked(
                *it->second,
                StrCat("no result within the batch timeout of ",
                             absl::FormatDuration(
                                 config.For(it->second->priority).batch_timeout),
                             " (batch ", it->second->seq, " on ",
                             it->second->topic, ")"),
                completions);
            sealed.erase(it);
          }
          fifo.pop_front();
        }
        if (!fifo.empty()) next_wake = std::min(next_wake, fifo.front().first);
      }
      // Lingering batches.
      for (auto& [processor, batches] : open) {
        for (auto& batch : batches) {
          if (!batch) continue;
          if (batch->linger_deadline <= now) {
            SealLocked(batch, to_publish);
          } else {
            next_wake = std::min(next_wake, batch->linger_deadline);
          }
        }
      }
    }
    Publish(to_publish);
    RunCompletions(completions);
    ReportLate(late);
    now = absl::Now();
    if (next_wake > now) wakeup.Wait(next_wake - now);
  }
}

// --------------------------------------------------------------- shutdown

absl::Status Submitter::Impl::Close(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<InFlightMessage*> to_publish;
  {
    std::unique_lock<std::mutex> lock(mu);
    if (close_done) return absl::OkStatus();
    closed = true;
    room_cv.notify_all();
    for (auto& [processor, batches] : open) {
      for (auto& batch : batches) {
        if (batch) SealLocked(batch, to_publish);
      }
    }
    open.clear();
  }
  Publish(to_publish);
  {
    std::unique_lock<std::mutex> lock(mu);
    idle_cv.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()),
                     [&] { return inflight_jobs == 0; });
  }
  stop_io.store(true, std::memory_order_release);
  wakeup.Notify();
  if (io_thread.joinable()) io_thread.join();

  std::vector<Completion> completions;
  size_t failed = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [seq, batch] : sealed) {
      failed += batch->unfinished;
      FailSlotsLocked(*batch, "submitter closed before the result arrived",
                      completions);
    }
    sealed.clear();
    for (auto& fifo : timers) fifo.clear();
    close_done = true;
  }
  RunCompletions(completions);

  // Hand back what librdkafka still holds, within what is left of the bound.
  for (auto& p : producers) {
    if (!p) continue;
    rd_kafka_flush(p.get(), kafka::ToMillis(std::min(deadline - absl::Now(),
                                                     absl::Seconds(1))));
    rd_kafka_purge(p.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p.get(), 0);  // Frees purged messages' opaques.
  }
  for (int r = 0; r < reply_streams; ++r) {
    if (reply_topic_handles[r] && reply_queues[r]) {
      rd_kafka_consume_stop(reply_topic_handles[r].get(), reply_partitions[r]);
    }
  }
  for (auto& q : reply_queues) q.reset();
  for (auto& t : reply_topic_handles) t.reset();
  for (auto& q : producer_queues) q.reset();
  {
    std::lock_guard<std::mutex> lock(topics_mu);
    for (auto& handles : topic_handles) handles.clear();
  }
  for (auto& c : consumers) {
    kafka::DestroyWithin(std::move(c), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
                         deadline);
  }
  for (auto& p : producers) kafka::DestroyWithin(std::move(p), 0, deadline);
  if (failed > 0) {
    return absl::DeadlineExceededError(StrCat(
        failed, " job(s) had no result when the submitter closed; they were "
                "ended as BATCH_FAILED"));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------- public API

absl::StatusOr<std::unique_ptr<Submitter>> Submitter::Create(Config config) {
  if (auto s = config.Validate(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  if (auto s = impl->Init(); !s.ok()) {
    impl->stop_io = true;
    if (impl->io_thread.joinable()) impl->io_thread.join();
    return s;
  }
  return std::unique_ptr<Submitter>(new Submitter(std::move(impl)));
}

Submitter::Submitter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Submitter::~Submitter() {
  if (impl_) (void)impl_->Close(impl_->config.close_timeout);
}

absl::Status Submitter::Submit(Job& job, Callback done) {
  absl::Status s = impl_->Submit(job, std::move(done));
  if (!s.ok() && s.code() == absl::StatusCode::kInvalidArgument) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->stats.rejected;
  }
  return s;
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
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool has_result = false;
    bool abandoned = false;
    JobResult result;
  };
  auto waiter = std::make_shared<Waiter>();
  Impl* impl = impl_.get();
  absl::Status s = Submit(job, [waiter, impl](const JobResult& r) {
    {
      std::lock_guard<std::mutex> lock(waiter->mu);
      if (!waiter->abandoned) {
        waiter->result = r;
        waiter->has_result = true;
        waiter->cv.notify_one();
        return;
      }
    }
    // The caller gave up waiting: this result is late.
    LateResultHook hook;
    {
      std::lock_guard<std::mutex> lock(impl->mu);
      ++impl->stats.late_results;
      hook = impl->late_hook;
    }
    if (hook) hook(r);
  });
  if (!s.ok()) return s;
  std::unique_lock<std::mutex> lock(waiter->mu);
  if (!waiter->cv.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return waiter->has_result; })) {
    waiter->abandoned = true;
    JobResult r;
    r.job_id = job.id;
    r.status = JobStatus::kBatchFailed;
    r.priority = job.priority;
    r.error = StrCat("SubmitAndWait gave up after ",
                           absl::FormatDuration(timeout),
                           "; the job is still pending");
    return r;
  }
  return std::move(waiter->result);
}

void Submitter::Flush() {
  std::vector<InFlightMessage*> to_publish;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (auto& [processor, batches] : impl_->open) {
      for (auto& batch : batches) {
        if (batch) impl_->SealLocked(batch, to_publish);
      }
    }
  }
  impl_->Publish(to_publish);
}

void Submitter::SetLateResultHook(LateResultHook hook) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->late_hook = std::move(hook);
}

absl::Status Submitter::Close(absl::Duration timeout) {
  return impl_->Close(timeout);
}

Submitter::Stats Submitter::GetStats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stats s = impl_->stats;
  s.inflight_jobs = impl_->inflight_jobs;
  s.inflight_bytes = impl_->inflight_bytes;
  return s;
}

const std::string& Submitter::instance_id() const { return impl_->instance; }
const Config& Submitter::config() const { return impl_->config; }

}  // namespace batchbus

// Processor: two consumers (realtime; normal and slow), three priority
// queues,
// and a ready list per priority that Next() serves highest first.
//
// Threads: one internal poller thread owns the Kafka side. It serves the
// consumer queue (rebalances, errors), reads job messages from the
// per-priority queues that every assigned partition is forwarded to,
// decodes them into ready batches, sends lingering result messages and
// serves delivery reports, which advance the committed offsets. Worker
// threads call Next() and answer tasks; answers are appended to a result
// message per submitter instance under `mu`.
//
// Priority: the poller always drains the realtime queue, and reads normal or
// slow messages only while fewer than `prefetch_jobs` of that priority are
// decoded and waiting, so a slow backlog stays in Kafka (bounded further by
// queued.max.messages.kbytes) and a realtime job never waits behind jobs that
// were decoded before it arrived.
//
// Realtime pacing: while realtime messages arrive late (Kafka timestamp to
// arrival, against its recent minimum), Next() hands out normal and slow jobs
// through a token bucket whose rate lib/pacer.h adapts, so that the
// backlog's traffic stops crowding realtime jobs out upstream.
//
// Offsets: a batch is done when all its jobs' results were acknowledged by
// the broker (or, for a malformed message, when its dead-letter copy was).
// Per partition, the offset after the longest done prefix is stored and
// auto-committed.
#include "batchbus/processor.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "strcat.h"
#include "absl/time/clock.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "pacer.h"
#include "wakeup.h"
#include "wire.h"

namespace batchbus {

struct InBatch;

struct Task::State {
  Processor::Impl* impl = nullptr;
  InBatch* batch = nullptr;
  uint32_t index = 0;
  bool answered = false;
};

// One consumed job message.
struct InBatch {
  int priority = 0;
  int32_t partition = 0;
  int64_t offset = 0;
  size_t reply_key = 0;  // Hash of (instance, reply partition).
  wire::DecodedBatch decoded;
  std::vector<Task::State> tasks;
  uint32_t size = 0;
  uint32_t handed = 0;    // Next index to hand out.
  uint32_t answered = 0;  // Results appended to a result message.
  uint32_t acked = 0;     // Results acknowledged by the broker.
  uint32_t live = 0;      // Task objects still pointing here.
  bool dead_letter_pending = false;
  bool revoked = false;

  bool done() const { return acked == size && !dead_letter_pending; }
  // Nothing refers to this batch any more: it may be freed.
  bool idle() const {
    return answered == handed && acked == answered && live == 0;
  }
};

namespace {

// Results on their way to one submitter instance.
struct ResultBuffer {
  std::string topic;
  int32_t partition = 0;
  std::string instance;
  wire::ResultWriter writer;
  std::vector<std::pair<InBatch*, uint32_t>> acks;
  absl::Time deadline;
  bool realtime = false;  // Holds a realtime result.
};

// Handed to librdkafka with each result or dead-letter message.
struct OutMessage {
  std::string topic;
  int32_t partition = RD_KAFKA_PARTITION_UA;
  std::string key;
  std::string payload;
  std::vector<std::pair<InBatch*, uint32_t>> acks;  // Result messages.
  InBatch* dead_letter_for = nullptr;                // Dead-letter copies.
  bool realtime = false;
  std::string dead_letter_reason;
};

using PartitionKey = std::pair<int, int32_t>;  // (priority, partition)

}  // namespace

struct Processor::Impl {
  Config config;
  std::string name;
  std::array<std::string, kNumPriorities> topics;
  std::string dead_letter_topic;

  // [0] reads the realtime topic (group "{group}.realtime"), [1] normal and
  // slow (group "{group}"). Realtime jobs arrive over a connection of their
  // own, never in the same fetches as a slow backlog.
  std::array<kafka::KafkaPtr, 2> consumers;
  kafka::KafkaPtr producer;
  // Realtime results go out through a producer (and connection) of their
  // own, never queued behind large slow result messages.
  kafka::KafkaPtr rt_producer;
  kafka::QueuePtr rt_producer_queue;
  std::array<kafka::QueuePtr, 2> consumer_queues;
  kafka::QueuePtr producer_queue;
  std::array<kafka::QueuePtr, kNumPriorities> priority_queues;
  WakeupPipe wakeup;
  std::thread poller;
  std::atomic<bool> stop_poller{false};
  std::atomic<bool> shutdown{false};
  bool closed = false;

  mutable std::mutex mu;
  std::condition_variable ready_cv;    // Next() waiters.
  std::condition_variable answer_cv;   // Close() waiting for answers/acks.
  std::array<std::deque<InBatch*>, kNumPriorities> ready;
  std::array<size_t, kNumPriorities> ready_jobs{};  // Decoded, not handed.
  absl::flat_hash_map<PartitionKey, std::deque<std::unique_ptr<InBatch>>>
      partitions;
  absl::flat_hash_set<PartitionKey> assigned;
  std::list<std::unique_ptr<InBatch>> graveyard;  // Revoked, maybe in use.
  // Open result messages by destination: hash of (instance, partition).
  absl::flat_hash_map<size_t, ResultBuffer> results;
  std::vector<OutMessage*> retry;  // Not accepted by librdkafka yet.
  size_t outstanding_answers = 0;  // Handed out, not answered.
  size_t outstanding_messages = 0;  // Produced, no delivery report yet.
  Processor::Stats stats;
  Pacer pacer{Pacer::Options{}};
  absl::flat_hash_set<std::string> warned_groups;

  wire::Decoder decoder;  // Poller thread only.

  absl::Status Init();
  void PollerLoop();
  bool ReadPriority(int p);
  void AcceptMessage(int p, rd_kafka_message_t* msg);
  void DeadLetterLocked(int p, rd_kafka_message_t* msg, std::string_view why,
                        std::unique_ptr<InBatch> batch);
  absl::Status Answer(Task::State* state, bool ok, std::string_view text);
  bool Release(Task::State* state);
  void FlushLocked(ResultBuffer& buffer);
  void ProduceLocked(OutMessage* out);
  void HandleDelivery(rd_kafka_message_t* msg);
  void CommitLocked(int p, int32_t partition);
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions);
  rd_kafka_t* ConsumerFor(int priority) const {
    return consumers[priority == 0 ? 0 : 1].get();
  }
  int PriorityOfTopic(std::string_view topic) const;
  absl::StatusOr<Task> Next(absl::Duration timeout);
  absl::Status Close(absl::Duration timeout);

  static void DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg,
                             void* opaque) noexcept;
  static void RebalanceCallback(rd_kafka_t*, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions,
                                void* opaque) noexcept;
};

// ------------------------------------------------------------------ setup

absl::Status Processor::Impl::Init() {
  if (!wakeup.ok()) return absl::InternalError("could not create a pipe");
  Pacer::Options pacing;
  pacing.target = config.realtime_pacing_target;
  pacer = Pacer(pacing);
  for (Priority p : kAllPriorities) {
    topics[static_cast<int>(p)] = config.TopicFor(name, p);
  }
  dead_letter_topic = config.DeadLetterTopicFor(name);

  auto pconf = kafka::MakeConf(
      config, kafka::Role::kProducer,
      {{"linger.ms", "0"},
       {"message.max.bytes",
        std::to_string(std::max<size_t>(config.max_message_bytes + 4096,
                                        1'000'000))}});
  if (!pconf.ok()) return pconf.status();
  rd_kafka_conf_set_dr_msg_cb(pconf->get(), &Impl::DeliveryReport);
  rd_kafka_conf_set_opaque(pconf->get(), this);
  auto rtp = kafka::MakeHandle(RD_KAFKA_PRODUCER,
                               kafka::ConfPtr(rd_kafka_conf_dup(pconf->get())));
  if (!rtp.ok()) return rtp.status();
  rt_producer = std::move(*rtp);
  auto p = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
  if (!p.ok()) return p.status();
  producer = std::move(*p);

  std::vector<std::string> wanted(topics.begin(), topics.end());
  wanted.push_back(dead_letter_topic);
  wanted.push_back(config.ReplyTopic());
  if (auto s = kafka::EnsureTopics(producer.get(), config, wanted,
                                   absl::Seconds(15));
      !s.ok()) {
    return s;
  }

  auto cconf = kafka::MakeConf(
      config, kafka::Role::kConsumer,
      {{"group.id", config.GroupIdFor(name)},
       {"enable.auto.offset.store", "false"},
       {"enable.auto.commit", "true"},
       {"auto.commit.interval.ms", "500"},
       {"auto.offset.reset", "earliest"},
       {"enable.partition.eof", "false"},
       // The broker's default minimum: a dead member's partitions move on
       // after this long, and so does recovery after a broker restart.
       {"session.timeout.ms", "6000"},
       {"heartbeat.interval.ms", "1000"},
       {"fetch.wait.max.ms", "10"},
       {"fetch.error.backoff.ms", "10"},
       {"queued.max.messages.kbytes", std::to_string(config.fetch_queue_kbytes)},
       {"fetch.message.max.bytes",
        std::to_string(std::max<size_t>(config.max_message_bytes + 4096,
                                        1'048'576))}});
  if (!cconf.ok()) return cconf.status();
  rd_kafka_conf_set_rebalance_cb(cconf->get(), &Impl::RebalanceCallback);
  rd_kafka_conf_set_opaque(cconf->get(), this);
  for (int c = 0; c < 2; ++c) {
    kafka::ConfPtr conf(rd_kafka_conf_dup(cconf->get()));
    if (c == 0) {
      // The realtime consumer has a group of its own: in a shared group, two
      // members per processor double the rebalances at every start and
      // stop, and each rebalance hands batches in flight to someone else.
      char err[512];
      const std::string group = config.GroupIdFor(name) + ".realtime";
      rd_kafka_conf_set(conf.get(), "group.id", group.c_str(), err, sizeof err);
    }
    auto handle = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(conf));
    if (!handle.ok()) return handle.status();
    consumers[c] = std::move(*handle);
    rd_kafka_poll_set_consumer(consumers[c].get());
    consumer_queues[c].reset(rd_kafka_queue_get_consumer(consumers[c].get()));
    rd_kafka_queue_io_event_enable(consumer_queues[c].get(), wakeup.write_fd(),
                                   "1", 1);
  }
  producer_queue.reset(rd_kafka_queue_get_main(producer.get()));
  rt_producer_queue.reset(rd_kafka_queue_get_main(rt_producer.get()));
  rd_kafka_queue_io_event_enable(rt_producer_queue.get(), wakeup.write_fd(),
                                 "1", 1);
  rd_kafka_queue_io_event_enable(producer_queue.get(), wakeup.write_fd(), "1",
                                 1);
  for (int p = 0; p < kNumPriorities; ++p) {
    // A queue is forwarded to only from partitions of its own handle.
    priority_queues[p].reset(rd_kafka_queue_new(ConsumerFor(p)));
    rd_kafka_queue_io_event_enable(priority_queues[p].get(), wakeup.write_fd(),
                                   "1", 1);
  }

  for (int c = 0; c < 2; ++c) {
    kafka::PartitionListPtr subscription(rd_kafka_topic_partition_list_new(2));
    for (int p = 0; p < kNumPriorities; ++p) {
      if ((p == 0) != (c == 0)) continue;
      rd_kafka_topic_partition_list_add(subscription.get(), topics[p].c_str(),
                                        RD_KAFKA_PARTITION_UA);
    }
    if (rd_kafka_resp_err_t err =
            rd_kafka_subscribe(consumers[c].get(), subscription.get())) {
      return kafka::ToStatus(err, "subscribing to the job topics");
    }
  }
  poller = std::thread([this] { PollerLoop(); });
  log::Info("processor ", name, " consuming ", topics[0], ", ", topics[1],
            ", ", topics[2], " in group ", config.GroupIdFor(name));
  return absl::OkStatus();
}

int Processor::Impl::PriorityOfTopic(std::string_view topic) const {
  for (int p = 0; p < kNumPriorities; ++p) {
    if (topics[p] == topic) return p;
  }
  return -1;
}

// -------------------------------------------------------------- rebalance

void Processor::Impl::RebalanceCallback(
    rd_kafka_t* rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t* partitions, void* opaque) noexcept {
  try {
    static_cast<Impl*>(opaque)->Rebalance(rk, err, partitions);
  } catch (const std::exception& e) {
    log::Error("rebalance handling failed: ", e.what());
  } catch (...) {
    log::Error("rebalance handling failed");
  }
}

void Processor::Impl::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* list) {
  // With partition.assignment.strategy=cooperative-sticky (kafka.*), only
  // the partitions that change owner move. Not the default: librdkafka
  // 2.0.2 can abort in its sticky assignor when a consumer closes.
  const bool cooperative =
      std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative) {
      kafka::ErrorPtr e(rd_kafka_incremental_assign(rk, list));
      if (e) log::Warning("incremental assign: ", rd_kafka_error_string(e.get()));
    } else {
      rd_kafka_assign(rk, list);
    }
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < list->cnt; ++i) {
      const auto& tp = list->elems[i];
      const int p = PriorityOfTopic(tp.topic);
      if (p < 0) continue;
      kafka::QueuePtr pq(
          rd_kafka_queue_get_partition(rk, tp.topic, tp.partition));
      rd_kafka_queue_forward(pq.get(), priority_queues[p].get());
      assigned.insert({p, tp.partition});
    }
    log::Info("processor ", name, " assigned ", list->cnt, " partition(s)");
    return;
  }
  // Revoked (or an error): stop handing out jobs of these partitions. Jobs
  // already handed out are still answered; their offsets are not committed
  // by us any more, so the next owner processes those batches again.
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < list->cnt; ++i) {
      const auto& tp = list->elems[i];
      const int p = PriorityOfTopic(tp.topic);
      if (p < 0) continue;
      const PartitionKey key{p, tp.partition};
      assigned.erase(key);
      kafka::QueuePtr pq(
          rd_kafka_queue_get_partition(rk, tp.topic, tp.partition));
      rd_kafka_queue_forward(pq.get(), nullptr);
      auto it = partitions.find(key);
      if (it == partitions.end()) continue;
      auto& r = ready[p];
      for (auto rit = r.begin(); rit != r.end();) {
        if ((*rit)->partition == tp.partition) {
          ready_jobs[p] -= (*rit)->size - (*rit)->handed;
          rit = r.erase(rit);
        } else {
          ++rit;
        }
      }
      for (auto& batch : it->second) {
        batch->revoked = true;
        batch->size = batch->handed;  // The rest is the next owner's.
        graveyard.push_back(std::move(batch));
      }
      partitions.erase(it);
    }
  }
  rd_kafka_commit(rk, nullptr, 1);  // Stored offsets, async.
  if (cooperative) {
    kafka::ErrorPtr e(rd_kafka_incremental_unassign(rk, list));
    if (e) log::Warning("incremental unassign: ", rd_kafka_error_string(e.get()));
  } else {
    rd_kafka_assign(rk, nullptr);
  }
  log::Info("processor ", name, " revoked ", list->cnt, " partition(s)");
}

// ----------------------------------------------------------------- poller

void Processor::Impl::PollerLoop() {
  while (!stop_poller.load(std::memory_order_acquire)) {
    bool busy = false;
    // Rebalances and consumer errors.
    for (auto& consumer : consumers) {
      while (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 0)) {
        kafka::MessagePtr msg(m);
        if (msg->err) {
          log::Warning("processor ", name, ": ",
                       rd_kafka_message_errstr(msg.get()));
        } else {
          // Only when a partition was not forwarded (should not happen).
          const int p = PriorityOfTopic(rd_kafka_topic_name(msg->rkt));
          if (p >= 0) AcceptMessage(p, msg.release());
        }
      }
    }
    rd_kafka_poll(rt_producer.get(), 0);  // Delivery reports.
    rd_kafka_poll(producer.get(), 0);
    if (!shutdown.load(std::memory_order_acquire)) {
      for (int p = 0; p < kNumPriorities; ++p) busy |= ReadPriority(p);
    }

    absl::Time now = absl::Now();
    absl::Time next_wake = now + absl::Milliseconds(100);
    {
      std::lock_guard<std::mutex> lock(mu);
      std::vector<OutMessage*> again;
      again.swap(retry);
      for (OutMessage* out : again) ProduceLocked(out);
      for (auto& [key, buffer] : results) {
        if (buffer.writer.empty()) continue;
        if (buffer.deadline <= now) {
          FlushLocked(buffer);
        } else {
          next_wake = std::min(next_wake, buffer.deadline);
        }
      }
      if (!retry.empty()) next_wake = std::min(next_wake, now + absl::Milliseconds(50));
      for (auto it = graveyard.begin(); it != graveyard.end();) {
        it = (*it)->idle() ? graveyard.erase(it) : std::next(it);
      }
    }
    if (busy) continue;
    now = absl::Now();
    if (next_wake > now) wakeup.Wait(next_wake - now);
  }
}

// Reads what priority `p` may take now; true when it took something.
bool Processor::Impl::ReadPriority(int p) {
  // Realtime is always drained. A lower priority takes one message (one
  // batch) at a time while below its prefetch bound, so the bound is
  // overshot by at most one batch.
  size_t room = 64;
  if (p != static_cast<int>(Priority::kRealtime)) {
    std::lock_guard<std::mutex> lock(mu);
    if (ready_jobs[p] >= config.prefetch_jobs) return false;
    room = 1;
  }
  rd_kafka_message_t* msgs[64];
  ssize_t n = rd_kafka_consume_batch_queue(priority_queues[p].get(), 0, msgs,
                                           room);
  for (ssize_t i = 0; i < n; ++i) AcceptMessage(p, msgs[i]);
  return n > 0;
}

void Processor::Impl::AcceptMessage(int p, rd_kafka_message_t* raw) {
  kafka::MessagePtr msg(raw);
  if (msg->err) {
    if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      log::Warning("processor ", name, ": ", rd_kafka_message_errstr(msg.get()));
    }
    return;
  }
  // How late a realtime message is: the producer's timestamp to now.
  absl::Time arrived = absl::InfinitePast();
  absl::Duration delay;
  if (p == 0) {
    rd_kafka_timestamp_type_t tstype;
    const int64_t ts = rd_kafka_message_timestamp(msg.get(), &tstype);
    if (ts >= 0) {
      arrived = absl::Now();
      delay = arrived - absl::FromUnixMillis(ts);
      log::Debug("realtime message ", msg->partition, "@", msg->offset,
                 " reached the poller ", absl::ToInt64Milliseconds(delay),
                 " ms after it was produced");
    }
  }
  auto batch = std::make_unique<InBatch>();
  batch->priority = p;
  batch->partition = msg->partition;
  batch->offset = msg->offset;
  absl::Status decoded = decoder.DecodeBatch(
      std::string_view(static_cast<const char*>(msg->payload), msg->len),
      batch->decoded);
  if (decoded.ok() && batch->decoded.processor != name) {
    decoded = absl::InvalidArgumentError(
        StrCat("batch for processor '", batch->decoded.processor,
                     "' on a topic of '", name, "'"));
  }
  std::lock_guard<std::mutex> lock(mu);
  if (config.realtime_pacing && arrived != absl::InfinitePast()) {
    pacer.OnRealtime(arrived, delay);
  }
  const PartitionKey key{p, msg->partition};
  if (!assigned.contains(key)) return;  // Revoked while queued.
  if (!decoded.ok()) {
    DeadLetterLocked(p, msg.get(), FromAbsl(decoded.message()), std::move(batch));
    return;
  }
  ++stats.batches_received;
  batch->reply_key =
      absl::HashOf(batch->decoded.instance, batch->decoded.reply_partition);
  batch->size = static_cast<uint32_t>(batch->decoded.jobs.size());
  batch->tasks.resize(batch->size);
  for (uint32_t i = 0; i < batch->size; ++i) {
    batch->tasks[i] = {this, batch.get(), i, false};
  }
  InBatch* b = batch.get();
  partitions[key].push_back(std::move(batch));
  if (b->size == 0) {
    CommitLocked(p, b->partition);
    return;
  }
  ready[p].push_back(b);
  ready_jobs[p] += b->size;
  ready_cv.notify_all();
}

void Processor::Impl::DeadLetterLocked(int p, rd_kafka_message_t* msg,
                                       std::string_view why,
                                       std::unique_ptr<InBatch> batch) {
  ++stats.malformed_messages;
  const std::string where = StrCat(topics[p], "[", msg->partition, "]@",
                                         msg->offset);
  log::Warning("malformed message at ", where, " (", why,
               "); copied to ", dead_letter_topic, " and skipped");
  batch->size = 0;
  batch->dead_letter_pending = true;
  batch->decoded.storage.reset();
  auto* out = new OutMessage;
  out->topic = dead_letter_topic;
  if (msg->key) out->key.assign(static_cast<const char*>(msg->key), msg->key_len);
  out->payload.assign(static_cast<const char*>(msg->payload), msg->len);
  out->dead_letter_for = batch.get();
  out->dead_letter_reason = StrCat(where, ": ", why);
  partitions[{p, msg->partition}].push_back(std::move(batch));
  ProduceLocked(out);
}

// ---------------------------------------------------------------- results

absl::Status Processor::Impl::Answer(Task::State* state, bool ok,
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
  // Bytes this entry adds to a result message (fixed fields + the value).
  const size_t entry_bytes =
      wire::kResultOverhead + (ok ? text.size() : json::QuotedSize(text));
  if (entry_bytes + wire::kResultOverhead > config.max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "result of ", text.size(), " bytes does not fit in one message ",
        "(max_message_bytes = ", config.max_message_bytes, ")"));
  }
  std::lock_guard<std::mutex> lock(mu);
  if (state->answered) {
    return absl::FailedPreconditionError("job was already answered");
  }
  state->answered = true;
  InBatch* batch = state->batch;
  const wire::DecodedBatch& d = batch->decoded;
  const wire::DecodedJob& job = d.jobs[state->index];
  ResultBuffer& buffer = results[batch->reply_key];
  const bool same_destination = buffer.instance == d.instance &&
                                buffer.partition == d.reply_partition &&
                                buffer.topic == d.reply_topic;
  if (!buffer.writer.empty() &&
      (!same_destination ||
       buffer.writer.size() + entry_bytes > config.max_message_bytes)) {
    FlushLocked(buffer);  // Full, or (hash collision) another destination.
  }
  if (buffer.writer.empty()) {
    // The reply address travels in every batch; take the latest.
    if (!same_destination) {
      buffer.instance = std::string(d.instance);
      buffer.topic = std::string(d.reply_topic);
      buffer.partition = d.reply_partition;
    }
    buffer.writer.Begin(buffer.instance);
    buffer.deadline = absl::Now() + config.result_linger;
    wakeup.Notify();
  }
  if (ok) {
    buffer.writer.AddOk(d.seq, state->index, job.id, text);
    ++stats.processed_ok;
  } else {
    buffer.writer.AddError(d.seq, state->index, job.id, text);
    ++stats.processed_error;
  }
  if (!buffer.acks.empty() && buffer.acks.back().first == batch) {
    ++buffer.acks.back().second;
  } else {
    buffer.acks.emplace_back(batch, 1);
  }
  ++batch->answered;
  --outstanding_answers;
  const bool realtime = batch->priority == static_cast<int>(Priority::kRealtime);
  buffer.realtime |= realtime;
  if (realtime || batch->answered == batch->size ||
      buffer.writer.size() >= config.result_max_bytes) {
    FlushLocked(buffer);
  }
  if (outstanding_answers == 0) answer_cv.notify_all();
  return absl::OkStatus();
}

// A Task lets go of its state: the batch may now be committed or freed.
// Returns false, releasing nothing, when the job was never answered (the
// caller answers it first, then releases).
bool Processor::Impl::Release(Task::State* state) {
  std::lock_guard<std::mutex> lock(mu);
  if (!state->answered) return false;
  InBatch* batch = state->batch;
  if (--batch->live == 0 && batch->done() && !batch->revoked) {
    CommitLocked(batch->priority, batch->partition);
  }
  return true;
}

void Processor::Impl::FlushLocked(ResultBuffer& buffer) {
  if (buffer.writer.empty()) return;
  auto* out = new OutMessage;
  out->topic = buffer.topic;
  out->partition = buffer.partition;
  out->key = buffer.instance;
  out->payload = buffer.writer.Finish();
  out->acks.swap(buffer.acks);
  out->realtime = buffer.realtime;
  buffer.realtime = false;
  ProduceLocked(out);
}

void Processor::Impl::ProduceLocked(OutMessage* out) {
  rd_kafka_resp_err_t err;
  if (out->dead_letter_for != nullptr) {
    err = rd_kafka_producev(
        producer.get(), RD_KAFKA_V_TOPIC(out->topic.c_str()),
        RD_KAFKA_V_KEY(out->key.data(), out->key.size()),
        RD_KAFKA_V_VALUE(out->payload.data(), out->payload.size()),
        RD_KAFKA_V_HEADER("batchbus.error", out->dead_letter_reason.data(),
                          static_cast<ssize_t>(out->dead_letter_reason.size())),
        RD_KAFKA_V_OPAQUE(out), RD_KAFKA_V_END);
  } else {
    err = rd_kafka_producev(
        (out->realtime ? rt_producer : producer).get(),
        RD_KAFKA_V_TOPIC(out->topic.c_str()),
        RD_KAFKA_V_PARTITION(out->partition),
        RD_KAFKA_V_KEY(out->key.data(), out->key.size()),
        RD_KAFKA_V_VALUE(out->payload.data(), out->payload.size()),
        RD_KAFKA_V_OPAQUE(out), RD_KAFKA_V_END);
  }
  if (err) {
    log::Warning("could not queue a message for ", out->topic, ": ",
                 rd_kafka_err2str(err), "; will retry");
    retry.push_back(out);
    return;
  }
  ++outstanding_messages;
}

void Processor::Impl::DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg,
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

void Processor::Impl::HandleDelivery(rd_kafka_message_t* msg) {
  auto* out = static_cast<OutMessage*>(msg->_private);
  std::lock_guard<std::mutex> lock(mu);
  --outstanding_messages;
  if (msg->err) {
    // Keep it: results must reach the broker before their batch commits.
    if (!stop_poller.load()) {
      log::Warning("message to ", out->topic, " not delivered (",
                   rd_kafka_err2str(msg->err), "); retrying");
      retry.push_back(out);
    } else {
      delete out;
    }
    answer_cv.notify_all();
    return;
  }
  std::unique_ptr<OutMessage> owned(out);
  if (out->dead_letter_for != nullptr) {
    InBatch* b = out->dead_letter_for;
    b->dead_letter_pending = false;
    if (!b->revoked) CommitLocked(b->priority, b->partition);
  } else {
    ++stats.result_messages;
    for (auto& [b, n] : out->acks) {
      b->acked += n;
      if (b->done() && !b->revoked) CommitLocked(b->priority, b->partition);
    }
  }
  answer_cv.notify_all();
}

void Processor::Impl::CommitLocked(int p, int32_t partition) {
  auto it = partitions.find({p, partition});
  if (it == partitions.end()) return;
  auto& q = it->second;
  int64_t next_offset = -1;
  // The batch objects go too, so only those that nothing refers to.
  while (!q.empty() && q.front()->done() && q.front()->idle()) {
    next_offset = q.front()->offset + 1;
    q.pop_front();
    ++stats.batches_committed;
  }
  if (next_offset < 0) return;
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topics[p].c_str(), partition)
      ->offset = next_offset;
  if (rd_kafka_resp_err_t err = rd_kafka_offsets_store(ConsumerFor(p),
                                                       list.get())) {
    log::Warning("could not store offset ", next_offset, " for ", topics[p],
                 "[", partition, "]: ", rd_kafka_err2str(err));
  }
}

// ------------------------------------------------------------------- next

absl::StatusOr<Task> Processor::Impl::Next(absl::Duration timeout) {
  absl::Time deadline = absl::InfiniteFuture();  // Read the clock only to wait.
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    if (shutdown.load(std::memory_order_acquire)) {
      return absl::CancelledError("processor is shutting down");
    }
    // Until the next normal or slow job may go, when realtime pacing holds
    // them back.
    absl::Duration pace_wait = absl::InfiniteDuration();
    for (int p = 0; p < kNumPriorities; ++p) {
      auto& r = ready[p];
      if (r.empty()) continue;
      if (p != 0 && pacer.engaged() && !pacer.TryTake(absl::Now(), pace_wait)) {
        ++stats.paced;
        break;
      }
      InBatch* b = r.front();
      Task::State* state = &b->tasks[b->handed++];
      ++b->live;
      if (b->handed == b->size) r.pop_front();
      ++outstanding_answers;
      ++stats.handed_out;
      const bool was_full = ready_jobs[p] >= config.prefetch_jobs;
      --ready_jobs[p];
      if (was_full && ready_jobs[p] < config.prefetch_jobs) wakeup.Notify();
      return Task(state);
    }
    const absl::Time now = absl::Now();
    if (deadline == absl::InfiniteFuture()) deadline = now + timeout;
    if (now >= deadline) {
      return absl::DeadlineExceededError("no job within the timeout");
    }
    // Wake at least every 50 ms to notice a Shutdown() from a signal
    // handler, which cannot notify a condition variable.
    ready_cv.wait_for(lock, absl::ToChronoNanoseconds(std::min(
                                {deadline - now, absl::Milliseconds(50),
                                 pace_wait})));
  }
}

// ---------------------------------------------------------------- closing

absl::Status Processor::Impl::Close(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  shutdown.store(true, std::memory_order_release);
  {
    std::unique_lock<std::mutex> lock(mu);
    if (closed) return absl::OkStatus();
    closed = true;
    ready_cv.notify_all();
    // Handed-out jobs get answered, then every result is flushed and
    // acknowledged; the poller keeps serving delivery reports meanwhile.
    answer_cv.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()),
                       [&] { return outstanding_answers == 0; });
    for (auto& [key, buffer] : results) FlushLocked(buffer);
    answer_cv.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()),
                       [&] {
                         return outstanding_messages == 0 && retry.empty();
                       });
  }
  stop_poller.store(true, std::memory_order_release);
  wakeup.Notify();
  if (poller.joinable()) poller.join();

  absl::Status status = absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu);
    if (outstanding_answers > 0 || outstanding_messages > 0 || !retry.empty()) {
      status = absl::DeadlineExceededError(StrCat(
          "closed with ", outstanding_answers, " unanswered job(s) and ",
          outstanding_messages + retry.size(),
          " unacknowledged result message(s); their batches stay "
          "uncommitted and will be processed again"));
    }
  }
  // Leave the group, committing stored offsets, within the bound. Both
  // members close at once.
  std::array<kafka::QueuePtr, 2> close_queues;
  for (int c = 0; c < 2; ++c) {
    if (!consumers[c]) continue;
    rd_kafka_commit(consumers[c].get(), nullptr, 1);
    close_queues[c].reset(rd_kafka_queue_new(consumers[c].get()));
    kafka::ErrorPtr err(rd_kafka_consumer_close_queue(consumers[c].get(),
                                                      close_queues[c].get()));
    if (err) close_queues[c].reset();
  }
  auto closing = [&] {
    for (int c = 0; c < 2; ++c) {
      if (close_queues[c] && !rd_kafka_consumer_closed(consumers[c].get())) {
        return true;
      }
    }
    return false;
  };
  while (closing() && absl::Now() < deadline) {
    for (int c = 0; c < 2; ++c) {
      if (!close_queues[c]) continue;
      if (rd_kafka_event_t* ev = rd_kafka_queue_poll(close_queues[c].get(), 25)) {
        kafka::EventPtr event(ev);
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
          Rebalance(consumers[c].get(), rd_kafka_event_error(ev),
                    rd_kafka_event_topic_partition_list(ev));
        }
      }
    }
  }
  for (auto& q : close_queues) q.reset();
  for (auto& q : priority_queues) q.reset();
  for (auto& q : consumer_queues) q.reset();
  for (kafka::KafkaPtr* p : {&producer, &rt_producer}) {
    if (!*p) continue;
    rd_kafka_purge(p->get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->get(), 0);
  }
  producer_queue.reset();
  rt_producer_queue.reset();
  for (auto& consumer : consumers) {
    kafka::DestroyWithin(std::move(consumer),
                         RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, deadline);
  }
  kafka::DestroyWithin(std::move(producer), 0, deadline);
  kafka::DestroyWithin(std::move(rt_producer), 0, deadline);
  {
    std::lock_guard<std::mutex> lock(mu);
    for (OutMessage* out : retry) delete out;
    retry.clear();
  }
  return status;
}

// ------------------------------------------------------------------- Task

Task::Task(Task&& other) noexcept : state_(other.state_) {
  other.state_ = nullptr;
}

Task& Task::operator=(Task&& other) noexcept {
  if (this != &other) {
    this->~Task();
    state_ = other.state_;
    other.state_ = nullptr;
  }
  return *this;
}

Task::~Task() {
  if (state_ == nullptr) return;
  if (!state_->impl->Release(state_)) {
    (void)Fail("handler returned without answering the job");
    state_->impl->Release(state_);
  }
  state_ = nullptr;
}

const JobId& Task::id() const { return state_->batch->decoded.jobs[state_->index].id; }
std::string_view Task::processor() const { return state_->batch->decoded.processor; }
std::string_view Task::group() const {
  return state_->batch->decoded.jobs[state_->index].group;
}
Priority Task::priority() const {
  return static_cast<Priority>(state_->batch->priority);
}
std::string_view Task::data() const {
  return state_->batch->decoded.jobs[state_->index].data;
}

bool Task::answered() const {
  if (state_ == nullptr) return true;
  std::lock_guard<std::mutex> lock(state_->impl->mu);
  return state_->answered;
}

absl::Status Task::Complete(std::string_view result_json) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->impl->Answer(state_, true, result_json);
}

absl::Status Task::Fail(std::string_view error) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->impl->Answer(state_, false, error);
}

// -------------------------------------------------------------- Processor

absl::StatusOr<std::unique_ptr<Processor>> Processor::Create(
    Config config, std::string processor) {
  if (auto s = config.Validate(); !s.ok()) return s;
  if (processor.empty()) {
    return absl::InvalidArgumentError("processor name must not be empty");
  }
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->name = std::move(processor);
  if (auto s = impl->Init(); !s.ok()) {
    impl->stop_poller = true;
    if (impl->poller.joinable()) impl->poller.join();
    return s;
  }
  return std::unique_ptr<Processor>(new Processor(std::move(impl)));
}

Processor::Processor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Processor::~Processor() {
  if (impl_) (void)impl_->Close(impl_->config.close_timeout);
}

absl::StatusOr<Task> Processor::Next(absl::Duration timeout) {
  return impl_->Next(timeout);
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
      bool first = false;
      {
        std::lock_guard<std::mutex> lock(impl_->mu);
        ++impl_->stats.unknown_group;
        first = impl_->warned_groups.insert(std::string(task->group())).second;
      }
      if (first) {
        log::Warning("processor ", impl_->name, " has no handler for group '",
                     task->group(), "'; such jobs end PROCESSED_ERROR");
      }
      (void)task->Fail(StrCat("no handler for group '", task->group(), "'"));
      continue;
    }
    try {
      it->second(*task);
    } catch (const std::exception& e) {
      if (!task->answered()) {
        (void)task->Fail(StrCat("handler threw: ", e.what()));
      }
    } catch (...) {
      if (!task->answered()) (void)task->Fail("handler threw an exception");
    }
  }
}

void Processor::Shutdown() {
  impl_->shutdown.store(true, std::memory_order_release);
  impl_->wakeup.Notify();
}

bool Processor::shutdown_requested() const {
  return impl_->shutdown.load(std::memory_order_acquire);
}

absl::Status Processor::Close(absl::Duration timeout) {
  return impl_->Close(timeout);
}

Processor::Stats Processor::GetStats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

const std::string& Processor::name() const { return impl_->name; }

}  // namespace batchbus

#include "publisher.h"

#include <algorithm>
#include <utility>

#include "log.h"
#include "strcat.h"

namespace batchbus {

absl::StatusOr<std::unique_ptr<Publisher::LaneProducer>>
Publisher::NewLaneProducer() {
  auto p = kafka::Producer::Create(
      config_, {{"queue.buffering.max.messages", "1000000"}}, this, wakeup_fd_);
  if (!p.ok()) return p.status();
  auto lane = std::make_unique<LaneProducer>();
  lane->producer = std::move(*p);
  return lane;
}

absl::Status Publisher::Start(int wakeup_fd) {
  wakeup_fd_ = wakeup_fd;
  for (Lane lane : kAllLanes) {
    auto p = NewLaneProducer();
    if (!p.ok()) return p.status();
    MutexLock lock(&topics_mu_);
    lanes_[lane] = std::move(*p);
  }
  return absl::OkStatus();
}

void Publisher::Publish(std::vector<std::unique_ptr<BatchMessage>>& messages) {
  if (messages.empty()) return;
  // Batches that did not go, reported after leaving the section that Close
  // waits for: the listener runs callbacks, and Close must not wait for
  // those.
  Unsent unsent;
  publishing_.fetch_add(1);
  if (closing_.load()) {
    for (auto& msg : messages) {
      unsent.emplace_back(msg->seq,
                          "the submitter closed before the batch was sent");
    }
  } else {
    for (auto& msg : messages) Produce(std::move(msg), unsent);
  }
  publishing_.fetch_sub(1);
  messages.clear();
  for (auto& [seq, why] : unsent) listener_->OnUnsent(seq, why);
}

void Publisher::Produce(std::unique_ptr<BatchMessage> msg, Unsent& unsent) {
  std::string error;
  TopicState* topic = Topic(*msg, error);
  if (topic == nullptr) {
    unsent.emplace_back(msg->seq, StrCat("could not publish the batch to ",
                                         msg->topic, ": ", error));
    return;
  }
  std::vector<Window::Chunk> chunks;
  {
    MutexLock lock(&topics_mu_);
    topic->window.SetPartitions(
        topic->partition_count.load(std::memory_order_relaxed));
    const size_t bytes = msg->payload.size();
    topic->window.Offer(std::move(msg), bytes);
    chunks = topic->window.Ready();
  }
  Send(*topic, std::move(chunks), unsent);
}

void Publisher::Send(TopicState& topic, std::vector<Window::Chunk> chunks,
                     Unsent& unsent) {
  while (!chunks.empty()) {
    std::vector<int32_t> freed;  // Partitions of refused batches.
    for (Window::Chunk& chunk : chunks) {
      std::vector<rd_kafka_message_t> raw(chunk.messages.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        BatchMessage& m = *chunk.messages[i];
        m.partition = chunk.partition;
        raw[i] = rd_kafka_message_t{};
        raw[i].payload = m.payload.data();
        raw[i].len = m.payload.size();
        raw[i]._private = &m;
        if (chunk.partition < 0) {  // librdkafka's partitioner chooses.
          raw[i].err = rd_kafka_producev(
              topic.producer, RD_KAFKA_V_RKT(topic.handle.get()),
              RD_KAFKA_V_VALUE(raw[i].payload, raw[i].len),
              RD_KAFKA_V_OPAQUE(&m), RD_KAFKA_V_END);
        }
      }
      if (chunk.partition >= 0) {
        // One call, so that the chunk is queued whole and goes in one
        // request; flags 0: the payloads stay ours until the reports.
        rd_kafka_produce_batch(topic.handle.get(), chunk.partition, 0,
                               raw.data(), static_cast<int>(raw.size()));
      }
      for (size_t i = 0; i < raw.size(); ++i) {
        std::unique_ptr<BatchMessage>& m = chunk.messages[i];
        if (raw[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          m.release();  // The delivery report frees it.
          continue;
        }
        unsent.emplace_back(m->seq, StrCat("could not publish the batch to ",
                                           m->topic, ": ",
                                           Refused(topic.producer, raw[i].err)));
        if (chunk.partition >= 0) freed.push_back(chunk.partition);
      }
    }
    chunks.clear();
    if (freed.empty()) break;
    MutexLock lock(&topics_mu_);
    for (int32_t p : freed) topic.window.Answered(p);
    if (!topic.draining) chunks = topic.window.Ready();
  }
}

std::string Publisher::Refused(rd_kafka_t* producer, rd_kafka_resp_err_t err) {
  std::string error = rd_kafka_err2str(err);  // E.g. the local queue is full.
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char reason[512];
    rd_kafka_fatal_error(producer, reason, sizeof reason);
    error += StrCat(" (its producer failed for good: ", reason,
                    "; later batches go through a new one)");
  }
  return error;
}

int32_t Publisher::Partition(const rd_kafka_topic_t* rkt, const void* key,
                             size_t key_len, int32_t partition_count,
                             void* topic_opaque, void* msg_opaque) {
  static_cast<TopicState*>(topic_opaque)
      ->partition_count.store(partition_count, std::memory_order_relaxed);
  return rd_kafka_msg_partitioner_consistent_random(
      rkt, key, key_len, partition_count, topic_opaque, msg_opaque);
}

// A topic whose handle has message.timeout.ms set to the priority's batch
// timeout (unless the user set message.timeout.ms): librdkafka keeps
// retrying a batch for as long as its jobs may wait, and no longer.
Publisher::TopicState* Publisher::Topic(const BatchMessage& msg,
                                        std::string& error) {
  const Lane lane = LaneOf(msg.priority);
  MutexLock lock(&topics_mu_);
  // Lives while this Publish counts in publishing_, even once replaced.
  LaneProducer* current = lanes_[lane].get();
  auto it = current->topics.find(msg.topic);
  if (it != current->topics.end()) return it->second.get();
  // First batch for this topic on this producer. Made under the lock, so
  // that the handle's opaque is this state (librdkafka keeps the first
  // handle's configuration for a topic). rd_kafka_topic_new does not wait
  // for the network. Start from the default topic configuration, which
  // carries the user's topic-level kafka.* properties.
  auto topic = std::make_unique<TopicState>();
  topic->producer = current->producer.get();
  rd_kafka_topic_conf_t* conf = rd_kafka_default_topic_conf_dup(topic->producer);
  if (!kafka::UserSets(config_, kafka::Role::kProducer, "message.timeout.ms")) {
    const std::string ms = std::to_string(
        kafka::ToMillis(config_.For(msg.priority).batch_timeout));
    char err[256];
    if (rd_kafka_topic_conf_set(conf, "message.timeout.ms", ms.c_str(), err,
                                sizeof err) != RD_KAFKA_CONF_OK) {
      // Once per topic: its batches still go, with librdkafka's timeout.
      log::Warning("submitter", "topic ", msg.topic, ": message.timeout.ms=", ms,
                   " refused (", err, "); its batches use the default");
    }
  }
  rd_kafka_topic_conf_set_partitioner_cb(conf, &Publisher::Partition);
  rd_kafka_topic_conf_set_opaque(conf, topic.get());
  // librdkafka takes `conf` over, also when it refuses the topic.
  topic->handle.reset(
      rd_kafka_topic_new(topic->producer, msg.topic.c_str(), conf));
  if (!topic->handle) {
    error = StrCat("librdkafka refused a handle for the topic (",
                   rd_kafka_err2str(rd_kafka_last_error()), ")");
    return nullptr;
  }
  return current->topics.emplace(msg.topic, std::move(topic))
      .first->second.get();
}

std::vector<std::unique_ptr<BatchMessage>> Publisher::Drain(LaneProducer& lane) {
  std::vector<std::unique_ptr<BatchMessage>> held;
  MutexLock lock(&topics_mu_);
  for (auto& [name, topic] : lane.topics) {
    topic->draining = true;
    for (auto& m : topic->window.TakeHeld()) held.push_back(std::move(m));
  }
  return held;
}

void Publisher::Poll() {
  // Only this thread replaces them, so they live through the poll, which
  // runs the listener and so must not hold the lock.
  PerLane<kafka::Producer*> live{};
  {
    MutexLock lock(&topics_mu_);
    for (Lane lane : kAllLanes) live[lane] = &lanes_[lane]->producer;
  }
  for (kafka::Producer* p : live) p->Poll();
  for (auto& retired : retired_) retired->producer.Poll();
  ReplaceFailed();
  DropRetired();
}

void Publisher::ReplaceFailed() {
  for (Lane lane : kAllLanes) {
    rd_kafka_t* current = nullptr;
    {
      MutexLock lock(&topics_mu_);
      current = lanes_[lane]->producer.get();
    }
    char reason[512];
    if (rd_kafka_fatal_error(current, reason, sizeof reason) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    auto fresh = NewLaneProducer();
    if (!fresh.ok()) {
      uint64_t held_back = 0;
      if (undelivered_log_.Allow(held_back)) {
        log::Error("submitter", "a producer failed for good (", reason,
                   ") and no new one could be made: ", fresh.status().message(),
                   "; trying again");
      }
      continue;
    }
    log::Error("submitter", "a producer failed for good (", reason,
               "); the batches it held end as not delivered, and later ones go "
               "through a new producer");
    fatal_reason_ = reason;
    {
      MutexLock lock(&topics_mu_);
      retired_.push_back(std::move(lanes_[lane]));
      lanes_[lane] = std::move(*fresh);
    }
    rd_kafka_purge(current, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                RD_KAFKA_PURGE_F_NON_BLOCKING);
    replaced_.fetch_add(1, std::memory_order_relaxed);
    // The batches its windows still held never reached it: they go
    // through the new producer.
    Unsent unsent;
    for (auto& held : Drain(*retired_.back())) Produce(std::move(held), unsent);
    for (auto& [seq, why] : unsent) listener_->OnUnsent(seq, why);
  }
}

void Publisher::DropRetired() {
  // A Publish that read a retired producer counts in publishing_ until it
  // is done with it; one that starts now reads a live one.
  if (retired_.empty() || publishing_.load() > 0) return;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (rd_kafka_outq_len((*it)->producer.get()) > 0) {
      ++it;
      continue;
    }
    (*it)->producer.Poll();
    it = retired_.erase(it);
  }
}

void Publisher::OnDelivery(rd_kafka_message_t* msg) {
  std::unique_ptr<BatchMessage> sent(static_cast<BatchMessage*>(msg->_private));
  if (sent->partition >= 0) {
    // Room on its partition: what the window held may go.
    auto* topic = static_cast<TopicState*>(rd_kafka_topic_opaque(msg->rkt));
    std::vector<Window::Chunk> chunks;
    {
      MutexLock lock(&topics_mu_);
      topic->window.Answered(sent->partition);
      if (!topic->draining) chunks = topic->window.Ready();
    }
    if (!chunks.empty()) {
      Unsent unsent;
      Send(*topic, std::move(chunks), unsent);
      for (auto& [seq, why] : unsent) listener_->OnUnsent(seq, why);
    }
  }
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (sent->acknowledged) {
      sent->acknowledged->store(true, std::memory_order_release);
    }
    counters_.batches_sent.Add();
    return;
  }
  std::string why = StrCat("could not deliver the batch to ", sent->topic,
                           ": ", rd_kafka_err2str(msg->err));
  if ((msg->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
       msg->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
       msg->err == RD_KAFKA_RESP_ERR__FATAL) &&
      !closing_.load() && !fatal_reason_.empty()) {
    why += StrCat(" (its producer failed for good: ", fatal_reason_,
                  "; later batches go through a new one)");
  }
  if (msg->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
    why += " (no broker acknowledged it in time: its partition had no "
           "leader, fewer replicas in sync than the topic's "
           "min.insync.replicas, or the cluster was unreachable)";
  }
  listener_->OnUnsent(sent->seq, why);
  LogUndelivered(*sent, msg->err);
}

// During an outage every batch fails: one line a second at most.
void Publisher::LogUndelivered(const BatchMessage& msg,
                               rd_kafka_resp_err_t err) {
  uint64_t held_back = 0;
  if (!undelivered_log_.Allow(held_back)) return;
  log::Warning("submitter", held_back + 1, " batch(es) not delivered, latest ", msg.seq,
               " to ", msg.topic, ": ", rd_kafka_err2str(err));
}

void Publisher::Close(absl::Time deadline) {
  closing_.store(true);
  while (publishing_.load() > 0) absl::SleepFor(absl::Microseconds(100));
  // Destroyed outside the lock, topic handles before their producers.
  std::vector<std::unique_ptr<LaneProducer>> all;
  {
    MutexLock lock(&topics_mu_);
    for (auto& lane : lanes_) {
      if (lane) all.push_back(std::move(lane));
    }
  }
  for (auto& retired : retired_) all.push_back(std::move(retired));
  retired_.clear();
  for (auto& lane : all) {
    // Delivery reports during the flush still let held batches go; then
    // the rest is purged, and what the windows still hold is not sent.
    lane->producer.Flush(deadline, absl::Seconds(1));
    std::vector<std::unique_ptr<BatchMessage>> held = Drain(*lane);
    if (!held.empty()) {
      log::Warning("submitter", held.size(),
                   " batch(es) were still held back at close, waiting for "
                   "their partitions' earlier batches to be acknowledged");
    }
    for (auto& m : held) {
      listener_->OnUnsent(m->seq,
                          "the submitter closed before the batch was sent");
    }
    lane->producer.Purge();
    // Topic handles go before their producer; their states stay until the
    // publisher is destroyed, for a report that comes during the destroy.
    for (auto& [name, topic] : lane->topics) {
      topic->handle.reset();
      closed_topics_.push_back(std::move(topic));
    }
    lane->topics.clear();
    lane->producer.Close(deadline, absl::ZeroDuration());
  }
}

}  // namespace batchbus

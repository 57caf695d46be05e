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
  std::vector<std::pair<uint64_t, std::string>> unsent;
  publishing_.fetch_add(1);
  if (closing_.load()) {
    for (auto& msg : messages) {
      unsent.emplace_back(msg->seq,
                          "the submitter closed before the batch was sent");
    }
  } else {
    for (auto& msg : messages) {
      const uint64_t seq = msg->seq;
      std::string error = Produce(std::move(msg));
      if (!error.empty()) unsent.emplace_back(seq, std::move(error));
    }
  }
  publishing_.fetch_sub(1);
  messages.clear();
  for (auto& [seq, why] : unsent) listener_->OnUnsent(seq, why);
}

// Empty when queued; else why not.
std::string Publisher::Produce(std::unique_ptr<BatchMessage> msg) {
  std::string error;
  rd_kafka_t* producer = nullptr;
  rd_kafka_topic_t* topic = TopicHandle(*msg, producer, error);
  if (topic != nullptr) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_RKT(topic),
        RD_KAFKA_V_VALUE(msg->payload.data(), msg->payload.size()),
        RD_KAFKA_V_OPAQUE(msg.get()), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      msg.release();  // The delivery report frees it.
      return error;
    }
    error = rd_kafka_err2str(err);  // E.g. the local queue is full.
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char reason[512];
      rd_kafka_fatal_error(producer, reason, sizeof reason);
      error += StrCat(" (its producer failed for good: ", reason,
                      "; later batches go through a new one)");
    }
  }
  return StrCat("could not publish the batch to ", msg->topic, ": ", error);
}

// A topic handle whose message.timeout.ms is the priority's batch timeout
// (unless the user set message.timeout.ms): librdkafka keeps retrying a
// batch for as long as its jobs may wait, and no longer.
rd_kafka_topic_t* Publisher::TopicHandle(const BatchMessage& msg,
                                         rd_kafka_t*& producer,
                                         std::string& error) {
  const Lane lane = LaneOf(msg.priority);
  // Lives while this Publish counts in publishing_, even once replaced.
  LaneProducer* current = nullptr;
  {
    MutexLock lock(&topics_mu_);
    current = lanes_[lane].get();
    producer = current->producer.get();
    auto it = current->topics.find(msg.topic);
    if (it != current->topics.end()) return it->second.get();
  }
  // First batch for this topic: make its handle outside the lock.
  // Start from the default topic configuration, which carries the user's
  // topic-level kafka.* properties.
  rd_kafka_topic_conf_t* conf = rd_kafka_default_topic_conf_dup(producer);
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
  // librdkafka takes `conf` over, also when it refuses the topic.
  kafka::TopicPtr handle(rd_kafka_topic_new(producer, msg.topic.c_str(), conf));
  if (!handle) {
    error = StrCat("librdkafka refused a handle for the topic (",
                   rd_kafka_err2str(rd_kafka_last_error()), ")");
    return nullptr;
  }
  // Another thread may have made one meanwhile: keep the first (a spare
  // handle is destroyed after the lock is released).
  MutexLock lock(&topics_mu_);
  return current->topics.try_emplace(msg.topic, std::move(handle))
      .first->second.get();
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
    lane->topics.clear();
    lane->producer.Close(deadline, absl::Seconds(1));
  }
}

}  // namespace batchbus

#include "delay_line.h"

#include <exception>
#include <utility>

#include "log.h"
#include "producer.h"
#include "strcat.h"

namespace batchbus {
namespace {

// A header's value as an integer; `fallback` when absent or not a number.
int64_t HeaderInt(const rd_kafka_message_t& msg, const char* name,
                  int64_t fallback) {
  rd_kafka_headers_t* headers = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_message_headers(&msg, &headers) != 0 ||
      rd_kafka_header_get_last(headers, name, &value, &size) != 0) {
    return fallback;
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(
          absl::string_view(static_cast<const char*>(value), size), &v)) {
    return fallback;
  }
  return v;
}

constexpr Priority kTierKey = Priority::kRealtime;  // See offsets_.

}  // namespace

DelayLine::DelayLine(const Config& config, std::string processor,
                     PerPriority<std::string> job_topics)
    : config_(config),
      processor_(std::move(processor)),
      job_topics_(std::move(job_topics)) {
  for (size_t i = 0; i < kDelayTiers.size(); ++i) {
    topics_[i] = DelayTopic(config_, processor_, kDelayTiers[i]);
  }
}

absl::Status DelayLine::Start(int wakeup_fd) {
  auto conf = kafka::MakeConf(
      config_, kafka::Role::kConsumer,
      {{"group.id", config_.GroupIdFor(processor_) + ".delay"},
       {"enable.auto.offset.store", "false"},
       {"enable.auto.commit", "false"},  // OffsetCommitter commits.
       {"auto.offset.reset", "earliest"},
       {"enable.partition.eof", "false"},
       {"session.timeout.ms", kafka::GroupSessionTimeoutMs(config_)},
       {"heartbeat.interval.ms", "1000"},
       {"fetch.wait.max.ms", "50"},
       {"fetch.message.max.bytes",
        std::to_string(kafka::ClientMessageBytes(config_))}});
  if (!conf.ok()) return conf.status();
  if (auto s = kafka::SetStaticMembership(config_, conf->get()); !s.ok()) {
    return s;
  }
  rd_kafka_conf_set_rebalance_cb(conf->get(), &DelayLine::RebalanceCallback);
  rd_kafka_conf_set_opaque(conf->get(), this);
  auto handle = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  if (!handle.ok()) return handle.status();
  consumer_ = std::move(*handle);
  committer_ = std::make_unique<OffsetCommitter>(consumer_.get(), kCommitInterval,
                                                 "delay line");
  rd_kafka_poll_set_consumer(consumer_.get());
  kafka::QueuePtr queue(rd_kafka_queue_get_consumer(consumer_.get()));
  rd_kafka_queue_io_event_enable(queue.get(), wakeup_fd, "1", 1);
  kafka::PartitionListPtr subscription(
      rd_kafka_topic_partition_list_new(kDelayTiers.size()));
  for (const std::string& topic : topics_) {
    rd_kafka_topic_partition_list_add(subscription.get(), topic.c_str(),
                                      RD_KAFKA_PARTITION_UA);
  }
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), subscription.get())) {
    return kafka::ToStatus(err, "subscribing to the delay tiers");
  }
  return absl::OkStatus();
}

int DelayLine::TierOfTopic(std::string_view topic) const {
  for (size_t i = 0; i < topics_.size(); ++i) {
    if (topics_[i] == topic) return static_cast<int>(i);
  }
  return -1;
}

void DelayLine::RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* partitions,
                                  void* opaque) noexcept {
  try {
    static_cast<DelayLine*>(opaque)->Rebalance(rk, err, partitions);
  } catch (const std::exception& e) {
    log::Error("delay-line", "delay line rebalance failed: ", e.what());
  } catch (...) {
    log::Error("delay-line", "delay line rebalance failed");
  }
}

void DelayLine::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* list) {
  for (int i = 0; i < list->cnt; ++i) {
    const int tier = TierOfTopic(list->elems[i].topic);
    if (tier < 0) continue;
    const Key key{tier, list->elems[i].partition};
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      partitions_[key];
    } else {
      // What is held or in flight is the next owner's to relay again.
      partitions_.erase(key);
      offsets_[tier].Forget({kTierKey, key.second});
    }
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, list);
  } else {
    rd_kafka_commit(rk, nullptr, 1);
    rd_kafka_assign(rk, nullptr);
  }
}

absl::Time DelayLine::Poll(absl::Time now,
                           std::vector<std::unique_ptr<OutMessage>>& out) {
  if (!consumer_ || closed_) return absl::InfiniteFuture();
  committer_->Poll(now);
  // Bounded per call, so the poller's other work is not starved.
  for (int n = 0; n < 256; ++n) {
    kafka::MessagePtr msg(rd_kafka_consumer_poll(consumer_.get(), 0));
    if (!msg) break;
    if (msg->err) {
      if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::Warning("delay-line", "delay line of ", processor_, ": ",
                     rd_kafka_message_errstr(msg.get()));
      }
      continue;
    }
    const int tier = TierOfTopic(rd_kafka_topic_name(msg->rkt));
    if (tier >= 0) Take(tier, std::move(msg), now, out);
  }
  absl::Time next = absl::InfiniteFuture();
  for (auto& [key, part] : partitions_) {
    if (!part.head) continue;
    if (part.release <= now) {
      kafka::MessagePtr head = std::move(part.head);
      part.release = absl::InfiniteFuture();
      out.push_back(RelayOf(key.first, *head, now));
      // Messages fetched after the head were dropped (see Take): fetching
      // goes on right after the head.
      SeekAfter(key.first, key.second, head->offset);
      SetPaused(key.first, key.second, false);
    } else {
      next = std::min(next, part.release);
    }
  }
  return next;
}

void DelayLine::Take(int tier, kafka::MessagePtr msg, absl::Time now,
                     std::vector<std::unique_ptr<OutMessage>>& out) {
  auto it = partitions_.find(Key{tier, msg->partition});
  if (it == partitions_.end()) return;  // Revoked while queued.
  // Fetched before the pause took effect: it is fetched again after the
  // head is released (Poll seeks there), so holding one head is enough.
  if (it->second.head) return;
  rd_kafka_timestamp_type_t type;
  const int64_t ts = rd_kafka_message_timestamp(msg.get(), &type);
  const absl::Time written = ts >= 0 ? absl::FromUnixMillis(ts) : now;
  const absl::Time due =
      absl::FromUnixMillis(HeaderInt(*msg, kDueHeader, absl::ToUnixMillis(now)));
  // Every message of a tier waits the same time, so the head is the next
  // one due; one due sooner than that waits only until it is due.
  const absl::Time release = std::min(written + kDelayTiers[tier].delay, due);
  offsets_[tier].Begin({kTierKey, msg->partition}, msg->offset);
  if (release <= now) {
    out.push_back(RelayOf(tier, *msg, now));
    return;
  }
  it->second.head = std::move(msg);
  it->second.release = release;
  SetPaused(tier, it->first.second, true);
}

std::unique_ptr<OutMessage> DelayLine::RelayOf(int tier,
                                               const rd_kafka_message_t& msg,
                                               absl::Time now) {
  auto out = std::make_unique<OutMessage>();
  out->kind = OutMessage::Kind::kRelay;
  out->relay_from = {tier, msg.partition, msg.offset};
  const int64_t due_ms = HeaderInt(msg, kDueHeader, 0);
  const int64_t priority = HeaderInt(msg, kPriorityHeader, 1);
  const Priority p = priority >= 0 && priority < kNumPriorities
                         ? static_cast<Priority>(priority)
                         : Priority::kNormal;
  const absl::Duration left = absl::FromUnixMillis(due_ms) - now;
  if (left <= absl::ZeroDuration()) {
    out->topic = job_topics_[p];
    out->realtime = p == Priority::kRealtime;
  } else {
    out->topic = topics_[&DelayTierFor(left) - kDelayTiers.data()];
  }
  if (msg.key != nullptr) out->key.assign(static_cast<const char*>(msg.key), msg.key_len);
  out->payload.assign(static_cast<const char*>(msg.payload), msg.len);
  out->headers = {{kPriorityHeader, std::to_string(priority)},
                  {kDueHeader, std::to_string(due_ms)}};
  return out;
}

void DelayLine::SeekAfter(int tier, int32_t partition, int64_t offset) {
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topics_[tier].c_str(), partition)
      ->offset = offset + 1;
  kafka::ErrorPtr err(rd_kafka_seek_partitions(consumer_.get(), list.get(), 0));
  if (err) {
    log::Warning("delay-line", "delay line of ", processor_, ": could not seek ",
                 topics_[tier], "[", partition, "] to ", offset + 1, ": ",
                 rd_kafka_error_string(err.get()));
  }
}

void DelayLine::SetPaused(int tier, int32_t partition, bool paused) {
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topics_[tier].c_str(), partition);
  if (paused) {
    rd_kafka_pause_partitions(consumer_.get(), list.get());
  } else {
    rd_kafka_resume_partitions(consumer_.get(), list.get());
  }
}

void DelayLine::Relayed(const OutMessage& relay) {
  const auto& from = relay.relay_from;
  if (!consumer_ || closed_ || from.tier < 0) return;
  auto next = offsets_[from.tier].Finish({kTierKey, from.partition}, from.offset);
  if (!next) return;
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topics_[from.tier].c_str(),
                                    from.partition)
      ->offset = *next;
  if (rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer_.get(), list.get())) {
    log::Warning("delay-line", "delay line of ", processor_, ": could not store offset ",
                 *next, " for ", topics_[from.tier], "[", from.partition,
                 "]: ", rd_kafka_err2str(err));
  }
}

size_t DelayLine::held() const {
  size_t n = 0;
  for (const auto& [key, part] : partitions_) n += part.head != nullptr;
  return n;
}

void DelayLine::Close(absl::Time deadline) {
  if (closed_ || !consumer_) return;
  closed_ = true;
  for (auto& [key, part] : partitions_) part.head.reset();
  rd_kafka_commit(consumer_.get(), nullptr, 1);
  kafka::QueuePtr close_queue(rd_kafka_queue_new(consumer_.get()));
  kafka::ErrorPtr err(rd_kafka_consumer_close_queue(consumer_.get(), close_queue.get()));
  while (!err && !rd_kafka_consumer_closed(consumer_.get()) && absl::Now() < deadline) {
    kafka::EventPtr event(rd_kafka_queue_poll(close_queue.get(), 25));
    if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
      Rebalance(consumer_.get(), rd_kafka_event_error(event.get()),
                rd_kafka_event_topic_partition_list(event.get()));
    }
  }
  close_queue.reset();
  committer_.reset();
  kafka::DestroyWithin(std::move(consumer_), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
                       deadline);
}

}  // namespace batchbus

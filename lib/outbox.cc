#include "outbox.h"

#include <algorithm>

#include "log.h"
#include "strcat.h"

namespace batchbus {

absl::Status Outbox::Start(int wakeup_fd) {
  wakeup_fd_ = wakeup_fd;
  for (Lane lane : kAllLanes) {
    auto p = kafka::Producer::Create(config_, {}, this, wakeup_fd);
    if (!p.ok()) return p.status();
    producers_[lane] = std::move(*p);
    live_[lane].store(producers_[lane].get());
  }
  return absl::OkStatus();
}

void Outbox::KnowTopic(const std::string& topic) {
  known_topics_.push_back(topic);
  for (kafka::Producer& p : producers_) {
    warm_topics_.emplace_back(
        p.get(), kafka::TopicPtr(rd_kafka_topic_new(p.get(), topic.c_str(), nullptr)));
  }
}

void Outbox::ReplaceFailed() {
  for (Lane lane : kAllLanes) {
    char reason[512];
    if (rd_kafka_fatal_error(producers_[lane].get(), reason, sizeof reason) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    auto fresh = kafka::Producer::Create(config_, {}, this, wakeup_fd_);
    uint64_t held_back = 0;
    if (!fresh.ok()) {
      if (replace_log_.Allow(held_back)) {
        log::Error("processor", "a result producer failed for good (", reason,
                   ") and no new one could be made: ", fresh.status().message(),
                   "; trying again", LogThrottle::HeldBack(held_back));
      }
      continue;
    }
    if (replace_log_.Allow(held_back)) {
      log::Error("processor", "a result producer failed for good (", reason,
                 "); it is replaced by a new one, which sends its messages "
                 "again (some results may be written twice)",
                 LogThrottle::HeldBack(held_back));
    }
    for (const std::string& topic : known_topics_) {
      warm_topics_.emplace_back(
          fresh->get(),
          kafka::TopicPtr(rd_kafka_topic_new(fresh->get(), topic.c_str(), nullptr)));
    }
    live_[lane].store(fresh->get());
    rd_kafka_t* old = producers_[lane].get();
    retired_.push_back(std::move(producers_[lane]));
    producers_[lane] = std::move(*fresh);
    // Their reports come back as purged, and Failed() sends them again.
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                            RD_KAFKA_PURGE_F_NON_BLOCKING);
    replaced_.fetch_add(1, std::memory_order_relaxed);
  }
}

void Outbox::DropRetired() {
  // A Send() that read a retired producer's handle counts in sending_ until
  // it is done with it; one that starts now reads a live one.
  if (retired_.empty() || sending_.load() > 0) return;
  for (auto it = retired_.begin(); it != retired_.end();) {
    rd_kafka_t* rk = it->get();
    if (rd_kafka_outq_len(rk) > 0) {
      ++it;
      continue;
    }
    it->Poll();  // The last reports, if any are still queued.
    warm_topics_.erase(
        std::remove_if(warm_topics_.begin(), warm_topics_.end(),
                       [rk](const auto& w) { return w.first == rk; }),
        warm_topics_.end());
    it->Close(absl::Now(), absl::ZeroDuration());
    it = retired_.erase(it);
  }
}

bool Outbox::IsPermanent(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return true;
    default:
      return false;
  }
}

void Outbox::Send(std::unique_ptr<OutMessage> msg) {
  pending_.fetch_add(1, std::memory_order_acq_rel);
  Dispatch(std::move(msg));
}

void Outbox::Dispatch(std::unique_ptr<OutMessage> msg) {
  sending_.fetch_add(1);
  if (closing_.load()) {
    sending_.fetch_sub(1);
    Report(std::move(msg), Failure::kClosed, "the processor closed");
    return;
  }
  if (msg->partition >= 0 && msg->headers.empty()) {
    const Lane lane = msg->realtime ? Lane::kRealtime : Lane::kBulk;
    const std::string topic = msg->topic;
    std::vector<Window::Chunk> chunks;
    {
      MutexLock lock(&mu_);
      Window& window = windows_[lane][topic];
      const size_t bytes = msg->payload.size() + msg->key.size();
      const int32_t partition = msg->partition;
      window.Offer(std::move(msg), bytes, partition);
      chunks = window.Ready();
    }
    SendChunks(lane, topic, std::move(chunks));
    sending_.fetch_sub(1);
    return;
  }
  const rd_kafka_resp_err_t err = Produce(msg.get());
  sending_.fetch_sub(1);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    msg.release();  // The delivery report owns it now.
    return;
  }
  Failed(std::move(msg), err, err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
}

rd_kafka_resp_err_t Outbox::Produce(OutMessage* msg) {
  rd_kafka_headers_t* headers = nullptr;
  if (!msg->headers.empty()) {
    headers = rd_kafka_headers_new(msg->headers.size());
    for (const auto& [name, value] : msg->headers) {
      rd_kafka_header_add(headers, name.data(),
                          static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
  }
  const Lane lane = msg->realtime ? Lane::kRealtime : Lane::kBulk;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      live_[lane].load(), RD_KAFKA_V_TOPIC(msg->topic.c_str()),
      RD_KAFKA_V_PARTITION(msg->partition),
      RD_KAFKA_V_KEY(msg->key.data(), msg->key.size()),
      RD_KAFKA_V_VALUE(msg->payload.data(), msg->payload.size()),
      RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
  // librdkafka owns the headers only once it took the message.
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && headers != nullptr) {
    rd_kafka_headers_destroy(headers);
  }
  return err;
}

void Outbox::SendChunks(Lane lane, const std::string& topic,
                        std::vector<Window::Chunk> chunks) {
  while (!chunks.empty()) {
    std::vector<std::pair<std::unique_ptr<OutMessage>, rd_kafka_resp_err_t>> refused;
    rd_kafka_t* rk = live_[lane].load();
    kafka::TopicPtr handle(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
    for (Window::Chunk& chunk : chunks) {
      std::vector<rd_kafka_message_t> raw(chunk.messages.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        OutMessage& m = *chunk.messages[i];
        m.windowed = true;  // Before librdkafka has it: a report may come at once.
        raw[i] = rd_kafka_message_t{};
        raw[i].payload = m.payload.data();
        raw[i].len = m.payload.size();
        raw[i].key = m.key.empty() ? nullptr : m.key.data();
        raw[i].key_len = m.key.size();
        raw[i]._private = &m;
        if (!handle) raw[i].err = rd_kafka_last_error();
      }
      if (handle) {
        // One call, so that the chunk is queued whole and goes in one
        // request; flags 0: the payloads stay ours until the reports.
        rd_kafka_produce_batch(handle.get(), chunk.partition, 0, raw.data(),
                               static_cast<int>(raw.size()));
      }
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          chunk.messages[i].release();  // The delivery report owns it now.
          continue;
        }
        chunk.messages[i]->windowed = false;
        refused.emplace_back(std::move(chunk.messages[i]), raw[i].err);
      }
    }
    handle.reset();
    chunks.clear();
    if (refused.empty()) return;
    {
      MutexLock lock(&mu_);
      Window& window = windows_[lane][topic];
      for (auto& [m, err] : refused) window.Answered(m->partition);
      if (!closing_.load()) chunks = window.Ready();
    }
    for (auto& [m, err] : refused) {
      Failed(std::move(m), err, err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    }
  }
}

void Outbox::OnDelivery(rd_kafka_message_t* report) {
  std::unique_ptr<OutMessage> msg(static_cast<OutMessage*>(report->_private));
  if (msg->windowed) {
    // Room on its partition: what the window held there may go.
    msg->windowed = false;
    const Lane lane = msg->realtime ? Lane::kRealtime : Lane::kBulk;
    std::vector<Window::Chunk> chunks;
    {
      MutexLock lock(&mu_);
      Window& window = windows_[lane][msg->topic];
      window.Answered(msg->partition);
      if (!closing_.load()) chunks = window.Ready();
    }
    if (!chunks.empty()) {
      sending_.fetch_add(1);
      SendChunks(lane, msg->topic, std::move(chunks));
      sending_.fetch_sub(1);
    }
  }
  const rd_kafka_resp_err_t err = report->err;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    listener_->OnSent(std::move(msg));
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    return;
  }
  Failed(std::move(msg), err, false);
}

void Outbox::Failed(std::unique_ptr<OutMessage> msg, rd_kafka_resp_err_t err,
                    bool queue_full) {
  std::string why = StrCat(rd_kafka_err2str(err), " (", msg->topic,
                           msg->partition >= 0 ? StrCat("[", msg->partition, "]")
                                               : std::string(),
                           ")");
  const bool purged = err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                      err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
  if (closing_.load()) {
    Report(std::move(msg), Failure::kClosed, std::move(why));
    return;
  }
  if (purged) {
    // Only a replaced producer is purged before Close: the message goes
    // again, through its replacement, as if the queue had been full.
    queue_full = true;
  }
  if (IsPermanent(err)) {
    Report(std::move(msg), Failure::kPermanent, std::move(why));
    return;
  }
  // A full local queue is back-pressure, not a failure of the message.
  if (!queue_full && ++msg->attempts >= options_.max_attempts) {
    Report(std::move(msg), Failure::kExhausted,
           StrCat(why, " after ", options_.max_attempts, " attempts"));
    return;
  }
  absl::Duration backoff = options_.first_backoff;
  for (int i = 1; i < msg->attempts && backoff < options_.max_backoff; ++i) {
    backoff *= 2;
  }
  backoff = std::min(backoff, options_.max_backoff);
  uint64_t held_back = 0;
  if (retry_log_.Allow(held_back)) {
    log::Warning("processor", "message to ", msg->topic, " not sent: ", why, "; retrying in ",
                 absl::FormatDuration(backoff), LogThrottle::HeldBack(held_back));
  }
  MutexLock lock(&mu_);
  retries_.push_back({absl::Now() + backoff, std::move(msg)});
}

void Outbox::Report(std::unique_ptr<OutMessage> msg, Failure failure,
                    std::string why) {
  listener_->OnUndeliverable(std::move(msg), failure, std::move(why));
  pending_.fetch_sub(1, std::memory_order_acq_rel);
}

absl::Time Outbox::Poll(absl::Time now) {
  for (kafka::Producer& p : producers_) p.Poll();
  for (kafka::Producer& p : retired_) p.Poll();
  ReplaceFailed();
  DropRetired();
  std::vector<std::unique_ptr<OutMessage>> due;
  absl::Time next = absl::InfiniteFuture();
  {
    MutexLock lock(&mu_);
    auto keep = std::partition(retries_.begin(), retries_.end(),
                               [&](const Retry& r) { return r.due > now; });
    for (auto it = keep; it != retries_.end(); ++it) {
      due.push_back(std::move(it->msg));
    }
    retries_.erase(keep, retries_.end());
    for (const Retry& r : retries_) next = std::min(next, r.due);
  }
  for (auto& msg : due) Dispatch(std::move(msg));
  return next;
}

void Outbox::Close(absl::Time deadline) {
  if (closing_.exchange(true)) return;
  while (sending_.load() > 0) absl::SleepFor(absl::Microseconds(100));
  std::vector<Retry> waiting;
  {
    MutexLock lock(&mu_);
    waiting.swap(retries_);
  }
  std::vector<std::unique_ptr<OutMessage>> held;
  {
    MutexLock lock(&mu_);
    for (auto& lane : windows_) {
      for (auto& [topic, window] : lane) {
        for (auto& m : window.TakeHeld()) held.push_back(std::move(m));
      }
    }
  }
  for (Retry& r : waiting) {
    Report(std::move(r.msg), Failure::kClosed, "the processor closed");
  }
  if (!held.empty()) {
    log::Warning("processor", held.size(),
                 " result message(s) were still held back at close, waiting "
                 "for their partitions' earlier messages to be acknowledged");
  }
  for (auto& m : held) {
    Report(std::move(m), Failure::kClosed, "the processor closed");
  }
  warm_topics_.clear();  // Handles go before their producers.
  for (kafka::Producer& p : retired_) p.Close(deadline, absl::ZeroDuration());
  for (kafka::Producer& p : producers_) p.Close(deadline, absl::ZeroDuration());
}

}  // namespace batchbus

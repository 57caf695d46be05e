#include "reply_reader.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "log.h"
#include "strcat.h"

namespace batchbus {

ReplyReader::ReplyReader(const Config& config, std::string instance,
                         SubmitterCounters& counters)
    : config_(config),
      instance_(std::move(instance)),
      topic_(config.ReplyTopic()),
      counters_(counters) {}

absl::Status ReplyReader::PickPartitions(rd_kafka_t* client) {
  if (auto s = kafka::EnsureTopics(client, config_, {topic_},
                                   absl::Seconds(15));
      !s.ok()) {
    return s;
  }
  // On a cluster of several brokers, the one asked next may not know a topic
  // that was just created yet: it exists, so wait for it to show.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto count = kafka::PartitionCount(client, config_, topic_, absl::Seconds(10));
  while (absl::IsNotFound(count.status()) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    count = kafka::PartitionCount(client, config_, topic_,
                                  std::max(deadline - absl::Now(),
                                           absl::Milliseconds(100)));
  }
  if (!count.ok()) return count.status();
  if (config_.reply_partition >= *count) {
    return absl::InvalidArgumentError(
        StrCat("reply_partition ", config_.reply_partition, " but topic ",
               topic_, " has only ", *count, " partitions"));
  }
  const int32_t base =
      config_.reply_partition >= 0
          ? config_.reply_partition
          : static_cast<int32_t>(absl::HashOf(instance_) %
                                 static_cast<size_t>(*count));
  partitions_[Lane::kRealtime] = base;
  partitions_[Lane::kBulk] = (base + 1) % *count;
  num_streams_ = base == partitions_[Lane::kBulk] ? 1 : 2;
  return absl::OkStatus();
}

absl::Status ReplyReader::Start(rd_kafka_t* client, int wakeup_fd) {
  if (auto s = PickPartitions(client); !s.ok()) return s;
  // If unread results ever expire (the mock cluster keeps ~5 MiB per
  // partition), resume from the oldest one still there rather than the end.
  auto conf = kafka::MakeConf(config_, kafka::Role::kConsumer,
                              {{"enable.auto.commit", "false"},
                               {"auto.offset.reset", "earliest"},
                               {"enable.partition.eof", "false"},
                               {"fetch.wait.max.ms", "10"},
                               {"fetch.error.backoff.ms", "10"}});
  if (!conf.ok()) return conf.status();
  streams_[0].partition = partitions_[Lane::kRealtime];
  streams_[1].partition = partitions_[Lane::kBulk];
  for (int r = 0; r < num_streams_; ++r) {
    kafka::ConfPtr stream_conf(rd_kafka_conf_dup(conf->get()));
    if (streams_[r].partition == partitions_[Lane::kRealtime]) {
      kafka::QuickFetchOnEmbedded(config_, stream_conf.get());
    }
    if (auto s = StartStream(streams_[r], stream_conf, wakeup_fd); !s.ok()) {
      return s;
    }
    log::Info("submitter", "submitter ", instance_, " reading ",
              r == 0 && num_streams_ == 2 ? "realtime " : "",
              "results from ", topic_, "[", streams_[r].partition, "]");
  }
  return absl::OkStatus();
}

absl::Status ReplyReader::StartStream(Stream& stream,
                                      const kafka::ConfPtr& conf,
                                      int wakeup_fd) {
  auto c = kafka::MakeHandle(RD_KAFKA_CONSUMER,
                             kafka::ConfPtr(rd_kafka_conf_dup(conf.get())));
  if (!c.ok()) return c.status();
  stream.consumer = std::move(*c);
  rd_kafka_t* consumer = stream.consumer.get();
  stream.topic.reset(rd_kafka_topic_new(consumer, topic_.c_str(), nullptr));
  if (!stream.topic) {
    return kafka::ToStatus(rd_kafka_last_error(),
                           StrCat("opening the reply topic ", topic_));
  }
  // Start exactly at the current end, resolved now.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  int64_t low = 0, high = 0;
  while (true) {
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        consumer, topic_.c_str(), stream.partition, &low, &high, 5000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    // Leadership may still be settling right after the topic was created.
    if (absl::Now() > deadline) {
      return kafka::ToStatus(err, StrCat("reading the end of ", topic_, "[",
                                         stream.partition, "]"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  stream.queue.reset(rd_kafka_queue_new(consumer));
  if (rd_kafka_consume_start_queue(stream.topic.get(), stream.partition, high,
                                   stream.queue.get()) != 0) {
    stream.queue.reset();
    return kafka::ToStatus(rd_kafka_last_error(),
                           "starting to read the reply partition");
  }
  rd_kafka_queue_io_event_enable(stream.queue.get(), wakeup_fd, "1", 1);
  return absl::OkStatus();
}

void ReplyReader::Poll() {
  for (int r = 0; r < num_streams_; ++r) {
    if (streams_[r].consumer) rd_kafka_poll(streams_[r].consumer.get(), 0);
  }
}

bool ReplyReader::Read(
    Lane lane, size_t max_messages, size_t per_round,
    absl::FunctionRef<void(const std::vector<wire::ResultEntry>&)>
        on_answers) {
  Stream& stream = streams_[lane == Lane::kRealtime ? 0 : num_streams_ - 1];
  if (!stream.queue) return false;
  rd_kafka_message_t* msgs[64];
  per_round = std::min<size_t>(per_round, 64);
  for (size_t taken = 0; taken < max_messages; taken += per_round) {
    ssize_t n = rd_kafka_consume_batch_queue(stream.queue.get(), 0, msgs,
                                             per_round);
    if (n <= 0) return false;
    for (ssize_t m = 0; m < n; ++m) {
      kafka::MessagePtr msg(msgs[m]);
      Handle(*msg, on_answers);
    }
  }
  return true;
}

void ReplyReader::Handle(
    const rd_kafka_message_t& msg,
    absl::FunctionRef<void(const std::vector<wire::ResultEntry>&)>
        on_answers) {
  uint64_t held_back = 0;
  if (msg.err) {
    if (msg.err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
        read_error_log_.Allow(held_back)) {
      log::Warning("submitter", "reading results from ", topic_, ": ",
                   rd_kafka_message_errstr(&msg), " (and ", held_back,
                   " more errors since the last report)");
    }
    return;
  }
  std::string_view key(static_cast<const char*>(msg.key), msg.key_len);
  if (key != instance_) {
    counters_.foreign_results.Add();
    return;
  }
  std::string_view addressee;
  absl::Status s = decoder_.DecodeResults(
      std::string_view(static_cast<const char*>(msg.payload), msg.len),
      addressee, entries_);
  if (!s.ok() || addressee != instance_) {
    if (skipped_log_.Allow(held_back)) {
      log::Warning("submitter", "skipping a result message at ", topic_, "[",
                   msg.partition, "]@", msg.offset, ": ",
                   s.ok() ? "addressed to another instance" : s.message(),
                   " (and ", held_back, " more since the last report)");
    }
    return;
  }
  on_answers(entries_);
}

void ReplyReader::Close(absl::Time deadline) {
  for (Stream& stream : streams_) {
    if (stream.topic && stream.queue &&
        rd_kafka_consume_stop(stream.topic.get(), stream.partition) != 0) {
      log::Warning("submitter", "stopping to read ", topic_, "[", stream.partition,
                   "]: ", rd_kafka_err2str(rd_kafka_last_error()));
    }
    if (stream.queue) {
      rd_kafka_queue_io_event_enable(stream.queue.get(), -1, nullptr, 0);
    }
    stream.queue.reset();
    stream.topic.reset();
    kafka::DestroyWithin(std::move(stream.consumer),
                         RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, deadline);
  }
}

}  // namespace batchbus

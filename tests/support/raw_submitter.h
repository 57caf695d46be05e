// A submitter written on the wire by hand: it sends batches whose jobs carry
// any lifecycle fields (wire::JobFields), and reads back, in order, every
// entry of the result messages addressed to it, events included. Tests use
// it to see exactly what a processor puts on the wire.
#ifndef BATCHBUS_TESTS_SUPPORT_RAW_SUBMITTER_H_
#define BATCHBUS_TESTS_SUPPORT_RAW_SUBMITTER_H_

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kafka.h"
#include "support/test_cluster.h"
#include "wire.h"

namespace batchbus::testing {

class RawSubmitter {
 public:
  struct RawJob {
    JobId id = JobId::Random();
    std::string group = "echo";
    std::string data = "1";
    wire::JobFields fields;
  };
  // An entry read back, copied out of its message.
  struct Entry {
    wire::ResultEntry::Kind kind = wire::ResultEntry::Kind::kResult;
    JobId id;
    uint64_t seq = 0;
    uint32_t index = 0;
    JobStatus status = JobStatus::kNew;
    std::string data;
    std::string error;
    uint32_t attempts = 0;  // As a submitter reads it: absent is 1.
  };

  // Call after a Processor for `processor` exists: it creates the topics.
  RawSubmitter(const Config& config, std::string processor)
      : config_(config), processor_(std::move(processor)) {
    auto pconf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    EXPECT_TRUE(pconf.ok()) << pconf.status();
    auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
    EXPECT_TRUE(producer.ok()) << producer.status();
    producer_ = std::move(*producer);
    auto cconf = kafka::MakeConf(
        config_, kafka::Role::kConsumer,
        {{"group.id", config_.ns + ".raw." + instance_},
         {"enable.auto.commit", "false"}});
    EXPECT_TRUE(cconf.ok()) << cconf.status();
    auto consumer = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*cconf));
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    consumer_ = std::move(*consumer);
    kafka::PartitionListPtr parts(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(parts.get(), config_.ReplyTopic().c_str(),
                                      0)
        ->offset = RD_KAFKA_OFFSET_BEGINNING;
    EXPECT_EQ(rd_kafka_assign(consumer_.get(), parts.get()), 0);
  }
  ~RawSubmitter() {
    rd_kafka_flush(producer_.get(), 5000);
    rd_kafka_consumer_close(consumer_.get());
  }

  // One batch of `jobs` at priority `p`, answered to reply partition 0;
  // `expires_ms` is the batch's. Returns its seq.
  uint64_t Send(Priority p, const std::vector<RawJob>& jobs,
                int64_t expires_ms = 0) {
    wire::BatchWriter writer;
    writer.Begin({instance_, ++seq_, config_.ReplyTopic(), 0, processor_, p,
                  expires_ms});
    for (const RawJob& job : jobs) {
      writer.AddJob(job.id, job.group, job.data,
                    job.fields.plain() ? nullptr : &job.fields);
    }
    const std::string payload = writer.Finish();
    const std::string topic = config_.TopicFor(processor_, p);
    EXPECT_EQ(rd_kafka_producev(producer_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()),
                                                 payload.size()),
                                RD_KAFKA_V_KEY(instance_.data(), instance_.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(rd_kafka_flush(producer_.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    return seq_;
  }

  // Every entry read so far, once at least `n` arrived (or `timeout` passed:
  // then fewer).
  const std::vector<Entry>& WaitFor(size_t n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (entries_.size() < n && absl::Now() < deadline) Poll(100);
    return entries_;
  }
  // Reads for `d` more and returns everything read.
  const std::vector<Entry>& ReadFor(absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until) Poll(50);
    return entries_;
  }
  // The terminal entries (results) read so far.
  std::vector<Entry> Results() const {
    std::vector<Entry> out;
    for (const Entry& e : entries_) {
      if (e.kind == wire::ResultEntry::Kind::kResult) out.push_back(e);
    }
    return out;
  }
  const std::string& instance() const { return instance_; }

 private:
  void Poll(int ms) {
    kafka::MessagePtr m(rd_kafka_consumer_poll(consumer_.get(), ms));
    if (!m || m->err) return;
    std::string_view instance;
    std::vector<wire::ResultEntry> entries;
    const absl::Status s = decoder_.DecodeResults(
        {static_cast<const char*>(m->payload), m->len}, instance, entries);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok() || instance != instance_) return;
    for (const wire::ResultEntry& e : entries) {
      entries_.push_back({e.kind, e.id, e.seq, e.index, e.status,
                          std::string(e.data), std::string(e.error),
                          std::max(e.attempts, 1u)});
    }
  }

  Config config_;
  std::string processor_;
  std::string instance_ = JobId::Random().ToString();
  uint64_t seq_ = 0;
  kafka::KafkaPtr producer_;
  kafka::KafkaPtr consumer_;
  wire::Decoder decoder_;
  std::vector<Entry> entries_;
};

// Returns once `processor` (named "app") reads all its job topics (joining
// their groups takes seconds), so that timings a test asserts start there.
inline void WarmUpProcessor(const Config& config, Processor& processor) {
  RawSubmitter other(config, "app");
  for (Priority p : kAllPriorities) other.Send(p, {RawSubmitter::RawJob{}});
  for (size_t i = 0; i < kAllPriorities.size(); ++i) {
    auto task = processor.Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    ASSERT_TRUE(task->Complete().ok());
  }
}

}  // namespace batchbus::testing

#endif  // BATCHBUS_TESTS_SUPPORT_RAW_SUBMITTER_H_

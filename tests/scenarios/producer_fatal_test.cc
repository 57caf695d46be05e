// Producers after a fatal error: librdkafka gives up on an idempotent
// producer whose sequence numbers the broker refuses, and every later
// message through it fails. The processor's outbox replaces that producer,
// and every message, sent before the error or after it, is delivered. The
// submitter's publisher replaces it too: the batches it held end as not
// delivered, saying why, and later batches go through the new one.
// librdkafka's rd_kafka_test_fatal_error raises the error in the client, so
// the same tests run against the mock cluster and the real broker.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kafka.h"
#include "mutex.h"
#include "outbox.h"
#include "publisher.h"
#include "support/test_cluster.h"

namespace batchbus {
namespace {

class CountingListener : public Outbox::Listener {
 public:
  void OnSent(std::unique_ptr<OutMessage>) override {
    MutexLock lock(&mu_);
    ++sent_;
  }
  void OnUndeliverable(std::unique_ptr<OutMessage>, Outbox::Failure,
                       std::string why) override {
    MutexLock lock(&mu_);
    ++undeliverable_;
    last_why_ = std::move(why);
  }
  int sent() {
    MutexLock lock(&mu_);
    return sent_;
  }
  int undeliverable() {
    MutexLock lock(&mu_);
    return undeliverable_;
  }
  std::string last_why() {
    MutexLock lock(&mu_);
    return last_why_;
  }

 private:
  Mutex mu_;
  int sent_ = 0;
  int undeliverable_ = 0;
  std::string last_why_;
};

std::unique_ptr<OutMessage> Message(const std::string& topic, int n) {
  auto msg = std::make_unique<OutMessage>();
  msg->topic = topic;
  msg->partition = 0;
  msg->payload = "result " + std::to_string(n);
  return msg;
}

// A topic of one partition for the test, on the mock cluster or the broker.
class ProducerFatalErrorTest : public testing::ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    config_.topic_partitions = 1;
    topic_ = config_.ns + ".fatal";
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok()) << conf.status();
    auto admin = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(admin.ok()) << admin.status();
    const absl::Status s = kafka::EnsureTopics(admin->get(), config_, {topic_},
                                               absl::Seconds(15));
    ASSERT_TRUE(s.ok()) << s;
  }
  std::string topic_;
};

TEST_F(ProducerFatalErrorTest, OutboxReplacesTheProducerAndLosesNothing) {
  const std::string& topic = topic_;
  const Config& config = config_;
  CountingListener listener;
  Outbox outbox(config, &listener);
  ASSERT_TRUE(outbox.Start(-1).ok());
  rd_kafka_t* first = outbox.handle();

  constexpr int kEach = 100;
  for (int i = 0; i < kEach; ++i) outbox.Send(Message(topic, i));
  // What librdkafka does when the broker refuses the producer's sequence.
  ASSERT_EQ(rd_kafka_test_fatal_error(
                first, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                "injected by the test"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int i = kEach; i < 2 * kEach; ++i) outbox.Send(Message(topic, i));

  ASSERT_TRUE(testing::Eventually(
      [&] {
        outbox.Poll(absl::Now());
        return listener.sent() + listener.undeliverable() == 2 * kEach;
      },
      absl::Seconds(30)))
      << listener.sent() << " sent, " << listener.undeliverable()
      << " undeliverable of " << 2 * kEach;
  EXPECT_EQ(listener.sent(), 2 * kEach);
  EXPECT_EQ(listener.undeliverable(), 0) << listener.last_why();
  EXPECT_EQ(outbox.replaced(), 1u);
  EXPECT_NE(outbox.handle(), first);
  EXPECT_EQ(outbox.pending(), 0u);
  outbox.Close(absl::Now() + absl::Seconds(5));
}

class UnsentListener : public Publisher::Listener {
 public:
  void OnUnsent(uint64_t, std::string_view why) override {
    MutexLock lock(&mu_);
    ++unsent_;
    last_why_ = std::string(why);
  }
  int unsent() {
    MutexLock lock(&mu_);
    return unsent_;
  }
  std::string last_why() {
    MutexLock lock(&mu_);
    return last_why_;
  }

 private:
  Mutex mu_;
  int unsent_ = 0;
  std::string last_why_;
};

std::vector<std::unique_ptr<BatchMessage>> Batches(const std::string& topic,
                                                   uint64_t first, int n) {
  std::vector<std::unique_ptr<BatchMessage>> out;
  for (int i = 0; i < n; ++i) {
    auto msg = std::make_unique<BatchMessage>();
    msg->seq = first + i;
    msg->topic = topic;
    msg->payload = "batch " + std::to_string(first + i);
    out.push_back(std::move(msg));
  }
  return out;
}

TEST_F(ProducerFatalErrorTest, PublisherReplacesTheProducerForLaterBatches) {
  const std::string& topic = topic_;
  const Config& config = config_;
  SubmitterCounters counters;
  UnsentListener listener;
  Publisher publisher(config, counters, &listener);
  ASSERT_TRUE(publisher.Start(-1).ok());
  rd_kafka_t* first = publisher.client();
  ASSERT_EQ(rd_kafka_test_fatal_error(
                first, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                "injected by the test"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  // Held by the failed producer: each ends as not delivered.
  auto doomed = Batches(topic, 1, 20);
  publisher.Publish(doomed);
  publisher.Poll();  // Replaces it.
  EXPECT_EQ(publisher.replaced(), 1u);
  EXPECT_NE(publisher.client(), first);
  constexpr int kLater = 50;
  auto later = Batches(topic, 100, kLater);
  publisher.Publish(later);
  ASSERT_TRUE(testing::Eventually(
      [&] {
        publisher.Poll();
        return counters.batches_sent.Get() + listener.unsent() == 20 + kLater;
      },
      absl::Seconds(30)))
      << counters.batches_sent.Get() << " sent, " << listener.unsent()
      << " unsent";
  EXPECT_EQ(counters.batches_sent.Get(), static_cast<uint64_t>(kLater));
  EXPECT_EQ(listener.unsent(), 20);
  EXPECT_NE(listener.last_why().find("injected by the test"), std::string::npos)
      << listener.last_why();
  publisher.Close(absl::Now() + absl::Seconds(5));
}

}  // namespace
}  // namespace batchbus

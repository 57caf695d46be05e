// The processor's outbox after a fatal producer error: librdkafka gives up
// on an idempotent producer whose sequence numbers the broker refuses, and
// every later message through it fails. The outbox replaces that producer,
// and every message, sent before the error or after it, is delivered.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "kafka.h"
#include "mutex.h"
#include "outbox.h"
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

TEST(OutboxFatalErrorTest, AProducerThatFailedForGoodIsReplacedAndNothingIsLost) {
  testing::MockCluster cluster;
  const std::string topic = "outbox-fatal";
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster.get(), topic.c_str(), 1, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  Config config;
  config.brokers = "kafka://" + cluster.bootstrap();
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

}  // namespace
}  // namespace batchbus

// The job consumers on a mock cluster: Close() tells the listener of every
// revocation before it returns; destroyed without Close() (as after a failed
// Processor::Create) they call nothing afterwards; assignment forwards each
// partition to its priority's queue.
#include <memory>
#include <set>
#include <string>

#include "job_consumers.h"
#include "mutex.h"
#include "support/test_cluster.h"
#include "wakeup.h"

namespace batchbus::testing {
namespace {

class RecordingListener : public JobConsumers::Listener {
 public:
  void OnAssigned(PartitionKey p) override {
    MutexLock lock(&mu_);
    EXPECT_FALSE(gone_) << "a callback after the consumers were destroyed";
    assigned_.insert(p);
  }
  void OnRevoked(PartitionKey p) override {
    MutexLock lock(&mu_);
    EXPECT_FALSE(gone_) << "a callback after the consumers were destroyed";
    revoked_.insert(p);
  }
  void OnStray(Priority, kafka::MessagePtr) override {}

  size_t assigned() {
    MutexLock lock(&mu_);
    return assigned_.size();
  }
  // Every partition assigned was revoked; from now on no callback may come.
  bool AllRevokedThenGone() {
    MutexLock lock(&mu_);
    gone_ = true;
    return revoked_ == assigned_;
  }

 private:
  Mutex mu_;
  std::set<PartitionKey> assigned_, revoked_;
  bool gone_ = false;
};

class JobConsumersTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    config_.topic_partitions = 2;
    for (Priority p : kAllPriorities) topics_[p] = config_.TopicFor("app", p);
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok());
    auto admin = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(admin.ok());
    ASSERT_TRUE(kafka::EnsureTopics(admin->get(), config_,
                                    {topics_.begin(), topics_.end()},
                                    absl::Seconds(15))
                    .ok());
  }
  // Started consumers that both groups assigned all 6 partitions (3 topics
  // x 2); null (and a failure) otherwise.
  std::unique_ptr<JobConsumers> StartAssigned() {
    auto consumers =
        std::make_unique<JobConsumers>(config_, "app", topics_, &listener_);
    if (!consumers->Start(wakeup_.write_fd()).ok()) {
      ADD_FAILURE() << "Start failed";
      return nullptr;
    }
    if (!Eventually(
            [&] {
              consumers->PollEvents();
              return listener_.assigned() == 6;
            },
            absl::Seconds(30))) {
      ADD_FAILURE() << "not all partitions were assigned";
      return nullptr;
    }
    return consumers;
  }

  PerPriority<std::string> topics_;
  RecordingListener listener_;  // Outlives the consumers of each test.
  WakeupPipe wakeup_;
};

// As after a failed Processor::Create: destroyed while subscribed and
// assigned, without Close(). Nothing reaches the listener afterwards, also
// while the cluster goes on (the listener checks each callback).
TEST_F(JobConsumersTest, DestroyedWhileAssignedCallsNothingAfterwards) {
  {
    auto consumers = StartAssigned();
    ASSERT_NE(consumers, nullptr);
  }
  (void)listener_.AllRevokedThenGone();  // From here on, no callback.
  absl::SleepFor(absl::Seconds(1));
}

TEST_F(JobConsumersTest, CloseRevokesEverythingWithinItsDeadline) {
  auto started = StartAssigned();
  ASSERT_NE(started, nullptr);
  JobConsumers& consumers = *started;
  const absl::Time start = absl::Now();
  consumers.Close(absl::Now() + absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_TRUE(listener_.AllRevokedThenGone());
  consumers.Close(absl::Now() + absl::Seconds(5));  // Idempotent.
  consumers.StoreOffset({Priority::kSlow, 0}, 10);  // Ignored once closed.
}

TEST_F(JobConsumersTest, AssignedPartitionsAreReadThroughTheirPriority) {
  auto started = StartAssigned();
  ASSERT_NE(started, nullptr);
  JobConsumers& consumers = *started;
  auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
  ASSERT_TRUE(conf.ok());
  auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  ASSERT_TRUE(producer.ok());
  const std::string& slow = topics_[Priority::kSlow];
  ASSERT_EQ(rd_kafka_producev(producer->get(), RD_KAFKA_V_TOPIC(slow.c_str()),
                              RD_KAFKA_V_PARTITION(1),
                              RD_KAFKA_V_VALUE((void*)"x", 1),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(producer->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_message_t* msgs[4];
  size_t slow_read = 0, others = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        consumers.PollEvents();
        for (Priority p : {Priority::kRealtime, Priority::kNormal}) {
          const size_t n = consumers.Read(p, msgs, 4);
          for (size_t i = 0; i < n; ++i) rd_kafka_message_destroy(msgs[i]);
          others += n;
        }
        const size_t n = consumers.Read(Priority::kSlow, msgs, 4);
        for (size_t i = 0; i < n; ++i) {
          EXPECT_EQ(msgs[i]->partition, 1);
          rd_kafka_message_destroy(msgs[i]);
        }
        slow_read += n;
        return slow_read > 0;
      },
      absl::Seconds(30)));
  EXPECT_EQ(slow_read, 1u);
  EXPECT_EQ(others, 0u);
  consumers.Close(absl::Now() + absl::Seconds(5));
}

}  // namespace
}  // namespace batchbus::testing

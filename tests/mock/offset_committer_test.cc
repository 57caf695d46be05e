// The offset committer on a mock cluster: it commits what was stored, and
// while the group coordinator is slow to answer it keeps one commit in
// flight instead of queueing one per interval.
#include <string>

#include "offset_committer.h"
#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

class OffsetCommitterTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (mock() == nullptr) GTEST_SKIP() << "needs the embedded cluster";
    topic_ = config_.TopicFor("app", Priority::kNormal);
    auto pconf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(pconf.ok());
    auto admin = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
    ASSERT_TRUE(admin.ok());
    ASSERT_TRUE(
        kafka::EnsureTopics(admin->get(), config_, {topic_}, absl::Seconds(15)).ok());
    auto conf = kafka::MakeConf(config_, kafka::Role::kConsumer,
                                {{"group.id", config_.ns + ".committer"},
                                 {"enable.auto.commit", "false"},
                                 {"enable.auto.offset.store", "false"}});
    ASSERT_TRUE(conf.ok());
    auto consumer = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
    ASSERT_TRUE(consumer.ok());
    consumer_ = std::move(*consumer);
    kafka::PartitionListPtr assignment(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(assignment.get(), topic_.c_str(), 0);
    ASSERT_EQ(rd_kafka_assign(consumer_.get(), assignment.get()),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    // Only offsets are stored here; nothing is fetched from the empty topic.
    ASSERT_EQ(rd_kafka_pause_partitions(consumer_.get(), assignment.get()),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  void TearDown() override {
    if (consumer_) {
      rd_kafka_assign(consumer_.get(), nullptr);
      kafka::DestroyWithin(std::move(consumer_), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
                           absl::Now() + absl::Seconds(5));
    }
    ClusterTest::TearDown();
  }

  void Store(int64_t offset) {
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), 0)->offset = offset;
    ASSERT_EQ(rd_kafka_offsets_store(consumer_.get(), list.get()),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  int64_t Committed() {
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), 0);
    if (rd_kafka_committed(consumer_.get(), list.get(), 5000)) return -1;
    return list->elems[0].offset;
  }

  std::string topic_;
  kafka::KafkaPtr consumer_;
};

TEST_F(OffsetCommitterTest, CommitsTheStoredOffset) {
  OffsetCommitter committer(consumer_.get(), absl::Milliseconds(10), "test");
  Store(42);
  EXPECT_TRUE(Eventually(
      [&] {
        committer.Poll(absl::Now());
        return committer.sent() > 0 && Committed() == 42;
      },
      absl::Seconds(20)))
      << "committed " << Committed() << " after " << committer.sent() << " commits";
}

TEST_F(OffsetCommitterTest, KeepsOneCommitInFlightWhileTheCoordinatorIsSlow) {
  OffsetCommitter committer(consumer_.get(), absl::Milliseconds(10), "test");
  // Known to the coordinator before it slows down.
  Store(1);
  ASSERT_TRUE(Eventually(
      [&] {
        committer.Poll(absl::Now());
        return Committed() == 1;
      },
      absl::Seconds(20)));
  rd_kafka_mock_broker_set_rtt(mock(), 1, 1000);
  const uint64_t before = committer.sent();
  const absl::Time until = absl::Now() + absl::Milliseconds(2500);
  for (int64_t offset = 2; absl::Now() < until; ++offset) {
    Store(offset);
    committer.Poll(absl::Now());
    absl::SleepFor(absl::Milliseconds(10));
  }
  // One answer per second: at most three commits in 2.5 s, where one per
  // interval would have been about 200.
  EXPECT_LE(committer.sent() - before, 3u);
  EXPECT_GE(committer.sent() - before, 1u);
  rd_kafka_mock_broker_set_rtt(mock(), 1, 0);
  Store(1000);
  EXPECT_TRUE(Eventually(
      [&] {
        committer.Poll(absl::Now());
        return Committed() == 1000;
      },
      absl::Seconds(20)))
      << "the last stored offset was not committed: " << Committed();
}

}  // namespace
}  // namespace batchbus::testing

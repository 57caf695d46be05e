// RunMockCommand: commands on the embedded cluster run to the end and hand
// back their status, and what they create is there when it returns.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kafka.h"
#include "support/test_cluster.h"

namespace batchbus {
namespace {

// Partition counts of `topics` as the cluster's metadata lists them (0 for
// a topic it does not list).
std::vector<int> PartitionCounts(const std::string& bootstrap,
                                 const std::vector<std::string>& topics) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err,
                    sizeof err);
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  kafka::KafkaPtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  std::vector<int> counts(topics.size(), 0);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk.get(), 1, nullptr, &md, 10000) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    ADD_FAILURE() << "no metadata from the mock cluster";
    return counts;
  }
  for (int i = 0; i < md->topic_cnt; ++i) {
    for (size_t t = 0; t < topics.size(); ++t) {
      if (topics[t] == md->topics[i].topic) {
        counts[t] = md->topics[i].partition_cnt;
      }
    }
  }
  rd_kafka_metadata_destroy(md);
  return counts;
}

TEST(MockCommandTest, EveryCommandRunsAndWhatItCreatedIsListed) {
  testing::MockCluster cluster;
  std::vector<std::string> topics;
  for (int i = 0; i < 40; ++i) topics.push_back("mc-" + std::to_string(i));
  int created = 0;
  absl::Status s = kafka::RunMockCommand(cluster.get(), [&] {
    for (const std::string& t : topics) {
      if (rd_kafka_mock_topic_create(cluster.get(), t.c_str(), 3, 1) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        return absl::InternalError("create " + t);
      }
      ++created;
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(created, 40);
  EXPECT_EQ(PartitionCounts(cluster.bootstrap(), topics),
            std::vector<int>(40, 3));
}

TEST(MockCommandTest, TheCommandsErrorComesBackUnchanged) {
  testing::MockCluster cluster;
  absl::Status s = kafka::RunMockCommand(cluster.get(), [&] {
    const rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster.get(), "mc-dup", 1, 1);
    const rd_kafka_resp_err_t again =
        rd_kafka_mock_topic_create(cluster.get(), "mc-dup", 1, 1);
    return kafka::ToStatus(e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : again,
                           "creating mc-dup twice");
  });
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("creating mc-dup twice"), std::string::npos) << s;
}

}  // namespace
}  // namespace batchbus

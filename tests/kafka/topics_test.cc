// Topics (kafka tier): on a broker that does not auto-create topics,
//  (a) a Submitter and a Processor with create_topics = true create their
//      topics with topic_partitions partitions and work end to end;
//  (b) with create_topics = false and the topics missing, Create fails with
//      FailedPrecondition naming the missing topics and saying how to create
//      them, and creates nothing.
//
// The test runs a broker of its own with auto.create.topics.enable=false,
// started and stopped through scripts/kafka (BATCHBUS_KAFKA_SCRIPT) on port
// $BATCHBUS_KAFKA_PORT + 20 (or $BATCHBUS_TEST_NOAUTO_PORT), state in
// /tmp/batchbus-kafka-noauto-<port>. The shared broker is left alone.
#include <sys/stat.h>

#include <cinttypes>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

int NoAutoPort() {
  return std::atoi(EnvOr("BATCHBUS_TEST_NOAUTO_PORT",
                         std::to_string(KafkaPort() + 20))
                       .c_str());
}

std::vector<std::string> NoAutoEnv(int port) {
  return {"BATCHBUS_KAFKA_AUTO_CREATE=false",
          "BATCHBUS_KAFKA_CONTROLLER_PORT=" + std::to_string(port + 1),
          "BATCHBUS_KAFKA_STATE=/tmp/batchbus-kafka-noauto-" +
              std::to_string(port)};
}

// Starts the broker before the first test of this process and stops it
// after the last.
class NoAutoCreateBroker : public ::testing::Environment {
 public:
  void SetUp() override {
    const std::string script = KafkaScript();
    struct stat st;
    if (script.empty() || stat(script.c_str(), &st) != 0) {
      error_ = "BATCHBUS_KAFKA_SCRIPT is not set or does not exist ('" +
               script +
               "'): this test starts a broker without topic auto-creation "
               "through scripts/kafka";
      return;
    }
    const int port = NoAutoPort();
    // A broker left over from an earlier run may have other settings:
    // start from a stopped one, so the config is written anew.
    (void)KafkaScriptCommand("stop", port, NoAutoEnv(port), absl::Seconds(60));
    CommandResult r = KafkaScriptCommand("start", port, NoAutoEnv(port));
    if (!r.ok()) {
      error_ = "could not start the broker without auto-creation on port " +
               std::to_string(port) + ":\n" + r.output;
      return;
    }
    started_ = true;
    std::printf("[topics] broker without auto-creation on 127.0.0.1:%d "
                "started in %.1f s\n",
                port, absl::ToDoubleSeconds(r.took));
    std::fflush(stdout);
  }
  void TearDown() override {
    if (!started_) return;
    const int port = NoAutoPort();
    CommandResult r =
        KafkaScriptCommand("stop", port, NoAutoEnv(port), absl::Seconds(60));
    if (!r.ok()) ADD_FAILURE() << "stopping the test broker:\n" << r.output;
  }
  static const std::string& error() { return error_; }

 private:
  static inline std::string error_;
  bool started_ = false;
};

[[maybe_unused]] const auto* const kBroker =
    ::testing::AddGlobalTestEnvironment(new NoAutoCreateBroker);

class TopicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(NoAutoCreateBroker::error().empty())
        << NoAutoCreateBroker::error();
    config_.brokers = "kafka://127.0.0.1:" + std::to_string(NoAutoPort());
    config_.ns = UniqueNamespace();
    config_.close_timeout = absl::Seconds(5);
    config_.For(Priority::kNormal).max_linger = absl::Milliseconds(20);
    config_.For(Priority::kSlow).max_linger = absl::Milliseconds(50);
  }

  // Partitions of `topic` on the test broker; -1 when it does not exist.
  int Partitions(const std::string& topic) {
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    EXPECT_TRUE(conf.ok()) << conf.status();
    if (!conf.ok()) return -2;
    auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    EXPECT_TRUE(rk.ok()) << rk.status();
    if (!rk.ok()) return -2;
    auto n = kafka::PartitionCount(rk->get(), config_, topic, absl::Seconds(10));
    if (absl::IsNotFound(n.status())) return -1;
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -2;
  }

  std::vector<std::string> ProcessorTopics(const std::string& name) {
    std::vector<std::string> topics;
    for (Priority p : kAllPriorities) topics.push_back(config_.TopicFor(name, p));
    topics.push_back(config_.DeadLetterTopicFor(name));
    return topics;
  }

  Config config_;
};

TEST_F(TopicsTest, CreateTopicsMakesThemWithTheConfiguredPartitions) {
  config_.create_topics = true;
  config_.topic_partitions = 5;
  config_.For(Priority::kRealtime).batch_timeout = absl::Seconds(3);

  auto submitter = Submitter::Create(config_);
  ASSERT_TRUE(submitter.ok()) << submitter.status();
  EXPECT_EQ(Partitions(config_.ReplyTopic()), 5);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(processor.get());
  for (const std::string& t : ProcessorTopics("app")) {
    EXPECT_EQ(Partitions(t), 5) << t;
  }

  // End to end on the created topics.
  Collector results;
  std::vector<std::pair<JobId, std::string>> sent;
  for (int i = 0; i < 60; ++i) {
    const std::string data = "{\"i\":" + std::to_string(i) + "}";
    Job job = MakeJob("app", kAllPriorities[i % 3], data);
    ASSERT_TRUE((*submitter)->Submit(job, results.Callback()).ok());
    sent.emplace_back(job.id, data);
  }
  ASSERT_TRUE(results.WaitFor(sent.size(), absl::Seconds(60)))
      << results.total();
  for (const auto& [id, data] : sent) {
    EXPECT_EQ(results.Get(id).status, JobStatus::kProcessedOk);
    EXPECT_EQ(results.Get(id).data, data);
  }

  // Existing topics satisfy create_topics = false.
  Config existing = config_;
  existing.create_topics = false;
  auto again = Submitter::Create(existing);
  EXPECT_TRUE(again.ok()) << again.status();
  auto processor2 = Processor::Create(existing, "app");
  EXPECT_TRUE(processor2.ok()) << processor2.status();
  if (processor2.ok()) (void)(*processor2)->Close(absl::Seconds(5));

  // A job for an application whose topics do not exist (and that the broker
  // will not create) ends BATCH_FAILED in time, naming the topic.
  const absl::Time t0 = absl::Now();
  auto ghost = (*submitter)->SubmitAndWait(
      MakeJob("ghost", Priority::kRealtime), absl::Seconds(30));
  const absl::Duration ghost_took = absl::Now() - t0;
  ASSERT_TRUE(ghost.ok()) << ghost.status();
  EXPECT_EQ(ghost->status, JobStatus::kBatchFailed);
  EXPECT_NE(ghost->error.find(config_.TopicFor("ghost", Priority::kRealtime)),
            std::string::npos)
      << ghost->error;
  EXPECT_LE(ghost_took, absl::Seconds(3) + absl::Seconds(2));
  EXPECT_EQ(Partitions(config_.TopicFor("ghost", Priority::kRealtime)), -1);
  std::printf("[topics] job for missing topics: %s after %.1f s: %s\n",
              std::string(JobStatusName(ghost->status)).c_str(),
              absl::ToDoubleSeconds(ghost_took), ghost->error.c_str());
  std::fflush(stdout);
}

TEST_F(TopicsTest, MissingTopicsFailCreateWithAClearMessage) {
  config_.create_topics = false;
  config_.topic_partitions = 5;

  const absl::Time t0 = absl::Now();
  auto submitter = Submitter::Create(config_);
  const absl::Duration submitter_took = absl::Now() - t0;
  ASSERT_FALSE(submitter.ok());
  EXPECT_EQ(submitter.status().code(), absl::StatusCode::kFailedPrecondition)
      << submitter.status();
  const std::string smsg(submitter.status().message());
  EXPECT_NE(smsg.find(config_.ReplyTopic()), std::string::npos) << smsg;
  EXPECT_NE(smsg.find("kafka-topics.sh --create --topic"), std::string::npos)
      << smsg;
  EXPECT_NE(smsg.find("--partitions 5"), std::string::npos) << smsg;
  EXPECT_NE(smsg.find("create_topics = true"), std::string::npos) << smsg;

  const absl::Time t1 = absl::Now();
  auto processor = Processor::Create(config_, "app");
  const absl::Duration processor_took = absl::Now() - t1;
  ASSERT_FALSE(processor.ok());
  EXPECT_EQ(processor.status().code(), absl::StatusCode::kFailedPrecondition)
      << processor.status();
  const std::string pmsg(processor.status().message());
  for (const std::string& t : ProcessorTopics("app")) {
    EXPECT_NE(pmsg.find(t), std::string::npos) << t << " not named in: " << pmsg;
  }
  EXPECT_NE(pmsg.find("kafka-topics.sh --create --topic"), std::string::npos)
      << pmsg;
  EXPECT_NE(pmsg.find("create_topics = true"), std::string::npos) << pmsg;

  // Nothing was created, neither by batchbus nor by the broker.
  for (const std::string& t : ProcessorTopics("app")) {
    EXPECT_EQ(Partitions(t), -1) << t;
  }
  EXPECT_EQ(Partitions(config_.ReplyTopic()), -1);
  // Failing is quick: the topics are known missing from one metadata call.
  EXPECT_LE(submitter_took, absl::Seconds(10));
  EXPECT_LE(processor_took, absl::Seconds(10));
  std::printf("[topics] create_topics=false: Submitter::Create failed in %.2f "
              "s, Processor::Create in %.2f s:\n[topics]   %s\n[topics]   %s\n",
              absl::ToDoubleSeconds(submitter_took),
              absl::ToDoubleSeconds(processor_took), smsg.c_str(),
              pmsg.c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace batchbus::testing

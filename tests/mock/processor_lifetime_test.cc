// Processor lifetime and hostile input, on a mock cluster: a Task that
// outlives its Processor, a Task moved over an unanswered one, and a batch
// whose reply address cannot be produced to.
#include <atomic>
#include <string>

#include "support/test_cluster.h"
#include "wire.h"

namespace batchbus::testing {
namespace {

using ProcessorLifetimeTest = ClusterTest;

TEST_F(ProcessorLifetimeTest, TaskAnsweredAfterCloseOrDestructionIsRefused) {
  Collector results;  // Outlives the submitter, whose Close ends jobs.
  auto submitter = NewSubmitter();
  Job job = MakeJob("app", Priority::kNormal);
  ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto task = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  const absl::Status closed = (*processor)->Close(absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(closed)) << closed;
  absl::Status s = task->Complete("{}");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  processor->reset();  // The Processor is gone; the Task still works.
  EXPECT_EQ(task->id(), job.id);
  EXPECT_EQ(task->data(), "{\"n\":1}");
  s = task->Fail("too late");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_FALSE(task->answered());
  *task = Task();  // Let go of it: nothing to answer, nothing crashes.
}

TEST_F(ProcessorLifetimeTest, TaskMovedOverAnUnansweredOneFailsThatJob) {
  Collector results;  // Outlives the submitter, whose Close ends jobs.
  auto submitter = NewSubmitter();
  Job first = MakeJob("app", Priority::kNormal);
  Job second = MakeJob("app", Priority::kNormal);
  ASSERT_TRUE(submitter->Submit(first, results.Callback()).ok());
  ASSERT_TRUE(submitter->Submit(second, results.Callback()).ok());
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto a = (*processor)->Next(absl::Seconds(30));
  auto b = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(a.ok() && b.ok());
  const JobId a_id = a->id(), b_id = b->id();
  *a = std::move(*b);  // a's job was not answered.
  EXPECT_FALSE(static_cast<bool>(*b));
  EXPECT_EQ(a->id(), b_id);
  ASSERT_TRUE(a->Complete("{\"ok\":true}").ok());
  ASSERT_TRUE(results.WaitFor(2, absl::Seconds(30)));
  EXPECT_EQ(results.Get(a_id).status, JobStatus::kProcessedError);
  EXPECT_EQ(results.Get(a_id).error, "handler returned without answering the job");
  EXPECT_EQ(results.Get(b_id).status, JobStatus::kProcessedOk);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

// A batch as a hostile submitter would write it: its reply partition does
// not exist. Its results go to the dead letters with the reason, its offset
// passes (a later processor does not run it again), and Close stays quick.
TEST_F(ProcessorLifetimeTest, UnproducibleReplyAddressIsDeadLetteredAndPassed) {
  std::atomic<int> hostile_runs{0};
  const JobId hostile_id(0xbad, 1);
  auto handler = [&](Task& task) {
    if (task.id() == hostile_id) hostile_runs.fetch_add(1);
    (void)task.Complete(task.data());
  };
  auto processor = std::make_unique<RunningProcessor>(
      config_, "app", absl::flat_hash_map<std::string, Processor::Handler>{
                          {"echo", handler}});
  {
    wire::BatchWriter w;
    const std::string reply_topic = config_.ReplyTopic();
    w.Begin({"0123456789abcdef0123456789abcdef", 1, reply_topic, 999, "app",
             Priority::kNormal});
    w.AddJob(hostile_id, "echo", "{}");
    const std::string payload = w.Finish();
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok());
    auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(producer.ok());
    const std::string topic = config_.TopicFor("app", Priority::kNormal);
    ASSERT_EQ(rd_kafka_producev(producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE((void*)payload.data(), payload.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(rd_kafka_flush(producer->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_TRUE(Eventually(
      [&] { return (*processor)->GetStats().results_dead_lettered == 1; },
      absl::Seconds(30)));
  EXPECT_EQ(hostile_runs.load(), 1);
  // Work goes on, and Close is not held up by the hostile batch.
  Collector results;  // Outlives the submitter, whose Close ends jobs.
  auto submitter = NewSubmitter();
  Job job = MakeJob("app", Priority::kNormal);
  ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 1u);
  const absl::Time start = absl::Now();
  processor.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // The dead letter says why and where from.
  std::optional<ReadMessage> dead = FirstMessageOn(
      config_, config_.DeadLetterTopicFor("app"), absl::Seconds(30));
  ASSERT_TRUE(dead);
  EXPECT_NE(dead->Header("batchbus.error").find("[999]"), std::string::npos)
      << dead->Header("batchbus.error");
  EXPECT_EQ(dead->Header("batchbus.origin"),
            config_.TopicFor("app", Priority::kNormal) + "[0]@0");

  // The offset passed: the next processor does not run the batch again.
  RunningProcessor next(config_, "app", {{"echo", handler}});
  Job marker = MakeJob("app", Priority::kNormal);
  Collector marker_result;
  ASSERT_TRUE(submitter->Submit(marker, marker_result.Callback()).ok());
  ASSERT_TRUE(marker_result.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(hostile_runs.load(), 1);
}

}  // namespace
}  // namespace batchbus::testing

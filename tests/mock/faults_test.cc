// Broker trouble, injected with the mock cluster's error injection and
// broker control (so this file runs on the mock tier only): retries of
// transient errors, undeliverable batches, and bounded close with the broker
// gone. The real-broker counterpart (a broker restart) is in tests/kafka.
#include <thread>

#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

using FaultTest = ClusterTest;

TEST_F(FaultTest, TransientProduceErrorsAreRetried) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  auto warm = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime),
                                       absl::Seconds(30));
  ASSERT_TRUE(warm.ok() && warm->ok());
  rd_kafka_mock_push_request_errors(
      mock(), 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  Collector results;
  for (int i = 0; i < 50; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(50, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 50u);
}

// With every request answered 100 ms late, as on a loaded replicated
// cluster, a burst of single-job realtime batches fills each partition's
// window of undelivered messages in the submitter and the processor: the
// rest is held and goes in later requests. Every job still ends, once and
// in time.
TEST_F(FaultTest, SlowAcknowledgementsHoldBatchesAndLoseNone) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  auto warm = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime),
                                       absl::Seconds(30));
  ASSERT_TRUE(warm.ok() && warm->ok());
  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(mock(), 1, 100),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  constexpr size_t kJobs = 2000;
  Collector results;
  for (size_t i = 0; i < kJobs; ++i) {
    Job job = MakeJob("app", i % 2 ? Priority::kRealtime : Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(kJobs, absl::Seconds(60)))
      << results.All().size() << " of " << kJobs << " ended";
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kJobs);
  EXPECT_EQ(results.All().size(), kJobs);  // None ended twice.
}

TEST_F(FaultTest, UndeliverableBatchFailsItsJobsWithClearStatus) {
  config_.kafka["message.timeout.ms"] = "1000";
  config_.For(Priority::kNormal).batch_timeout = absl::Seconds(20);
  auto submitter = NewSubmitter();
  rd_kafka_mock_broker_set_down(mock(), 1);
  Collector results;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 10; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(10, absl::Seconds(15)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 10u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("could not deliver"), std::string::npos) << r.error;
  }
}

// A batch that never reached a broker: the jobs' error says so, whether
// the batch timeout or librdkafka's delivery timeout (the same length)
// ends it first.
TEST_F(FaultTest, BatchThatNoBrokerAcknowledgesFailsNamingTheCause) {
  config_.For(Priority::kRealtime).batch_timeout = absl::Seconds(4);
  auto submitter = NewSubmitter();
  rd_kafka_mock_broker_set_down(mock(), 1);
  Collector results;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        submitter->Submit(MakeJob("app", Priority::kRealtime), results.Callback())
            .ok());
  }
  ASSERT_TRUE(results.WaitFor(5, absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 5u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("no broker acknowledged"), std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find("min.insync.replicas"), std::string::npos) << r.error;
  }
}

TEST_F(FaultTest, CloseIsBoundedWithTheBrokerGone) {
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok());
  auto submitter = NewSubmitter();
  auto warm = std::thread([&] {
    auto t = (*processor)->Next(absl::Seconds(30));
    if (t.ok()) (void)t->Complete();
  });
  auto r = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime),
                                    absl::Seconds(30));
  warm.join();
  ASSERT_TRUE(r.ok() && r->ok());
  Collector results;
  for (int i = 0; i < 10; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  rd_kafka_mock_broker_set_down(mock(), 1);
  const absl::Time start = absl::Now();
  (void)submitter->Close(absl::Seconds(2));
  const absl::Duration submitter_close = absl::Now() - start;
  (*processor)->Shutdown();
  (void)(*processor)->Close(absl::Seconds(2));
  const absl::Duration total = absl::Now() - start;
  EXPECT_LT(submitter_close, absl::Seconds(3.5));
  EXPECT_LT(total - submitter_close, absl::Seconds(3.5));
  EXPECT_EQ(results.total(), 10u);
}

}  // namespace
}  // namespace batchbus::testing

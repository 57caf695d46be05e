// Submitter behaviour, on a mock cluster per test (label mock) and on the
// real broker (label kafka): batching thresholds, bad input, back-pressure,
// batch timeouts, late results and Close.
#include <atomic>
#include <thread>

#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

using SubmitterTest = ClusterTest;

TEST_F(SubmitterTest, RejectsBadInputWithInvalidArgumentAndKeepsWorking) {
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Collector results;

  Job bad_json = MakeJob("app", Priority::kNormal, "{\"unterminated\":");
  EXPECT_EQ(submitter->Submit(bad_json, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job empty_processor = MakeJob("", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(empty_processor, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job empty_group = MakeJob("app", Priority::kNormal, "1", "");
  EXPECT_EQ(submitter->Submit(empty_group, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job bad_name = MakeJob("no spaces/allowed", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(bad_name, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job huge = MakeJob("app", Priority::kNormal,
                     "\"" + std::string(config_.max_message_bytes, 'x') + "\"");
  absl::Status too_big = submitter->Submit(huge, results.Callback());
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(too_big.message()).find("max_message_bytes"),
            std::string::npos)
      << too_big;

  // None of them was accepted, so none gets a callback; a good job still runs.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Job good = MakeJob("app", Priority::kRealtime, "[1,2,3]");
  ASSERT_TRUE(submitter->Submit(good, results.Callback()).ok());
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(results.total(), 1u);
  EXPECT_EQ(results.Get(good.id).status, JobStatus::kProcessedOk);
  EXPECT_EQ(results.Get(good.id).data, "[1,2,3]");
  EXPECT_EQ(submitter->GetStats().rejected, 5u);
}

TEST_F(SubmitterTest, SendsBatchWhenMaxJobsReachedWithoutWaitingForLinger) {
  config_.For(Priority::kNormal).max_jobs = 10;
  config_.For(Priority::kNormal).max_linger = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 30; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  // Three full batches go at once; the linger of 20 s never matters.
  ASSERT_TRUE(results.WaitFor(30, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 30u);
  EXPECT_EQ(processor->GetStats().batches_received, 3u);
}

TEST_F(SubmitterTest, FlushesPartialBatchAfterLinger) {
  config_.For(Priority::kNormal).max_jobs = 1000;
  config_.For(Priority::kNormal).max_linger = absl::Milliseconds(300);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  // Let the processor join its group first so timing below is the linger.
  Collector warmup;
  Job first = MakeJob("app", Priority::kRealtime);
  ASSERT_TRUE(submitter->Submit(first, warmup.Callback()).ok());
  ASSERT_TRUE(warmup.WaitFor(1, absl::Seconds(30)));

  Collector results;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(results.total(), 0u) << "sent before its linger passed";
  ASSERT_TRUE(results.WaitFor(3, absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 3u);
  EXPECT_EQ(processor->GetStats().batches_received, 2u);  // warmup + 1
}

TEST_F(SubmitterTest, SplitsBatchesAtMaxBytes) {
  config_.For(Priority::kSlow).max_jobs = 1000;
  config_.For(Priority::kSlow).max_bytes = 4096;
  config_.For(Priority::kSlow).max_linger = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  const std::string data = "\"" + std::string(900, 'a') + "\"";
  for (int i = 0; i < 20; ++i) {
    Job job = MakeJob("app", Priority::kSlow, data);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  submitter->Flush();
  ASSERT_TRUE(results.WaitFor(20, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 20u);
  // About 960 encoded bytes per job: at most 4 fit under 4096 bytes.
  EXPECT_GE(processor->GetStats().batches_received, 5u);
}

TEST_F(SubmitterTest, RealtimeJobsGoOutAsBatchesOfOne) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 5; ++i) {
    Job job = MakeJob("app", Priority::kRealtime);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(5, absl::Seconds(30)));
  EXPECT_EQ(processor->GetStats().batches_received, 5u);
}

TEST_F(SubmitterTest, EndsJobsWithoutResultAsBatchFailedAfterTimeout) {
  config_.For(Priority::kNormal).batch_timeout = absl::Seconds(1);
  Collector results;
  auto submitter = NewSubmitter();  // No processor: nothing will answer.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 5; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(5, absl::Seconds(5)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Milliseconds(1000 + 20 + 500));  // linger + slack
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 5u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("batch timeout"), std::string::npos) << r.error;
  }
  EXPECT_EQ(submitter->GetStats().inflight_jobs, 0u);
}

TEST_F(SubmitterTest, LateResultGoesToHookAndNeverToTheCallbackTwice) {
  config_.For(Priority::kNormal).batch_timeout = absl::Seconds(1);
  auto submitter = NewSubmitter();
  std::atomic<int> late{0};
  submitter->SetLateResultHook([&](const JobResult& r) {
    EXPECT_EQ(r.status, JobStatus::kProcessedOk);
    ++late;
  });
  Collector results;
  for (int i = 0; i < 4; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(4, absl::Seconds(5)));
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 4u);

  // Now a processor picks the batch up from Kafka and answers it.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(Eventually([&] { return late.load() == 4; }, absl::Seconds(30)));
  EXPECT_EQ(submitter->GetStats().late_results, 4u);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(results.total(), 4u);
}

TEST_F(SubmitterTest, WaitsForRoomThenReturnsResourceExhausted) {
  config_.max_inflight_jobs = 10;
  config_.submit_wait = absl::Milliseconds(300);
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 10; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  Job one_more = MakeJob("app", Priority::kSlow);
  const absl::Time start = absl::Now();
  absl::Status s = submitter->Submit(one_more, results.Callback());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(SubmitterTest, FailPolicyReturnsResourceExhaustedAtOnce) {
  config_.max_inflight_jobs = 3;
  config_.backpressure = BackpressurePolicy::kFail;
  config_.submit_wait = absl::Seconds(30);
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 3; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  Job one_more = MakeJob("app", Priority::kSlow);
  const absl::Time start = absl::Now();
  EXPECT_EQ(submitter->Submit(one_more, results.Callback()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

TEST_F(SubmitterTest, RoomFreedByResultsLetsWaitingSubmitProceed) {
  config_.max_inflight_jobs = 5;
  config_.submit_wait = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 50; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok()) << i;
    EXPECT_LE(submitter->GetStats().inflight_jobs, 5u);
  }
  ASSERT_TRUE(results.WaitFor(50, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 50u);
}

TEST_F(SubmitterTest, CloseFailsPendingJobsAndReturnsInBoundedTime) {
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 7; ++i) {
    Job job = MakeJob("app", i % 2 ? Priority::kSlow : Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  const absl::Time start = absl::Now();
  absl::Status s = submitter->Close(absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(results.total(), 7u);
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 7u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("closed"), std::string::npos) << r.error;
  }
  Job after = MakeJob("app", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(after, results.Callback()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(submitter->Close(absl::Seconds(1)).ok());  // Idempotent.
}

TEST_F(SubmitterTest, SubmitAndWaitAndFutureDeliverTheResult) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  auto r = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime, "42"),
                                    absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, JobStatus::kProcessedOk);
  EXPECT_EQ(r->data, "42");

  auto future = submitter->SubmitAsync(MakeJob("app", Priority::kNormal, "7"));
  ASSERT_TRUE(future.ok());
  ASSERT_EQ(future->wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  EXPECT_EQ(future->get().data, "7");
}

TEST_F(SubmitterTest, ManyThreadsSubmittingEachJobEndsExactlyOnce) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  constexpr int kThreads = 4, kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Job job = MakeJob("app", kAllPriorities[(t + i) % 3],
                          "{\"t\":" + std::to_string(t) + "}");
        ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(results.WaitFor(kThreads * kPerThread, absl::Seconds(60)))
      << results.total();
  EXPECT_EQ(results.distinct(), size_t{kThreads * kPerThread});
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk),
            size_t{kThreads * kPerThread});
  for (const JobResult& r : results.All()) {
    if (!r.ok()) {
      ADD_FAILURE() << JobStatusName(r.status) << " "
                    << PriorityName(r.priority) << ": " << r.error;
    }
  }
}

}  // namespace
}  // namespace batchbus::testing

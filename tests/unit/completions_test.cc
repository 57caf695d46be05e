// The completion dispatcher's specification: every result goes to its
// callback or waiter once and is counted by its status; late results go to
// the hook and are counted as late only; exceptions stay contained.
#include "completions.h"

#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

JobResult Result(JobStatus status, uint64_t n = 1) {
  JobResult r;
  r.job_id = JobId(0, n);
  r.status = status;
  return r;
}

TEST(CompletionDispatcher, RunsEachCallbackOnceAndCountsByStatus) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  std::vector<JobStatus> seen;
  auto record = [&](const JobResult& r) { seen.push_back(r.status); };
  Outcome outcome;
  for (JobStatus s : {JobStatus::kProcessedOk, JobStatus::kProcessedError,
                      JobStatus::kBatchFailed, JobStatus::kProcessedOk}) {
    outcome.completions.push_back({ResultSink{record, nullptr}, Result(s)});
  }
  dispatcher.Run(outcome);
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_TRUE(outcome.completions.empty());
  EXPECT_EQ(counters.processed_ok.Get(), 2u);
  EXPECT_EQ(counters.processed_error.Get(), 1u);
  EXPECT_EQ(counters.batch_failed.Get(), 1u)
      << "BATCH_FAILED from anywhere, the wire included, is batch_failed";
  EXPECT_EQ(counters.late_results.Get(), 0u);
}

// A caller that reads the stats from its callback, or right after its wait
// returns, finds its own job counted (and every job of the same run).
TEST(CompletionDispatcher, EveryJobIsCountedBeforeAnyCallbackOrWaiterSeesIt) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  std::vector<uint64_t> failed_seen;
  std::vector<uint64_t> events_seen;
  auto record = [&](const JobResult&) {
    failed_seen.push_back(counters.batch_failed.Get());
  };
  Outcome outcome;
  for (int i = 0; i < 3; ++i) {
    JobEvent event;
    outcome.events.push_back(
        {[&](const JobEvent&) { events_seen.push_back(counters.events.Get()); },
         event});
  }
  for (uint64_t n = 1; n <= 3; ++n) {
    outcome.completions.push_back(
        {ResultSink{record, nullptr}, Result(JobStatus::kBatchFailed, n)});
  }
  auto waiter = std::make_shared<ResultWaiter>();
  outcome.completions.push_back(
      {ResultSink{nullptr, waiter}, Result(JobStatus::kExpired, 4)});
  uint64_t expired_after_wait = 0;
  std::thread waiting([&] {
    if (waiter->WaitFor(absl::Seconds(30)).has_value()) {
      expired_after_wait = counters.expired.Get();
    }
  });
  dispatcher.Run(outcome);
  waiting.join();
  EXPECT_EQ(failed_seen, (std::vector<uint64_t>{3, 3, 3}));
  EXPECT_EQ(events_seen, (std::vector<uint64_t>{3, 3, 3}));
  EXPECT_EQ(expired_after_wait, 1u);
}

TEST(CompletionDispatcher, ACallbackThatThrowsDoesNotStopTheOthers) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  int ran = 0;
  Outcome outcome;
  outcome.completions.push_back(
      {ResultSink{[](const JobResult&) { throw std::runtime_error("x"); },
                  nullptr},
       Result(JobStatus::kProcessedOk)});
  outcome.completions.push_back(
      {ResultSink{[](const JobResult&) { throw 42; }, nullptr},
       Result(JobStatus::kProcessedOk)});
  outcome.completions.push_back(
      {ResultSink{[&](const JobResult&) { ++ran; }, nullptr},
       Result(JobStatus::kProcessedOk)});
  dispatcher.Run(outcome);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(counters.processed_ok.Get(), 3u);
}

TEST(CompletionDispatcher, LateResultsGoToTheHookAndCountOnlyAsLate) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  std::vector<JobResult> hooked;
  dispatcher.SetLateHook([&](const JobResult& r) { hooked.push_back(r); });
  Outcome outcome;
  outcome.late.push_back(Result(JobStatus::kProcessedOk, 1));
  outcome.late.push_back(Result(JobStatus::kProcessedError, 2));
  dispatcher.Run(outcome);
  ASSERT_EQ(hooked.size(), 2u);
  EXPECT_EQ(hooked[1].job_id, JobId(0, 2));
  EXPECT_EQ(counters.late_results.Get(), 2u);
  EXPECT_EQ(counters.processed_ok.Get(), 0u);
  EXPECT_EQ(counters.processed_error.Get(), 0u);
  EXPECT_TRUE(outcome.late.empty());
}

TEST(CompletionDispatcher, AHookThatThrowsIsContainedAndLateResultsStillCount) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  dispatcher.SetLateHook(
      [](const JobResult&) { throw std::runtime_error("hook"); });
  Outcome outcome;
  outcome.late.push_back(Result(JobStatus::kProcessedOk));
  dispatcher.Run(outcome);
  EXPECT_EQ(counters.late_results.Get(), 1u);
}

TEST(CompletionDispatcher, AWaitingCallerGetsItsResult) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  auto waiter = std::make_shared<ResultWaiter>();
  std::thread dispatching([&] {
    Outcome outcome;
    outcome.completions.push_back(
        {ResultSink{nullptr, waiter}, Result(JobStatus::kProcessedOk, 7)});
    dispatcher.Run(outcome);
  });
  std::optional<JobResult> r = waiter->WaitFor(absl::Seconds(30));
  dispatching.join();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->job_id, JobId(0, 7));
  EXPECT_EQ(counters.processed_ok.Get(), 1u);
}

TEST(CompletionDispatcher, AResultForACallerWhoGaveUpIsLateAndCountedOnlyAsLate) {
  SubmitterCounters counters;
  CompletionDispatcher dispatcher(counters);
  int hooked = 0;
  dispatcher.SetLateHook([&](const JobResult&) { ++hooked; });
  auto waiter = std::make_shared<ResultWaiter>();
  EXPECT_FALSE(waiter->WaitFor(absl::Milliseconds(1)).has_value());
  Outcome outcome;
  outcome.completions.push_back(
      {ResultSink{nullptr, waiter}, Result(JobStatus::kProcessedOk)});
  dispatcher.Run(outcome);
  EXPECT_EQ(hooked, 1);
  EXPECT_EQ(counters.late_results.Get(), 1u);
  EXPECT_EQ(counters.processed_ok.Get(), 0u);
}

}  // namespace
}  // namespace batchbus

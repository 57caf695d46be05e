// Flow control per group, seen on the wire: a group's max_rate spreads its
// jobs while other groups go at once; a paused group's jobs wait (in Kafka)
// and come back when the pause ends, while other groups keep flowing; a
// pause past a job's deadline ends it EXPIRED. On a mock cluster per test
// (label mock) and on the real broker (label kafka).
#include <algorithm>
#include <map>
#include <string>

#include "support/raw_submitter.h"
#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

class FlowControlTest : public ClusterTest {
 protected:
  std::unique_ptr<Processor> NewProcessor() {
    auto p = Processor::Create(config_, "app");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
  // Takes `n` jobs, completing each; the moment each group's jobs came.
  std::map<std::string, std::vector<absl::Time>> TakeAll(Processor& processor,
                                                         size_t n) {
    std::map<std::string, std::vector<absl::Time>> times;
    for (size_t i = 0; i < n; ++i) {
      auto task = processor.Next(absl::Seconds(30));
      EXPECT_TRUE(task.ok()) << task.status() << " after " << i << " jobs";
      if (!task.ok()) break;
      times[std::string(task->group())].push_back(absl::Now());
      EXPECT_TRUE(task->Complete().ok());
    }
    return times;
  }
  // The times of `times`, in ms after the first job taken, for failure
  // messages.
  static std::string Describe(
      const std::map<std::string, std::vector<absl::Time>>& times) {
    absl::Time first = absl::InfiniteFuture();
    for (const auto& [group, ts] : times) {
      if (!ts.empty()) first = std::min(first, ts.front());
    }
    std::string out;
    for (const auto& [group, ts] : times) {
      out += group + ":";
      for (absl::Time t : ts) {
        out += " " + std::to_string(absl::ToInt64Milliseconds(t - first));
      }
      out += " ms; ";
    }
    return out;
  }
};

TEST_F(FlowControlTest, MaxRateSpreadsItsGroupAndOtherGroupsGoAtOnce) {
  config_.group_max_rate["limited"] = 5;  // One every 200 ms.
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUpProcessor(config_, *processor);
  RawSubmitter raw(config_, "app");
  std::vector<RawSubmitter::RawJob> jobs(10);
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].group = i % 2 == 0 ? "limited" : "echo";
  }
  raw.Send(Priority::kNormal, jobs);
  auto times = TakeAll(*processor, jobs.size());
  SCOPED_TRACE(Describe(times));
  ASSERT_EQ(times["limited"].size(), 5u);
  ASSERT_EQ(times["echo"].size(), 5u);
  // Four intervals of 200 ms between the first limited job and the last.
  EXPECT_GE(times["limited"].back() - times["limited"].front(),
            absl::Milliseconds(800));
  // The other group did not wait for the limited one.
  EXPECT_LT(times["echo"].back(), times["limited"][1]);
  EXPECT_EQ(processor->GetStats().held, 4u);
  raw.WaitFor(10, absl::Seconds(20));
  const auto results = raw.Results();
  std::string statuses;
  for (const auto& r : results) {
    statuses += std::to_string(r.index) + "=" + std::string(JobStatusName(r.status)) + " ";
  }
  SCOPED_TRACE("results by job index: " + statuses);
  ASSERT_EQ(results.size(), 10u);
  std::vector<bool> answered(jobs.size());
  for (const auto& r : results) {
    ASSERT_LT(r.index, jobs.size());
    EXPECT_EQ(r.id, jobs[r.index].id) << "an answer found the wrong job";
    EXPECT_EQ(r.status, JobStatus::kProcessedOk);
    answered[r.index] = true;
  }
  EXPECT_EQ(std::count(answered.begin(), answered.end(), true), 10);
}

TEST_F(FlowControlTest, PausedGroupWaitsWhileOthersFlowAndLosesNothing) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUpProcessor(config_, *processor);
  RawSubmitter raw(config_, "app");
  processor->PauseGroup("upstream-down", absl::Seconds(3));
  const absl::Time paused_until = absl::Now() + absl::Seconds(3);
  std::vector<RawSubmitter::RawJob> jobs(6);
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].group = i < 3 ? "upstream-down" : "echo";
  }
  raw.Send(Priority::kNormal, jobs);
  auto times = TakeAll(*processor, jobs.size());
  SCOPED_TRACE(Describe(times));
  ASSERT_EQ(times["echo"].size(), 3u);
  ASSERT_EQ(times["upstream-down"].size(), 3u);
  EXPECT_LT(times["echo"].back(), paused_until - absl::Milliseconds(500))
      << "other groups waited for the pause";
  for (absl::Time t : times["upstream-down"]) {
    EXPECT_GE(t, paused_until - absl::Milliseconds(50));
  }
  EXPECT_EQ(processor->GetStats().held, 3u);
  raw.WaitFor(6, absl::Seconds(20));
  EXPECT_EQ(raw.Results().size(), 6u);
  for (const auto& r : raw.Results()) EXPECT_EQ(r.status, JobStatus::kProcessedOk);
}

TEST_F(FlowControlTest, PausePastTheDeadlineEndsTheJobExpired) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUpProcessor(config_, *processor);
  RawSubmitter raw(config_, "app");
  processor->PauseGroup("echo", absl::Minutes(5));
  RawSubmitter::RawJob job;
  job.fields.deadline_ms = absl::ToUnixMillis(absl::Now() + absl::Seconds(30));
  raw.Send(Priority::kNormal, {job});
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      processor->Next(absl::Milliseconds(1500)).status()));
  const auto& entries = raw.WaitFor(1, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].status, JobStatus::kExpired);
  EXPECT_NE(entries[0].error.find("paused"), std::string::npos) << entries[0].error;
  // Resumed: the group flows again.
  processor->PauseGroup("echo", absl::ZeroDuration());
  RawSubmitter::RawJob next;
  raw.Send(Priority::kNormal, {next});
  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->id(), next.id);
  ASSERT_TRUE(task->Complete().ok());
}

}  // namespace
}  // namespace batchbus::testing

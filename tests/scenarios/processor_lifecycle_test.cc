// The processor's side of the job lifecycle, seen on the wire: attempts,
// deadlines (EXPIRED, never handed out), started and progress events before
// the result, and validators. On a mock cluster per test (label mock) and on
// the real broker (label kafka).
#include <atomic>

#include "support/raw_submitter.h"
#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

using Kind = wire::ResultEntry::Kind;

class ProcessorLifecycleTest : public ClusterTest {
 protected:
  std::unique_ptr<Processor> NewProcessor() {
    auto p = Processor::Create(config_, "app");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
};

int64_t MillisFromNow(absl::Duration d) { return absl::ToUnixMillis(absl::Now() + d); }

TEST_F(ProcessorLifecycleTest, JobPastItsDeadlineEndsExpiredAndIsNeverHandedOut) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob late, due;
  late.fields.deadline_ms = MillisFromNow(-absl::Seconds(1));
  due.fields.deadline_ms = MillisFromNow(absl::Minutes(5));
  raw.Send(Priority::kNormal, {late, due});

  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->id(), due.id) << "the expired job was handed out";
  EXPECT_EQ(task->deadline(), absl::FromUnixMillis(due.fields.deadline_ms));
  ASSERT_TRUE(task->Complete("2").ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      processor->Next(absl::Milliseconds(300)).status()));

  const auto& entries = raw.WaitFor(2, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].id, late.id);
  EXPECT_EQ(entries[0].status, JobStatus::kExpired);
  EXPECT_NE(entries[0].error.find("not processed"), std::string::npos)
      << entries[0].error;
  EXPECT_EQ(entries[1].id, due.id);
  EXPECT_EQ(entries[1].status, JobStatus::kProcessedOk);
  EXPECT_EQ(processor->GetStats().expired, 1u);
  EXPECT_EQ(processor->GetStats().handed_out, 1u);
  // Both jobs are answered, so the batch is committed.
  EXPECT_TRUE(Eventually(
      [&] { return processor->GetStats().batches_committed == 1; },
      absl::Seconds(10)));
}

TEST_F(ProcessorLifecycleTest, DeadlineSkewExpiresJobsThatCloseToTheirDeadline) {
  config_.deadline_skew = absl::Seconds(30);
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob close_call;
  close_call.fields.deadline_ms = MillisFromNow(absl::Seconds(10));
  raw.Send(Priority::kRealtime, {close_call});
  // A job expires when a worker would take it: keep asking.
  const auto& entries = raw.WaitFor(0, absl::ZeroDuration());
  ASSERT_TRUE(Eventually(
      [&] {
        EXPECT_TRUE(absl::IsDeadlineExceeded(
            processor->Next(absl::Milliseconds(100)).status()));
        return raw.WaitFor(1, absl::Milliseconds(100)).size() == 1;
      },
      absl::Seconds(30)));
  EXPECT_EQ(entries[0].status, JobStatus::kExpired);
}

TEST_F(ProcessorLifecycleTest, TaskSeesItsAttemptAndTheResultCarriesIt) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob first, third;
  third.fields.attempt = 3;
  raw.Send(Priority::kNormal, {first, third});
  for (int i = 0; i < 2; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->attempt(), task->id() == third.id ? 3u : 1u);
    EXPECT_EQ(task->deadline(), absl::InfiniteFuture());
    if (task->id() == third.id) {
      ASSERT_TRUE(task->Fail("still broken").ok());
    } else {
      ASSERT_TRUE(task->Complete().ok());
    }
  }
  const auto& entries = raw.WaitFor(2, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) {
    EXPECT_EQ(e.attempts, e.id == third.id ? 3u : 1u);
  }
}

TEST_F(ProcessorLifecycleTest, StartedAndProgressEventsComeBeforeTheResult) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob watched, quiet;
  watched.fields.events = true;
  raw.Send(Priority::kNormal, {watched, quiet});
  for (int i = 0; i < 2; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    // Without a subscriber progress is accepted and goes nowhere.
    ASSERT_TRUE(task->Progress("{\"done\": 0.5}").ok());
    ASSERT_TRUE(task->Progress("{\"done\": 0.9}").ok());
    EXPECT_TRUE(absl::IsInvalidArgument(task->Progress("{nope")));
    ASSERT_TRUE(task->Complete("\"finished\"").ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(task->Progress("1")));
  }
  const auto& entries = raw.WaitFor(5, absl::Seconds(20));
  raw.ReadFor(absl::Milliseconds(300));  // Nothing more may come.
  ASSERT_EQ(entries.size(), 5u);
  std::vector<Kind> watched_kinds;
  for (const auto& e : entries) {
    if (e.id == watched.id) {
      watched_kinds.push_back(e.kind);
    } else {
      EXPECT_EQ(e.kind, Kind::kResult) << "an event nobody asked for";
    }
  }
  EXPECT_EQ(watched_kinds,
            (std::vector<Kind>{Kind::kStarted, Kind::kProgress, Kind::kProgress,
                               Kind::kResult}));
  EXPECT_EQ(entries[1].data, "{\"done\": 0.5}");
  EXPECT_EQ(entries[2].data, "{\"done\": 0.9}");
  // Events answer nothing: the batch commits once both results are in.
  EXPECT_TRUE(Eventually(
      [&] { return processor->GetStats().batches_committed == 1; },
      absl::Seconds(10)));
}

TEST_F(ProcessorLifecycleTest, RealtimeJobsEventsGoOutAtOnce) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob job;
  job.fields.events = true;
  raw.Send(Priority::kRealtime, {job});
  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_TRUE(task->Progress("42").ok());
  // Both events arrive while the job is still open.
  const auto& entries = raw.WaitFor(2, absl::Seconds(10));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].kind, Kind::kStarted);
  EXPECT_EQ(entries[1].kind, Kind::kProgress);
  EXPECT_EQ(entries[1].data, "42");
  ASSERT_TRUE(task->Complete().ok());
  EXPECT_EQ(raw.WaitFor(3, absl::Seconds(10)).size(), 3u);
}

TEST_F(ProcessorLifecycleTest, ValidatorRefusesJobsWithoutCallingTheHandler) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  processor->SetValidator("payment", [](std::string_view data) {
    return data.find("amount") == std::string_view::npos
               ? absl::InvalidArgumentError("missing field 'amount'")
               : absl::OkStatus();
  });
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob good, bad, other;
  good.group = bad.group = "payment";
  good.data = "{\"amount\": 5}";
  bad.data = "{\"amt\": 5}";
  other.group = "echo";  // No validator: never checked.
  raw.Send(Priority::kNormal, {good, bad, other});
  std::vector<JobId> handed;
  for (int i = 0; i < 2; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    handed.push_back(task->id());
    ASSERT_TRUE(task->Complete().ok());
  }
  EXPECT_EQ(handed, (std::vector<JobId>{good.id, other.id}));
  const auto results = [&] {
    raw.WaitFor(3, absl::Seconds(20));
    return raw.Results();
  }();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[1].id, bad.id);
  EXPECT_EQ(results[1].status, JobStatus::kProcessedError);
  EXPECT_EQ(results[1].error, "invalid job data: missing field 'amount'");
  const Processor::Stats stats = processor->GetStats();
  EXPECT_EQ(stats.invalid, 1u);
  EXPECT_EQ(stats.handed_out, 2u);
  EXPECT_EQ(stats.processed_error, 1u);
}

}  // namespace
}  // namespace batchbus::testing

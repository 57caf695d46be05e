// The job ledger's specification: it fails exactly the unanswered jobs at
// the timeout, classifies a second answer as late, and ends every job once.
#include "job_ledger.h"

#include <atomic>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

PerPriority<absl::Duration> Timeouts() {
  PerPriority<absl::Duration> t;
  t[Priority::kRealtime] = absl::Seconds(1);
  t[Priority::kNormal] = absl::Seconds(10);
  t[Priority::kSlow] = absl::Seconds(100);
  return t;
}

std::vector<PendingJob> Jobs(uint64_t batch, int n, uint32_t bytes = 10) {
  std::vector<PendingJob> jobs;
  for (int i = 0; i < n; ++i) {
    jobs.push_back({JobId(batch, i + 1), ResultSink{}, bytes});
  }
  return jobs;
}

wire::ResultEntry Answer(uint64_t seq, uint32_t index, JobId id,
                         JobStatus status = JobStatus::kProcessedOk) {
  wire::ResultEntry e;
  e.seq = seq;
  e.index = index;
  e.id = id;
  e.status = status;
  e.data = "\"out\"";
  return e;
}

const uint64_t kNormalSeq = MakeBatchSeq(1, Priority::kNormal);
const uint64_t kSlowSeq = MakeBatchSeq(2, Priority::kSlow);

TEST(JobLedger, FailsExactlyTheUnansweredJobsAtTheTimeout) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t.app.normal", Jobs(1, 3), kT0);
  Outcome out;
  ledger.Answer({Answer(kNormalSeq, 1, JobId(1, 2))}, out);
  ASSERT_EQ(out.completions.size(), 1u);
  EXPECT_EQ(out.completions[0].result.status, JobStatus::kProcessedOk);
  EXPECT_EQ(out.completions[0].result.data, "\"out\"");

  Outcome expired;
  EXPECT_EQ(ledger.Expire(kT0 + absl::Seconds(10) - absl::Nanoseconds(1),
                          expired),
            kT0 + absl::Seconds(10));
  EXPECT_TRUE(expired.empty());
  EXPECT_EQ(ledger.Expire(kT0 + absl::Seconds(10), expired),
            absl::InfiniteFuture());
  ASSERT_EQ(expired.completions.size(), 2u);
  for (const Completion& c : expired.completions) {
    EXPECT_EQ(c.result.status, JobStatus::kBatchFailed);
    EXPECT_EQ(c.result.priority, Priority::kNormal);
    EXPECT_NE(c.result.error.find("batch timeout"), std::string::npos);
    EXPECT_NE(c.result.job_id, JobId(1, 2));
  }
  EXPECT_EQ(expired.jobs_freed, 2u);
  EXPECT_EQ(expired.bytes_freed, 20u);
  EXPECT_EQ(ledger.batches(), 0u);
}

TEST(JobLedger, ATimeoutSaysWhetherABrokerHadTheBatch) {
  JobLedger ledger(Timeouts());
  auto unacked = std::make_shared<std::atomic<bool>>(false);
  auto acked = std::make_shared<std::atomic<bool>>(false);
  const uint64_t other = MakeBatchSeq(3, Priority::kNormal);
  ledger.Track(kNormalSeq, "t", Jobs(1, 1), kT0, unacked);
  ledger.Track(other, "t", Jobs(3, 1), kT0, acked);
  acked->store(true);
  Outcome expired;
  ledger.Expire(kT0 + absl::Seconds(10), expired);
  ASSERT_EQ(expired.completions.size(), 2u);
  for (const Completion& c : expired.completions) {
    const bool had_it = c.result.job_id == JobId(3, 1);
    EXPECT_NE(c.result.error.find("batch timeout"), std::string::npos);
    EXPECT_EQ(c.result.error.find("no broker acknowledged") != std::string::npos,
              !had_it)
        << c.result.error;
    EXPECT_EQ(c.result.error.find("no processor answered") != std::string::npos,
              had_it)
        << c.result.error;
  }
}

TEST(JobLedger, ClassifiesASecondAnswerAsLate) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 2), kT0);
  Outcome out;
  ledger.Answer({Answer(kNormalSeq, 0, JobId(1, 1)),
                 Answer(kNormalSeq, 0, JobId(1, 1),
                        JobStatus::kProcessedError)},
                out);
  EXPECT_EQ(out.completions.size(), 1u);
  ASSERT_EQ(out.late.size(), 1u);
  EXPECT_EQ(out.late[0].status, JobStatus::kProcessedError);
  EXPECT_EQ(out.jobs_freed, 1u);
}

TEST(JobLedger, EventsNeverEndAJob) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 1), kT0);
  wire::ResultEntry started = Answer(kNormalSeq, 0, JobId(1, 1));
  started.kind = wire::ResultEntry::Kind::kStarted;
  wire::ResultEntry progress = Answer(kNormalSeq, 0, JobId(1, 1));
  progress.kind = wire::ResultEntry::Kind::kProgress;
  Outcome out;
  ledger.Answer({started, progress}, out);
  EXPECT_TRUE(out.completions.empty());
  EXPECT_TRUE(out.late.empty());
  wire::ResultEntry done = Answer(kNormalSeq, 0, JobId(1, 1));
  done.attempts = 3;
  ledger.Answer({done}, out);
  ASSERT_EQ(out.completions.size(), 1u);
  EXPECT_EQ(out.completions[0].result.status, JobStatus::kProcessedOk);
  EXPECT_EQ(out.completions[0].result.attempts, 3u);
}

TEST(JobLedger, EventsGoToTheirJobsCallbackOnlyWhileItRuns) {
  JobLedger ledger(Timeouts());
  std::vector<PendingJob> jobs = Jobs(1, 2);
  jobs[0].sink.events = std::make_unique<Submitter::EventCallback>(
      [](const JobEvent&) {});  // Job 1 asked; job 2 not.
  ledger.Track(kNormalSeq, "t", std::move(jobs), kT0);
  auto event = [](uint32_t index, JobId id, wire::ResultEntry::Kind kind) {
    wire::ResultEntry e = Answer(kNormalSeq, index, id);
    e.kind = kind;
    e.data = kind == wire::ResultEntry::Kind::kProgress ? "{\"p\":1}" : "";
    e.attempts = 2;
    return e;
  };
  using K = wire::ResultEntry::Kind;
  Outcome out;
  ledger.Answer({event(0, JobId(1, 1), K::kStarted),
                 event(1, JobId(1, 2), K::kStarted),   // Not asked for.
                 event(0, JobId(9, 9), K::kProgress),  // Not this job.
                 event(0, JobId(1, 1), K::kProgress),
                 Answer(kNormalSeq, 0, JobId(1, 1)),
                 event(0, JobId(1, 1), K::kProgress)},  // After its end.
                out);
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].event.kind, JobEvent::Kind::kStarted);
  EXPECT_EQ(out.events[0].event.job_id, JobId(1, 1));
  EXPECT_EQ(out.events[0].event.attempt, 2u);
  EXPECT_EQ(out.events[1].event.kind, JobEvent::Kind::kProgress);
  EXPECT_EQ(out.events[1].event.data, "{\"p\":1}");
  EXPECT_TRUE(out.events[1].callback != nullptr);
  EXPECT_EQ(out.completions.size(), 1u);
  EXPECT_TRUE(out.late.empty()) << "events are never late results";
}

TEST(JobLedger, AnswersAfterTheTimeoutAreLateAndKeepTheirPriority) {
  JobLedger ledger(Timeouts());
  ledger.Track(kSlowSeq, "t.app.slow", Jobs(2, 2), kT0);
  Outcome out;
  ledger.Expire(kT0 + absl::Seconds(100), out);
  EXPECT_EQ(out.completions.size(), 2u);
  Outcome late;
  ledger.Answer({Answer(kSlowSeq, 0, JobId(2, 1)),
                 Answer(kSlowSeq, 1, JobId(2, 2))},
                late);
  EXPECT_TRUE(late.completions.empty());
  ASSERT_EQ(late.late.size(), 2u);
  for (const JobResult& r : late.late) {
    EXPECT_EQ(r.priority, Priority::kSlow);
    EXPECT_EQ(r.status, JobStatus::kProcessedOk);
  }
  EXPECT_EQ(late.jobs_freed, 0u);
}

TEST(JobLedger, AnAnswerWhoseIdDoesNotMatchItsPlaceIsLate) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 2), kT0);
  Outcome out;
  ledger.Answer({Answer(kNormalSeq, 0, JobId(9, 9)),
                 Answer(kNormalSeq, 5, JobId(1, 1)),
                 Answer(MakeBatchSeq(77, Priority::kRealtime), 0,
                        JobId(1, 1))},
                out);
  EXPECT_TRUE(out.completions.empty());
  ASSERT_EQ(out.late.size(), 3u);
  EXPECT_EQ(out.late[2].priority, Priority::kRealtime);
}

TEST(JobLedger, AFullyAnsweredBatchLeavesAndItsTimeoutIsSkipped) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 1), kT0);
  Outcome out;
  ledger.Answer({Answer(kNormalSeq, 0, JobId(1, 1))}, out);
  EXPECT_EQ(ledger.batches(), 0u);
  Outcome expired;
  ledger.Expire(kT0 + absl::Hours(1), expired);
  EXPECT_TRUE(expired.empty());
}

TEST(JobLedger, TimeoutsFollowEachPriority) {
  JobLedger ledger(Timeouts());
  ledger.Track(kSlowSeq, "slow", Jobs(2, 1), kT0);
  ledger.Track(MakeBatchSeq(3, Priority::kRealtime), "rt", Jobs(3, 1), kT0);
  Outcome out;
  EXPECT_EQ(ledger.Expire(kT0 + absl::Seconds(1), out),
            kT0 + absl::Seconds(100));
  ASSERT_EQ(out.completions.size(), 1u);
  EXPECT_EQ(out.completions[0].result.priority, Priority::kRealtime);
}

TEST(JobLedger, FailBatchEndsOnlyItsUnansweredJobsOnce) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 3), kT0);
  ledger.Track(kSlowSeq, "t2", Jobs(2, 1), kT0);
  Outcome out;
  ledger.Answer({Answer(kNormalSeq, 2, JobId(1, 3))}, out);
  ledger.FailBatch(kNormalSeq, "could not deliver", out);
  ledger.FailBatch(kNormalSeq, "again", out);  // Already gone: nothing.
  ASSERT_EQ(out.completions.size(), 3u);
  EXPECT_EQ(out.completions[1].result.error, "could not deliver");
  EXPECT_EQ(ledger.batches(), 1u);
}

TEST(JobLedger, FailAllEndsEveryJobLeftAndCountsThem) {
  JobLedger ledger(Timeouts());
  ledger.Track(kNormalSeq, "t", Jobs(1, 3), kT0);
  ledger.Track(kSlowSeq, "t2", Jobs(2, 2), kT0);
  Outcome out;
  ledger.Answer({Answer(kSlowSeq, 0, JobId(2, 1))}, out);
  EXPECT_EQ(ledger.FailAll("closed", out), 4u);
  EXPECT_EQ(out.completions.size(), 5u);
  EXPECT_EQ(out.jobs_freed, 5u);
  EXPECT_EQ(ledger.batches(), 0u);
  Outcome after;
  EXPECT_EQ(ledger.Expire(kT0 + absl::Hours(1), after),
            absl::InfiniteFuture());
  EXPECT_TRUE(after.empty());
}

}  // namespace
}  // namespace batchbus

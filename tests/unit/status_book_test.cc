// The status book's specification: a job is submitted, then started, then
// in progress with its latest progress, then ended with its result; it is
// forgotten its retention after the end; nothing changes an ended job.
#include "status_book.h"

#include "gtest/gtest.h"

namespace batchbus {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

JobEvent Event(JobId id, JobEvent::Kind kind, std::string data = "") {
  JobEvent e;
  e.job_id = id;
  e.kind = kind;
  e.data = std::move(data);
  e.attempt = 1;
  return e;
}

TEST(StatusBook, FollowsAJobFromSubmitToItsResultThenForgetsIt) {
  StatusBook book(absl::Seconds(60));
  const JobId id(1, 2);
  EXPECT_FALSE(book.Find(id));
  book.Submitted(id);
  EXPECT_EQ(book.Find(id)->phase, Submitter::JobState::kSubmitted);
  book.Event(Event(id, JobEvent::Kind::kStarted));
  EXPECT_EQ(book.Find(id)->phase, Submitter::JobState::kStarted);
  EXPECT_EQ(book.Find(id)->attempt, 1u);
  book.Event(Event(id, JobEvent::Kind::kProgress, "{\"done\":0.5}"));
  book.Event(Event(id, JobEvent::Kind::kProgress, "{\"done\":0.9}"));
  EXPECT_EQ(book.Find(id)->phase, Submitter::JobState::kProgress);
  EXPECT_EQ(book.Find(id)->progress, "{\"done\":0.9}");

  JobResult r;
  r.job_id = id;
  r.status = JobStatus::kProcessedOk;
  r.data = "42";
  r.attempts = 2;
  book.Ended(r, kT0);
  auto ended = book.Find(id);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->phase, Submitter::JobState::kEnded);
  EXPECT_EQ(ended->result.data, "42");
  EXPECT_EQ(ended->attempt, 2u);
  EXPECT_EQ(ended->progress, "{\"done\":0.9}");
  // Nothing after the end changes it.
  book.Event(Event(id, JobEvent::Kind::kProgress, "late"));
  r.status = JobStatus::kBatchFailed;
  book.Ended(r, kT0);
  EXPECT_EQ(book.Find(id)->result.status, JobStatus::kProcessedOk);
  EXPECT_EQ(book.Find(id)->progress, "{\"done\":0.9}");

  book.Forget(kT0 + absl::Seconds(59));
  EXPECT_TRUE(book.Find(id));
  book.Forget(kT0 + absl::Seconds(60));
  EXPECT_FALSE(book.Find(id));
  EXPECT_EQ(book.size(), 0u);
}

TEST(StatusBook, IgnoresJobsItDoesNotHoldAndKeepsAResubmittedOne) {
  StatusBook book(absl::Seconds(1));
  JobResult r;
  r.job_id = JobId(9, 9);
  book.Ended(r, kT0);
  book.Event(Event(JobId(9, 9), JobEvent::Kind::kStarted));
  EXPECT_EQ(book.size(), 0u);

  const JobId id(3, 4);
  book.Submitted(id);
  r.job_id = id;
  book.Ended(r, kT0);
  book.Submitted(id);  // The same id again, after it ended.
  book.Forget(kT0 + absl::Seconds(5));
  ASSERT_TRUE(book.Find(id));
  EXPECT_EQ(book.Find(id)->phase, Submitter::JobState::kSubmitted);
}

}  // namespace
}  // namespace batchbus

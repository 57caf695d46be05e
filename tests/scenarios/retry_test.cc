// Retries, dead letters and delayed jobs, seen on the wire and through the
// Submitter: a retried job comes back after its backoff as the next
// attempt and its result finds its submitter's job; the last attempt ends
// PROCESSED_ERROR with a dead-letter copy; a delayed job holds back no job
// that is due; deadlines bound retries. On a mock cluster per test (label
// mock) and on the real broker (label kafka).
#include <atomic>

#include "support/raw_submitter.h"
#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

class RetryTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    // Short backoffs without jitter far off: 300 ms, then 600 ms.
    config_.retry.initial_delay = absl::Milliseconds(300);
    config_.retry.multiplier = 2.0;
    config_.retry.max_attempts = 3;
  }
  std::unique_ptr<Processor> NewProcessor() {
    auto p = Processor::Create(config_, "app");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
  void WarmUp(Processor& processor) { WarmUpProcessor(config_, processor); }
};

int64_t MillisFromNow(absl::Duration d) {
  return absl::ToUnixMillis(absl::Now() + d);
}

TEST_F(RetryTest, RetriedJobComesBackAfterItsBackoffAsTheNextAttempt) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob a, flaky, c;
  const uint64_t seq = raw.Send(Priority::kNormal, {a, flaky, c});

  absl::Time retried_at;
  for (int i = 0; i < 3; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->attempt(), 1u);
    if (task->id() == flaky.id) {
      retried_at = absl::Now();
      ASSERT_TRUE(task->Retry("upstream said 503").ok());
      EXPECT_TRUE(absl::IsFailedPrecondition(task->Complete()));
    } else {
      ASSERT_TRUE(task->Complete("1").ok());
    }
  }
  auto again = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), flaky.id);
  EXPECT_EQ(again->attempt(), 2u);
  // 300 ms less 20% of jitter.
  EXPECT_GE(absl::Now() - retried_at, absl::Milliseconds(240));
  ASSERT_TRUE(again->Complete("\"second time lucky\"").ok());

  raw.WaitFor(3, absl::Seconds(20));
  const auto results = raw.Results();
  ASSERT_EQ(results.size(), 3u);
  const auto& last = results.back();
  EXPECT_EQ(last.id, flaky.id);
  EXPECT_EQ(last.status, JobStatus::kProcessedOk);
  EXPECT_EQ(last.data, "\"second time lucky\"");
  EXPECT_EQ(last.attempts, 2u);
  // The answer names the job where its submitter put it.
  EXPECT_EQ(last.seq, seq);
  EXPECT_EQ(last.index, 1u);
  const Processor::Stats stats = processor->GetStats();
  EXPECT_EQ(stats.retried, 1u);
  EXPECT_EQ(stats.processed_ok, 3u);
  // The original batch, whose retry was written, and the retry's own.
  EXPECT_TRUE(Eventually(
      [&] { return processor->GetStats().batches_committed == 2; },
      absl::Seconds(10)));
}

TEST_F(RetryTest, RetryWithAnExplicitDelayWaitsThatLong) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob job;
  raw.Send(Priority::kRealtime, {job});
  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  const absl::Time retried_at = absl::Now();
  ASSERT_TRUE(task->Retry("rate limited", absl::Milliseconds(1500)).ok());
  auto again = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), job.id);
  EXPECT_GE(absl::Now() - retried_at, absl::Milliseconds(1500));
  ASSERT_TRUE(again->Complete().ok());
  ASSERT_EQ(raw.WaitFor(1, absl::Seconds(20)).size(), 1u);
}

TEST_F(RetryTest, LastAttemptEndsProcessedErrorWithADeadLetterCopy) {
  config_.group_retry["echo"].max_attempts = 2;
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob job;
  job.data = "{\"order\": 7}";
  raw.Send(Priority::kNormal, {job});
  absl::Time first_handed_out;
  for (uint32_t attempt = 1; attempt <= 2; ++attempt) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->attempt(), attempt);
    if (attempt == 1) first_handed_out = absl::Now();
    ASSERT_TRUE(task->Retry(absl::StrCat("card declined, attempt ", attempt)).ok());
  }
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      processor->Next(absl::Seconds(1)).status()));

  const auto& entries = raw.WaitFor(1, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].id, job.id);
  EXPECT_EQ(entries[0].status, JobStatus::kProcessedError);
  EXPECT_EQ(entries[0].error, "card declined, attempt 2");
  EXPECT_EQ(entries[0].attempts, 2u);
  EXPECT_EQ(processor->GetStats().jobs_dead_lettered, 1u);

  std::optional<ReadMessage> dead = FirstMessageOn(
      config_, config_.DeadLetterTopicFor("app"), absl::Seconds(30));
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->Header("batchbus.error"), "card declined, attempt 2");
  EXPECT_EQ(dead->Header("batchbus.attempts"), "2");
  int64_t first_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(dead->Header("batchbus.first_attempt_ms"), &first_ms));
  EXPECT_LE(std::abs(first_ms - absl::ToUnixMillis(first_handed_out)), 1000);
  // Where the attempt that failed last came from: a job topic.
  EXPECT_NE(dead->Header("batchbus.origin").find(
                config_.TopicFor("app", Priority::kNormal)),
            std::string::npos)
      << dead->Header("batchbus.origin");
  // The copy is a batch that runs afresh when written back to a job topic.
  EXPECT_NE(dead->payload.find(job.id.ToString()), std::string::npos);
  EXPECT_NE(dead->payload.find("{\"order\": 7}"), std::string::npos);
  EXPECT_EQ(dead->payload.find("\"attempt\""), std::string::npos);
}

TEST_F(RetryTest, WithDeadLetterFailedJobsEveryFailedJobIsCopied) {
  config_.dead_letter_failed_jobs = true;
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob failed, fine, late;
  // A retry it asks for would come after its deadline: it ends failed.
  late.fields.deadline_ms = absl::ToUnixMillis(absl::Now() + absl::Minutes(1));
  raw.Send(Priority::kNormal, {failed, fine, late});
  for (int i = 0; i < 3; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    if (task->id() == failed.id) {
      ASSERT_TRUE(task->Fail("out of stock").ok());
    } else if (task->id() == late.id) {
      ASSERT_TRUE(task->Retry("busy", absl::Minutes(2)).ok());
    } else {
      ASSERT_TRUE(task->Complete().ok());
    }
  }
  ASSERT_EQ(raw.WaitFor(3, absl::Seconds(20)).size(), 3u);
  // Two copies (the failed job and the late one), in no set order.
  std::optional<ReadMessage> dead = FirstMessageOn(
      config_, config_.DeadLetterTopicFor("app"), absl::Seconds(30),
      [&](const ReadMessage& m) {
        return m.payload.find(failed.id.ToString()) != std::string::npos;
      });
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->Header("batchbus.error"), "out of stock");
  EXPECT_EQ(dead->Header("batchbus.attempts"), "1");
  EXPECT_NE(dead->payload.find(failed.id.ToString()), std::string::npos);
  EXPECT_TRUE(Eventually(
      [&] { return processor->GetStats().jobs_dead_lettered == 2; },
      absl::Seconds(10)));
  // Both answered and the copy written: the batch commits.
  EXPECT_TRUE(Eventually(
      [&] { return processor->GetStats().batches_committed == 1; },
      absl::Seconds(10)));
}

TEST_F(RetryTest, RetryThatWouldPassTheDeadlineEndsTheJob) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUp(*processor);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob job;
  job.fields.deadline_ms = MillisFromNow(absl::Seconds(10));
  raw.Send(Priority::kNormal, {job});
  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_TRUE(task->Retry("busy", absl::Seconds(20)).ok());
  const auto& entries = raw.WaitFor(1, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].status, JobStatus::kProcessedError);
  EXPECT_NE(entries[0].error.find("not retried"), std::string::npos)
      << entries[0].error;
  EXPECT_EQ(processor->GetStats().retried, 0u);
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      processor->Next(absl::Milliseconds(500)).status()));
}

TEST_F(RetryTest, RetryPastTheSubmittersTimeoutEndsTheJob) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob job;
  raw.Send(Priority::kNormal, {job}, MillisFromNow(absl::Seconds(2)));
  auto task = processor->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_TRUE(task->Retry("busy", absl::Seconds(5)).ok());
  const auto& entries = raw.WaitFor(1, absl::Seconds(20));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].status, JobStatus::kProcessedError);
  EXPECT_NE(entries[0].error.find("timeout"), std::string::npos)
      << entries[0].error;
}

TEST_F(RetryTest, DelayedJobHoldsBackNoJobThatIsDue) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUp(*processor);
  RawSubmitter raw(config_, "app");
  RawSubmitter::RawJob later, now_normal, now_slow;
  // A first send on a new producer can take seconds on the mock.
  const absl::Time not_before = absl::Now() + absl::Seconds(6);
  later.fields.not_before_ms = absl::ToUnixMillis(not_before);
  raw.Send(Priority::kNormal, {later, now_normal});
  raw.Send(Priority::kSlow, {now_slow});
  std::vector<JobId> order;
  for (int i = 0; i < 3; ++i) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status();
    order.push_back(task->id());
    if (task->id() == later.id) {
      EXPECT_GE(absl::Now(), not_before);
    }
    ASSERT_TRUE(task->Complete().ok());
  }
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order.back(), later.id) << "a delayed job came before due ones";
  EXPECT_EQ(processor->GetStats().delayed, 1u);
  raw.WaitFor(3, absl::Seconds(20));
  const auto results = raw.Results();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results.back().id, later.id);
  EXPECT_EQ(results.back().index, 0u);
  EXPECT_EQ(results.back().status, JobStatus::kProcessedOk);
}

TEST_F(RetryTest, ManyDelayedJobsAreEachHandedOutOnceWhenDue) {
  auto processor = NewProcessor();
  ASSERT_NE(processor, nullptr);
  WarmUp(*processor);
  RawSubmitter raw(config_, "app");
  std::vector<RawSubmitter::RawJob> jobs(200);
  const int64_t due = MillisFromNow(absl::Seconds(3));
  for (auto& job : jobs) job.fields.not_before_ms = due;
  raw.Send(Priority::kNormal, jobs);
  // Every job is sent to wait; none is handed out early.
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      processor->Next(absl::Milliseconds(1500)).status()));
  EXPECT_EQ(processor->GetStats().delayed, 200u);
  size_t handed = 0;
  while (handed < jobs.size()) {
    auto task = processor->Next(absl::Seconds(30));
    ASSERT_TRUE(task.ok()) << task.status() << " after " << handed;
    EXPECT_GE(absl::ToUnixMillis(absl::Now()), due);
    ASSERT_TRUE(task->Complete().ok());
    ++handed;
  }
  EXPECT_EQ(raw.WaitFor(200, absl::Seconds(30)).size(), 200u);
}

TEST_F(RetryTest, SubmitterDeliversEventsBeforeTheResultAndHonoursNotBefore) {
  RunningProcessor processor(
      config_, "app",
      {{"echo", [](Task& task) {
          (void)task.Progress("{\"step\": 1}");
          (void)task.Complete(task.data());
        }}});
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  std::mutex mu;
  std::vector<std::string> seen;  // "started", "progress:<json>", "result".
  std::atomic<bool> done{false};
  Job job = MakeJob("app", Priority::kNormal);
  job.not_before = absl::Now() + absl::Seconds(1);
  const absl::Time submitted = absl::Now();
  absl::Time finished;
  ASSERT_TRUE(submitter
                  ->Submit(
                      job,
                      [&](const JobResult& r) {
                        std::lock_guard<std::mutex> lock(mu);
                        seen.push_back(r.ok() ? "result" : r.error);
                        finished = absl::Now();
                        done = true;
                      },
                      [&](const JobEvent& e) {
                        std::lock_guard<std::mutex> lock(mu);
                        seen.push_back(e.kind == JobEvent::Kind::kStarted
                                           ? "started"
                                           : "progress:" + e.data);
                      })
                  .ok());
  ASSERT_TRUE(Eventually([&] { return done.load(); }, absl::Seconds(30)));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"started", "progress:{\"step\": 1}",
                                            "result"}));
  EXPECT_GE(finished - submitted, absl::Seconds(1));
  EXPECT_EQ(submitter->GetStats().events, 2u);
}

TEST_F(RetryTest, SubmitterSeesExpiredForAJobPastItsDeadline) {
  config_.deadline_skew = absl::Seconds(5);  // Processors: expire early.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Job job = MakeJob("app", Priority::kNormal);
  job.deadline = absl::Now() + absl::Seconds(2);
  auto result = submitter->SubmitAndWait(job, absl::Seconds(30));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, JobStatus::kExpired) << result->error;
  // Counted just after the waiter is woken.
  EXPECT_TRUE(Eventually([&] { return submitter->GetStats().expired == 1; },
                         absl::Seconds(5)));
  EXPECT_EQ(submitter->GetStats().batch_failed, 0u);

  Job passed = MakeJob("app", Priority::kNormal);
  passed.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      submitter->Submit(passed, [](const JobResult&) {})));
}

TEST_F(RetryTest, SubmitterKeepsEachJobsStateForItsRetention) {
  config_.status_retention = absl::Seconds(2);
  std::atomic<bool> release{false};
  RunningProcessor processor(
      config_, "app",
      {{"echo", [&](Task& task) {
          (void)task.Progress("{\"step\": 1}");
          Eventually([&] { return release.load(); }, absl::Seconds(20));
          (void)task.Complete(task.data());
        }}});
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Job job = MakeJob("app", Priority::kNormal, "\"x\"");
  std::atomic<bool> done{false};
  ASSERT_TRUE(submitter->Submit(job, [&](const JobResult&) { done = true; }).ok());
  auto state = submitter->GetJobState(job.id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_NE(state->phase, Submitter::JobState::kEnded);

  EXPECT_TRUE(Eventually(
      [&] {
        auto s = submitter->GetJobState(job.id);
        return s.ok() && s->phase == Submitter::JobState::kProgress &&
               s->progress == "{\"step\": 1}" && s->attempt == 1;
      },
      absl::Seconds(30)));
  release = true;
  ASSERT_TRUE(Eventually([&] { return done.load(); }, absl::Seconds(30)));
  state = submitter->GetJobState(job.id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->phase, Submitter::JobState::kEnded);
  EXPECT_EQ(state->result.status, JobStatus::kProcessedOk);
  EXPECT_EQ(state->result.data, "\"x\"");
  // Forgotten once its retention passed.
  EXPECT_TRUE(Eventually(
      [&] { return absl::IsNotFound(submitter->GetJobState(job.id).status()); },
      absl::Seconds(10)));
  EXPECT_TRUE(absl::IsNotFound(submitter->GetJobState(JobId::Random()).status()));

  Config untracked = config_;
  untracked.status_retention = absl::ZeroDuration();
  auto plain = NewSubmitter(untracked);
  ASSERT_NE(plain, nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(plain->GetJobState(job.id).status()));
}

}  // namespace
}  // namespace batchbus::testing

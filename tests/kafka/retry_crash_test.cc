// Retry crash (kafka tier): a processor in a child process (echo_processor
// --retry-first-ms) ends attempt 1 of every job with Task::Retry, and is
// killed with SIGKILL while those retries wait in the delay tiers. Its
// successor must run every retry: each job ends exactly once, PROCESSED_OK,
// as attempt 2 or later, and none ends BATCH_FAILED. A retry that lived
// only in the dead process's memory would be lost here.
#include <atomic>
#include <cinttypes>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr size_t kJobs = 5'000;
// Long enough that no retry is due before the kill, short enough for CI.
constexpr int kRetryDelayMs = 4'000;

class RetryCrashTest : public ClusterTest {};

std::unique_ptr<ChildProcess> StartRetrying(const Config& config,
                                            const std::string& log_path) {
  return ChildProcess::Spawn(
      {EchoProcessorPath(), "--brokers", config.brokers, "--namespace",
       config.ns, "--processor", "retry", "--retry-first-ms",
       std::to_string(kRetryDelayMs), "--set", "kafka.session.timeout.ms=6000",
       "--set", "kafka.heartbeat.interval.ms=1000"},
      {}, log_path);
}

TEST_F(RetryCrashTest, RetriesWrittenBeforeACrashAreRunByTheSuccessor) {
  ASSERT_FALSE(EchoProcessorPath().empty())
      << "BATCHBUS_ECHO_PROCESSOR is not set (tests/CMakeLists.txt passes it)";
  for (Priority p : kAllPriorities) {
    config_.For(p).batch_timeout = absl::Seconds(120);
  }
  const std::string log_path = TempLogPath("retry-crash-echo");
  unlink(log_path.c_str());
  auto child = StartRetrying(config_, log_path);
  ASSERT_TRUE(child);
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);
  {
    // The child is up and owns the partitions once a probe returns (after
    // its retry).
    auto probe = submitter->SubmitAndWait(
        MakeJob("retry", Priority::kRealtime, "\"probe\""), absl::Seconds(60));
    ASSERT_TRUE(probe.ok()) << probe.status();
    ASSERT_EQ(probe->status, JobStatus::kProcessedOk)
        << probe->error << "\n" << Tail(ReadFile(log_path), 30);
    ASSERT_EQ(probe->attempts, 2u);
  }

  std::vector<std::atomic<uint8_t>> calls(kJobs);
  std::atomic<uint64_t> callbacks{0}, ok{0}, failed{0}, first_attempts_started{0},
      wrong_attempts{0};
  std::string first_error;
  std::mutex first_error_mu;
  for (size_t i = 0; i < kJobs; ++i) {
    Job job = MakeJob("retry", Priority::kNormal,
                      "{\"i\":" + std::to_string(i) + "}");
    absl::Status s = submitter->Submit(
        job,
        [&, i](const JobResult& r) {
          calls[i]++;
          if (r.status == JobStatus::kProcessedOk) {
            ok++;
            if (r.attempts < 2) wrong_attempts++;
          } else {
            failed++;
            std::lock_guard<std::mutex> lock(first_error_mu);
            if (first_error.empty()) {
              first_error = std::string(JobStatusName(r.status)) + ": " + r.error;
            }
          }
          callbacks++;
        },
        [&](const JobEvent& e) {
          if (e.kind == JobEvent::Kind::kStarted && e.attempt == 1) {
            first_attempts_started++;
          }
        });
    ASSERT_TRUE(s.ok()) << s;
  }
  submitter->Flush();

  // Every job's attempt 1 was handed out (and ended with Retry at once).
  ASSERT_TRUE(Eventually(
      [&] { return first_attempts_started.load() >= kJobs; }, absl::Seconds(60)))
      << first_attempts_started.load() << " of " << kJobs
      << " first attempts started; child log:\n"
      << Tail(ReadFile(log_path), 30);
  // Let the retries' copies be acknowledged and the batches committed.
  absl::SleepFor(absl::Milliseconds(1000));
  EXPECT_EQ(callbacks.load(), 0u) << "a retry ran before its delay";
  ASSERT_TRUE(child->Signal(SIGKILL));
  const absl::Time killed_at = absl::Now();
  auto status = child->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
      << DescribeWaitStatus(*status);
  child = StartRetrying(config_, log_path);
  ASSERT_TRUE(child);

  const bool all_done = Eventually([&] { return callbacks.load() >= kJobs; },
                                   absl::Seconds(120));
  const double recovered_s = absl::ToDoubleSeconds(absl::Now() - killed_at);
  ASSERT_TRUE(all_done) << callbacks.load() << " of " << kJobs
                        << " results; first error: " << first_error
                        << "\nchild log:\n" << Tail(ReadFile(log_path), 30);
  absl::SleepFor(absl::Seconds(1));  // Stragglers: duplicates come late.

  ASSERT_TRUE(child->Signal(SIGTERM));
  status = child->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << "echo_processor ignored SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << DescribeWaitStatus(*status) << "\n" << Tail(ReadFile(log_path), 20);

  uint64_t multi = 0, none = 0;
  for (size_t i = 0; i < kJobs; ++i) {
    multi += calls[i].load() > 1;
    none += calls[i].load() == 0;
  }
  const Submitter::Stats stats = submitter->GetStats();
  std::printf("[retry-crash] %zu jobs retried, processor killed with the "
              "retries waiting; all results %.1f s after the kill; "
              "late results (run twice): %" PRIu64 "\n",
              kJobs, recovered_s, stats.late_results);
  std::fflush(stdout);
  EXPECT_EQ(none, 0u) << "jobs without a terminal status";
  EXPECT_EQ(multi, 0u) << "jobs with more than one terminal status";
  EXPECT_EQ(ok.load(), kJobs) << first_error;
  EXPECT_EQ(failed.load(), 0u) << first_error;
  EXPECT_EQ(wrong_attempts.load(), 0u) << "a job completed on attempt 1";
}

}  // namespace
}  // namespace batchbus::testing

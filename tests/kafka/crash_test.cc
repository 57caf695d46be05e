// Crash (kafka tier): a processor in a child process (echo_processor) is
// killed with SIGKILL several times while a submitter streams 200,000
// normal and slow jobs to it, and restarted each time. Nothing may be lost:
// every job ends exactly once, PROCESSED_OK. Jobs the dead child had
// answered but not committed are processed again by its successor; their
// second results come back as late results, and their number must stay
// within the bound derived below.
#include <atomic>
#include <cinttypes>
#include <thread>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr size_t kJobs = 200'000;
constexpr int kKills = 4;
// Kill when this fraction of the jobs has a result (the stream is still
// running then: with 50,000 jobs in flight, the last job is submitted only
// once 150,000 have results).
constexpr double kKillAt[kKills] = {0.10, 0.25, 0.40, 0.55};

// Child processor settings.
constexpr int kDelayUs = 100;          // Per job, one worker.
constexpr int kAutoCommitMs = 100;     // kafka.auto.commit.interval.ms
constexpr int kSessionTimeoutMs = 6000;  // Broker minimum by default.
constexpr size_t kNormalBatch = 500;
constexpr size_t kSlowBatch = 1000;
// Latency from a job's answer until the offset after its batch is committed
// on the broker, beyond the auto-commit interval: result produced and
// acknowledged (result_linger 2 ms + a loopback round trip), offset stored,
// commit request answered. Milliseconds on an idle machine; generous here
// because the two cores are shared by the broker, the test and the child.
constexpr int kCommitSlackMs = 400;

// The bound on jobs processed twice per kill.
//
// A job is processed twice only if the killed child answered it and the
// offset after its batch was not committed yet; then the next owner of the
// partition gets the batch again. (Jobs fetched, prefetched or handed out but
// not answered are processed once, by the next owner: they cost time, not
// duplicates. A result the child produced but the broker never got is not a
// visible duplicate either: the submitter sees one result.) With one worker,
// batches of a priority are handed out in order, one at a time, so the
// answered but uncommitted jobs at the moment of the kill are
//  (a) jobs of batches fully answered within the last
//      auto.commit.interval.ms + kCommitSlackMs: at most
//      rate × (interval + slack), where the handler sleeps kDelayUs per job,
//      so rate ≤ 1e6 / kDelayUs jobs per second; plus
//  (b) the answered part of the one batch per priority that is partially
//      handed out (a slow batch can stall half-way while normal jobs come
//      first): fewer than kNormalBatch + kSlowBatch jobs.
// prefetch_jobs and fetch_queue_kbytes bound what is fetched again, not what
// is processed twice; they are set small anyway, so the restarted child
// refetches little.
constexpr uint64_t kDuplicateBoundPerKill =
    (1'000'000 / kDelayUs) * (kAutoCommitMs + kCommitSlackMs) / 1000 +
    kNormalBatch + kSlowBatch;

class CrashTest : public ClusterTest {};

std::unique_ptr<ChildProcess> StartEcho(const Config& config,
                                        const std::string& log_path) {
  return ChildProcess::Spawn(
      {EchoProcessorPath(), "--brokers", config.brokers, "--namespace",
       config.ns, "--processor", "crash", "--delay-us",
       std::to_string(kDelayUs), "--set", "prefetch_jobs=1000", "--set",
       "fetch_queue_kbytes=64", "--set",
       "kafka.session.timeout.ms=" + std::to_string(kSessionTimeoutMs),
       "--set", "kafka.heartbeat.interval.ms=1000", "--set",
       "kafka.auto.commit.interval.ms=" + std::to_string(kAutoCommitMs)},
      {}, log_path);
}

TEST_F(CrashTest, KilledProcessorLosesNothingAndDuplicatesStayBounded) {
  ASSERT_FALSE(EchoProcessorPath().empty())
      << "BATCHBUS_ECHO_PROCESSOR is not set (tests/CMakeLists.txt passes it)";
  config_.For(Priority::kNormal).max_jobs = kNormalBatch;
  config_.For(Priority::kSlow).max_jobs = kSlowBatch;
  for (Priority p : kAllPriorities) {
    config_.For(p).batch_timeout = absl::Seconds(120);
  }
  config_.max_inflight_jobs = 50'000;
  config_.submit_wait = absl::Seconds(60);
  config_.close_timeout = absl::Seconds(10);

  const std::string log_path = TempLogPath("crash-echo");
  unlink(log_path.c_str());
  auto child = StartEcho(config_, log_path);
  ASSERT_TRUE(child);
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);

  // The child is up and owns the partitions once a realtime probe returns.
  {
    auto probe = submitter->SubmitAndWait(
        MakeJob("crash", Priority::kRealtime, "\"probe\""), absl::Seconds(60));
    ASSERT_TRUE(probe.ok()) << probe.status();
    ASSERT_EQ(probe->status, JobStatus::kProcessedOk)
        << probe->error << "\n" << Tail(ReadFile(log_path), 30);
  }

  // Per job: callbacks seen. Counters only: 200,000 JobResults are not kept.
  std::vector<std::atomic<uint8_t>> calls(kJobs);
  std::atomic<uint64_t> callbacks{0}, ok{0}, batch_failed{0}, other{0},
      wrong_data{0};
  std::atomic<int> phase{0};  // Kills so far.
  std::array<std::atomic<uint64_t>, kKills + 1> late_by_phase{};
  std::atomic<uint64_t> late_bad{0};
  std::string first_error;
  std::mutex first_error_mu;

  submitter->SetLateResultHook([&](const JobResult& r) {
    late_by_phase[phase.load()]++;
    // A duplicate is an echo of a job of ours: {"i":N} with N in range.
    long n = -1;
    if (r.status != JobStatus::kProcessedOk ||
        std::sscanf(r.data.c_str(), "{\"i\":%ld}", &n) != 1 || n < 0 ||
        n >= static_cast<long>(kJobs)) {
      if (r.data != "\"probe\"") late_bad++;
    }
  });

  std::atomic<uint64_t> submit_errors{0}, full_retries{0};
  std::atomic<bool> stop_stream{false};
  const absl::Time stream_start = absl::Now();
  absl::Time stream_end;
  std::thread stream([&] {
    for (size_t i = 0; i < kJobs && !stop_stream; ++i) {
      Job job = MakeJob("crash", i % 4 == 3 ? Priority::kSlow : Priority::kNormal,
                        "{\"i\":" + std::to_string(i) + "}");
      auto done = [&, i](const JobResult& r) {
        calls[i]++;
        if (r.status == JobStatus::kProcessedOk) {
          ok++;
          if (r.data != "{\"i\":" + std::to_string(i) + "}") wrong_data++;
        } else {
          (r.status == JobStatus::kBatchFailed ? batch_failed : other)++;
          std::lock_guard<std::mutex> lock(first_error_mu);
          if (first_error.empty()) {
            first_error = std::string(JobStatusName(r.status)) + ": " + r.error;
          }
        }
        callbacks++;
      };
      while (true) {
        absl::Status s = submitter->Submit(job, done);
        if (s.ok()) break;
        if (absl::IsResourceExhausted(s) && !stop_stream) {
          full_retries++;
          continue;
        }
        submit_errors++;
        std::lock_guard<std::mutex> lock(first_error_mu);
        if (first_error.empty()) first_error = "Submit: " + s.ToString();
        return;
      }
    }
    stream_end = absl::Now();
  });
  // On a failed assertion below, stop the stream before leaving.
  StopAndJoin join_stream(stop_stream, stream);

  // Kill and restart the child at the thresholds.
  std::vector<double> takeover_s;
  for (int k = 0; k < kKills; ++k) {
    const uint64_t threshold = static_cast<uint64_t>(kKillAt[k] * kJobs);
    ASSERT_TRUE(Eventually([&] { return callbacks.load() >= threshold; },
                           absl::Seconds(90)))
        << "kill " << k + 1 << ": only " << callbacks.load()
        << " results; child log:\n"
        << Tail(ReadFile(log_path), 30);
    ASSERT_TRUE(child->running()) << "the child died by itself:\n"
                                  << Tail(ReadFile(log_path), 30);
    const uint64_t at_kill = callbacks.load();
    ASSERT_TRUE(child->Signal(SIGKILL));
    const absl::Time killed_at = absl::Now();
    auto status = child->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
        << DescribeWaitStatus(*status);
    phase = k + 1;
    child = StartEcho(config_, log_path);
    ASSERT_TRUE(child);
    // Results resume once the successor owns the partitions.
    ASSERT_TRUE(Eventually([&] { return callbacks.load() > at_kill + 1000; },
                           absl::Seconds(60)))
        << "no progress after kill " << k + 1;
    takeover_s.push_back(absl::ToDoubleSeconds(absl::Now() - killed_at));
    std::printf("[crash] kill %d at %" PRIu64 " results (stream %s); "
                "results flowing again after %.1f s\n",
                k + 1, at_kill,
                submitter->GetStats().submitted < kJobs + 1 ? "running" : "done",
                takeover_s.back());
  }

  const bool all_done = Eventually(
      [&] { return callbacks.load() >= kJobs; }, absl::Seconds(180));
  stop_stream = true;
  if (stream.joinable()) stream.join();
  ASSERT_TRUE(all_done) << callbacks.load() << " of " << kJobs
                        << " results; first error: " << first_error;
  const absl::Duration total = absl::Now() - stream_start;
  // Late results of the last kill come with the successor's first batches;
  // give stragglers a moment.
  absl::SleepFor(absl::Seconds(2));

  // A graceful stop: SIGTERM → Shutdown() → Close → exit 0.
  ASSERT_TRUE(child->Signal(SIGTERM));
  auto status = child->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << "echo_processor ignored SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << DescribeWaitStatus(*status) << "\n"
      << Tail(ReadFile(log_path), 20);

  const Submitter::Stats stats = submitter->GetStats();
  uint64_t multi = 0, none = 0;
  for (size_t i = 0; i < kJobs; ++i) {
    multi += calls[i].load() > 1;
    none += calls[i].load() == 0;
  }
  const uint64_t bound = kKills * kDuplicateBoundPerKill;
  std::printf(
      "[crash] %zu jobs, %d kills (SIGKILL), %.1f s (stream submitted in "
      "%.1f s); takeover after kill: %.1f/%.1f/%.1f/%.1f s\n",
      kJobs, kKills, absl::ToDoubleSeconds(total),
      absl::ToDoubleSeconds(stream_end - stream_start), takeover_s[0],
      takeover_s[1], takeover_s[2], takeover_s[3]);
  std::printf(
      "[crash] processed twice (late results): %" PRIu64
      " (after kill 1..4: %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
      ", before any kill: %" PRIu64 "); bound %" PRIu64 " (= %d kills x %" PRIu64
      ")\n",
      stats.late_results, late_by_phase[1].load(), late_by_phase[2].load(),
      late_by_phase[3].load(), late_by_phase[4].load(),
      late_by_phase[0].load(), bound, kKills, kDuplicateBoundPerKill);
  std::printf("[crash] results: ok=%" PRIu64 " batch_failed=%" PRIu64
              " other=%" PRIu64 "; submit retries when full: %" PRIu64 "\n",
              ok.load(), batch_failed.load(), other.load(),
              full_retries.load());
  std::fflush(stdout);

  EXPECT_EQ(submit_errors.load(), 0u) << first_error;
  EXPECT_EQ(none, 0u) << "jobs without a terminal status";
  EXPECT_EQ(multi, 0u) << "jobs with more than one terminal status";
  EXPECT_EQ(callbacks.load(), kJobs);
  EXPECT_EQ(ok.load(), kJobs) << first_error;
  EXPECT_EQ(batch_failed.load(), 0u) << first_error;
  EXPECT_EQ(other.load(), 0u) << first_error;
  EXPECT_EQ(wrong_data.load(), 0u);
  EXPECT_EQ(late_bad.load(), 0u);
  EXPECT_EQ(stats.submitted, kJobs + 1);  // + the probe
  EXPECT_EQ(stats.processed_ok, kJobs + 1);
  EXPECT_EQ(stats.batch_failed, 0u);
  EXPECT_EQ(stats.inflight_jobs, 0u);
  EXPECT_LE(stats.late_results, bound);
  EXPECT_TRUE(submitter->Close(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace batchbus::testing

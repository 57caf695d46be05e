// Takeover (kafka tier): a processor (echo_processor, a child process) is
// SIGKILLed under a stream of jobs and started again at once, as an
// orchestrator restarts a crashed pod. With dynamic membership the new
// process is a new group member: its partitions move only once the dead
// member's session (session.timeout.ms) has expired. With static membership
// (processor_instance, i.e. group.instance.id) the new process is the same
// member: it takes its partitions back as soon as it joins. Either way
// nothing is lost. Prints both takeover times ("[takeover]") for the
// README.
#include <atomic>
#include <cinttypes>
#include <thread>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

// Long enough that waiting for a session stands out from a restart's own
// cost, and shorter than the default 15 s to keep the test short.
constexpr int kSessionTimeoutMs = 10'000;
constexpr size_t kMaxJobs = 200'000;
constexpr absl::Duration kJobInterval = absl::Microseconds(500);  // ~2,000/s

class TakeoverTest : public ClusterTest {
 protected:
  struct Run {
    double takeover_s = 0;
    uint64_t jobs = 0, ok = 0, failed = 0, unfinished = 0, repeated = 0;
    uint64_t late = 0;
  };

  std::unique_ptr<ChildProcess> StartEcho(const std::string& ns,
                                          const std::string& instance,
                                          const std::string& log_path) {
    std::vector<std::string> args = {
        EchoProcessorPath(), "--brokers", config_.brokers, "--namespace", ns,
        "--processor", "takeover", "--set",
        "kafka.session.timeout.ms=" + std::to_string(kSessionTimeoutMs),
        "--set", "kafka.heartbeat.interval.ms=1000", "--set",
        "kafka.auto.commit.interval.ms=100"};
    if (!instance.empty()) {
      args.push_back("--set");
      args.push_back("processor_instance=" + instance);
    }
    return ChildProcess::Spawn(args, {}, log_path);
  }

  // Streams normal jobs, kills the child once results flow, restarts it and
  // measures until results flow again; then waits for every job's end.
  void Measure(const std::string& instance, Run& run) {
    Config config = config_;
    config.ns = UniqueNamespace();
    config.For(Priority::kNormal).max_jobs = 100;
    config.For(Priority::kNormal).batch_timeout = absl::Seconds(90);
    const std::string log_path =
        TempLogPath(instance.empty() ? "takeover-dynamic" : "takeover-static");
    unlink(log_path.c_str());
    // Before the submitter: its callbacks count into these until it is gone.
    std::vector<std::atomic<uint8_t>> calls(kMaxJobs);
    std::atomic<uint64_t> results{0}, ok{0}, failed{0}, submitted{0};
    auto child = StartEcho(config.ns, instance, log_path);
    ASSERT_TRUE(child);
    auto submitter = NewSubmitter(config);
    ASSERT_TRUE(submitter);
    auto probe = submitter->SubmitAndWait(
        MakeJob("takeover", Priority::kNormal, "\"probe\""), absl::Seconds(60));
    ASSERT_TRUE(probe.ok()) << probe.status();
    ASSERT_EQ(probe->status, JobStatus::kProcessedOk)
        << probe->error << "\n" << Tail(ReadFile(log_path), 30);

    std::atomic<bool> stop{false};
    std::thread stream([&] {
      absl::Time next = absl::Now();
      for (size_t i = 0; i < kMaxJobs && !stop; ++i) {
        auto done = [&, i](const JobResult& r) {
          calls[i]++;
          (r.status == JobStatus::kProcessedOk ? ok : failed)++;
          results++;
        };
        if (!submitter->Submit(MakeJob("takeover", Priority::kNormal), done)
                 .ok()) {
          break;
        }
        submitted++;
        next += kJobInterval;
        absl::SleepFor(next - absl::Now());
      }
    });
    StopAndJoin join_stream(stop, stream);

    ASSERT_TRUE(Eventually([&] { return results.load() >= 2'000; },
                           absl::Seconds(60)))
        << "results do not flow:\n" << Tail(ReadFile(log_path), 30);
    const uint64_t at_kill = results.load();
    ASSERT_TRUE(child->Signal(SIGKILL));
    const absl::Time killed_at = absl::Now();
    ASSERT_TRUE(child->Wait(absl::Seconds(10)).has_value());
    child = StartEcho(config.ns, instance, log_path);
    ASSERT_TRUE(child);
    ASSERT_TRUE(Eventually([&] { return results.load() >= at_kill + 1'000; },
                           absl::Seconds(90)))
        << "no results after the restart:\n" << Tail(ReadFile(log_path), 30);
    run.takeover_s = absl::ToDoubleSeconds(absl::Now() - killed_at);

    absl::SleepFor(absl::Seconds(2));
    stop = true;
    stream.join();
    run.jobs = submitted.load();
    EXPECT_TRUE(Eventually([&] { return results.load() >= run.jobs; },
                           absl::Seconds(90)))
        << results.load() << " of " << run.jobs << " results";
    run.ok = ok.load();
    run.failed = failed.load();
    for (uint64_t i = 0; i < run.jobs; ++i) {
      run.unfinished += calls[i].load() == 0;
      run.repeated += calls[i].load() > 1;
    }
    run.late = submitter->GetStats().late_results;
    EXPECT_TRUE(submitter->Close(absl::Seconds(10)).ok());
    ASSERT_TRUE(child->Signal(SIGTERM));
    EXPECT_TRUE(child->Wait(absl::Seconds(30)).has_value());
  }
};

TEST_F(TakeoverTest, StaticMembershipTakesOverWithoutWaitingForTheSession) {
  ASSERT_FALSE(EchoProcessorPath().empty())
      << "BATCHBUS_ECHO_PROCESSOR is not set (tests/CMakeLists.txt passes it)";
  Run dynamic, fixed;
  ASSERT_NO_FATAL_FAILURE(Measure("", dynamic));
  ASSERT_NO_FATAL_FAILURE(Measure("worker-0", fixed));
  for (const auto& [name, run] : {std::pair<const char*, const Run&>{"dynamic", dynamic},
                                  {"static", fixed}}) {
    std::printf("[takeover] %s membership: results again %.1f s after the "
                "SIGKILL and restart (session.timeout.ms %d); %" PRIu64
                " jobs, %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64
                " processed twice\n",
                name, run.takeover_s, kSessionTimeoutMs, run.jobs, run.ok,
                run.failed, run.late);
    EXPECT_EQ(run.unfinished, 0u) << name;
    EXPECT_EQ(run.repeated, 0u) << name;
    EXPECT_EQ(run.ok, run.jobs) << name;
    EXPECT_EQ(run.failed, 0u) << name;
  }
  std::fflush(stdout);
  // The restarted static member did not wait for its old session to end.
  EXPECT_LT(fixed.takeover_s, kSessionTimeoutMs / 1000.0);
}

}  // namespace
}  // namespace batchbus::testing

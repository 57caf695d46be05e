// Scale-out (kafka tier): three Processor instances of one application (one
// consumer group) share six partitions per priority. In a fault-free run of
// 30,000 jobs every job is processed exactly once, and every instance does
// part of the work.
#include <atomic>
#include <cinttypes>
#include <mutex>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr size_t kJobs = 30'000;
constexpr int kProcessors = 3;

class ScaleOutTest : public ClusterTest {};

TEST_F(ScaleOutTest, ThreeProcessorsShareTheWorkAndEachJobRunsOnce) {
  config_.topic_partitions = 6;
  config_.For(Priority::kNormal).max_jobs = 250;
  config_.For(Priority::kSlow).max_jobs = 500;
  config_.close_timeout = absl::Seconds(10);
  const std::string name = "scale";

  // Handler invocations per job id, across the three instances.
  std::mutex mu;
  absl::flat_hash_map<JobId, int> runs;
  std::array<std::atomic<uint64_t>, kProcessors> handled{}, probes{};
  auto handlers_for = [&](int k) {
    absl::flat_hash_map<std::string, Processor::Handler> h;
    h["work"] = [&, k](Task& t) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++runs[t.id()];
      }
      handled[k]++;
      (void)t.Complete(t.data());
    };
    h["probe"] = [&, k](Task& t) {
      probes[k]++;
      (void)t.Complete();
    };
    return h;
  };
  std::vector<std::unique_ptr<RunningProcessor>> processors;
  for (int k = 0; k < kProcessors; ++k) {
    processors.push_back(
        std::make_unique<RunningProcessor>(config_, name, handlers_for(k)));
    ASSERT_TRUE(processors.back()->get());
  }
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);
  // Late results of the work jobs (probes may be processed twice while the
  // group forms: a probe handed out by an instance whose partitions are
  // revoked is processed again by the next owner).
  std::atomic<uint64_t> work_late{0};
  submitter->SetLateResultHook([&](const JobResult& r) {
    if (r.data != "null") work_late++;
  });

  // The group has settled once every instance has handled a realtime probe:
  // the instance that joined last can only have received partitions in the
  // generation that holds all three, and nothing joins or leaves after it.
  const absl::Time settle_start = absl::Now();
  int probes_sent = 0;
  auto all_probed = [&] {
    for (auto& p : probes) {
      if (p.load() == 0) return false;
    }
    return true;
  };
  while (!all_probed() && absl::Now() - settle_start < absl::Seconds(90)) {
    auto r = submitter->SubmitAndWait(
        MakeJob(name, Priority::kRealtime, "null", "probe"), absl::Seconds(15));
    ASSERT_TRUE(r.ok()) << r.status();
    ++probes_sent;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(all_probed()) << "probes per instance: " << probes[0] << "/"
                            << probes[1] << "/" << probes[2];
  const absl::Duration settle_took = absl::Now() - settle_start;

  Collector results;
  std::vector<JobId> ids;
  ids.reserve(kJobs);
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < kJobs; ++i) {
    Job job = MakeJob(name, i % 3 == 2 ? Priority::kSlow : Priority::kNormal,
                      "{\"i\":" + std::to_string(i) + "}", "work");
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    ids.push_back(job.id);
  }
  ASSERT_TRUE(results.WaitFor(kJobs, absl::Seconds(120)))
      << results.total() << " of " << kJobs;
  const absl::Duration run_took = absl::Now() - start;
  absl::SleepFor(absl::Seconds(1));  // A duplicate would show by now.

  uint64_t handed_out = 0;
  for (auto& p : processors) handed_out += (*p)->GetStats().handed_out;
  uint64_t probes_handled = 0;
  for (auto& p : probes) probes_handled += p.load();
  size_t once = 0, never = 0, more = 0;
  uint64_t invocations = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const JobId& id : ids) {
      auto it = runs.find(id);
      const int n = it == runs.end() ? 0 : it->second;
      once += n == 1;
      never += n == 0;
      more += n > 1;
    }
    for (const auto& [id, n] : runs) invocations += n;
  }
  const Submitter::Stats stats = submitter->GetStats();
  std::printf(
      "[scale-out] group settled after %.1f s (%d probes); %zu jobs in %.1f s; "
      "handled per instance: %" PRIu64 "/%" PRIu64 "/%" PRIu64
      "; runs per job: once %zu, more %zu, never %zu; late results %" PRIu64
      " (of probes: %" PRIu64 ")\n",
      absl::ToDoubleSeconds(settle_took), probes_sent, kJobs,
      absl::ToDoubleSeconds(run_took), handled[0].load(), handled[1].load(),
      handled[2].load(), once, more, never, work_late.load(),
      stats.late_results - work_late.load());
  std::fflush(stdout);

  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kJobs);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(once, kJobs);
  EXPECT_EQ(more, 0u);
  EXPECT_EQ(never, 0u);
  EXPECT_EQ(invocations, kJobs);
  EXPECT_EQ(handed_out, kJobs + probes_handled);
  EXPECT_EQ(work_late.load(), 0u);
  for (int k = 0; k < kProcessors; ++k) {
    EXPECT_GT(handled[k].load(), 0u) << "instance " << k << " did no work";
  }
}

}  // namespace
}  // namespace batchbus::testing

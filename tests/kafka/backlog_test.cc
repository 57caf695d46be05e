// Backlog (kafka tier): 1,000,000 slow jobs wait in Kafka with no processor
// running; then a processor starts (in this process, two worker threads,
// echo handler) and 200 realtime jobs arrive, one every 10 ms. Every
// realtime job must finish before the slow backlog has drained: strict
// priority holds against a backlog far larger than the prefetch. Prints the
// realtime latency (p50/p99) and how long submitting, delivering and
// draining the backlog took.
#include <atomic>
#include <cinttypes>
#include <fstream>
#include <thread>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr size_t kSlowJobs = 1'000'000;
constexpr size_t kSlowBatch = 5000;
constexpr size_t kRealtimeJobs = 200;
constexpr absl::Duration kRealtimeEvery = absl::Milliseconds(10);
constexpr int kWorkers = 2;
// Slow jobs cost something: each worker sleeps 1 ms every 50 slow jobs
// (20 µs a job on average, without burning the CPU the broker and the
// submitter share). Free echo drains the backlog at ~370,000 jobs/s here,
// in less time than the realtime jobs take to arrive (2 s).
constexpr int kSleepEvery = 50;

// Peak resident memory of this process, in MiB (VmHWM).
double PeakRssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    }
  }
  return 0;
}

int64_t NowNanos() { return absl::ToUnixNanos(absl::Now()); }

class BacklogTest : public ClusterTest {};

TEST_F(BacklogTest, RealtimeJobsOvertakeAMillionSlowJobs) {
  config_.For(Priority::kSlow).max_jobs = kSlowBatch;
  config_.For(Priority::kSlow).max_bytes = 900 * 1024;
  config_.For(Priority::kSlow).max_linger = absl::Seconds(1);
  config_.For(Priority::kSlow).batch_timeout = absl::Seconds(600);
  config_.For(Priority::kRealtime).batch_timeout = absl::Seconds(60);
  config_.max_inflight_jobs = 1'100'000;
  // About 80 encoded bytes per job; keep the limit well clear of it.
  config_.max_inflight_bytes = 1024ull * 1024 * 1024;
  config_.close_timeout = absl::Seconds(10);
  const std::string name = "backlog";

  // The job topics exist before anything is produced to them (the broker
  // may not auto-create topics).
  {
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok()) << conf.status();
    auto admin = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(admin.ok()) << admin.status();
    std::vector<std::string> topics;
    for (Priority p : kAllPriorities) topics.push_back(config_.TopicFor(name, p));
    ASSERT_TRUE(kafka::EnsureTopics(admin->get(), config_, topics,
                                    absl::Seconds(30))
                    .ok());
  }
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);

  // Slow jobs: counters only, and the time the last one ended.
  std::atomic<uint64_t> slow_done{0}, slow_ok{0};
  std::atomic<int64_t> last_slow_ns{0};
  auto slow_done_fn = [&](const JobResult& r) {
    if (r.status == JobStatus::kProcessedOk) slow_ok.fetch_add(1);
    last_slow_ns.store(NowNanos());
    slow_done.fetch_add(1);
  };

  const absl::Time submit_start = absl::Now();
  for (size_t i = 0; i < kSlowJobs; ++i) {
    Job job = MakeJob(name, Priority::kSlow,
                      "{\"i\":" + std::to_string(i) + "}");
    absl::Status s = submitter->Submit(job, slow_done_fn);
    ASSERT_TRUE(s.ok()) << "slow job " << i << ": " << s;
  }
  submitter->Flush();
  const absl::Duration submit_took = absl::Now() - submit_start;
  const uint64_t batches = (kSlowJobs + kSlowBatch - 1) / kSlowBatch;
  ASSERT_TRUE(Eventually(
      [&] { return submitter->GetStats().batches_sent >= batches; },
      absl::Seconds(120)))
      << submitter->GetStats().batches_sent << " of " << batches
      << " batches acknowledged by the broker";
  const absl::Duration deliver_took = absl::Now() - submit_start;
  ASSERT_EQ(slow_done.load(), 0u) << "slow jobs ended with no processor";
  std::printf("[backlog] %zu slow jobs submitted in %.2f s (%.0f jobs/s), "
              "%" PRIu64 " batches acknowledged after %.2f s; peak RSS %.0f MiB\n",
              kSlowJobs, absl::ToDoubleSeconds(submit_took),
              kSlowJobs / absl::ToDoubleSeconds(submit_took), batches,
              absl::ToDoubleSeconds(deliver_took), PeakRssMiB());
  std::fflush(stdout);

  // The processor starts on a full backlog.
  const absl::Time processor_start = absl::Now();
  auto created = Processor::Create(config_, name);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Processor> processor = std::move(*created);
  absl::flat_hash_map<std::string, Processor::Handler> handlers = {
      {"echo", [](Task& t) {
         thread_local int n = 0;
         if (t.priority() == Priority::kSlow && ++n % kSleepEvery == 0) {
           absl::SleepFor(absl::Milliseconds(1));
         }
         (void)t.Complete(t.data());
       }}};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      absl::Status s = processor->Run(handlers);
      EXPECT_TRUE(s.ok()) << s;
    });
  }
  struct StopWorkers {
    Processor* p;
    std::vector<std::thread>* w;
    ~StopWorkers() {
      p->Shutdown();
      for (auto& t : *w) {
        if (t.joinable()) t.join();
      }
    }
  } stop_workers{processor.get(), &workers};

  // Realtime jobs start once the processor is draining the backlog.
  ASSERT_TRUE(Eventually([&] { return processor->GetStats().handed_out > 0; },
                         absl::Seconds(60)))
      << "the processor took no job";
  const absl::Duration first_job_after = absl::Now() - processor_start;
  std::vector<int64_t> rt_submitted(kRealtimeJobs), rt_finished(kRealtimeJobs);
  std::vector<std::atomic<int>> rt_calls(kRealtimeJobs);
  std::atomic<uint64_t> rt_ok{0}, rt_done{0};
  const uint64_t slow_done_at_first_realtime = slow_done.load();
  for (size_t i = 0; i < kRealtimeJobs; ++i) {
    Job job = MakeJob(name, Priority::kRealtime,
                      "{\"rt\":" + std::to_string(i) + "}");
    rt_submitted[i] = NowNanos();
    absl::Status s = submitter->Submit(job, [&, i](const JobResult& r) {
      rt_finished[i] = NowNanos();
      rt_calls[i]++;
      if (r.status == JobStatus::kProcessedOk) rt_ok++;
      rt_done++;
    });
    ASSERT_TRUE(s.ok()) << s;
    absl::SleepFor(kRealtimeEvery);
  }
  ASSERT_TRUE(Eventually([&] { return rt_done.load() == kRealtimeJobs; },
                         absl::Seconds(60)))
      << rt_done.load() << " of " << kRealtimeJobs << " realtime jobs ended";
  const uint64_t slow_done_at_last_realtime = slow_done.load();
  const bool drained = Eventually(
      [&] { return slow_done.load() >= kSlowJobs; }, absl::Seconds(150));
  const absl::Duration drain_took = absl::Now() - processor_start;
  ASSERT_TRUE(drained) << slow_done.load() << " of " << kSlowJobs
                       << " slow jobs ended";

  std::vector<double> latency_ms;
  size_t after_drain = 0;
  for (size_t i = 0; i < kRealtimeJobs; ++i) {
    latency_ms.push_back((rt_finished[i] - rt_submitted[i]) / 1e6);
    after_drain += rt_finished[i] >= last_slow_ns.load();
  }
  const Processor::Stats pstats = processor->GetStats();
  const Submitter::Stats sstats = submitter->GetStats();
  std::printf(
      "[backlog] processor: first job %.2f s after start; drained %zu slow "
      "jobs in %.1f s (%.0f jobs/s, %d workers); slow jobs done when the "
      "realtime jobs began/ended: %" PRIu64 "/%" PRIu64 "\n",
      absl::ToDoubleSeconds(first_job_after), kSlowJobs,
      absl::ToDoubleSeconds(drain_took),
      kSlowJobs / absl::ToDoubleSeconds(drain_took), kWorkers,
      slow_done_at_first_realtime, slow_done_at_last_realtime);
  std::printf(
      "[backlog] realtime latency (submit -> result): p50 %.1f ms, p99 %.1f ms, "
      "max %.1f ms; finished after the backlog drained: %zu of %zu; peak RSS "
      "%.0f MiB\n",
      Percentile(latency_ms, 50), Percentile(latency_ms, 99),
      Percentile(latency_ms, 100), after_drain, kRealtimeJobs, PeakRssMiB());
  std::fflush(stdout);

  EXPECT_EQ(slow_ok.load(), kSlowJobs);
  EXPECT_EQ(rt_ok.load(), kRealtimeJobs);
  for (size_t i = 0; i < kRealtimeJobs; ++i) {
    EXPECT_EQ(rt_calls[i].load(), 1) << "realtime job " << i;
    EXPECT_LT(rt_finished[i], last_slow_ns.load())
        << "realtime job " << i << " finished after the slow backlog drained";
  }
  EXPECT_LT(slow_done_at_last_realtime, kSlowJobs)
      << "the backlog drained before the realtime jobs were done: the test "
         "proves nothing";
  EXPECT_EQ(pstats.handed_out, kSlowJobs + kRealtimeJobs);
  EXPECT_EQ(sstats.batch_failed, 0u);
  EXPECT_EQ(sstats.late_results, 0u);
  EXPECT_EQ(sstats.inflight_jobs, 0u);
}

}  // namespace
}  // namespace batchbus::testing

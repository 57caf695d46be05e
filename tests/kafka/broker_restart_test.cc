// Broker restart (kafka tier): while threads keep submitting realtime and
// normal jobs, the broker is stopped (scripts/kafka stop) and started again
// a few seconds later (scripts/kafka start). No Submit, SubmitAndWait or
// Close call may hang; jobs whose batch timeout passed during the outage end
// BATCH_FAILED with a clear error; once the broker is back, new jobs complete
// PROCESSED_OK on the very same Submitter and Processor objects.
//
// The test controls the broker on $BATCHBUS_KAFKA_PORT through the script
// named by BATCHBUS_KAFKA_SCRIPT (compiled in by tests/CMakeLists.txt, or
// the environment). Without it the test fails: it cannot be run without
// control of the broker, and it must not be skipped silently.
#include <sys/stat.h>

#include <atomic>
#include <cinttypes>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr absl::Duration kRealtimeTimeout = absl::Seconds(3);
constexpr absl::Duration kNormalTimeout = absl::Seconds(5);
constexpr absl::Duration kNormalLinger = absl::Milliseconds(20);
// The broker stays down this long after `stop` returned: longer than both
// batch timeouts, so whole batches time out inside the outage.
constexpr absl::Duration kOutage = absl::Seconds(8);
constexpr absl::Duration kSubmitAndWaitTimeout = absl::Seconds(10);
// What "does not hang" allows beyond each call's own bound (scheduling on a
// busy 2-core machine, librdkafka handle teardown).
constexpr absl::Duration kSlack = absl::Seconds(2);

// Starts the broker again if the test stopped it and did not get to start
// it (a failed assertion): later tests share it.
class BrokerGuard {
 public:
  explicit BrokerGuard(int port) : port_(port) {}
  ~BrokerGuard() {
    if (!stopped_) return;
    CommandResult r = KafkaScriptCommand("start", port_);
    if (!r.ok()) ADD_FAILURE() << "could not restart the broker:\n" << r.output;
  }
  void set_stopped(bool stopped) { stopped_ = stopped; }

 private:
  int port_;
  bool stopped_ = false;
};

struct Record {
  absl::Time submitted;
  absl::Time finished;
  Priority priority = Priority::kNormal;
  int callbacks = 0;
  JobStatus status = JobStatus::kNew;
  std::string error;
};

// Every job submitted by the test, by index.
class Ledger {
 public:
  size_t Add(Priority p) {
    std::lock_guard<std::mutex> lock(mu_);
    Record& r = records_.emplace_back();
    r.priority = p;
    r.submitted = absl::Now();
    return records_.size() - 1;
  }
  // The job was not accepted: forget its submit time.
  void Rejected(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    records_[i].callbacks = -1;
  }
  void Done(size_t i, const JobResult& result) {
    std::lock_guard<std::mutex> lock(mu_);
    Record& r = records_[i];
    ++r.callbacks;
    r.finished = absl::Now();
    r.status = result.status;
    r.error = result.error;
  }
  std::vector<Record> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<Record>(records_.begin(), records_.end());
  }
  size_t Pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const Record& r : records_) n += r.callbacks == 0;
    return n;
  }
  size_t OkAfter(absl::Time t) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const Record& r : records_) {
      n += r.submitted > t && r.status == JobStatus::kProcessedOk;
    }
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::deque<Record> records_;  // Stable references while growing.
};

// Longest call per kind.
struct CallTimes {
  std::mutex mu;
  absl::Duration submit, submit_and_wait;
  uint64_t submit_calls = 0, submit_and_wait_calls = 0;
  void Note(absl::Duration& slot, uint64_t& calls, absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu);
    slot = std::max(slot, d);
    ++calls;
  }
};

bool IsClearTimeoutError(const std::string& e) {
  return e.find("no result within the batch timeout") != std::string::npos ||
         e.find("could not deliver the batch") != std::string::npos ||
         e.find("could not publish the batch") != std::string::npos;
}

class BrokerRestartTest : public ClusterTest {};

TEST_F(BrokerRestartTest, NothingHangsAndWorkResumesOnTheSameObjects) {
  const std::string script = KafkaScript();
  ASSERT_FALSE(script.empty())
      << "BATCHBUS_KAFKA_SCRIPT is not set. This test stops and starts the "
         "broker on $BATCHBUS_KAFKA_PORT through scripts/kafka; build it with "
         "tests/CMakeLists.txt (which compiles the path in) or set "
         "BATCHBUS_KAFKA_SCRIPT=/path/to/scripts/kafka.";
  struct stat st;
  ASSERT_EQ(stat(script.c_str(), &st), 0)
      << "BATCHBUS_KAFKA_SCRIPT=" << script << " does not exist";
  const int port = KafkaPort();
  const std::string controlled = "kafka://127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(config_.brokers, controlled)
      << "the test would restart the broker on port " << port
      << " (BATCHBUS_KAFKA_PORT) but runs against " << config_.brokers
      << " (BATCHBUS_TEST_BROKERS); make them name the same broker";
  {
    CommandResult status = KafkaScriptCommand("status", port, {},
                                              absl::Seconds(30));
    ASSERT_TRUE(status.ok())
        << "no broker of scripts/kafka answers on port " << port
        << " (start it with BATCHBUS_KAFKA_PORT=" << port
        << " scripts/kafka start):\n"
        << status.output;
  }
  BrokerGuard guard(port);

  config_.For(Priority::kRealtime).batch_timeout = kRealtimeTimeout;
  config_.For(Priority::kNormal).batch_timeout = kNormalTimeout;
  config_.For(Priority::kNormal).max_linger = kNormalLinger;
  config_.For(Priority::kNormal).max_jobs = 50;
  config_.close_timeout = absl::Seconds(5);

  RunningProcessor processor(config_, "restart", {{"echo", Echo()}});
  ASSERT_TRUE(processor.get());
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);
  // A second submitter, closed while the broker is down.
  auto closer = NewSubmitter();
  ASSERT_TRUE(closer);

  Ledger ledger;
  CallTimes times;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> submit_errors{0};
  std::string first_submit_error;
  std::mutex error_mu;

  auto submit_one = [&](Submitter& s, Priority p) {
    const size_t i = ledger.Add(p);
    Job job = MakeJob("restart", p, "{\"i\":" + std::to_string(i) + "}");
    const absl::Time t0 = absl::Now();
    absl::Status st = s.Submit(job, [&ledger, i](const JobResult& r) {
      ledger.Done(i, r);
    });
    times.Note(times.submit, times.submit_calls, absl::Now() - t0);
    if (!st.ok()) {
      ledger.Rejected(i);
      submit_errors++;
      std::lock_guard<std::mutex> lock(error_mu);
      if (first_submit_error.empty()) first_submit_error = st.ToString();
    }
  };

  // Busy submitters: 5 normal + 1 realtime job every 20 ms, and a caller
  // blocked in SubmitAndWait most of the time.
  std::thread stream([&] {
    while (!stop) {
      for (int k = 0; k < 5; ++k) submit_one(*submitter, Priority::kNormal);
      submit_one(*submitter, Priority::kRealtime);
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  struct WaitResult {
    absl::Time submitted;
    absl::Duration took;
    JobResult result;
  };
  std::vector<WaitResult> waits;
  std::mutex waits_mu;
  std::thread waiter([&] {
    while (!stop) {
      const absl::Time t0 = absl::Now();
      auto r = submitter->SubmitAndWait(
          MakeJob("restart", Priority::kRealtime, "\"wait\""),
          kSubmitAndWaitTimeout);
      const absl::Duration took = absl::Now() - t0;
      times.Note(times.submit_and_wait, times.submit_and_wait_calls, took);
      if (!r.ok()) {
        submit_errors++;
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_submit_error.empty()) first_submit_error = r.status().ToString();
        continue;
      }
      std::lock_guard<std::mutex> lock(waits_mu);
      waits.push_back({t0, took, *r});
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  auto finish_threads = [&] {
    stop = true;
    if (stream.joinable()) stream.join();
    if (waiter.joinable()) waiter.join();
  };
  struct FinishThreads {
    std::function<void()> finish;
    ~FinishThreads() { finish(); }
  } finish_guard{finish_threads};

  // 1. Warm up: work flows.
  const absl::Time test_start = absl::Now();
  if (!Eventually([&] { return ledger.OkAfter(test_start) >= 300; },
                  absl::Seconds(60))) {
    finish_threads();
    FAIL() << "no work flowed before the restart";
  }

  // 2. Stop the broker.
  const absl::Time stop_begin = absl::Now();
  guard.set_stopped(true);
  CommandResult stopped = KafkaScriptCommand("stop", port, {}, absl::Seconds(60));
  const absl::Time stop_end = absl::Now();
  if (!stopped.ok()) {
    finish_threads();
    FAIL() << "scripts/kafka stop failed:\n" << stopped.output;
  }

  // 3. The outage. Meanwhile the second submitter gets jobs and is closed.
  Collector closer_results;
  for (int i = 0; i < 50; ++i) {
    Job job = MakeJob("restart", i % 2 ? Priority::kNormal : Priority::kRealtime);
    EXPECT_TRUE(closer->Submit(job, closer_results.Callback()).ok());
  }
  absl::SleepFor(absl::Seconds(1));
  const absl::Time close_begin = absl::Now();
  absl::Status closer_status = closer->Close(absl::Seconds(2));
  const absl::Duration close_took = absl::Now() - close_begin;
  absl::SleepFor(kOutage - (absl::Now() - stop_end));

  // 4. Start it again.
  const absl::Time start_begin = absl::Now();
  CommandResult started = KafkaScriptCommand("start", port);
  const absl::Time start_end = absl::Now();
  if (!started.ok()) {
    finish_threads();
    FAIL() << "scripts/kafka start failed:\n" << started.output;
  }
  guard.set_stopped(false);

  // 5. Recovery: rounds of fresh jobs on the same objects until one round
  // completes entirely PROCESSED_OK, then one more round that must too.
  auto round = [&](int realtime, int normal, absl::Duration timeout) {
    Collector results;
    for (int i = 0; i < realtime + normal; ++i) {
      Job job = MakeJob("restart", i < realtime ? Priority::kRealtime
                                                : Priority::kNormal);
      const absl::Time t0 = absl::Now();
      EXPECT_TRUE(submitter->Submit(job, results.Callback()).ok());
      times.Note(times.submit, times.submit_calls, absl::Now() - t0);
    }
    const size_t n = realtime + normal;
    EXPECT_TRUE(results.WaitFor(n, timeout))
        << "a round's jobs got no terminal status in time";
    return std::make_pair(results.Count(JobStatus::kProcessedOk), n);
  };
  absl::Time recovered_at = absl::InfinitePast();
  int rounds = 0;
  while (absl::Now() - start_end < absl::Seconds(120)) {
    ++rounds;
    const absl::Time t = absl::Now();
    auto [ok, n] = round(20, 200, kNormalTimeout + absl::Seconds(5));
    if (ok == n) {
      recovered_at = t;
      break;
    }
  }
  auto confirm = round(50, 500, kNormalTimeout + absl::Seconds(5));
  absl::SleepFor(absl::Seconds(1));  // More of the stream after recovery.
  finish_threads();
  // Everything still in flight ends within its batch timeout.
  EXPECT_TRUE(Eventually([&] { return ledger.Pending() == 0; },
                         kNormalTimeout + absl::Seconds(5)))
      << ledger.Pending() << " jobs still without a terminal status";

  // 6. Close both objects: bounded.
  const absl::Time sclose_begin = absl::Now();
  absl::Status submitter_close = submitter->Close(absl::Seconds(5));
  const absl::Duration submitter_close_took = absl::Now() - sclose_begin;
  const absl::Time pclose_begin = absl::Now();
  processor.Stop();
  const absl::Duration processor_close_took = absl::Now() - pclose_begin;

  // ---- Report.
  const std::vector<Record> records = ledger.Snapshot();
  struct Counts {
    uint64_t ok = 0, failed = 0, error = 0, none = 0, multi = 0, unclear = 0,
             late_failure = 0;
  };
  Counts by[kNumPriorities];
  uint64_t must_fail = 0, must_fail_ok = 0, after_recovery = 0,
           after_recovery_bad = 0;
  std::map<std::string, uint64_t> error_kinds;
  for (const Record& r : records) {
    if (r.callbacks < 0) continue;  // Rejected by Submit.
    Counts& c = by[static_cast<int>(r.priority)];
    const absl::Duration timeout = r.priority == Priority::kRealtime
                                       ? kRealtimeTimeout
                                       : kNormalTimeout;
    if (r.callbacks == 0) ++c.none;
    if (r.callbacks > 1) ++c.multi;
    if (r.status == JobStatus::kProcessedOk) ++c.ok;
    if (r.status == JobStatus::kProcessedError) ++c.error;
    if (r.status == JobStatus::kBatchFailed) {
      ++c.failed;
      if (!IsClearTimeoutError(r.error)) ++c.unclear;
      // Ended once its timeout passed, not much later.
      if (r.finished - r.submitted > timeout + kNormalLinger + kSlack) {
        ++c.late_failure;
      }
      error_kinds[r.error.substr(0, r.error.find(" ("))]++;
    }
    // Its whole timeout lies inside the outage: it cannot have succeeded.
    if (r.submitted > stop_end &&
        r.submitted + timeout + kNormalLinger < start_begin) {
      ++must_fail;
      must_fail_ok += r.status != JobStatus::kBatchFailed;
    }
    if (recovered_at != absl::InfinitePast() && r.submitted > recovered_at) {
      ++after_recovery;
      after_recovery_bad += r.status != JobStatus::kProcessedOk;
    }
  }
  uint64_t waits_failed = 0, waits_ok = 0, waits_unclear = 0;
  for (const WaitResult& w : waits) {
    (w.result.status == JobStatus::kProcessedOk ? waits_ok : waits_failed)++;
    if (w.result.status == JobStatus::kBatchFailed &&
        !IsClearTimeoutError(w.result.error)) {
      ++waits_unclear;
    }
  }
  const Submitter::Stats stats = submitter->GetStats();
  auto secs = [](absl::Duration d) { return absl::ToDoubleSeconds(d); };
  std::printf(
      "[restart] stop took %.1f s, outage %.1f s, start took %.1f s; "
      "recovered %.1f s after start returned (%d round(s))\n",
      secs(stop_end - stop_begin), secs(start_end - stop_end),
      secs(start_end - start_begin),
      recovered_at == absl::InfinitePast() ? -1.0
                                           : secs(recovered_at - start_end),
      rounds);
  for (Priority p : {Priority::kRealtime, Priority::kNormal}) {
    const Counts& c = by[static_cast<int>(p)];
    std::printf("[restart] %s jobs: ok=%" PRIu64 " batch_failed=%" PRIu64
                " processed_error=%" PRIu64 " no_status=%" PRIu64
                " multi=%" PRIu64 "\n",
                std::string(PriorityName(p)).c_str(), c.ok, c.failed, c.error,
                c.none, c.multi);
  }
  for (const auto& [kind, n] : error_kinds) {
    std::printf("[restart] BATCH_FAILED x%" PRIu64 ": %s\n", n, kind.c_str());
  }
  std::printf(
      "[restart] SubmitAndWait: %zu calls, ok=%" PRIu64 " batch_failed=%" PRIu64
      "; longest Submit %.3f s, longest SubmitAndWait %.2f s (timeout %.0f s)\n",
      waits.size(), waits_ok, waits_failed, secs(times.submit),
      secs(times.submit_and_wait), secs(kSubmitAndWaitTimeout));
  std::printf(
      "[restart] Close during the outage: %.2f s (%s); after: Submitter %.2f "
      "s, Processor %.2f s; late results %" PRIu64 "\n",
      secs(close_took), closer_status.ToString().c_str(),
      secs(submitter_close_took), secs(processor_close_took),
      stats.late_results);
  std::printf("[restart] jobs whose timeout lay inside the outage: %" PRIu64
              "; jobs after recovery: %" PRIu64 " (not ok: %" PRIu64 ")\n",
              must_fail, after_recovery, after_recovery_bad);
  std::fflush(stdout);

  // ---- Assertions.
  EXPECT_EQ(submit_errors.load(), 0u) << first_submit_error;
  EXPECT_LE(times.submit, absl::Seconds(1)) << "a Submit call blocked";
  EXPECT_LE(times.submit_and_wait, kSubmitAndWaitTimeout + kSlack);
  for (const WaitResult& w : waits) {
    EXPECT_NE(w.result.status, JobStatus::kProcessedError) << w.result.error;
  }
  EXPECT_EQ(waits_unclear, 0u);
  EXPECT_GT(waits_failed, 0u) << "no SubmitAndWait saw the outage";
  for (Priority p : {Priority::kRealtime, Priority::kNormal}) {
    const Counts& c = by[static_cast<int>(p)];
    SCOPED_TRACE(std::string(PriorityName(p)));
    EXPECT_EQ(c.none, 0u) << "jobs without a terminal status";
    EXPECT_EQ(c.multi, 0u) << "jobs with more than one terminal status";
    EXPECT_EQ(c.error, 0u);
    EXPECT_GT(c.failed, 0u) << "the outage failed no batch";
    EXPECT_EQ(c.unclear, 0u) << "BATCH_FAILED without a clear reason";
    EXPECT_EQ(c.late_failure, 0u)
        << "BATCH_FAILED came later than the batch timeout (+"
        << absl::FormatDuration(kSlack) << ")";
  }
  EXPECT_GT(must_fail, 0u);
  EXPECT_EQ(must_fail_ok, 0u);
  // Recovery on the same objects.
  EXPECT_NE(recovered_at, absl::InfinitePast())
      << "no round of new jobs completed PROCESSED_OK within 120 s of the "
         "broker's return";
  EXPECT_EQ(confirm.first, confirm.second)
      << "jobs failed after the broker was back";
  EXPECT_GT(after_recovery, 0u);
  EXPECT_EQ(after_recovery_bad, 0u);
  // Close is bounded, with the broker gone and back.
  EXPECT_LE(close_took, absl::Seconds(2) + kSlack);
  EXPECT_EQ(closer_results.total(), 50u);
  EXPECT_EQ(closer_results.Count(JobStatus::kBatchFailed), 50u);
  EXPECT_EQ(closer_results.MaxCallbacksPerJob(), 1u);
  EXPECT_TRUE(submitter_close.ok()) << submitter_close;
  EXPECT_LE(submitter_close_took, absl::Seconds(5) + kSlack);
  EXPECT_LE(processor_close_took, absl::Seconds(10) + kSlack);
}

}  // namespace
}  // namespace batchbus::testing

// The cluster tier: batchbus on a replicated three-node Kafka cluster
// (scripts/kafka start --nodes 3) while brokers die. Each test streams jobs
// from several submitter threads to two processors of one group, injects its
// fault through scripts/kafka (SIGKILL, SIGSTOP/SIGCONT, a graceful stop, by
// pid), and then checks the promise end to end: every job ends exactly once
// at its submitter, and each one that ended PROCESSED_OK ran in a handler.
// It prints one "fault report" line per test, which the README's "Faults
// survived" table quotes.
//
// The cluster is named by $BATCHBUS_CLUSTER_PORT (node i listens on
// port + 2(i-1)) and, optionally, $BATCHBUS_CLUSTER_STATE; scripts/test
// starts it. The tests restart whatever they stopped, also on failure.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

constexpr int kNodes = 3;

int ClusterPort() {
  return std::atoi(EnvOr("BATCHBUS_CLUSTER_PORT", "29092").c_str());
}

std::string ClusterBootstrap() {
  std::string out;
  for (int i = 0; i < kNodes; ++i) {
    if (i) out += ",";
    out += "127.0.0.1:" + std::to_string(ClusterPort() + 2 * i);
  }
  return out;
}

// Runs `scripts/kafka <command> [node]` on the cluster.
CommandResult ClusterCommand(const std::string& command, int node = 0,
                             absl::Duration timeout = absl::Seconds(120)) {
  // Never BATCHBUS_KAFKA_FRESH=1 from the caller's environment: a `start`
  // of one killed node would then stop and wipe the whole cluster.
  std::vector<std::string> env = {
      "BATCHBUS_KAFKA_PORT=" + std::to_string(ClusterPort()),
      "BATCHBUS_KAFKA_NODES=" + std::to_string(kNodes),
      "BATCHBUS_KAFKA_FRESH=0"};
  const std::string state = EnvOr("BATCHBUS_CLUSTER_STATE", "");
  if (!state.empty()) env.push_back("BATCHBUS_KAFKA_STATE=" + state);
  std::vector<std::string> argv = {"/bin/bash", KafkaScript(), command};
  if (node > 0) argv.push_back(std::to_string(node));
  return RunCommand(argv, env, timeout);
}

// Brings every node back (resumed, started) when a test ends, however it
// ends: the next test needs the whole cluster.
class NodesBack {
 public:
  ~NodesBack() {
    for (int n = 1; n <= kNodes; ++n) (void)ClusterCommand("resume", n);
    CommandResult r = ClusterCommand("start");
    if (!r.ok()) ADD_FAILURE() << "could not bring the cluster back:\n" << r.output;
  }
};

void Fault(const std::string& command, int node) {
  CommandResult r = ClusterCommand(command, node);
  ASSERT_TRUE(r.ok()) << "scripts/kafka " << command << " " << node << ":\n"
                      << r.output;
  std::printf("[fault] %s node %d after %.1f s\n", command.c_str(), node,
              absl::ToDoubleSeconds(r.took));
}

// A quiet client of the cluster for metadata and admin requests; null (and
// `err` says why) when it cannot be made.
rd_kafka_t* NewClusterClient(char* err, size_t err_size) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", ClusterBootstrap().c_str(), err,
                    err_size);
  rd_kafka_conf_set(conf, "log_level", "0", err, err_size);
  return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
}

// Calls `use` with the cluster's metadata for all topics; false when there
// was none within 5 s.
bool WithMetadata(const std::function<void(const rd_kafka_metadata_t&)>& use) {
  char err[256];
  rd_kafka_t* rk = NewClusterClient(err, sizeof err);
  if (rk == nullptr) return false;
  const rd_kafka_metadata_t* md = nullptr;
  const bool got = rd_kafka_metadata(rk, 1, nullptr, &md, 5000) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR;
  if (got) {
    use(*md);
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  return got;
}

// The node that leads most partitions of the namespace's topics.
int BusiestLeader(const std::string& ns) {
  std::map<int, int> led;
  WithMetadata([&](const rd_kafka_metadata_t& md) {
    for (int t = 0; t < md.topic_cnt; ++t) {
      if (std::string(md.topics[t].topic).find(ns) == std::string::npos) {
        continue;
      }
      for (int p = 0; p < md.topics[t].partition_cnt; ++p) {
        ++led[md.topics[t].partitions[p].leader];
      }
    }
  });
  int best = 1, most = -1;
  for (const auto& [node, n] : led) {
    if (node >= 1 && node <= kNodes && n > most) best = node, most = n;
  }
  return best;
}

// Deletes the topics of namespace `ns`, waiting up to 30 s for the answer:
// each test's topics are replicated three ways, and the next test's brokers
// would otherwise keep replicating (and, after a restart, catching up) all
// of the earlier tests' partitions as well.
void DeleteTopicsOf(const std::string& ns) {
  std::vector<std::string> names;
  WithMetadata([&](const rd_kafka_metadata_t& md) {
    for (int t = 0; t < md.topic_cnt; ++t) {
      if (std::string(md.topics[t].topic).rfind(ns + ".", 0) == 0) {
        names.emplace_back(md.topics[t].topic);
      }
    }
  });
  if (names.empty()) return;
  char err[256];
  rd_kafka_t* rk = NewClusterClient(err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  std::vector<rd_kafka_DeleteTopic_t*> topics;
  for (const std::string& name : names) {
    topics.push_back(rd_kafka_DeleteTopic_new(name.c_str()));
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, topics.data(), topics.size(), nullptr, queue);
  rd_kafka_DeleteTopic_destroy_array(topics.data(), topics.size());
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000);
  EXPECT_NE(ev, nullptr) << "deleting " << names.size() << " topics of " << ns
                         << " was not answered within 30 s";
  if (ev != nullptr) {
    EXPECT_EQ(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR)
        << "deleting the topics of " << ns << ": " << rd_kafka_event_error_string(ev);
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_destroy(rk);
}

// True once all nodes are in the metadata and every partition has all its
// replicas in sync: a node that was just restarted has caught up.
bool ClusterSettled() {
  bool settled = false;
  WithMetadata([&](const rd_kafka_metadata_t& md) {
    settled = md.broker_cnt == kNodes;
    for (int t = 0; settled && t < md.topic_cnt; ++t) {
      for (int p = 0; p < md.topics[t].partition_cnt; ++p) {
        const rd_kafka_metadata_partition_t& part = md.topics[t].partitions[p];
        if (part.leader < 0 || part.isr_cnt < part.replica_cnt) settled = false;
      }
    }
  });
  return settled;
}

// Waits up to `timeout` for ClusterSettled, asking twice a second: each
// check opens a client, and a tighter loop would load the machine that
// runs the brokers while they catch up.
bool SettlesWithin(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!ClusterSettled()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(500));
  }
  return true;
}

struct Record {
  absl::Time submitted;
  absl::Time finished;
  Priority priority = Priority::kNormal;
  std::atomic<int> callbacks{0};
  JobStatus status = JobStatus::kNew;
  std::string error;
};

// Streams jobs from `threads` threads until `total` were submitted or Stop():
// 10% realtime, 60% normal, 30% slow, at about `rate` jobs/s in all (0: as
// fast as back-pressure lets them). Job i's data is the number i, which the
// handler counts.
class Stream {
 public:
  Stream(Submitter& submitter, const std::string& processor, size_t total,
         int threads, double rate)
      : submitter_(submitter), processor_(processor), records_(total),
        handled_(total), handled_at_ns_(total) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, threads, rate] { Run(threads, rate); });
    }
  }
  ~Stream() { Join(); }
  void Stop() { stop_ = true; }
  void Join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  Processor::Handler Handler() {
    return [this](Task& task) {
      const size_t i = std::strtoull(std::string(task.data()).c_str(), nullptr, 10);
      if (i < handled_.size() && handled_[i]++ == 0) {
        handled_at_ns_[i] = absl::GetCurrentTimeNanos();
      }
      (void)task.Complete(task.data());
    };
  }

  size_t submitted() const { return next_.load() < records_.size() ? next_.load() : records_.size(); }
  size_t finished() const { return finished_.load(); }
  size_t Accepted() const { return submitted() - refused_.load(); }
  bool WaitAll(absl::Duration timeout) {
    return Eventually([&] { return finished_.load() >= Accepted(); }, timeout);
  }
  // The jobs accepted and not ended, per priority, e.g. "realtime 3, slow 9".
  std::string Unended() const {
    std::map<std::string, std::pair<size_t, size_t>> n;  // Jobs, handled.
    for (size_t i = 0; i < submitted(); ++i) {
      if (records_[i].callbacks.load() != 0) continue;
      auto& c = n[std::string(PriorityName(records_[i].priority))];
      ++c.first;
      c.second += handled_[i].load() > 0;
    }
    std::string out;
    for (const auto& [name, c] : n) {
      out += (out.empty() ? "" : ", ") + name + " " + std::to_string(c.first) +
             " (" + std::to_string(c.second) + " handled)";
    }
    return out.empty() ? "none" : out;
  }
  const Record& at(size_t i) const { return records_[i]; }
  int handled(size_t i) const { return handled_[i].load(); }
  // When a handler first ran job i (InfinitePast: none did).
  absl::Time handled_at(size_t i) const {
    const int64_t ns = handled_at_ns_[i].load();
    return ns == 0 ? absl::InfinitePast() : absl::FromUnixNanos(ns);
  }
  absl::Duration longest_submit() const {
    std::lock_guard<std::mutex> lock(mu_);
    return longest_submit_;
  }
  std::string first_refusal() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_refusal_;
  }
  uint64_t refused() const { return refused_.load(); }

 private:
  void Run(int threads, double rate) {
    const absl::Duration gap =
        rate > 0 ? absl::Seconds(threads / rate) : absl::ZeroDuration();
    absl::Time next_at = absl::Now();
    while (!stop_) {
      const size_t i = next_.fetch_add(1);
      if (i >= records_.size()) return;
      Record& r = records_[i];
      r.priority = i % 10 == 0   ? Priority::kRealtime
                   : i % 10 < 7 ? Priority::kNormal
                                : Priority::kSlow;
      r.submitted = absl::Now();
      Job job = MakeJob(processor_, r.priority, std::to_string(i));
      absl::Status st = submitter_.Submit(job, [this, i](const JobResult& res) {
        Record& rec = records_[i];
        rec.finished = absl::Now();
        rec.status = res.status;
        rec.error = res.error;
        if (rec.callbacks.fetch_add(1) == 0) finished_++;
      });
      const absl::Duration took = absl::Now() - r.submitted;
      {
        std::lock_guard<std::mutex> lock(mu_);
        longest_submit_ = std::max(longest_submit_, took);
        if (!st.ok() && first_refusal_.empty()) first_refusal_ = st.ToString();
      }
      if (!st.ok()) {
        r.callbacks = -1;
        refused_++;
      }
      if (gap > absl::ZeroDuration()) {
        next_at += gap;
        const absl::Duration wait = next_at - absl::Now();
        if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
      }
    }
  }

  Submitter& submitter_;
  const std::string processor_;
  std::deque<Record> records_;
  std::deque<std::atomic<int>> handled_;
  std::deque<std::atomic<int64_t>> handled_at_ns_;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> finished_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  absl::Duration longest_submit_;
  std::string first_refusal_;
  std::vector<std::thread> threads_;
};

// What a stream's jobs came to.
struct Outcome {
  size_t jobs = 0;       // Accepted by Submit.
  size_t lost = 0;       // Accepted, and no callback.
  size_t twice = 0;      // More than one callback.
  size_t ok = 0;
  size_t batch_failed = 0;
  size_t other = 0;
  size_t ok_unhandled = 0;  // PROCESSED_OK, yet no handler saw the job.
  size_t duplicates = 0;    // Handler runs beyond one per job.
  std::string first_failure;
};

Outcome Tally(const Stream& s) {
  Outcome o;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    const int calls = r.callbacks.load();
    if (calls < 0) continue;
    ++o.jobs;
    if (calls == 0) ++o.lost;
    if (calls > 1) ++o.twice;
    if (s.handled(i) > 1) o.duplicates += s.handled(i) - 1;
    if (calls == 0) continue;
    if (r.status == JobStatus::kProcessedOk) {
      ++o.ok;
      if (s.handled(i) == 0) ++o.ok_unhandled;
    } else {
      (r.status == JobStatus::kBatchFailed ? o.batch_failed : o.other)++;
      if (o.first_failure.empty()) {
        o.first_failure = std::string(JobStatusName(r.status)) + ": " + r.error;
      }
    }
  }
  return o;
}

// Where the jobs that ended BATCH_FAILED came from: per priority, how many,
// when they were submitted relative to `fault`, and how many of them a
// handler had run (a result that came too late, against a batch that was
// never processed in time).
std::string DescribeBatchFailed(const Stream& s, absl::Time fault) {
  struct Class {
    size_t n = 0, handled = 0;
    double first_s = 1e9, last_s = -1e9;
  };
  std::map<Priority, Class> by;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    if (r.callbacks.load() < 1 || r.status != JobStatus::kBatchFailed) continue;
    Class& c = by[r.priority];
    ++c.n;
    c.handled += s.handled(i) > 0;
    const double at = absl::ToDoubleSeconds(r.submitted - fault);
    c.first_s = std::min(c.first_s, at);
    c.last_s = std::max(c.last_s, at);
  }
  // The realtime round trip, second by second around the fault: whether
  // realtime lagged before it, and when it caught up.
  // Each second's slowest: its round trip, and how long it took to reach
  // a handler (whether the job or its result was late).
  std::map<int, std::pair<double, double>> worst_ms;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    if (r.callbacks.load() < 1 || r.priority != Priority::kRealtime) continue;
    const double at = absl::ToDoubleSeconds(r.submitted - fault);
    if (at < -20 || at >= 10) continue;
    auto& worst = worst_ms[static_cast<int>(std::floor(at))];
    const double ms = absl::ToDoubleMilliseconds(r.finished - r.submitted);
    if (ms > worst.first) {
      const absl::Time handled = s.handled_at(i);
      worst = {ms, handled == absl::InfinitePast()
                       ? -1
                       : absl::ToDoubleMilliseconds(handled - r.submitted)};
    }
  }
  std::string out =
      "slowest realtime round trip by second of submission (in brackets: "
      "until its handler ran; -1: none did):";
  for (const auto& [second, ms] : worst_ms) {
    absl::StrAppendFormat(&out, " %+d s %.0f ms (%.0f);", second, ms.first,
                          ms.second);
  }
  out += "\n";
  for (const auto& [priority, c] : by) {
    absl::StrAppendFormat(&out,
                          "%s%s: %zu BATCH_FAILED (%zu handled), submitted "
                          "%.1f s to %.1f s after the fault",
                          out.back() == '\n' ? "" : "; ", std::string(PriorityName(priority)), c.n,
                          c.handled, c.first_s, c.last_s);
  }
  return out;
}

// Jobs that did not end PROCESSED_OK although submitted outside [from, to).
size_t FailedOutside(const Stream& s, absl::Time from, absl::Time to) {
  size_t n = 0;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    n += r.callbacks.load() > 0 && r.status != JobStatus::kProcessedOk &&
         (r.submitted < from || r.submitted >= to);
  }
  return n;
}

// p99 and max round trip, ms, of the jobs submitted in [from, to).
std::pair<double, double> SpikeMs(const Stream& s, absl::Time from,
                                  absl::Time to) {
  std::vector<double> ms;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    if (r.callbacks.load() < 1 || r.submitted < from || r.submitted >= to) {
      continue;
    }
    ms.push_back(absl::ToDoubleMilliseconds(r.finished - r.submitted));
  }
  if (ms.empty()) return {0, 0};
  return {Percentile(ms, 99), *std::max_element(ms.begin(), ms.end())};
}

// p99 round trip, ms, of the realtime jobs submitted in [from, to): how
// loaded the cluster already was before a fault.
double RealtimeP99Ms(const Stream& s, absl::Time from, absl::Time to) {
  std::vector<double> ms;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    if (r.callbacks.load() < 1 || r.priority != Priority::kRealtime ||
        r.submitted < from || r.submitted >= to) {
      continue;
    }
    ms.push_back(absl::ToDoubleMilliseconds(r.finished - r.submitted));
  }
  return ms.empty() ? 0 : Percentile(ms, 99);
}

// Recovery: from the fault until the last job slowed by it (over 1 s
// from Submit to its result) had its result; 0 when none was.
double RecoverySeconds(const Stream& s, absl::Time fault) {
  absl::Time last = fault;
  for (size_t i = 0; i < s.submitted(); ++i) {
    const Record& r = s.at(i);
    if (r.callbacks.load() > 0 && r.finished > fault &&
        r.finished - r.submitted > absl::Seconds(1)) {
      last = std::max(last, r.finished);
    }
  }
  return absl::ToDoubleSeconds(last - fault);
}

// `window`: when the jobs of `spike` were submitted.
void Report(const char* test, const Outcome& o, const std::string& faults,
            double recovery_s, std::pair<double, double> spike,
            const char* window = "in the 10 s after the fault") {
  std::printf(
      "[fault report] %s: jobs %zu, faults %s, lost %zu, duplicates %zu, "
      "BATCH_FAILED %zu, other failures %zu, recovery %.1f s, p99 %.0f ms "
      "and max %.0f ms %s\n",
      test, o.jobs, faults.c_str(), o.lost, o.duplicates, o.batch_failed,
      o.other, recovery_s, spike.first, spike.second, window);
  std::fflush(stdout);
}

class ReplicatedClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    ASSERT_FALSE(KafkaScript().empty()) << "BATCHBUS_KAFKA_SCRIPT is not set";
    CommandResult status = ClusterCommand("status", 0, absl::Seconds(30));
    ASSERT_TRUE(status.ok())
        << "no three-node cluster of scripts/kafka answers on port "
        << ClusterPort() << " (start it with BATCHBUS_KAFKA_PORT="
        << ClusterPort() << " scripts/kafka start --nodes 3):\n"
        << status.output;
    // The previous test's restarted node may still be catching up.
    ASSERT_TRUE(SettlesWithin(absl::Seconds(90)))
        << "the cluster's partitions did not all get their replicas in sync";
    config_.brokers = "kafka://" + ClusterBootstrap();
    config_.replication_factor = 3;
    config_.min_insync_replicas = 2;
    config_.close_timeout = absl::Seconds(10);
  }

  // A submitter, a stream of jobs through it and two processors of one
  // group that share the stream's handler.
  Stream& StartStream(size_t total, int threads, double rate) {
    submitter_ = NewSubmitter();
    EXPECT_TRUE(submitter_);
    if (!submitter_) std::abort();
    stream_ = std::make_unique<Stream>(*submitter_, kProcessor, total, threads,
                                       rate);
    for (int k = 0; k < 2; ++k) {
      processors_.push_back(std::make_unique<RunningProcessor>(
          config_, kProcessor,
          absl::flat_hash_map<std::string, Processor::Handler>{
              {"echo", stream_->Handler()}}));
      EXPECT_TRUE(processors_.back()->get());
    }
    return *stream_;
  }

  // The stream stops first, then the processors (which call its handler),
  // then the submitter (whose Close may still call its callbacks).
  void TearDown() override {
    if (stream_) {
      stream_->Stop();
      stream_->Join();
    }
    processors_.clear();
    submitter_.reset();
    stream_.reset();
    DeleteTopicsOf(config_.ns);
    ClusterTest::TearDown();
  }

  static constexpr const char* kProcessor = "cluster";
  std::unique_ptr<Submitter> submitter_;
  std::unique_ptr<Stream> stream_;
  std::vector<std::unique_ptr<RunningProcessor>> processors_;
};

void ExpectNothingLost(const Outcome& o) {
  EXPECT_GT(o.jobs, 0u);
  EXPECT_EQ(o.lost, 0u) << "jobs accepted by Submit that never ended";
  EXPECT_EQ(o.twice, 0u) << "jobs that ended more than once at the submitter";
  EXPECT_EQ(o.ok_unhandled, 0u)
      << "jobs PROCESSED_OK that no handler processed";
}

TEST_F(ReplicatedClusterTest, LeaderKilledLosesNothing) {
  NodesBack back;
  constexpr size_t kJobs = 300'000;
  Stream& stream = StartStream(kJobs, 4, 10000);
  ASSERT_TRUE(Eventually([&] { return stream.finished() >= kJobs / 3; },
                         absl::Seconds(120)))
      << "the stream did not get going: " << stream.finished() << " ended";
  const int victim = BusiestLeader(config_.ns);
  const absl::Time kill_at = absl::Now();
  Fault("kill", victim);
  absl::SleepFor(absl::Seconds(3));
  Fault("start-node", victim);
  stream.Join();
  ASSERT_TRUE(stream.WaitAll(absl::Seconds(120)))
      << stream.finished() << " of " << stream.Accepted()
      << " ended; not ended: " << stream.Unended();
  const Outcome o = Tally(stream);
  Report("leader killed", o, "SIGKILL of the busiest leader, restarted 3 s later",
         RecoverySeconds(stream, kill_at),
         SpikeMs(stream, kill_at, kill_at + absl::Seconds(10)));
  std::printf("[fault report] leader killed: realtime p99 %.0f ms in the 5 s "
              "before the fault, %.0f ms in the 10 s after it\n",
              RealtimeP99Ms(stream, kill_at - absl::Seconds(5), kill_at),
              RealtimeP99Ms(stream, kill_at, kill_at + absl::Seconds(10)));
  EXPECT_EQ(o.jobs, kJobs) << stream.first_refusal();
  ExpectNothingLost(o);
  EXPECT_EQ(o.other, 0u) << o.first_failure;
  // The batches caught in the failover (the dead node is fenced, its
  // partitions and group coordinators move) outlive it: with the consumers'
  // 15 s session, no group rebalances, and no batch times out.
  EXPECT_EQ(o.batch_failed, 0u)
      << o.first_failure << "\n" << DescribeBatchFailed(stream, kill_at);
}

// A processor process dies while a broker is down: its partitions go to
// the other processor once the group has a coordinator again and the dead
// member's session expires, and the other processor processes the dead
// one's uncommitted batches.
TEST_F(ReplicatedClusterTest, ProcessorKilledDuringLeaderElectionIsTakenOver) {
  NodesBack back;
  ASSERT_FALSE(EchoProcessorPath().empty())
      << "BATCHBUS_ECHO_PROCESSOR is not set (tests/CMakeLists.txt passes it)";
  // Long enough that only a lost job, not a slow takeover, can fail one.
  for (Priority p : kAllPriorities) {
    config_.For(p).batch_timeout = absl::Seconds(120);
  }
  auto echo = [&](const std::string& name) {
    const std::string log_path = TempLogPath("cluster-" + name);
    unlink(log_path.c_str());
    return ChildProcess::Spawn(
        {EchoProcessorPath(), "--brokers", config_.brokers, "--namespace",
         config_.ns, "--processor", kProcessor, "--set",
         "replication_factor=3", "--set", "min_insync_replicas=2"},
        {}, log_path);
  };
  submitter_ = NewSubmitter();
  ASSERT_TRUE(submitter_);
  auto doomed = echo("doomed");
  auto survivor = echo("survivor");
  ASSERT_TRUE(doomed && survivor);
  constexpr size_t kJobs = 90'000;
  stream_ = std::make_unique<Stream>(*submitter_, kProcessor, kJobs, 2, 3000);
  Stream& stream = *stream_;
  ASSERT_TRUE(Eventually([&] { return stream.finished() >= 15'000; },
                         absl::Seconds(120)))
      << "the stream did not get going: " << stream.finished() << " ended\n"
      << Tail(ReadFile(doomed->log_path()), 20);
  const int victim = BusiestLeader(config_.ns);
  const absl::Time kill_at = absl::Now();
  Fault("kill", victim);
  absl::SleepFor(absl::Milliseconds(500));  // Leaders are being elected.
  ASSERT_TRUE(doomed->Signal(SIGKILL));
  ASSERT_TRUE(doomed->Wait(absl::Seconds(10)).has_value());
  std::printf("[fault] SIGKILL of a processor process 0.5 s after the node\n");
  absl::SleepFor(absl::Seconds(3));
  Fault("start-node", victim);
  stream.Join();
  ASSERT_TRUE(stream.WaitAll(absl::Seconds(180)))
      << stream.finished() << " of " << stream.Accepted() << " ended\n"
      << Tail(ReadFile(survivor->log_path()), 20);
  EXPECT_TRUE(survivor->running()) << Tail(ReadFile(survivor->log_path()), 20);
  Outcome o = Tally(stream);
  // The handlers ran in the children: what ran twice comes back to the
  // submitter as late results.
  o.duplicates = submitter_->GetStats().late_results;
  Report("processor killed during leader election", o,
         "SIGKILL of the busiest leader, then of one of two processor "
         "processes; the node restarted 3 s later",
         RecoverySeconds(stream, kill_at),
         SpikeMs(stream, kill_at, kill_at + absl::Seconds(10)));
  EXPECT_EQ(o.jobs, kJobs) << stream.first_refusal();
  EXPECT_EQ(o.lost, 0u) << "jobs accepted by Submit that never ended";
  EXPECT_EQ(o.twice, 0u) << "jobs that ended more than once at the submitter";
  EXPECT_EQ(o.ok, o.jobs) << o.first_failure;
  EXPECT_EQ(o.batch_failed, 0u) << o.first_failure;
  EXPECT_EQ(o.other, 0u) << o.first_failure;
  ASSERT_TRUE(survivor->Signal(SIGTERM));
  EXPECT_TRUE(survivor->Wait(absl::Seconds(30)).has_value());
}

TEST_F(ReplicatedClusterTest, FrozenBrokerHangsNothing) {
  NodesBack back;
  constexpr absl::Duration kFrozen = absl::Seconds(20);
  Stream& stream = StartStream(1'000'000, 2, 4000);
  ASSERT_TRUE(Eventually([&] { return stream.finished() >= 10'000; },
                         absl::Seconds(120)));
  const int victim = BusiestLeader(config_.ns);
  const absl::Time pause_at = absl::Now();
  Fault("pause", victim);
  absl::SleepFor(kFrozen);
  const size_t ok_while_frozen = [&] {
    size_t n = 0;
    for (size_t i = 0; i < stream.submitted(); ++i) {
      const Record& r = stream.at(i);
      n += r.callbacks.load() > 0 && r.status == JobStatus::kProcessedOk &&
           r.submitted > pause_at + absl::Seconds(10);
    }
    return n;
  }();
  Fault("resume", victim);
  const absl::Time resumed = absl::Now();
  absl::SleepFor(absl::Seconds(10));
  stream.Stop();
  stream.Join();
  ASSERT_TRUE(stream.WaitAll(absl::Seconds(90)))
      << stream.finished() << " of " << stream.Accepted()
      << " ended; not ended: " << stream.Unended();
  const Outcome o = Tally(stream);
  size_t late_not_ok = 0;
  for (size_t i = 0; i < stream.submitted(); ++i) {
    const Record& r = stream.at(i);
    late_not_ok += r.callbacks.load() > 0 &&
                   r.submitted > resumed + absl::Seconds(3) &&
                   r.status != JobStatus::kProcessedOk;
  }
  Report("broker frozen", o, "SIGSTOP of the busiest leader for 20 s",
         RecoverySeconds(stream, pause_at),
         SpikeMs(stream, pause_at, pause_at + absl::Seconds(10)));
  std::printf("[fault report] broker frozen: %zu jobs submitted 10-20 s into "
              "the freeze ended PROCESSED_OK; longest Submit %.2f s\n",
              ok_while_frozen, absl::ToDoubleSeconds(stream.longest_submit()));
  ExpectNothingLost(o);
  EXPECT_GT(ok_while_frozen, 0u) << "work did not continue on the other nodes";
  EXPECT_EQ(o.other, 0u) << o.first_failure;
  EXPECT_EQ(FailedOutside(stream, pause_at - absl::Seconds(10),
                          resumed + absl::Seconds(3)),
            0u)
      << o.first_failure;
  EXPECT_EQ(late_not_ok, 0u) << "jobs submitted after the resume failed: "
                             << o.first_failure;
  EXPECT_LT(stream.longest_submit(), absl::Seconds(15));
}

// Each node in turn is stopped gracefully (its leaderships move first, as
// in a rolling upgrade), started again, and caught up before the next one
// goes, while jobs stream: nothing is lost and, with default timeouts,
// nothing fails.
TEST_F(ReplicatedClusterTest, RollingRestartLosesNothingAndFailsNothing) {
  NodesBack back;
  Stream& stream = StartStream(1'000'000, 2, 4000);
  ASSERT_TRUE(Eventually([&] { return stream.finished() >= 10'000; },
                         absl::Seconds(120)))
      << "the stream did not get going: " << stream.finished() << " ended";
  const absl::Time first_stop = absl::Now();
  for (int node = 1; node <= kNodes; ++node) {
    Fault("stop-node", node);
    Fault("start-node", node);
    const absl::Time started = absl::Now();
    ASSERT_TRUE(SettlesWithin(absl::Seconds(90)))
        << "node " << node << " did not catch up";
    std::printf("[fault] node %d caught up %.1f s after its start\n", node,
                absl::ToDoubleSeconds(absl::Now() - started));
  }
  const absl::Time done = absl::Now();
  absl::SleepFor(absl::Seconds(5));
  stream.Stop();
  stream.Join();
  ASSERT_TRUE(stream.WaitAll(absl::Seconds(120)))
      << stream.finished() << " of " << stream.Accepted()
      << " ended; not ended: " << stream.Unended();
  const Outcome o = Tally(stream);
  Report("rolling restart", o,
         "each of the 3 nodes stopped gracefully and restarted in turn",
         RecoverySeconds(stream, first_stop),
         SpikeMs(stream, first_stop, done),
         "while the nodes restarted");
  std::printf("[fault report] rolling restart: %.1f s from the first stop "
              "until the last node caught up\n",
              absl::ToDoubleSeconds(done - first_stop));
  ExpectNothingLost(o);
  EXPECT_EQ(o.batch_failed, 0u) << o.first_failure;
  EXPECT_EQ(o.other, 0u) << o.first_failure;
}

TEST_F(ReplicatedClusterTest, QuorumLostFailsBatchesAndWorkResumes) {
  NodesBack back;
  constexpr absl::Duration kTimeout = absl::Seconds(4);
  config_.For(Priority::kRealtime).batch_timeout = kTimeout;
  config_.close_timeout = absl::Seconds(3);
  auto submitter = NewSubmitter();
  ASSERT_TRUE(submitter);
  RunningProcessor processor(config_, kProcessor, {{"echo", Echo()}});
  ASSERT_TRUE(processor.get());
  {
    auto r = submitter->SubmitAndWait(MakeJob(kProcessor, Priority::kRealtime),
                                      absl::Seconds(60));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, JobStatus::kProcessedOk) << r->error;
  }
  auto closer = NewSubmitter();
  ASSERT_TRUE(closer);
  Fault("kill", 2);
  Fault("kill", 3);
  const absl::Time down = absl::Now();
  Collector lost_quorum;
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(submitter
                    ->Submit(MakeJob(kProcessor, Priority::kRealtime),
                             lost_quorum.Callback())
                    .ok());
  }
  ASSERT_TRUE(lost_quorum.WaitFor(kJobs, kTimeout + absl::Seconds(10)))
      << lost_quorum.total() << " of " << kJobs << " ended";
  size_t failed = 0;
  std::string error;
  for (const JobResult& r : lost_quorum.All()) {
    if (r.status == JobStatus::kBatchFailed) {
      ++failed;
      error = r.error;
    }
  }
  std::printf("[fault report] quorum lost: %zu of %d jobs BATCH_FAILED: %s\n",
              failed, kJobs, error.c_str());
  EXPECT_EQ(failed, static_cast<size_t>(kJobs));
  EXPECT_NE(error.find("no broker acknowledged"), std::string::npos) << error;
  EXPECT_NE(error.find("min.insync.replicas"), std::string::npos) << error;
  const absl::Time close_start = absl::Now();
  (void)closer->Close(config_.close_timeout);
  EXPECT_LT(absl::Now() - close_start, config_.close_timeout + absl::Seconds(3));

  Fault("start-node", 2);
  Fault("start-node", 3);
  const bool resumed = Eventually(
      [&] {
        auto r = submitter->SubmitAndWait(
            MakeJob(kProcessor, Priority::kRealtime), absl::Seconds(10));
        return r.ok() && r->status == JobStatus::kProcessedOk;
      },
      absl::Seconds(120));
  std::printf("[fault report] quorum lost: work resumed %.1f s after the "
              "nodes were killed\n",
              absl::ToDoubleSeconds(absl::Now() - down));
  EXPECT_TRUE(resumed) << "no job PROCESSED_OK within 120 s of the restart";
}

}  // namespace
}  // namespace batchbus::testing

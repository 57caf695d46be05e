// batchbus-bench: batchbus side by side with plain librdkafka, in one run.
//
//   batchbus-bench --broker mock://|kafka://host:port --jobs N --job-bytes B
//                  --batch-max J --threads T
//                  --scenario all|throughput|latency|backlog --json FILE
//
// Phases (docs/benchmarks.md explains each number):
//  0. memory per in-flight job (throughput/all, --inflight-jobs > 0): in a
//     forked child, before any thread exists, so the parent's heap does not
//     blur it. RSS growth while N jobs are in flight, divided by N.
//  1. raw baseline: one librdkafka producer and one consumer at once, N
//     messages of B bytes, at most --window unconsumed: messages/s.
//  2. batchbus: N jobs from T threads through Submit callbacks to an echo
//     Processor in this process: jobs/s, ratio to (1), CPU per job
//     (getrusage over the phase), peak RSS.
//  3. round-trip latency of single realtime (and normal) jobs, idle and while
//     a slow backlog is being worked.
// Every job must end PROCESSED_OK exactly once; otherwise the run prints
// FAILED and exits 1.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "batchbus/batchbus.h"
#include "kafka.h"

namespace batchbus::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "batchbus-bench: %s\nFAILED\n", what.c_str());
  std::fflush(stderr);
  _exit(1);
}

// ------------------------------------------------------------------ flags

struct Options {
  std::string broker = "mock://";
  size_t jobs = 200'000;
  size_t job_bytes = 200;
  size_t batch_max = 500;
  int threads = 2;
  int workers = 1;
  std::string scenario = "all";
  std::string json;
  size_t window = 20'000;   // Raw: unconsumed messages; batchbus: in flight.
  bool window_set = false;
  size_t rt_samples = 1000;
  size_t normal_samples = 200;
  size_t backlog_jobs = 1'000'000;  // Real broker; mock is capped.
  bool backlog_set = false;
  size_t inflight_jobs = 1'000'000;
  std::string backlog_mode;  // fill | sustain; default by broker.
  std::string probe_trace;   // CSV of every probe under backlog.
  size_t probe_interval_us = 1000;
  bool separate_probe_submitter = false;
  int partitions = 4;
  std::string data = "payments";  // payments | filler
  std::string codec = "none";     // compression.codec of raw and batchbus
  bool quiet = false;
};

void Usage() {
  std::fprintf(stderr, R"(usage: batchbus-bench [flags]
  --broker mock://[N] | kafka://host:port[,...]   (default mock://)
  --jobs N             jobs (and raw messages) in the throughput phase (200000)
  --job-bytes B        bytes of JSON data per job / raw message (200)
  --batch-max J        normal priority max_jobs per batch (500)
  --threads T          submitting threads (2)
  --workers W          processor threads calling Next() (1)
  --scenario S         all | throughput | latency | backlog | mixed (all;
                       mixed: a steady load, every tenth job realtime, not
                       part of all)
  --json FILE          write the results as JSON
  --window W           raw: max unconsumed messages; batchbus: max_inflight_jobs
                       (20000; on mock://, capped so ~4 MiB fits a partition)
  --rt-samples S       sequential realtime round trips per condition (1000)
  --normal-samples S   sequential normal-priority round trips per condition (200)
  --backlog-jobs K     slow jobs kept in flight while sampling under backlog
                       (1000000; on mock:// capped to what one partition holds)
  --backlog-mode M     fill (submit K slow jobs, sample while they are
                       worked; default on kafka://) or sustain (keep K in
                       flight while sampling; default on mock://)
  --probe-interval-us I  under backlog, a realtime probe every I us (open
                       loop; a normal one every 5th) (1000)
  --probe-trace FILE   under backlog, write every probe (send time, round
                       trip, time to the handler) to FILE as CSV
  --separate-probe-submitter  diagnostic: under backlog, probes come from a
                       second submitter with its own reply partition
  --inflight-jobs M    jobs held in flight to measure memory per job; 0 skips
                       (1000000)
  --partitions P       partitions of the raw topic and batchbus' topics (4)
  --data D             payments (seeded, varied JSON shaped like the payments
                       example: ids, amounts, currencies, timestamps, a nested
                       customer) or filler (one repeated character) (payments)
  --codec C            compression.codec of the raw producer and of batchbus'
                       producers: none | lz4 | zstd | snappy | gzip (none)
  --quiet              only the summary
)");
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    const auto eq = a.find('=');
    auto value = [&]() -> std::string {
      if (eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 >= argc) {
        Usage();
        Die("missing value for " + a);
      }
      return argv[++i];
    };
    const std::string name = a.substr(0, eq);
    auto num = [&]() -> size_t {
      std::string s = value();
      char* end = nullptr;
      unsigned long long n = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0') Die("bad number for " + name + ": " + s);
      return static_cast<size_t>(n);
    };
    if (name == "--broker") o.broker = value();
    else if (name == "--jobs") o.jobs = num();
    else if (name == "--job-bytes") o.job_bytes = num();
    else if (name == "--batch-max") o.batch_max = num();
    else if (name == "--threads") o.threads = static_cast<int>(num());
    else if (name == "--workers") o.workers = static_cast<int>(num());
    else if (name == "--scenario") o.scenario = value();
    else if (name == "--json") o.json = value();
    else if (name == "--window") { o.window = num(); o.window_set = true; }
    else if (name == "--rt-samples") o.rt_samples = num();
    else if (name == "--normal-samples") o.normal_samples = num();
    else if (name == "--backlog-jobs") { o.backlog_jobs = num(); o.backlog_set = true; }
    else if (name == "--inflight-jobs") o.inflight_jobs = num();
    else if (name == "--backlog-mode") o.backlog_mode = value();
    else if (name == "--probe-interval-us") o.probe_interval_us = num();
    else if (name == "--probe-trace") o.probe_trace = value();
    else if (name == "--separate-probe-submitter") o.separate_probe_submitter = true;
    else if (name == "--partitions") o.partitions = static_cast<int>(num());
    else if (name == "--data") o.data = value();
    else if (name == "--codec") o.codec = value();
    else if (name == "--quiet") o.quiet = true;
    else if (name == "--help" || name == "-h") { Usage(); std::exit(0); }
    else { Usage(); Die("unknown flag " + a); }
  }
  if (o.scenario != "all" && o.scenario != "throughput" &&
      o.scenario != "latency" && o.scenario != "backlog" && o.scenario != "mixed") {
    Die("--scenario must be all, throughput, latency, backlog or mixed");
  }
  if (o.jobs == 0 || o.batch_max == 0 || o.threads < 1 || o.workers < 1) {
    Die("--jobs, --batch-max, --threads and --workers must be positive");
  }
  if (o.data != "payments" && o.data != "filler") {
    Die("--data must be payments or filler");
  }
  if (o.codec != "none" && o.codec != "lz4" && o.codec != "zstd" &&
      o.codec != "snappy" && o.codec != "gzip") {
    Die("--codec must be none, lz4, zstd, snappy or gzip");
  }
  return o;
}

// A JSON object of exactly `bytes` bytes (bytes >= 8).
std::string MakeFiller(size_t bytes) {
  if (bytes < 8) return "1";
  return "{\"d\":\"" + std::string(bytes - 8, 'x') + "\"}";
}

// splitmix64: a seeded, portable sequence, so every run sends the same data.
uint64_t NextRandom(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A payment like examples/payments sends, padded with a note to about
// `bytes` bytes: varied ids, amounts, currencies and times, a nested customer.
std::string MakePayment(size_t bytes, uint64_t& rng) {
  static constexpr const char* kCurrencies[] = {"EUR", "USD", "GBP", "CHF",
                                                "JPY", "SEK", "PLN", "CAD"};
  static constexpr const char* kCountries[] = {"DE", "US", "GB", "CH", "JP",
                                               "SE", "PL", "CA", "FR", "NL"};
  static constexpr const char* kMethods[] = {"card", "sepa", "wallet", "ach"};
  char head[512];
  const uint64_t r1 = NextRandom(rng), r2 = NextRandom(rng);
  const uint64_t r3 = NextRandom(rng);
  const int n = std::snprintf(
      head, sizeof head,
      "{\"payment_id\":\"pay_%016" PRIx64 "\",\"amount_cents\":%" PRIu64
      ",\"currency\":\"%s\",\"method\":\"%s\",\"created_at\":"
      "\"2026-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"customer\":{\"id\":"
      "\"cus_%08" PRIx64 "\",\"country\":\"%s\",\"tier\":%d},\"note\":\"",
      r1, r2 % 500000 + 50, kCurrencies[r3 % 8], kMethods[(r3 >> 8) % 4],
      static_cast<int>((r3 >> 12) % 12 + 1), static_cast<int>((r3 >> 16) % 28 + 1),
      static_cast<int>((r3 >> 21) % 24), static_cast<int>((r3 >> 26) % 60),
      static_cast<int>((r3 >> 32) % 60), static_cast<int>((r3 >> 38) % 1000),
      r2 >> 32, kCountries[(r3 >> 48) % 10], static_cast<int>((r3 >> 56) % 4));
  std::string out(head, static_cast<size_t>(n));
  static constexpr char kWords[] =
      "order invoice refund gift card renewal subscription basket express "
      "shipping monthly annual store online terminal ";
  while (out.size() + 2 < bytes) {
    const uint64_t w = NextRandom(rng) % (sizeof kWords - 1);
    out.push_back(kWords[w] == ' ' ? ' ' : kWords[w]);
  }
  out += "\"}";
  return out;
}

// The job data a run sends: `count` payloads of about `bytes` bytes each,
// used round-robin (one repeated string for filler).
std::vector<std::string> MakeData(const Options& o, size_t count = 512) {
  std::vector<std::string> out;
  if (o.data == "filler") {
    out.push_back(MakeFiller(o.job_bytes));
    return out;
  }
  uint64_t rng = 20261202;
  for (size_t i = 0; i < count; ++i) out.push_back(MakePayment(o.job_bytes, rng));
  return out;
}

std::string RandomSuffix() { return JobId::Random().ToString().substr(0, 8); }

// ----------------------------------------------------------- measurement

double CpuSeconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec +
         (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

rusage Usage_() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r;
}

size_t CurrentRss() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// CPU seconds of this process' threads whose name starts with `prefix`
// (librdkafka names the mock cluster's thread "rdk:mock..."?).
std::map<std::string, double> ThreadCpuByName() {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    std::getline(f, line);
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    // Fields after comm: state(3) ... utime(14) stime(15).
    std::vector<std::string> fields;
    while (rest >> field) fields.push_back(field);
    if (fields.size() < 13) continue;
    out[comm] += (std::stod(fields[11]) + std::stod(fields[12])) / tick;
  }
  closedir(d);
  return out;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
  size_t n = 0;
};

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  p.n = v.size();
  return p;
}

// --------------------------------------------------------------- cluster

// Owns the embedded mock cluster for mock:// so that the raw baseline and
// batchbus use the same one (registered with the library so that it creates
// topics through the mock API).
class Cluster {
 public:
  explicit Cluster(const std::string& broker) {
    if (broker.rfind("mock://", 0) == 0) {
      int brokers = 1;
      const std::string n = broker.substr(7);
      if (!n.empty()) brokers = std::max(1, std::atoi(n.c_str()));
      char err[256];
      host_ = rd_kafka_new(RD_KAFKA_PRODUCER, kafka::MockHostConf(), err,
                           sizeof err);
      if (!host_) Die(std::string("mock host: ") + err);
      mock_ = rd_kafka_mock_cluster_new(host_, brokers);
      if (!mock_) Die("could not start the mock cluster");
      kafka::RegisterMockCluster(mock_);
      bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock_);
    } else if (broker.rfind("kafka://", 0) == 0) {
      bootstrap_ = broker.substr(8);
    } else {
      Die("--broker must be mock://[N] or kafka://host:port");
    }
  }
  ~Cluster() {
    if (mock_) {
      kafka::UnregisterMockCluster(mock_);
      rd_kafka_mock_cluster_destroy(mock_);
      rd_kafka_destroy(host_);
    }
  }
  bool mock() const { return mock_ != nullptr; }
  const std::string& bootstrap() const { return bootstrap_; }
  std::string url() const { return "kafka://" + bootstrap_; }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  std::string bootstrap_;
};

// ------------------------------------------------------------ raw baseline

struct RawResult {
  double msgs_per_s = 0;
  double seconds = 0;
  size_t consumed = 0;
  size_t delivery_errors = 0;
  double cpu_us_per_msg = 0;
};

void SetOrDie(rd_kafka_conf_t* conf, const char* k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    Die(std::string("librdkafka property ") + k + ": " + err);
  }
}

std::atomic<size_t> raw_delivery_errors{0};

void RawDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) raw_delivery_errors.fetch_add(1, std::memory_order_relaxed);
}

// Deletes topics a run created, so that repeated runs do not fill the
// broker's disk (a 1M-job backlog run writes about 1 GB). Best effort: a
// failure is only reported. Nothing to do on the mock cluster.
void DeleteTopics(const Cluster& cluster, const std::vector<std::string>& topics) {
  if (cluster.mock() || topics.empty()) return;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  SetOrDie(conf, "bootstrap.servers", cluster.bootstrap());
  SetOrDie(conf, "log_level", "3");
  char err[512];
  kafka::KafkaPtr admin(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  if (!admin) return;
  std::vector<rd_kafka_DeleteTopic_t*> del;
  for (const auto& t : topics) del.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin.get());
  rd_kafka_DeleteTopics(admin.get(), del.data(), del.size(), nullptr, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 15000);
  if (ev == nullptr || rd_kafka_event_error(ev)) {
    std::fprintf(stderr, "could not delete the run's topics: %s\n",
                 ev ? rd_kafka_event_error_string(ev) : "no answer");
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_DeleteTopic_destroy_array(del.data(), del.size());
}

std::vector<std::string> BusTopics(const Config& c, const std::string& processor) {
  std::vector<std::string> topics = {c.ReplyTopic(), c.DeadLetterTopicFor(processor)};
  for (Priority p : {Priority::kRealtime, Priority::kNormal, Priority::kSlow}) {
    topics.push_back(c.TopicFor(processor, p));
  }
  return topics;
}

// One producer and one consumer (its own thread, reading every partition of
// a fresh topic) at once. Settings match batchbus' own producer where it
// matters for fairness: acks=all (librdkafka's default, which batchbus
// keeps), the same compression.codec (--codec); linger.ms=5 and large batches let librdkafka batch.
RawResult RunRaw(const Cluster& cluster, const Options& o, size_t window) {
  Config config;  // Only for the library's topic helper.
  config.brokers = cluster.url();
  config.topic_partitions = o.partitions;
  const std::string topic = "bench.raw." + RandomSuffix();

  rd_kafka_conf_t* pconf = rd_kafka_conf_new();
  SetOrDie(pconf, "bootstrap.servers", cluster.bootstrap());
  SetOrDie(pconf, "linger.ms", "5");
  SetOrDie(pconf, "batch.num.messages", "100000");
  SetOrDie(pconf, "batch.size", "1000000");
  SetOrDie(pconf, "compression.codec", o.codec);
  SetOrDie(pconf, "queue.buffering.max.messages", "1000000");
  SetOrDie(pconf, "log_level", "3");
  rd_kafka_conf_set_dr_msg_cb(pconf, &RawDelivery);
  char err[512];
  kafka::KafkaPtr producer(
      rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err));
  if (!producer) Die(std::string("raw producer: ") + err);
  if (auto s = kafka::EnsureTopics(producer.get(), config, {topic},
                                   absl::Seconds(30));
      !s.ok()) {
    Die("raw topic: " + s.ToString());
  }

  rd_kafka_conf_t* cconf = rd_kafka_conf_new();
  SetOrDie(cconf, "bootstrap.servers", cluster.bootstrap());
  SetOrDie(cconf, "fetch.wait.max.ms", "10");
  SetOrDie(cconf, "fetch.error.backoff.ms", "10");
  SetOrDie(cconf, "enable.partition.eof", "false");
  SetOrDie(cconf, "log_level", "3");
  kafka::KafkaPtr consumer(
      rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err));
  if (!consumer) Die(std::string("raw consumer: ") + err);
  kafka::QueuePtr queue(rd_kafka_queue_new(consumer.get()));
  kafka::TopicPtr ctopic(rd_kafka_topic_new(consumer.get(), topic.c_str(), nullptr));
  for (int p = 0; p < o.partitions; ++p) {
    if (rd_kafka_consume_start_queue(ctopic.get(), p, RD_KAFKA_OFFSET_BEGINNING,
                                     queue.get()) != 0) {
      Die("raw consume_start failed");
    }
  }

  const size_t warmup = std::min<size_t>(1000, window / 2 + 1);
  const size_t total = warmup + o.jobs;
  std::atomic<size_t> consumed{0};
  std::atomic<bool> stop{false};
  std::mutex window_mu;
  std::condition_variable window_cv;
  std::atomic<int64_t> last_ns{0};
  std::thread reader([&] {
    rd_kafka_message_t* msgs[1024];
    while (!stop.load(std::memory_order_relaxed)) {
      ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 100, msgs, 1024);
      size_t ok = 0;
      for (ssize_t i = 0; i < n; ++i) {
        if (!msgs[i]->err) ++ok;
        rd_kafka_message_destroy(msgs[i]);
      }
      if (ok) {
        const size_t c = consumed.fetch_add(ok, std::memory_order_release) + ok;
        window_cv.notify_one();
        if (c >= total) {
          last_ns.store(Clock::now().time_since_epoch().count());
          return;
        }
      }
    }
  });

  const std::vector<std::string> pool = MakeData(o);
  kafka::TopicPtr ptopic(rd_kafka_topic_new(producer.get(), topic.c_str(), nullptr));
  Clock::time_point t0;
  rusage r0{};
  auto produce = [&](size_t i) {
    if (i - consumed.load(std::memory_order_acquire) >= window) {
      rd_kafka_poll(producer.get(), 0);
      std::unique_lock<std::mutex> lock(window_mu);
      while (i - consumed.load(std::memory_order_acquire) >= window) {
        window_cv.wait_for(lock, std::chrono::milliseconds(1));
      }
    }
    const std::string& payload = pool[i % pool.size()];
    while (rd_kafka_produce(ptopic.get(), RD_KAFKA_PARTITION_UA, 0,
                            const_cast<char*>(payload.data()), payload.size(),
                            nullptr, 0, nullptr) != 0) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        Die(std::string("raw produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      }
      rd_kafka_poll(producer.get(), 1);
    }
    if ((i & 1023) == 0) rd_kafka_poll(producer.get(), 0);
  };
  for (size_t i = 0; i < warmup; ++i) produce(i);
  const auto warm_deadline = Clock::now() + std::chrono::seconds(60);
  while (consumed.load() < warmup) {
    rd_kafka_poll(producer.get(), 1);
    if (Clock::now() > warm_deadline) Die("raw baseline: warm-up not consumed");
  }
  t0 = Clock::now();
  r0 = Usage_();
  for (size_t i = warmup; i < total; ++i) produce(i);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (consumed.load() < total && Clock::now() < deadline) {
    rd_kafka_poll(producer.get(), 1);
  }
  stop = true;
  reader.join();
  const rusage r1 = Usage_();
  RawResult r;
  r.consumed = consumed.load() - std::min(consumed.load(), warmup);
  if (consumed.load() >= total) {
    const auto t1 = Clock::time_point(Clock::duration(last_ns.load()));
    r.seconds = Seconds(t1 - t0);
    r.msgs_per_s = static_cast<double>(o.jobs) / r.seconds;
  }
  r.cpu_us_per_msg = (CpuSeconds(r1) - CpuSeconds(r0)) * 1e6 /
                     static_cast<double>(o.jobs);
  rd_kafka_flush(producer.get(), 5000);
  r.delivery_errors = raw_delivery_errors.load();
  for (int p = 0; p < o.partitions; ++p) rd_kafka_consume_stop(ctopic.get(), p);
  DeleteTopics(cluster, {topic});
  return r;
}

// -------------------------------------------------------------- batchbus

// Outcome bookkeeping for every job of the run: exactly one OK callback each.
struct Ledger {
  explicit Ledger(size_t n) : calls(n), ok(n) {}
  std::vector<std::atomic<uint8_t>> calls;
  std::vector<std::atomic<uint8_t>> ok;
  std::atomic<size_t> done{0};
  std::atomic<size_t> failed{0};
  std::mutex mu;
  std::condition_variable cv;
  std::string first_error;

  void Record(size_t i, const JobResult& r) {
    calls[i].fetch_add(1, std::memory_order_relaxed);
    if (r.ok()) {
      ok[i].store(1, std::memory_order_relaxed);
    } else if (failed.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(mu);
      first_error = std::string(JobStatusName(r.status)) + ": " + r.error;
    }
    done.fetch_add(1, std::memory_order_release);
  }
  size_t Lost(size_t n) const {
    size_t lost = 0;
    for (size_t i = 0; i < n; ++i) lost += ok[i].load() == 0 || calls[i].load() == 0;
    return lost;
  }
  size_t DuplicateCallbacks(size_t n) const {
    size_t d = 0;
    for (size_t i = 0; i < n; ++i) d += calls[i].load() > 1;
    return d;
  }
};

struct Bus {
  Config config;
  std::unique_ptr<Submitter> submitter;
  std::unique_ptr<Processor> processor;
  std::vector<std::thread> workers;
  std::atomic<bool> stop{false};
  std::atomic<bool> paused{false};  // Workers hold off (backlog "fill").
  std::atomic<uint64_t> handled[kNumPriorities] = {};

  ~Bus() { Stop(); }
  void Stop() {
    if (processor) processor->Shutdown();
    for (auto& t : workers) {
      if (t.joinable()) t.join();
    }
    workers.clear();
    if (submitter) (void)submitter->Close(absl::Seconds(5));
    if (processor) (void)processor->Close(absl::Seconds(5));
  }
};

const char* kProcessor = "bench";

Config BaseConfig(const Cluster& cluster, const Options& o) {
  Config c;
  c.brokers = cluster.url();
  c.ns = "bench" + RandomSuffix();
  c.client_id = "batchbus-bench";
  c.topic_partitions = o.partitions;
  c.For(Priority::kNormal).max_jobs = o.batch_max;
  c.For(Priority::kNormal).batch_timeout = absl::Seconds(60);
  c.For(Priority::kSlow).batch_timeout = absl::Seconds(120);
  c.For(Priority::kRealtime).batch_timeout = absl::Seconds(30);
  c.close_timeout = absl::Seconds(5);
  c.kafka["producer.compression.codec"] = o.codec;
  // BATCHBUS_* environment variables tune the library as they would in a
  // service (e.g. BATCHBUS_KAFKA_LINGER_MS=2).
  if (absl::Status s = c.MergeEnvironment(); !s.ok()) Die(s.ToString());
  return c;
}

void StartBus(Bus& bus, int workers) {
  auto s = Submitter::Create(bus.config);
  if (!s.ok()) Die("Submitter::Create: " + s.status().ToString());
  bus.submitter = std::move(*s);
  auto p = Processor::Create(bus.config, kProcessor);
  if (!p.ok()) Die("Processor::Create: " + p.status().ToString());
  bus.processor = std::move(*p);
  for (int w = 0; w < workers; ++w) {
    bus.workers.emplace_back([&bus] {
      while (true) {
        if (bus.paused.load(std::memory_order_acquire)) {
          if (bus.processor->shutdown_requested()) return;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        absl::StatusOr<Task> task = bus.processor->Next(absl::Milliseconds(100));
        if (!task.ok()) {
          if (absl::IsDeadlineExceeded(task.status())) continue;
          return;  // Cancelled: shutting down.
        }
        // Echo: the job's data is its result. Latency probes answer with
        // the time they were handed out, to split the round trip.
        absl::Status st;
        if (task->group() == "probe") {
          char buf[48];
          std::snprintf(buf, sizeof buf, "{\"h\":%lld}",
                        static_cast<long long>(
                            Clock::now().time_since_epoch().count()));
          st = task->Complete(buf);
        } else {
          st = task->Complete(task->data());
        }
        if (!st.ok()) Die("Complete: " + st.ToString());
        bus.handled[static_cast<int>(task->priority())].fetch_add(
            1, std::memory_order_relaxed);
      }
    });
  }
}

// Waits until the processor answers: the group has joined and partitions
// are assigned (a realtime and a normal job come back).
void WarmUp(Bus& bus, const std::string& data) {
  for (Priority p : {Priority::kRealtime, Priority::kNormal}) {
    Job job;
    job.processor = kProcessor;
    job.group = "echo";
    job.priority = p;
    job.data = data;
    auto r = bus.submitter->SubmitAndWait(job, absl::Seconds(60));
    if (!r.ok() || !r->ok()) {
      Die("warm-up job failed: " +
          (r.ok() ? std::string(JobStatusName(r->status)) + " " + r->error
                  : r.status().ToString()));
    }
  }
}

struct ThroughputResult {
  double jobs_per_s = 0;
  double seconds = 0;
  double cpu_us_per_job = 0;
  double cpu_us_per_job_excl_mock = -1;
  double rss_mb = 0;
  size_t lost = 0;
  size_t duplicate_callbacks = 0;
  uint64_t late_results = 0;
  uint64_t batches_sent = 0;
  uint64_t result_messages = 0;
  std::map<std::string, double> thread_cpu;  // Per thread-name group.
};

std::string ThreadGroup(const std::string& comm) {
  if (comm.rfind("rdk:mock", 0) == 0) return "mock-broker";
  if (comm.rfind("rdk:", 0) == 0) return "librdkafka";
  return "batchbus threads";
}

ThroughputResult RunThroughput(const Cluster& cluster, const Options& o,
                               size_t window) {
  Bus bus;
  bus.config = BaseConfig(cluster, o);
  bus.config.max_inflight_jobs = window;
  bus.config.max_inflight_bytes = 8ull << 30;
  bus.config.submit_wait = absl::Seconds(60);
  StartBus(bus, o.workers);
  const std::vector<std::string> pool = MakeData(o);
  WarmUp(bus, pool[0]);

  Ledger ledger(o.jobs);
  std::atomic<int64_t> last_ns{0};
  std::atomic<size_t> submitted{0};
  struct Tally {
    Ledger* ledger;
    std::atomic<int64_t>* last_ns;
    size_t n;
  } tally_storage{&ledger, &last_ns, o.jobs};
  const auto cpu_threads0 = ThreadCpuByName();
  const rusage r0 = Usage_();
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> threads;
  std::mutex submit_cpu_mu;
  double submit_cpu = 0;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      Job job;
      job.processor = kProcessor;
      job.group = "echo";
      job.priority = Priority::kNormal;
      for (size_t i = t; i < o.jobs; i += o.threads) {
        job.id = JobId();
        job.data.assign(pool[i % pool.size()]);  // Within its capacity.
        // Two words of capture: std::function stores it without allocating.
        Tally* tally = &tally_storage;
        absl::Status s = bus.submitter->Submit(job, [tally, i](const JobResult& r) {
          Ledger* l = tally->ledger;
          l->Record(i, r);
          if (l->done.load(std::memory_order_acquire) == tally->n) {
            tally->last_ns->store(Clock::now().time_since_epoch().count());
            std::lock_guard<std::mutex> lock(l->mu);
            l->cv.notify_all();
          }
        });
        if (!s.ok()) Die("Submit: " + s.ToString());
        submitted.fetch_add(1, std::memory_order_relaxed);
      }
      // This thread ends before the phase does: keep its CPU time.
      rusage self{};
      getrusage(RUSAGE_THREAD, &self);
      std::lock_guard<std::mutex> lock(submit_cpu_mu);
      submit_cpu += CpuSeconds(self);
    });
  }
  for (auto& t : threads) t.join();
  bus.submitter->Flush();
  {
    std::unique_lock<std::mutex> lock(ledger.mu);
    ledger.cv.wait_for(lock, std::chrono::seconds(120),
                       [&] { return ledger.done.load() >= o.jobs; });
  }
  const rusage r1 = Usage_();
  const auto cpu_threads1 = ThreadCpuByName();
  ThroughputResult r;
  if (ledger.done.load() >= o.jobs) {
    r.seconds = Seconds(Clock::time_point(Clock::duration(last_ns.load())) - t0);
    r.jobs_per_s = static_cast<double>(o.jobs) / r.seconds;
  }
  r.cpu_us_per_job =
      (CpuSeconds(r1) - CpuSeconds(r0)) * 1e6 / static_cast<double>(o.jobs);
  double mock_cpu = 0;
  for (const auto& [name, secs] : cpu_threads1) {
    auto it = cpu_threads0.find(name);
    const double d = secs - (it == cpu_threads0.end() ? 0 : it->second);
    r.thread_cpu[ThreadGroup(name)] += d;
    if (ThreadGroup(name) == "mock-broker") mock_cpu += d;
  }
  r.thread_cpu["submit threads"] += submit_cpu;
  if (cluster.mock()) {
    r.cpu_us_per_job_excl_mock =
        r.cpu_us_per_job - mock_cpu * 1e6 / static_cast<double>(o.jobs);
  }
  r.rss_mb = static_cast<double>(r1.ru_maxrss) / 1024.0;
  r.lost = ledger.Lost(o.jobs);
  r.duplicate_callbacks = ledger.DuplicateCallbacks(o.jobs);
  if (!ledger.first_error.empty()) {
    std::fprintf(stderr, "first failed job: %s\n", ledger.first_error.c_str());
  }
  // Results that arrive after their jobs ended would show up here.
  absl::SleepFor(absl::Milliseconds(100));
  const auto ss = bus.submitter->GetStats();
  r.late_results = ss.late_results;
  r.batches_sent = ss.batches_sent;
  r.result_messages = bus.processor->GetStats().result_messages;
  bus.Stop();
  DeleteTopics(cluster, BusTopics(bus.config, kProcessor));
  return r;
}

// ------------------------------------------------------------- latency

struct Samples {
  std::vector<double> total, inbound, outbound;
  void Append(const Samples& o) {
    total.insert(total.end(), o.total.begin(), o.total.end());
    inbound.insert(inbound.end(), o.inbound.begin(), o.inbound.end());
    outbound.insert(outbound.end(), o.outbound.begin(), o.outbound.end());
  }
};

struct LatencyResult {
  Samples rt_idle, normal_idle, rt_backlog, normal_backlog;
  std::string backlog_mode;
  size_t backlog_target = 0;
  size_t backlog_done_during_sampling = 0;
  size_t backlog_jobs_total = 0;
  size_t lost = 0;
  uint64_t late_results = 0;
  double backlog_seconds = 0;
  double free_drain_jobs_per_s = 0;  // The same backlog, no probes.
};

// Sequential single-job round trips: submit, wait for the callback. The
// time is taken in the callback (on the submitter's thread), so it excludes
// waking this thread. The handler reports when it was handed the job, which
// splits each round trip into inbound (Submit -> Next) and outbound
// (Complete -> callback) parts.
Samples Sample(Submitter& sub, Priority priority, size_t n,
               const std::string& data, size_t& lost,
               const std::function<bool()>& keep_going = nullptr) {
  Samples out;
  out.total.reserve(n);
  std::mutex mu;
  std::condition_variable cv;
  for (size_t i = 0; i < n; ++i) {
    if (keep_going && !keep_going()) break;
    bool have = false;
    bool ok = false;
    int64_t handed_ns = 0;
    Clock::time_point end;
    Job job;
    job.processor = kProcessor;
    job.group = "probe";
    job.priority = priority;
    job.data = data;
    const Clock::time_point start = Clock::now();
    absl::Status s = sub.Submit(job, [&](const JobResult& r) {
      const auto t = Clock::now();
      std::lock_guard<std::mutex> lock(mu);
      end = t;
      ok = r.ok();
      const auto h = r.data.find("\"h\":");
      if (h != std::string::npos) handed_ns = std::atoll(r.data.c_str() + h + 4);
      have = true;
      cv.notify_one();
    });
    if (!s.ok()) Die("Submit (latency): " + s.ToString());
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return have; })) {
      Die("a latency job had no callback within 60 s");
    }
    if (!ok) {
      ++lost;
      continue;
    }
    out.total.push_back(Micros(end - start));
    if (handed_ns > 0) {
      const auto handed = Clock::time_point(Clock::duration(handed_ns));
      out.inbound.push_back(Micros(handed - start));
      out.outbound.push_back(Micros(end - handed));
    }
  }
  return out;
}

// Open-loop probes under load: a realtime probe every `interval` and a
// normal one every 5th interval, each submitted without waiting for earlier
// ones (so a slow answer cannot hide the ones queued behind it), while
// `keep_going()` holds.
void OpenLoop(Submitter& sub, std::chrono::microseconds interval, size_t max_rt,
              const std::string& data, const std::function<bool()>& keep_going,
              Samples& rt, Samples& normal, size_t& lost,
              const std::string& trace_path) {
  struct Probe {
    Clock::time_point start;
    Clock::time_point end;
    int64_t handed_ns = 0;
    bool ok = false;
    bool normal = false;
    std::atomic<int> done{0};
  };
  const size_t max_n = max_rt + max_rt / 5 + 1;
  std::unique_ptr<Probe[]> probes(new Probe[max_n]);
  size_t n = 0;
  auto next = Clock::now();
  for (size_t tick = 0; n < max_n && keep_going(); ++tick) {
    for (int k = 0; k < (tick % 5 == 0 ? 2 : 1) && n < max_n; ++k) {
      Probe* probe = &probes[n++];
      probe->normal = k == 1;
      Job job;
      job.processor = kProcessor;
      job.group = "probe";
      job.priority = probe->normal ? Priority::kNormal : Priority::kRealtime;
      job.data = data;
      probe->start = Clock::now();
      absl::Status s = sub.Submit(job, [probe](const JobResult& r) {
        probe->end = Clock::now();
        probe->ok = r.ok();
        const auto h = r.data.find("\"h\":");
        if (h != std::string::npos) probe->handed_ns = std::atoll(r.data.c_str() + h + 4);
        probe->done.store(1, std::memory_order_release);
      });
      if (!s.ok()) Die("Submit (probe): " + s.ToString());
    }
    next += interval;
    std::this_thread::sleep_until(next);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  FILE* trace = trace_path.empty() ? nullptr : std::fopen(trace_path.c_str(), "w");
  if (trace != nullptr) std::fputs("sent_ms,priority,round_trip_us,to_handler_us\n", trace);
  for (size_t i = 0; i < n; ++i) {
    while (!probes[i].done.load(std::memory_order_acquire)) {
      if (Clock::now() > deadline) Die("a latency probe had no callback in 120 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const Probe& p = probes[i];
    if (!p.ok) {
      ++lost;
      continue;
    }
    Samples& out = p.normal ? normal : rt;
    out.total.push_back(Micros(p.end - p.start));
    if (trace != nullptr) {
      const double to_handler =
          p.handed_ns > 0
              ? Micros(Clock::time_point(Clock::duration(p.handed_ns)) - p.start)
              : -1.0;
      std::fprintf(trace, "%.3f,%s,%.0f,%.0f\n",
                   Micros(p.start - probes[0].start) / 1000.0,
                   p.normal ? "normal" : "realtime", Micros(p.end - p.start),
                   to_handler);
    }
    if (p.handed_ns > 0) {
      const auto handed = Clock::time_point(Clock::duration(p.handed_ns));
      out.inbound.push_back(Micros(handed - p.start));
      out.outbound.push_back(Micros(p.end - handed));
    }
  }
  if (trace != nullptr) std::fclose(trace);
}

LatencyResult RunLatency(const Cluster& cluster, const Options& o,
                         bool idle, bool backlog) {
  LatencyResult r;
  // The slow backlog: on the mock cluster it must fit one partition's ~5 MiB
  // (all of it may land on one partition), so at most 4 MiB of jobs.
  const size_t per_job = o.job_bytes + 100;
  size_t target = o.backlog_jobs;
  if (cluster.mock() && !o.backlog_set) target = (4u << 20) / per_job;
  if (cluster.mock()) target = std::min(target, (4u << 20) / per_job);
  r.backlog_target = backlog ? target : 0;

  Bus bus;
  bus.config = BaseConfig(cluster, o);
  bus.config.max_inflight_jobs = target + 10'000;
  if (o.separate_probe_submitter) bus.config.reply_partition = 0;
  bus.config.max_inflight_bytes = 8ull << 30;
  bus.config.submit_wait = absl::Seconds(60);
  StartBus(bus, o.workers);
  const std::string data = MakeData(o)[0];
  WarmUp(bus, data);

  if (idle) {
    r.rt_idle = Sample(*bus.submitter, Priority::kRealtime, o.rt_samples, data, r.lost);
    r.normal_idle =
        Sample(*bus.submitter, Priority::kNormal, o.normal_samples, data, r.lost);
  }
  if (backlog && target > 0) {
    // "fill": `target` slow jobs are submitted while the worker holds off,
    // so the whole backlog waits in Kafka; then the worker starts and we
    // sample while it works through them (sampling stops when they are done).
    // "sustain": a feeder keeps `target` slow jobs in flight the whole time
    // (the mock cluster's cap allows only a small backlog, which one worker
    // finishes in well under a second).
    const bool sustain = o.backlog_mode == "sustain" ||
                         (o.backlog_mode.empty() && cluster.mock());
    r.backlog_mode = sustain ? "sustain" : "fill";
    if (!sustain) bus.paused = true;
    std::atomic<size_t> slow_done{0}, slow_failed{0}, slow_submitted{0};
    std::atomic<bool> feeding{true};
    std::thread feeder([&] {
      Job job;
      job.processor = kProcessor;
      job.group = "echo";
      job.priority = Priority::kSlow;
      job.data = data;
      while (feeding.load(std::memory_order_relaxed)) {
        const size_t sent = slow_submitted.load();
        if (!sustain && sent >= target) break;
        if (sent - slow_done.load() >= target) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        job.id = JobId();
        absl::Status s = bus.submitter->Submit(job, [&](const JobResult& res) {
          if (!res.ok()) slow_failed.fetch_add(1);
          slow_done.fetch_add(1, std::memory_order_release);
        });
        if (!s.ok()) Die("Submit (backlog): " + s.ToString());
        slow_submitted.fetch_add(1, std::memory_order_relaxed);
      }
    });
    // Let the backlog build before sampling.
    const auto fill_deadline = Clock::now() + std::chrono::seconds(300);
    while (slow_submitted.load() < target && Clock::now() < fill_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    bus.submitter->Flush();
    if (!sustain) {
      // Every batch in Kafka before the worker starts.
      const uint64_t want = bus.submitter->GetStats().batches_sent;
      uint64_t last = want;
      for (int i = 0; i < 600; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const uint64_t now_sent = bus.submitter->GetStats().batches_sent;
        if (now_sent == last) break;
        last = now_sent;
      }
      bus.paused = false;
    }
    // The backlog's own drain rate, before any probe: skip its first 5%
    // (consumer start), then time the next 20% (sustain: one second), all
    // bounded in time.
    {
      auto wait_done = [&](size_t from, size_t jobs, std::chrono::milliseconds at_most) {
        const auto until = Clock::now() + at_most;
        while (slow_done.load() - from < jobs && Clock::now() < until) {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
      };
      wait_done(slow_done.load(), target / 20, std::chrono::seconds(30));
      const Clock::time_point f0 = Clock::now();
      const size_t fd0 = slow_done.load();
      if (sustain) {
        wait_done(fd0, SIZE_MAX, std::chrono::seconds(1));
      } else {
        wait_done(fd0, target / 5, std::chrono::seconds(60));
      }
      const double secs = Seconds(Clock::now() - f0);
      if (secs > 0) r.free_drain_jobs_per_s = (slow_done.load() - fd0) / secs;
    }
    const Clock::time_point t0 = Clock::now();
    const size_t done0 = slow_done.load();
    // Sample only while slow jobs are still waiting.
    auto backlog_left = [&] { return slow_done.load() + 1000 < slow_submitted.load(); };
    // Diagnostic: probes from a second submitter instance with a reply
    // partition of its own, so their results do not queue behind the
    // backlog's results.
    std::unique_ptr<Submitter> probe_submitter;
    if (o.separate_probe_submitter) {
      Config pc = bus.config;
      pc.reply_partition = 1;
      auto ps = Submitter::Create(pc);
      if (!ps.ok()) Die("probe Submitter::Create: " + ps.status().ToString());
      probe_submitter = std::move(*ps);
    }
    OpenLoop(probe_submitter ? *probe_submitter : *bus.submitter,
             std::chrono::microseconds(o.probe_interval_us),
             o.rt_samples, data, backlog_left, r.rt_backlog, r.normal_backlog,
             r.lost, o.probe_trace);
    r.backlog_done_during_sampling = slow_done.load() - done0;
    r.backlog_seconds = Seconds(Clock::now() - t0);
    feeding = false;
    feeder.join();
    const auto drain_deadline = Clock::now() + std::chrono::seconds(300);
    while (slow_done.load() < slow_submitted.load() &&
           Clock::now() < drain_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.backlog_jobs_total = slow_submitted.load();
    r.lost += slow_submitted.load() - slow_done.load() + slow_failed.load();
  }
  absl::SleepFor(absl::Milliseconds(100));
  r.late_results = bus.submitter->GetStats().late_results;
  bus.Stop();
  DeleteTopics(cluster, BusTopics(bus.config, kProcessor));
  return r;
}

// ------------------------------------------------------- mixed steady load

struct MixedResult {
  double jobs_per_s = 0;
  size_t batch_failed = 0;
  size_t lost = 0;
  bool pacing = false;
};

// A steady mixed load as services send it: --threads threads submit --jobs
// jobs, every tenth realtime, the others two normal to one slow, within the
// in-flight window. Jobs/s from the first Submit to the last callback, and
// how many ended BATCH_FAILED (none should, with timeouts this long).
MixedResult RunMixed(const Cluster& cluster, const Options& o, size_t window) {
  Bus bus;
  bus.config = BaseConfig(cluster, o);
  bus.config.max_inflight_jobs = window;
  bus.config.max_inflight_bytes = 8ull << 30;
  bus.config.submit_wait = absl::Seconds(60);
  StartBus(bus, o.workers);
  const std::vector<std::string> pool = MakeData(o);
  WarmUp(bus, pool[0]);
  MixedResult r;
  r.pacing = bus.config.realtime_pacing;

  Ledger ledger(o.jobs);
  std::atomic<size_t> batch_failed{0};
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      Job job;
      job.processor = kProcessor;
      job.group = "echo";
      for (size_t i = t; i < o.jobs; i += o.threads) {
        job.id = JobId();
        job.priority = i % 10 == 0   ? Priority::kRealtime
                       : i % 3 == 0 ? Priority::kSlow
                                    : Priority::kNormal;
        job.data.assign(pool[i % pool.size()]);
        absl::Status s = bus.submitter->Submit(job, [&, i](const JobResult& res) {
          if (res.status == JobStatus::kBatchFailed) batch_failed.fetch_add(1);
          ledger.Record(i, res);
          if (ledger.done.load(std::memory_order_acquire) == o.jobs) {
            std::lock_guard<std::mutex> lock(ledger.mu);
            ledger.cv.notify_all();
          }
        });
        if (!s.ok()) Die("Submit (mixed): " + s.ToString());
      }
    });
  }
  for (auto& t : threads) t.join();
  bus.submitter->Flush();
  {
    std::unique_lock<std::mutex> lock(ledger.mu);
    ledger.cv.wait_for(lock, std::chrono::seconds(300),
                       [&] { return ledger.done.load() >= o.jobs; });
  }
  const double secs = Seconds(Clock::now() - t0);
  if (ledger.done.load() >= o.jobs && secs > 0) r.jobs_per_s = o.jobs / secs;
  r.batch_failed = batch_failed.load();
  r.lost = ledger.Lost(o.jobs);
  bus.Stop();
  DeleteTopics(cluster, BusTopics(bus.config, kProcessor));
  return r;
}

// -------------------------------------------------- memory per in-flight job

struct InflightResult {
  double bytes_per_job = 0;  // RSS growth / jobs.
  size_t jobs = 0;
  double rss_before_mb = 0, rss_after_mb = 0;
  bool ok = false;
};

// Holds `n` jobs in flight with nobody processing them (a processor name
// with no processor, batch timeouts of an hour) and measures RSS before and
// after. Runs in a forked child so the parent's heap history does not blur
// it; must be called before any thread exists.
InflightResult MeasureInflight(const Options& o) {
  int fds[2];
  if (pipe(fds) != 0) Die("pipe");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    close(fds[0]);
    InflightResult res;
    {
      Cluster cluster(o.broker);
      Config c = BaseConfig(cluster, o);
      c.max_inflight_jobs = o.inflight_jobs + 20'001;
      c.max_inflight_bytes = 64ull << 30;
      c.backpressure = BackpressurePolicy::kFail;
      c.For(Priority::kNormal).batch_timeout = absl::Hours(1);
      c.For(Priority::kNormal).max_linger = absl::Milliseconds(5);
      auto sub = Submitter::Create(c);
      if (!sub.ok()) Die("inflight Submitter::Create: " + sub.status().ToString());
      const std::string data = MakeData(o)[0];
      Job job;
      job.processor = "bench-nobody";
      job.group = "echo";
      job.data = data;
      std::atomic<size_t> callbacks{0};
      auto submit = [&](size_t n) {
        for (size_t i = 0; i < n; ++i) {
          job.id = JobId();
          absl::Status s = (*sub)->Submit(
              job, [&callbacks](const JobResult&) { ++callbacks; });
          if (!s.ok()) Die("inflight Submit: " + s.ToString());
        }
      };
      auto settle = [&](uint64_t batches) {
        (*sub)->Flush();
        const auto deadline = Clock::now() + std::chrono::seconds(120);
        while ((*sub)->GetStats().batches_sent < batches &&
               Clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        malloc_trim(0);
      };
      // Warm up allocators, topics and librdkafka buffers first.
      const size_t warm = std::min<size_t>(20'000, o.inflight_jobs);
      submit(warm);
      settle(1);
      const size_t before = CurrentRss();
      const uint64_t batches_before = (*sub)->GetStats().batches_sent;
      submit(o.inflight_jobs);
      settle(batches_before + o.inflight_jobs / o.batch_max);
      const size_t after = CurrentRss();
      res.jobs = o.inflight_jobs;
      res.rss_before_mb = before / 1048576.0;
      res.rss_after_mb = after / 1048576.0;
      res.bytes_per_job = (static_cast<double>(after) - static_cast<double>(before)) /
                          static_cast<double>(o.inflight_jobs);
      res.ok = callbacks.load() == 0;  // Nothing may have ended yet.
      ssize_t w = write(fds[1], &res, sizeof res);
      (void)w;
      close(fds[1]);
      (void)(*sub)->Close(absl::Milliseconds(200));
      DeleteTopics(cluster, BusTopics(c, "bench-nobody"));
    }
    _exit(0);
  }
  close(fds[1]);
  InflightResult res;
  ssize_t got = 0;
  while (got < static_cast<ssize_t>(sizeof res)) {
    ssize_t n = read(fds[0], reinterpret_cast<char*>(&res) + got, sizeof res - got);
    if (n <= 0) break;
    got += n;
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof res)) Die("in-flight measurement failed");
  return res;
}

// ------------------------------------------------------------------ output

std::string Num(double v, int prec = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

class JsonOut {
 public:
  void Raw(const std::string& k, const std::string& v) {
    out_ << (first_ ? "{\n" : ",\n") << "  \"" << k << "\": " << v;
    first_ = false;
  }
  void Str(const std::string& k, const std::string& v) { Raw(k, "\"" + v + "\""); }
  void Int(const std::string& k, uint64_t v) { Raw(k, std::to_string(v)); }
  void Dbl(const std::string& k, std::optional<double> v, int prec = 1) {
    Raw(k, v ? Num(*v, prec) : "null");
  }
  void Array(const std::string& k, const std::vector<double>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s += ",";
      s += Num(v[i], 0);
    }
    Raw(k, s + "]");
  }
  std::string Finish() { return out_.str() + "\n}\n"; }

 private:
  std::ostringstream out_;
  bool first_ = true;
};

int Main(int argc, char** argv) {
  const Options o = ParseFlags(argc, argv);
  const bool do_throughput = o.scenario == "all" || o.scenario == "throughput";
  const bool do_idle = o.scenario == "all" || o.scenario == "latency" ||
                       o.scenario == "backlog";
  const bool do_backlog = o.scenario == "all" || o.scenario == "backlog" ||
                          o.scenario == "latency";
  const bool mock = o.broker.rfind("mock://", 0) == 0;

  // Before any thread exists (fork).
  std::optional<InflightResult> inflight;
  if (do_throughput && o.inflight_jobs > 0) {
    if (!o.quiet) std::fprintf(stderr, "[inflight] %zu jobs in flight...\n", o.inflight_jobs);
    inflight = MeasureInflight(o);
  }

  Cluster cluster(o.broker);
  // The window of unconsumed messages (raw) and of jobs in flight
  // (batchbus). The mock cluster keeps ~5 MiB per partition and drops older
  // data; keep a whole window under 4 MiB so that even one partition holds
  // it (batches of results all go to this submitter's one reply partition).
  // Per job: its data, ~100 bytes of wire format around it, and a share of
  // each message's own overhead (record batch header, batch/result header:
  // ~300 bytes, which dominate with batches of one).
  size_t window = o.window;
  const size_t per_job_on_mock = o.job_bytes + 100 + 300 / o.batch_max;
  if (mock) window = std::min(window, (4u << 20) / per_job_on_mock);
  window = std::max<size_t>(window, std::min(o.batch_max, o.window));

  std::optional<RawResult> raw;
  std::optional<ThroughputResult> tp;
  std::optional<LatencyResult> lat;
  std::optional<MixedResult> mixed;
  if (o.scenario == "mixed") {
    if (!o.quiet) std::fprintf(stderr, "[mixed] %zu jobs, %d threads...\n", o.jobs, o.threads);
    mixed = RunMixed(cluster, o, window);
  }
  if (do_throughput) {
    if (!o.quiet) std::fprintf(stderr, "[raw] %zu messages of %zu bytes, window %zu...\n",
                               o.jobs, o.job_bytes, window);
    raw = RunRaw(cluster, o, window);
    if (!o.quiet) std::fprintf(stderr, "[batchbus] %zu jobs, batch-max %zu, %d threads...\n",
                               o.jobs, o.batch_max, o.threads);
    tp = RunThroughput(cluster, o, window);
  }
  if (do_idle || do_backlog) {
    if (!o.quiet) std::fprintf(stderr, "[latency] idle%s...\n", do_backlog ? " and under backlog" : "");
    lat = RunLatency(cluster, o, do_idle, do_backlog);
  }

  const size_t lost = (tp ? tp->lost : 0) + (lat ? lat->lost : 0) +
                      (mixed ? mixed->lost : 0) +
                      (raw && raw->consumed < o.jobs ? 0 : 0);
  const uint64_t duplicates = (tp ? tp->late_results + tp->duplicate_callbacks : 0) +
                              (lat ? lat->late_results : 0);
  const double ratio = raw && tp && raw->msgs_per_s > 0 ? tp->jobs_per_s / raw->msgs_per_s : 0;
  const Percentiles rt_idle = lat ? Summarize(lat->rt_idle.total) : Percentiles{};
  const Percentiles rt_bl = lat ? Summarize(lat->rt_backlog.total) : Percentiles{};
  const Percentiles n_idle = lat ? Summarize(lat->normal_idle.total) : Percentiles{};
  const Percentiles n_bl = lat ? Summarize(lat->normal_backlog.total) : Percentiles{};
  const bool have_idle = lat && !lat->rt_idle.total.empty();
  const bool have_bl = lat && !lat->rt_backlog.total.empty();

  // Human-readable summary.
  std::printf("batchbus-bench  broker=%s  scenario=%s  jobs=%zu  job_bytes=%zu  "
              "batch_max=%zu  threads=%d  window=%zu  data=%s  codec=%s\n",
              mock ? "mock" : o.broker.c_str(), o.scenario.c_str(), o.jobs,
              o.job_bytes, o.batch_max, o.threads, window, o.data.c_str(),
              o.codec.c_str());
  if (raw) {
    std::printf("  raw librdkafka     %12.0f msgs/s   (%.3f s, %.2f us CPU/msg, %zu delivery errors)\n",
                raw->msgs_per_s, raw->seconds, raw->cpu_us_per_msg, raw->delivery_errors);
  }
  if (tp) {
    std::printf("  batchbus round trip%12.0f jobs/s   (%.3f s)  ratio %.2f\n",
                tp->jobs_per_s, tp->seconds, ratio);
    std::printf("  CPU per job        %12.2f us (whole process)", tp->cpu_us_per_job);
    if (raw && raw->cpu_us_per_msg > 0) {
      std::printf(", %.2fx the raw CPU per message", tp->cpu_us_per_job / raw->cpu_us_per_msg);
    }
    if (tp->cpu_us_per_job_excl_mock >= 0) {
      std::printf(", %.2f us without the mock broker's thread", tp->cpu_us_per_job_excl_mock);
    }
    std::printf("\n  CPU by thread      ");
    for (const auto& [g, s] : tp->thread_cpu) {
      std::printf(" %s %.2f us/job;", g.c_str(), s * 1e6 / static_cast<double>(o.jobs));
    }
    std::printf("\n  peak RSS           %12.1f MiB   batches %" PRIu64 ", result messages %" PRIu64 "\n",
                tp->rss_mb, tp->batches_sent, tp->result_messages);
  }
  if (inflight) {
    std::printf("  in flight          %12.1f B/job RSS growth with %zu jobs (%.0f -> %.0f MiB); "
                "minus job data: %.1f B\n",
                inflight->bytes_per_job, inflight->jobs, inflight->rss_before_mb,
                inflight->rss_after_mb,
                inflight->bytes_per_job - static_cast<double>(o.job_bytes));
  }
  auto line = [](const char* what, const Percentiles& p) {
    std::printf("  %-18s p50 %8.0f us  p90 %8.0f  p99 %8.0f  max %8.0f  (n=%zu)\n",
                what, p.p50, p.p90, p.p99, p.max, p.n);
  };
  auto split = [&](const char* what, const Samples& smp) {
    line(what, Summarize(smp.total));
    line("  submit->handler", Summarize(smp.inbound));
    line("  handler->callback", Summarize(smp.outbound));
  };
  if (have_idle) {
    split("realtime idle", lat->rt_idle);
    line("normal idle", n_idle);
  }
  if (have_bl) {
    split("realtime backlog", lat->rt_backlog);
    line("normal backlog", n_bl);
    std::printf("  backlog (%s)     %zu slow jobs; %zu worked during %.2f s of "
                "sampling (%zu slow jobs in all)\n",
                lat->backlog_mode.c_str(), lat->backlog_target,
                lat->backlog_done_during_sampling, lat->backlog_seconds,
                lat->backlog_jobs_total);
    if (lat->backlog_seconds > 0 && lat->free_drain_jobs_per_s > 0) {
      const double drain = lat->backlog_done_during_sampling / lat->backlog_seconds;
      std::printf("  backlog drain      %.0f jobs/s while probes flow, %.0f jobs/s "
                  "with none (%.2f)\n",
                  drain, lat->free_drain_jobs_per_s, drain / lat->free_drain_jobs_per_s);
    }
  }
  if (mixed) {
    std::printf("  mixed steady load  %12.0f jobs/s   realtime pacing %s, %zu BATCH_FAILED\n",
                mixed->jobs_per_s, mixed->pacing ? "on" : "off", mixed->batch_failed);
  }
  std::printf("  lost %zu  duplicates %" PRIu64 "\n", lost, duplicates);

  if (!o.json.empty()) {
    JsonOut j;
    j.Str("scenario", o.scenario);
    j.Str("broker", mock ? "mock" : o.broker);
    j.Int("jobs", o.jobs);
    j.Int("job_bytes", o.job_bytes);
    j.Str("data", o.data);
    j.Str("codec", o.codec);
    j.Int("batch_max", o.batch_max);
    j.Int("threads", static_cast<uint64_t>(o.threads));
    j.Int("window", window);
    auto opt = [](bool have, double v) { return have ? std::optional<double>(v) : std::nullopt; };
    j.Dbl("jobs_per_s", opt(tp.has_value(), tp ? tp->jobs_per_s : 0), 0);
    j.Dbl("raw_msgs_per_s", opt(raw.has_value(), raw ? raw->msgs_per_s : 0), 0);
    j.Dbl("ratio", opt(tp && raw, ratio), 3);
    j.Dbl("rt_p50_us", opt(have_idle, rt_idle.p50), 0);
    j.Dbl("rt_p99_us", opt(have_idle, rt_idle.p99), 0);
    j.Dbl("rt_idle_p99_us", opt(have_idle, rt_idle.p99), 0);
    j.Dbl("rt_max_us", opt(have_idle, rt_idle.max), 0);
    j.Dbl("rt_backlog_p50_us", opt(have_bl, rt_bl.p50), 0);
    j.Dbl("rt_backlog_p99_us", opt(have_bl, rt_bl.p99), 0);
    j.Dbl("rt_backlog_max_us", opt(have_bl, rt_bl.max), 0);
    j.Dbl("normal_p50_us", opt(have_idle, n_idle.p50), 0);
    j.Dbl("normal_p99_us", opt(have_idle, n_idle.p99), 0);
    j.Dbl("normal_backlog_p50_us", opt(have_bl, n_bl.p50), 0);
    j.Dbl("normal_backlog_p99_us", opt(have_bl, n_bl.p99), 0);
    if (lat) {
      const Percentiles in_idle = Summarize(lat->rt_idle.inbound);
      const Percentiles out_idle = Summarize(lat->rt_idle.outbound);
      const Percentiles in_bl = Summarize(lat->rt_backlog.inbound);
      const Percentiles out_bl = Summarize(lat->rt_backlog.outbound);
      j.Dbl("rt_inbound_p99_us", opt(in_idle.n > 0, in_idle.p99), 0);
      j.Dbl("rt_outbound_p99_us", opt(out_idle.n > 0, out_idle.p99), 0);
      j.Dbl("rt_backlog_inbound_p50_us", opt(in_bl.n > 0, in_bl.p50), 0);
      j.Dbl("rt_backlog_inbound_p99_us", opt(in_bl.n > 0, in_bl.p99), 0);
      j.Dbl("rt_backlog_outbound_p50_us", opt(out_bl.n > 0, out_bl.p50), 0);
      j.Dbl("rt_backlog_outbound_p99_us", opt(out_bl.n > 0, out_bl.p99), 0);
      j.Str("backlog_mode", lat->backlog_mode);
      j.Int("rt_backlog_samples", lat->rt_backlog.total.size());
      j.Dbl("backlog_sampling_s", lat->backlog_seconds, 2);
      j.Dbl("backlog_drain_jobs_per_s",
            lat->backlog_seconds > 0 ? lat->backlog_done_during_sampling / lat->backlog_seconds : 0, 0);
      j.Dbl("backlog_free_drain_jobs_per_s", lat->free_drain_jobs_per_s, 0);
    }
    j.Dbl("cpu_us_per_job", opt(tp.has_value(), tp ? tp->cpu_us_per_job : 0), 3);
    j.Dbl("cpu_us_per_job_excl_mock",
          opt(tp && tp->cpu_us_per_job_excl_mock >= 0, tp ? tp->cpu_us_per_job_excl_mock : 0), 3);
    j.Dbl("raw_cpu_us_per_msg", opt(raw.has_value(), raw ? raw->cpu_us_per_msg : 0), 3);
    j.Dbl("cpu_ratio_to_raw",
          opt(tp && raw && raw->cpu_us_per_msg > 0,
              tp && raw && raw->cpu_us_per_msg > 0 ? tp->cpu_us_per_job / raw->cpu_us_per_msg : 0),
          3);
    j.Dbl("rss_mb", opt(tp.has_value(), tp ? tp->rss_mb : 0), 1);
    j.Dbl("bytes_per_inflight_job",
          opt(inflight.has_value(),
              inflight ? inflight->bytes_per_job - static_cast<double>(o.job_bytes) : 0), 1);
    j.Dbl("inflight_rss_growth_per_job",
          opt(inflight.has_value(), inflight ? inflight->bytes_per_job : 0), 1);
    j.Int("inflight_jobs", inflight ? inflight->jobs : 0);
    j.Int("backlog_jobs", lat ? lat->backlog_target : 0);
    j.Int("backlog_worked_during_sampling", lat ? lat->backlog_done_during_sampling : 0);
    if (mixed) {
      j.Dbl("mixed_jobs_per_s", mixed->jobs_per_s, 0);
      j.Int("mixed_batch_failed", mixed->batch_failed);
      j.Str("realtime_pacing", mixed->pacing ? "on" : "off");
    }
    j.Int("lost", lost);
    j.Int("duplicates", duplicates);
    if (lat) {
      j.Array("samples_realtime_idle_us", lat->rt_idle.total);
      j.Array("samples_normal_idle_us", lat->normal_idle.total);
      j.Array("samples_realtime_backlog_us", lat->rt_backlog.total);
      j.Array("samples_normal_backlog_us", lat->normal_backlog.total);
    }
    std::ofstream f(o.json);
    f << j.Finish();
    if (!f) Die("could not write " + o.json);
  }

  bool failed = lost > 0;
  if (raw && raw->consumed < o.jobs) {
    std::printf("  raw baseline consumed only %zu of %zu messages\n", raw->consumed, o.jobs);
    failed = true;
  }
  if (inflight && !inflight->ok) {
    std::printf("  in-flight jobs ended early (callbacks ran)\n");
  }
  if (failed) {
    std::printf("FAILED\n");
    std::fflush(stdout);
    _exit(1);
  }
  std::printf("OK\n");
  std::fflush(stdout);
  // Skip global destructors of librdkafka-owning singletons.
  _exit(0);
}

}  // namespace
}  // namespace batchbus::bench

int main(int argc, char** argv) { return batchbus::bench::Main(argc, argv); }

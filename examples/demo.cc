// demo.cc — `scripts/demo`: a load run of batchbus on the embedded broker.
//
// One process holds a Processor (worker threads running an echo handler) and
// one Submitter shared by several submitting threads, the way a web
// application shares one Submitter among its request handlers. The threads
// submit a mix of realtime, normal and slow jobs with the callback API,
// record the latency from Submit to callback per priority, and at the end
// the demo checks that every accepted job got exactly one terminal result
// and prints a table:
//
//   jobs by terminal status per priority, latency p50/p99 per priority,
//   overall jobs/s, elapsed time, then `demo: OK` or `demo: FAILED (why)`.
//
// The exit status is non-zero when a job is missing its result, got more
// than one, ended BATCH_FAILED or PROCESSED_ERROR (this run injects no
// faults, so either means a bug), or when a Submit was refused.
//
//   batchbus-demo [--brokers URL] [--jobs N] [--threads T] [--workers W]
//                 [--mix RT,NORMAL,SLOW] [--job-bytes B] [--config FILE]
//                 [--max-wait SECONDS] [--work-us U] [--no-progress]
//
// The default broker is "mock://", librdkafka's embedded mock cluster, which
// lives inside this process: for demos and tests only (it keeps about 5 MiB
// per partition and drops older data). `--brokers kafka://127.0.0.1:9092`
// runs the same load against a real broker (see scripts/kafka).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "batchbus/batchbus.h"

namespace {

using batchbus::JobResult;
using batchbus::JobStatus;
using batchbus::Priority;

constexpr char kProcessorName[] = "demo";
constexpr char kGroup[] = "echo";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string brokers;  // Empty: whatever the config says (mock:// default).
  uint64_t jobs = 200000;
  int threads = 4;
  int workers = 1;
  int mix[3] = {5, 45, 50};  // Percent realtime, normal, slow.
  size_t job_bytes = 200;
  std::string config_file;
  double max_wait_s = 0;  // 0: derived from the batch timeouts.
  uint64_t work_us = 0;   // Simulated handler work per job (busy wait).
  bool progress = true;
};

void Usage(std::ostream& os) {
  os << "usage: batchbus-demo [options]\n"
        "  --brokers URL       mock:// (default, embedded) or kafka://host:port\n"
        "  --jobs N            jobs to submit (default 200000)\n"
        "  --threads T         submitting threads (default 4)\n"
        "  --workers W         processor worker threads (default 1)\n"
        "  --mix R,N,S         percent realtime,normal,slow (default 5,45,50)\n"
        "  --job-bytes B       size of each job's JSON data (default 200)\n"
        "  --config FILE       batchbus config file (see docs/configuration.md)\n"
        "  --max-wait S        give up waiting for results after S seconds\n"
        "                      (default: the longest batch timeout + 10 s)\n"
        "  --work-us U         handler busy-works U microseconds per job, to make\n"
        "                      the processor the bottleneck (default 0)\n"
        "  --no-progress       no progress bar on stderr\n";
}

bool ParseUint(const std::string& s, uint64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  out = v;
  return true;
}

// Returns 0 to go on, or an exit code (1 bad usage, -1 for --help).
int ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto need = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) {
        std::cerr << "batchbus-demo: " << arg << " needs a value\n";
        return false;
      }
      value = argv[++i];
      return true;
    };
    auto bad = [&]() {
      std::cerr << "batchbus-demo: bad value for " << arg << ": '" << value
                << "'\n";
      return 1;
    };
    uint64_t n = 0;
    if (arg == "-h" || arg == "--help") {
      Usage(std::cout);
      return -1;
    } else if (arg == "--no-progress") {
      o.progress = false;
    } else if (arg == "--brokers") {
      if (!need()) return 1;
      o.brokers = value;
    } else if (arg == "--config") {
      if (!need()) return 1;
      o.config_file = value;
    } else if (arg == "--jobs") {
      if (!need()) return 1;
      if (!ParseUint(value, n) || n == 0 || n > (1ull << 31)) return bad();
      o.jobs = n;
    } else if (arg == "--threads") {
      if (!need()) return 1;
      if (!ParseUint(value, n) || n == 0 || n > 256) return bad();
      o.threads = static_cast<int>(n);
    } else if (arg == "--workers") {
      if (!need()) return 1;
      if (!ParseUint(value, n) || n == 0 || n > 64) return bad();
      o.workers = static_cast<int>(n);
    } else if (arg == "--job-bytes") {
      if (!need()) return 1;
      if (!ParseUint(value, n) || n > 100'000'000) return bad();
      o.job_bytes = n;
    } else if (arg == "--work-us") {
      if (!need()) return 1;
      if (!ParseUint(value, n) || n > 10'000'000) return bad();
      o.work_us = n;
    } else if (arg == "--max-wait") {
      if (!need()) return 1;
      char* end = nullptr;
      o.max_wait_s = std::strtod(value.c_str(), &end);
      if (*end != '\0' || !(o.max_wait_s > 0)) return bad();
    } else if (arg == "--mix") {
      if (!need()) return 1;
      std::stringstream ss(value);
      std::string part;
      int k = 0, sum = 0;
      while (std::getline(ss, part, ',')) {
        if (k >= 3 || !ParseUint(part, n) || n > 100) return bad();
        o.mix[k++] = static_cast<int>(n);
        sum += static_cast<int>(n);
      }
      if (k != 3 || sum != 100) {
        std::cerr << "batchbus-demo: --mix wants three percentages that add "
                     "up to 100, e.g. 5,45,50\n";
        return 1;
      }
    } else {
      std::cerr << "batchbus-demo: unknown argument '" << argv[i] << "'\n";
      Usage(std::cerr);
      return 1;
    }
  }
  return 0;
}

// Everything the callbacks touch: one preallocated slot per job, indexed by
// the job's number, so a callback takes no lock and allocates nothing.
struct Run {
  explicit Run(uint64_t n)
      : jobs(n),
        submit_ns(new int64_t[n]()),
        latency_ns(new int64_t[n]()),
        in_submit_ns(new int64_t[n]()),
        priority(new uint8_t[n]()),
        status(new uint8_t[n]()),
        calls(new std::atomic<uint8_t>[n]),
        accepted(new bool[n]()) {
    for (uint64_t i = 0; i < n; ++i) calls[i].store(0, std::memory_order_relaxed);
  }

  const uint64_t jobs;
  std::unique_ptr<int64_t[]> submit_ns;   // Written by the submitting thread.
  std::unique_ptr<int64_t[]> latency_ns;  // Written by the callback.
  std::unique_ptr<int64_t[]> in_submit_ns;  // Time Submit took (back-pressure).
  std::unique_ptr<uint8_t[]> priority;
  std::unique_ptr<uint8_t[]> status;      // JobStatus, written by the callback.
  std::unique_ptr<std::atomic<uint8_t>[]> calls;  // Callbacks seen per job.
  std::unique_ptr<bool[]> accepted;       // Submit returned OK.

  std::atomic<uint64_t> submitted{0};  // Submit returned OK.
  std::atomic<uint64_t> rejected{0};   // Submit returned an error.
  std::atomic<uint64_t> done{0};       // Callbacks (all, duplicates too).
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> wrong_data{0};  // Echo did not carry the job number.
  std::atomic<int> submit_threads_left{0};

  // Runs on the submitter's internal thread: quick, lock-free, no
  // allocation, no system call (steady_clock is a vDSO read).
  void OnResult(uint32_t i, const JobResult& r) {
    latency_ns[i] = NowNs() - submit_ns[i];
    status[i] = static_cast<uint8_t>(r.status);
    if (calls[i].fetch_add(1, std::memory_order_relaxed) != 0) {
      duplicates.fetch_add(1, std::memory_order_relaxed);
    }
    if (r.ok() && !EchoCarries(r.data, i)) {
      wrong_data.fetch_add(1, std::memory_order_relaxed);
    }
    done.fetch_add(1, std::memory_order_release);
  }

  // The echo handler returns the job's data, which starts {"i":<number>.
  static bool EchoCarries(const std::string& data, uint64_t i) {
    constexpr std::string_view kPrefix = "{\"i\":";
    if (data.compare(0, kPrefix.size(), kPrefix) != 0) return false;
    uint64_t v = 0;
    size_t p = kPrefix.size();
    if (p >= data.size()) return false;
    for (; p < data.size() && data[p] >= '0' && data[p] <= '9'; ++p) {
      v = v * 10 + static_cast<uint64_t>(data[p] - '0');
    }
    return v == i;
  }
};

// Exactly mix[p] of every 100 consecutive jobs get priority p, spread out
// (37 is coprime to 100, so i*37 % 100 visits 0..99 once per 100 jobs).
Priority PriorityOf(uint64_t i, const int mix[3]) {
  int r = static_cast<int>((i * 37) % 100);
  if (r < mix[0]) return Priority::kRealtime;
  if (r < mix[0] + mix[1]) return Priority::kNormal;
  return Priority::kSlow;
}

// {"i":123,"p":"slow","pad":"xxxx"} padded to `bytes` (at least the
// unpadded object).
void MakeData(uint64_t i, Priority p, size_t bytes, std::string& out) {
  out.clear();
  out += "{\"i\":";
  out += std::to_string(i);
  out += ",\"p\":\"";
  out += std::string(batchbus::PriorityName(p));
  out += "\",\"pad\":\"";
  size_t fixed = out.size() + 2;  // Closing quote and brace.
  if (bytes > fixed) out.append(bytes - fixed, 'x');
  out += "\"}";
}

void SubmitRange(batchbus::Submitter& submitter, Run& run, const Options& o,
                 uint64_t begin, uint64_t end) {
  batchbus::Job job;
  job.processor = kProcessorName;
  job.group = kGroup;
  std::string data;
  for (uint64_t i = begin; i < end; ++i) {
    Priority p = PriorityOf(i, o.mix);
    MakeData(i, p, o.job_bytes, data);
    job.id = batchbus::JobId();  // Zero: Submit assigns a fresh random id.
    job.priority = p;
    job.data = data;
    run.priority[i] = static_cast<uint8_t>(p);
    run.submit_ns[i] = NowNs();
    Run* r = &run;
    const uint32_t idx = static_cast<uint32_t>(i);
    // Two words of capture: fits std::function's inline buffer, so no
    // allocation per job for the callback either.
    absl::Status s = submitter.Submit(
        job, [r, idx](const JobResult& result) { r->OnResult(idx, result); });
    run.in_submit_ns[i] = NowNs() - run.submit_ns[i];
    if (s.ok()) {
      run.accepted[i] = true;
      run.submitted.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (run.rejected.fetch_add(1, std::memory_order_relaxed) < 5) {
        std::cerr << "\nbatchbus-demo: Submit refused job " << i << ": " << s
                  << "\n";
      }
    }
  }
  run.submit_threads_left.fetch_sub(1, std::memory_order_release);
}

std::string WithCommas(uint64_t v) {
  std::string s = std::to_string(v);
  for (int p = static_cast<int>(s.size()) - 3; p > 0; p -= 3) s.insert(p, ",");
  return s;
}

void DrawProgress(const Run& run, bool tty, double elapsed_s, double rate,
                  bool final_line) {
  uint64_t done = run.done.load(std::memory_order_relaxed);
  uint64_t total = run.jobs;
  double frac = total ? static_cast<double>(done) / total : 1.0;
  if (frac > 1) frac = 1;
  char line[200];
  if (tty) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::snprintf(line, sizeof line,
                  "\r[%s] %" PRIu64 "/%" PRIu64 " jobs %5.1f%%  %9.0f jobs/s  %5.1f s\033[K",
                  bar.c_str(), done, total, frac * 100, rate, elapsed_s);
    std::cerr << line << (final_line ? "\n" : "") << std::flush;
  } else {
    std::snprintf(line, sizeof line,
                  "progress: %" PRIu64 "/%" PRIu64 " jobs (%.1f%%), %.0f jobs/s, %.1f s\n",
                  done, total, frac * 100, rate, elapsed_s);
    std::cerr << line << std::flush;
  }
}

double Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = ParseArgs(argc, argv, o); rc != 0) return rc < 0 ? 0 : 2;

  // Defaults, then the file (--config, else $BATCHBUS_CONFIG), then
  // BATCHBUS_* environment variables; --brokers wins over all of them.
  auto loaded = batchbus::Config::Load(o.config_file);
  if (!loaded.ok()) {
    std::cerr << "batchbus-demo: " << loaded.status() << "\n";
    return 2;
  }
  batchbus::Config config = std::move(*loaded);
  if (!o.brokers.empty()) {
    if (absl::Status s = config.Set("brokers", o.brokers); !s.ok()) {
      std::cerr << "batchbus-demo: --brokers: " << s << "\n";
      return 2;
    }
  }
  // Back-pressure. The submitting threads produce jobs far faster than one
  // echo worker answers them, and Submit only pushes back once
  // max_inflight_jobs jobs (default 1,000,000) or max_inflight_bytes (default
  // 512 MiB) await their results: in effect never in this run. The backlog
  // would then pile up in the broker, and the embedded mock cluster keeps
  // only about 5 MiB (and 100,000 messages) per partition, dropping the
  // oldest. Jobs would be dropped before the processor read them, or results
  // before this submitter read them from its single reply partition (all
  // results for one submitter share it), and those jobs would end
  // BATCH_FAILED at their batch timeout. 20,000 jobs of 200 B is already
  // ~5.3 MB of results, right at the limit, so the bytes are capped too.
  // Capping what is in flight makes Submit wait (BackpressurePolicy::kWait)
  // instead and keeps every partition's unread backlog to a few MiB. A config
  // file or BATCHBUS_MAX_INFLIGHT_JOBS / _BYTES that sets another value is
  // respected.
  const batchbus::Config defaults;
  if (config.max_inflight_jobs == defaults.max_inflight_jobs) {
    config.max_inflight_jobs = 20000;
  }
  if (config.max_inflight_bytes == defaults.max_inflight_bytes) {
    config.max_inflight_bytes =
        std::max<size_t>(2 * 1024 * 1024, config.max_message_bytes);
  }
  if (absl::Status s = config.Validate(); !s.ok()) {
    std::cerr << "batchbus-demo: " << s << "\n";
    return 2;
  }

  const bool tty = isatty(STDERR_FILENO) != 0;
  std::cout << "batchbus demo: " << WithCommas(o.jobs) << " jobs of "
            << o.job_bytes << " B (" << o.mix[0] << "% realtime, " << o.mix[1]
            << "% normal, " << o.mix[2] << "% slow), " << o.threads
            << " submitting thread(s), " << o.workers
            << " worker thread(s), brokers " << config.brokers
            << ", max_inflight_jobs " << config.max_inflight_jobs
            << ", max_inflight_bytes " << config.max_inflight_bytes << "\n"
            << std::flush;

  // --- The worker side: a processor answering "echo" jobs with their data.
  const int64_t t_setup = NowNs();
  auto processor = batchbus::Processor::Create(config, kProcessorName);
  if (!processor.ok()) {
    std::cerr << "batchbus-demo: Processor::Create: " << processor.status()
              << "\n";
    std::cout << "demo: FAILED (processor: " << processor.status() << ")\n";
    return 1;
  }
  absl::flat_hash_map<std::string, batchbus::Processor::Handler> handlers = {
      {kGroup, [work_ns = static_cast<int64_t>(o.work_us) * 1000](
                   batchbus::Task& task) {
         if (work_ns > 0) {
           const int64_t until = NowNs() + work_ns;
           while (NowNs() < until) {
           }
         }
         (void)task.Complete(task.data());
       }}};
  std::vector<std::thread> workers;
  std::vector<absl::Status> worker_status(o.workers);
  for (int w = 0; w < o.workers; ++w) {
    workers.emplace_back([&, w] { worker_status[w] = (*processor)->Run(handlers); });
  }
  auto stop_workers = [&] {
    (*processor)->Shutdown();
    for (auto& t : workers) t.join();
    workers.clear();
  };

  // --- The caller side: one submitter shared by all submitting threads.
  auto submitter = batchbus::Submitter::Create(config);
  if (!submitter.ok()) {
    std::cerr << "batchbus-demo: Submitter::Create: " << submitter.status()
              << "\n";
    stop_workers();
    std::cout << "demo: FAILED (submitter: " << submitter.status() << ")\n";
    return 1;
  }

  // Warm-up: one realtime round trip, so that the processor has joined its
  // consumer group (a few seconds on a fresh cluster) before the clock
  // starts. Not counted below.
  {
    batchbus::Job warm;
    warm.processor = kProcessorName;
    warm.group = kGroup;
    warm.priority = Priority::kRealtime;
    warm.data = "{\"i\":0,\"warm-up\":true}";
    auto r = (*submitter)->SubmitAndWait(warm, absl::Seconds(60));
    if (!r.ok() || !r->ok()) {
      std::string why = !r.ok() ? r.status().ToString()
                                : std::string(batchbus::JobStatusName(r->status)) +
                                      " " + r->error;
      std::cout << "demo: FAILED (warm-up job: " << why << ")\n";
      (void)(*submitter)->Close(absl::Seconds(5));
      stop_workers();
      (void)(*processor)->Close(absl::Seconds(5));
      return 1;
    }
  }
  const double setup_s = static_cast<double>(NowNs() - t_setup) / 1e9;
  std::cout << "ready after " << std::fixed;
  std::cout.precision(1);
  std::cout << setup_s << " s (cluster, topics, consumer group, one round trip)\n"
            << std::flush;

  // --- The run.
  Run run(o.jobs);
  run.submit_threads_left.store(o.threads);
  const int64_t t0 = NowNs();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    uint64_t begin = o.jobs * static_cast<uint64_t>(t) / o.threads;
    uint64_t end = o.jobs * static_cast<uint64_t>(t + 1) / o.threads;
    threads.emplace_back(SubmitRange, std::ref(**submitter), std::ref(run),
                         std::cref(o), begin, end);
  }

  // Wait for every accepted job's callback. The library promises a terminal
  // result within the priority's batch timeout; wait that long (plus a
  // margin) after the last Submit, or --max-wait.
  absl::Duration longest_timeout;
  for (Priority p : batchbus::kAllPriorities) {
    longest_timeout = std::max(longest_timeout, config.For(p).batch_timeout);
  }
  const double max_wait_s = o.max_wait_s > 0
                                ? o.max_wait_s
                                : absl::ToDoubleSeconds(longest_timeout) + 10;
  const auto tick = std::chrono::milliseconds(tty ? 100 : 1000);
  int64_t last_draw = t0;
  uint64_t last_done = 0;
  double rate = 0;
  int64_t submit_end = 0;  // When the last Submit returned.
  bool gave_up = false;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int64_t now = NowNs();
    bool submitting = run.submit_threads_left.load(std::memory_order_acquire) > 0;
    if (!submitting && submit_end == 0) submit_end = now;
    uint64_t done = run.done.load(std::memory_order_acquire);
    bool finished =
        !submitting && done >= run.submitted.load(std::memory_order_relaxed);
    if (o.progress &&
        (finished || now - last_draw >=
                         std::chrono::duration_cast<std::chrono::nanoseconds>(tick)
                             .count())) {
      double dt = static_cast<double>(now - last_draw) / 1e9;
      if (dt > 0) rate = static_cast<double>(done - last_done) / dt;
      if (finished) rate = static_cast<double>(done) / (static_cast<double>(now - t0) / 1e9);
      DrawProgress(run, tty, static_cast<double>(now - t0) / 1e9, rate, finished && tty);
      last_draw = now;
      last_done = done;
    }
    if (finished) break;
    if (submit_end != 0 &&
        static_cast<double>(now - submit_end) / 1e9 > max_wait_s) {
      gave_up = true;
      if (o.progress && tty) std::cerr << "\n";
      std::cerr << "batchbus-demo: gave up waiting for results after "
                << max_wait_s << " s\n";
      break;
    }
  }
  for (auto& t : threads) t.join();
  const int64_t t1 = NowNs();
  const double elapsed_s = static_cast<double>(t1 - t0) / 1e9;

  // Close the submitter (ends anything still pending as BATCH_FAILED, which
  // only happens when we gave up), then the processor.
  absl::Status submitter_close = (*submitter)->Close(absl::Seconds(10));
  const batchbus::Submitter::Stats sstats = (*submitter)->GetStats();
  stop_workers();
  absl::Status processor_close = (*processor)->Close(absl::Seconds(10));
  const batchbus::Processor::Stats pstats = (*processor)->GetStats();

  // --- Tally. Reading the callbacks' writes: `done` was incremented with
  // release after each write, and Close() joined the submitter's thread.
  uint64_t by[3][5] = {};  // [priority][JobStatus]
  uint64_t missing = 0, accepted = 0;
  std::vector<int64_t> lat[3], in_submit[3];
  for (auto& v : lat) v.reserve(o.jobs / 2);
  for (auto& v : in_submit) v.reserve(o.jobs / 2);
  for (uint64_t i = 0; i < o.jobs; ++i) {
    if (!run.accepted[i]) continue;
    ++accepted;
    int p = run.priority[i];
    uint8_t calls = run.calls[i].load(std::memory_order_acquire);
    if (calls == 0) {
      ++missing;
      continue;
    }
    int s = run.status[i];
    if (s < 5) ++by[p][s];
    if (s == static_cast<int>(JobStatus::kProcessedOk)) lat[p].push_back(run.latency_ns[i]);
    in_submit[p].push_back(run.in_submit_ns[i]);
  }

  std::cout << "\n";
  char row[256];
  // Latency: from calling Submit to the callback, as the caller sees it
  // (PROCESSED_OK jobs). "in Submit": the part spent waiting inside Submit
  // for back-pressure room.
  std::snprintf(row, sizeof row, "%-9s %9s %13s %16s %13s %9s %9s %14s\n",
                "priority", "jobs", "PROCESSED_OK", "PROCESSED_ERROR",
                "BATCH_FAILED", "p50 ms", "p99 ms", "in Submit p99");
  std::cout << row;
  uint64_t total[5] = {};
  uint64_t total_jobs = 0;
  for (Priority p : batchbus::kAllPriorities) {
    int pi = static_cast<int>(p);
    uint64_t n = by[pi][2] + by[pi][3] + by[pi][4];
    total_jobs += n;
    for (int s = 2; s < 5; ++s) total[s] += by[pi][s];
    std::string name(batchbus::PriorityName(p));
    double p50 = Percentile(lat[pi], 0.50);
    double p99 = Percentile(lat[pi], 0.99);
    double wait99 = Percentile(in_submit[pi], 0.99);
    std::snprintf(row, sizeof row, "%-9s %9" PRIu64 " %13" PRIu64 " %16" PRIu64
                  " %13" PRIu64 " %9.1f %9.1f %14.1f\n",
                  name.c_str(), n, by[pi][2], by[pi][3], by[pi][4], p50, p99,
                  wait99);
    std::cout << row;
  }
  std::snprintf(row, sizeof row, "%-9s %9" PRIu64 " %13" PRIu64 " %16" PRIu64
                " %13" PRIu64 "\n",
                "total", total_jobs, total[2], total[3], total[4]);
  std::cout << row << "\n";

  const double submit_s =
      static_cast<double>((submit_end ? submit_end : t1) - t0) / 1e9;
  std::cout << "elapsed      " << elapsed_s << " s (submitting took " << submit_s
            << " s)\n";
  std::cout << "throughput   " << WithCommas(static_cast<uint64_t>(
                                      static_cast<double>(total_jobs) / elapsed_s))
            << " jobs/s\n";
  std::cout << "submitter    " << sstats.submitted << " submitted (1 of them the warm-up), "
            << sstats.rejected << " rejected, " << sstats.batches_sent
            << " batches, " << sstats.late_results << " late results\n";
  std::cout << "processor    " << pstats.handed_out << " handed out, "
            << pstats.batches_received << " batches received, "
            << pstats.batches_committed << " committed, "
            << pstats.result_messages << " result messages\n";

  // --- Verdict.
  std::vector<std::string> why;
  auto add = [&](uint64_t n, const std::string& what) {
    if (n) why.push_back(WithCommas(n) + " " + what);
  };
  add(run.rejected.load(), "submits refused");
  add(missing, "jobs without a result");
  add(run.duplicates.load(), "duplicate callbacks");
  add(total[3], "PROCESSED_ERROR");
  add(total[4], "BATCH_FAILED");
  add(run.wrong_data.load(), "results with another job's data");
  if (gave_up) why.push_back("timed out waiting for results");
  for (int w = 0; w < static_cast<int>(worker_status.size()); ++w) {
    if (!worker_status[w].ok()) {
      why.push_back("worker " + std::to_string(w) + ": " +
                    worker_status[w].ToString());
    }
  }
  if (!processor_close.ok()) {
    why.push_back("processor Close: " + processor_close.ToString());
  }
  // Submitter Close returns DeadlineExceeded only when it had to fail jobs;
  // those are already counted as BATCH_FAILED above.
  if (!submitter_close.ok() && !absl::IsDeadlineExceeded(submitter_close)) {
    why.push_back("submitter Close: " + submitter_close.ToString());
  }
  if (accepted + run.rejected.load() != o.jobs) why.push_back("lost count of jobs");
  if (why.empty()) {
    std::cout << "demo: OK\n";
    return 0;
  }
  std::string all;
  for (size_t i = 0; i < why.size(); ++i) all += (i ? ", " : "") + why[i];
  std::cout << "demo: FAILED (" << all << ")\n";
  return 1;
}

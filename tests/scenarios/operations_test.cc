// What operators and integrators depend on, end to end: the metrics text a
// scrape of Config::metrics_port returns while jobs flow (valid by promtool
// and by prometheus_client's parser, and equal to the Stats once jobs are
// done), the W3C trace context carried from Job to Task to JobResult, and
// the log sink. On a mock cluster per test (label mock) and on the real
// broker (label kafka).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "batchbus/log.h"
#include "batchbus/metrics.h"
#include "support/raw_submitter.h"
#include "support/test_cluster.h"

namespace batchbus::testing {
namespace {

// A port nothing listens on right now.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// GET `path` from 127.0.0.1:`port`: the status line and the body.
std::pair<std::string, std::string> HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {"connect failed", ""};
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) response.append(buf, n);
  ::close(fd);
  const size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) return {response, ""};
  return {response.substr(0, response.find("\r\n")),
          response.substr(head_end + 4)};
}

// Runs `command` with `input` on stdin; its exit status and stdout.
std::pair<int, std::string> RunWithInput(const std::string& command,
                                const std::string& input) {
  char path[] = "/tmp/batchbus-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  (void)!::write(fd, input.data(), input.size());
  ::close(fd);
  FILE* pipe = ::popen((command + " < " + path + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  ::unlink(path);
  return {WEXITSTATUS(status), out};
}

// Sample lines of tests/support/prometheus.py, by `name{labels}`.
std::map<std::string, double> Parse(const std::string& text) {
  auto [status, out] =
      RunWithInput("/usr/bin/python3 " BATCHBUS_TEST_SOURCE_DIR "/support/prometheus.py",
          text);
  EXPECT_EQ(status, 0) << out;
  std::map<std::string, double> samples;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t sp = line.rfind(' ');
    samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return samples;
}

class OperationsTest : public ClusterTest {};

TEST_F(OperationsTest, MetricsScrapedWhileJobsFlowAreValidAndMatchStats) {
  config_.metrics_port = FreePort();
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  WarmUpProcessor(config_, **processor);

  constexpr int kJobs = 3000;
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop.load()) {
      auto task = (*processor)->Next(absl::Milliseconds(100));
      if (!task.ok()) continue;
      if (task->data() == "\"fail\"") {
        (void)task->Fail("asked to fail");
      } else {
        (void)task->Complete(task->data());
      }
    }
  });
  std::atomic<int> done{0};
  for (int i = 0; i < kJobs; ++i) {
    Job job;
    job.processor = "app";
    job.group = i % 3 == 0 ? "payments" : "reports";
    job.priority = kAllPriorities[i % 3];
    job.data = i % 100 == 0 ? "\"fail\"" : "{\"n\":" + std::to_string(i) + "}";
    ASSERT_TRUE(submitter->Submit(job, [&](const JobResult&) { ++done; }).ok());
    if (i == kJobs / 2) {
      // Mid-flow: the scrape is well-formed by both of Prometheus' checkers.
      auto [status_line, body] = HttpGet(config_.metrics_port, "/metrics");
      ASSERT_NE(status_line.find("200"), std::string::npos) << status_line;
      auto [rc, out] = RunWithInput("promtool check metrics", body);
      EXPECT_EQ(rc, 0) << out << "\n" << body;
      EXPECT_FALSE(Parse(body).empty());
    }
  }
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (done.load() < kJobs && absl::Now() < until) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(done.load(), kJobs);
  // Results and commits are counted once their messages are acknowledged.
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  worker.join();

  auto [status_line, body] = HttpGet(config_.metrics_port, "/metrics");
  ASSERT_NE(status_line.find("200"), std::string::npos) << status_line;
  auto [rc, out] = RunWithInput("promtool check metrics", body);
  EXPECT_EQ(rc, 0) << out;
  const auto m = Parse(body);
  const Submitter::Stats s = submitter->GetStats();
  const Processor::Stats p = (*processor)->GetStats();
  const std::string inst = "instance=" + submitter->instance_id();
  EXPECT_EQ(m.at("batchbus_submitter_submitted_total{" + inst + "}"), s.submitted);
  EXPECT_EQ(m.at("batchbus_submitter_processed_ok_total{" + inst + "}"), s.processed_ok);
  EXPECT_EQ(m.at("batchbus_submitter_processed_error_total{" + inst + "}"),
            s.processed_error);
  EXPECT_EQ(m.at("batchbus_submitter_batches_sent_total{" + inst + "}"), s.batches_sent);
  EXPECT_EQ(m.at("batchbus_submitter_inflight_jobs{" + inst + "}"), 0);
  EXPECT_EQ(s.processed_error, kJobs / 100u);
  EXPECT_EQ(m.at("batchbus_processor_handed_out_total{processor=app}"), p.handed_out);
  EXPECT_EQ(m.at("batchbus_processor_processed_ok_total{processor=app}"), p.processed_ok);
  EXPECT_EQ(m.at("batchbus_processor_batches_committed_total{processor=app}"),
            p.batches_committed);
  // Round trips: every job of ours ended once, in its priority's histogram.
  double round_trips = 0;
  for (Priority pr : kAllPriorities) {
    const std::string labels =
        inst + ",priority=" + std::string(PriorityName(pr)) + "}";
    round_trips += m.at("batchbus_submitter_round_trip_seconds_count{" + labels);
    // The parser's labels come sorted: instance, le, priority.
    EXPECT_EQ(m.at("batchbus_submitter_round_trip_seconds_bucket{" + inst +
                   ",le=+Inf,priority=" + std::string(PriorityName(pr)) + "}"),
              m.at("batchbus_submitter_round_trip_seconds_count{" + labels));
  }
  EXPECT_EQ(round_trips, kJobs);
  // Handler time per group: payments and reports, plus the warm-up's echo.
  EXPECT_EQ(m.at("batchbus_processor_handler_seconds_count{group=payments,processor=app}"),
            kJobs / 3);
  EXPECT_EQ(m.at("batchbus_processor_handler_seconds_count{group=reports,processor=app}"),
            kJobs - kJobs / 3);
  EXPECT_EQ(m.count("batchbus_processor_ready_jobs{priority=slow,processor=app}"), 1u);
  // Only /metrics is served.
  EXPECT_NE(HttpGet(config_.metrics_port, "/").first.find("404"), std::string::npos);
}

TEST_F(OperationsTest, SecondListenerOnATakenPortFailsCreateWithTheCause) {
  config_.metrics_port = FreePort();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(config_.metrics_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  auto submitter = Submitter::Create(config_);
  ::close(fd);
  ASSERT_FALSE(submitter.ok());
  EXPECT_TRUE(absl::IsUnavailable(submitter.status())) << submitter.status();
  EXPECT_NE(submitter.status().message().find("metrics listener"), std::string::npos)
      << submitter.status();
}

TEST_F(OperationsTest, TraceContextTravelsFromJobToTaskToJobResult) {
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  WarmUpProcessor(config_, **processor);
  Job job;
  job.processor = "app";
  job.group = "echo";
  job.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  job.tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  auto future = submitter->SubmitAsync(job);
  ASSERT_TRUE(future.ok()) << future.status();
  auto task = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->traceparent(), job.traceparent);
  EXPECT_EQ(task->tracestate(), job.tracestate);
  ASSERT_TRUE(task->Complete().ok());
  const JobResult result = future->get();
  EXPECT_EQ(result.status, JobStatus::kProcessedOk);
  EXPECT_EQ(result.traceparent, job.traceparent);
  EXPECT_EQ(result.tracestate, job.tracestate);

  // A job without one has none on either side.
  Job plain;
  plain.processor = "app";
  plain.group = "echo";
  auto plain_future = submitter->SubmitAsync(plain);
  ASSERT_TRUE(plain_future.ok());
  auto plain_task = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(plain_task.ok());
  EXPECT_TRUE(plain_task->traceparent().empty());
  ASSERT_TRUE(plain_task->Complete().ok());
  EXPECT_TRUE(plain_future->get().traceparent.empty());
}

TEST_F(OperationsTest, MalformedTraceContextIsRefusedAtSubmit) {
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  for (const std::string bad :
       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // short
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) {
    Job job;
    job.processor = "app";
    job.group = "echo";
    job.traceparent = bad;
    const absl::Status s = submitter->Submit(job, [](const JobResult&) {});
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad << ": " << s;
    EXPECT_NE(s.message().find("traceparent"), std::string::npos) << s;
  }
  Job state_only;
  state_only.processor = "app";
  state_only.group = "echo";
  state_only.tracestate = "a=b";
  EXPECT_TRUE(absl::IsInvalidArgument(
      submitter->Submit(state_only, [](const JobResult&) {})));
}

TEST_F(OperationsTest, LogSinkGetsComponentsAndNeverASecret) {
  struct Line {
    LogLevel level;
    std::string component, text;
  };
  std::mutex mu;
  std::vector<Line> lines;
  SetLogSink([&](const LogRecord& r) {
    std::string text(r.message);
    for (size_t i = 0; i < r.num_fields; ++i) {
      text += " " + std::string(r.fields[i].key) + "=" +
              std::string(r.fields[i].value);
    }
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back({r.level, std::string(r.component), text});
  });
  const LogLevel before = GetLogLevel();
  SetLogLevel(LogLevel::kDebug);
  const std::string secret = "s3cr3t-Passw0rd-for-the-test";
  Config config = config_;
  // Secrets the cluster does not use (PLAINTEXT), with librdkafka's debug
  // lines on, then a property librdkafka refuses.
  config.kafka["debug"] = "generic,security";
  config.kafka["sasl.password"] = secret;
  config.kafka["sasl.username"] = "alice";
  config.kafka["ssl.key.password"] = secret;
  {
    auto processor = Processor::Create(config, "app");
    ASSERT_TRUE(processor.ok()) << processor.status();
    auto submitter = NewSubmitter(config);
    ASSERT_NE(submitter, nullptr);
    WarmUpProcessor(config, **processor);
  }
  config.kafka.erase("debug");
  config.kafka["security.protocol"] = "not-a-protocol";
  auto refused = Submitter::Create(config);
  SetLogLevel(before);
  SetLogSink(nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().ToString().find(secret), std::string::npos);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(lines.empty());
  bool saw_processor = false, saw_librdkafka = false;
  for (const Line& l : lines) {
    EXPECT_EQ(l.text.find(secret), std::string::npos) << l.component << ": " << l.text;
    saw_processor |= l.component == "processor";
    saw_librdkafka |= l.component == "librdkafka";
  }
  EXPECT_TRUE(saw_processor);
  EXPECT_TRUE(saw_librdkafka) << "librdkafka's lines bypass the sink";
}

}  // namespace
}  // namespace batchbus::testing

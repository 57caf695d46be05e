// webstore.cc — the specification's payment webstore as an HTTP server
// (cpp-httplib) embedding one Submitter, with a live dashboard.
//
//   batchbus-webstore [--port 8080] [--address 127.0.0.1] [--config FILE]
//                     [--with-local-processor] [--threads N]
//
//   POST /api/payment[?priority=P]  submits a payment job (realtime unless
//                                   P says otherwise) and answers with its
//                                   result within the request.
//   POST /api/jobs[?priority=P&group=G]  202 with the job's id; the job runs
//                                   in the background (default: normal,
//                                   group payment-submit).
//   GET  /api/jobs/{id}             the job's state (Submitter::GetJobState).
//   GET  /metrics                   Prometheus text (batchbus/metrics.h).
//   GET  /api/stats                 the dashboard's data, as JSON.
//   GET  /                          the dashboard (dashboard.html).
//
// An incoming `traceparent` (and `tracestate`) header travels with the job
// to the processor and back. The config is the library's (FILE, else
// $BATCHBUS_CONFIG, then BATCHBUS_* variables). The jobs are the payments
// example's ("payment-submit" for processor "payments"): run
// payments_processor against the same broker, or pass
// --with-local-processor to serve them in this process (the only way on
// the embedded mock:// cluster). SIGTERM or SIGINT stops it: the listener
// closes, then the submitter, each bounded.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "batchbus/batchbus.h"
#include "batchbus/metrics.h"
#include "dashboard_html.h"
#include "dead_letter_count.h"
#include "httplib.h"
#include "live_stats.h"
#include "payments/payments.h"

namespace {

constexpr char kJson[] = "application/json";

volatile sig_atomic_t g_stop = 0;
extern "C" void OnStop(int) { g_stop = 1; }

struct Options {
  std::string address = "127.0.0.1";
  int port = 8080;
  std::string config_file;
  bool local_processor = false;
  int threads = 64;
};

int Usage() {
  std::cerr << "usage: batchbus-webstore [--port N] [--address A] "
               "[--config FILE] [--with-local-processor] [--threads N]\n";
  return 2;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void Reply(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, kJson);
}

void ReplyError(httplib::Response& res, int status, absl::string_view error) {
  Reply(res, status,
        absl::StrCat("{\"error\":", Quote(std::string(error)), "}"));
}

// The HTTP status for a Submit that was refused.
int StatusForRefusal(const absl::Status& s) {
  if (absl::IsInvalidArgument(s)) return 400;
  if (absl::IsResourceExhausted(s)) return 503;  // Back-pressure: retry.
  return 500;
}

// The HTTP status for a job's end: 200 when processed, 422 when the
// processor refused it, 504 when no processor answered in time.
int StatusForResult(const batchbus::JobResult& r) {
  switch (r.status) {
    case batchbus::JobStatus::kProcessedOk: return 200;
    case batchbus::JobStatus::kProcessedError: return 422;
    default: return 504;
  }
}

std::string ResultJson(const batchbus::JobResult& r) {
  std::string out = absl::StrCat(
      "{\"id\":\"", r.job_id.ToString(), "\",\"status\":\"",
      std::string(batchbus::JobStatusName(r.status)), "\",\"priority\":\"",
      std::string(batchbus::PriorityName(r.priority)), "\",\"attempts\":", r.attempts);
  if (!r.data.empty()) absl::StrAppend(&out, ",\"data\":", r.data);
  if (!r.error.empty()) absl::StrAppend(&out, ",\"error\":", Quote(r.error));
  return out + "}";
}

class Webstore {
 public:
  Webstore(batchbus::Submitter& submitter, batchbus::Processor* processor)
      : submitter_(submitter), processor_(processor) {}

  void Routes(httplib::Server& server) {
    server.Post("/api/payment", [this](const httplib::Request& req,
                                       httplib::Response& res) {
      Payment(req, res);
    });
    server.Post("/api/jobs", [this](const httplib::Request& req,
                                    httplib::Response& res) {
      Enqueue(req, res);
    });
    server.Get(R"(/api/jobs/([^/]+))", [this](const httplib::Request& req,
                                              httplib::Response& res) {
      State(req.matches[1].str(), res);
    });
    server.Get("/metrics", [this](const httplib::Request&,
                                  httplib::Response& res) {
      std::string out;
      if (processor_ != nullptr) {
        batchbus::WriteMetrics(submitter_, *processor_, out);
      } else {
        batchbus::WriteMetrics(submitter_, out);
      }
      res.set_content(out, "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/api/stats", [this](const httplib::Request&,
                                    httplib::Response& res) {
      res.set_content(StatsJson(), kJson);
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(webstore::kDashboardHtml, "text/html; charset=utf-8");
    });
  }

  // Once a second: closes the dashboard's current second.
  void Tick() { live_.Tick(); }
  // The dead letter count read from the broker (for a remote processor).
  void SetDeadLetters(uint64_t n) { dead_letters_.store(n); }

 private:
  // A job from the request: its priority (query `priority`), group, data
  // (the body) and trace context (headers).
  absl::StatusOr<batchbus::Job> JobFrom(const httplib::Request& req,
                                        batchbus::Priority fallback) {
    batchbus::Job job;
    job.processor = payments::kProcessor;
    job.group = req.has_param("group") ? req.get_param_value("group")
                                       : payments::kSubmitGroup;
    job.priority = fallback;
    if (req.has_param("priority")) {
      auto p = batchbus::ParsePriority(req.get_param_value("priority"));
      if (!p) {
        return absl::InvalidArgumentError(
            "priority must be realtime, normal or slow");
      }
      job.priority = *p;
    }
    job.data = req.body;
    job.traceparent = req.get_header_value("traceparent");
    job.tracestate = req.get_header_value("tracestate");
    return job;
  }

  // POST /api/payment: the job's result within the request.
  void Payment(const httplib::Request& req, httplib::Response& res) {
    auto job = JobFrom(req, batchbus::Priority::kRealtime);
    if (!job.ok()) return ReplyError(res, 400, job.status().message());
    const batchbus::Priority priority = job->priority;
    // The library's own bound: a job ends by its batch timeout at the latest.
    const absl::Duration wait =
        submitter_.config().For(priority).batch_timeout + absl::Seconds(5);
    const absl::Time start = absl::Now();
    absl::StatusOr<batchbus::JobResult> r =
        submitter_.SubmitAndWait(*std::move(job), wait);
    if (!r.ok()) {
      if (absl::IsDeadlineExceeded(r.status())) {
        live_.Record(priority, absl::Now() - start, false);
        return ReplyError(res, 504, r.status().message());
      }
      return ReplyError(res, StatusForRefusal(r.status()), r.status().message());
    }
    live_.Record(priority, absl::Now() - start, r->ok());
    if (!r->traceparent.empty()) res.set_header("traceparent", r->traceparent);
    Reply(res, StatusForResult(*r), ResultJson(*r));
  }

  // POST /api/jobs: 202 and the job's id; the result is kept for
  // GET /api/jobs/{id}.
  void Enqueue(const httplib::Request& req, httplib::Response& res) {
    auto job = JobFrom(req, batchbus::Priority::kNormal);
    if (!job.ok()) return ReplyError(res, 400, job.status().message());
    const batchbus::Priority priority = job->priority;
    const absl::Time start = absl::Now();
    absl::Status s = submitter_.Submit(
        *job, [this, priority, start](const batchbus::JobResult& r) {
          live_.Record(priority, absl::Now() - start, r.ok());
        });
    if (!s.ok()) return ReplyError(res, StatusForRefusal(s), s.message());
    const std::string id = job->id.ToString();
    res.set_header("Location", "/api/jobs/" + id);
    Reply(res, 202,
          absl::StrCat("{\"id\":\"", id, "\",\"status_url\":\"/api/jobs/", id,
                       "\"}"));
  }

  // GET /api/jobs/{id}
  void State(const std::string& text, httplib::Response& res) {
    std::optional<batchbus::JobId> id = batchbus::JobId::FromString(text);
    if (!id) return ReplyError(res, 400, "not a job id: " + text);
    absl::StatusOr<batchbus::Submitter::JobState> st =
        submitter_.GetJobState(*id);
    if (absl::IsNotFound(st.status())) {
      return ReplyError(res, 404, st.status().message());
    }
    if (!st.ok()) return ReplyError(res, 500, st.status().message());
    static constexpr const char* kPhases[] = {"submitted", "started",
                                              "progress", "ended"};
    std::string out = absl::StrCat("{\"id\":\"", text, "\",\"phase\":\"",
                                   kPhases[st->phase],
                                   "\",\"attempt\":", st->attempt);
    if (!st->progress.empty()) absl::StrAppend(&out, ",\"progress\":", st->progress);
    if (st->phase == batchbus::Submitter::JobState::kEnded) {
      absl::StrAppend(&out, ",\"result\":", ResultJson(st->result));
    }
    Reply(res, 200, out + "}");
  }

  // The dashboard's data: the last minutes per second, and totals now.
  std::string StatsJson() const {
    const batchbus::Submitter::Stats s = submitter_.GetStats();
    const int64_t counted = dead_letters_.load();
    std::string dead = counted >= 0 ? absl::StrCat(counted) : "null";
    if (processor_ != nullptr) {
      const batchbus::Processor::Stats p = processor_->GetStats();
      dead = absl::StrCat(p.jobs_dead_lettered + p.results_dead_lettered +
                          p.malformed_messages);
    }
    return absl::StrCat(
        "{\"inflight_jobs\":", s.inflight_jobs,
        ",\"submitted\":", s.submitted, ",\"processed_ok\":", s.processed_ok,
        ",\"failures\":", s.processed_error + s.batch_failed + s.expired,
        ",\"processed_error\":", s.processed_error,
        ",\"batch_failed\":", s.batch_failed, ",\"expired\":", s.expired,
        ",\"rejected\":", s.rejected, ",\"dead_letters\":", dead,
        ",\"points\":", live_.PointsJson(), "}");
  }

  batchbus::Submitter& submitter_;
  batchbus::Processor* processor_;  // Only with --with-local-processor.
  webstore::LiveStats live_;
  std::atomic<int64_t> dead_letters_{-1};  // -1: not known.
};

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (arg == "--port") {
      const char* v = value();
      if (v == nullptr) return false;
      o.port = std::atoi(v);
      if (o.port <= 0 || o.port > 65535) return false;
    } else if (arg == "--address") {
      const char* v = value();
      if (v == nullptr) return false;
      o.address = v;
    } else if (arg == "--config") {
      const char* v = value();
      if (v == nullptr) return false;
      o.config_file = v;
    } else if (arg == "--threads") {
      const char* v = value();
      if (v == nullptr) return false;
      o.threads = std::atoi(v);
      if (o.threads < 1 || o.threads > 4096) return false;
    } else if (arg == "--with-local-processor") {
      o.local_processor = true;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return Usage();
  auto config = batchbus::Config::Load(o.config_file);
  if (!config.ok()) {
    std::cerr << "batchbus-webstore: " << config.status().message() << "\n";
    return 2;
  }
  // GET /api/jobs/{id} needs the submitter to keep ended jobs for a while.
  if (config->status_retention == absl::ZeroDuration()) {
    config->status_retention = absl::Minutes(10);
  }

  std::unique_ptr<batchbus::Processor> processor;
  payments::PaymentService service;
  std::thread processor_thread;
  if (o.local_processor) {
    auto p = batchbus::Processor::Create(*config, payments::kProcessor);
    if (!p.ok()) {
      std::cerr << "batchbus-webstore: " << p.status().message() << "\n";
      return 1;
    }
    processor = std::move(*p);
    processor_thread = std::thread(
        [&] { (void)processor->Run(service.Handlers()); });
  }
  auto submitter = batchbus::Submitter::Create(*config);
  if (!submitter.ok()) {
    std::cerr << "batchbus-webstore: " << submitter.status().message() << "\n";
    if (processor) {
      processor->Shutdown();
      processor_thread.join();
      (void)processor->Close(config->close_timeout);
    }
    return 1;
  }

  Webstore store(**submitter, processor.get());
  httplib::Server server;
  const int threads = o.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Small JSON answers: send them at once (no Nagle delay), and keep
  // connections open for many requests, as load balancers do.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(30);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  store.Routes(server);
  if (!server.bind_to_port(o.address.c_str(), o.port)) {
    std::cerr << "batchbus-webstore: cannot listen on " << o.address << ":"
              << o.port << " (in use?)\n";
    return 1;
  }

  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::thread listener([&] { server.listen_after_bind(); });
  // With the processor elsewhere, the broker says how many dead letters.
  std::thread dead_letters;
  std::atomic<bool> stopping{false};
  if (!processor) {
    dead_letters = std::thread([&] {
      webstore::DeadLetterCount counter(*config, payments::kProcessor);
      while (!stopping.load()) {
        if (std::optional<uint64_t> n = counter.Count()) store.SetDeadLetters(*n);
        for (int i = 0; i < 50 && !stopping.load(); ++i) {
          absl::SleepFor(absl::Milliseconds(100));
        }
      }
    });
  }
  std::cerr << "batchbus-webstore: listening on http://" << o.address << ":"
            << o.port << "/ (brokers " << config->brokers
            << (o.local_processor ? ", local processor" : "") << ")\n";
  while (!g_stop) {
    absl::SleepFor(absl::Seconds(1));
    store.Tick();
  }
  std::cerr << "batchbus-webstore: stopping\n";
  server.stop();
  listener.join();
  stopping.store(true);
  if (dead_letters.joinable()) dead_letters.join();
  (void)(*submitter)->Close(config->close_timeout);
  if (processor) {
    processor->Shutdown();
    processor_thread.join();
    (void)processor->Close(config->close_timeout);
  }
  const batchbus::Submitter::Stats s = (*submitter)->GetStats();
  std::cerr << "batchbus-webstore: " << s.submitted << " jobs submitted, "
            << s.processed_ok << " PROCESSED_OK, " << s.processed_error
            << " PROCESSED_ERROR, " << s.batch_failed << " BATCH_FAILED\n";
  return 0;
}

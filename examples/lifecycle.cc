// lifecycle.cc (batchbus-lifecycle) — every part of a job's lifecycle in one
// program, on the embedded broker (mock://) unless --brokers says otherwise:
// progress events, retries, dead letters, deadlines, delayed jobs, rate
// limits, pausing a group, validation and status lookup.
//
// It prints one line per behaviour, "<name>: ok (<figure>)" or
// "<name>: FAILED (<why>)", and exits 0 only when all hold.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "batchbus/batchbus.h"

using batchbus::Job;
using batchbus::JobEvent;
using batchbus::JobResult;
using batchbus::JobStatus;
using batchbus::Priority;
using batchbus::Submitter;
using batchbus::Task;

namespace {

int failures = 0;

void Report(const char* name, bool ok, const std::string& detail) {
  std::printf("%s: %s (%s)\n", name, ok ? "ok" : "FAILED", detail.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

Job MakeJob(std::string group, std::string data = "{}") {
  Job job;
  job.processor = "shop";
  job.group = std::move(group);
  job.priority = Priority::kNormal;
  job.data = std::move(data);
  return job;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Submits `job` (setting its id) and waits for its result; events, if
// any, go to `events`.
JobResult Run(Submitter& submitter, Job& job,
              std::vector<JobEvent>* events = nullptr) {
  auto promise = std::make_shared<std::promise<JobResult>>();
  std::future<JobResult> future = promise->get_future();
  auto done = [promise](const JobResult& r) { promise->set_value(r); };
  auto mu = std::make_shared<std::mutex>();
  absl::Status s =
      events ? submitter.Submit(job, done,
                                [events, mu](const JobEvent& e) {
                                  std::lock_guard<std::mutex> lock(*mu);
                                  events->push_back(e);
                                })
             : submitter.Submit(job, done);
  if (!s.ok()) {
    JobResult r;
    r.status = JobStatus::kBatchFailed;
    r.error = "Submit: " + s.ToString();
    return r;
  }
  if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    JobResult r;
    r.status = JobStatus::kBatchFailed;
    r.error = "no result within 60 s";
    return r;
  }
  return future.get();
}
JobResult Run(Submitter& submitter, Job&& job) { return Run(submitter, job); }

std::string Describe(const JobResult& r) {
  return absl::StrCat(std::string(batchbus::JobStatusName(r.status)), " ",
                      r.data, r.error);
}

}  // namespace

int main(int argc, char** argv) {
  batchbus::Config config;  // brokers = "mock://" (embedded).
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--brokers") == 0) config.brokers = argv[i + 1];
  }
  config.For(Priority::kNormal).max_linger = absl::Milliseconds(2);
  config.retry.initial_delay = absl::Milliseconds(200);
  config.group_retry["doomed"].max_attempts = 2;
  config.group_max_rate["limited"] = 10;   // jobs/s
  config.deadline_skew = absl::Seconds(2);  // Hosts' clocks may differ by 2 s.
  config.status_retention = absl::Minutes(1);

  auto processor = batchbus::Processor::Create(config, "shop");
  if (!processor.ok()) {
    std::fprintf(stderr, "Processor::Create: %s\n",
                 processor.status().ToString().c_str());
    return 1;
  }
  std::mutex times_mu;
  std::vector<absl::Time> limited_times;
  std::atomic<int> echo_done{0};
  const absl::flat_hash_map<std::string, batchbus::Processor::Handler> handlers = {
      {"report",
       [](Task& task) {
         for (int step = 1; step <= 3; ++step) {
           (void)task.Progress(absl::StrCat("{\"step\":", step, "}"));
         }
         (void)task.Complete("\"report ready\"");
       }},
      {"flaky",
       [](Task& task) {
         if (task.attempt() < 3) {
           (void)task.Retry(absl::StrCat("upstream timeout on attempt ",
                                         task.attempt()));
         } else {
           (void)task.Complete("\"third time lucky\"");
         }
       }},
      {"doomed", [](Task& task) { (void)task.Retry("card declined"); }},
      {"limited",
       [&](Task& task) {
         {
           std::lock_guard<std::mutex> lock(times_mu);
           limited_times.push_back(absl::Now());
         }
         (void)task.Complete();
       }},
      {"echo", [&](Task& task) {
         (void)task.Complete(task.data());
         ++echo_done;
       }},
      {"paused", [](Task& task) { (void)task.Complete(); }},
      {"payment", [](Task& task) { (void)task.Complete("\"paid\""); }},
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] { (void)(*processor)->Run(handlers); });
  }

  auto created = Submitter::Create(config);
  if (!created.ok()) {
    std::fprintf(stderr, "Submitter::Create: %s\n",
                 created.status().ToString().c_str());
    return 1;
  }
  Submitter& submitter = **created;
  submitter.SetValidator("payment", [](std::string_view data) {
    return data.find("\"amount\"") == std::string_view::npos
               ? absl::InvalidArgumentError("missing field \"amount\"")
               : absl::OkStatus();
  });
  // The processor joins its consumer group first (seconds on mock://).
  (void)Run(submitter, MakeJob("echo"));

  batchbus::JobId report_id;
  {  // progress
    std::vector<JobEvent> events;
    Job job = MakeJob("report");
    const JobResult r = Run(submitter, job, &events);
    int progress = 0, started = 0;
    for (const JobEvent& e : events) {
      (e.kind == JobEvent::Kind::kStarted ? started : progress)++;
    }
    Report("progress", r.ok() && started == 1 && progress >= 1,
           absl::StrCat(started, " started and ", progress,
                        " progress events before ", Describe(r)));

    report_id = job.id;
  }
  {  // retry
    const absl::Time start = absl::Now();
    const JobResult r = Run(submitter, MakeJob("flaky"));
    Report("retry", r.ok() && r.attempts == 3,
           absl::StrFormat("%s after %u attempts in %.2f s", Describe(r),
                           r.attempts, Seconds(absl::Now() - start)));
  }
  {  // dead-letter
    const JobResult r = Run(submitter, MakeJob("doomed"));
    // The copy is written before the batch commits; give it a moment.
    uint64_t copies = 0;
    for (int i = 0; i < 100 && copies == 0; ++i) {
      copies = (*processor)->GetStats().jobs_dead_lettered;
      if (copies == 0) absl::SleepFor(absl::Milliseconds(20));
    }
    Report("dead-letter",
           r.status == JobStatus::kProcessedError && r.attempts == 2 && copies == 1,
           absl::StrCat(Describe(r), " after ", r.attempts, " attempts; ", copies,
                        " copy in ", config.DeadLetterTopicFor("shop")));
  }
  {  // deadline: within the processors' clock-skew allowance, so not run.
    Job job = MakeJob("echo");
    job.deadline = absl::Now() + absl::Seconds(1);
    const int before = echo_done.load();
    const JobResult r = Run(submitter, job);
    Report("deadline",
           r.status == JobStatus::kExpired && echo_done.load() == before,
           Describe(r));
  }
  {  // delay
    Job job = MakeJob("echo", "\"later\"");
    const absl::Time start = absl::Now();
    job.not_before = start + absl::Seconds(1);
    const JobResult r = Run(submitter, job);
    const absl::Duration took = absl::Now() - start;
    Report("delay", r.ok() && took >= absl::Seconds(1),
           absl::StrFormat("%s after %.2f s (not_before 1 s)", Describe(r),
                           Seconds(took)));
  }
  {  // rate-limit
    std::vector<std::future<JobResult>> futures;
    for (int i = 0; i < 10; ++i) {
      auto f = submitter.SubmitAsync(MakeJob("limited"));
      if (f.ok()) futures.push_back(std::move(*f));
    }
    int ok = 0;
    for (auto& f : futures) ok += f.get().ok();
    std::lock_guard<std::mutex> lock(times_mu);
    const double span = limited_times.size() == 10
                            ? Seconds(limited_times.back() - limited_times.front())
                            : 0;
    Report("rate-limit", ok == 10 && span >= 0.8,
           absl::StrFormat("%d jobs handed out over %.2f s at max_rate 10/s", ok,
                           span));
  }
  {  // pause
    (*processor)->PauseGroup("paused", absl::Milliseconds(1500));
    const absl::Time start = absl::Now();
    auto held = submitter.SubmitAsync(MakeJob("paused"));
    const JobResult other = Run(submitter, MakeJob("echo"));
    const absl::Duration other_took = absl::Now() - start;
    const JobResult r = held.ok() ? held->get() : JobResult{};
    const absl::Duration held_took = absl::Now() - start;
    Report("pause",
           r.ok() && other.ok() && held_took >= absl::Milliseconds(1400) &&
               other_took < absl::Seconds(1),
           absl::StrFormat("paused group's job after %.2f s, another group's "
                           "after %.2f s",
                           Seconds(held_took), Seconds(other_took)));
  }
  {  // validation
    Job bad = MakeJob("payment", "{\"amt\":5}");
    const absl::Status refused = submitter.Submit(bad, [](const JobResult&) {});
    const JobResult good = Run(submitter, MakeJob("payment", "{\"amount\":5}"));
    Report("validation", absl::IsInvalidArgument(refused) && good.ok(),
           absl::StrCat("Submit refused: ", refused.message(), "; valid job ",
                        Describe(good)));
  }

  {  // status: of the progress job, kept for status_retention after its end
    auto state = submitter.GetJobState(report_id);
    const bool ok = state.ok() && state->phase == Submitter::JobState::kEnded &&
                    state->result.ok() && state->progress == "{\"step\":3}";
    Report("status", ok,
           state.ok() ? absl::StrCat("ended ", Describe(state->result),
                                     ", last progress ", state->progress)
                      : state.status().ToString());
  }

  (void)submitter.Close(absl::Seconds(5));
  (*processor)->Shutdown();
  for (auto& w : workers) w.join();
  (void)(*processor)->Close(absl::Seconds(5));
  return failures == 0 ? 0 : 1;
}

// batchbus work: a processor that echoes each job, or runs a command per
// job, until SIGTERM or SIGINT.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "strcat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "admin.h"
#include "batchbus/processor.h"
#include "cli.h"
#include "exec.h"
#include "output.h"

namespace batchbus::cli {
namespace {

// Set by SIGTERM and SIGINT; the main loop turns it into Shutdown(), which
// takes locks and so cannot run in the handler.
volatile sig_atomic_t g_stop_requested = 0;

extern "C" void OnStopSignal(int) { g_stop_requested = 1; }

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // A command that quits early must not end us.
}

// What a finished command makes of its job.
void Answer(Task& task, const ExecResult& r, const WorkOptions& o) {
  if (!r.started) {
    (void)task.Fail(StrCat("could not run --exec command: ", r.err));
    return;
  }
  const std::string err(absl::StripAsciiWhitespace(r.err));
  if (r.timed_out) {
    (void)task.Fail(StrCat("command timed out after ", o.job_timeout_s,
                                 " s (--job-timeout)",
                                 err.empty() ? "" : ": ", err));
    return;
  }
  if (r.signal != 0) {
    (void)task.Fail(StrCat("command killed by signal ", r.signal,
                                 err.empty() ? "" : ": ", err));
    return;
  }
  if (r.exit_code != 0) {
    (void)task.Fail(err.empty() ? StrCat("command exited with status ",
                                               r.exit_code)
                                : err);
    return;
  }
  const std::string out(absl::StripAsciiWhitespace(r.out));
  if (out.empty()) {
    (void)task.Complete("null");
    return;
  }
  // JSON as it is; any other text becomes a JSON string.
  if (absl::Status s = task.Complete(out); absl::IsInvalidArgument(s)) {
    (void)task.Complete(
        Quote(std::string(absl::StripTrailingAsciiWhitespace(r.out))));
  }
}

}  // namespace

int RunWork(const Config& config, const GlobalOptions& global,
            const WorkOptions& o) {
  InstallStopHandlers();
  auto created = Processor::Create(config, o.processor);
  if (!created.ok()) {
    std::cerr << "batchbus work: " << created.status().message() << "\n";
    return ExitFor(created.status());
  }
  std::unique_ptr<Processor> processor = std::move(*created);
  std::cerr << "batchbus work: processor " << o.processor << " running ("
            << o.workers << " worker(s), "
            << (o.echo ? std::string("--echo") : "--exec " + o.exec)
            << "); SIGTERM or SIGINT stops it\n";

  std::atomic<bool> kill_children{false};
  std::atomic<int> busy{0};
  std::mutex held_mu;
  // Tasks whose command was killed by the stop: kept unanswered until
  // Close has returned, so their batches go to the next processor instead
  // of failing.
  std::vector<Task> held;
  std::atomic<bool> failed{false};

  auto worker = [&] {
    while (true) {
      absl::StatusOr<Task> next = processor->Next(absl::Milliseconds(250));
      if (absl::IsCancelled(next.status())) return;
      if (absl::IsDeadlineExceeded(next.status())) continue;
      if (!next.ok()) {
        std::cerr << "batchbus work: " << next.status().message() << "\n";
        failed.store(true);
        processor->Shutdown();
        return;
      }
      Task& task = *next;
      if (o.echo) {
        (void)task.Complete(task.data());
        continue;
      }
      busy.fetch_add(1);
      const absl::Time deadline =
          o.job_timeout_s > 0 ? absl::Now() + absl::Seconds(o.job_timeout_s)
                              : absl::InfiniteFuture();
      ExecResult r = RunCommand(
          o.exec, task.data(),
          {StrCat("BATCHBUS_JOB_ID=", task.id().ToString()),
           StrCat("BATCHBUS_JOB_GROUP=", task.group()),
           StrCat("BATCHBUS_JOB_PRIORITY=", PriorityName(task.priority())),
           StrCat("BATCHBUS_JOB_ATTEMPT=", task.attempt())},
          deadline, kill_children);
      if (r.stopped) {
        std::lock_guard<std::mutex> lock(held_mu);
        held.push_back(std::move(task));
      } else {
        Answer(task, r, o);
      }
      busy.fetch_sub(1);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < o.workers; ++i) threads.emplace_back(worker);

  while (!processor->shutdown_requested()) {
    if (g_stop_requested) processor->Shutdown();
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Time stop_deadline =
      absl::Now() + absl::Seconds(o.stop_timeout_s);
  std::cerr << "batchbus work: stopping (running jobs get up to "
            << o.stop_timeout_s << " s, --stop-timeout)\n";
  while (busy.load() > 0 && absl::Now() < stop_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (busy.load() > 0) {
    std::cerr << "batchbus work: killing " << busy.load()
              << " command(s) still running; their jobs go to the next "
                 "processor\n";
    kill_children.store(true);
  }
  for (std::thread& t : threads) t.join();
  const absl::Status closed = processor->Close(
      std::max(stop_deadline - absl::Now(), absl::Seconds(2)));
  {
    std::lock_guard<std::mutex> lock(held_mu);
    held.clear();
  }
  const Processor::Stats s = processor->GetStats();
  if (global.json) {
    std::cout << JsonLine()
                     .Str("processor", o.processor)
                     .Int("handed_out", s.handed_out)
                     .Int("processed_ok", s.processed_ok)
                     .Int("processed_error", s.processed_error)
                     .Int("batches_committed", s.batches_committed)
                     .Int("malformed_messages", s.malformed_messages)
                     .Bool("closed_cleanly", closed.ok())
                     .Done()
              << "\n";
  } else {
    Table t({"processor", "handed out", "PROCESSED_OK", "PROCESSED_ERROR",
             "batches committed", "malformed"});
    t.AddRow({o.processor, StrCat(s.handed_out),
              StrCat(s.processed_ok), StrCat(s.processed_error),
              StrCat(s.batches_committed),
              StrCat(s.malformed_messages)});
    std::cout << t.Render();
  }
  if (!closed.ok()) {
    std::cerr << "batchbus work: close: " << closed.message() << "\n";
  }
  return failed.load() ? kExitFailed : kExitOk;
}

}  // namespace batchbus::cli

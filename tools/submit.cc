// batchbus submit: one job per input line, results as JSON lines.
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "admin.h"
#include "batchbus/submitter.h"
#include "cli.h"
#include "output.h"

namespace batchbus::cli {
namespace {

// Results and failures from the submitter's thread, printed by the main
// thread: callbacks must not block on a full stdout pipe.
class ResultQueue {
 public:
  void Push(std::string line, bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(std::move(line));
    ++ended_;
    ok_ += ok;
    cv_.notify_all();
  }
  // Prints what is queued; waits up to `wait` for something first.
  void Drain(absl::Duration wait) {
    std::deque<std::string> lines;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (lines_.empty() && wait > absl::ZeroDuration()) {
        cv_.wait_for(lock, absl::ToChronoNanoseconds(wait));
      }
      lines.swap(lines_);
    }
    for (const std::string& line : lines) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    }
    if (!lines.empty()) std::fflush(stdout);
  }
  uint64_t ended() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_;
  }
  uint64_t ok() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ok_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  uint64_t ended_ = 0;
  uint64_t ok_ = 0;
};

std::string ResultLine(uint64_t line, const JobResult& r) {
  JsonLine j;
  j.Int("line", static_cast<int64_t>(line))
      .Str("id", r.job_id.ToString())
      .Str("status", JobStatusName(r.status));
  if (r.data.empty()) {
    j.Null("data");
  } else {
    j.Raw("data", r.data);
  }
  if (!r.error.empty()) j.Str("error", r.error);
  j.Int("attempts", r.attempts).Str("priority", PriorityName(r.priority));
  return j.Done();
}

}  // namespace

int RunSubmit(const Config& config, const GlobalOptions& global,
              const SubmitOptions& o, std::istream& in) {
  const Priority priority = *ParsePriority(o.priority);
  std::vector<std::string> inputs;
  if (o.data) {
    inputs.push_back(*o.data);
  } else {
    for (std::string line; std::getline(in, line);) {
      absl::string_view trimmed = absl::StripAsciiWhitespace(line);
      // Blank lines are skipped but counted, so "line" matches the input.
      inputs.emplace_back(trimmed);
    }
  }
  auto created = Submitter::Create(config);
  if (!created.ok()) {
    std::cerr << "batchbus submit: " << created.status().message() << "\n";
    return ExitFor(created.status());
  }
  std::unique_ptr<Submitter> submitter = std::move(*created);
  const absl::Duration timeout =
      o.timeout_s > 0 ? absl::Seconds(o.timeout_s)
                      : config.For(priority).batch_timeout + absl::Seconds(5);

  ResultQueue results;
  // Set before Close: the jobs it ends are not results (see below).
  std::atomic<bool> closing{false};
  uint64_t accepted = 0, rejected = 0, lines = 0;
  Progress progress(o.wait ? "submitted" : "sent", inputs.size());
  const bool show = o.progress && inputs.size() >= 100;

  for (size_t i = 0; i < inputs.size(); ++i) {
    const uint64_t line = i + 1;
    if (inputs[i].empty()) continue;
    ++lines;
    Job job;
    job.processor = o.processor;
    job.group = o.group;
    job.priority = priority;
    job.data = std::move(inputs[i]);
    const bool wait = o.wait;
    absl::Status s = submitter->Submit(job, [&, line, wait](const JobResult& r) {
      if (closing.load()) return;
      // Without --wait only a failure to hand the batch to the broker is
      // news: the job's id was printed already.
      if (wait || r.status == JobStatus::kBatchFailed) {
        results.Push(ResultLine(line, r), r.ok());
      }
    });
    if (!s.ok()) {
      ++rejected;
      results.Push(JsonLine()
                       .Int("line", static_cast<int64_t>(line))
                       .Str("status", "REJECTED")
                       .Str("error", std::string(s.message()))
                       .Done(),
                   false);
    } else {
      ++accepted;
      if (!o.wait) {
        results.Push(JsonLine()
                         .Int("line", static_cast<int64_t>(line))
                         .Str("id", job.id.ToString())
                         .Str("status", "SUBMITTED")
                         .Done(),
                     true);
      }
    }
    if (show) progress.Update(line);
    if ((i & 1023) == 0) results.Drain(absl::ZeroDuration());
  }
  submitter->Flush();
  const absl::Time deadline = absl::Now() + timeout;

  bool timed_out = false;
  if (o.wait) {
    Progress waiting("results", accepted);
    while (results.ended() < accepted + rejected) {
      if (absl::Now() >= deadline) {
        timed_out = true;
        break;
      }
      results.Drain(absl::Milliseconds(50));
      if (show) waiting.Update(results.ended() - rejected);
    }
    if (show) waiting.Finish(results.ended() - rejected);
  } else {
    // The broker has the jobs once it acknowledged their batches. The
    // Submitter counts acknowledged batches but not the batches it sealed,
    // so wait until the count has stood still for longer than any linger:
    // exact for realtime (one job, one batch), and for batched priorities
    // every open batch was sealed by Flush above.
    if (show) progress.Finish(lines);
    const absl::Duration quiet =
        std::max(absl::Milliseconds(300), 3 * config.For(priority).max_linger);
    uint64_t last = submitter->GetStats().batches_sent;
    absl::Time last_change = absl::Now();
    while (accepted > 0) {
      const uint64_t sent = submitter->GetStats().batches_sent;
      const absl::Time now = absl::Now();
      if (sent != last) {
        last = sent;
        last_change = now;
      }
      const bool enough = priority == Priority::kRealtime
                              ? sent >= accepted
                              : sent > 0 && now - last_change >= quiet;
      if (enough) break;
      if (now >= deadline) {
        timed_out = true;
        break;
      }
      results.Drain(absl::Milliseconds(20));
    }
  }
  results.Drain(absl::ZeroDuration());
  closing.store(true);
  // Without --wait the jobs still pending are not waited for: they are in
  // Kafka, and a processor will run them.
  (void)submitter->Close(o.wait ? absl::Seconds(1) : absl::Milliseconds(500));
  results.Drain(absl::ZeroDuration());

  const Submitter::Stats stats = submitter->GetStats();
  const uint64_t ok = results.ok();
  const uint64_t ended = results.ended();
  if (o.wait) {
    if (timed_out) {
      std::cerr << "batchbus submit: " << (accepted + rejected - ended)
                << " job(s) had no result within "
                << absl::FormatDuration(timeout) << " (--timeout)\n";
    }
    std::cerr << "batchbus submit: " << accepted << " submitted, " << rejected
              << " rejected, " << ok << " PROCESSED_OK, "
              << (ended - ok - rejected) << " not OK\n";
    return (ok == lines && !timed_out) ? kExitOk : kExitFailed;
  }
  if (timed_out) {
    std::cerr << "batchbus submit: the broker did not acknowledge every "
                 "batch within "
              << absl::FormatDuration(timeout) << "\n";
  }
  const uint64_t undelivered = ended - ok;
  std::cerr << "batchbus submit: " << accepted << " submitted in "
            << stats.batches_sent << " batch(es) acknowledged by the broker, "
            << rejected << " rejected\n";
  (void)global;
  return (undelivered == 0 && !timed_out) ? kExitOk : kExitFailed;
}

}  // namespace batchbus::cli

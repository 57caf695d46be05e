// submitter.cc — the caller half of the payments example. One Submitter per
// application, shared by everything that takes payments:
//
//   * the webstore: a customer is waiting, so each payment is a REALTIME job
//     and the request handler blocks on SubmitAndWait;
//   * the backoffice: refunds at NORMAL priority, answered by callback;
//   * the recurring billing run: many SLOW jobs, submitted with callbacks
//     and batched heavily, processed when nothing more urgent waits.
//
//   payments_submitter [CONFIG_FILE] [--count N] [--with-local-processor]
//
// Submits N jobs (default 100): 1 in 10 a webstore payment, 1 in 10 a
// refund, the rest billing; a few have an invalid amount (0) to show
// PROCESSED_ERROR. Prints the outcomes and exits non-zero if any job ended
// BATCH_FAILED (no answer in time) or could not be submitted.
//
// The config comes from CONFIG_FILE, else $BATCHBUS_CONFIG, then BATCHBUS_*
// variables. With a real broker run payments_processor alongside:
//   BATCHBUS_BROKERS=kafka://127.0.0.1:9092 payments_submitter
// mock:// (the default) is an embedded cluster private to this process, so
// it needs --with-local-processor, which runs the payment service's
// processor on a thread in this process.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "batchbus/batchbus.h"
#include "payments.h"

namespace {

using batchbus::JobResult;
using batchbus::JobStatus;
using batchbus::Priority;

// Outcomes per source (webstore, backoffice, billing) and terminal status.
struct Tally {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t by[3][5] = {};
  uint64_t pending = 0;  // Accepted jobs whose callback has not run yet.

  void Add(int source, JobStatus s) {
    std::lock_guard<std::mutex> lock(mu);
    ++by[source][static_cast<int>(s)];
  }
};

constexpr const char* kSources[3] = {"webstore", "backoffice", "billing"};

int Usage() {
  std::cerr << "usage: payments_submitter [CONFIG_FILE] [--count N] "
               "[--with-local-processor]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file;
  uint64_t count = 100;
  bool local_processor = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--count" && i + 1 < argc) {
      char* end = nullptr;
      count = std::strtoull(argv[++i], &end, 10);
      if (*end != '\0' || count == 0) return Usage();
    } else if (arg == "--with-local-processor") {
      local_processor = true;
    } else if (arg == "-h" || arg == "--help") {
      Usage();
      return 0;
    } else if (arg.rfind("-", 0) != 0 && config_file.empty()) {
      config_file = arg;
    } else {
      return Usage();
    }
  }

  // Once per application: the config and the submitter.
  auto config = batchbus::Config::Load(config_file);
  if (!config.ok()) {
    std::cerr << "payments_submitter: " << config.status() << "\n";
    return 2;
  }
  if (config->brokers.rfind("mock://", 0) == 0 && !local_processor) {
    std::cerr << "payments_submitter: brokers = " << config->brokers
              << " is an embedded cluster inside this process, which "
                 "payments_processor cannot reach.\n"
                 "  Either add --with-local-processor, or start a broker "
                 "(scripts/kafka start) and set "
                 "BATCHBUS_BROKERS=kafka://127.0.0.1:9092 for both programs.\n";
    return 2;
  }

  // --with-local-processor: the worker side on a thread of this process.
  payments::PaymentService service;
  std::unique_ptr<batchbus::Processor> processor;
  std::thread worker;
  if (local_processor) {
    auto p = batchbus::Processor::Create(*config, payments::kProcessor);
    if (!p.ok()) {
      std::cerr << "payments_submitter: local processor: " << p.status()
                << "\n";
      return 1;
    }
    processor = std::move(*p);
    worker = std::thread([&processor, handlers = service.Handlers()] {
      absl::Status s = processor->Run(handlers);
      if (!s.ok()) std::cerr << "payments_submitter: local processor: " << s << "\n";
    });
  }
  auto stop_local_processor = [&] {
    if (!processor) return;
    processor->Shutdown();
    worker.join();
    (void)processor->Close(absl::Seconds(10));
  };

  auto created = batchbus::Submitter::Create(*config);
  if (!created.ok()) {
    std::cerr << "payments_submitter: " << created.status() << "\n";
    stop_local_processor();
    return 1;
  }
  batchbus::Submitter& submitter = **created;

  // Payment ids must be unique per payment: they are the processor's
  // idempotency keys (a repeat would be answered, not charged again).
  const std::string run_id = batchbus::JobId::Random().ToString().substr(0, 8);
  auto payment = [&](uint64_t i, int64_t amount) {
    return "{\"payment_id\":\"pay-" + run_id + "-" + std::to_string(i) +
           "\",\"amount_cents\":" + std::to_string(amount) +
           ",\"currency\":\"EUR\",\"customer\":\"c-" +
           std::to_string(i % 37) + "\"}";
  };

  Tally tally;
  uint64_t submit_errors = 0;
  double realtime_ms_total = 0, realtime_ms_max = 0;
  uint64_t realtime_n = 0;
  uint64_t webstore_errors = 0;
  // A webstore request waits at most a bit longer than the realtime batch
  // timeout: by then the library has answered BATCH_FAILED itself.
  const absl::Duration web_wait =
      config->For(Priority::kRealtime).batch_timeout + absl::Seconds(5);

  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    // A few invalid amounts, to show PROCESSED_ERROR in every source.
    const bool invalid = i % 50 == 22 || i % 50 == 40 || i % 50 == 45;
    const int64_t amount = invalid ? 0 : 500 + static_cast<int64_t>(i % 50) * 100;
    batchbus::Job job;
    job.processor = payments::kProcessor;

    if (i % 10 == 0) {
      // Webstore: the customer waits for the answer.
      job.group = payments::kSubmitGroup;
      job.priority = Priority::kRealtime;
      job.data = payment(i, amount);
      const auto start = std::chrono::steady_clock::now();
      auto result = submitter.SubmitAndWait(job, web_wait);
      if (!result.ok()) {
        std::cerr << "payments_submitter: webstore payment " << i
                  << " not submitted: " << result.status() << "\n";
        ++submit_errors;
        continue;
      }
      double ms = std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      realtime_ms_total += ms;
      realtime_ms_max = std::max(realtime_ms_max, ms);
      ++realtime_n;
      tally.Add(0, result->status);
      if (result->status == JobStatus::kProcessedOk) {
        // e.g. log "payment succeeded" and render the receipt.
      } else if (result->status == JobStatus::kProcessedError) {
        if (++webstore_errors <= 3) {
          std::cout << "webstore: payment " << i << " failed: " << result->error
                    << "\n";
        }
      } else {
        std::cout << "webstore: payment " << i << " has unknown outcome ("
                  << batchbus::JobStatusName(result->status) << ": "
                  << result->error << "); check before retrying\n";
      }
      continue;
    }

    // Backoffice refunds and the billing run: fire and collect by callback.
    // Callbacks run on the submitter's thread: keep them short.
    const int source = (i % 10 == 5) ? 1 : 2;
    if (source == 1) {
      job.group = payments::kRefundGroup;
      job.priority = Priority::kNormal;
      // Refund the billing payment submitted five jobs earlier.
      job.data = "{\"payment_id\":\"pay-" + run_id + "-" + std::to_string(i - 5) +
                 "\",\"amount_cents\":" + std::to_string(amount) +
                 ",\"reason\":\"customer request\"}";
    } else {
      job.group = payments::kSubmitGroup;
      job.priority = Priority::kSlow;
      job.data = payment(i, amount);
    }
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      ++tally.pending;
    }
    absl::Status s = submitter.Submit(job, [&tally, source](const JobResult& r) {
      std::lock_guard<std::mutex> lock(tally.mu);
      ++tally.by[source][static_cast<int>(r.status)];
      if (--tally.pending == 0) tally.cv.notify_all();
    });
    if (!s.ok()) {
      std::cerr << "payments_submitter: " << kSources[source] << " job " << i
                << " not submitted: " << s << "\n";
      ++submit_errors;
      std::lock_guard<std::mutex> lock(tally.mu);
      --tally.pending;
    }
  }

  // Send what is still lingering in open batches now, then wait for the
  // callbacks. Every accepted job gets exactly one, at the latest when its
  // batch times out (slow: slow.batch_timeout_ms).
  submitter.Flush();
  {
    absl::Duration longest;
    for (Priority p : batchbus::kAllPriorities) {
      longest = std::max(longest, config->For(p).batch_timeout);
    }
    std::unique_lock<std::mutex> lock(tally.mu);
    tally.cv.wait_for(lock,
                      std::chrono::milliseconds(absl::ToInt64Milliseconds(
                          longest + absl::Seconds(5))),
                      [&] { return tally.pending == 0; });
  }
  const double elapsed_s = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - t0)
                               .count();
  // Close ends anything still pending as BATCH_FAILED (counted by its
  // callback), so the tally is complete afterwards.
  (void)submitter.Close(absl::Seconds(10));
  stop_local_processor();

  uint64_t total[5] = {};
  std::cout << "payments_submitter: " << count << " jobs in " << elapsed_s
            << " s on " << config->brokers
            << (local_processor ? " (local processor)" : "") << "\n";
  std::lock_guard<std::mutex> lock(tally.mu);
  for (int s = 0; s < 3; ++s) {
    std::cout << "  " << kSources[s] << ": "
              << tally.by[s][static_cast<int>(JobStatus::kProcessedOk)]
              << " PROCESSED_OK, "
              << tally.by[s][static_cast<int>(JobStatus::kProcessedError)]
              << " PROCESSED_ERROR, "
              << tally.by[s][static_cast<int>(JobStatus::kBatchFailed)]
              << " BATCH_FAILED\n";
    for (int k = 0; k < 5; ++k) total[k] += tally.by[s][k];
  }
  std::cout << "  total: " << total[static_cast<int>(JobStatus::kProcessedOk)]
            << " PROCESSED_OK, "
            << total[static_cast<int>(JobStatus::kProcessedError)]
            << " PROCESSED_ERROR, "
            << total[static_cast<int>(JobStatus::kBatchFailed)]
            << " BATCH_FAILED, " << submit_errors << " not submitted\n";
  if (realtime_n > 0) {
    std::cout << "  webstore wait: avg " << realtime_ms_total / realtime_n
              << " ms, max " << realtime_ms_max << " ms\n";
  }
  if (processor) {
    const payments::PaymentService::Counts c = service.counts();
    std::cout << "  local processor: " << c.charged << " charged, "
              << c.refunded << " refunded, " << c.declined << " declined, "
              << c.duplicates << " redeliveries\n";
  }
  const uint64_t failed = total[static_cast<int>(JobStatus::kBatchFailed)];
  if (failed > 0 || submit_errors > 0) {
    std::cout << "payments_submitter: FAILED\n";
    return 1;
  }
  std::cout << "payments_submitter: OK\n";
  return 0;
}

// processor.cc — the worker half of the payments example: the payment
// service, taking "payment-submit" and "payment-refund" jobs off the bus in
// priority order (webstore payments before backoffice refunds before the
// billing run) and answering each.
//
//   payments_processor [CONFIG_FILE] [--exit-after N]
//
// The config comes from CONFIG_FILE, else $BATCHBUS_CONFIG, then BATCHBUS_*
// environment variables (docs/configuration.md). The two payments programs
// can only meet on a real broker, e.g.
//   BATCHBUS_BROKERS=kafka://127.0.0.1:9092 payments_processor
// since mock:// is an embedded cluster private to each process.
//
// SIGTERM or SIGINT stops it gracefully: jobs already handed out are
// answered, results are flushed and offsets committed; jobs not yet handed
// out stay on the bus for the next processor. --exit-after N does the same
// after N jobs (for bounded CI runs).
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "batchbus/batchbus.h"
#include "payments.h"

namespace {

// The signal handler may only touch lock-free atomics, and
// Processor::Shutdown() is async-signal-safe (it sets a flag and writes to a
// pipe).
std::atomic<batchbus::Processor*> g_processor{nullptr};

extern "C" void GracefulStop(int) {
  if (batchbus::Processor* p = g_processor.load()) p->Shutdown();
}

void InstallSignalHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = GracefulStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

void RestoreSignalHandlers() {
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
}

int Usage() {
  std::cerr << "usage: payments_processor [CONFIG_FILE] [--exit-after N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file;
  uint64_t exit_after = 0;  // 0: run until a signal.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--exit-after" && i + 1 < argc) {
      char* end = nullptr;
      exit_after = std::strtoull(argv[++i], &end, 10);
      if (*end != '\0' || exit_after == 0) return Usage();
    } else if (arg == "-h" || arg == "--help") {
      Usage();
      return 0;
    } else if (arg.rfind("-", 0) != 0 && config_file.empty()) {
      config_file = arg;
    } else {
      return Usage();
    }
  }

  // Once per application: the config (file, then environment).
  auto config = batchbus::Config::Load(config_file);
  if (!config.ok()) {
    std::cerr << "payments_processor: " << config.status() << "\n";
    return 2;
  }
  if (config->brokers.rfind("mock://", 0) == 0) {
    std::cerr << "payments_processor: note: brokers = " << config->brokers
              << " is an embedded cluster inside this process; no submitter "
                 "elsewhere can reach it. Use BATCHBUS_BROKERS=kafka://... "
                 "(see examples/payments/README.md).\n";
  }

  auto processor = batchbus::Processor::Create(*config, payments::kProcessor);
  if (!processor.ok()) {
    std::cerr << "payments_processor: " << processor.status() << "\n";
    return 1;
  }
  g_processor.store(processor->get());
  InstallSignalHandlers();

  payments::PaymentService service;
  auto handlers = service.Handlers();
  if (exit_after > 0) {
    // Wrap each handler to count jobs and stop after the N-th. Shutdown()
    // returns at once; Run() returns once the current job is answered.
    auto counted = std::make_shared<std::atomic<uint64_t>>(0);
    for (auto& [group, handler] : handlers) {
      handler = [inner = handler, counted, exit_after,
                 p = processor->get()](batchbus::Task& task) {
        inner(task);
        if (counted->fetch_add(1) + 1 == exit_after) p->Shutdown();
      };
    }
  }

  std::cerr << "payments_processor: serving processor '"
            << payments::kProcessor << "' (groups " << payments::kSubmitGroup
            << ", " << payments::kRefundGroup << ") on " << config->brokers
            << (exit_after ? ", exiting after " + std::to_string(exit_after) +
                                 " jobs"
                           : std::string(", Ctrl-C to stop"))
            << "\n";

  // Hands out jobs highest priority first and calls the group's handler,
  // until Shutdown(). A group with no handler ends PROCESSED_ERROR.
  absl::Status run = (*processor)->Run(handlers);

  RestoreSignalHandlers();  // A second Ctrl-C now kills at once.
  g_processor.store(nullptr);
  // Waits for handed-out jobs' results to be acknowledged, commits offsets,
  // leaves the consumer group. Bounded by the timeout.
  absl::Status close = (*processor)->Close(config->close_timeout);

  const batchbus::Processor::Stats st = (*processor)->GetStats();
  const payments::PaymentService::Counts c = service.counts();
  std::cout << "payments_processor: " << st.handed_out << " jobs handed out, "
            << st.processed_ok << " PROCESSED_OK, " << st.processed_error
            << " PROCESSED_ERROR; " << st.batches_received
            << " batches received, " << st.batches_committed
            << " committed, " << st.malformed_messages << " malformed, "
            << st.unknown_group << " of unknown group\n"
            << "payments_processor: " << c.charged << " charged, "
            << c.refunded << " refunded, " << c.declined << " declined, "
            << c.duplicates << " redeliveries answered from the record\n";
  if (!run.ok()) {
    std::cerr << "payments_processor: Run: " << run << "\n";
    return 1;
  }
  if (!close.ok()) {
    std::cerr << "payments_processor: Close: " << close << "\n";
    return 1;
  }
  return 0;
}

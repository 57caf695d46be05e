// echo_processor — a batchbus Processor in a process of its own, for the
// kafka-tier tests that kill and restart a processor (tests/kafka/).
//
//   echo_processor --brokers kafka://127.0.0.1:9092 --namespace NS \
//                  --processor NAME [--delay-us N] [--workers N] \
//                  [--retry-first-ms N] [--set key=value]...
//
// Every job of every group is completed with its own data (echo); with
// --retry-first-ms, attempt 1 of each job ends with Task::Retry and a delay
// of N ms instead, and later attempts echo. Without a
// flag, --brokers, --namespace and --processor fall back to $BATCHBUS_BROKERS,
// $BATCHBUS_NAMESPACE and $BATCHBUS_PROCESSOR. `--set` applies any config key
// (Config::Set, e.g. --set kafka.session.timeout.ms=6000). The environment's
// other BATCHBUS_* variables are deliberately not read: a test passes exactly
// what it means.
//
// Logs nothing per job. Prints "echo_processor: running" once the processor
// was created, and its stats when it exits. SIGTERM or SIGINT request
// Processor::Shutdown() (async-signal-safe); the process then closes the
// processor (answered jobs are committed) and exits 0. Exit 1 on bad usage,
// 2 when the processor could not be created, 3 when Run failed.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "batchbus/batchbus.h"

namespace {

std::atomic<batchbus::Processor*> g_processor{nullptr};
volatile sig_atomic_t g_signalled = 0;

extern "C" void OnSignal(int) {
  g_signalled = 1;
  if (batchbus::Processor* p = g_processor.load()) p->Shutdown();
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "echo_processor: %s\n"
               "usage: echo_processor --brokers URL --namespace NS "
               "--processor NAME [--delay-us N] [--workers N] "
               "[--retry-first-ms N] [--set key=value]...\n",
               why);
  return 1;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers = Env("BATCHBUS_BROKERS");
  std::string ns = Env("BATCHBUS_NAMESPACE");
  std::string name = Env("BATCHBUS_PROCESSOR");
  long delay_us = 0;
  long retry_first_ms = -1;
  int workers = 1;
  std::vector<std::pair<std::string, std::string>> sets;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    // The flag's value, or null when it is the last argument.
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char* v = nullptr;
    if (arg == "--brokers" && (v = value())) {
      brokers = v;
    } else if (arg == "--namespace" && (v = value())) {
      ns = v;
    } else if (arg == "--processor" && (v = value())) {
      name = v;
    } else if (arg == "--delay-us" && (v = value())) {
      delay_us = std::strtol(v, nullptr, 10);
      if (delay_us < 0) return Usage("--delay-us must be >= 0");
    } else if (arg == "--retry-first-ms" && (v = value())) {
      retry_first_ms = std::strtol(v, nullptr, 10);
      if (retry_first_ms < 0) return Usage("--retry-first-ms must be >= 0");
    } else if (arg == "--workers" && (v = value())) {
      workers = static_cast<int>(std::strtol(v, nullptr, 10));
      if (workers < 1 || workers > 64) return Usage("--workers must be 1..64");
    } else if (arg == "--set" && (v = value())) {
      const char* eq = std::strchr(v, '=');
      if (eq == nullptr) return Usage("--set needs key=value");
      sets.emplace_back(std::string(v, eq), std::string(eq + 1));
    } else {
      return Usage(("unknown or incomplete argument: " + arg).c_str());
    }
  }
  if (brokers.empty() || ns.empty() || name.empty()) {
    return Usage("--brokers, --namespace and --processor are required");
  }

  batchbus::Config config;
  config.brokers = brokers;
  config.ns = ns;
  config.client_id = "echo_processor";
  for (const auto& [key, val] : sets) {
    absl::Status s = config.Set(key, val);
    if (!s.ok()) {
      std::fprintf(stderr, "echo_processor: --set %s=%s: %s\n", key.c_str(),
                   val.c_str(), s.ToString().c_str());
      return 1;
    }
  }

  // Signals first: a SIGTERM that arrives while the processor is being
  // created is honoured as soon as it exists.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = &OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  auto created = batchbus::Processor::Create(config, name);
  if (!created.ok()) {
    std::fprintf(stderr, "echo_processor: %s\n",
                 created.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<batchbus::Processor> processor = std::move(*created);
  g_processor.store(processor.get());
  if (g_signalled) processor->Shutdown();
  std::printf("echo_processor: running (pid %d, processor %s, namespace %s)\n",
              static_cast<int>(getpid()), name.c_str(), ns.c_str());
  std::fflush(stdout);

  batchbus::Processor::Handler echo = [delay_us,
                                       retry_first_ms](batchbus::Task& task) {
    if (delay_us > 0) usleep(static_cast<useconds_t>(delay_us));
    if (retry_first_ms >= 0 && task.attempt() == 1) {
      (void)task.Retry("first attempts fail",
                       absl::Milliseconds(retry_first_ms));
      return;
    }
    (void)task.Complete(task.data());
  };
  // Run() looks handlers up by group; answer every group the same way by
  // driving Next() directly.
  std::atomic<bool> failed{false};
  auto worker = [&] {
    while (true) {
      absl::StatusOr<batchbus::Task> task =
          processor->Next(absl::Milliseconds(200));
      if (task.ok()) {
        echo(*task);
        continue;
      }
      if (absl::IsDeadlineExceeded(task.status())) continue;
      if (absl::IsCancelled(task.status())) return;
      std::fprintf(stderr, "echo_processor: Next: %s\n",
                   task.status().ToString().c_str());
      failed = true;
      processor->Shutdown();
      return;
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < workers; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();

  absl::Status closed = processor->Close(config.close_timeout);
  g_processor.store(nullptr);
  const batchbus::Processor::Stats s = processor->GetStats();
  std::printf(
      "echo_processor: stopped: handed_out=%llu processed_ok=%llu "
      "batches_received=%llu batches_committed=%llu close=%s\n",
      static_cast<unsigned long long>(s.handed_out),
      static_cast<unsigned long long>(s.processed_ok),
      static_cast<unsigned long long>(s.batches_received),
      static_cast<unsigned long long>(s.batches_committed),
      closed.ok() ? "ok" : closed.ToString().c_str());
  std::fflush(stdout);
  processor.reset();
  return failed ? 3 : 0;
}

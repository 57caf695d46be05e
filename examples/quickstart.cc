// quickstart.cc — the smallest batchbus program: one submitter and one
// processor in the same process, on the embedded broker (mock://).
//
// Start here. examples/payments/ shows the two halves as separate programs.
#include <iostream>
#include <thread>

#include "batchbus/batchbus.h"

int main() {
  batchbus::Config config;  // Defaults: brokers = "mock://" (embedded).

  // The worker side: answer every "greet" job.
  auto processor = batchbus::Processor::Create(config, "hello");
  if (!processor.ok()) {
    std::cerr << processor.status() << "\n";
    return 1;
  }
  std::thread worker([&] {
    (void)(*processor)->Run({{"greet", [](batchbus::Task& task) {
      (void)task.Complete(std::string("{\"greeting\":\"hello, \",\"who\":") +
                          std::string(task.data()) + "}");
    }}});
  });

  // The caller side: submit a job and wait for its result.
  auto submitter = batchbus::Submitter::Create(config);
  if (!submitter.ok()) {
    std::cerr << submitter.status() << "\n";
    return 1;
  }
  batchbus::Job job;
  job.processor = "hello";
  job.group = "greet";
  job.priority = batchbus::Priority::kRealtime;
  job.data = R"("world")";
  auto result = (*submitter)->SubmitAndWait(job, absl::Seconds(30));

  int rc = 1;
  if (!result.ok()) {
    std::cerr << "submit failed: " << result.status() << "\n";
  } else {
    std::cout << batchbus::JobStatusName(result->status) << " " << result->data
              << result->error << "\n";
    rc = result->ok() ? 0 : 1;
  }
  (*submitter)->Close(absl::Seconds(5)).IgnoreError();
  (*processor)->Shutdown();
  worker.join();
  (*processor)->Close(absl::Seconds(5)).IgnoreError();
  return rc;
}

// Uses only the installed public headers and batchbus::batchbus; needs no
// broker. Exits non-zero (with a message) if anything is off.
#include <cstdlib>
#include <iostream>
#include <string>

#include "batchbus/batchbus.h"

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "FAIL: " << what << "\n";
    ++failures;
  }
}

}  // namespace

int main() {
  batchbus::Config config;
  config.brokers = "kafka://127.0.0.1:1";
  Check(config.Validate().ok(),
        "default config with kafka:// brokers validates: " +
            config.Validate().ToString());

  for (batchbus::Priority p : batchbus::kAllPriorities) {
    const std::string name(batchbus::PriorityName(p));
    std::cout << "priority " << static_cast<int>(p) << " = " << name
              << ", topic " << config.TopicFor("payments", p) << "\n";
    Check(batchbus::ParsePriority(name) == p, "ParsePriority(" + name + ")");
  }

  absl::Status set = config.Set("normal.max_jobs", "7");
  Check(set.ok(), "Set(normal.max_jobs, 7): " + set.ToString());
  Check(config.For(batchbus::Priority::kNormal).max_jobs == 7,
        "normal.max_jobs is 7 after Set");
  Check(!config.Set("normal.max_jobs", "abc").ok(),
        "Set(normal.max_jobs, abc) is rejected");
  Check(!config.Set("no.such.key", "1").ok(), "unknown key is rejected");

  const batchbus::JobId id = batchbus::JobId::Random();
  Check(batchbus::JobId::FromString(id.ToString()) == id,
        "JobId text form round-trips");

  if (failures != 0) {
    std::cerr << "install consumer: " << failures << " check(s) failed\n";
    return EXIT_FAILURE;
  }
  std::cout << "install consumer: OK\n";
  return EXIT_SUCCESS;
}

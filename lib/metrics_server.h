// The opt-in metrics listener (Config::metrics_port): a minimal HTTP/1.1
// server that answers GET /metrics with the Prometheus text of every
// submitter and processor registered on its address and port. Submitters
// and processors of one process that name the same port share one
// listener, and each metric family appears once.
//
// It serves one connection at a time, each bounded by a 2 s read and write
// timeout, so a stuck scraper delays the next scrape and nothing else: no
// job path waits on it. It is built on sockets, not an HTTP library, so that
// the library needs no dependency for it.
//
// Threads: Register and ~MetricsRegistration from any thread; collectors
// run on the listener's thread, and never after their registration is gone.
#ifndef BATCHBUS_LIB_METRICS_SERVER_H_
#define BATCHBUS_LIB_METRICS_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics_writer.h"

namespace batchbus {

class MetricsListener;

// Holds a collector on its listener; unregisters it when destroyed (and
// stops the listener when it was the last one).
class MetricsRegistration {
 public:
  MetricsRegistration() = default;
  MetricsRegistration(std::shared_ptr<MetricsListener> listener, uint64_t id)
      : listener_(std::move(listener)), id_(id) {}
  MetricsRegistration(MetricsRegistration&& other) noexcept;
  MetricsRegistration& operator=(MetricsRegistration&& other) noexcept;
  ~MetricsRegistration() { Reset(); }

  void Reset();
  // The port listened on (the one asked for, or the one picked for 0 in
  // tests); 0 when not registered.
  int port() const;

 private:
  std::shared_ptr<MetricsListener> listener_;
  uint64_t id_ = 0;
};

using MetricsCollector = std::function<void(MetricsWriter&)>;

// Registers `collect` on the listener at `address`:`port`, starting it if
// none runs there. Unavailable with the cause when the port cannot be
// bound (in use, not permitted).
absl::StatusOr<MetricsRegistration> RegisterMetrics(const std::string& address,
                                                    int port,
                                                    MetricsCollector collect);

}  // namespace batchbus

#endif  // BATCHBUS_LIB_METRICS_SERVER_H_

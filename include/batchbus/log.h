// batchbus/log.h — where batchbus's log lines go, and how many.
//
// By default lines go to stderr, at warning level and above (or the level
// named by $BATCHBUS_LOG_LEVEL: error, warning, info or debug; or the
// config key `log_level`). An application routes them into its own logger
// (spdlog, glog, ...) with SetLogSink. librdkafka's own lines come through
// the same sink, as component "librdkafka".
//
// No line carries a secret: the values of secret properties
// (`*password*`, `*secret*`, `ssl.key.pem`, `sasl.oauthbearer.config`)
// are replaced with "[redacted]" before any sink sees them, and so are they
// in error messages and metrics.
//
// Thread-safety: all functions are safe from any thread. The sink is called
// from any batchbus thread, possibly from several at once; it must not
// block for long, and must not call back into a Submitter or Processor.
#ifndef BATCHBUS_LOG_H_
#define BATCHBUS_LOG_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "absl/time/time.h"

namespace batchbus {

enum class LogLevel : uint8_t { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// "error", "warning", "info", "debug".
std::string_view LogLevelName(LogLevel level);
std::optional<LogLevel> ParseLogLevel(std::string_view name);

// A key/value pair of a line, e.g. {"topic", "payments.normal"}.
struct LogField {
  std::string_view key;
  std::string_view value;
};

// One line. The views are valid only during the sink's call.
struct LogRecord {
  absl::Time time;
  LogLevel level = LogLevel::kInfo;
  // What wrote it: "submitter", "processor", "delay-line", "kafka",
  // "librdkafka", "metrics", ...
  std::string_view component;
  std::string_view message;
  const LogField* fields = nullptr;
  size_t num_fields = 0;
};

using LogSink = std::function<void(const LogRecord& record)>;

// Replaces the process-wide sink; nullptr restores stderr.
void SetLogSink(LogSink sink);

// Lines above `level` are not written (nor formatted).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

}  // namespace batchbus

#endif  // BATCHBUS_LOG_H_

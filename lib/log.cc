#include "log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "mutex.h"
#include "secrets.h"

namespace batchbus {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("BATCHBUS_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kWarning;
  return ParseLogLevel(env).value_or(LogLevel::kWarning);
}

std::atomic<int>& Threshold() {
  static std::atomic<int> threshold{static_cast<int>(LevelFromEnv())};
  return threshold;
}

struct SinkHolder {
  Mutex mu;
  std::shared_ptr<const LogSink> sink ABSL_GUARDED_BY(mu);
};

SinkHolder& TheSink() {
  static SinkHolder* holder = new SinkHolder;
  return *holder;
}

void WriteStderr(const LogRecord& r) {
  static constexpr const char* kNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  std::string line = StrCat(
      absl::FormatTime("%H:%M:%E3S", r.time, absl::LocalTimeZone()),
      " batchbus ", kNames[static_cast<int>(r.level)], " [", r.component,
      "] ", r.message);
  for (size_t i = 0; i < r.num_fields; ++i) {
    line += StrCat(" ", r.fields[i].key, "=", r.fields[i].value);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "unknown";
}

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarning, LogLevel::kInfo,
                     LogLevel::kDebug}) {
    if (name == LogLevelName(l)) return l;
  }
  if (name == "warn") return LogLevel::kWarning;
  return std::nullopt;
}

void SetLogSink(LogSink sink) {
  auto next = sink ? std::make_shared<const LogSink>(std::move(sink)) : nullptr;
  SinkHolder& h = TheSink();
  MutexLock lock(&h.mu);
  h.sink = std::move(next);
}

void SetLogLevel(LogLevel level) {
  Threshold().store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel GetLogLevel() {
  return static_cast<LogLevel>(Threshold().load(std::memory_order_relaxed));
}

namespace log {

bool Enabled(Level level) {
  return static_cast<int>(level) <=
         Threshold().load(std::memory_order_relaxed);
}

void Emit(Level level, std::string_view component, std::string_view message,
          std::initializer_list<LogField> fields) {
  const std::string scrubbed = Scrub(message);
  std::vector<std::string> values;
  std::vector<LogField> shown;
  values.reserve(fields.size());
  shown.reserve(fields.size());
  for (const LogField& f : fields) {
    values.push_back(Scrub(Shown(f.key, f.value)));
    shown.push_back({f.key, values.back()});
  }
  LogRecord record{absl::Now(), level,        component,
                   scrubbed,    shown.data(), shown.size()};
  std::shared_ptr<const LogSink> sink;
  {
    SinkHolder& h = TheSink();
    MutexLock lock(&h.mu);
    sink = h.sink;
  }
  if (sink == nullptr) {
    WriteStderr(record);
    return;
  }
  try {
    (*sink)(record);
  } catch (...) {
    // A sink that throws loses its line, never the caller's work.
  }
}

}  // namespace log
}  // namespace batchbus

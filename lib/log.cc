#include "log.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "strcat.h"
#include "absl/time/time.h"

namespace batchbus::log {
namespace {

Level LevelFromEnv() {
  const char* env = std::getenv("BATCHBUS_LOG_LEVEL");
  if (env == nullptr) return Level::kWarning;
  std::string_view v(env);
  if (v == "error") return Level::kError;
  if (v == "info") return Level::kInfo;
  if (v == "debug") return Level::kDebug;
  return Level::kWarning;
}

}  // namespace

bool Enabled(Level level) {
  static const Level threshold = LevelFromEnv();
  return level <= threshold;
}

void Write(Level level, std::string_view message) {
  static constexpr const char* kNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  std::string line = batchbus::StrCat(
      absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()),
      " batchbus ", kNames[static_cast<int>(level)], " ", message, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace batchbus::log

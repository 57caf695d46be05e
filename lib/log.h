// Minimal logging to stderr. Level from $BATCHBUS_LOG_LEVEL
// (error|warning|info|debug; default warning).
#ifndef BATCHBUS_LIB_LOG_H_
#define BATCHBUS_LIB_LOG_H_

#include <string_view>

#include "strcat.h"

namespace batchbus::log {

enum class Level { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
void Error(const Args&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, batchbus::StrCat(args...));
}
template <typename... Args>
void Warning(const Args&... args) {
  if (Enabled(Level::kWarning)) Write(Level::kWarning, batchbus::StrCat(args...));
}
template <typename... Args>
void Info(const Args&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, batchbus::StrCat(args...));
}
template <typename... Args>
void Debug(const Args&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, batchbus::StrCat(args...));
}

}  // namespace batchbus::log

#endif  // BATCHBUS_LIB_LOG_H_

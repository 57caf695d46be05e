// Logging inside the library: each line names its component and may carry
// key/value fields; batchbus/log.h says where lines go. Messages are
// formatted only when their level is enabled.
#ifndef BATCHBUS_LIB_LOG_H_
#define BATCHBUS_LIB_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "batchbus/log.h"
#include "strcat.h"

namespace batchbus::log {

using Level = LogLevel;

bool Enabled(Level level);
// Scrubs secrets from `message` and the fields, then hands the line to the
// sink.
void Emit(Level level, std::string_view component, std::string_view message,
          std::initializer_list<LogField> fields = {});

template <typename... Args>
void Error(std::string_view component, const Args&... args) {
  if (Enabled(Level::kError)) Emit(Level::kError, component, StrCat(args...));
}
template <typename... Args>
void Warning(std::string_view component, const Args&... args) {
  if (Enabled(Level::kWarning)) {
    Emit(Level::kWarning, component, StrCat(args...));
  }
}
template <typename... Args>
void Info(std::string_view component, const Args&... args) {
  if (Enabled(Level::kInfo)) Emit(Level::kInfo, component, StrCat(args...));
}
template <typename... Args>
void Debug(std::string_view component, const Args&... args) {
  if (Enabled(Level::kDebug)) Emit(Level::kDebug, component, StrCat(args...));
}

}  // namespace batchbus::log

#endif  // BATCHBUS_LIB_LOG_H_

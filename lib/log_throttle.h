// LogThrottle: lets a warning that can repeat per message or per job out at
// most once a period, and says how many were held back in between.
//
// Threads: Allow() is safe from any thread (atomics, no lock).
#ifndef BATCHBUS_LIB_LOG_THROTTLE_H_
#define BATCHBUS_LIB_LOG_THROTTLE_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace batchbus {

class LogThrottle {
 public:
  explicit LogThrottle(absl::Duration period = absl::Seconds(1))
      : period_ns_(absl::ToInt64Nanoseconds(period)) {}

  // " (N more since the last line)" for a line that Allow() let out, or
  // nothing when none was held back.
  static std::string HeldBack(uint64_t held_back) {
    if (held_back == 0) return std::string();
    return " (" + std::to_string(held_back) + " more since the last line)";
  }

  // True when a line may go out now; `held_back` then says how many lines
  // were refused since the last one that went out.
  bool Allow(uint64_t& held_back) {
    const int64_t now = absl::GetCurrentTimeNanos();
    int64_t last = last_ns_.load(std::memory_order_relaxed);
    if (now - last < period_ns_ ||
        !last_ns_.compare_exchange_strong(last, now,
                                          std::memory_order_relaxed)) {
      held_back_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    held_back = held_back_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  const int64_t period_ns_;
  std::atomic<int64_t> last_ns_{std::numeric_limits<int64_t>::min() / 2};
  std::atomic<uint64_t> held_back_{0};
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_LOG_THROTTLE_H_

// live_stats.h — what the webstore's dashboard shows: jobs per second and
// round-trip latency p50/p99 per priority, one point per second for the last
// five minutes.
//
// Request threads call Record() when a job ends; a sampler calls Tick() once
// a second, which closes the current second. Thread-safe.
#ifndef BATCHBUS_EXAMPLES_HTTP_LIVE_STATS_H_
#define BATCHBUS_EXAMPLES_HTTP_LIVE_STATS_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "batchbus/job.h"

namespace webstore {

class LiveStats {
 public:
  static constexpr size_t kHistory = 300;  // Seconds kept.

  struct Point {
    int64_t unix_s = 0;
    // Per priority (batchbus::Priority order): jobs ended in that second,
    // how many of them did not end PROCESSED_OK, and latency percentiles
    // in milliseconds (0 when no job ended).
    std::array<uint64_t, batchbus::kNumPriorities> jobs{};
    std::array<uint64_t, batchbus::kNumPriorities> failed{};
    std::array<double, batchbus::kNumPriorities> p50_ms{};
    std::array<double, batchbus::kNumPriorities> p99_ms{};
  };

  void Record(batchbus::Priority priority, absl::Duration latency, bool ok) {
    const int p = static_cast<int>(priority);
    std::lock_guard<std::mutex> lock(mu_);
    current_[p].push_back(
        static_cast<float>(absl::ToDoubleMilliseconds(latency)));
    if (!ok) ++current_failed_[p];
  }

  // Closes the second that ends now.
  void Tick() {
    std::array<std::vector<float>, batchbus::kNumPriorities> samples;
    Point point;
    {
      std::lock_guard<std::mutex> lock(mu_);
      samples.swap(current_);
      point.failed = current_failed_;
      current_failed_ = {};
    }
    point.unix_s = absl::ToUnixSeconds(absl::Now());
    for (int p = 0; p < batchbus::kNumPriorities; ++p) {
      std::vector<float>& s = samples[p];
      point.jobs[p] = s.size();
      if (s.empty()) continue;
      std::sort(s.begin(), s.end());
      point.p50_ms[p] = s[Rank(s.size(), 0.50)];
      point.p99_ms[p] = s[Rank(s.size(), 0.99)];
    }
    std::lock_guard<std::mutex> lock(mu_);
    history_.push_back(point);
    if (history_.size() > kHistory) history_.pop_front();
  }

  // {"points":[{"t":...,"realtime":{"jobs":..,"failed":..,"p50_ms":..,
  // "p99_ms":..},"normal":{...},"slow":{...}},...]}
  std::string PointsJson() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out = "[";
    for (size_t i = 0; i < history_.size(); ++i) {
      const Point& pt = history_[i];
      absl::StrAppend(&out, i ? "," : "", "{\"t\":", pt.unix_s);
      for (batchbus::Priority pr : batchbus::kAllPriorities) {
        const int p = static_cast<int>(pr);
        absl::StrAppend(&out, ",\"", std::string(batchbus::PriorityName(pr)),
                        "\":{\"jobs\":", pt.jobs[p],
                        ",\"failed\":", pt.failed[p],
                        absl::StrFormat(",\"p50_ms\":%.2f,\"p99_ms\":%.2f}",
                                        pt.p50_ms[p], pt.p99_ms[p]));
      }
      out += "}";
    }
    return out + "]";
  }

 private:
  // Nearest-rank index of quantile q among n sorted samples.
  static size_t Rank(size_t n, double q) {
    size_t r = static_cast<size_t>(q * static_cast<double>(n) + 0.5);
    return std::clamp<size_t>(r, 1, n) - 1;
  }

  mutable std::mutex mu_;
  std::array<std::vector<float>, batchbus::kNumPriorities> current_;
  std::array<uint64_t, batchbus::kNumPriorities> current_failed_{};
  std::deque<Point> history_;
};

}  // namespace webstore

#endif  // BATCHBUS_EXAMPLES_HTTP_LIVE_STATS_H_

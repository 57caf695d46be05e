// A latency histogram that any thread records into without a lock, with
// fixed bucket bounds (seconds, as Prometheus histograms count them).
#ifndef BATCHBUS_LIB_HISTOGRAM_H_
#define BATCHBUS_LIB_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace batchbus {

class Histogram {
 public:
  // Upper bounds of the buckets, in seconds; one more bucket holds the rest.
  static constexpr std::array<double, 16> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  static constexpr size_t kBuckets = kBounds.size() + 1;
  static constexpr std::array<int64_t, kBounds.size()> kBoundsNs = [] {
    std::array<int64_t, kBounds.size()> ns{};
    for (size_t i = 0; i < ns.size(); ++i) {
      ns[i] = static_cast<int64_t>(kBounds[i] * 1e9 + 0.5);
    }
    return ns;
  }();

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // Per bucket, not cumulative.
    uint64_t count = 0;
    double sum_seconds = 0;
  };

  void Record(absl::Duration d) {
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns > 0 ? static_cast<uint64_t>(ns) : 0,
                      std::memory_order_relaxed);
  }

  // The count is the sum of the buckets read, so the snapshot is
  // consistent with itself even while others record.
  Snapshot Get() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
      s.count += s.counts[i];
    }
    s.sum_seconds =
        static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_HISTOGRAM_H_

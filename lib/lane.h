// Lanes: the two paths a job takes through Kafka clients. Realtime jobs have
// producers, consumers and reply partitions of their own (the realtime lane),
// so they never queue behind normal and slow traffic (the bulk lane).
#ifndef BATCHBUS_LIB_LANE_H_
#define BATCHBUS_LIB_LANE_H_

#include <array>
#include <cstddef>

#include "batchbus/job.h"

namespace batchbus {

enum class Lane : int { kRealtime = 0, kBulk = 1 };
inline constexpr int kNumLanes = 2;
inline constexpr std::array<Lane, kNumLanes> kAllLanes = {Lane::kRealtime,
                                                         Lane::kBulk};

constexpr Lane LaneOf(Priority p) {
  return p == Priority::kRealtime ? Lane::kRealtime : Lane::kBulk;
}

constexpr std::string_view LaneName(Lane lane) {
  return lane == Lane::kRealtime ? "realtime" : "bulk";
}

// One T per lane, indexed by Lane.
template <typename T>
class PerLane {
 public:
  T& operator[](Lane lane) { return items_[static_cast<size_t>(lane)]; }
  const T& operator[](Lane lane) const {
    return items_[static_cast<size_t>(lane)];
  }
  T& operator[](Priority p) { return (*this)[LaneOf(p)]; }
  const T& operator[](Priority p) const { return (*this)[LaneOf(p)]; }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::array<T, kNumLanes> items_{};
};

// One T per priority, indexed by Priority.
template <typename T>
class PerPriority {
 public:
  T& operator[](Priority p) { return items_[static_cast<size_t>(p)]; }
  const T& operator[](Priority p) const {
    return items_[static_cast<size_t>(p)];
  }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::array<T, kNumPriorities> items_{};
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_LANE_H_

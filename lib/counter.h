// A statistics counter that any thread bumps without a lock. Stats structs
// are snapshots read from these, so counting never contends with the state
// locks of the per-job path.
#ifndef BATCHBUS_LIB_COUNTER_H_
#define BATCHBUS_LIB_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace batchbus {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_COUNTER_H_

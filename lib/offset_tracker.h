// Offset tracker: which offset a partition may commit. A batch's offset is
// committed only when it and every batch before it in the partition are
// done, so a processor that dies leaves its unfinished batches to the next
// owner of the partition.
//
// Batches are ordered by offset, whatever order they are registered in
// (one that arrived through the consumer's fallback queue may come after a
// later one). Offsets need not be contiguous: Kafka leaves gaps.
//
// Pure: no Kafka. Threads: not thread-safe; the processor calls it under its
// state lock.
#ifndef BATCHBUS_LIB_OFFSET_TRACKER_H_
#define BATCHBUS_LIB_OFFSET_TRACKER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "batchbus/job.h"

namespace batchbus {

// A job topic's partition: the topic is named by its priority.
using PartitionKey = std::pair<Priority, int32_t>;

class OffsetTracker {
 public:
  // A batch at `offset` is in flight. Registering one twice is harmless.
  // An offset at or below what was already committed is ignored: that
  // batch was redelivered, and committing it again would go backwards.
  void Begin(PartitionKey partition, int64_t offset);

  // The batch at `offset` is done. Returns the offset to commit (one past
  // the last batch of the done prefix) when the prefix grew, else nothing.
  std::optional<int64_t> Finish(PartitionKey partition, int64_t offset);

  // The partition was revoked: forget it. Its batches in flight are the
  // next owner's; finishing them later commits nothing.
  void Forget(PartitionKey partition);

  // Batches registered and not yet committed.
  size_t in_flight(PartitionKey partition) const;

 private:
  struct Partition {
    std::map<int64_t, bool> batches;  // Offset -> done.
    int64_t committed = -1;           // Last offset committed past.
  };
  absl::flat_hash_map<PartitionKey, Partition> partitions_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_OFFSET_TRACKER_H_

#include "offset_tracker.h"

namespace batchbus {

void OffsetTracker::Begin(PartitionKey partition, int64_t offset) {
  Partition& p = partitions_[partition];
  if (offset <= p.committed) return;
  p.batches.try_emplace(offset, false);
}

std::optional<int64_t> OffsetTracker::Finish(PartitionKey partition,
                                             int64_t offset) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return std::nullopt;
  Partition& p = it->second;
  auto batch = p.batches.find(offset);
  if (batch == p.batches.end()) return std::nullopt;
  batch->second = true;
  std::optional<int64_t> commit;
  while (!p.batches.empty() && p.batches.begin()->second) {
    p.committed = p.batches.begin()->first;
    commit = p.committed + 1;
    p.batches.erase(p.batches.begin());
  }
  return commit;
}

void OffsetTracker::Forget(PartitionKey partition) {
  partitions_.erase(partition);
}

size_t OffsetTracker::in_flight(PartitionKey partition) const {
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.batches.size();
}

}  // namespace batchbus

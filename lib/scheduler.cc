#include "scheduler.h"

#include <algorithm>

namespace batchbus {

Scheduler::Scheduler(Options options)
    : options_(options), pacer_(options.pacer) {}

void Scheduler::Add(InBatch* batch) {
  if (batch->handed >= batch->size) return;
  ready_[batch->priority].push_back(batch);
  ready_jobs_[batch->priority] += batch->size - batch->handed;
}

std::optional<Scheduler::Pick> Scheduler::Take(absl::Time now,
                                               absl::Duration& retry_in) {
  for (Priority p : kAllPriorities) {
    auto& ready = ready_[p];
    if (ready.empty()) continue;
    if (p != Priority::kRealtime && pacer_.engaged() &&
        !pacer_.TryTake(now, retry_in)) {
      ++paced_;
      return std::nullopt;  // Lower priorities wait too.
    }
    InBatch* batch = ready.front();
    Pick pick{batch, batch->handed++, false};
    if (batch->handed == batch->size) ready.pop_front();
    const bool was_full = !HasRoom(p);
    --ready_jobs_[p];
    pick.room_opened = was_full && HasRoom(p);
    return pick;
  }
  return std::nullopt;
}

void Scheduler::Revoke(Priority p, int32_t partition) {
  auto& ready = ready_[p];
  auto gone = std::remove_if(ready.begin(), ready.end(), [&](InBatch* b) {
    if (b->partition != partition) return false;
    ready_jobs_[p] -= b->size - b->handed;
    b->size = b->handed;
    return true;
  });
  ready.erase(gone, ready.end());
}

}  // namespace batchbus

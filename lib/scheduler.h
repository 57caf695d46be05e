// Scheduler: the jobs decoded and ready to hand out, one list per priority,
// and the order they go in. A realtime job goes before any normal or slow
// job (also one of a batch half handed out), normal before slow; within a
// priority, batches go in arrival order and jobs in batch order.
//
// Prefetch: normal and slow messages are read from Kafka only while fewer
// than `prefetch_jobs` of that priority wait here (HasRoom), so a backlog
// stays in Kafka. Realtime is always read.
//
// Pacing: while realtime messages arrive late, normal and slow jobs go
// through the pacer's token bucket (lib/pacer.h). A held-back job is never
// passed by a lower priority.
//
// Pure: no Kafka, no clock of its own. Threads: not thread-safe; the
// processor calls it under its state lock.
#ifndef BATCHBUS_LIB_SCHEDULER_H_
#define BATCHBUS_LIB_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "absl/time/time.h"
#include "batchbus/job.h"
#include "in_batch.h"
#include "lane.h"
#include "pacer.h"

namespace batchbus {

class Scheduler {
 public:
  struct Options {
    size_t prefetch_jobs = 20'000;
    bool pacing = true;
    Pacer::Options pacer;
  };

  // One job to hand out.
  struct Pick {
    InBatch* batch = nullptr;
    uint32_t index = 0;
    // Its priority fell below the prefetch bound by this pick: the reader
    // may fetch more.
    bool room_opened = false;
  };

  explicit Scheduler(Options options);

  // The batch's jobs from batch->handed to batch->size are ready.
  void Add(InBatch* batch);

  // The next job, highest priority first; nothing when none is ready or
  // pacing holds the next one back (then `retry_in` says for how long).
  std::optional<Pick> Take(absl::Time now, absl::Duration& retry_in);

  // Whether the reader may decode more messages of priority `p`.
  bool HasRoom(Priority p) const {
    return p == Priority::kRealtime || ready_jobs_[p] < options_.prefetch_jobs;
  }

  // The partition was revoked: its batches leave the ready lists, and each
  // keeps only the jobs already handed out (batch->size = batch->handed).
  void Revoke(Priority p, int32_t partition);

  // A realtime message arrived `delay` after it was produced.
  void OnRealtime(absl::Time now, absl::Duration delay) {
    if (options_.pacing) pacer_.OnRealtime(now, delay);
  }

  size_t ready_jobs(Priority p) const { return ready_jobs_[p]; }
  const Pacer& pacer() const { return pacer_; }
  uint64_t paced() const { return paced_; }  // Picks held back by pacing.

 private:
  Options options_;
  PerPriority<std::deque<InBatch*>> ready_;
  PerPriority<size_t> ready_jobs_;
  Pacer pacer_;
  uint64_t paced_ = 0;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_SCHEDULER_H_

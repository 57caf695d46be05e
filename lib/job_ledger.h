// Job ledger: every job whose batch was sealed and that has no terminal
// result yet, by batch; the one timeout queue; matching processors' answers
// to jobs; telling late answers apart. Each job ends here exactly once,
// whichever comes first: an answer, its batch's timeout, a failed delivery,
// or the close. Pure: no Kafka, no clock of its own (callers pass `now`).
//
// Timeouts: the batch timeout is fixed per priority, so batches sealed in
// order expire in order: one FIFO per priority is the whole timer
// structure, O(1) per batch. Entries of batches that ended early are skipped
// when they reach the front.
//
// Threads: not thread-safe. The Submitter calls it under its state lock; it
// runs no callback (it hands them out in an Outcome).
#ifndef BATCHBUS_LIB_JOB_LEDGER_H_
#define BATCHBUS_LIB_JOB_LEDGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "batchbus/job.h"
#include "completions.h"
#include "lane.h"
#include "wire.h"

namespace batchbus {

// A job on its way: its id, where its result goes, the encoded bytes it
// holds of the in-flight limit, and (kept by the ledger) whether it ended.
struct PendingJob {
  JobId id;
  ResultSink sink;
  uint32_t bytes = 0;
  bool ended = false;
};

// Batch numbers carry their batch's priority in their two low bits, so an
// answer that comes after its batch left the ledger still names the
// priority it was submitted with.
constexpr uint64_t MakeBatchSeq(uint64_t n, Priority p) {
  return (n << 2) | static_cast<uint64_t>(p);
}
constexpr Priority PriorityOfBatchSeq(uint64_t seq) {
  const uint64_t p = seq & 3;
  return p < kNumPriorities ? static_cast<Priority>(p) : Priority::kNormal;
}

class JobLedger {
 public:
  // Batches of priority p time out `timeouts[p]` after they are tracked.
  // `all_events`: every job's events go to the Outcome, with or without a
  // callback (for the status book).
  explicit JobLedger(const PerPriority<absl::Duration>& timeouts,
                     bool all_events = false)
      : timeouts_(timeouts), all_events_(all_events) {}

  // Takes the jobs of sealed batch `seq`, sent to `topic` (for messages).
  // `acknowledged`, when given, is set once a broker has the batch: a
  // timeout's reason then says whether it got that far.
  void Track(uint64_t seq, std::string topic, std::vector<PendingJob> jobs,
             absl::Time now,
             std::shared_ptr<const std::atomic<bool>> acknowledged = nullptr);

  // Matches a result message's answers. An answer ends its job unless the
  // job already ended, is unknown, or its id does not match (seq, index):
  // then it is late. An event goes to its job's event callback, if the job
  // has one and has not ended; else it is dropped.
  void Answer(const std::vector<wire::ResultEntry>& entries, Outcome& out);

  // Ends the unanswered jobs of batch `seq` as BATCH_FAILED with `why`
  // (its message could not be sent). Nothing for a batch no longer here.
  void FailBatch(uint64_t seq, std::string_view why, Outcome& out);

  // Ends the unanswered jobs of every batch whose timeout is at or before
  // `now`. Returns when the next timeout is due (InfiniteFuture if none).
  absl::Time Expire(absl::Time now, Outcome& out);

  // Ends every job still here as BATCH_FAILED with `why`; returns how many.
  size_t FailAll(std::string_view why, Outcome& out);

  size_t batches() const { return batches_.size(); }

 private:
  struct Batch {
    std::string topic;
    std::vector<PendingJob> jobs;
    size_t unended = 0;
    absl::Time sent;
    std::shared_ptr<const std::atomic<bool>> acknowledged;
  };
  using Batches = absl::flat_hash_map<uint64_t, Batch>;

  // Ends job `index` of `batch`, which has not ended yet, with `result`.
  static void End(Batch& batch, uint32_t index, JobResult result,
                  Outcome& out);
  static void FailUnended(uint64_t seq, Batch& batch, std::string_view why,
                          Outcome& out);
  std::string TimeoutReason(uint64_t seq, const Batch& batch) const;

  PerPriority<absl::Duration> timeouts_;
  bool all_events_ = false;
  Batches batches_;
  PerPriority<std::deque<std::pair<absl::Time, uint64_t>>> timers_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_JOB_LEDGER_H_

// Status book: what a submitter knows of each job it holds, for
// Submitter::GetJobState: submitted, started, its last progress, or ended
// with its result, kept `retention` after the end and then forgotten.
// Memory: one entry per job in flight (bounded by max_inflight_jobs) plus
// the jobs that ended within the retention.
//
// Pure: no clock of its own (callers pass `now`). Threads: not thread-safe;
// the Submitter calls it under its state lock.
#ifndef BATCHBUS_LIB_STATUS_BOOK_H_
#define BATCHBUS_LIB_STATUS_BOOK_H_

#include <deque>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "batchbus/submitter.h"

namespace batchbus {

class StatusBook {
 public:
  explicit StatusBook(absl::Duration retention) : retention_(retention) {}

  void Submitted(const JobId& id);
  // Events and results of jobs it does not hold are ignored.
  void Event(const JobEvent& event);
  void Ended(const JobResult& result, absl::Time now);
  // Forgets jobs that ended more than `retention` before `now`.
  void Forget(absl::Time now);

  std::optional<Submitter::JobState> Find(const JobId& id) const;
  size_t size() const { return jobs_.size(); }

 private:
  const absl::Duration retention_;
  absl::flat_hash_map<JobId, Submitter::JobState> jobs_;
  std::deque<std::pair<absl::Time, JobId>> ended_;  // In order of ending.
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_STATUS_BOOK_H_

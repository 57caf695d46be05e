// batchbus/job.h — the vocabulary shared by submitters and processors.
//
// A Job is one unit of work: `data` is an arbitrary JSON value (kept as raw
// JSON text, validated once at Submit and never re-serialised), `processor`
// names the worker application that handles it and `group` picks the handler
// inside that application. A JobResult is the terminal answer for one job.
//
// Plain value types; no thread-safety concerns beyond those of std::string.
#ifndef BATCHBUS_JOB_H_
#define BATCHBUS_JOB_H_

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace batchbus {

// Priorities in the order the processor serves them.
enum class Priority : uint8_t {
  kRealtime = 0,  // Sent at once as a batch of one; processed first.
  kNormal = 1,    // Batched; processed when no realtime job waits.
  kSlow = 2,      // Batched most; processed when nothing else waits.
};
inline constexpr int kNumPriorities = 3;
inline constexpr std::array<Priority, kNumPriorities> kAllPriorities = {
    Priority::kRealtime, Priority::kNormal, Priority::kSlow};

// "realtime", "normal", "slow" (also the topic suffixes).
std::string_view PriorityName(Priority p);
std::optional<Priority> ParsePriority(std::string_view name);

enum class JobStatus : uint8_t {
  kNew = 0,             // Created, not yet submitted.
  kSubmitted = 1,       // Accepted by a submitter, awaiting its result.
  kProcessedOk = 2,     // The processor completed it; `data` holds its output.
  kProcessedError = 3,  // The processor failed it; `error` says why.
  kBatchFailed = 4,     // No result in time, the batch could not be
                        // delivered, or the submitter closed; `error` says
                        // which. The job may or may not have been processed.
  kExpired = 5,         // Its deadline passed before a processor handed it
                        // out: it was NOT processed, and resubmitting it is
                        // safe. `error` says when.
};

// "NEW", "SUBMITTED", "PROCESSED_OK", "PROCESSED_ERROR", "BATCH_FAILED",
// "EXPIRED".
std::string_view JobStatusName(JobStatus s);
std::optional<JobStatus> ParseJobStatus(std::string_view name);

// True for the four statuses a job can end in.
constexpr bool IsTerminal(JobStatus s) {
  return s == JobStatus::kProcessedOk || s == JobStatus::kProcessedError ||
         s == JobStatus::kBatchFailed || s == JobStatus::kExpired;
}

// 128 random bits. The text form is 32 lowercase hex digits and is stable:
// FromString(ToString()) gives back the same id.
class JobId {
 public:
  constexpr JobId() = default;
  constexpr JobId(uint64_t hi, uint64_t lo) : hi_(hi), lo_(lo) {}

  // A fresh random id (thread-safe, no system call after the first use on a
  // thread).
  static JobId Random();
  static std::optional<JobId> FromString(std::string_view text);

  std::string ToString() const;
  // Writes the 32 hex digits to `out` (no terminator).
  void AppendTo(std::string& out) const;

  bool IsZero() const { return hi_ == 0 && lo_ == 0; }
  uint64_t hi() const { return hi_; }
  uint64_t lo() const { return lo_; }

  friend bool operator==(const JobId& a, const JobId& b) {
    return a.hi_ == b.hi_ && a.lo_ == b.lo_;
  }
  friend bool operator!=(const JobId& a, const JobId& b) { return !(a == b); }
  friend bool operator<(const JobId& a, const JobId& b) {
    return a.hi_ != b.hi_ ? a.hi_ < b.hi_ : a.lo_ < b.lo_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const JobId& id) {
    return H::combine(std::move(h), id.hi_, id.lo_);
  }
  friend std::ostream& operator<<(std::ostream& os, const JobId& id) {
    return os << id.ToString();
  }

 private:
  uint64_t hi_ = 0;
  uint64_t lo_ = 0;
};

struct Job {
  JobId id;               // Zero means "assign a random id at Submit".
  std::string processor;  // Worker application, e.g. "payments". Required.
  std::string group;      // Kind of job, e.g. "payment-submit". Required.
  Priority priority = Priority::kNormal;
  JobStatus status = JobStatus::kNew;
  std::string data = "null";  // Any JSON value, as text.
  // No processor hands the job out at or after `deadline` (less the
  // processors' Config::deadline_skew): it ends EXPIRED instead, not
  // processed, and no retry is scheduled past it. Task::deadline() passes
  // it on to the handler.
  absl::Time deadline = absl::InfiniteFuture();
  // No processor hands the job out before `not_before`; until then it waits
  // in Kafka (a delay tier), not in memory, and holds back no other job. It
  // must come before its batch timeout (PriorityConfig::batch_timeout) ends
  // the wait for its result.
  absl::Time not_before = absl::InfinitePast();
  // W3C trace context (https://www.w3.org/TR/trace-context/), carried on
  // the wire to Task::traceparent() and back in the JobResult, so a trace
  // crosses the bus. Empty: none. A traceparent must be 55 characters,
  // "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", and a
  // tracestate at most 512 printable characters, or Submit refuses the job.
  std::string traceparent;
  std::string tracestate;
};

// A job's non-terminal news, for the event callback given to Submit:
// `kStarted` when a processor hands it out (each attempt), `kProgress` with
// the JSON its handler passed to Task::Progress (the latest of several may
// be all that arrives). Events come before the job's terminal result and
// never after it.
struct JobEvent {
  enum class Kind : uint8_t { kStarted, kProgress };
  JobId job_id;
  Kind kind = Kind::kStarted;
  std::string data;      // Progress JSON; empty for kStarted.
  uint32_t attempt = 1;  // The attempt it belongs to.
};

struct JobResult {
  JobId job_id;
  JobStatus status = JobStatus::kNew;
  std::string data;   // JSON text from the handler (PROCESSED_OK), else "".
  // Why it failed (PROCESSED_ERROR, BATCH_FAILED, EXPIRED).
  std::string error;
  Priority priority = Priority::kNormal;
  // Attempts the processor made (1 for every answered job today); 0 when no
  // processor answered (BATCH_FAILED).
  uint32_t attempts = 0;
  // The job's trace context, as the processor saw it (empty when no
  // processor answered).
  std::string traceparent;
  std::string tracestate;

  bool ok() const { return status == JobStatus::kProcessedOk; }
};

}  // namespace batchbus

#endif  // BATCHBUS_JOB_H_

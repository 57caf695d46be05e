// The wire format: one Kafka message carries one batch of jobs, and one
// result message carries results for one submitter instance. Both are JSON
// with a version field; docs/wire-format.md is the reference.
//
// Job data and result data are embedded as raw JSON text: the encoders copy
// the bytes validated at the edge, and the decoders return views into the
// message, so data is never re-serialised.
#ifndef BATCHBUS_LIB_WIRE_H_
#define BATCHBUS_LIB_WIRE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "batchbus/job.h"

namespace batchbus::wire {

// Version 2 adds the job lifecycle fields (JobFields, expires_ms, events,
// EXPIRED, attempts). Writers write kVersion; readers read both. A
// processor answers a version-1 batch in version 1.
inline constexpr int kVersion = 2;
inline constexpr int kOldestVersion = 1;

// Bytes of a batch message outside its jobs, beyond the header strings
// (the largest header is 175 bytes: a 20-digit seq, a 10-digit partition,
// a 20-digit expires_ms).
inline constexpr size_t kBatchOverhead = 192;
// Bytes of one result entry, or of a result message's envelope, outside the
// result's data or quoted error.
inline constexpr size_t kResultOverhead = 160;

struct BatchHeader {
  std::string_view instance;     // Submitter instance id (32 hex digits).
  uint64_t seq = 0;              // Batch number within the instance.
  std::string_view reply_topic;  // Where results go...
  int32_t reply_partition = 0;   // ...and to which partition.
  std::string_view processor;
  Priority priority = Priority::kNormal;
  // Unix ms at which the submitter stops waiting for these jobs' results
  // (0: not said). Version 2.
  int64_t expires_ms = 0;
};

// A job's lifecycle fields (version 2). Each is written only when it
// differs from its default, so a plain job costs no byte more.
struct JobFields {
  uint32_t attempt = 1;          // This delivery's attempt, from 1.
  int64_t first_attempt_ms = 0;  // Unix ms attempt 1 ended retriable (0: none).
  int64_t not_before_ms = 0;     // Not handed out earlier (0: at once).
  int64_t deadline_ms = 0;       // Not handed out later (0: none).
  int64_t expires_ms = 0;        // Overrides the batch's expires_ms (0: not).
  uint32_t index = kOwnIndex;    // Its index in the submitter's batch, when
                                 // it travels alone (a retry, a delay).
  bool events = false;           // The submitter wants started/progress.
  bool reserved = false;         // Its rate-limit slot is already taken.
  std::string_view last_error;   // Why the previous attempt failed.
  std::string_view traceparent;  // W3C trace context (empty: none).
  std::string_view tracestate;

  static constexpr uint32_t kOwnIndex = UINT32_MAX;
  bool plain() const {
    return attempt == 1 && first_attempt_ms == 0 && not_before_ms == 0 &&
           deadline_ms == 0 && expires_ms == 0 && index == kOwnIndex &&
           !events && !reserved && last_error.empty() &&
           traceparent.empty() && tracestate.empty();
  }
};

// Builds one batch message job by job; the message is complete after
// Finish().
class BatchWriter {
 public:
  void Begin(const BatchHeader& header);
  // Sizes the buffer for a message of about `bytes`, so that a batch grows
  // without reallocating and copying as jobs are added.
  void Reserve(size_t bytes) { buf_.reserve(bytes); }
  // Exact bytes AddJob would append for this job (separator included);
  // an upper bound when `fields` is not plain.
  static size_t JobSize(std::string_view group, std::string_view data,
                        const JobFields* fields = nullptr);
  void AddJob(const JobId& id, std::string_view group, std::string_view data,
              const JobFields* fields = nullptr);
  // Size of the message once finished.
  size_t FinishedSize() const { return buf_.size() + 2; }
  size_t jobs() const { return jobs_; }
  // Closes the message and hands over its bytes; the writer is empty again.
  std::string Finish();

 private:
  std::string buf_;
  size_t jobs_ = 0;
};

struct DecodedJob {
  JobId id;
  std::string_view group;
  std::string_view data;  // Raw JSON text.
  JobFields fields;       // Version 2; defaults in a version-1 batch.
};

// A decoded batch; every view points into `storage`.
struct DecodedBatch {
  std::unique_ptr<char[]> storage;
  std::string_view instance;
  uint64_t seq = 0;
  std::string_view reply_topic;
  int32_t reply_partition = 0;
  std::string_view processor;
  Priority priority = Priority::kNormal;
  int version = kVersion;
  int64_t expires_ms = 0;
  std::vector<DecodedJob> jobs;
};

// A result message's entry: a job's terminal result, or (version 2) an
// event about a job that has not ended.
struct ResultEntry {
  enum class Kind : uint8_t { kResult, kStarted, kProgress };
  Kind kind = Kind::kResult;
  uint64_t seq = 0;
  uint32_t index = 0;
  JobId id;
  JobStatus status = JobStatus::kProcessedOk;  // kResult only.
  std::string_view data;   // Raw JSON (PROCESSED_OK, progress), else empty.
  std::string_view error;  // Unescaped (PROCESSED_ERROR, EXPIRED), else empty.
  uint32_t attempts = 0;   // Attempts made (result), this attempt (event).
  std::string_view traceparent;  // The job's trace context (result only).
  std::string_view tracestate;
};

// Builds one result message for one submitter instance, in `version` (the
// version of the batches it answers).
class ResultWriter {
 public:
  void Begin(std::string_view instance, int version = kVersion);
  // `attempts` is written (version 2) when above 1; the job's trace
  // context (from `fields`) when it has one.
  void AddOk(uint64_t seq, uint32_t index, const JobId& id,
             std::string_view data, uint32_t attempts = 1,
             const JobFields* fields = nullptr);
  void AddError(uint64_t seq, uint32_t index, const JobId& id,
                std::string_view error, uint32_t attempts = 1,
                const JobFields* fields = nullptr);
  // EXPIRED; a version-1 reader gets PROCESSED_ERROR with the same error.
  void AddExpired(uint64_t seq, uint32_t index, const JobId& id,
                  std::string_view error, const JobFields* fields = nullptr);
  // A started or progress event (`data`: progress JSON). Version 2 only:
  // false, writing nothing, in a version-1 message.
  bool AddEvent(uint64_t seq, uint32_t index, const JobId& id,
                ResultEntry::Kind kind, std::string_view data,
                uint32_t attempt);
  int version() const { return version_; }
  size_t size() const { return buf_.size(); }
  size_t results() const { return results_; }
  bool empty() const { return results_ == 0; }
  std::string Finish();

 private:
  void AddPrefix(uint64_t seq, uint32_t index, const JobId& id);
  void AddAttempts(uint32_t attempts);
  void AddTrace(const JobFields* fields);
  std::string buf_;
  size_t results_ = 0;
  int version_ = kVersion;
};

// Decodes messages. Holds parser state; one per thread. Decoded views stay
// valid until the next call on the same decoder for ResultEntry::error, and
// for as long as `DecodedBatch::storage` lives for batches.
class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // InvalidArgument, saying what is wrong, for anything that is not a
  // well-formed batch of this version.
  absl::Status DecodeBatch(std::string_view payload, DecodedBatch& out);

  // Parses a result message; `instance` receives the addressee. Entries are
  // appended to `out` (cleared first).
  absl::Status DecodeResults(std::string_view payload,
                             std::string_view& instance,
                             std::vector<ResultEntry>& out);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace batchbus::wire

#endif  // BATCHBUS_LIB_WIRE_H_

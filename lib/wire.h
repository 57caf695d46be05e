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

inline constexpr int kVersion = 1;

// Bytes of a batch message outside its jobs, beyond the header strings
// (the largest header is 141 bytes: a 20-digit seq, a 10-digit partition).
inline constexpr size_t kBatchOverhead = 160;
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
};

// Builds one batch message job by job; the message is complete after
// Finish().
class BatchWriter {
 public:
  void Begin(const BatchHeader& header);
  // Sizes the buffer for a message of about `bytes`, so that a batch grows
  // without reallocating and copying as jobs are added.
  void Reserve(size_t bytes) { buf_.reserve(bytes); }
  // Exact bytes AddJob would append for this job (separator included).
  static size_t JobSize(std::string_view group, std::string_view data);
  void AddJob(const JobId& id, std::string_view group, std::string_view data);
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
  std::vector<DecodedJob> jobs;
};

struct ResultEntry {
  uint64_t seq = 0;
  uint32_t index = 0;
  JobId id;
  JobStatus status = JobStatus::kProcessedOk;
  std::string_view data;   // Raw JSON (PROCESSED_OK), else empty.
  std::string_view error;  // Unescaped (PROCESSED_ERROR), else empty.
};

// Builds one result message for one submitter instance.
class ResultWriter {
 public:
  void Begin(std::string_view instance);
  void AddOk(uint64_t seq, uint32_t index, const JobId& id,
             std::string_view data);
  void AddError(uint64_t seq, uint32_t index, const JobId& id,
                std::string_view error);
  size_t size() const { return buf_.size(); }
  size_t results() const { return results_; }
  bool empty() const { return results_ == 0; }
  std::string Finish();

 private:
  void AddPrefix(uint64_t seq, uint32_t index, const JobId& id);
  std::string buf_;
  size_t results_ = 0;
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

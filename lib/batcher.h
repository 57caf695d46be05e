// Batcher: the open batches, one per (processor, priority), each built as
// its wire message job by job. A batch is sealed when it holds max_jobs
// jobs, when the next job would take it past max_bytes, or max_linger after
// its first job, whichever comes first; realtime batches hold one job.
// Sealing closes the message and hands it out with its jobs. Pure: no
// Kafka, no clock of its own (callers pass `now`).
//
// Threads: not thread-safe. The Submitter calls it under its state lock.
#ifndef BATCHBUS_LIB_BATCHER_H_
#define BATCHBUS_LIB_BATCHER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "batchbus/job.h"
#include "job_ledger.h"
#include "lane.h"
#include "wire.h"

namespace batchbus {

// A sealed batch's message, as it goes to Kafka.
struct BatchMessage {
  uint64_t seq = 0;
  Priority priority = Priority::kNormal;
  std::string topic;
  std::string payload;
  // Set once a broker acknowledged the message; the ledger reads it when
  // the batch times out, to say where the batch got to.
  std::shared_ptr<std::atomic<bool>> acknowledged;
  // The partition the publisher's window sent it to; -1 before, or when
  // librdkafka's partitioner chose it.
  int32_t partition = -1;
};

struct SealedBatch {
  std::unique_ptr<BatchMessage> message;
  std::vector<PendingJob> jobs;
};

// Bytes of a batch message outside its jobs and its processor name.
size_t BatchHeaderBytes(std::string_view instance,
                        std::string_view reply_topic);

// The lifecycle fields `job` travels with (docs/wire-format.md); `events`
// when its submitter wants its started and progress events.
wire::JobFields JobFieldsOf(const Job& job, bool events);

// Checks `job` as Submit must (processor and group names, JSON data, fit in
// one message of `max_message_bytes` after a header of `header_bytes` from
// BatchHeaderBytes, with `fields`) and returns the bytes it adds to a batch
// message (at most).
absl::StatusOr<size_t> CheckJob(const Job& job, const wire::JobFields& fields,
                                size_t max_message_bytes, size_t header_bytes);

// Checks the job's deadline and not_before against `now` and the batch
// timeout after which its submitter stops waiting.
absl::Status CheckTiming(const Job& job, absl::Duration batch_timeout,
                         absl::Time now);

class Batcher {
 public:
  // `instance` and `reply_topic` go into every batch header. `config` must
  // outlive the batcher.
  Batcher(const Config& config, std::string instance, std::string reply_topic);

  // Where results of each lane's batches go; set before the first Add.
  void SetReplyPartitions(const PerLane<int32_t>& partitions) {
    reply_partitions_ = partitions;
  }

  // Appends `job` (`job_size` from CheckJob) to its open batch.
  // Batches this seals go to `out`. True when it opened a batch that waits
  // for its linger (the caller wakes whoever calls SealExpired).
  bool Add(const Job& job, size_t job_size, ResultSink sink, absl::Time now,
           std::vector<SealedBatch>& out);

  // Seals the batches whose linger passed by `now`; returns the earliest
  // linger deadline still open (InfiniteFuture if none).
  absl::Time SealExpired(absl::Time now, std::vector<SealedBatch>& out);

  // Seals every open batch.
  void SealAll(std::vector<SealedBatch>& out);

 private:
  struct OpenBatch {
    uint64_t seq = 0;
    std::string topic;
    wire::BatchWriter writer;
    std::vector<PendingJob> jobs;
    absl::Time linger_deadline;
  };
  using Slot = std::unique_ptr<OpenBatch>;

  Slot Open(const Job& job, size_t job_size, absl::Time now);
  static void Seal(Slot& batch, Priority priority,
                   std::vector<SealedBatch>& out);

  const Config& config_;
  const std::string instance_;
  const std::string reply_topic_;
  const size_t header_bytes_;
  PerLane<int32_t> reply_partitions_;
  uint64_t next_batch_ = 1;
  absl::flat_hash_map<std::string, PerPriority<Slot>> open_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_BATCHER_H_

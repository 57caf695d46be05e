// Reply reader: this instance's two reply partitions, read by plain
// partition consumers (no group, nothing committed). Realtime results come
// back on a partition of their own (when the reply topic has more than
// one), read before the other, so a flood of slow results never delays a
// realtime one.
//
// Threads: Start() and Close() from the Submitter's Create and Close; Poll()
// and Read() on the internal thread only. No locks.
#ifndef BATCHBUS_LIB_REPLY_READER_H_
#define BATCHBUS_LIB_REPLY_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "kafka.h"
#include "lane.h"
#include "log_throttle.h"
#include "submitter_counters.h"
#include "wire.h"

namespace batchbus {

class ReplyReader {
 public:
  // `config` must outlive the reader.
  ReplyReader(const Config& config, std::string instance,
              SubmitterCounters& counters);
  ~ReplyReader() { Close(absl::Now()); }

  // Picks the partitions (config.reply_partition, else one chosen by the
  // instance id, and the next one for the bulk lane) using `client` for
  // metadata, and starts reading each at its current end: results for
  // batches sent from now on can never land before that. Queues write to
  // `wakeup_fd` when they become non-empty.
  absl::Status Start(rd_kafka_t* client, int wakeup_fd);

  // Reply partition per lane (the same one twice on a one-partition topic).
  const PerLane<int32_t>& partitions() const { return partitions_; }
  // True when realtime results have a partition of their own.
  bool separate_realtime() const { return num_streams_ == 2; }

  // Serves the consumers' errors and logs.
  void Poll();

  // Reads up to `max_messages` result messages of `lane`'s partition,
  // `per_round` at a time, and passes the answers of each message addressed
  // to this instance to `on_answers`. True when it stopped at the limit
  // (more may be waiting).
  bool Read(Lane lane, size_t max_messages, size_t per_round,
            absl::FunctionRef<void(const std::vector<wire::ResultEntry>&)>
                on_answers);

  // Stops reading and destroys the consumers by `deadline`. Idempotent.
  void Close(absl::Time deadline);

 private:
  struct Stream {
    int32_t partition = 0;
    kafka::KafkaPtr consumer;
    kafka::TopicPtr topic;
    kafka::QueuePtr queue;
  };
  absl::Status PickPartitions(rd_kafka_t* client);
  absl::Status StartStream(Stream& stream, const kafka::ConfPtr& conf,
                           int wakeup_fd);
  void Handle(const rd_kafka_message_t& msg,
              absl::FunctionRef<void(const std::vector<wire::ResultEntry>&)>
                  on_answers);

  const Config& config_;
  const std::string instance_;
  const std::string topic_;
  SubmitterCounters& counters_;
  PerLane<int32_t> partitions_;
  int num_streams_ = 1;
  Stream streams_[2];  // [0] realtime, [num_streams_ - 1] bulk.

  wire::Decoder decoder_;
  std::vector<wire::ResultEntry> entries_;
  LogThrottle read_error_log_;
  LogThrottle skipped_log_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_REPLY_READER_H_

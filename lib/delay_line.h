// Delay line: reads the delay tiers (lib/delay_tiers.h) and passes each
// message on when its time comes: to its priority's job topic once the job
// is due, else to the tier that fits the time left. A partition whose head
// is not due yet is paused until it is, with only that head in memory, so a
// million delayed jobs cost no memory and never hold back jobs that are due.
// A tier's offset is committed only past messages whose relay the broker
// acknowledged: a processor that dies loses no delayed job (it may relay
// one twice).
//
// The tiers are read by a consumer of their own in the group
// "<group_id>.delay", so several processors share them.
//
// Threads: the processor's poller thread calls everything but Start and
// Close.
#ifndef BATCHBUS_LIB_DELAY_LINE_H_
#define BATCHBUS_LIB_DELAY_LINE_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "delay_tiers.h"
#include "kafka.h"
#include "lane.h"
#include "offset_committer.h"
#include "offset_tracker.h"
#include "out_message.h"

namespace batchbus {

class DelayLine {
 public:
  DelayLine(const Config& config, std::string processor,
            PerPriority<std::string> job_topics);

  absl::Status Start(int wakeup_fd);

  // Reads what arrived and passes on what is due; the messages to write go
  // to `out`. Returns when the next held message is due.
  absl::Time Poll(absl::Time now, std::vector<std::unique_ptr<OutMessage>>& out);

  // A relay was written (or could not be, and was dead-lettered): the tier
  // may commit past it.
  void Relayed(const OutMessage& relay);

  // Leaves the group, committing what was relayed; bounded by `deadline`.
  void Close(absl::Time deadline);

  // Messages held (one at most per partition), for tests and stats.
  size_t held() const;

 private:
  struct Partition {
    kafka::MessagePtr head;  // Not due yet; the partition is paused.
    absl::Time release = absl::InfiniteFuture();
  };
  using Key = std::pair<int, int32_t>;  // Tier index, partition.

  static void RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions,
                                void* opaque) noexcept;
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* list);
  int TierOfTopic(std::string_view topic) const;
  // Holds `msg` or passes it on.
  void Take(int tier, kafka::MessagePtr msg, absl::Time now,
            std::vector<std::unique_ptr<OutMessage>>& out);
  std::unique_ptr<OutMessage> RelayOf(int tier, const rd_kafka_message_t& msg,
                                      absl::Time now);
  void SetPaused(int tier, int32_t partition, bool paused);
  // The partition's next fetch starts after `offset`.
  void SeekAfter(int tier, int32_t partition, int64_t offset);

  const Config& config_;
  const std::string processor_;
  const PerPriority<std::string> job_topics_;
  std::array<std::string, kDelayTiers.size()> topics_;
  // Relayed offsets are committed this often (less often while the
  // coordinator is slower than this to answer).
  static constexpr absl::Duration kCommitInterval = absl::Milliseconds(500);

  kafka::KafkaPtr consumer_;
  std::unique_ptr<OffsetCommitter> committer_;  // Goes before consumer_.
  absl::flat_hash_map<Key, Partition> partitions_;  // Assigned ones.
  // Per tier; keyed by {kRealtime, partition}: a tier is not a priority.
  std::array<OffsetTracker, kDelayTiers.size()> offsets_;
  bool closed_ = false;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_DELAY_LINE_H_

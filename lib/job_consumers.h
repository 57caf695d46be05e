// Job consumers: the processor's two consumers and what they are assigned.
// One reads the realtime topic in the group "<group>.realtime", the other
// the normal and slow topics in "<group>", so realtime jobs arrive over a
// connection of their own, never in the same fetches as a slow backlog.
//
// Assignment: every assigned partition is forwarded to its priority's
// queue, which Read() serves; a revoked partition stops being forwarded,
// the listener drops its jobs, and the offsets stored so far are
// committed before it goes. With partition.assignment.strategy set to
// cooperative-sticky (kafka.*) only the partitions that move are revoked.
//
// Threads: PollEvents() and Read() from the processor's poller thread;
// the listener runs there (and in Close()). StoreOffset() from any thread,
// also concurrently with Close(). Close() once.
#ifndef BATCHBUS_LIB_JOB_CONSUMERS_H_
#define BATCHBUS_LIB_JOB_CONSUMERS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "kafka.h"
#include "lane.h"
#include "log_throttle.h"
#include "mutex.h"
#include "offset_committer.h"
#include "offset_tracker.h"

namespace batchbus {

class JobConsumers {
 public:
  class Listener {
   public:
    virtual void OnAssigned(PartitionKey partition) = 0;
    virtual void OnRevoked(PartitionKey partition) = 0;
    // A job message that reached a consumer queue unforwarded.
    virtual void OnStray(Priority p, kafka::MessagePtr msg) = 0;

   protected:
    ~Listener() = default;
  };

  JobConsumers(const Config& config, std::string processor,
               PerPriority<std::string> topics, Listener* listener)
      : config_(config),
        processor_(std::move(processor)),
        topics_(std::move(topics)),
        listener_(listener) {}
  ~JobConsumers() { Close(absl::Now()); }

  // Creates both consumers and subscribes them.
  absl::Status Start(int wakeup_fd);

  // Asks each group's coordinator for a committed offset, which needs the
  // rights a consumer needs on its group. PermissionDenied naming the group
  // when a broker refuses; a coordinator that does not answer within
  // `timeout` is not an error (the consumers keep trying).
  absl::Status CheckGroupAccess(absl::Duration timeout);

  // Rebalances, consumer errors and stray messages.
  void PollEvents();

  // Up to `room` job messages of priority `p`, without waiting.
  size_t Read(Priority p, rd_kafka_message_t** msgs, size_t room);

  // Stores `next_offset` for the next commit. An offset below one
  // stored before for the partition is ignored.
  void StoreOffset(PartitionKey partition, int64_t next_offset);

  // Leaves both groups (committing the stored offsets) and destroys the
  // consumers by `deadline`. Idempotent.
  void Close(absl::Time deadline);

 private:
  absl::Status StartConsumer(Lane lane, const kafka::ConfPtr& base,
                             int wakeup_fd);
  static void RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions,
                                void* opaque) noexcept;
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* list);
  void Revoke(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* list);
  bool PriorityOfTopic(std::string_view topic, Priority& p) const;
  void LeaveGroups(absl::Time deadline);

  const Config& config_;
  const std::string processor_;
  const PerPriority<std::string> topics_;
  Listener* const listener_;
  // Stored offsets are committed this often (less often while the
  // coordinator is slower than this to answer).
  static constexpr absl::Duration kCommitInterval = absl::Milliseconds(500);

  PerLane<kafka::KafkaPtr> consumers_;
  PerLane<std::unique_ptr<OffsetCommitter>> committers_;
  PerLane<kafka::QueuePtr> consumer_queues_;
  PerPriority<kafka::QueuePtr> priority_queues_;
  bool closed_ = false;  // Close() ran (its caller's thread only).

  Mutex store_mu_;
  bool storing_closed_ ABSL_GUARDED_BY(store_mu_) = false;
  absl::flat_hash_map<PartitionKey, int64_t> stored_ ABSL_GUARDED_BY(store_mu_);
  LogThrottle store_log_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_JOB_CONSUMERS_H_

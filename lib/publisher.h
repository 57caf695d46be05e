// Publisher: produces sealed batches' messages to their job topics, one
// producer per lane (a realtime batch never waits behind megabytes of slow
// batches the broker is still taking in), and turns delivery reports into
// "sent" or "this batch could not be sent, because".
//
// Threads: Publish() from any thread (Submit callers, the internal thread,
// Close). Poll() on the internal thread only; it runs the listener there.
// Close() once, after the internal thread stopped. A Publish racing with
// Close either finishes before Close destroys the producers or reports its
// batches as not sent: it never touches a destroyed producer.
// Locks: `topics_mu_` guards each lane's producer, its topic states and
// their partition windows (taken about twice per batch, never while calling
// the listener or librdkafka's produce). The listener is called with no
// lock.
//
// Each topic's batches go through a PartitionWindow: at most 5 undelivered
// on each partition, the rest held until a delivery report makes room (see
// partition_window.h for why).
//
// A producer that fails for good (librdkafka's fatal error: an idempotent
// producer whose sequence numbers the broker no longer accepts) is
// replaced by a new one at the next Poll(). The batches it still held end
// as not delivered, saying why; later batches go through the new one.
#ifndef BATCHBUS_LIB_PUBLISHER_H_
#define BATCHBUS_LIB_PUBLISHER_H_

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batcher.h"
#include "batchbus/config.h"
#include "kafka.h"
#include "lane.h"
#include "log_throttle.h"
#include "mutex.h"
#include "partition_window.h"
#include "producer.h"
#include "submitter_counters.h"

namespace batchbus {

class Publisher : private kafka::DeliveryHandler {
 public:
  class Listener {
   public:
    // Batch `seq` was not sent (not queued, not delivered, or the publisher
    // closed first); `why` says why.
    virtual void OnUnsent(uint64_t seq, std::string_view why) = 0;

   protected:
    ~Listener() = default;
  };

  // `config` and `listener` must outlive the publisher.
  Publisher(const Config& config, SubmitterCounters& counters,
            Listener* listener)
      : config_(config), counters_(counters), listener_(listener) {}
  ~Publisher() { Close(absl::Now()); }

  // Creates the producers; their delivery reports write to `wakeup_fd`.
  absl::Status Start(int wakeup_fd);

  // A client for metadata and topic creation, at start.
  rd_kafka_t* client() {
    MutexLock lock(&topics_mu_);
    return lanes_[Lane::kBulk]->producer.get();
  }

  // Produces each message; clears `messages`. One that cannot be queued is
  // reported to the listener before this returns, after the others went.
  void Publish(std::vector<std::unique_ptr<BatchMessage>>& messages);

  // Serves delivery reports that are ready, and replaces a producer that
  // failed for good.
  void Poll();

  // Producers replaced after a fatal error.
  uint64_t replaced() const { return replaced_.load(std::memory_order_relaxed); }

  // Waits up to a second (within `deadline`) for messages in flight, purges
  // the rest (reported to the listener) and destroys the producers by
  // `deadline`. Later Publish calls report their batches as not sent.
  void Close(absl::Time deadline);

 private:
  void OnDelivery(rd_kafka_message_t* msg) override;
  using Window = PartitionWindow<std::unique_ptr<BatchMessage>>;
  using Unsent = std::vector<std::pair<uint64_t, std::string>>;
  // One topic of one lane's producer: its handle (whose opaque it is) and
  // window. `window` and `draining` are guarded by topics_mu_.
  struct TopicState {
    rd_kafka_t* producer = nullptr;
    kafka::TopicPtr handle;
    Window window;
    // Learned by librdkafka's partitioner (any thread) from the first
    // batches, which go before the count is known.
    std::atomic<int32_t> partition_count{0};
    bool draining = false;  // Closing: no more chunks from the window.
  };
  // One lane's producer and the topics made on it (declared after it, so
  // destroyed first), replaced together.
  struct LaneProducer {
    kafka::Producer producer;
    absl::flat_hash_map<std::string, std::unique_ptr<TopicState>> topics;
  };
  static int32_t Partition(const rd_kafka_topic_t* rkt, const void* key,
                           size_t key_len, int32_t partition_count,
                           void* topic_opaque, void* msg_opaque);
  absl::StatusOr<std::unique_ptr<LaneProducer>> NewLaneProducer();
  // Queues `msg` (or holds it in its topic's window); one that cannot be
  // queued is added to `unsent`.
  void Produce(std::unique_ptr<BatchMessage> msg, Unsent& unsent);
  // Hands `chunks` of `topic`'s window to librdkafka. A batch it refuses
  // goes to `unsent` and leaves the window; the room it frees is used.
  void Send(TopicState& topic, std::vector<Window::Chunk> chunks, Unsent& unsent);
  // Why `producer` refused a batch with `err`.
  static std::string Refused(rd_kafka_t* producer, rd_kafka_resp_err_t err);
  // Null, with `error` set, when librdkafka refuses the topic; else the
  // topic's state on the lane's current producer.
  TopicState* Topic(const BatchMessage& msg, std::string& error);
  // Marks `lane`'s topics draining and returns what their windows held.
  std::vector<std::unique_ptr<BatchMessage>> Drain(LaneProducer& lane);
  // Internal thread: replaces each lane's producer that hit a fatal error,
  // and destroys replaced ones that nothing uses any more.
  void ReplaceFailed();
  void DropRetired();
  void LogUndelivered(const BatchMessage& msg, rd_kafka_resp_err_t err);

  const Config& config_;
  SubmitterCounters& counters_;
  Listener* const listener_;
  int wakeup_fd_ = -1;

  // Publish calls under way, and whether Close began: Close waits for the
  // calls that got in before it and turns later ones away.
  std::atomic<int> publishing_{0};
  std::atomic<bool> closing_{false};

  Mutex topics_mu_;
  PerLane<std::unique_ptr<LaneProducer>> lanes_ ABSL_GUARDED_BY(topics_mu_);
  // Replaced, not yet destroyed (internal thread). A Publish that read one
  // counts in publishing_ while it uses it.
  std::vector<std::unique_ptr<LaneProducer>> retired_;
  std::string fatal_reason_;  // The last replacement's (internal thread).
  // Topics of closed producers, draining (Close's thread).
  std::vector<std::unique_ptr<TopicState>> closed_topics_;
  std::atomic<uint64_t> replaced_{0};

  LogThrottle undelivered_log_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PUBLISHER_H_

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
// Locks: `topics_mu_` guards the topic-handle cache (taken once per batch,
// never while calling the listener). The listener is called with no lock.
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

  // A client for metadata and topic creation.
  rd_kafka_t* client() const { return producers_[Lane::kBulk].get(); }

  // Produces each message; clears `messages`. One that cannot be queued is
  // reported to the listener before this returns, after the others went.
  void Publish(std::vector<std::unique_ptr<BatchMessage>>& messages);

  // Serves delivery reports that are ready.
  void Poll();

  // Waits up to a second (within `deadline`) for messages in flight, purges
  // the rest (reported to the listener) and destroys the producers by
  // `deadline`. Later Publish calls report their batches as not sent.
  void Close(absl::Time deadline);

 private:
  void OnDelivery(rd_kafka_message_t* msg) override;
  std::string Produce(std::unique_ptr<BatchMessage> msg);
  // Null, with `error` set, when librdkafka refuses the topic.
  rd_kafka_topic_t* TopicHandle(const BatchMessage& msg, std::string& error);
  void LogUndelivered(const BatchMessage& msg, rd_kafka_resp_err_t err);

  const Config& config_;
  SubmitterCounters& counters_;
  Listener* const listener_;
  PerLane<kafka::Producer> producers_;

  // Publish calls under way, and whether Close began: Close waits for the
  // calls that got in before it and turns later ones away.
  std::atomic<int> publishing_{0};
  std::atomic<bool> closing_{false};

  Mutex topics_mu_;
  PerLane<absl::flat_hash_map<std::string, kafka::TopicPtr>> topics_
      ABSL_GUARDED_BY(topics_mu_);

  LogThrottle undelivered_log_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PUBLISHER_H_

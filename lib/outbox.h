// Outbox: the processor's outgoing messages (results and dead-letter
// copies) through two producers, one per lane, so that realtime results
// never queue behind large slow ones.
//
// A message the local queue refuses (it is full) is tried again after a
// backoff. A delivery that fails is tried again after a backoff that
// doubles up to `max_backoff`, at most `max_attempts` times. A permanent
// error (the reply partition or topic does not exist, authorization, a
// message too large) is not retried. Either way the listener hears once
// what became of each message.
//
// A message bound to one partition (a result, to its submitter's reply
// partition) goes through that lane's PartitionWindow: at most 5
// undelivered per partition, the rest held and then handed over in one
// request (see partition_window.h for why).
//
// A producer that fails for good (librdkafka's fatal error: an idempotent
// producer whose sequence numbers the broker no longer accepts) is
// replaced by a new one at the next Poll(). Its messages are purged and
// sent again through the new one, so a result may be written twice but is
// not lost. The old producer is destroyed once nothing uses it.
//
// Threads: Send() from any thread, with no lock held that the listener
// takes (the listener may run on the caller's thread). Poll() from the
// processor's poller thread only; the listener runs there. Close() once,
// after the poller stopped.
#ifndef BATCHBUS_LIB_OUTBOX_H_
#define BATCHBUS_LIB_OUTBOX_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "lane.h"
#include "log_throttle.h"
#include "mutex.h"
#include "absl/container/flat_hash_map.h"
#include "out_message.h"
#include "partition_window.h"
#include "producer.h"

namespace batchbus {

class Outbox final : public kafka::DeliveryHandler {
 public:
  enum class Failure {
    kPermanent,  // The broker or client refused it for good.
    kExhausted,  // Still failing after max_attempts.
    kClosed,     // The outbox closed first (purged, or sent after Close).
  };

  class Listener {
   public:
    virtual void OnSent(std::unique_ptr<OutMessage> msg) = 0;
    virtual void OnUndeliverable(std::unique_ptr<OutMessage> msg,
                                 Failure failure, std::string why) = 0;

   protected:
    ~Listener() = default;
  };

  struct Options {
    absl::Duration first_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(5);
    int max_attempts = 8;
  };

  Outbox(const Config& config, Listener* listener)
      : Outbox(config, listener, Options{}) {}
  Outbox(const Config& config, Listener* listener, Options options)
      : config_(config), listener_(listener), options_(options) {}
  ~Outbox() { Close(absl::Now()); }

  absl::Status Start(int wakeup_fd);
  // Has each producer look up `topic`'s leaders now, so that the first
  // message to it does not wait for librdkafka's next metadata refresh (up
  // to 1 s). For a topic that exists: on a broker that auto-creates topics,
  // the lookup would create it.
  void KnowTopic(const std::string& topic);
  // A handle for admin calls (topic checks).
  rd_kafka_t* handle() const { return live_[Lane::kBulk].load(); }

  void Send(std::unique_ptr<OutMessage> msg);

  // Serves delivery reports and sends the retries that are due; returns
  // when the next retry is due (InfiniteFuture when none waits).
  absl::Time Poll(absl::Time now);

  // Messages sent and not yet reported to the listener.
  size_t pending() const { return pending_.load(std::memory_order_acquire); }

  // Reports what waits for a retry and what is still queued as kClosed, and
  // destroys the producers by `deadline`. Idempotent.
  void Close(absl::Time deadline);

  // Producers replaced after a fatal error.
  uint64_t replaced() const { return replaced_.load(std::memory_order_relaxed); }

  // Whether `err` means that trying again cannot succeed.
  static bool IsPermanent(rd_kafka_resp_err_t err);

 private:
  struct Retry {
    absl::Time due;
    std::unique_ptr<OutMessage> msg;
  };

  using Window = PartitionWindow<std::unique_ptr<OutMessage>>;

  void OnDelivery(rd_kafka_message_t* msg) override;
  // Send() of a message already counted in pending_ (a retry).
  void Dispatch(std::unique_ptr<OutMessage> msg);
  // Hands the chunks of `lane`'s window of `topic` to librdkafka; a message
  // it refuses leaves the window (the room it frees is used) and fails.
  // Counts in sending_ while it does.
  void SendChunks(Lane lane, const std::string& topic,
                  std::vector<Window::Chunk> chunks);
  rd_kafka_resp_err_t Produce(OutMessage* msg);
  // After a failure: a retry, or the listener hears of it.
  void Failed(std::unique_ptr<OutMessage> msg, rd_kafka_resp_err_t err,
              bool queue_full);
  void Report(std::unique_ptr<OutMessage> msg, Failure failure,
              std::string why);
  // Poller thread: replaces each live producer that hit a fatal error, and
  // destroys replaced ones that nothing uses any more.
  void ReplaceFailed();
  void DropRetired();

  const Config& config_;
  Listener* const listener_;
  const Options options_;
  int wakeup_fd_ = -1;
  PerLane<kafka::Producer> producers_;  // The live ones (poller thread).
  // What Send() produces through: producers_[lane].get(). A thread that read
  // it counts in sending_ while it uses it.
  PerLane<std::atomic<rd_kafka_t*>> live_{};
  std::vector<kafka::Producer> retired_;  // Replaced, not yet destroyed.
  std::vector<std::string> known_topics_;  // From KnowTopic.
  // Topic handles from KnowTopic, each with its producer (destroyed first).
  std::vector<std::pair<rd_kafka_t*, kafka::TopicPtr>> warm_topics_;
  std::atomic<uint64_t> replaced_{0};
  LogThrottle replace_log_;
  std::atomic<size_t> pending_{0};
  std::atomic<bool> closing_{false};
  std::atomic<int> sending_{0};  // Send() calls inside Produce.
  Mutex mu_;
  std::vector<Retry> retries_ ABSL_GUARDED_BY(mu_);
  PerLane<absl::flat_hash_map<std::string, Window>> windows_ ABSL_GUARDED_BY(mu_);
  LogThrottle retry_log_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_OUTBOX_H_

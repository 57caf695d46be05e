// A Kafka producer with its delivery-report queue: the one place that sets
// up producers, routes delivery reports to a typed handler, and shuts a
// producer down within a bound.
//
// Threads: Produce-side calls (get()) are safe from any thread, as
// librdkafka's are. Poll() runs the handler on the calling thread; the owner
// calls it from one thread (its I/O loop). Close() is called once, after
// that thread stopped polling.
#ifndef BATCHBUS_LIB_PRODUCER_H_
#define BATCHBUS_LIB_PRODUCER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "kafka.h"

namespace batchbus::kafka {

// Receives each produced message's delivery report (success, failure or
// purge), with the message's opaque in msg->_private.
class DeliveryHandler {
 public:
  virtual void OnDelivery(rd_kafka_message_t* msg) = 0;

 protected:
  ~DeliveryHandler() = default;
};

// The message size librdkafka must allow on either side so that a message
// of config.max_message_bytes plus its framing passes: producers'
// message.max.bytes and consumers' fetch.message.max.bytes.
size_t ClientMessageBytes(const Config& config);

class Producer {
 public:
  Producer() = default;
  Producer(Producer&&) = default;
  Producer& operator=(Producer&&) = default;
  ~Producer() { Close(absl::Now(), absl::ZeroDuration()); }

  // A producer configured from `config` (linger.ms=0, message.max.bytes from
  // ClientMessageBytes, then `defaults`, then the user's kafka.* properties).
  // Delivery reports go to `handler`, which must outlive Close(); when
  // `wakeup_fd` >= 0 the report queue writes to it when it becomes
  // non-empty.
  static absl::StatusOr<Producer> Create(
      const Config& config,
      std::vector<std::pair<std::string, std::string>> defaults,
      DeliveryHandler* handler, int wakeup_fd);

  rd_kafka_t* get() const { return handle_.get(); }
  explicit operator bool() const { return handle_ != nullptr; }

  // Serves delivery reports that are ready, without waiting.
  void Poll() {
    if (handle_) rd_kafka_poll(handle_.get(), 0);
  }

  // Waits up to `max_flush` (and at most until `deadline`) for messages in
  // flight; their reports reach the handler meanwhile.
  void Flush(absl::Time deadline, absl::Duration max_flush);
  // Purges the messages still queued or in flight and serves their reports
  // (RD_KAFKA_RESP_ERR__PURGE_*).
  void Purge();

  // Flush, then purges the rest (their reports reach the handler with
  // RD_KAFKA_RESP_ERR__PURGE_*), and destroys the handle by `deadline`.
  // No report reaches the handler after this returns. Idempotent.
  void Close(absl::Time deadline, absl::Duration max_flush);

 private:
  static void Trampoline(rd_kafka_t*, const rd_kafka_message_t* msg,
                         void* opaque) noexcept;

  KafkaPtr handle_;
  QueuePtr reports_;
};

}  // namespace batchbus::kafka

#endif  // BATCHBUS_LIB_PRODUCER_H_

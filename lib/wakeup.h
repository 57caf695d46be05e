// A self-pipe that an internal thread sleeps on. librdkafka queues write to
// it when they become non-empty (rd_kafka_queue_io_event_enable), and
// Notify() writes to it from any thread or from a signal handler.
#ifndef BATCHBUS_LIB_WAKEUP_H_
#define BATCHBUS_LIB_WAKEUP_H_

#include "absl/time/time.h"

namespace batchbus {

class WakeupPipe {
 public:
  WakeupPipe();
  ~WakeupPipe();
  WakeupPipe(const WakeupPipe&) = delete;
  WakeupPipe& operator=(const WakeupPipe&) = delete;

  bool ok() const { return read_fd_ >= 0; }
  // The descriptor librdkafka should write to.
  int write_fd() const { return write_fd_; }
  // Async-signal-safe.
  void Notify() const;
  // Sleeps until notified or `timeout`, then empties the pipe.
  void Wait(absl::Duration timeout) const;

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_WAKEUP_H_

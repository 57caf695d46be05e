// lib/offset_committer.h — commits a consumer's stored offsets on a timer,
// never more than one commit at a time.
//
// librdkafka's auto-commit sends a commit every auto.commit.interval.ms
// whether or not the previous one has been answered. When the group
// coordinator is slow (a loaded or failing-over cluster answers an
// OffsetCommit in seconds), those commits queue up on its connection, and
// a rebalance waits for all of them before the member may rejoin: on a
// three-node cluster, seven queued commits held a revoked realtime
// partition unowned for 7 s. Here the next commit is sent only after the
// previous one was answered, so a rebalance waits for at most one.
#ifndef BATCHBUS_LIB_OFFSET_COMMITTER_H_
#define BATCHBUS_LIB_OFFSET_COMMITTER_H_

#include <cstdint>

#include "absl/time/time.h"
#include "kafka.h"

namespace batchbus {

class OffsetCommitter {
 public:
  // `rk` is a consumer with enable.auto.commit=false that outlives this
  // object. `what` names it in log lines.
  OffsetCommitter(rd_kafka_t* rk, absl::Duration interval, const char* what);

  // Collects the answer to the commit in flight, if it came, and sends the
  // next commit of the stored offsets when none is in flight and
  // `interval` has passed since the last one was sent. Never blocks.
  void Poll(absl::Time now);

  bool in_flight() const { return in_flight_; }
  uint64_t sent() const { return sent_; }

 private:
  rd_kafka_t* const rk_;
  const absl::Duration interval_;
  const char* const what_;
  kafka::QueuePtr answers_;
  bool in_flight_ = false;
  absl::Time last_sent_ = absl::InfinitePast();
  uint64_t sent_ = 0;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_OFFSET_COMMITTER_H_

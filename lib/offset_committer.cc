#include "offset_committer.h"

#include "log.h"

namespace batchbus {

OffsetCommitter::OffsetCommitter(rd_kafka_t* rk, absl::Duration interval,
                                 const char* what)
    : rk_(rk), interval_(interval), what_(what), answers_(rd_kafka_queue_new(rk)) {}

void OffsetCommitter::Poll(absl::Time now) {
  while (in_flight_) {
    kafka::EventPtr answer(rd_kafka_queue_poll(answers_.get(), 0));
    if (!answer) break;
    if (rd_kafka_event_type(answer.get()) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
      continue;
    }
    in_flight_ = false;
    const rd_kafka_resp_err_t err = rd_kafka_event_error(answer.get());
    // __NO_OFFSET: nothing new was stored since the last commit.
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      log::Debug("processor", what_, " offset commit: ", rd_kafka_err2str(err));
    }
  }
  if (in_flight_ || now - last_sent_ < interval_) return;
  const rd_kafka_resp_err_t err =
      rd_kafka_commit_queue(rk_, nullptr, answers_.get(), nullptr, nullptr);
  last_sent_ = now;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::Debug("processor", what_, " offset commit not sent: ", rd_kafka_err2str(err));
    return;
  }
  in_flight_ = true;
  ++sent_;
}

}  // namespace batchbus

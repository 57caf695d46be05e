// A message the processor sends: a result message for one submitter
// instance, or a dead-letter copy. The outbox produces it; what it
// acknowledges travels with it.
#ifndef BATCHBUS_LIB_OUT_MESSAGE_H_
#define BATCHBUS_LIB_OUT_MESSAGE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "in_batch.h"

namespace batchbus {

struct OutMessage {
  enum class Kind {
    kResults,        // Results for one submitter instance.
    kMalformedCopy,  // A malformed job message, copied to the dead letters.
    kResultsCopy,    // Results that could not be delivered, copied there.
    kForward,        // A job sent to a delay tier (a delay or a retry).
    kFailedJobCopy,  // A job that ended failed, copied to the dead letters.
    kRelay,          // A delay tier's message, passed on (delay line).
  };
  Kind kind = Kind::kResults;
  std::string topic;
  int32_t partition = -1;  // RD_KAFKA_PARTITION_UA: the partitioner's pick.
  std::string key;
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;
  bool realtime = false;  // Goes through the realtime lane's producer.

  // Results (and their dead-letter copy): the results carried, per batch.
  std::vector<std::pair<InBatch*, uint32_t>> acks;
  // A dead-letter copy of a malformed job message.
  InBatch* dead_letter_for = nullptr;
  // A failed job's dead-letter copy: its batch waits for it.
  InBatch* copy_for = nullptr;
  // A relay: the delay tier message it passes on.
  struct Origin {
    int tier = -1;
    int32_t partition = 0;
    int64_t offset = 0;
  } relay_from;

  // Outbox bookkeeping.
  int attempts = 0;
  bool windowed = false;  // Counted in its lane's partition window.
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_OUT_MESSAGE_H_

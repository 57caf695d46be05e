// Intake: a job message from Kafka becomes a ready batch, or is found
// malformed and becomes a dead-letter copy that names the reason.
//
// A message is malformed when it does not decode as a batch of this wire
// version, or names another processor. The copy keeps the original key and
// payload byte for byte; its header batchbus.error says where it came from
// and why it was refused.
//
// Pure: no Kafka. Threads: one Intake per thread (it holds the decoder).
#ifndef BATCHBUS_LIB_INTAKE_H_
#define BATCHBUS_LIB_INTAKE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "batchbus/job.h"
#include "in_batch.h"
#include "out_message.h"
#include "wire.h"

namespace batchbus {

class Intake {
 public:
  struct Message {
    Priority priority = Priority::kNormal;
    std::string_view topic;
    int32_t partition = 0;
    int64_t offset = 0;
    std::string_view key;
    std::string_view payload;
  };

  Intake(std::string processor, std::string dead_letter_topic)
      : processor_(std::move(processor)),
        dead_letter_topic_(std::move(dead_letter_topic)) {}

  // The batch, with a Task state per job; or InvalidArgument saying why the
  // message is malformed.
  absl::StatusOr<std::unique_ptr<InBatch>> Decode(const Message& msg);

  // The dead-letter copy of a malformed message.
  std::unique_ptr<OutMessage> DeadLetterCopy(const Message& msg,
                                             std::string_view why) const;

  // "topic[partition]@offset".
  static std::string Where(const Message& msg);

 private:
  std::string processor_;
  std::string dead_letter_topic_;
  wire::Decoder decoder_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_INTAKE_H_

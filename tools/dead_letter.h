// One message of a dead letter topic, copied out of librdkafka, and what
// kind of copy it is (docs/wire-format.md, "Dead-letter copies").
#ifndef BATCHBUS_TOOLS_DEAD_LETTER_H_
#define BATCHBUS_TOOLS_DEAD_LETTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "kafka.h"

namespace batchbus::cli {

struct DeadLetter {
  enum class Kind {
    kFailedJob,       // Failed its last attempt: a one-job batch to replay.
    kUndeliveredJob,  // Could not be written to a delay tier or relayed.
    kResults,         // A result message that could not be delivered.
    kMalformed,       // A job message the processor could not use.
  };
  int partition = 0;
  int64_t offset = 0;
  absl::Time time = absl::InfinitePast();
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  Kind kind = Kind::kMalformed;

  // The last header `name`, or null.
  const std::string* Header(std::string_view name) const;
  std::string Error() const;
  // batchbus.origin; for a malformed message, the part of batchbus.error
  // before ": ".
  std::string Origin() const;
  // The topic of Origin() (the part before '['); empty when none.
  std::string OriginTopic() const;
  std::string_view KindName() const;
  std::string ToJson() const;
};

// Classifies by the headers the processor wrote.
DeadLetter::Kind Classify(const DeadLetter& d);

DeadLetter FromMessage(const rd_kafka_message_t* m);

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_DEAD_LETTER_H_

// Names that become parts of Kafka topic names.
#ifndef BATCHBUS_LIB_NAMES_H_
#define BATCHBUS_LIB_NAMES_H_

#include <string_view>

namespace batchbus {

// A Kafka topic name: 1 to 249 characters of [A-Za-z0-9._-], not "." or "..".
bool IsValidTopicName(std::string_view name);

// True when every character may appear in a topic name (an empty name too).
bool HasOnlyTopicChars(std::string_view name);

}  // namespace batchbus

#endif  // BATCHBUS_LIB_NAMES_H_

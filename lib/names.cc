#include "names.h"

namespace batchbus {

bool HasOnlyTopicChars(std::string_view name) {
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool IsValidTopicName(std::string_view name) {
  return !name.empty() && name.size() <= 249 && name != "." && name != ".." &&
         HasOnlyTopicChars(name);
}

}  // namespace batchbus

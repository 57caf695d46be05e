// StrCat that accepts std::string_view. Debian's Abseil is built with its
// own absl::string_view (not an alias of std::string_view), so arguments are
// bridged here once instead of at every call.
#ifndef BATCHBUS_LIB_STRCAT_H_
#define BATCHBUS_LIB_STRCAT_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace batchbus {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view FromAbsl(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

namespace internal {
template <typename T>
decltype(auto) StrCatArg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return ToAbsl(v);
  } else {
    return (v);
  }
}
}  // namespace internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(internal::StrCatArg(args)...);
}

}  // namespace batchbus

#endif  // BATCHBUS_LIB_STRCAT_H_

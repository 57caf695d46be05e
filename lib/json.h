// Small JSON helpers around simdjson: validation of user JSON at the edges,
// and string escaping for the encoders.
#ifndef BATCHBUS_LIB_JSON_H_
#define BATCHBUS_LIB_JSON_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace batchbus::json {

// OK when `text` is exactly one JSON value (surrounding whitespace allowed).
// Uses a thread-local parser; no allocation once warmed up. `what` names the
// value in the error message.
absl::Status Validate(std::string_view text, std::string_view what);

// Appends `s` as a quoted JSON string.
void AppendQuoted(std::string& out, std::string_view s);

// Bytes AppendQuoted would write for `s` (exact).
size_t QuotedSize(std::string_view s);

// `text` without leading/trailing JSON whitespace.
std::string_view TrimWhitespace(std::string_view text);

}  // namespace batchbus::json

#endif  // BATCHBUS_LIB_JSON_H_

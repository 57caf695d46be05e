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
// Any number RFC 8259 allows is accepted, also one beyond 64 bits (a 30-digit
// id, 1e400): simdjson cannot represent those, so on a number error the
// value is checked again with its numbers replaced (see NeutralizeNumbers).
absl::Status Validate(std::string_view text, std::string_view what);

// `text` with every token outside strings that is a JSON number (RFC 8259
// grammar) replaced by `0`; anything else is kept as it is. The result is
// valid JSON exactly when `text` is, and has no number a parser could find
// too large.
std::string NeutralizeNumbers(std::string_view text);

// True for the simdjson errors that a valid but unrepresentable number
// causes; the caller then validates NeutralizeNumbers(text) instead.
bool IsNumberError(int simdjson_error_code);

// Appends `s` as a quoted JSON string.
void AppendQuoted(std::string& out, std::string_view s);

// Bytes AppendQuoted would write for `s` (exact).
size_t QuotedSize(std::string_view s);

// `text` without leading/trailing JSON whitespace.
std::string_view TrimWhitespace(std::string_view text);

}  // namespace batchbus::json

#endif  // BATCHBUS_LIB_JSON_H_

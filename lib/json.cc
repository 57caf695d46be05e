#include "json.h"

#include <cstring>

#include "strcat.h"
#include "simdjson.h"

namespace batchbus::json {
namespace {

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

struct ThreadParser {
  simdjson::dom::parser parser;
  std::string padded;  // Input copied here so simdjson may read past the end.
};

ThreadParser& LocalParser() {
  thread_local ThreadParser tp;
  return tp;
}

// Length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  // Byte k of the sequence; 0 (never a continuation byte) past the end.
  const auto at = [&](size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return at(k) >= lo && at(k) <= hi;
  };
  const unsigned c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// JSON text must be UTF-8. `s` with every byte that is not part of a
// well-formed sequence replaced by U+FFFD. Only called for invalid input.
std::string RepairUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

size_t QuotedSizeOfValid(std::string_view s) {
  size_t n = 2;
  for (unsigned char c : s) {
    if (!NeedsEscape(c)) {
      ++n;
    } else if (c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r' ||
               c == '\b' || c == '\f') {
      n += 2;
    } else {
      n += 6;
    }
  }
  return n;
}

// Length of the JSON number (RFC 8259 grammar) at the start of `s`, or 0.
size_t NumberLength(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return 0;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return 0;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return 0;
  }
  return i;
}

bool IsNumberChar(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
         c == 'e' || c == 'E';
}

// Offset just past the string that starts with the quote at s[i].
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

}  // namespace

std::string NeutralizeNumbers(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '"') {
      size_t end = SkipString(text, i);
      out.append(text.substr(i, end - i));
      i = end;
      continue;
    }
    if (!IsNumberChar(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && IsNumberChar(text[end])) ++end;
    std::string_view token = text.substr(i, end - i);
    if (NumberLength(token) == token.size()) {
      out.push_back('0');
    } else {
      out.append(token);
    }
    i = end;
  }
  return out;
}

bool IsNumberError(int simdjson_error_code) {
  auto e = static_cast<simdjson::error_code>(simdjson_error_code);
  return e == simdjson::NUMBER_ERROR ||
         e == simdjson::NUMBER_OUT_OF_RANGE;
}

absl::Status Validate(std::string_view text, std::string_view what) {
  ThreadParser& tp = LocalParser();
  const size_t need = text.size() + simdjson::SIMDJSON_PADDING;
  if (tp.padded.size() < need) tp.padded.resize(need < 4096 ? 4096 : need);
  if (!text.empty()) std::memcpy(tp.padded.data(), text.data(), text.size());
  simdjson::dom::element root;
  auto error = tp.parser.parse(tp.padded.data(), text.size(), false).get(root);
  if (error && IsNumberError(error)) {
    const std::string neutral = NeutralizeNumbers(text);
    error = tp.parser.parse(neutral).get(root);
  }
  if (error) {
    return absl::InvalidArgumentError(StrCat(
        what, " is not valid JSON: ", simdjson::error_message(error)));
  }
  return absl::OkStatus();
}

size_t QuotedSize(std::string_view s) {
  if (!simdjson::validate_utf8(s.data(), s.size())) {
    return QuotedSizeOfValid(RepairUtf8(s));
  }
  return QuotedSizeOfValid(s);
}

void AppendQuoted(std::string& out, std::string_view s) {
  if (!simdjson::validate_utf8(s.data(), s.size())) {
    AppendQuoted(out, RepairUtf8(s));
    return;
  }
  out.push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!NeedsEscape(c)) continue;
    out.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\t': out.append("\\t"); break;
      case '\r': out.append("\\r"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.append(s.data() + start, s.size() - start);
  out.push_back('"');
}

std::string_view TrimWhitespace(std::string_view text) {
  auto is_ws = [](char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
  };
  while (!text.empty() && is_ws(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ws(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace batchbus::json

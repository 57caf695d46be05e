#include "strcat.h"
#include "output.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "json.h"

namespace batchbus::cli {
namespace {

bool IsNumeric(std::string_view s) {
  if (s == "-") return true;
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (!(c >= '0' && c <= '9') && c != '.' && c != ',') return false;
  }
  return true;
}

}  // namespace

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  const size_t n = header_.size();
  std::vector<size_t> width(n, 0);
  std::vector<bool> numeric(n, !rows_.empty());
  for (size_t c = 0; c < n; ++c) width[c] = header_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < n; ++c) {
      width[c] = std::max(width[c], row[c].size());
      if (!IsNumeric(row[c])) numeric[c] = false;
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < n; ++c) {
      if (c > 0) text += "  ";
      const std::string& cell = cells[c];
      const size_t pad = width[c] - cell.size();
      if (numeric[c]) {
        text.append(pad, ' ');
        text += cell;
      } else {
        text += cell;
        if (c + 1 < n) text.append(pad, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text;
    out += '\n';
  };
  line(header_);
  for (const auto& row : rows_) line(row);
  return out;
}

void JsonLine::Key(std::string_view key) {
  if (text_.size() > 1) text_ += ',';
  json::AppendQuoted(text_, key);
  text_ += ':';
}

JsonLine& JsonLine::Str(std::string_view key, std::string_view value) {
  Key(key);
  json::AppendQuoted(text_, value);
  return *this;
}

JsonLine& JsonLine::Int(std::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&text_, value);
  return *this;
}

JsonLine& JsonLine::Num(std::string_view key, double value) {
  Key(key);
  if (std::isfinite(value)) {
    absl::StrAppend(&text_, absl::StrFormat("%.6g", value));
  } else {
    text_ += "null";
  }
  return *this;
}

JsonLine& JsonLine::Bool(std::string_view key, bool value) {
  Key(key);
  text_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::Null(std::string_view key) {
  Key(key);
  text_ += "null";
  return *this;
}

JsonLine& JsonLine::Raw(std::string_view key, std::string_view json_text) {
  Key(key);
  text_ += json_text;
  return *this;
}

std::string Quote(std::string_view s) {
  std::string out;
  json::AppendQuoted(out, s);
  return out;
}

std::string Ellipsize(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  if (max <= 3) return std::string(s.substr(0, max));
  return StrCat(s.substr(0, max - 3), "...");
}

std::string TimeText(absl::Time t) {
  if (t == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S", t, absl::LocalTimeZone());
}

Progress::Progress(std::string label, uint64_t total, absl::Duration delay)
    : label_(std::move(label)),
      total_(total),
      start_(absl::Now()),
      shown_after_(start_ + delay),
      enabled_(isatty(STDERR_FILENO) != 0) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

std::string Progress::Line(std::string_view label, uint64_t done,
                           uint64_t total, absl::Duration elapsed, int width) {
  const double secs = absl::ToDoubleSeconds(elapsed);
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  if (total == 0) {
    return absl::StrFormat("%s %d (%.0f/s)", label, done, rate);
  }
  const double frac =
      std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  return absl::StrFormat("%s [%s] %d/%d %3.0f%% (%.0f/s)", label, bar, done,
                         total, frac * 100, rate);
}

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  const absl::Time now = absl::Now();
  if (now < shown_after_ || now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  std::fprintf(stderr, "\r%s\x1b[K",
               Line(label_, done, total_, now - start_, 30).c_str());
  std::fflush(stderr);
}

void Progress::Finish(uint64_t done) {
  if (!enabled_ || !drawn_) return;
  std::fprintf(stderr, "\r%s\x1b[K\n",
               Line(label_, done, total_, absl::Now() - start_, 30).c_str());
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace batchbus::cli

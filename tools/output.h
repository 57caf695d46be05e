// Output of the `batchbus` command line: aligned tables for people, JSON
// lines for scripts (--json), and a progress bar on a terminal.
//
// Not thread-safe; each object is used by one thread (JsonLine writers
// print under their caller's lock).
#ifndef BATCHBUS_TOOLS_OUTPUT_H_
#define BATCHBUS_TOOLS_OUTPUT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace batchbus::cli {

// A table with a header row. Columns whose cells are all numbers (or "-")
// are right-aligned, the others left-aligned; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // The whole table, one line per row, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// One JSON object built field by field, e.g.
//   JsonLine().Str("topic", t).Int("partition", 3).Raw("data", "{}").Done()
// gives {"topic":"...","partition":3,"data":{}}.
class JsonLine {
 public:
  JsonLine& Str(std::string_view key, std::string_view value);
  JsonLine& Int(std::string_view key, int64_t value);
  JsonLine& Num(std::string_view key, double value);
  JsonLine& Bool(std::string_view key, bool value);
  JsonLine& Null(std::string_view key);
  // `json` must be a valid JSON value; it is copied as it is.
  JsonLine& Raw(std::string_view key, std::string_view json);
  // The object's text, without a newline.
  std::string Done() const { return text_ + "}"; }

 private:
  void Key(std::string_view key);
  std::string text_ = "{";
};

// `s` as a quoted JSON string.
std::string Quote(std::string_view s);

// Cuts `s` to at most `max` characters, marking the cut with "...".
std::string Ellipsize(std::string_view s, size_t max);

// "2026-12-02 14:03:07.123" in local time; "-" for InfinitePast.
std::string TimeText(absl::Time t);

// A progress bar on stderr, drawn only when stderr is a terminal and the
// work is long enough to be worth watching (shown after `delay`).
class Progress {
 public:
  // `total` 0 means unknown (the bar then shows a count and a rate).
  Progress(std::string label, uint64_t total,
           absl::Duration delay = absl::Milliseconds(500));
  ~Progress();
  // Redraws at most ten times a second.
  void Update(uint64_t done);
  void set_total(uint64_t total) { total_ = total; }
  // Draws the final state and ends the line (if anything was drawn).
  void Finish(uint64_t done);
  // True when stderr is a terminal.
  bool enabled() const { return enabled_; }

  // The bar's text for `done` of `total` after `elapsed`, `width` columns
  // for the bar itself; exposed for tests.
  static std::string Line(std::string_view label, uint64_t done,
                          uint64_t total, absl::Duration elapsed, int width);

 private:
  std::string label_;
  uint64_t total_;
  absl::Time start_;
  absl::Time shown_after_;
  absl::Time last_draw_ = absl::InfinitePast();
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_OUTPUT_H_

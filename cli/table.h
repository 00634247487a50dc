// Human-readable output for `mlc`: aligned text tables and times an operator can
// read at a glance ("2026-11-26 12:00 UTC (3h ago)", "3m ago", "12.3 MiB"). Pure
// functions and a value type; no I/O. Not thread-safe (a Table is built and rendered by one
// thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace mlc::cli {

// Columns separated by two spaces, each as wide as its widest cell (counted in
// UTF-8 code points), with a header row. Numbers read best right-aligned; the last
// column is never padded, so lines carry no trailing spaces. Control characters in
// cells (say a multi-line server error) become spaces so a row stays one line.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // `cells` must have one entry per column (missing ones render empty; extra ones
  // are dropped).
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // The header line and one line per row, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "2026-11-26 12:00 UTC (3h ago)" / "(in 15m)"; relative to `now`.
std::string FormatTime(absl::Time t, absl::Time now);

// A Unix-seconds timestamp where 0 means "never".
std::string FormatUnixOrNever(int64_t unix_seconds, absl::Time now);

// "45s", "12m", "3h", "5d" — the coarsest unit that is at least 1, rounded down.
std::string FormatRoughDuration(absl::Duration d);

// "3m ago" / "in 15m"; relative to `now`.
std::string FormatAgo(absl::Time t, absl::Time now);

// A duration in milliseconds as measured: "0.4ms", "85ms", "1.2s", "2m05s".
std::string FormatMillis(double ms);

// "512 B", "1.5 KiB", "12.3 MiB", "2.0 GiB" (powers of 1024).
std::string FormatBytes(int64_t bytes);

// `text` cut to at most `max_width` UTF-8 code points, ending in "..." when cut
// (never splitting a code point).
std::string Truncate(const std::string& text, size_t max_width);

}  // namespace mlc::cli

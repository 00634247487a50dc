#include "cli/table.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mlc::cli {
namespace {

// Code points, not bytes: business names are often not ASCII.
size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  return s;
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {
  for (Column& c : columns_) c.header = OneLine(std::move(c.header));
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (std::string& c : cells) c = OneLine(std::move(c));
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(columns_.size(), 0);
  for (size_t i = 0; i < columns_.size(); ++i) widths[i] = DisplayWidth(columns_[i].header);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  auto render_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) line += "  ";
      const size_t pad = widths[i] - DisplayWidth(cells[i]);
      const bool last = i + 1 == cells.size();
      if (columns_[i].align == Align::kRight) {
        line.append(pad, ' ');
        line += cells[i];
      } else {
        line += cells[i];
        if (!last) line.append(pad, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  };
  std::vector<std::string> header;
  header.reserve(columns_.size());
  for (const Column& c : columns_) header.push_back(c.header);
  render_line(header);
  for (const auto& row : rows_) render_line(row);
  return out;
}

std::string FormatRoughDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = -d;
  if (d < absl::Minutes(1)) return absl::StrCat(absl::ToInt64Seconds(d), "s");
  if (d < absl::Hours(1)) return absl::StrCat(absl::ToInt64Minutes(d), "m");
  if (d < absl::Hours(48)) return absl::StrCat(absl::ToInt64Hours(d), "h");
  return absl::StrCat(absl::ToInt64Hours(d) / 24, "d");
}

std::string FormatTime(absl::Time t, absl::Time now) {
  const std::string when = absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
  if (t <= now) return absl::StrCat(when, " (", FormatRoughDuration(now - t), " ago)");
  return absl::StrCat(when, " (in ", FormatRoughDuration(t - now), ")");
}

std::string FormatAgo(absl::Time t, absl::Time now) {
  if (t <= now) return absl::StrCat(FormatRoughDuration(now - t), " ago");
  return absl::StrCat("in ", FormatRoughDuration(t - now));
}

std::string FormatMillis(double ms) {
  if (!(ms >= 0)) ms = 0;  // also NaN
  if (ms < 10) return absl::StrFormat("%.1fms", ms);
  if (ms < 1000) return absl::StrFormat("%.0fms", ms);
  if (ms < 60000) return absl::StrFormat("%.1fs", ms / 1000);
  const auto seconds = static_cast<int64_t>(ms / 1000);
  return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string Truncate(const std::string& text, size_t max_width) {
  if (DisplayWidth(text) <= max_width) return text;
  constexpr size_t kEllipsis = 3;  // "..."
  const size_t keep = max_width > kEllipsis ? max_width - kEllipsis : 0;
  size_t points = 0;
  size_t end = 0;
  for (; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80) {
      if (points == keep) break;
      ++points;
    }
  }
  return absl::StrCat(text.substr(0, end), "...");
}

std::string FormatUnixOrNever(int64_t unix_seconds, absl::Time now) {
  if (unix_seconds == 0) return "never";
  return FormatTime(absl::FromUnixSeconds(unix_seconds), now);
}

}  // namespace mlc::cli

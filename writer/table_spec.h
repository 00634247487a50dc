// Table specifications: the single source of truth for a sink table's DDL, its
// validation and its rows (DESIGN.md §2). A sink receives rows as positional,
// string-encoded values typed by the spec, so SQLite binding and Databricks JSON
// parameters are derived from the same data.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace mlc::writer {

enum class SqlType { kString, kBigint, kBoolean, kDate, kTimestamp, kDecimal };

struct ColumnSpec {
  std::string name;
  SqlType type = SqlType::kString;
  // DECIMAL precision/scale; ignored for other types.
  int precision = 18;
  int scale = 2;
  std::string comment;
};

struct TableSpec {
  std::string name;                 // lowercase, e.g. "freshbooks_events"
  std::vector<ColumnSpec> columns;  // order defines the Row layout
  std::vector<std::string> key;     // MERGE / upsert key columns
  // When set, an existing row is replaced only if the incoming value of this
  // column is not older (last-write-wins by `updated_at`). Empty: always replace.
  std::string version_column;
  // Rows are immutable history: an existing key is left as it is (first write
  // wins), so replays leave the table byte-for-byte unchanged.
  bool insert_only = false;
  std::string comment;

  // Index of `column` in `columns`, or -1.
  int ColumnIndex(const std::string& column) const;
};

// One row: a value per column in spec order; nullopt is SQL NULL. Values are the
// canonical text form of their type: BIGINT "123", BOOLEAN "true"/"false", DATE
// "2026-11-26", TIMESTAMP "2026-11-26T12:00:00.000000Z", DECIMAL "12.50".
using Row = std::vector<std::optional<std::string>>;

// Canonical TIMESTAMP text: "2026-11-26T12:00:00.000000Z" (UTC, microseconds).
std::string FormatTimestamp(absl::Time t);

// freshbooks_events: one row per accepted delivery, keyed by delivery_id.
const TableSpec& FreshBooksEventsTable();

}  // namespace mlc::writer

// Databricks SQL text for the Databricks sink (DATABRICKS.md §3-§4, DESIGN.md §2):
// names and string literals, DDL (schema, table, added columns), the schema diff
// that decides which columns to add, and the batched MERGE that upserts rows.
//
// Every function here is pure (no I/O, no shared state) and thread-safe.
//
// Values never appear in SQL text. A MERGE carries its rows in ONE STRING
// parameter, `:rows`, holding a JSON array that the warehouse expands with
// `inline(from_json(...))` (the Statement API allows at most 256 parameters, so
// one per value cannot work). The only text spliced into SQL is identifiers,
// quoted by QuoteIdentifier, and literals we own (comments, the row type,
// TBLPROPERTIES), escaped by SqlStringLiteral: the two functions the safety of
// every statement rests on.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "writer/table_spec.h"

namespace mlc::writer {

// ---------------------------------------------------------------------------
// Names and literals

enum class NameKind { kCatalog, kSchema, kTable, kColumn };

// "catalog", "schema", "table" or "column".
const char* NameKindName(NameKind kind);

// `name` in backticks, a backtick inside doubled: a`b -> `a``b`. Always quote:
// an unquoted name could be a keyword.
std::string QuoteIdentifier(std::string_view name);

// Checks a name before it is used in SQL. Every kind: 1..255 characters, valid
// UTF-8, no control characters, no ASCII uppercase (Unity Catalog stores names
// lowercase, and the MERGE row type matches JSON keys by exact name). Catalog,
// schema and table names: no '.', ' ' or '/'. Column names: none of
// ` ,;{}()\n\t=` (Delta's rule). InvalidArgument names the offending name.
absl::Status ValidateName(NameKind kind, std::string_view name);

// A Databricks SQL string literal: single-quoted, where Databricks treats
// backslash as an escape character, so '\' -> '\\' and '\'' -> '\''. Newline,
// carriage return and tab become \n, \r, \t so statements stay on one log line;
// every other byte (including UTF-8) is kept as is.
std::string SqlStringLiteral(std::string_view text);

// `catalog`.`schema`.`table` (each part quoted; no validation).
std::string FullTableName(std::string_view catalog, std::string_view schema,
                          std::string_view table);

// The column's Databricks type: STRING, BIGINT, BOOLEAN, DATE, TIMESTAMP or
// DECIMAL(p,s).
std::string DatabricksType(const ColumnSpec& column);

// Checks a spec can be turned into DDL and MERGE: valid, unique
// (case-insensitively) column names, DECIMAL precision 1..38 and scale 0..p,
// comments that are valid UTF-8, a non-empty key of distinct existing columns,
// an existing version column.
absl::Status ValidateTableSpec(const TableSpec& spec);

// ---------------------------------------------------------------------------
// DDL

// CREATE SCHEMA IF NOT EXISTS `catalog`.`schema`
absl::StatusOr<std::string> CreateSchemaSql(std::string_view catalog, std::string_view schema);

// CREATE TABLE IF NOT EXISTS `c`.`s`.`t` (`col` TYPE [NOT NULL] [COMMENT '...'], ...)
// USING DELTA CLUSTER BY (<the first 4 key columns>) [COMMENT '...']
// TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true'). Key columns are NOT NULL.
absl::StatusOr<std::string> CreateTableSql(std::string_view catalog, std::string_view schema,
                                           const TableSpec& spec);

// ALTER TABLE `c`.`s`.`t` ADD COLUMNS (`col` TYPE [COMMENT '...'], ...). Added
// columns are nullable (Delta cannot add a NOT NULL column). Fails on an empty
// list, a column listed twice, or a column ValidateTableSpec would reject.
absl::StatusOr<std::string> AddColumnsSql(std::string_view catalog, std::string_view schema,
                                          std::string_view table,
                                          const std::vector<ColumnSpec>& columns);

// ---------------------------------------------------------------------------
// Schema diff against an existing table

// A column of an existing table as Unity Catalog reports it
// (GET /api/2.1/unity-catalog/tables/{full_name}: columns[].name, .type_text).
struct CatalogColumn {
  std::string name;
  std::string type_text;  // e.g. "bigint", "decimal(18,2)", "string"
};

// Parses the `columns` of a Unity Catalog table answer (JSON text).
absl::StatusOr<std::vector<CatalogColumn>> ParseCatalogColumns(std::string_view table_json);

// Canonical lowercase type text, so that equal types compare equal: whitespace
// removed, aliases resolved (long -> bigint, integer -> int, short -> smallint,
// byte -> tinyint, bool -> boolean, dec/numeric -> decimal, decimal -> decimal(10,0),
// decimal(p) -> decimal(p,0), timestamp_ltz -> timestamp, real -> float). Distinct
// types stay distinct: int is not bigint, timestamp_ntz is not timestamp.
std::string NormalizeTypeText(std::string_view type_text);

struct ColumnConflict {
  std::string name;
  std::string expected_type;  // normalised type text the spec wants
  std::string actual_type;    // normalised type text the table has
};

struct SchemaDiff {
  std::vector<ColumnSpec> missing;           // in spec order: ALTER TABLE ADD COLUMNS
  std::vector<ColumnConflict> incompatible;  // never retyped: a permanent error
  std::vector<std::string> extra;            // table columns the spec lacks (harmless)
  bool UpToDate() const { return missing.empty() && incompatible.empty(); }
};

// Compares names case-insensitively and types after NormalizeTypeText.
SchemaDiff DiffSchema(const TableSpec& spec, const std::vector<CatalogColumn>& existing);

// "column `amount`: table has int, spec wants decimal(18,2); ..." for error messages.
std::string DescribeConflicts(const std::vector<ColumnConflict>& conflicts);

// ---------------------------------------------------------------------------
// MERGE

// A Statement Execution API parameter: {"name", "value", "type"}.
struct SqlParameter {
  std::string name;
  std::string value;
  std::string type;
};

struct SqlStatement {
  std::string sql;
  std::vector<SqlParameter> parameters;
  size_t row_count = 0;  // rows in the statement after deduplication
};

// Name of the MERGE's single parameter.
inline constexpr char kRowsParameter[] = "rows";

// Checks one row against its spec: arity, no NULL in a key column, and values in
// the canonical text form of table_spec.h (BIGINT fits int64, BOOLEAN true/false,
// DATE a real YYYY-MM-DD, TIMESTAMP YYYY-MM-DDTHH:MM:SS.ffffffZ, DECIMAL within
// precision and scale). A sink calls it per row to dead-letter only the bad ones;
// MergeStatement itself checks only arity (the warehouse's CASTs catch the rest).
absl::Status ValidateRow(const TableSpec& spec, const Row& row);

// One row per key, in order of each key's first appearance. The surviving row is
// the newest by version_column (NULL oldest; ties go to the later row, as
// sequential upserts would); without a version column the last row, except for
// insert_only specs, which keep the first (first write wins, as in the table).
// A MERGE whose source has two rows for one key fails, so every batch goes
// through here. Keys compare as the warehouse compares them after the CAST
// (BIGINT "007" equals "7", DECIMAL "1.50" equals "1.5"). Rows shorter than the
// spec read missing cells as NULL.
std::vector<Row> DeduplicateRows(const TableSpec& spec, const std::vector<Row>& rows);

// The `:rows` value: a JSON array with one object per row, keys the column names
// in spec order, values JSON strings (the canonical text) or null. Fails on a
// row of the wrong arity or a value that is not valid UTF-8.
absl::StatusOr<std::string> RowsJson(const TableSpec& spec, const std::vector<Row>& rows);

// The MERGE upserting `rows` (deduplicated first) into `catalog`.`schema`.`spec.name`:
//
//   MERGE INTO <table> AS t
//   USING (SELECT r.`a` AS `a`, CAST(r.`n` AS BIGINT) AS `n`, ...
//          FROM (SELECT inline(from_json(:rows, 'ARRAY<STRUCT<`a`: STRING, ...>>'))) AS r) AS s
//   ON t.`k1` <=> s.`k1` AND ...
//   WHEN MATCHED [AND (t.`v` IS NULL OR s.`v` >= t.`v`)] THEN UPDATE SET `c` = s.`c`, ...
//   WHEN NOT MATCHED THEN INSERT (`a`, ...) VALUES (s.`a`, ...)
//
// insert_only specs have no WHEN MATCHED clause (nor does a spec whose columns
// are all key). Fails on an invalid spec or names, no rows, or a bad row (RowsJson).
absl::StatusOr<SqlStatement> MergeStatement(std::string_view catalog, std::string_view schema,
                                            const TableSpec& spec, const std::vector<Row>& rows);

struct BatchLimits {
  size_t max_rows = 500;
  // Bytes of the `:rows` JSON value. Far below the Statement API's 16 MiB so a
  // statement stays quick to upload, parse and retry.
  size_t max_bytes = 4 * 1024 * 1024;
};

// Deduplicates `rows` (DeduplicateRows) and splits them, in order, into batches
// of at most max_rows rows whose RowsJson is at most max_bytes. Fails if a row
// is invalid for RowsJson or alone exceeds max_bytes (the error names its key),
// or if a limit is zero.
absl::StatusOr<std::vector<std::vector<Row>>> SplitIntoBatches(const TableSpec& spec,
                                                               const std::vector<Row>& rows,
                                                               const BatchLimits& limits = {});

}  // namespace mlc::writer

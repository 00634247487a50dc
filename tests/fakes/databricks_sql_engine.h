// FakeSqlEngine: the SQL warehouse behind the fake Databricks. It executes the
// Databricks SQL that ml-connector generates (writer/databricks_sql.h) on a real
// SQLite database, so wrong SQL fails a test the way it would fail in
// production instead of being pattern-matched into success.
//
// It tokenizes Databricks SQL (`backtick` identifiers with `` doubled, string
// literals with Spark's backslash escapes and adjacent-literal concatenation,
// named parameter markers :name, numbers with Spark's type suffixes, -- and
// nested /* */ comments), parses it with a recursive-descent parser and answers
// [PARSE_SYNTAX_ERROR] (42601) to anything outside exactly these forms:
//
//   SELECT <expr> [AS a], ...                            (no FROM: SELECT 1)
//   SELECT <*|x.*|expr|COUNT(*)> [[AS] a], ... FROM <c.s.t | (query)> [[AS] x]
//       [WHERE e] [ORDER BY e|alias|n [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]
//   CREATE SCHEMA [IF NOT EXISTS] [c.]s [COMMENT '...']
//   CREATE TABLE [IF NOT EXISTS] c.s.t (col TYPE [NOT NULL] [COMMENT '...'], ...)
//       [USING DELTA] [CLUSTER BY (cols)] [COMMENT '...'] [TBLPROPERTIES ('k' = 'v', ...)]
//   ALTER TABLE c.s.t ADD COLUMN[S] [(]col TYPE [COMMENT '...'], ...[)]
//   MERGE INTO c.s.t [[AS] t]
//     USING {(query) | c.s.t} [AS] s   -- query may read (SELECT inline(from_json(
//                                         :param | 'json', 'ARRAY<STRUCT<f: TYPE, ...>>')))
//     ON <cond>
//     {WHEN MATCHED [AND cond] THEN {UPDATE SET col = expr, ... | UPDATE SET * | DELETE}}
//     {WHEN NOT MATCHED [BY TARGET] [AND cond] THEN INSERT {(cols) VALUES (exprs) | *}}
//
// Expressions: literals (strings, numbers, NULL, TRUE/FALSE, DATE '...',
// TIMESTAMP '...'), parameters, [qualifier.]column, CAST(e AS type), = == <=> <>
// != < <= > >=, IS [NOT] NULL, AND, OR, NOT, parentheses; every expression is
// type-checked ([DATATYPE_MISMATCH.*] 42K09). Types: STRING, BIGINT/LONG,
// INT, SMALLINT, TINYINT, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_NTZ, DECIMAL(p,s),
// DOUBLE, FLOAT. Casts follow ANSI mode (Databricks SQL's default) and Spark's
// string formats: bad input fails with [CAST_INVALID_INPUT] (22018), overflow with
// [CAST_OVERFLOW] or [NUMERIC_VALUE_OUT_OF_RANGE] (22003); the session time zone
// is UTC. Comparisons apply Spark's implicit casts (a STRING is cast to the other
// side's type). Result values are the API's strings: BOOLEAN "true"/"false",
// TIMESTAMP "2026-11-26T12:00:00.000000Z" (FormatTimestamp's form), DECIMAL with
// its scale ("12.50"), NULL as nullopt.
//
// Unity Catalog rules it enforces: a schema must exist before a table is made in
// it ([SCHEMA_NOT_FOUND] 42704); catalog, schema and table names are
// case-insensitive, stored lowercase, and may not contain '.', ' ', '/' or
// control characters; column names keep their case, compare case-insensitively
// and follow Delta's character rule. A missing table is [TABLE_OR_VIEW_NOT_FOUND]
// (42P01); an unknown column is [UNRESOLVED_COLUMN.WITH_SUGGESTION] (42703),
// including a MERGE naming a target column the table lacks (see
// set_unresolved_target_column_style for the other message Delta uses); ADD
// COLUMNS of an existing column is [FIELD_ALREADY_EXISTS] (42710); NOT NULL
// violations are [DELTA_NOT_NULL_CONSTRAINT_VIOLATED] (23502). Names with fewer
// than three parts use ExecContext, else catalog `main`, schema `default`.
// Catalogs need not be created.
//
// MERGE follows Delta: the source is materialised (CASTs fail here), joined to
// the target on the ON condition, the first WHEN MATCHED clause whose condition
// holds applies to each matched target row (UPDATE ... FROM in SQLite), and
// unmatched source rows go to the first WHEN NOT MATCHED clause whose condition
// holds (INSERT ... SELECT); a target row that two source rows would modify fails
// with [DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE] (21506). One
// deliberate divergence: when the ON condition is a conjunction of
// `t.x = s.y` / `t.x <=> s.y`, a source with two rows for one key fails with that
// error even if they match no target row (Delta would silently insert both,
// duplicating the key) — so a missing deduplication surfaces in tests. As on a
// real warehouse, from_json of malformed JSON (or JSON that is not an array)
// yields NULL and the MERGE sees no rows; a field whose JSON value does not fit
// its declared type is NULL. Store assignment casts a value to the column type
// at run time (ANSI cast, as Delta does); a type that cannot be cast at all
// fails with [DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION].
//
// Every statement runs in one SQLite transaction: it applies entirely or not at
// all, DDL included (the catalog lives in metadata tables of the same database).
//
// Thread-safe: one mutex serialises all calls.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace mlc::testing {

// A Statement Execution API parameter. `type` is a Databricks type name
// (STRING, BIGINT, INT, BOOLEAN, DATE, TIMESTAMP, DECIMAL(p,s), DOUBLE, ...).
struct SqlParam {
  std::string name;
  std::optional<std::string> value;  // nullopt: NULL
  std::string type = "STRING";
};

// Defaults for names with fewer parts, as the API's `catalog` / `schema` fields.
struct ExecContext {
  std::string catalog;
  std::string schema;
};

struct ResultColumn {
  std::string name;
  std::string type_text;  // e.g. "bigint", "decimal(18,2)"
};

// What the Statement Execution API reports for a finished statement.
struct ExecResult {
  std::string state;       // "SUCCEEDED" or "FAILED"
  std::string error_code;  // "BAD_REQUEST" when FAILED
  std::string sql_state;   // e.g. "42P01" when FAILED
  std::string message;     // "[TABLE_OR_VIEW_NOT_FOUND] The table ..." when FAILED
  // The result set (manifest schema and data_array): strings, nullopt for NULL.
  std::vector<ResultColumn> columns;
  std::vector<std::vector<std::optional<std::string>>> data_array;
  // MERGE only (also in data_array, in this order, as Databricks returns them).
  int64_t num_affected_rows = 0;
  int64_t num_updated_rows = 0;
  int64_t num_deleted_rows = 0;
  int64_t num_inserted_rows = 0;

  bool ok() const { return state == "SUCCEEDED"; }
  // The bracketed class at the start of `message` ("TABLE_OR_VIEW_NOT_FOUND",
  // "UNRESOLVED_COLUMN.WITH_SUGGESTION"), or "" when none.
  std::string error_class() const;
};

// A column as Unity Catalog describes it.
struct FakeColumnInfo {
  std::string name;
  std::string type_text;  // "bigint", "decimal(18,2)", ...
  std::string type_name;  // "LONG", "DECIMAL", "STRING", ...
  int position = 0;       // 0-based
  bool nullable = true;
  std::string comment;
};

struct FakeTableInfo {
  std::string catalog_name;
  std::string schema_name;
  std::string name;
  std::string full_name;  // "catalog.schema.table"
  std::string comment;
  std::vector<FakeColumnInfo> columns;
  std::map<std::string, std::string> properties;  // TBLPROPERTIES
  std::vector<std::string> cluster_columns;
};

// The answer of GET /api/2.1/unity-catalog/tables/{full_name} for `info`.
std::string ToUnityCatalogJson(const FakeTableInfo& info);

// A column for CreateTableDirect; `type` is Databricks type text ("int", "STRING").
struct FakeColumnDef {
  std::string name;
  std::string type;
  bool nullable = true;
  std::string comment = "";
};

// Which error a MERGE naming a target column the table lacks (in UPDATE SET or
// the INSERT column list) produces. Databricks has reported both over time.
enum class UnresolvedTargetColumnStyle {
  kUnresolvedColumn,                // [UNRESOLVED_COLUMN.WITH_SUGGESTION] 42703
  kDeltaMergeUnresolvedExpression,  // [DELTA_MERGE_UNRESOLVED_EXPRESSION] 42601
};

class FakeSqlEngine {
 public:
  // Opens (creating if needed) a SQLite database: a file, or ":memory:".
  static absl::StatusOr<std::unique_ptr<FakeSqlEngine>> Open(const std::string& path = ":memory:");
  ~FakeSqlEngine();
  FakeSqlEngine(const FakeSqlEngine&) = delete;
  FakeSqlEngine& operator=(const FakeSqlEngine&) = delete;

  // Runs one statement (a trailing ';' is allowed) with named parameters. DDL
  // answers no columns; a failure the fake cannot express as a Databricks error
  // (a bug in the fake) is [INTERNAL_ERROR] (XX000).
  ExecResult Execute(std::string_view sql, const std::vector<SqlParam>& params = {},
                     const ExecContext& context = {});
  // Execute without parameters, for reading tables in tests.
  ExecResult Query(std::string_view sql) { return Execute(sql); }

  // Unity Catalog view of a table ("catalog.schema.table", case-insensitive), or
  // nullopt if it does not exist.
  std::optional<FakeTableInfo> TableInfo(std::string_view full_name);
  bool SchemaExists(std::string_view catalog, std::string_view schema);
  // Full names of all tables, sorted.
  std::vector<std::string> ListTables();

  // Test set-up without SQL. CreateTableDirect creates the schema if missing and
  // fails if the table exists; use it to start from an older or conflicting table.
  absl::Status CreateSchemaDirect(std::string_view catalog, std::string_view schema);
  absl::Status CreateTableDirect(std::string_view full_name,
                                 const std::vector<FakeColumnDef>& columns,
                                 const std::vector<std::string>& cluster_by = {},
                                 const std::string& comment = "",
                                 const std::map<std::string, std::string>& properties = {});

  void set_unresolved_target_column_style(UnresolvedTargetColumnStyle style);
  // Statements executed (succeeded or failed) since Open.
  int64_t statement_count();

 private:
  explicit FakeSqlEngine(sqlite3* db);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  UnresolvedTargetColumnStyle unresolved_style_ ABSL_GUARDED_BY(mu_) =
      UnresolvedTargetColumnStyle::kUnresolvedColumn;
  int64_t statement_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mlc::testing

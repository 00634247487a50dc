// Tests of FakeSqlEngine (tests/fakes/databricks_sql_engine.h) running the SQL
// that writer/databricks_sql.h generates, end to end: provision a schema and a
// table, MERGE batches through the `:rows` parameter, read the rows back, and
// get Databricks' error classes for what a real warehouse would reject. A wrong
// statement from the generator fails here rather than in production.
#include "tests/fakes/databricks_sql_engine.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"
#include "writer/databricks_sql.h"
#include "writer/table_spec.h"

namespace mlc::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using writer::Row;
using writer::SqlType;
using writer::TableSpec;

using writer::ColumnSpec;

using Cells = std::vector<std::optional<std::string>>;

constexpr char kCatalog[] = "finance";
constexpr char kSchema[] = "freshbooks";

// A column without a comment.
ColumnSpec Col(const std::string& name, SqlType type, int precision = 18, int scale = 2) {
  return ColumnSpec{name, type, precision, scale, ""};
}

TableSpec InvoicesSpec() {
  TableSpec spec;
  spec.name = "freshbooks_invoices";
  spec.columns = {
      {"account_id", SqlType::kString, 0, 0, "FreshBooks account"},
      {"id", SqlType::kBigint, 0, 0, "invoice id"},
      {"amount", SqlType::kDecimal, 18, 2, "it's the total"},
      {"due_date", SqlType::kDate, 0, 0, ""},
      {"paid", SqlType::kBoolean, 0, 0, ""},
      {"updated_at", SqlType::kTimestamp, 0, 0, ""},
      {"raw", SqlType::kString, 0, 0, ""},
  };
  spec.key = {"account_id", "id"};
  spec.version_column = "updated_at";
  spec.comment = "FreshBooks invoices, current state (ml-connector)";
  return spec;
}

Row Invoice(const std::string& id, const std::string& amount, const std::string& updated_at,
            std::optional<std::string> raw = std::string("{}")) {
  return {"acme", id, amount, "2026-12-01", "true", updated_at, std::move(raw)};
}

// An events row (FreshBooksEventsTable's layout).
Row Event(const std::string& delivery_id, const std::string& data) {
  return {delivery_id,
          "conn-1",
          "invoice.create",
          "invoice",
          "42",
          "acme",
          "7",
          "id-1",
          "u-1",
          "2026-11-26T12:00:00.000000Z",
          "2026-11-26T12:00:01.500000Z",
          data};
}

std::vector<SqlParam> ToParams(const writer::SqlStatement& statement) {
  std::vector<SqlParam> out;
  for (const writer::SqlParameter& p : statement.parameters) {
    out.push_back({p.name, p.value, p.type});
  }
  return out;
}

class FakeSqlEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeSqlEngine>> engine = FakeSqlEngine::Open();
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  ExecResult Run(const std::string& sql, const std::vector<SqlParam>& params = {}) {
    return engine_->Execute(sql, params);
  }

  ExecResult RunOk(const std::string& sql, const std::vector<SqlParam>& params = {}) {
    ExecResult r = Run(sql, params);
    EXPECT_TRUE(r.ok()) << r.message << "\nin: " << sql;
    return r;
  }

  // The error class of a statement expected to fail.
  std::string RunFails(const std::string& sql, const std::vector<SqlParam>& params = {}) {
    ExecResult r = Run(sql, params);
    EXPECT_EQ(r.state, "FAILED") << sql;
    EXPECT_EQ(r.error_code, "BAD_REQUEST");
    EXPECT_TRUE(r.data_array.empty());
    return r.error_class();
  }

  void Provision(const TableSpec& spec) {
    RunOk(*writer::CreateSchemaSql(kCatalog, kSchema));
    absl::StatusOr<std::string> ddl = writer::CreateTableSql(kCatalog, kSchema, spec);
    ASSERT_TRUE(ddl.ok()) << ddl.status();
    RunOk(*ddl);
  }

  ExecResult Merge(const TableSpec& spec, const std::vector<Row>& rows) {
    absl::StatusOr<writer::SqlStatement> st = writer::MergeStatement(kCatalog, kSchema, spec, rows);
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return ExecResult{};
    return Run(st->sql, ToParams(*st));
  }

  // The MERGE for `spec` with a hand-made `:rows` value (to bypass dedup).
  ExecResult MergeWithRowsJson(const TableSpec& spec, const std::string& rows_json) {
    absl::StatusOr<writer::SqlStatement> st =
        writer::MergeStatement(kCatalog, kSchema, spec, {Row(spec.columns.size(), "x")});
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return ExecResult{};
    return Run(st->sql, {{"rows", rows_json, "STRING"}});
  }

  std::vector<Cells> Select(const std::string& sql) { return RunOk(sql).data_array; }

  std::string Table(const TableSpec& spec) {
    return writer::FullTableName(kCatalog, kSchema, spec.name);
  }

  int64_t Count(const TableSpec& spec) {
    const std::vector<Cells> rows = Select("SELECT COUNT(*) FROM " + Table(spec));
    return rows.size() == 1 && rows[0][0].has_value() ? std::stoll(*rows[0][0]) : -1;
  }

  std::unique_ptr<FakeSqlEngine> engine_;
};

// --- Literal selects, quoting, escaping

TEST_F(FakeSqlEngineTest, SelectsLiterals) {
  ExecResult r = RunOk("SELECT 1");
  ASSERT_EQ(r.columns.size(), 1u);
  EXPECT_EQ(r.columns[0].name, "1");
  EXPECT_EQ(r.columns[0].type_text, "int");
  EXPECT_THAT(r.data_array, ElementsAre(Cells{"1"}));

  r = RunOk(
      "select 'it''s' AS a, NULL, true, 1.50, CAST('7' AS BIGINT) b, DATE '2024-02-29', "
      "TIMESTAMP '2026-11-26 13:00:00+01:00', -12, 10L, 1.5e1, 'a' 'b';");
  EXPECT_THAT(r.data_array,
              ElementsAre(Cells{"its", std::nullopt, "true", "1.50", "7", "2024-02-29",
                                "2026-11-26T12:00:00.000000Z", "-12", "10", "15.0", "ab"}));
  EXPECT_EQ(r.columns[0].name, "a");
  EXPECT_EQ(r.columns[3].type_text, "decimal(3,2)");
  EXPECT_EQ(r.columns[4].name, "b");
  EXPECT_EQ(r.columns[4].type_text, "bigint");
}

TEST_F(FakeSqlEngineTest, StringLiteralsUnescapeAsDatabricksDoes) {
  const ExecResult r = RunOk(
      R"(SELECT 'a\\b', 'it\'s', "dq\"", '\n\t\r', '\u00e9\U0001F9FE', '\101', '\q', '%\%', '-- x /* y */')");
  EXPECT_THAT(r.data_array, ElementsAre(Cells{"a\\b", "it's", "dq\"", "\n\t\r", "é🧾", "A", "q",
                                              "%\\%", "-- x /* y */"}));
}

TEST_F(FakeSqlEngineTest, SqlStringLiteralRoundTrips) {
  for (const std::string& text : std::vector<std::string>{
           "", "plain", "it's", "a\\b", "\\'", "'\\", "x'); DROP TABLE t; --", "line\nbreak\r\t",
           "\"double\" `tick`", "café ☕ 🧾", "\\u0041 is not A", "\\101", "%_\\%\\_"}) {
    const ExecResult r = RunOk("SELECT " + writer::SqlStringLiteral(text));
    EXPECT_THAT(r.data_array, ElementsAre(Cells{text})) << text;
  }
}

TEST_F(FakeSqlEngineTest, QuotedIdentifiersRoundTrip) {
  TableSpec spec;
  spec.name = "we`ird_t@ble";
  spec.columns = {Col("select", SqlType::kString), Col("odd`name", SqlType::kString),
                  Col("it's", SqlType::kBigint), Col("\xc3\xa9t\xc3\xa9", SqlType::kString)};
  spec.key = {"select"};
  Provision(spec);
  const ExecResult merged = Merge(spec, {{"k", "v", "3", "summer"}});
  ASSERT_TRUE(merged.ok()) << merged.message;
  EXPECT_THAT(Select("SELECT `odd``name`, `it's`, `été` FROM " + Table(spec)),
              ElementsAre(Cells{"v", "3", "summer"}));
  const std::optional<FakeTableInfo> info = engine_->TableInfo("finance.freshbooks.we`ird_t@ble");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->columns[1].name, "odd`name");
}

// --- Provisioning

TEST_F(FakeSqlEngineTest, CreatesSchemaAndTableWithUnityCatalogMetadata) {
  Provision(InvoicesSpec());
  EXPECT_TRUE(engine_->SchemaExists("FINANCE", "freshbooks"));
  EXPECT_THAT(engine_->ListTables(), ElementsAre("finance.freshbooks.freshbooks_invoices"));
  const std::optional<FakeTableInfo> info =
      engine_->TableInfo("Finance.FreshBooks.FreshBooks_Invoices");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->full_name, "finance.freshbooks.freshbooks_invoices");
  EXPECT_EQ(info->comment, "FreshBooks invoices, current state (ml-connector)");
  EXPECT_THAT(info->cluster_columns, ElementsAre("account_id", "id"));
  EXPECT_EQ(info->properties.at("delta.enableChangeDataFeed"), "true");
  ASSERT_EQ(info->columns.size(), 7u);
  const FakeColumnInfo& id = info->columns[1];
  EXPECT_EQ(id.name, "id");
  EXPECT_EQ(id.type_text, "bigint");
  EXPECT_EQ(id.type_name, "LONG");
  EXPECT_EQ(id.position, 1);
  EXPECT_FALSE(id.nullable);
  EXPECT_EQ(info->columns[2].type_text, "decimal(18,2)");
  EXPECT_EQ(info->columns[2].type_name, "DECIMAL");
  EXPECT_EQ(info->columns[2].comment, "it's the total");
  EXPECT_TRUE(info->columns[2].nullable);
  EXPECT_EQ(info->columns[3].type_name, "DATE");
  EXPECT_EQ(info->columns[4].type_name, "BOOLEAN");
  EXPECT_EQ(info->columns[5].type_name, "TIMESTAMP");
  EXPECT_EQ(info->columns[6].type_name, "STRING");

  // The Unity Catalog answer parses and diffs clean against the spec.
  absl::StatusOr<std::vector<writer::CatalogColumn>> columns =
      writer::ParseCatalogColumns(ToUnityCatalogJson(*info));
  ASSERT_TRUE(columns.ok()) << columns.status();
  EXPECT_TRUE(writer::DiffSchema(InvoicesSpec(), *columns).UpToDate());

  EXPECT_FALSE(engine_->TableInfo("finance.freshbooks.nope").has_value());
  EXPECT_FALSE(engine_->TableInfo("freshbooks_invoices").has_value());
}

TEST_F(FakeSqlEngineTest, DdlIsIdempotentWithIfNotExists) {
  Provision(InvoicesSpec());
  Provision(InvoicesSpec());
  EXPECT_EQ(RunFails("CREATE SCHEMA finance.freshbooks"), "SCHEMA_ALREADY_EXISTS");
  EXPECT_EQ(RunFails("CREATE TABLE finance.freshbooks.freshbooks_invoices (a STRING)"),
            "TABLE_OR_VIEW_ALREADY_EXISTS");
}

TEST_F(FakeSqlEngineTest, TableInMissingSchemaIsSchemaNotFound) {
  const ExecResult r = Run(*writer::CreateTableSql(kCatalog, kSchema, InvoicesSpec()));
  EXPECT_EQ(r.state, "FAILED");
  EXPECT_EQ(r.error_class(), "SCHEMA_NOT_FOUND");
  EXPECT_EQ(r.sql_state, "42704");
  EXPECT_THAT(r.message, HasSubstr("[SCHEMA_NOT_FOUND] The schema `finance`.`freshbooks`"));
  EXPECT_TRUE(engine_->ListTables().empty());
}

TEST_F(FakeSqlEngineTest, RejectsInvalidNamesAndDdl) {
  RunOk("CREATE SCHEMA c.s");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.`a b` (x STRING)"), "INVALID_SCHEMA_OR_RELATION_NAME");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (`a=b` STRING)"),
            "DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (a STRING, A INT)"), "COLUMN_ALREADY_EXISTS");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (a STRING) CLUSTER BY (b)"),
            "UNRESOLVED_COLUMN.WITH_SUGGESTION");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (a VARIANT)"), "UNSUPPORTED_DATATYPE");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (a DECIMAL(39,2))"), "UNSUPPORTED_DATATYPE");
  EXPECT_EQ(RunFails("CREATE TABLE c.s.t (a STRING) USING PARQUET"), "PARSE_SYNTAX_ERROR");
  EXPECT_TRUE(engine_->ListTables().empty());
}

// --- MERGE end to end

TEST_F(FakeSqlEngineTest, MergeInsertsRowsWithTheirValues) {
  Provision(InvoicesSpec());
  const ExecResult r =
      Merge(InvoicesSpec(), {Invoice("2", "1234567890123456.78", "2026-01-01T00:00:00.000000Z"),
                             Invoice("1", "-0.50", "2026-01-01T10:11:12.123456Z", std::nullopt)});
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.num_inserted_rows, 2);
  EXPECT_EQ(r.num_updated_rows, 0);
  EXPECT_EQ(r.num_affected_rows, 2);
  EXPECT_THAT(r.data_array, ElementsAre(Cells{"2", "0", "0", "2"}));
  EXPECT_EQ(r.columns[0].name, "num_affected_rows");

  const ExecResult rows = RunOk("SELECT * FROM " + Table(InvoicesSpec()) + " ORDER BY id");
  ASSERT_EQ(rows.columns.size(), 7u);
  EXPECT_EQ(rows.columns[2].name, "amount");
  EXPECT_EQ(rows.columns[2].type_text, "decimal(18,2)");
  EXPECT_THAT(rows.data_array, ElementsAre(Cells{"acme", "1", "-0.50", "2026-12-01", "true",
                                                 "2026-01-01T10:11:12.123456Z", std::nullopt},
                                           Cells{"acme", "2", "1234567890123456.78", "2026-12-01",
                                                 "true", "2026-01-01T00:00:00.000000Z", "{}"}));
}

TEST_F(FakeSqlEngineTest, MergingTwiceIsIdempotent) {
  Provision(InvoicesSpec());
  const std::vector<Row> rows = {Invoice("1", "10.00", "2026-01-01T00:00:00.000000Z"),
                                 Invoice("2", "20.00", "2026-01-01T00:00:00.000000Z"),
                                 Invoice("3", "30.00", "2026-01-01T00:00:00.000000Z")};
  ASSERT_TRUE(Merge(InvoicesSpec(), rows).ok());
  const std::string query = "SELECT * FROM " + Table(InvoicesSpec()) + " ORDER BY id";
  const std::vector<Cells> before = Select(query);
  const ExecResult again = Merge(InvoicesSpec(), rows);
  ASSERT_TRUE(again.ok()) << again.message;
  EXPECT_EQ(again.num_inserted_rows, 0);
  EXPECT_EQ(again.num_updated_rows, 3);  // same version: rewritten with the same values
  EXPECT_EQ(Select(query), before);
  EXPECT_EQ(Count(InvoicesSpec()), 3);
}

TEST_F(FakeSqlEngineTest, VersionColumnPreventsRollback) {
  Provision(InvoicesSpec());
  ASSERT_TRUE(Merge(InvoicesSpec(), {Invoice("1", "2.00", "2026-01-02T00:00:00.000000Z")}).ok());
  const ExecResult older =
      Merge(InvoicesSpec(), {Invoice("1", "1.00", "2026-01-01T23:59:59.999999Z")});
  ASSERT_TRUE(older.ok()) << older.message;
  EXPECT_EQ(older.num_affected_rows, 0);
  const std::string amount = "SELECT amount FROM " + Table(InvoicesSpec()) + " WHERE id = 1";
  EXPECT_THAT(Select(amount), ElementsAre(Cells{"2.00"}));
  const ExecResult newer =
      Merge(InvoicesSpec(), {Invoice("1", "3.00", "2026-01-02T00:00:00.000001Z")});
  ASSERT_TRUE(newer.ok()) << newer.message;
  EXPECT_EQ(newer.num_updated_rows, 1);
  EXPECT_THAT(Select(amount), ElementsAre(Cells{"3.00"}));
  // A NULL version never replaces a versioned row.
  ASSERT_TRUE(Merge(InvoicesSpec(),
                    {{"acme", "1", "4.00", std::nullopt, std::nullopt, std::nullopt, std::nullopt}})
                  .ok());
  EXPECT_THAT(Select(amount), ElementsAre(Cells{"3.00"}));
}

TEST_F(FakeSqlEngineTest, InsertOnlyKeepsTheFirstWrite) {
  const TableSpec& spec = writer::FreshBooksEventsTable();
  Provision(spec);
  ASSERT_TRUE(Merge(spec, {Event("d-1", R"({"v":1})")}).ok());
  const ExecResult replay = Merge(spec, {Event("d-1", R"({"v":2})"), Event("d-2", "{}")});
  ASSERT_TRUE(replay.ok()) << replay.message;
  EXPECT_EQ(replay.num_inserted_rows, 1);
  EXPECT_EQ(replay.num_updated_rows, 0);
  EXPECT_THAT(Select("SELECT delivery_id, data, processed_at FROM " + Table(spec) +
                     " ORDER BY delivery_id"),
              ElementsAre(Cells{"d-1", R"({"v":1})", "2026-11-26T12:00:01.500000Z"},
                          Cells{"d-2", "{}", "2026-11-26T12:00:01.500000Z"}));
}

TEST_F(FakeSqlEngineTest, InjectionAttemptIsStoredVerbatim) {
  Provision(InvoicesSpec());
  const std::string evil =
      "x'); DROP TABLE finance.freshbooks.freshbooks_invoices; -- `tick` \\' \"q\" :rows é\n";
  ASSERT_TRUE(
      Merge(InvoicesSpec(), {Invoice("1", "1.00", "2026-01-01T00:00:00.000000Z", evil)}).ok());
  EXPECT_THAT(Select("SELECT raw FROM " + Table(InvoicesSpec())), ElementsAre(Cells{evil}));
  EXPECT_EQ(engine_->ListTables().size(), 1u);
}

TEST_F(FakeSqlEngineTest, MalformedRowsJsonMergesNothing) {
  Provision(InvoicesSpec());
  const ExecResult r = MergeWithRowsJson(InvoicesSpec(), "[{\"account_id\": ");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.num_affected_rows, 0);
  EXPECT_EQ(Count(InvoicesSpec()), 0);
}

TEST_F(FakeSqlEngineTest, BatchedMergesOfThousandsOfRows) {
  Provision(InvoicesSpec());
  std::vector<Row> rows;
  rows.reserve(3000);
  for (int i = 0; i < 3000; ++i) {
    rows.push_back(Invoice(absl::StrCat(i % 2500), absl::StrCat(i, ".25"),
                           absl::StrCat("2026-01-01T00:00:", 10 + i / 100, ".000000Z")));
  }
  absl::StatusOr<std::vector<std::vector<Row>>> batches =
      writer::SplitIntoBatches(InvoicesSpec(), rows, {500, 1 << 20});
  ASSERT_TRUE(batches.ok()) << batches.status();
  ASSERT_EQ(batches->size(), 5u);
  for (int round = 0; round < 2; ++round) {
    int64_t inserted = 0;
    for (const std::vector<Row>& batch : *batches) {
      const ExecResult r = Merge(InvoicesSpec(), batch);
      ASSERT_TRUE(r.ok()) << r.message;
      inserted += r.num_inserted_rows;
    }
    EXPECT_EQ(inserted, round == 0 ? 2500 : 0);
    EXPECT_EQ(Count(InvoicesSpec()), 2500);
  }
  // id 7 came twice (i = 7 and 2507); the newer one won.
  EXPECT_THAT(Select("SELECT amount FROM " + Table(InvoicesSpec()) + " WHERE id = 7"),
              ElementsAre(Cells{"2507.25"}));
}

// --- Errors a real warehouse reports

TEST_F(FakeSqlEngineTest, MissingTableIsTableOrViewNotFound) {
  RunOk(*writer::CreateSchemaSql(kCatalog, kSchema));
  const ExecResult r = Merge(InvoicesSpec(), {Invoice("1", "1.00", "2026-01-01T00:00:00.000000Z")});
  EXPECT_EQ(r.state, "FAILED");
  EXPECT_EQ(r.error_code, "BAD_REQUEST");
  EXPECT_EQ(r.sql_state, "42P01");
  EXPECT_EQ(r.error_class(), "TABLE_OR_VIEW_NOT_FOUND");
  EXPECT_THAT(r.message, HasSubstr("`finance`.`freshbooks`.`freshbooks_invoices`"));
  EXPECT_EQ(RunFails("SELECT * FROM finance.freshbooks.nope"), "TABLE_OR_VIEW_NOT_FOUND");
}

TEST_F(FakeSqlEngineTest, MissingColumnIsUnresolvedUntilAdded) {
  // An older version of the table: no `paid`, `raw` columns.
  ASSERT_TRUE(engine_
                  ->CreateTableDirect("finance.freshbooks.freshbooks_invoices",
                                      {{"account_id", "STRING", false},
                                       {"id", "BIGINT", false},
                                       {"amount", "DECIMAL(18,2)"},
                                       {"due_date", "DATE"},
                                       {"updated_at", "TIMESTAMP"}},
                                      {"account_id", "id"})
                  .ok());
  const std::vector<Row> rows = {Invoice("1", "1.00", "2026-01-01T00:00:00.000000Z")};
  ExecResult r = Merge(InvoicesSpec(), rows);
  EXPECT_EQ(r.error_class(), "UNRESOLVED_COLUMN.WITH_SUGGESTION");
  EXPECT_EQ(r.sql_state, "42703");
  EXPECT_THAT(r.message, HasSubstr("`paid`"));

  engine_->set_unresolved_target_column_style(
      UnresolvedTargetColumnStyle::kDeltaMergeUnresolvedExpression);
  r = Merge(InvoicesSpec(), rows);
  EXPECT_EQ(r.error_class(), "DELTA_MERGE_UNRESOLVED_EXPRESSION");
  EXPECT_EQ(r.sql_state, "42601");
  engine_->set_unresolved_target_column_style(UnresolvedTargetColumnStyle::kUnresolvedColumn);

  // Evolve the way the writer does: diff the Unity Catalog columns, add the missing.
  const std::optional<FakeTableInfo> info =
      engine_->TableInfo("finance.freshbooks.freshbooks_invoices");
  ASSERT_TRUE(info.has_value());
  absl::StatusOr<std::vector<writer::CatalogColumn>> columns =
      writer::ParseCatalogColumns(ToUnityCatalogJson(*info));
  ASSERT_TRUE(columns.ok()) << columns.status();
  const writer::SchemaDiff diff = writer::DiffSchema(InvoicesSpec(), *columns);
  ASSERT_EQ(diff.missing.size(), 2u);
  EXPECT_TRUE(diff.incompatible.empty());
  const std::string add =
      *writer::AddColumnsSql(kCatalog, kSchema, InvoicesSpec().name, diff.missing);
  RunOk(add);
  EXPECT_EQ(RunFails(add), "FIELD_ALREADY_EXISTS");
  EXPECT_EQ(Run(add).sql_state, "42710");

  r = Merge(InvoicesSpec(), rows);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_THAT(Select("SELECT paid, raw FROM " + Table(InvoicesSpec())),
              ElementsAre(Cells{"true", "{}"}));
  const std::optional<FakeTableInfo> evolved =
      engine_->TableInfo("finance.freshbooks.freshbooks_invoices");
  ASSERT_TRUE(evolved.has_value());
  ASSERT_EQ(evolved->columns.size(), 7u);
  EXPECT_EQ(evolved->columns[5].name, "paid");
  EXPECT_EQ(evolved->columns[5].position, 5);
  EXPECT_TRUE(evolved->columns[5].nullable);
}

TEST_F(FakeSqlEngineTest, IncompatibleColumnTypeShowsInTheDiff) {
  ASSERT_TRUE(engine_
                  ->CreateTableDirect(
                      "finance.freshbooks.freshbooks_invoices",
                      {{"account_id", "string"}, {"id", "int"}, {"amount", "decimal(10,2)"}})
                  .ok());
  EXPECT_EQ(engine_->CreateTableDirect("finance.freshbooks.freshbooks_invoices", {{"a", "string"}})
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(engine_->CreateTableDirect("finance.freshbooks.t2", {{"a", "blob"}}).ok());
  const std::optional<FakeTableInfo> info =
      engine_->TableInfo("finance.freshbooks.freshbooks_invoices");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->columns[1].type_name, "INT");
  const writer::SchemaDiff diff =
      writer::DiffSchema(InvoicesSpec(), *writer::ParseCatalogColumns(ToUnityCatalogJson(*info)));
  ASSERT_EQ(diff.incompatible.size(), 2u);
  EXPECT_EQ(writer::DescribeConflicts(diff.incompatible),
            "column `id`: table has int, spec wants bigint; "
            "column `amount`: table has decimal(10,2), spec wants decimal(18,2)");
}

TEST_F(FakeSqlEngineTest, DuplicateSourceKeysFailTheMerge) {
  Provision(InvoicesSpec());
  const TableSpec spec = InvoicesSpec();
  // Bypass DeduplicateRows: two source rows for one key.
  const std::string rows =
      *writer::RowsJson(spec, {Invoice("1", "1.00", "2026-01-01T00:00:00.000000Z"),
                               Invoice("1", "2.00", "2026-01-02T00:00:00.000000Z")});
  ExecResult r = MergeWithRowsJson(spec, rows);
  EXPECT_EQ(r.error_class(), "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE");
  EXPECT_EQ(r.sql_state, "21506");
  EXPECT_EQ(Count(spec), 0);  // nothing applied

  // Both rows matching one existing target row: Delta's own check.
  ASSERT_TRUE(Merge(spec, {Invoice("1", "0.50", "2025-01-01T00:00:00.000000Z")}).ok());
  r = MergeWithRowsJson(spec, rows);
  EXPECT_EQ(r.error_class(), "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE");
  EXPECT_THAT(Select("SELECT amount FROM " + Table(spec)), ElementsAre(Cells{"0.50"}));

  // Insert-only MERGEs have no MATCHED clause; the fake still refuses the duplicate.
  const TableSpec& events = writer::FreshBooksEventsTable();
  Provision(events);
  r = MergeWithRowsJson(events, *writer::RowsJson(events, {Event("d", "1"), Event("d", "2")}));
  EXPECT_EQ(r.error_class(), "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE");
  EXPECT_EQ(Count(events), 0);
}

TEST_F(FakeSqlEngineTest, BadValuesFailTheirCast) {
  Provision(InvoicesSpec());
  const Row good = Invoice("1", "1.00", "2026-01-01T00:00:00.000000Z");
  struct Case {
    size_t column;
    std::string value;
    std::string error_class;
  };
  for (const Case& c : std::vector<Case>{
           {1, "abc", "CAST_INVALID_INPUT"},
           {1, "99999999999999999999", "CAST_INVALID_INPUT"},
           {2, "ten", "CAST_INVALID_INPUT"},
           {2, "12345678901234567.00", "NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION"},
           {3, "2026-02-30", "CAST_INVALID_INPUT"},
           {4, "maybe", "CAST_INVALID_INPUT"},
           {5, "yesterday", "CAST_INVALID_INPUT"},
           {5, "2026-01-01T25:00:00Z", "CAST_INVALID_INPUT"},
       }) {
    Row row = good;
    row[c.column] = c.value;
    const ExecResult r = Merge(InvoicesSpec(), {Row(good), row});
    EXPECT_EQ(r.error_class(), c.error_class) << c.value << ": " << r.message;
    if (c.error_class == "CAST_INVALID_INPUT") {
      EXPECT_EQ(r.sql_state, "22018");
      EXPECT_THAT(r.message, HasSubstr(absl::StrCat("The value '", c.value, "'")));
    } else {
      EXPECT_EQ(r.sql_state, "22003");
    }
  }
  EXPECT_EQ(Count(InvoicesSpec()), 0);  // every statement was atomic
}

TEST_F(FakeSqlEngineTest, CastsFollowSparkStringFormats) {
  Provision(InvoicesSpec());
  // Accepted spellings, stored canonically (rounded half up to the scale).
  ASSERT_TRUE(Merge(InvoicesSpec(), {{"acme", " 7 ", "1.005", "2026-1-2", "YES",
                                      "2026-01-01 12:00:00.5-02:00", "x"}})
                  .ok());
  EXPECT_THAT(Select("SELECT id, amount, due_date, paid, updated_at FROM " + Table(InvoicesSpec())),
              ElementsAre(Cells{"7", "1.01", "2026-01-02", "true", "2026-01-01T14:00:00.500000Z"}));
}

TEST_F(FakeSqlEngineTest, NullKeyViolatesNotNull) {
  Provision(InvoicesSpec());
  const ExecResult r = Merge(InvoicesSpec(), {{"acme", std::nullopt, "1.00", std::nullopt,
                                               std::nullopt, std::nullopt, std::nullopt}});
  EXPECT_EQ(r.error_class(), "DELTA_NOT_NULL_CONSTRAINT_VIOLATED");
  EXPECT_EQ(r.sql_state, "23502");
  EXPECT_EQ(Count(InvoicesSpec()), 0);
}

TEST_F(FakeSqlEngineTest, MalformedSqlIsParseSyntaxError) {
  for (const std::string& sql : std::vector<std::string>{
           "", "SELEC 1", "SELECT 'unterminated", "SELECT `unterminated", "SELECT 1; SELECT 2",
           "DROP TABLE finance.freshbooks.t", "MERGE INTO", "SELECT * FROM", "SELECT 1 +",
           "SELECT /* open", "SELECT 1abc", "SELECT ?", "CREATE TABLE c.s.t ()",
           "MERGE INTO c.s.t USING c.s.u ON t.a = s.a WHEN NOT MATCHED BY SOURCE THEN DELETE",
           std::string("MERGE INTO c.s.t USING c.s.u s ON t.a = s.a WHEN NOT MATCHED THEN ") +
               "INSERT (a) VALUES (1, 2)"}) {
    const ExecResult r = Run(sql);
    EXPECT_EQ(r.error_class(), "PARSE_SYNTAX_ERROR") << sql << ": " << r.message;
    EXPECT_EQ(r.sql_state, "42601") << sql;
  }
  EXPECT_THAT(Run("SELECT 1 FROM WHERE").message,
              HasSubstr("[PARSE_SYNTAX_ERROR] Syntax error at or near 'WHERE'"));
}

TEST_F(FakeSqlEngineTest, ParametersAreTypedAndMustBeBound) {
  ExecResult r =
      RunOk("SELECT :a, :b, :c",
            {{"a", "42", "BIGINT"}, {"b", std::nullopt, "STRING"}, {"c", "2026-01-01", "DATE"}});
  EXPECT_THAT(r.data_array, ElementsAre(Cells{"42", std::nullopt, "2026-01-01"}));
  EXPECT_EQ(r.columns[0].type_text, "bigint");
  EXPECT_EQ(RunFails("SELECT :missing"), "UNBOUND_SQL_PARAMETER");
  EXPECT_EQ(RunFails("SELECT :a", {{"a", "x", "INT"}}), "CAST_INVALID_INPUT");
}

// --- Reading tables

TEST_F(FakeSqlEngineTest, SelectFiltersOrdersAndCounts) {
  Provision(InvoicesSpec());
  ASSERT_TRUE(Merge(InvoicesSpec(), {Invoice("1", "9.50", "2026-01-01T00:00:00.000000Z"),
                                     Invoice("2", "10.25", "2026-01-02T00:00:00.000000Z"),
                                     Invoice("3", "100.00", "2026-01-03T00:00:00.000000Z")})
                  .ok());
  const std::string t = Table(InvoicesSpec());
  EXPECT_THAT(Select("SELECT id FROM " + t + " WHERE amount >= 10 ORDER BY amount DESC"),
              ElementsAre(Cells{"3"}, Cells{"2"}));
  EXPECT_THAT(Select("SELECT x.id AS n FROM " + t +
                     " AS x WHERE x.updated_at > '2026-01-01' AND NOT (id = 3) ORDER BY n"),
              ElementsAre(Cells{"2"}));
  EXPECT_THAT(Select("SELECT id FROM " + t + " WHERE id = '2' OR raw IS NULL"),
              ElementsAre(Cells{"2"}));
  EXPECT_THAT(Select("SELECT id, amount FROM " + t + " ORDER BY 2 LIMIT 1"),
              ElementsAre(Cells{"1", "9.50"}));
  EXPECT_THAT(Select("SELECT COUNT(*) AS n FROM " + t + " WHERE paid"), ElementsAre(Cells{"3"}));
  EXPECT_THAT(Select("SELECT due_date FROM " + t +
                     " WHERE due_date = DATE '2026-12-01' AND "
                     "amount <=> 9.5"),
              ElementsAre(Cells{"2026-12-01"}));
  EXPECT_EQ(RunFails("SELECT nope FROM " + t), "UNRESOLVED_COLUMN.WITH_SUGGESTION");
  EXPECT_THAT(Run("SELECT nope FROM " + t).message, HasSubstr("`freshbooks_invoices`.`id`"));
  EXPECT_EQ(RunFails("SELECT id FROM " + t + " WHERE id = 'x'"), "CAST_INVALID_INPUT");
  EXPECT_EQ(RunFails("SELECT id FROM " + t + " WHERE due_date = 1"),
            "DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES");
  EXPECT_EQ(RunFails("SELECT id FROM " + t + " WHERE raw"),
            "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE");
  EXPECT_EQ(RunFails("SELECT id, COUNT(*) FROM " + t), "MISSING_AGGREGATION");
  EXPECT_EQ(RunFails("SELECT upper(raw) FROM " + t), "UNRESOLVED_ROUTINE");
}

TEST_F(FakeSqlEngineTest, HandWrittenMergeFollowsDeltaSemantics) {
  RunOk("CREATE SCHEMA c.s");
  RunOk("CREATE TABLE c.s.target (k BIGINT NOT NULL, v STRING, n INT)");
  RunOk("CREATE TABLE c.s.source (k BIGINT, v STRING, n BIGINT)");
  ASSERT_TRUE(Run("MERGE INTO c.s.source USING (SELECT inline(from_json("
                  "'[{\"k\":1,\"v\":\"one\",\"n\":1},{\"k\":2,\"v\":\"two\",\"n\":2},"
                  "{\"k\":3,\"v\":\"three\",\"n\":3}]', 'ARRAY<STRUCT<k BIGINT, v STRING, n "
                  "BIGINT>>'))) r ON false WHEN NOT MATCHED THEN INSERT *")
                  .ok());
  RunOk(
      "MERGE INTO c.s.target t USING (SELECT * FROM c.s.source WHERE k < 3) s ON t.k = s.k "
      "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, 'old')");
  const ExecResult r = RunOk(
      "MERGE INTO c.s.target AS t USING c.s.source AS s ON t.k = s.k "
      "WHEN MATCHED AND s.k = 1 THEN DELETE "
      "WHEN MATCHED THEN UPDATE SET * "
      "WHEN NOT MATCHED AND s.n > 100 THEN INSERT (k) VALUES (s.k) "
      "WHEN NOT MATCHED THEN INSERT (k, v, n) VALUES (s.k, s.v, s.n)");
  EXPECT_EQ(r.num_deleted_rows, 1);
  EXPECT_EQ(r.num_updated_rows, 1);
  EXPECT_EQ(r.num_inserted_rows, 1);
  EXPECT_EQ(r.num_affected_rows, 3);
  EXPECT_THAT(Select("SELECT * FROM c.s.target ORDER BY k"),
              ElementsAre(Cells{"2", "two", "2"}, Cells{"3", "three", "3"}));
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON t.k = s.k "
                     "WHEN MATCHED THEN UPDATE SET t.nope = s.v"),
            "UNRESOLVED_COLUMN.WITH_SUGGESTION");
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON t.k = s.k "
                     "WHEN MATCHED THEN UPDATE SET v = s.v, V = s.v"),
            "DUPLICATE_ASSIGNMENTS");
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON k = k "
                     "WHEN MATCHED THEN DELETE"),
            "AMBIGUOUS_REFERENCE");
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON t.k = s.k "
                     "WHEN MATCHED THEN DELETE WHEN MATCHED AND s.k = 1 THEN DELETE"),
            "NON_LAST_MATCHED_CLAUSE_OMIT_CONDITION");
  // Store assignment casts at run time: 'old' is no INT.
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON t.k = s.k "
                     "WHEN MATCHED THEN UPDATE SET n = 'old'"),
            "CAST_INVALID_INPUT");
  EXPECT_EQ(RunFails("MERGE INTO c.s.target t USING c.s.source s ON t.k = s.k "
                     "WHEN MATCHED THEN UPDATE SET n = DATE '2026-01-01'"),
            "DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION");
}

// --- Engine

TEST_F(FakeSqlEngineTest, ConcurrentMergesAreSerialised) {
  Provision(InvoicesSpec());
  std::vector<std::thread> threads;
  threads.reserve(4);
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const ExecResult r =
            Merge(InvoicesSpec(),
                  {Invoice(absl::StrCat(t * 100 + i), "1.00", "2026-01-01T00:00:00.000000Z"),
                   Invoice(absl::StrCat(1000 + i), absl::StrCat(t, ".00"),
                           "2026-01-01T00:00:00.000000Z")});
        if (!r.ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Count(InvoicesSpec()), 50);
  EXPECT_GE(engine_->statement_count(), 40);
}

TEST(FakeSqlEngineFileTest, TablesPersistAcrossOpen) {
  TempDir dir;
  const std::string path = dir.File("warehouse.db");
  {
    absl::StatusOr<std::unique_ptr<FakeSqlEngine>> engine = FakeSqlEngine::Open(path);
    ASSERT_TRUE(engine.ok()) << engine.status();
    ASSERT_TRUE((*engine)->CreateSchemaDirect("finance", "freshbooks").ok());
    ASSERT_TRUE((*engine)
                    ->Execute(*writer::CreateTableSql("finance", "freshbooks",
                                                      writer::FreshBooksEventsTable()))
                    .ok());
  }
  absl::StatusOr<std::unique_ptr<FakeSqlEngine>> engine = FakeSqlEngine::Open(path);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_THAT((*engine)->ListTables(), ElementsAre("finance.freshbooks.freshbooks_events"));
  const ExecResult r = (*engine)->Execute("SELECT COUNT(*) FROM freshbooks_events", {},
                                          ExecContext{"finance", "freshbooks"});
  EXPECT_TRUE(r.ok()) << r.message;
  EXPECT_THAT(r.data_array, ElementsAre(Cells{"0"}));
}

}  // namespace
}  // namespace mlc::testing

// Tests of the Databricks SQL text (writer/databricks_sql.h): quoting and
// escaping, name and spec validation, DDL, the schema diff, and the batched MERGE
// whose rows travel only in its one `:rows` parameter. Running the statements
// against a SQL engine is databricks_sql_engine_test's job; these pin the text.
#include "writer/databricks_sql.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "writer/table_spec.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A column without a comment.
ColumnSpec Col(const std::string& name, SqlType type, int precision = 18, int scale = 2) {
  return ColumnSpec{name, type, precision, scale, ""};
}

// account_id + id keyed invoices with every column type and a version column.
TableSpec InvoicesSpec() {
  TableSpec spec;
  spec.name = "freshbooks_invoices";
  spec.columns = {
      {"account_id", SqlType::kString, 0, 0, "FreshBooks account"},
      {"id", SqlType::kBigint, 0, 0, "invoice id"},
      {"amount", SqlType::kDecimal, 18, 2, "total, in the invoice's currency"},
      {"due_date", SqlType::kDate, 0, 0, ""},
      {"paid", SqlType::kBoolean, 0, 0, "it's paid"},
      {"updated_at", SqlType::kTimestamp, 0, 0, ""},
      {"raw", SqlType::kString, 0, 0, ""},
  };
  spec.key = {"account_id", "id"};
  spec.version_column = "updated_at";
  spec.comment = "FreshBooks invoices, current state (ml-connector)";
  return spec;
}

Row Invoice(const std::string& account, const std::string& id, const std::string& amount,
            const std::string& updated_at, std::optional<std::string> raw = "{}") {
  return {account, id, amount, "2026-12-01", "false", updated_at, std::move(raw)};
}

// --- Names and literals

TEST(QuoteIdentifierTest, QuotesAndDoublesBackticks) {
  EXPECT_EQ(QuoteIdentifier("invoices"), "`invoices`");
  EXPECT_EQ(QuoteIdentifier("a`b"), "`a``b`");
  EXPECT_EQ(QuoteIdentifier("`"), "````");
  EXPECT_EQ(QuoteIdentifier("``x``"), "`````x`````");
  EXPECT_EQ(QuoteIdentifier("select"), "`select`");
  EXPECT_EQ(QuoteIdentifier("a'b\"c\\d"), "`a'b\"c\\d`");
  EXPECT_EQ(QuoteIdentifier("факт"), "`факт`");
  EXPECT_EQ(QuoteIdentifier(""), "``");
}

TEST(SqlStringLiteralTest, EscapesQuotesBackslashesAndLineBreaks) {
  EXPECT_EQ(SqlStringLiteral(""), "''");
  EXPECT_EQ(SqlStringLiteral("plain"), "'plain'");
  EXPECT_EQ(SqlStringLiteral("it's"), "'it\\'s'");
  EXPECT_EQ(SqlStringLiteral("a\\b"), "'a\\\\b'");
  EXPECT_EQ(SqlStringLiteral("\\'"), "'\\\\\\''");
  EXPECT_EQ(SqlStringLiteral("line1\nline2\r\tx"), "'line1\\nline2\\r\\tx'");
  EXPECT_EQ(SqlStringLiteral("\"double\" `tick`; --"), "'\"double\" `tick`; --'");
  EXPECT_EQ(SqlStringLiteral("café ☕ 🧾"), "'café ☕ 🧾'");
}

TEST(SqlStringLiteralTest, NeverEndsEarly) {
  // Whatever the text, the literal's only unescaped quotes are its first and last.
  for (const std::string& text :
       std::vector<std::string>{"'", "\\", "\\'", "'\\", "''", "\\\\'", "x'; DROP TABLE t; --"}) {
    const std::string lit = SqlStringLiteral(text);
    ASSERT_GE(lit.size(), 2u);
    bool escaped = false;
    for (size_t i = 1; i + 1 < lit.size(); ++i) {
      if (escaped) {
        escaped = false;
      } else if (lit[i] == '\\') {
        escaped = true;
      } else {
        EXPECT_NE(lit[i], '\'') << text;
      }
    }
    EXPECT_FALSE(escaped) << text;
    EXPECT_EQ(lit.back(), '\'');
  }
}

TEST(ValidateNameTest, AcceptsUnityCatalogNames) {
  EXPECT_TRUE(ValidateName(NameKind::kCatalog, "finance").ok());
  EXPECT_TRUE(ValidateName(NameKind::kSchema, "free-books_2").ok());
  EXPECT_TRUE(ValidateName(NameKind::kTable, "factures_é").ok());
  EXPECT_TRUE(ValidateName(NameKind::kTable, std::string(255, 'a')).ok());
  // 255 characters, 510 bytes.
  std::string wide;
  for (int i = 0; i < 255; ++i) wide += "é";
  EXPECT_TRUE(ValidateName(NameKind::kTable, wide).ok());
  EXPECT_TRUE(ValidateName(NameKind::kColumn, "a`b").ok());
  EXPECT_TRUE(ValidateName(NameKind::kColumn, "a.b").ok());
  EXPECT_TRUE(ValidateName(NameKind::kColumn, "it's").ok());
}

TEST(ValidateNameTest, RejectsBadNames) {
  for (const std::string& name : std::vector<std::string>{
           "", "Finance", "fin.ance", "fin ance", "fin/ance", "tab\tle", std::string("nul\0l", 5),
           "del\x7f", std::string(256, 'a'), "bad\xff", "\xc3"}) {
    const absl::Status s = ValidateName(NameKind::kTable, name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
  }
  for (const std::string& name : std::vector<std::string>{"a b", "a,b", "a;b", "a{b", "a}b", "a(b",
                                                          "a)b", "a=b", "a\nb", "a\tb", "Amount"}) {
    EXPECT_EQ(ValidateName(NameKind::kColumn, name).code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
  const absl::Status s = ValidateName(NameKind::kSchema, "a\nb");
  EXPECT_THAT(std::string(s.message()), HasSubstr("schema name \"a\\x0ab\""));
}

TEST(NamesTest, FullTableNameAndTypes) {
  EXPECT_EQ(FullTableName("finance", "freshbooks", "in`v"), "`finance`.`freshbooks`.`in``v`");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kString)), "STRING");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kBigint)), "BIGINT");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kBoolean)), "BOOLEAN");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kDate)), "DATE");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kTimestamp)), "TIMESTAMP");
  EXPECT_EQ(DatabricksType(Col("a", SqlType::kDecimal, 38, 6)), "DECIMAL(38,6)");
}

TEST(ValidateTableSpecTest, AcceptsTheShippedSpecs) {
  EXPECT_TRUE(ValidateTableSpec(FreshBooksEventsTable()).ok());
  EXPECT_TRUE(ValidateTableSpec(InvoicesSpec()).ok());
}

TEST(ValidateTableSpecTest, RejectsBrokenSpecs) {
  auto expect_bad = [](const TableSpec& spec, const std::string& why) {
    const absl::Status s = ValidateTableSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(std::string(s.message()), HasSubstr(why));
  };
  TableSpec spec = InvoicesSpec();
  spec.columns.push_back(Col("ID", SqlType::kString));
  expect_bad(spec, "uppercase");
  spec = InvoicesSpec();
  spec.columns.push_back(Col("raw", SqlType::kString));
  expect_bad(spec, "duplicate column raw");
  spec = InvoicesSpec();
  spec.columns[2].precision = 39;
  expect_bad(spec, "invalid DECIMAL(39,2)");
  spec = InvoicesSpec();
  spec.columns[2].scale = 19;
  expect_bad(spec, "invalid DECIMAL(18,19)");
  spec = InvoicesSpec();
  spec.key.clear();
  expect_bad(spec, "empty key");
  spec = InvoicesSpec();
  spec.key = {"nope"};
  expect_bad(spec, "key column nope is not a column");
  spec = InvoicesSpec();
  spec.key = {"id", "id"};
  expect_bad(spec, "key column id repeated");
  spec = InvoicesSpec();
  spec.version_column = "nope";
  expect_bad(spec, "version column nope");
  spec = InvoicesSpec();
  spec.comment = "bad \xff";
  expect_bad(spec, "comment is not valid UTF-8");
  spec = InvoicesSpec();
  spec.columns[0].comment = "bad \xc3";
  expect_bad(spec, "comment is not valid UTF-8");
  spec = InvoicesSpec();
  spec.columns.clear();
  expect_bad(spec, "no columns");
  spec = InvoicesSpec();
  spec.name = "In voices";
  EXPECT_FALSE(ValidateTableSpec(spec).ok());
}

// --- DDL

TEST(DdlTest, CreateSchema) {
  EXPECT_EQ(*CreateSchemaSql("finance", "freshbooks"),
            "CREATE SCHEMA IF NOT EXISTS `finance`.`freshbooks`");
  EXPECT_FALSE(CreateSchemaSql("Finance", "freshbooks").ok());
  EXPECT_FALSE(CreateSchemaSql("finance", "fresh.books").ok());
}

TEST(DdlTest, CreateFreshBooksEventsTable) {
  absl::StatusOr<std::string> sql =
      CreateTableSql("finance", "freshbooks", FreshBooksEventsTable());
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CREATE TABLE IF NOT EXISTS `finance`.`freshbooks`.`freshbooks_events` (\n"
            "  `delivery_id` STRING NOT NULL COMMENT 'ml-connector delivery id (key)',\n"
            "  `connection_id` STRING COMMENT 'ml-connector connection',\n"
            "  `event_type` STRING COMMENT 'FreshBooks event name, e.g. invoice.create',\n"
            "  `object_type` STRING COMMENT 'e.g. invoice',\n"
            "  `object_id` STRING COMMENT 'FreshBooks id of the object',\n"
            "  `account_id` STRING COMMENT 'FreshBooks account id',\n"
            "  `business_id` STRING COMMENT 'FreshBooks business id',\n"
            "  `identity_id` STRING COMMENT 'FreshBooks identity that acted',\n"
            "  `user_id` STRING COMMENT 'FreshBooks user id',\n"
            "  `received_at` TIMESTAMP COMMENT 'when the webhook arrived (UTC)',\n"
            "  `processed_at` TIMESTAMP COMMENT 'when the row was written (UTC)',\n"
            "  `data` STRING COMMENT 'object as fetched for this event (JSON), NULL if not "
            "fetched'\n"
            ")\n"
            "USING DELTA\n"
            "CLUSTER BY (`delivery_id`)\n"
            "COMMENT 'FreshBooks webhook deliveries, one row per accepted delivery (source: "
            "ml-connector)'\n"
            "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')");
}

TEST(DdlTest, CreateTableWithEveryType) {
  absl::StatusOr<std::string> sql = CreateTableSql("finance", "freshbooks", InvoicesSpec());
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CREATE TABLE IF NOT EXISTS `finance`.`freshbooks`.`freshbooks_invoices` (\n"
            "  `account_id` STRING NOT NULL COMMENT 'FreshBooks account',\n"
            "  `id` BIGINT NOT NULL COMMENT 'invoice id',\n"
            "  `amount` DECIMAL(18,2) COMMENT 'total, in the invoice\\'s currency',\n"
            "  `due_date` DATE,\n"
            "  `paid` BOOLEAN COMMENT 'it\\'s paid',\n"
            "  `updated_at` TIMESTAMP,\n"
            "  `raw` STRING\n"
            ")\n"
            "USING DELTA\n"
            "CLUSTER BY (`account_id`, `id`)\n"
            "COMMENT 'FreshBooks invoices, current state (ml-connector)'\n"
            "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')");
}

TEST(DdlTest, ClusterByTakesAtMostFourKeyColumns) {
  TableSpec spec;
  spec.name = "wide_key";
  for (const char* c : {"a", "b", "c", "d", "e", "v"}) {
    spec.columns.push_back(Col(c, SqlType::kString));
  }
  spec.key = {"a", "b", "c", "d", "e"};
  absl::StatusOr<std::string> sql = CreateTableSql("c", "s", spec);
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_THAT(*sql, HasSubstr("CLUSTER BY (`a`, `b`, `c`, `d`)\n"));
  EXPECT_THAT(*sql, HasSubstr("`e` STRING NOT NULL"));
  EXPECT_THAT(*sql, Not(HasSubstr("COMMENT '")));  // no comments anywhere
}

TEST(DdlTest, CreateTableRejectsInvalidInput) {
  EXPECT_FALSE(CreateTableSql("finance", "fresh books", InvoicesSpec()).ok());
  TableSpec spec = InvoicesSpec();
  spec.columns[1].name = "i d";
  EXPECT_FALSE(CreateTableSql("finance", "freshbooks", spec).ok());
}

TEST(DdlTest, AddColumns) {
  const std::vector<ColumnSpec> columns = {{"total", SqlType::kDecimal, 10, 4, "it's new"},
                                           {"sent", SqlType::kBoolean, 0, 0, ""}};
  EXPECT_EQ(*AddColumnsSql("finance", "freshbooks", "freshbooks_invoices", columns),
            "ALTER TABLE `finance`.`freshbooks`.`freshbooks_invoices` ADD COLUMNS ("
            "`total` DECIMAL(10,4) COMMENT 'it\\'s new', `sent` BOOLEAN)");
  EXPECT_FALSE(AddColumnsSql("finance", "freshbooks", "freshbooks_invoices", {}).ok());
  EXPECT_FALSE(AddColumnsSql("finance", "freshbooks", "freshbooks_invoices",
                             {Col("x", SqlType::kString), Col("x", SqlType::kBigint)})
                   .ok());
  EXPECT_FALSE(AddColumnsSql("finance", "freshbooks", "freshbooks_invoices",
                             {{"x", SqlType::kDecimal, 0, 0, ""}})
                   .ok());
  EXPECT_FALSE(
      AddColumnsSql("finance", "freshbooks", "Invoices", {Col("x", SqlType::kString)}).ok());
}

// --- Schema diff

TEST(NormalizeTypeTextTest, ResolvesAliasesAndKeepsDistinctTypes) {
  EXPECT_EQ(NormalizeTypeText("BIGINT"), "bigint");
  EXPECT_EQ(NormalizeTypeText("long"), "bigint");
  EXPECT_EQ(NormalizeTypeText("integer"), "int");
  EXPECT_EQ(NormalizeTypeText("INT"), "int");
  EXPECT_EQ(NormalizeTypeText("decimal( 18 , 2 )"), "decimal(18,2)");
  EXPECT_EQ(NormalizeTypeText("DECIMAL"), "decimal(10,0)");
  EXPECT_EQ(NormalizeTypeText("numeric(12)"), "decimal(12,0)");
  EXPECT_EQ(NormalizeTypeText("dec(5,1)"), "decimal(5,1)");
  EXPECT_EQ(NormalizeTypeText("timestamp_ltz"), "timestamp");
  EXPECT_EQ(NormalizeTypeText("timestamp_ntz"), "timestamp_ntz");
  EXPECT_EQ(NormalizeTypeText("bool"), "boolean");
  EXPECT_NE(NormalizeTypeText("int"), NormalizeTypeText("bigint"));
}

TEST(ParseCatalogColumnsTest, ReadsUnityCatalogAnswer) {
  const std::string answer = R"json({"name":"freshbooks_invoices","columns":[
      {"name":"account_id","type_text":"string","type_name":"STRING","position":0},
      {"name":"amount","type_text":"decimal(18,2)","type_name":"DECIMAL","position":1}]
})json";
  absl::StatusOr<std::vector<CatalogColumn>> columns = ParseCatalogColumns(answer);
  ASSERT_TRUE(columns.ok()) << columns.status();
  ASSERT_EQ(columns->size(), 2u);
  EXPECT_EQ((*columns)[1].name, "amount");
  EXPECT_EQ((*columns)[1].type_text, "decimal(18,2)");
  EXPECT_TRUE(ParseCatalogColumns(R"({"name":"t"})")->empty());
  EXPECT_FALSE(ParseCatalogColumns("not json").ok());
  EXPECT_FALSE(ParseCatalogColumns("[1]").ok());
  EXPECT_FALSE(ParseCatalogColumns(R"({"columns":{}})").ok());
  EXPECT_FALSE(ParseCatalogColumns(R"({"columns":[{"name":"a"}]})").ok());
  EXPECT_FALSE(ParseCatalogColumns(R"({"columns":[{"name":1,"type_text":"int"}]})").ok());
  EXPECT_FALSE(ParseCatalogColumns(R"({"columns":[7]})").ok());
}

TEST(DiffSchemaTest, FindsMissingIncompatibleAndExtraColumns) {
  const std::vector<CatalogColumn> existing = {{"Account_ID", "string"},
                                               {"id", "long"},
                                               {"amount", "int"},
                                               {"due_date", "date"},
                                               {"legacy", "string"}};
  const SchemaDiff diff = DiffSchema(InvoicesSpec(), existing);
  std::vector<std::string> missing;
  for (const ColumnSpec& c : diff.missing) missing.push_back(c.name);
  EXPECT_THAT(missing, ElementsAre("paid", "updated_at", "raw"));
  ASSERT_EQ(diff.incompatible.size(), 1u);
  EXPECT_EQ(diff.incompatible[0].name, "amount");
  EXPECT_EQ(diff.incompatible[0].expected_type, "decimal(18,2)");
  EXPECT_EQ(diff.incompatible[0].actual_type, "int");
  EXPECT_THAT(diff.extra, ElementsAre("legacy"));
  EXPECT_FALSE(diff.UpToDate());
  EXPECT_EQ(DescribeConflicts(diff.incompatible),
            "column `amount`: table has int, spec wants decimal(18,2)");
}

TEST(DiffSchemaTest, UpToDateTable) {
  std::vector<CatalogColumn> existing;
  for (const ColumnSpec& c : InvoicesSpec().columns) {
    existing.push_back({c.name, NormalizeTypeText(DatabricksType(c))});
  }
  const SchemaDiff diff = DiffSchema(InvoicesSpec(), existing);
  EXPECT_TRUE(diff.UpToDate());
  EXPECT_TRUE(diff.extra.empty());
  EXPECT_EQ(DiffSchema(InvoicesSpec(), {}).missing.size(), InvoicesSpec().columns.size());
}

// --- Rows

TEST(ValidateRowTest, AcceptsCanonicalValues) {
  EXPECT_TRUE(ValidateRow(InvoicesSpec(), {"acme", "-42", "-12.50", "2024-02-29", "true",
                                           "2026-11-26T12:00:00.000000Z", std::nullopt})
                  .ok());
  EXPECT_TRUE(ValidateRow(InvoicesSpec(), {"acme", "9223372036854775807", "0", std::nullopt,
                                           std::nullopt, std::nullopt, "x"})
                  .ok());
}

TEST(ValidateRowTest, RejectsBadValues) {
  const Row good = Invoice("acme", "1", "1.00", "2026-11-26T12:00:00.000000Z");
  auto with = [&](size_t i, std::optional<std::string> v) {
    Row r = good;
    r[i] = std::move(v);
    return ValidateRow(InvoicesSpec(), r);
  };
  EXPECT_TRUE(with(6, "anything").ok());
  EXPECT_THAT(std::string(with(0, std::nullopt).message()), HasSubstr("key column account_id"));
  EXPECT_FALSE(with(1, "abc").ok());
  EXPECT_FALSE(with(1, "9223372036854775808").ok());
  EXPECT_FALSE(with(1, "+1").ok());
  EXPECT_FALSE(with(1, "1.0").ok());
  EXPECT_FALSE(with(2, "1.005").ok());                // scale 2
  EXPECT_FALSE(with(2, "1234567890123456789").ok());  // 19 > 16 integer digits
  EXPECT_FALSE(with(2, "1e3").ok());
  EXPECT_FALSE(with(3, "2023-02-29").ok());
  EXPECT_FALSE(with(3, "2026-1-01").ok());
  EXPECT_FALSE(with(4, "TRUE").ok());
  EXPECT_FALSE(with(4, "1").ok());
  EXPECT_FALSE(with(5, "2026-11-26 12:00:00").ok());
  EXPECT_FALSE(with(5, "2026-11-26T24:00:00.000000Z").ok());
  EXPECT_FALSE(ValidateRow(InvoicesSpec(), {"acme"}).ok());
}

TEST(DeduplicateRowsTest, KeepsNewestVersionInFirstAppearanceOrder) {
  const std::vector<Row> rows = {
      Invoice("acme", "1", "1.00", "2026-01-02T00:00:00.000000Z"),
      Invoice("acme", "2", "2.00", "2026-01-01T00:00:00.000000Z"),
      Invoice("acme", "1", "9.00", "2026-01-01T00:00:00.000000Z"),  // older: dropped
      Invoice("acme", "2", "3.00", "2026-01-01T00:00:00.000000Z"),  // tie: later wins
      Invoice("beta", "1", "4.00", std::string("2026-01-01T00:00:00.000000Z")),
      Invoice("beta", "1", "5.00", std::string("2026-01-03T00:00:00.000000Z")),  // newer
  };
  const std::vector<Row> out = DeduplicateRows(InvoicesSpec(), rows);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0][2], "1.00");
  EXPECT_EQ(out[1][2], "3.00");
  EXPECT_EQ(out[2][2], "5.00");
}

TEST(DeduplicateRowsTest, NullVersionIsOldest) {
  Row with_version = Invoice("acme", "1", "1.00", "2026-01-01T00:00:00.000000Z");
  Row without = with_version;
  without[5] = std::nullopt;
  without[2] = "2.00";
  EXPECT_EQ(DeduplicateRows(InvoicesSpec(), {with_version, without})[0][2], "1.00");
  EXPECT_EQ(DeduplicateRows(InvoicesSpec(), {without, with_version})[0][2], "1.00");
}

TEST(DeduplicateRowsTest, ComparesBigintAndDecimalVersionsNumerically) {
  TableSpec spec;
  spec.name = "t";
  spec.columns = {Col("k", SqlType::kString), Col("v", SqlType::kBigint),
                  Col("x", SqlType::kString)};
  spec.key = {"k"};
  spec.version_column = "v";
  // Text order would keep "9"; numerically 10 is newer.
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "10", "new"}, {"a", "9", "old"}})[0][2], "new");
  spec.columns[1] = Col("v", SqlType::kDecimal, 10, 2);
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "10.5", "new"}, {"a", "9.75", "old"}})[0][2], "new");
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "-1.5", "old"}, {"a", "-1.25", "new"}})[0][2], "new");
}

TEST(DeduplicateRowsTest, KeysCompareAsTheWarehouseComparesThem) {
  TableSpec spec;
  spec.name = "t";
  spec.columns = {Col("id", SqlType::kBigint), Col("amount", SqlType::kDecimal, 10, 2),
                  Col("x", SqlType::kString)};
  spec.key = {"id", "amount"};
  // CAST('007' AS BIGINT) = 7 and 1.50 = 1.5: one key, so one row.
  const std::vector<Row> out =
      DeduplicateRows(spec, {{"7", "1.5", "first"}, {"007", "1.50", "second"}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0][2], "second");
  EXPECT_EQ(DeduplicateRows(spec, {{"7", "0", "a"}, {"7", "-0.00", "b"}}).size(), 1u);
}

TEST(DeduplicateRowsTest, LastWinsWithoutVersionAndFirstForInsertOnly) {
  TableSpec spec;
  spec.name = "t";
  spec.columns = {Col("k", SqlType::kString), Col("x", SqlType::kString)};
  spec.key = {"k"};
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "1"}, {"a", "2"}})[0][1], "2");
  spec.insert_only = true;
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "1"}, {"a", "2"}})[0][1], "1");
  EXPECT_EQ(DeduplicateRows(spec, {{"a", "1"}, {"b", "2"}}).size(), 2u);
}

TEST(RowsJsonTest, OneObjectPerRowWithStringValues) {
  TableSpec spec;
  spec.name = "t";
  spec.columns = {Col("k", SqlType::kString), Col("n", SqlType::kBigint),
                  Col("odd`name", SqlType::kString)};
  spec.key = {"k"};
  absl::StatusOr<std::string> json =
      RowsJson(spec, {{"a\"b", "1", std::nullopt}, {"é\n", "-2", "x'y\\"}});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json,
            R"([{"k":"a\"b","n":"1","odd`name":null},{"k":"é\n","n":"-2","odd`name":"x'y\\"}])");
  EXPECT_EQ(*RowsJson(spec, {}), "[]");
  EXPECT_FALSE(RowsJson(spec, {{"a", "1"}}).ok());
  EXPECT_FALSE(RowsJson(spec, {{"bad \xff", "1", std::nullopt}}).ok());
}

// --- MERGE

TEST(MergeStatementTest, VersionedUpsert) {
  absl::StatusOr<SqlStatement> st =
      MergeStatement("finance", "freshbooks", InvoicesSpec(),
                     {Invoice("acme", "1", "1.00", "2026-01-01T00:00:00.000000Z")});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(
      st->sql,
      "MERGE INTO `finance`.`freshbooks`.`freshbooks_invoices` AS t\n"
      "USING (\n"
      "  SELECT r.`account_id` AS `account_id`, CAST(r.`id` AS BIGINT) AS `id`, "
      "CAST(r.`amount` AS DECIMAL(18,2)) AS `amount`, CAST(r.`due_date` AS DATE) AS `due_date`, "
      "CAST(r.`paid` AS BOOLEAN) AS `paid`, CAST(r.`updated_at` AS TIMESTAMP) AS `updated_at`, "
      "r.`raw` AS `raw`\n"
      "  FROM (SELECT inline(from_json(:rows, 'ARRAY<STRUCT<`account_id`: STRING, `id`: STRING, "
      "`amount`: STRING, `due_date`: STRING, `paid`: STRING, `updated_at`: STRING, `raw`: "
      "STRING>>'))) AS r\n"
      ") AS s\n"
      "ON t.`account_id` <=> s.`account_id` AND t.`id` <=> s.`id`\n"
      "WHEN MATCHED AND (t.`updated_at` IS NULL OR s.`updated_at` >= t.`updated_at`) THEN "
      "UPDATE SET `amount` = s.`amount`, `due_date` = s.`due_date`, `paid` = s.`paid`, "
      "`updated_at` = s.`updated_at`, `raw` = s.`raw`\n"
      "WHEN NOT MATCHED THEN INSERT (`account_id`, `id`, `amount`, `due_date`, `paid`, "
      "`updated_at`, `raw`) VALUES (s.`account_id`, s.`id`, s.`amount`, s.`due_date`, s.`paid`, "
      "s.`updated_at`, s.`raw`)");
  ASSERT_EQ(st->parameters.size(), 1u);
  EXPECT_EQ(st->parameters[0].name, "rows");
  EXPECT_EQ(st->parameters[0].type, "STRING");
  EXPECT_EQ(st->row_count, 1u);
}

TEST(MergeStatementTest, InsertOnlyHasNoMatchedClause) {
  absl::StatusOr<SqlStatement> st =
      MergeStatement("finance", "freshbooks", FreshBooksEventsTable(),
                     {Row(FreshBooksEventsTable().columns.size(), std::string("x"))});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT(st->sql, Not(HasSubstr("WHEN MATCHED")));
  EXPECT_THAT(st->sql, HasSubstr("ON t.`delivery_id` <=> s.`delivery_id`\nWHEN NOT MATCHED"));
  EXPECT_THAT(st->sql, HasSubstr("CAST(r.`received_at` AS TIMESTAMP) AS `received_at`"));
}

TEST(MergeStatementTest, AllKeySpecHasNoMatchedClause) {
  TableSpec spec;
  spec.name = "pairs";
  spec.columns = {Col("a", SqlType::kString), Col("b", SqlType::kString)};
  spec.key = {"a", "b"};
  absl::StatusOr<SqlStatement> st = MergeStatement("c", "s", spec, {{"1", "2"}});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT(st->sql, Not(HasSubstr("WHEN MATCHED")));
}

TEST(MergeStatementTest, ValuesTravelOnlyInTheParameter) {
  const std::string evil = "x'); DROP TABLE t; -- `tick` \\ \"q\" ;";
  const Row row = Invoice("acme", "1", "1.00", "2026-01-01T00:00:00.000000Z", evil);
  absl::StatusOr<SqlStatement> st = MergeStatement("finance", "freshbooks", InvoicesSpec(), {row});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT(st->sql, Not(HasSubstr("DROP")));
  EXPECT_THAT(st->sql, Not(HasSubstr("acme")));
  EXPECT_THAT(st->sql, Not(HasSubstr("2026-01-01")));
  EXPECT_EQ(st->sql.find(';'), std::string::npos);
  ASSERT_EQ(st->parameters.size(), 1u);
  EXPECT_EQ(st->parameters[0].value, *RowsJson(InvoicesSpec(), {row}));
  const nlohmann::json parsed = nlohmann::json::parse(st->parameters[0].value);
  EXPECT_EQ(parsed[0]["raw"], evil);
  EXPECT_EQ(parsed[0]["id"], "1");
}

TEST(MergeStatementTest, DeduplicatesAndHasOneParameterForManyRows) {
  std::vector<Row> rows;
  rows.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    rows.push_back(Invoice("acme", std::to_string(i % 400), absl::StrCat(i, ".00"),
                           "2026-01-01T00:00:00.000000Z"));
  }
  absl::StatusOr<SqlStatement> st = MergeStatement("finance", "freshbooks", InvoicesSpec(), rows);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->parameters.size(), 1u);
  EXPECT_EQ(st->row_count, 400u);
  const nlohmann::json parsed = nlohmann::json::parse(st->parameters[0].value);
  ASSERT_EQ(parsed.size(), 400u);
  EXPECT_EQ(parsed[0]["amount"], "800.00");  // the last of ids 0 (tie on version)
}

TEST(MergeStatementTest, RejectsBadInput) {
  const Row row = Invoice("acme", "1", "1.00", "2026-01-01T00:00:00.000000Z");
  EXPECT_FALSE(MergeStatement("finance", "freshbooks", InvoicesSpec(), {}).ok());
  EXPECT_FALSE(MergeStatement("finance", "freshbooks", InvoicesSpec(), {{"acme"}}).ok());
  EXPECT_FALSE(MergeStatement("Finance", "freshbooks", InvoicesSpec(), {row}).ok());
  EXPECT_FALSE(MergeStatement("finance", "fresh/books", InvoicesSpec(), {row}).ok());
  Row bad_utf8 = row;
  bad_utf8[6] = "\xc3\x28";
  EXPECT_FALSE(MergeStatement("finance", "freshbooks", InvoicesSpec(), {bad_utf8}).ok());
  TableSpec spec = InvoicesSpec();
  spec.key = {};
  EXPECT_FALSE(MergeStatement("finance", "freshbooks", spec, {row}).ok());
}

// --- Batching

TEST(SplitIntoBatchesTest, BoundsRowsPerBatch) {
  std::vector<Row> rows;
  rows.reserve(1234);
  for (int i = 0; i < 1234; ++i) {
    rows.push_back(Invoice("acme", std::to_string(i), "1.00", "2026-01-01T00:00:00.000000Z"));
  }
  absl::StatusOr<std::vector<std::vector<Row>>> batches =
      SplitIntoBatches(InvoicesSpec(), rows, {500, 64 * 1024 * 1024});
  ASSERT_TRUE(batches.ok()) << batches.status();
  ASSERT_EQ(batches->size(), 3u);
  EXPECT_EQ((*batches)[0].size(), 500u);
  EXPECT_EQ((*batches)[1].size(), 500u);
  EXPECT_EQ((*batches)[2].size(), 234u);
  EXPECT_EQ((*batches)[2].back()[1], "1233");  // order kept
}

TEST(SplitIntoBatchesTest, BoundsBytesPerBatchExactly) {
  std::vector<Row> rows;
  rows.reserve(300);
  for (int i = 0; i < 300; ++i) {
    rows.push_back(Invoice("acme", std::to_string(i), "1.00", "2026-01-01T00:00:00.000000Z",
                           std::string(static_cast<size_t>(i % 37) * 11, 'x')));
  }
  const size_t limit = 4000;
  absl::StatusOr<std::vector<std::vector<Row>>> batches =
      SplitIntoBatches(InvoicesSpec(), rows, {1000, limit});
  ASSERT_TRUE(batches.ok()) << batches.status();
  size_t total = 0;
  for (size_t b = 0; b < batches->size(); ++b) {
    const std::vector<Row>& batch = (*batches)[b];
    ASSERT_FALSE(batch.empty());
    const size_t bytes = RowsJson(InvoicesSpec(), batch)->size();
    EXPECT_LE(bytes, limit);
    // Full: the next batch's first row would not have fitted.
    if (b + 1 < batches->size()) {
      std::vector<Row> grown = batch;
      grown.push_back((*batches)[b + 1].front());
      EXPECT_GT(RowsJson(InvoicesSpec(), grown)->size(), limit);
    }
    total += batch.size();
  }
  EXPECT_EQ(total, rows.size());
}

TEST(SplitIntoBatchesTest, DeduplicatesAcrossBatches) {
  std::vector<Row> rows;
  rows.reserve(50);
  for (int i = 0; i < 50; ++i) {
    rows.push_back(Invoice("acme", std::to_string(i % 10), absl::StrCat(i, ".00"),
                           absl::StrCat("2026-01-01T00:00:", 10 + i, ".000000Z")));
  }
  absl::StatusOr<std::vector<std::vector<Row>>> batches =
      SplitIntoBatches(InvoicesSpec(), rows, {3, 1 << 20});
  ASSERT_TRUE(batches.ok()) << batches.status();
  std::set<std::string> ids;
  size_t total = 0;
  for (const std::vector<Row>& batch : *batches) {
    for (const Row& row : batch) {
      EXPECT_TRUE(ids.insert(*row[1]).second) << *row[1];
      EXPECT_EQ(*row[2], absl::StrCat(40 + std::stoi(*row[1]), ".00"));  // newest
      ++total;
    }
  }
  EXPECT_EQ(total, 10u);
}

TEST(SplitIntoBatchesTest, RejectsOversizedRowsAndZeroLimits) {
  const std::vector<Row> rows = {
      Invoice("acme", "7", "1.00", "2026-01-01T00:00:00.000000Z", std::string(5000, 'x'))};
  absl::StatusOr<std::vector<std::vector<Row>>> batches =
      SplitIntoBatches(InvoicesSpec(), rows, {10, 1000});
  ASSERT_FALSE(batches.ok());
  EXPECT_THAT(std::string(batches.status().message()), HasSubstr("account_id=acme, id=7"));
  EXPECT_FALSE(SplitIntoBatches(InvoicesSpec(), rows, {0, 1000}).ok());
  EXPECT_FALSE(SplitIntoBatches(InvoicesSpec(), rows, {10, 0}).ok());
  EXPECT_TRUE(SplitIntoBatches(InvoicesSpec(), {}, {})->empty());
}

}  // namespace
}  // namespace mlc::writer

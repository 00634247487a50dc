// Tests of the embedded SQLite sink (DESIGN.md §2, §4): tables are provisioned
// from their TableSpec (key, types, added columns), writes are idempotent upserts
// that never roll a row back to an older version, and bad values are reported as
// permanent errors instead of corrupting the table. Every check reads the
// lakehouse file through a separate raw sqlite3 connection, as a user would.
#include "writer/sqlite_sink.h"

#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"
#include "writer/table_spec.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Cells = ::mlc::testing::SqlRow;
using ::mlc::testing::QueryRows;

void ExecRaw(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
            SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err != nullptr ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

std::optional<std::string> V(const char* s) { return std::string(s); }
constexpr std::nullopt_t kNull = std::nullopt;

// An entity-like table keyed by (account_id, id), with typed columns.
TableSpec InvoicesSpec() {
  TableSpec t;
  t.name = "freshbooks_invoices";
  t.columns = {
      {"account_id", SqlType::kString, 0, 0, ""},    {"id", SqlType::kBigint, 0, 0, ""},
      {"amount", SqlType::kDecimal, 18, 2, ""},      {"is_deleted", SqlType::kBoolean, 0, 0, ""},
      {"updated_at", SqlType::kTimestamp, 0, 0, ""},
  };
  t.key = {"account_id", "id"};
  return t;
}

class SqliteSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(sink_.Start().ok()); }

  std::vector<Cells> Select(const std::string& sql) { return QueryRows(path_, sql); }
  int64_t CountRows(const std::string& table) {
    const auto rows = Select(absl::StrCat("SELECT COUNT(*) FROM \"", table, "\""));
    return rows.size() == 1 && rows[0][0].has_value() ? std::stoll(*rows[0][0]) : -1;
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.File("lakehouse.db");
  SqliteSink sink_{path_};
};

TEST_F(SqliteSinkTest, NameIsSqlite) { EXPECT_EQ(sink_.Name(), "sqlite"); }

TEST_F(SqliteSinkTest, EnsureTableCreatesTheTableWithItsPrimaryKey) {
  const TableSpec spec = InvoicesSpec();
  ASSERT_TRUE(sink_.EnsureTable(spec).ok());
  ASSERT_TRUE(sink_.EnsureTable(spec).ok());  // idempotent

  // cid, name, type, notnull, dflt_value, pk
  const auto info = Select("SELECT name, type, pk FROM pragma_table_info('freshbooks_invoices')");
  EXPECT_THAT(info, ElementsAre(ElementsAre(V("account_id"), V("TEXT"), V("1")),
                                ElementsAre(V("id"), V("INTEGER"), V("2")),
                                ElementsAre(V("amount"), V("TEXT"), V("0")),
                                ElementsAre(V("is_deleted"), V("INTEGER"), V("0")),
                                ElementsAre(V("updated_at"), V("TEXT"), V("0"))));
  EXPECT_EQ(CountRows("freshbooks_invoices"), 0);
}

TEST_F(SqliteSinkTest, EnsureTableWorksWithoutStart) {
  SqliteSink fresh(dir_.File("other.db"));
  ASSERT_TRUE(fresh.EnsureTable(InvoicesSpec()).ok());
  EXPECT_THAT(QueryRows(dir_.File("other.db"),
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = "
                        "'freshbooks_invoices'"),
              ElementsAre(ElementsAre(V("freshbooks_invoices"))));
}

TEST_F(SqliteSinkTest, UpsertingTheSameRowsTwiceKeepsOneRowPerKey) {
  const TableSpec spec = InvoicesSpec();
  const std::vector<Row> rows = {
      {"acct", "1", "10.00", "false", "2026-01-01T00:00:00.000000Z"},
      {"acct", "2", "20.50", "false", "2026-01-01T00:00:00.000000Z"},
      {"other", "1", "99.99", "true", "2026-01-01T00:00:00.000000Z"},  // same id, other account
  };
  ASSERT_TRUE(sink_.Upsert(spec, rows).ok());
  const auto first = Select("SELECT * FROM freshbooks_invoices ORDER BY account_id, id");
  ASSERT_TRUE(sink_.Upsert(spec, rows).ok());  // a retry / replay
  const auto second = Select("SELECT * FROM freshbooks_invoices ORDER BY account_id, id");

  EXPECT_EQ(CountRows("freshbooks_invoices"), 3);
  EXPECT_EQ(first, second);
  EXPECT_THAT(
      second,
      ElementsAre(
          ElementsAre(V("acct"), V("1"), V("10.00"), V("0"), V("2026-01-01T00:00:00.000000Z")),
          ElementsAre(V("acct"), V("2"), V("20.50"), V("0"), V("2026-01-01T00:00:00.000000Z")),
          ElementsAre(V("other"), V("1"), V("99.99"), V("1"), V("2026-01-01T00:00:00.000000Z"))));
}

TEST_F(SqliteSinkTest, UpsertWithoutVersionColumnReplacesTheRow) {
  const TableSpec spec = InvoicesSpec();
  ASSERT_TRUE(
      sink_.Upsert(spec, {{"acct", "1", "10.00", "false", "2026-01-02T00:00:00.000000Z"}}).ok());
  ASSERT_TRUE(
      sink_.Upsert(spec, {{"acct", "1", "12.00", "true", "2026-01-01T00:00:00.000000Z"}}).ok());
  EXPECT_THAT(Select("SELECT amount, is_deleted FROM freshbooks_invoices"),
              ElementsAre(ElementsAre(V("12.00"), V("1"))));
}

TEST_F(SqliteSinkTest, EmptyUpsertIsOk) {
  ASSERT_TRUE(sink_.Upsert(InvoicesSpec(), {}).ok());
  EXPECT_EQ(CountRows("freshbooks_invoices"), 0);  // but the table exists
}

TEST_F(SqliteSinkTest, InsertOnlyTablesKeepTheFirstWrite) {
  TableSpec spec;
  spec.name = "history";
  spec.columns = {{"id", SqlType::kString, 0, 0, ""}, {"data", SqlType::kString, 0, 0, ""}};
  spec.key = {"id"};
  spec.insert_only = true;
  ASSERT_TRUE(sink_.Upsert(spec, {{"a", "first"}}).ok());
  ASSERT_TRUE(sink_.Upsert(spec, {{"a", "second"}, {"b", "new"}}).ok());
  EXPECT_THAT(Select("SELECT id, data FROM history ORDER BY id"),
              ElementsAre(ElementsAre(V("a"), V("first")), ElementsAre(V("b"), V("new"))));
}

TEST_F(SqliteSinkTest, VersionColumnNeverRollsARowBack) {
  TableSpec spec = InvoicesSpec();
  spec.version_column = "updated_at";
  auto row = [](const char* amount, const char* updated_at) {
    return Row{"acct", "7", std::string(amount), "false", std::string(updated_at)};
  };
  auto amount = [&] { return Select("SELECT amount, updated_at FROM freshbooks_invoices"); };

  ASSERT_TRUE(sink_.Upsert(spec, {row("2.00", "2026-03-02T10:00:00.000000Z")}).ok());
  // An older event arriving late is ignored.
  ASSERT_TRUE(sink_.Upsert(spec, {row("1.00", "2026-03-01T10:00:00.000000Z")}).ok());
  EXPECT_THAT(amount(), ElementsAre(ElementsAre(V("2.00"), V("2026-03-02T10:00:00.000000Z"))));
  // Microseconds matter.
  ASSERT_TRUE(sink_.Upsert(spec, {row("1.50", "2026-03-02T09:59:59.999999Z")}).ok());
  EXPECT_THAT(amount(), ElementsAre(ElementsAre(V("2.00"), V("2026-03-02T10:00:00.000000Z"))));
  // The same version replaces (a re-fetch of the same state converges).
  ASSERT_TRUE(sink_.Upsert(spec, {row("2.50", "2026-03-02T10:00:00.000000Z")}).ok());
  EXPECT_THAT(amount(), ElementsAre(ElementsAre(V("2.50"), V("2026-03-02T10:00:00.000000Z"))));
  // A newer one replaces.
  ASSERT_TRUE(sink_.Upsert(spec, {row("3.00", "2026-03-03T00:00:00.000000Z")}).ok());
  EXPECT_THAT(amount(), ElementsAre(ElementsAre(V("3.00"), V("2026-03-03T00:00:00.000000Z"))));

  // Within one call, reordered updates converge to the newest too.
  ASSERT_TRUE(sink_
                  .Upsert(spec, {row("5.00", "2026-03-05T00:00:00.000000Z"),
                                 row("4.00", "2026-03-04T00:00:00.000000Z")})
                  .ok());
  EXPECT_THAT(amount(), ElementsAre(ElementsAre(V("5.00"), V("2026-03-05T00:00:00.000000Z"))));
  EXPECT_EQ(CountRows("freshbooks_invoices"), 1);
}

TEST_F(SqliteSinkTest, VersionColumnReplacesAStoredNullVersion) {
  TableSpec spec = InvoicesSpec();
  spec.version_column = "updated_at";
  ASSERT_TRUE(sink_.Upsert(spec, {{"acct", "7", "1.00", "false", kNull}}).ok());
  ASSERT_TRUE(
      sink_.Upsert(spec, {{"acct", "7", "2.00", "false", "2026-03-01T00:00:00.000000Z"}}).ok());
  EXPECT_THAT(Select("SELECT amount FROM freshbooks_invoices"),
              ElementsAre(ElementsAre(V("2.00"))));
}

TEST_F(SqliteSinkTest, BigintVersionColumnComparesNumerically) {
  TableSpec spec;
  spec.name = "versions";
  spec.columns = {{"id", SqlType::kString, 0, 0, ""},
                  {"version", SqlType::kBigint, 0, 0, ""},
                  {"value", SqlType::kString, 0, 0, ""}};
  spec.key = {"id"};
  spec.version_column = "version";
  ASSERT_TRUE(sink_.Upsert(spec, {{"a", "10", "ten"}}).ok());
  ASSERT_TRUE(sink_.Upsert(spec, {{"a", "9", "nine"}}).ok());  // "9" > "10" as text
  EXPECT_THAT(Select("SELECT version, value FROM versions"),
              ElementsAre(ElementsAre(V("10"), V("ten"))));
  ASSERT_TRUE(sink_.Upsert(spec, {{"a", "11", "eleven"}}).ok());
  EXPECT_THAT(Select("SELECT version, value FROM versions"),
              ElementsAre(ElementsAre(V("11"), V("eleven"))));
}

TEST_F(SqliteSinkTest, MissingColumnsAreAddedToAnExistingTable) {
  // An older release created the table with fewer columns and wrote a row.
  ExecRaw(path_,
          "CREATE TABLE freshbooks_invoices (account_id TEXT, id INTEGER, "
          "PRIMARY KEY (account_id, id));"
          "INSERT INTO freshbooks_invoices VALUES ('acct', 1);");
  SqliteSink sink(path_);  // a fresh process: nothing cached
  ASSERT_TRUE(sink.Start().ok());

  const TableSpec spec = InvoicesSpec();
  ASSERT_TRUE(sink.EnsureTable(spec).ok());
  EXPECT_THAT(
      Select("SELECT name, type FROM pragma_table_info('freshbooks_invoices')"),
      ElementsAre(ElementsAre(V("account_id"), V("TEXT")), ElementsAre(V("id"), V("INTEGER")),
                  ElementsAre(V("amount"), V("TEXT")), ElementsAre(V("is_deleted"), V("INTEGER")),
                  ElementsAre(V("updated_at"), V("TEXT"))));

  ASSERT_TRUE(sink.Upsert(spec, {{"acct", "2", "5.00", "true", "2026-01-01T00:00:00.000000Z"},
                                 {"acct", "1", "1.00", "false", "2026-01-01T00:00:00.000000Z"}})
                  .ok());
  EXPECT_THAT(Select("SELECT account_id, id, amount, is_deleted FROM freshbooks_invoices "
                     "ORDER BY id"),
              ElementsAre(ElementsAre(V("acct"), V("1"), V("1.00"), V("0")),
                          ElementsAre(V("acct"), V("2"), V("5.00"), V("1"))));
}

TEST_F(SqliteSinkTest, UpsertAloneEvolvesTheSchema) {
  ExecRaw(path_,
          "CREATE TABLE freshbooks_invoices (account_id TEXT, id INTEGER, "
          "PRIMARY KEY (account_id, id))");
  SqliteSink sink(path_);
  ASSERT_TRUE(sink.Upsert(InvoicesSpec(), {{"acct", "3", "3.00", "false", kNull}}).ok());
  EXPECT_THAT(Select("SELECT id, amount FROM freshbooks_invoices"),
              ElementsAre(ElementsAre(V("3"), V("3.00"))));
}

TEST_F(SqliteSinkTest, ValuesAreStoredWithTheirSqliteTypes) {
  const TableSpec spec = InvoicesSpec();
  ASSERT_TRUE(sink_
                  .Upsert(spec, {{"acct", "9007199254740993", "0.10", "true",
                                  "2026-01-01T00:00:00.000000Z"},
                                 {"acct", "-5", "100000000000000000.01", "false", kNull}})
                  .ok());
  EXPECT_THAT(Select("SELECT typeof(account_id), typeof(id), id, typeof(amount), amount, "
                     "typeof(is_deleted), is_deleted, typeof(updated_at) FROM freshbooks_invoices "
                     "ORDER BY id"),
              ElementsAre(ElementsAre(V("text"), V("integer"), V("-5"), V("text"),
                                      V("100000000000000000.01"), V("integer"), V("0"), V("null")),
                          // 2^53 + 1: exact, so not bound through a double.
                          ElementsAre(V("text"), V("integer"), V("9007199254740993"), V("text"),
                                      V("0.10"), V("integer"), V("1"), V("text"))));
}

TEST_F(SqliteSinkTest, BigintIsBoundAsAnIntegerNotAsText) {
  // Columns without a declared type have no affinity, so SQLite stores exactly
  // what was bound: this shows the binding itself, not an INTEGER column's
  // conversion of the text "42".
  ExecRaw(path_,
          "CREATE TABLE freshbooks_invoices (account_id, id, amount, is_deleted, updated_at, "
          "PRIMARY KEY (account_id, id))");
  SqliteSink sink(path_);
  ASSERT_TRUE(sink.Upsert(InvoicesSpec(), {{"acct", "42", "1.00", "true", kNull}}).ok());
  EXPECT_THAT(Select("SELECT typeof(account_id), typeof(id), typeof(amount), typeof(is_deleted) "
                     "FROM freshbooks_invoices"),
              ElementsAre(ElementsAre(V("text"), V("integer"), V("text"), V("integer"))));
}

TEST_F(SqliteSinkTest, NullsAreStoredAsNull) {
  const TableSpec spec = InvoicesSpec();
  ASSERT_TRUE(sink_.Upsert(spec, {{"acct", "1", kNull, kNull, kNull}}).ok());
  EXPECT_THAT(Select("SELECT typeof(amount), typeof(is_deleted), typeof(updated_at), "
                     "amount IS NULL FROM freshbooks_invoices"),
              ElementsAre(ElementsAre(V("null"), V("null"), V("null"), V("1"))));
  // An empty string is a value, not NULL.
  ASSERT_TRUE(sink_.Upsert(spec, {{"acct", "2", "", kNull, kNull}}).ok());
  EXPECT_THAT(Select("SELECT typeof(amount) FROM freshbooks_invoices WHERE id = 2"),
              ElementsAre(ElementsAre(V("text"))));
}

TEST_F(SqliteSinkTest, NonNumericBigintIsInvalidArgumentAndWritesNothing) {
  const TableSpec spec = InvoicesSpec();
  for (const char* bad : {"12abc", "", "1.5", "99999999999999999999"}) {
    SCOPED_TRACE(bad);
    const absl::Status s =
        sink_.Upsert(spec, {{"acct", "1", "1.00", "false", kNull},  // valid, but in the same call
                            {"acct", std::string(bad), "1.00", "false", kNull}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("id"));
    EXPECT_EQ(CountRows("freshbooks_invoices"), 0) << "a failed call must write nothing";
  }
  // The sink is still usable afterwards.
  ASSERT_TRUE(sink_.Upsert(spec, {{"acct", "1", "1.00", "false", kNull}}).ok());
  EXPECT_EQ(CountRows("freshbooks_invoices"), 1);
}

TEST_F(SqliteSinkTest, NonCanonicalBooleanIsInvalidArgumentNotFalse) {
  const TableSpec spec = InvoicesSpec();
  for (const char* bad : {"1", "TRUE", "yes", ""}) {
    SCOPED_TRACE(bad);
    const absl::Status s = sink_.Upsert(spec, {{"acct", "1", "1.00", std::string(bad), kNull}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("is_deleted"));
  }
  EXPECT_EQ(CountRows("freshbooks_invoices"), 0);
}

TEST_F(SqliteSinkTest, RowOfTheWrongWidthIsInvalidArgument) {
  const absl::Status s = sink_.Upsert(InvoicesSpec(), {{"acct", "1"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(CountRows("freshbooks_invoices"), 0);
}

TEST_F(SqliteSinkTest, IdentifiersAreQuoted) {
  TableSpec spec;
  spec.name = "order";
  spec.columns = {{"group", SqlType::kString, 0, 0, ""},
                  {"select", SqlType::kString, 0, 0, ""},
                  {"we\"ird", SqlType::kString, 0, 0, ""}};
  spec.key = {"group"};
  ASSERT_TRUE(sink_.Upsert(spec, {{"g", "s", "w"}}).ok());
  ASSERT_TRUE(sink_.Upsert(spec, {{"g", "s2", "w2"}}).ok());
  EXPECT_THAT(Select("SELECT \"group\", \"select\", \"we\"\"ird\" FROM \"order\""),
              ElementsAre(ElementsAre(V("g"), V("s2"), V("w2"))));
}

TEST_F(SqliteSinkTest, RowsSurviveReopening) {
  ASSERT_TRUE(sink_.Upsert(InvoicesSpec(), {{"acct", "1", "1.00", "false", kNull}}).ok());
  SqliteSink reopened(path_);
  ASSERT_TRUE(reopened.Start().ok());
  ASSERT_TRUE(reopened.Upsert(InvoicesSpec(), {{"acct", "2", "2.00", "false", kNull}}).ok());
  EXPECT_EQ(CountRows("freshbooks_invoices"), 2);
}

TEST_F(SqliteSinkTest, FreshBooksEventsTableRoundTrip) {
  const TableSpec& spec = FreshBooksEventsTable();
  EXPECT_EQ(spec.name, "freshbooks_events");
  EXPECT_THAT(spec.key, ElementsAre("delivery_id"));
  EXPECT_TRUE(spec.insert_only);
  ASSERT_EQ(spec.columns.size(), 12u);
  EXPECT_EQ(spec.ColumnIndex("delivery_id"), 0);
  EXPECT_EQ(spec.ColumnIndex("data"), 11);
  EXPECT_EQ(spec.ColumnIndex("nope"), -1);

  const std::string received = FormatTimestamp(absl::FromUnixMicros(1767225600000001));
  EXPECT_EQ(received, "2026-01-01T00:00:00.000001Z");
  const Row fetched = {"d-1",
                       "acme",
                       "invoice.update",
                       "invoice",
                       "42",
                       "6BApk",
                       "77",
                       "88",
                       "99",
                       received,
                       "2026-01-01T00:00:05.000000Z",
                       R"({"id":42,"amount":{"amount":"10.00","code":"USD"}})"};
  const Row not_fetched = {"d-2",
                           "acme",
                           "payment.create",
                           "payment",
                           "7",
                           "6BApk",
                           "77",
                           "88",
                           "99",
                           received,
                           "2026-01-01T00:00:05.000000Z",
                           kNull};
  ASSERT_TRUE(sink_.Upsert(spec, {fetched, not_fetched}).ok());

  std::vector<Cells> expected;
  for (const Row& r : {fetched, not_fetched}) expected.emplace_back(r.begin(), r.end());
  EXPECT_EQ(Select("SELECT delivery_id, connection_id, event_type, object_type, object_id, "
                   "account_id, business_id, identity_id, user_id, received_at, processed_at, "
                   "data FROM freshbooks_events ORDER BY delivery_id"),
            expected);

  // A replay (same delivery, later processed_at) leaves the history unchanged.
  Row replay = fetched;
  replay[10] = "2026-01-02T00:00:00.000000Z";
  replay[11] = R"({"id":42,"changed":true})";
  ASSERT_TRUE(sink_.Upsert(spec, {replay}).ok());
  EXPECT_EQ(Select("SELECT delivery_id, connection_id, event_type, object_type, object_id, "
                   "account_id, business_id, identity_id, user_id, received_at, processed_at, "
                   "data FROM freshbooks_events ORDER BY delivery_id"),
            expected);
  EXPECT_THAT(Select("SELECT typeof(data) FROM freshbooks_events WHERE delivery_id = 'd-2'"),
              ElementsAre(ElementsAre(V("null"))));
}

TEST(IsTransientTest, ClassifiesSinkErrors) {
  EXPECT_TRUE(IsTransient(absl::UnavailableError("x")));
  EXPECT_TRUE(IsTransient(absl::DeadlineExceededError("x")));
  EXPECT_TRUE(IsTransient(absl::ResourceExhaustedError("x")));
  EXPECT_TRUE(IsTransient(absl::AbortedError("x")));
  EXPECT_FALSE(IsTransient(absl::FailedPreconditionError("x")));
  EXPECT_FALSE(IsTransient(absl::InvalidArgumentError("x")));
  EXPECT_FALSE(IsTransient(absl::PermissionDeniedError("x")));
}

}  // namespace
}  // namespace mlc::writer

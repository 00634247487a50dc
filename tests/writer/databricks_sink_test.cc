// DatabricksSink against the fake workspace (REST + a real SQL engine): a type
// conflict stops only its own table, and replays leave tables unchanged.
#include "writer/databricks_sink.h"

#include <gtest/gtest.h>

#include "tests/support/databricks_world.h"

namespace mlc::writer {
namespace {

using mlc::testing::DatabricksWorld;

TableSpec Spec(const std::string& name) {
  TableSpec t;
  t.name = name;
  t.columns = {{"account_id", SqlType::kString, 0, 0, ""},
               {"id", SqlType::kBigint, 0, 0, ""},
               {"amount", SqlType::kDecimal, 18, 2, ""},
               {"updated_at", SqlType::kTimestamp, 0, 0, ""}};
  t.key = {"account_id", "id"};
  t.version_column = "updated_at";
  t.comment = "test table";
  return t;
}

class DatabricksSinkTest : public ::testing::Test {
 protected:
  DatabricksSinkTest() {
    DatabricksConfig c;
    c.host = world_.url();
    c.client_id = "fake-client-id";
    c.client_secret = "fake-client-secret";
    c.warehouse_id = "fakewarehouse01";
    c.catalog = "finance";
    c.schema = "freshbooks";
    DatabricksTokenOptions t;
    t.host = c.host;
    t.client_id = c.client_id;
    t.client_secret = c.client_secret;
    tokens_ = std::make_unique<DatabricksTokenSource>(t, &http_, RealClock::Get());
    StatementClientOptions so;
    so.host = c.host;
    so.warehouse_id = c.warehouse_id;
    statements_ = std::make_unique<StatementClient>(so, &http_, tokens_.get(), RealClock::Get());
    sink_ = std::make_unique<DatabricksSink>("acme", c, &http_, tokens_.get(), statements_.get());
  }

  DatabricksWorld world_;
  HttplibClient http_;
  std::unique_ptr<DatabricksTokenSource> tokens_;
  std::unique_ptr<StatementClient> statements_;
  std::unique_ptr<DatabricksSink> sink_;
};

TEST_F(DatabricksSinkTest, ATypeConflictStopsOnlyItsOwnTable) {
  ASSERT_TRUE(sink_->Start().ok());
  ASSERT_TRUE(
      world_.engine()
          .CreateTableDirect("finance.freshbooks.bad", {{"account_id", "STRING"}, {"id", "STRING"}})
          .ok());
  const std::vector<Row> rows = {{"A", "1", "10.50", "2026-11-26T12:00:00.000000Z"}};
  absl::Status bad = sink_->Upsert(Spec("bad"), rows);
  EXPECT_EQ(bad.code(), absl::StatusCode::kFailedPrecondition) << bad;
  EXPECT_NE(bad.message().find("id"), absl::string_view::npos) << bad;
  EXPECT_FALSE(IsTransient(bad));
  absl::Status good = sink_->Upsert(Spec("good"), rows);
  ASSERT_TRUE(good.ok()) << good;
  EXPECT_EQ(world_.Column("SELECT amount FROM finance.freshbooks.good"),
            std::vector<std::string>{"10.50"});
}

TEST_F(DatabricksSinkTest, ReplaysAndOlderUpdatesLeaveTheTableUnchanged) {
  ASSERT_TRUE(sink_->Start().ok());
  const TableSpec spec = Spec("invoices");
  ASSERT_TRUE(sink_->Upsert(spec, {{"A", "1", "20.00", "2026-11-26T12:00:00.000000Z"}}).ok());
  ASSERT_TRUE(sink_->Upsert(spec, {{"A", "1", "20.00", "2026-11-26T12:00:00.000000Z"}}).ok());
  ASSERT_TRUE(sink_->Upsert(spec, {{"A", "1", "5.00", "2026-11-26T11:00:00.000000Z"}}).ok());
  EXPECT_EQ(world_.Column("SELECT amount FROM finance.freshbooks.invoices"),
            std::vector<std::string>{"20.00"});
}

}  // namespace
}  // namespace mlc::writer

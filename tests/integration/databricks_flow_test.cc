// sink: databricks through the real binaries: mlc-ingress and mlc-writer run as
// processes against a fake Databricks workspace (REST endpoints in Databricks'
// shapes, statements executed on a real SQL engine, fault knobs).
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/databricks_world.h"
#include "tests/support/services.h"

namespace mlc::testing {
namespace {

constexpr char kEvents[] = "finance.freshbooks.freshbooks_events";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

ServicesOptions DatabricksOptions(const DatabricksWorld& world) {
  ServicesOptions o;
  o.sink = "databricks";
  o.databricks_host = world.url();
  o.max_delay_ms = 50;
  return o;
}

TEST(DatabricksFlowTest, WebhooksLandInAProvisionedDeltaTable) {
  DatabricksWorld world;
  Services s(DatabricksOptions(world));
  s.StartAll();
  // The startup check provisions schema and table and marks the writer ready.
  ASSERT_TRUE(s.WaitReadyz(s.metrics_port(), 200)) << s.WriterLog();
  EXPECT_TRUE(Contains(s.WriterLog(), "databricks startup check passed"));

  Services::Answer a = s.Send(StandardEvent("invoice.create", "1234567"));
  ASSERT_EQ(a.status, 202) << a.body;
  ASSERT_TRUE(WaitFor([&] { return world.EventRowCounts().count(a.delivery_id) == 1; }))
      << s.WriterLog();
  const std::string where =
      absl::StrCat(" FROM ", kEvents, " WHERE delivery_id = '", a.delivery_id, "'");
  EXPECT_EQ(world.Column("SELECT event_type" + where), std::vector<std::string>{"invoice.create"});
  EXPECT_EQ(world.Column("SELECT object_id" + where), std::vector<std::string>{"1234567"});
  EXPECT_EQ(world.Column("SELECT account_id" + where), std::vector<std::string>{"6BApk"});
  EXPECT_EQ(world.Column("SELECT data" + where), std::vector<std::string>{"NULL"});

  std::optional<FakeTableInfo> info = world.engine().TableInfo(kEvents);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->cluster_columns, std::vector<std::string>{"delivery_id"});
  EXPECT_EQ(info->properties["delta.enableChangeDataFeed"], "true");
  EXPECT_FALSE(info->comment.empty());
  // No secret in the writer's log.
  EXPECT_FALSE(Contains(s.WriterLog(), s.options().databricks_client_secret));
  const std::string metrics = s.HttpGet(s.metrics_port(), "/metrics");
  EXPECT_TRUE(Contains(metrics, R"(mlc_sink_ready{connection="acme"} 1)")) << metrics;
}

TEST(DatabricksFlowTest, ATableWithFewerColumnsIsEvolved) {
  DatabricksWorld world;
  ASSERT_TRUE(world.engine().CreateSchemaDirect("finance", "freshbooks").ok());
  ASSERT_TRUE(world.engine()
                  .CreateTableDirect(kEvents, {{"delivery_id", "STRING", false},
                                               {"connection_id", "STRING"},
                                               {"event_type", "STRING"}})
                  .ok());
  Services s(DatabricksOptions(world));
  s.StartAll();
  Services::Answer a = s.Send(StandardEvent("client.update", "77"));
  ASSERT_EQ(a.status, 202);
  ASSERT_TRUE(WaitFor([&] { return world.EventRowCounts().count(a.delivery_id) == 1; }))
      << s.WriterLog();
  std::optional<FakeTableInfo> info = world.engine().TableInfo(kEvents);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->columns.size(), 12u);
  EXPECT_TRUE(Contains(s.WriterLog(), "columns added"));
}

TEST(DatabricksFlowTest, ATypeConflictDeadLettersWithAnActionableReason) {
  DatabricksWorld world;
  ASSERT_TRUE(world.engine().CreateSchemaDirect("finance", "freshbooks").ok());
  ASSERT_TRUE(
      world.engine()
          .CreateTableDirect(kEvents, {{"delivery_id", "STRING", false}, {"received_at", "BIGINT"}})
          .ok());
  Services s(DatabricksOptions(world));
  s.StartAll();
  Services::Answer a = s.Send(StandardEvent("bill.create", "5"));
  ASSERT_EQ(a.status, 202);
  ASSERT_TRUE(WaitFor([&] { return s.DeliveryStatus(a.delivery_id) == "dead"; })) << s.WriterLog();
  const std::string reason = s.Query(
      "journal.db", "SELECT last_error FROM deliveries WHERE delivery_id='" + a.delivery_id + "'");
  EXPECT_TRUE(Contains(reason, "received_at")) << reason;
  EXPECT_TRUE(Contains(reason, "never retypes")) << reason;
  EXPECT_TRUE(world.EventRowCounts().empty());
}

TEST(DatabricksFlowTest, UnderAMixOfFaultsEveryAcknowledgedRowLandsExactlyOnce) {
  DatabricksWorld world;
  world.server().SetStatementLatency(absl::Milliseconds(30));
  Services s(DatabricksOptions(world));
  s.StartAll();
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> acked;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        Services::Answer a = s.Send(StandardEvent("payment.create", absl::StrCat(c, "-", i)));
        if (a.status == 202) {
          std::lock_guard<std::mutex> lock(mu);
          acked.insert(a.delivery_id);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  // Each fault in turn while traffic flows, then all of them at once.
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(700)); };
  world.server().ThrottleNext(1, 0);
  pause();
  world.server().UnavailableNext(1, 0);
  pause();
  world.server().ConflictNext(1);
  pause();
  world.server().DropConnectionAfterNextStatements(1);
  pause();
  world.server().RejectTokensNext(1);
  pause();
  world.server().ThrottleNext(1, 0);
  world.server().UnavailableNext(1, 0);
  world.server().ConflictNext(1);
  world.server().DropConnectionAfterNextStatements(1);
  world.server().RejectTokensNext(1);
  pause();
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GT(acked.size(), 50u);
  std::map<std::string, int> rows;
  ASSERT_TRUE(WaitFor(
      [&] {
        rows = world.EventRowCounts();
        for (const std::string& id : acked) {
          if (rows.count(id) == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(60)))
      << s.WriterLog();
  for (const auto& [id, n] : rows) EXPECT_EQ(n, 1) << id;
  // Every fault was met and survived.
  const std::string log = s.WriterLog();
  EXPECT_TRUE(Contains(log, "TOO_MANY_REQUESTS"));
  EXPECT_TRUE(Contains(log, "TEMPORARILY_UNAVAILABLE"));
  EXPECT_TRUE(Contains(log, "DELTA_CONCURRENT_APPEND"));
  EXPECT_TRUE(Contains(log, "connection closed before a complete answer"));
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'"), "0");
}

// A 20 % mix: one statement submission in five meets a random fault (429, 503,
// invalid token, write conflict, connection dropped after applying).
TEST(DatabricksFlowTest, UnderATwentyPercentFaultMixEveryRowLandsExactlyOnce) {
  DatabricksWorld world;
  ServicesOptions o = DatabricksOptions(world);
  o.max_rows = 20;  // many statements, so many faults
  Services s(o);
  s.StartAll();
  world.server().SetFaultRate(0.2, 7);
  std::set<std::string> acked;
  for (int i = 0; i < 600; ++i) {
    Services::Answer a = s.Send(StandardEvent("estimate.update", absl::StrCat(i)));
    ASSERT_EQ(a.status, 202) << a.body;
    acked.insert(a.delivery_id);
    if (i % 20 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  std::map<std::string, int> rows;
  ASSERT_TRUE(WaitFor(
      [&] {
        rows = world.EventRowCounts();
        for (const std::string& id : acked) {
          if (rows.count(id) == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(90)))
      << s.WriterLog();
  for (const std::string& id : acked) EXPECT_EQ(rows[id], 1) << id;
  EXPECT_EQ(rows.size(), acked.size());
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'"), "0");
  EXPECT_GT(world.server().Requests(FakeDatabricks::Endpoint::kExecute), 30);
  // The faults were met: the writer retried.
  const std::string metrics = s.HttpGet(s.metrics_port(), "/metrics");
  EXPECT_FALSE(Contains(metrics, R"(mlc_databricks_statement_retries_total{connection="acme"} 0)"))
      << metrics;
}

// Tokens that live 5 s, over a 60 s run: refresh-ahead and re-minting keep every
// statement authorised; nothing fails, nothing is lost.
TEST(DatabricksFlowTest, FiveSecondTokensOverAMinuteFailNothing) {
  DatabricksWorld world;
  world.server().SetTokenTtl(absl::Seconds(5));
  Services s(DatabricksOptions(world));
  s.StartAll();
  std::set<std::string> acked;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
    Services::Answer a = s.Send(StandardEvent("expense.update", absl::StrCat(i)));
    ASSERT_EQ(a.status, 202) << a.body;
    acked.insert(a.delivery_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::map<std::string, int> rows;
  ASSERT_TRUE(WaitFor(
      [&] {
        rows = world.EventRowCounts();
        return rows.size() >= acked.size();
      },
      std::chrono::seconds(30)));
  for (const std::string& id : acked) EXPECT_EQ(rows[id], 1) << id;
  EXPECT_GE(world.server().TokensMinted(), 10);
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM attempts WHERE outcome != 'ok'"), "0")
      << s.WriterLog();
}

TEST(DatabricksFlowTest, AWrongSecretFailsTheStartupCheckNamingTheFix) {
  DatabricksWorld world;
  ServicesOptions o = DatabricksOptions(world);
  o.databricks_client_secret = "not-the-secret-0123456789";
  Services s(o);
  s.StartWriter();
  ASSERT_TRUE(WaitFor([&] { return Contains(s.WriterLog(), "failed at the token step"); }))
      << s.WriterLog();
  EXPECT_TRUE(Contains(s.WriterLog(), "client_secret"));
  EXPECT_FALSE(Contains(s.WriterLog(), o.databricks_client_secret));
  EXPECT_TRUE(s.WaitReadyz(s.metrics_port(), 503));
}

}  // namespace
}  // namespace mlc::testing

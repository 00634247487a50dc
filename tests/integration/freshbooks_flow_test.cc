// FreshBooks end to end through the real binaries: mlc-ingress and mlc-writer as
// processes, the fake FreshBooks as a real HTTP server, the operator's steps done
// with mlc and HTTP redirects, rows read from the SQLite lakehouse.
#include <signal.h>

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/fakes/freshbooks_samples.h"
#include "tests/support/databricks_world.h"
#include "tests/support/freshbooks_world.h"
#include "writer/freshbooks_entities.h"

namespace mlc::testing {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string Table(const std::string& entity) {
  const writer::EntitySpec* e = writer::EntityByName(entity);
  if (e == nullptr) throw std::runtime_error("no entity " + entity);
  return e->table;
}

int64_t IdOf(const nlohmann::json& o, const std::string& entity = "") {
  const nlohmann::json& id = o.at(entity.empty() ? "id" : SampleIdField(entity));
  return id.is_string() ? std::stoll(id.get<std::string>()) : id.get<int64_t>();
}

TEST(FreshBooksFlowTest, AuthorizeRegisterAndAnInvoiceLandsTyped) {
  FreshBooksWorld w;
  w.services().StartAll();

  // Before authorization the writer says what to do.
  int status = 0;
  std::string ready = w.services().HttpGet(w.services().metrics_port(), "/readyz", &status);
  EXPECT_TRUE(Contains(ready, "not authorized yet")) << ready;

  std::string page;
  ASSERT_EQ(w.Authorize(&page), 200) << page << w.services().WriterLog();
  EXPECT_TRUE(Contains(page, "6BApk")) << page;
  // The state is single-use: the same link cannot complete twice (tested in
  // the connections unit test); here, the identity is recorded.
  std::string out;
  ASSERT_EQ(w.services().RunCli({"connections"}, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "6BApk")) << out;

  ASSERT_TRUE(w.RegisterWebhooks(&out)) << out << w.services().WriterLog();
  EXPECT_TRUE(Contains(out, "verified")) << out;
  EXPECT_FALSE(Contains(out, "pending")) << out;
  // Verified keys are stored encrypted, never in the clear.
  for (const nlohmann::json& cb : w.fb().Callbacks()) {
    const std::string verifier = cb.at("verifier").get<std::string>();
    EXPECT_FALSE(Contains(ReadFile(w.services().data_dir() + "/credentials.db"), verifier));
    EXPECT_FALSE(Contains(w.services().WriterLog(), verifier));
    EXPECT_FALSE(Contains(w.services().IngressLog(), verifier));
  }

  std::mt19937_64 rng(7);
  nlohmann::json invoice = w.fb().Create("invoice", NewSample("invoice", rng));
  const int64_t id = IdOf(invoice);
  const std::string where = absl::StrCat(" FROM freshbooks_invoices WHERE id = ", id);
  // The events row is written after the entity tables of its batch.
  ASSERT_TRUE(w.WaitLakehouse(absl::StrCat("SELECT COUNT(*) FROM freshbooks_events WHERE "
                                           "object_id = '",
                                           id, "' AND data IS NOT NULL"),
                              "1"))
      << w.services().WriterLog() << w.services().IngressLog();
  ASSERT_EQ(w.Lakehouse("SELECT COUNT(*)" + where), "1");
  EXPECT_EQ(w.Lakehouse("SELECT account_id" + where), "6BApk");
  EXPECT_EQ(w.Lakehouse("SELECT is_deleted" + where), "0");
  EXPECT_EQ(w.Lakehouse("SELECT _source" + where), "webhook");
  EXPECT_EQ(w.Lakehouse("SELECT amount" + where), invoice["amount"]["amount"].get<std::string>());
  EXPECT_EQ(w.Lakehouse("SELECT amount_currency" + where), "USD");
  const std::string updated = w.Lakehouse("SELECT updated_at" + where);
  EXPECT_EQ(updated.back(), 'Z') << updated;
  // Lines come with the invoice (include[]=lines).
  EXPECT_EQ(w.Lakehouse(absl::StrCat("SELECT COUNT(*) FROM freshbooks_invoice_lines WHERE "
                                     "invoice_id = ",
                                     id)),
            std::to_string(invoice["lines"].size()));
  // freshbooks_events.data holds the object as fetched.
  const std::string data =
      w.Lakehouse(absl::StrCat("SELECT data FROM freshbooks_events WHERE object_id = '", id,
                               "' AND event_type = "
                               "'invoice.create'"));
  ASSERT_FALSE(data.empty());
  EXPECT_EQ(nlohmann::json::parse(data)["id"], invoice["id"]);
  // The audit trail shows the fetch.
  const std::string event =
      absl::StrCat(" FROM deliveries WHERE kind = 'event' AND object_id = '", id, "'");
  ASSERT_TRUE(WaitFor(
      [&] { return w.services().Query("journal.db", "SELECT status" + event) == "written"; }));
  const std::string delivery_id = w.services().Query("journal.db", "SELECT delivery_id" + event);
  EXPECT_EQ(w.services().Query("journal.db",
                               absl::StrCat("SELECT group_concat(stage || ':' || outcome, ',') "
                                            "FROM (SELECT stage, outcome FROM attempts WHERE "
                                            "delivery_id = '",
                                            delivery_id, "' ORDER BY id)")),
            "journal:ok,hydrate:ok,write:ok");
}

TEST(FreshBooksFlowTest, OneWebhookOfEveryEventTypeLandsInItsTypedTable) {
  FreshBooksWorld w;
  w.StartAuthorized();
  std::mt19937_64 rng(11);
  std::vector<std::pair<std::string, int64_t>> created;
  for (const writer::EntitySpec* e : writer::AllEntities()) {
    if (e->event_object.empty()) continue;
    nlohmann::json o = w.fb().Create(e->name, NewSample(e->name, rng));
    created.emplace_back(e->name, IdOf(o, e->name));
  }
  ASSERT_GE(created.size(), 14u);
  for (const auto& [entity, id] : created) {
    EXPECT_TRUE(w.WaitLakehouse(
        absl::StrCat("SELECT COUNT(*) FROM ", Table(entity), " WHERE id = ", id,
                     " AND is_deleted = 0 AND raw IS NOT NULL AND _source = 'webhook'"),
        "1"))
        << entity << " " << id << "\n"
        << w.services().WriterLog();
  }
  // Updates and deletes of each kind.
  for (const auto& [entity, id] : created) {
    ASSERT_TRUE(w.fb().SoftDelete(entity, id)) << entity;
  }
  for (const auto& [entity, id] : created) {
    EXPECT_TRUE(w.WaitLakehouse(
        absl::StrCat("SELECT is_deleted FROM ", Table(entity), " WHERE id = ", id), "1"))
        << entity;
  }
  EXPECT_EQ(w.services().Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status='dead'"),
            "0")
      << w.services().WriterLog();
}

TEST(FreshBooksFlowTest, HardDeletesBecomeTombstones) {
  FreshBooksWorld w;
  w.StartAuthorized();
  std::mt19937_64 rng(3);
  nlohmann::json invoice = w.fb().Create("invoice", NewSample("invoice", rng));
  const int64_t id = IdOf(invoice);
  const std::string where = absl::StrCat(" FROM freshbooks_invoices WHERE id = ", id);
  ASSERT_TRUE(w.WaitLakehouse("SELECT is_deleted" + where, "0")) << w.services().WriterLog();
  ASSERT_TRUE(w.fb().HardDelete("invoice", id));
  EXPECT_TRUE(w.WaitLakehouse("SELECT is_deleted" + where, "1")) << w.services().WriterLog();
  EXPECT_EQ(w.Lakehouse("SELECT COUNT(*)" + where), "1");
}

TEST(FreshBooksFlowTest, DroppedWebhooksAreHealedByReconcile) {
  FreshBooksWorld w;
  w.StartAuthorized();
  std::mt19937_64 rng(5);
  // The first sync (the backfill of an empty account) ran at authorization; now
  // FreshBooks loses every webhook.
  w.fb().SetWebhookDropProbability(1.0);
  std::vector<int64_t> invoices, payments;
  for (int i = 0; i < 5; ++i) {
    invoices.push_back(IdOf(w.fb().Create("invoice", NewSample("invoice", rng))));
    payments.push_back(IdOf(w.fb().Create("payment", NewSample("payment", rng))));
  }
  // Bill payments have no webhooks at all.
  const int64_t bill_payment = IdOf(w.fb().Create("bill_payment", NewSample("bill_payment", rng)));
  ASSERT_TRUE(w.fb().WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(w.Lakehouse("SELECT COUNT(*) FROM freshbooks_invoices"), "0");

  std::string out;
  ASSERT_EQ(w.services().RunCli({"sync", "--connection", "acme"}, &out), 0)
      << out << w.services().WriterLog();
  EXPECT_EQ(w.Lakehouse("SELECT COUNT(*) FROM freshbooks_invoices WHERE _source = 'sync'"), "5");
  EXPECT_EQ(w.Lakehouse("SELECT COUNT(*) FROM freshbooks_payments"), "5");
  EXPECT_EQ(w.Lakehouse(absl::StrCat("SELECT COUNT(*) FROM freshbooks_bill_payments WHERE id = ",
                                     bill_payment)),
            "1");
  // A deletion nobody was told about is found too (search[vis_state]=1).
  ASSERT_TRUE(w.fb().SoftDelete("invoice", invoices[0]));
  ASSERT_EQ(w.services().RunCli({"sync", "--connection", "acme", "--entity", "invoice"}, &out), 0)
      << out;
  EXPECT_EQ(w.Lakehouse(absl::StrCat("SELECT is_deleted FROM freshbooks_invoices WHERE id = ",
                                     invoices[0])),
            "1");
}

TEST(FreshBooksFlowTest, ReorderedAndDuplicatedEventsNeverRollARowBack) {
  FreshBooksWorld w;
  w.StartAuthorized();
  w.fb().SetWebhookReorderWindow(absl::Milliseconds(300));
  w.fb().SetWebhookDuplicateProbability(0.5);
  std::mt19937_64 rng(9);
  const int64_t id = IdOf(w.fb().Create("invoice", NewSample("invoice", rng)));
  for (int i = 0; i < 12; ++i) {
    // FreshBooks timestamps have second granularity: space the edits out.
    absl::SleepFor(absl::Milliseconds(1100));
    ASSERT_TRUE(w.fb().Update("invoice", id, [&](nlohmann::json& o) {
      MutateSample("invoice", o, absl::Now(), rng);
      o["notes"] = absl::StrCat("edit ", i);
    }));
  }
  ASSERT_TRUE(w.fb().WaitIdle(absl::Seconds(20)));
  const nlohmann::json latest = *w.fb().Get("invoice", id);
  const std::string where = absl::StrCat(" FROM freshbooks_invoices WHERE id = ", id);
  EXPECT_TRUE(
      w.WaitLakehouse("SELECT amount" + where, latest["amount"]["amount"].get<std::string>()))
      << w.services().WriterLog();
  // It stays there: nothing older overwrites it later.
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(w.Lakehouse("SELECT amount" + where), latest["amount"]["amount"].get<std::string>());
  EXPECT_EQ(w.Lakehouse("SELECT json_extract(raw, '$.notes')" + where), "edit 11");
}

TEST(FreshBooksFlowTest, RotatedRefreshTokenSurvivesAWriterKillAtTheWorstMoment) {
  FreshBooksWorld w;
  w.StartAuthorized();
  std::mt19937_64 rng(13);
  // Make the writer refresh: its access token is expired. The token endpoint
  // answers at once, the API call after it hangs - and the writer is killed
  // there: FreshBooks has rotated the refresh token, the writer has not yet used
  // the new access token.
  w.fb().ExpireAllAccessTokens();
  w.fb().SetLatency(absl::Seconds(5));
  const int refreshes = w.fb().TokenRefreshes();
  nlohmann::json a = w.fb().Create("client", NewSample("client", rng));
  ASSERT_TRUE(
      WaitFor([&] { return w.fb().TokenRefreshes() > refreshes; }, std::chrono::seconds(20)))
      << w.services().WriterLog();
  absl::SleepFor(absl::Milliseconds(300));  // inside the slow API call
  w.services().KillWriter(SIGKILL);
  w.services().WaitWriter();
  w.fb().SetLatency(absl::ZeroDuration());

  w.services().StartWriter();
  ASSERT_TRUE(w.services().WaitReady()) << w.services().WriterLog();
  EXPECT_TRUE(w.WaitLakehouse(
      absl::StrCat("SELECT COUNT(*) FROM freshbooks_clients WHERE id = ", IdOf(a)), "1"))
      << w.services().WriterLog();
  // And the next refresh uses the rotated token (the old one is dead by now).
  w.fb().ExpireAllAccessTokens();
  nlohmann::json b = w.fb().Create("client", NewSample("client", rng));
  EXPECT_TRUE(w.WaitLakehouse(
      absl::StrCat("SELECT COUNT(*) FROM freshbooks_clients WHERE id = ", IdOf(b)), "1"))
      << w.services().WriterLog();
  int status = 0;
  const std::string ready = w.services().HttpGet(w.services().metrics_port(), "/readyz", &status);
  EXPECT_FALSE(Contains(ready, "RE-AUTHORIZATION")) << ready;
}

TEST(FreshBooksFlowTest, ALostAuthorizationMakesEventsWaitNotDie) {
  FreshBooksWorld w;
  w.StartAuthorized();
  std::mt19937_64 rng(17);
  w.fb().RevokeRefreshTokens();
  w.fb().ExpireAllAccessTokens();
  nlohmann::json c = w.fb().Create("client", NewSample("client", rng));
  int status = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        return Contains(w.services().HttpGet(w.services().metrics_port(), "/readyz", &status),
                        "NEEDS RE-AUTHORIZATION");
      },
      std::chrono::seconds(20)))
      << w.services().WriterLog();
  EXPECT_TRUE(Contains(w.services().HttpGet(w.services().metrics_port(), "/metrics"),
                       "mlc_freshbooks_needs_reauthorization{connection=\"acme\"} 1"));
  EXPECT_TRUE(Contains(w.services().WriterLog(), "mlc authorize --connection acme"));
  EXPECT_EQ(w.services().Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status='dead'"),
            "0");
  EXPECT_EQ(w.services().Query("journal.db",
                               absl::StrCat("SELECT status FROM deliveries WHERE kind = 'event' "
                                            "AND object_id='",
                                            IdOf(c), "'")),
            "pending");
  // A human re-authorizes; the waiting event lands.
  ASSERT_EQ(w.Authorize(), 200);
  EXPECT_TRUE(
      w.WaitLakehouse(absl::StrCat("SELECT COUNT(*) FROM freshbooks_clients WHERE id = ", IdOf(c)),
                      "1", std::chrono::seconds(60)))
      << w.services().WriterLog();
}

TEST(FreshBooksFlowTest, AnotherBusinessIsRefused) {
  FreshBooksWorldOptions o;
  o.services.freshbooks_account_id = "OTHER1";
  FreshBooksWorld w(o);
  w.services().StartAll();
  std::string page;
  EXPECT_EQ(w.Authorize(&page), 400);
  EXPECT_TRUE(Contains(page, "OTHER1")) << page;
  std::string out;
  ASSERT_EQ(w.services().RunCli({"connections"}, &out), 0) << out;
  EXPECT_FALSE(Contains(out, "6BApk")) << out;
}

TEST(FreshBooksFlowTest, TheSameTypedTablesLandInDatabricks) {
  DatabricksWorld dbx;
  FreshBooksWorldOptions o;
  o.services.sink = "databricks";
  o.services.databricks_host = dbx.url();
  o.services.max_delay_ms = 50;
  FreshBooksWorld w(o);
  w.StartAuthorized();
  std::mt19937_64 rng(21);
  nlohmann::json invoice = w.fb().Create("invoice", NewSample("invoice", rng));
  const int64_t id = IdOf(invoice);
  const std::string table = "finance.freshbooks.freshbooks_invoices";
  const std::string where = absl::StrCat(" FROM ", table, " WHERE id = ", id);
  ASSERT_TRUE(WaitFor(
      [&] {
        return dbx.engine().TableInfo(table).has_value() &&
               dbx.Column("SELECT COUNT(*)" + where) == std::vector<std::string>{"1"};
      },
      std::chrono::seconds(30)))
      << w.services().WriterLog();
  // Money is DECIMAL in the Delta table, with its currency beside it.
  EXPECT_EQ(dbx.Column("SELECT amount" + where),
            std::vector<std::string>{invoice["amount"]["amount"].get<std::string>()});
  EXPECT_EQ(dbx.Column("SELECT amount_currency" + where), std::vector<std::string>{"USD"});
  std::optional<FakeTableInfo> info = dbx.engine().TableInfo(table);
  ASSERT_TRUE(info.has_value());
  std::string amount_type;
  for (const auto& c : info->columns) {
    if (c.name == "amount") amount_type = c.type_text;
  }
  EXPECT_EQ(amount_type, "decimal(18,2)");
  // Every entity table was provisioned by the startup check.
  for (const writer::TableSpec* t : writer::AllEntityTables()) {
    EXPECT_TRUE(dbx.engine().TableInfo("finance.freshbooks." + t->name).has_value()) << t->name;
  }
  // `mlc check` pings both real systems (here: the fakes) with the stored credentials.
  std::string out;
  const int st = w.services().RunCli({"check", "--connection", "acme"}, &out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  for (const char* step : {"access token (/users/me)", "scopes", "oauth token", "warehouse",
                           "schema finance.freshbooks", "table freshbooks_invoices"}) {
    EXPECT_TRUE(absl::StrContains(out, step)) << step << "\n" << out;
  }
  EXPECT_FALSE(absl::StrContains(out, "failed")) << out;
}

}  // namespace
}  // namespace mlc::testing

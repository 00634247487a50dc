// ConnectionChecker end to end against the fakes over loopback: the real
// FreshBooksConnections (fake FreshBooks, real encrypted store), the real
// Databricks token source, statement client and sink (fake workspace with its
// SQL engine and Unity Catalog grants), and the real SQLite lakehouse. Each test
// breaks one thing an operator can get wrong and asserts the step that says so,
// and its fix.
#include "writer/connection_check.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "tests/fakes/fake_freshbooks.h"
#include "tests/support/databricks_world.h"
#include "tests/support/freshbooks_oauth_test.h"
#include "tests/support/test_util.h"
#include "writer/credential_store.h"
#include "writer/databricks_sink.h"
#include "writer/databricks_statements.h"
#include "writer/freshbooks_entities.h"
#include "writer/sqlite_db.h"
#include "writer/sqlite_sink.h"

namespace mlc::writer {
namespace {

using mlc::testing::DatabricksWorld;
using mlc::testing::FakeDatabricks;
using mlc::testing::FakeFreshBooks;
const char kVerifier[] = "static-verifier-5ecret-0000";
const char kDatabricksClient[] = "fake-client-id";  // FakeDatabricks::Options' default

std::string Describe(const CheckReport& r) {
  std::string out = absl::StrCat("report for ", r.connection_id, " ok=", r.ok, "\n");
  for (const CheckStepResult& s : r.steps) {
    absl::StrAppend(&out, "  [", s.status, "] ", s.system, " / ", s.name, ": ", s.detail,
                    s.fix.empty() ? "" : absl::StrCat("\n      fix: ", s.fix), "\n");
  }
  return out;
}

class ConnectionCheckTest : public testing::FreshBooksOAuthTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartFreshBooks());
    world_.server().SetSecurableProvider(
        [e = &world_.engine()](const std::string& type, const std::string& name) {
          if (type != "schema") return true;
          const std::vector<std::string> parts = absl::StrSplit(name, '.');
          return parts.size() == 2 && e->SchemaExists(parts[0], parts[1]);
        });
  }

  ConnectionConfig Conn(bool oauth = true) {
    ConnectionConfig c;
    c.id = "acme";
    if (oauth) {
      c = OAuthConnection();
      c.freshbooks.webhook_url = "http://127.0.0.1:9/webhooks/freshbooks/acme";
      c.freshbooks.events = {"invoice", "payment"};
    }
    c.freshbooks.verifiers = {kVerifier};
    DatabricksConfig d;
    d.host = world_.url();
    d.client_id = kDatabricksClient;
    d.client_secret = world_.server().options().client_secret;
    d.warehouse_id = world_.server().options().warehouse_id;
    d.catalog = "finance";
    d.schema = "freshbooks";
    c.databricks = d;
    return c;
  }

  // Builds the writer's objects for `c` and the checker over them.
  void Make(const ConnectionConfig& c, const std::string& sink) {
    checker_.reset();
    conns_.reset();
    registry_ = std::make_unique<Registry>();  // families register once per registry
    config_ = c;
    sink_ = sink;
    keys_ = std::make_unique<SigningKeys>(std::vector<ConnectionConfig>{c});
    conns_ = std::make_unique<FreshBooksConnections>(std::vector<ConnectionConfig>{c}, &http_,
                                                     store_.get(), keys_.get(), RealClock::Get(),
                                                     registry_.get());
    ASSERT_TRUE(conns_->Start().ok());
    DatabricksTokenOptions t;
    t.host = c.databricks->host;
    t.client_id = c.databricks->client_id;
    t.client_secret = c.databricks->client_secret;
    t.sleep = [](absl::Duration) {};
    tokens_ = std::make_unique<DatabricksTokenSource>(t, &http_, RealClock::Get());
    ConnectionCheckerOptions o;
    o.sleep = [](absl::Duration) {};
    checker_ = std::make_unique<ConnectionChecker>(
        conns_.get(), keys_.get(),
        [this](const std::string& id) -> std::optional<ConnectionCheckTargets> {
          if (id != "acme") return std::nullopt;
          ConnectionCheckTargets targets;
          targets.sink = sink_;
          targets.databricks_tokens = tokens_.get();
          targets.http = &http_;
          targets.sqlite_path = dir_.File("lakehouse.db");
          return targets;
        },
        RealClock::Get(), o);
  }

  // What the writer does at startup on Databricks: schema, then every table.
  void ProvisionDatabricks(bool entity_tables = true) {
    StatementClientOptions so;
    so.host = config_.databricks->host;
    so.warehouse_id = world_.server().options().warehouse_id;
    StatementClient statements(so, &http_, tokens_.get(), RealClock::Get());
    DatabricksConfig d = *config_.databricks;
    d.warehouse_id = so.warehouse_id;
    DatabricksSink sink("acme", d, &http_, tokens_.get(), &statements);
    ASSERT_TRUE(sink.Start().ok());
    ASSERT_TRUE(sink.EnsureTable(FreshBooksEventsTable()).ok());
    if (!entity_tables) return;
    for (const TableSpec* t : AllEntityTables()) {
      absl::Status s = sink.EnsureTable(*t);
      ASSERT_TRUE(s.ok()) << t->name << ": " << s;
    }
  }

  void ProvisionSqlite(bool entity_tables = true) {
    SqliteSink sink(dir_.File("lakehouse.db"));
    ASSERT_TRUE(sink.Start().ok());
    ASSERT_TRUE(sink.EnsureTable(FreshBooksEventsTable()).ok());
    if (!entity_tables) return;
    for (const TableSpec* t : AllEntityTables()) ASSERT_TRUE(sink.EnsureTable(*t).ok());
  }

  CheckReport Check() {
    absl::StatusOr<CheckReport> r = checker_->Check("acme");
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    reports_.push_back(*r);
    return *r;
  }

  static const CheckStepResult* Step(const CheckReport& r, const std::string& name) {
    for (const CheckStepResult& s : r.steps) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  // The step `name`, which must exist and have `status`.
  static CheckStepResult Expect(const CheckReport& r, const std::string& name,
                                const std::string& status) {
    const CheckStepResult* s = Step(r, name);
    EXPECT_NE(s, nullptr) << "no step \"" << name << "\" in\n" << Describe(r);
    if (s == nullptr) return {};
    EXPECT_EQ(s->status, status) << name << " in\n" << Describe(r);
    return *s;
  }

  DatabricksWorld world_;
  std::unique_ptr<Registry> registry_;
  ConnectionConfig config_;
  std::string sink_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<FreshBooksConnections> conns_;
  std::unique_ptr<DatabricksTokenSource> tokens_;
  std::unique_ptr<ConnectionChecker> checker_;
  std::vector<CheckReport> reports_;  // every report made, for the secrets scan
};

TEST_F(ConnectionCheckTest, EverythingOkOnDatabricks) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  for (const CheckStepResult& s : r.steps) {
    EXPECT_EQ(s.status, "ok") << s.system << " / " << s.name << ": " << s.detail;
    EXPECT_EQ(s.fix, "") << s.name;
  }
  for (const char* name :
       {"configuration", "signing keys", "authorization", "re-authorization",
        "access token (/users/me)", "business", "scopes", "oauth token", "warehouse",
        "catalog finance", "schema finance.freshbooks", "table freshbooks_events",
        "table freshbooks_invoices", "table freshbooks_invoice_lines"}) {
    EXPECT_NE(Step(r, name), nullptr) << name << " missing in\n" << Describe(r);
  }
  size_t tables = 0;
  for (const CheckStepResult& s : r.steps) tables += absl::StartsWith(s.name, "table ") ? 1 : 0;
  EXPECT_EQ(tables, 1 + AllEntityTables().size());
  EXPECT_TRUE(absl::StrContains(Expect(r, "business", "ok").detail, "6BApk")) << Describe(r);
  // /users/me was really called.
  EXPECT_GE(fb_->Requests("ME"), 2);  // authorization + the check

  const mlconnector::v1::CheckConnectionResponse proto = ToProto(r);
  EXPECT_EQ(proto.connection_id(), "acme");
  EXPECT_TRUE(proto.ok());
  ASSERT_EQ(proto.steps_size(), static_cast<int>(r.steps.size()));
  EXPECT_EQ(proto.steps(0).system(), "writer");
  EXPECT_EQ(proto.steps(0).name(), "configuration");
  EXPECT_EQ(proto.steps(0).status(), "ok");
  EXPECT_GE(proto.steps(0).duration_ms(), 0);
}

TEST_F(ConnectionCheckTest, EverythingOkOnSqlite) {
  Make(Conn(), "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionSqlite();
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  for (const CheckStepResult& s : r.steps) {
    EXPECT_EQ(s.status, "ok") << s.system << " / " << s.name << ": " << s.detail;
  }
  Expect(r, "lakehouse", "ok");
  Expect(r, "table freshbooks_events", "ok");
  Expect(r, "table freshbooks_time_entries", "ok");
  EXPECT_EQ(Step(r, "warehouse"), nullptr) << "no Databricks steps on SQLite";
}

TEST_F(ConnectionCheckTest, SqliteReportsMissingTablesAndColumns) {
  Make(Conn(), "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionSqlite(/*entity_tables=*/false);
  {
    auto db = Db::Open(dir_.File("lakehouse.db"), Durability::kNormal);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("CREATE TABLE freshbooks_invoices (account_id TEXT, id INTEGER)").ok());
  }
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  Expect(r, "table freshbooks_events", "ok");
  const CheckStepResult invoices = Expect(r, "table freshbooks_invoices", "failed");
  EXPECT_TRUE(absl::StrContains(invoices.detail, "invoice_number")) << invoices.detail;
  EXPECT_TRUE(absl::StrContains(invoices.fix, "restart the writer")) << invoices.fix;
  const CheckStepResult payments = Expect(r, "table freshbooks_payments", "failed");
  EXPECT_TRUE(absl::StrContains(payments.detail, "does not exist")) << payments.detail;
}

TEST_F(ConnectionCheckTest, SqliteWithoutLakehouseFails) {
  Make(Conn(), "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "lakehouse", "failed");
  EXPECT_TRUE(absl::StrContains(s.fix, "writer.data_dir")) << s.fix;
  Expect(r, "tables", "skipped");
}

TEST_F(ConnectionCheckTest, WrongDatabricksSecret) {
  ConnectionConfig c = Conn();
  c.databricks->client_secret = "wr0ng-dbx-secret-value";
  Make(c, "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult token = Expect(r, "oauth token", "failed");
  EXPECT_TRUE(absl::StrContains(token.fix, "databricks.client_secret")) << token.fix;
  EXPECT_TRUE(absl::StrContains(token.fix, "databricks.client_id")) << token.fix;
  for (const char* name : {"warehouse", "catalog finance", "schema finance.freshbooks", "tables"}) {
    Expect(r, name, "skipped");
  }
  EXPECT_FALSE(absl::StrContains(Describe(r), "wr0ng-dbx-secret-value"));
  // FreshBooks is checked independently.
  Expect(r, "access token (/users/me)", "ok");
}

TEST_F(ConnectionCheckTest, UnknownWarehouse) {
  ConnectionConfig c = Conn();
  c.databricks->warehouse_id = "nosuchwarehouse";
  Make(c, "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();  // through the right warehouse
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "warehouse", "failed");
  EXPECT_TRUE(absl::StrContains(s.detail, "nosuchwarehouse")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.fix, "databricks.warehouse_id")) << s.fix;
  // Unity Catalog needs no warehouse: the rest is still checked.
  Expect(r, "schema finance.freshbooks", "ok");
  Expect(r, "table freshbooks_events", "ok");
}

TEST_F(ConnectionCheckTest, AWarehouseThatHadToStartIsOkWithANote) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  world_.server().UnavailableNext(2, -1, FakeDatabricks::Scope::kExecute);
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  const CheckStepResult s = Expect(r, "warehouse", "ok");
  EXPECT_TRUE(absl::StrContains(s.detail, "2 retries")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.detail, "starting")) << s.detail;
}

TEST_F(ConnectionCheckTest, MissingSchemaPrivilegesNameTheGrant) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {"USE_CATALOG"});
  world_.server().SetGrants(kDatabricksClient, "schema", "finance.freshbooks",
                            {"USE_SCHEMA", "SELECT"});
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  Expect(r, "catalog finance", "ok");
  const CheckStepResult s = Expect(r, "schema finance.freshbooks", "failed");
  EXPECT_TRUE(absl::StrContains(s.detail, "CREATE_TABLE")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.detail, "MODIFY")) << s.detail;
  EXPECT_TRUE(absl::StrContains(
      s.fix, "GRANT CREATE TABLE, MODIFY ON SCHEMA `finance`.`freshbooks` TO `fake-client-id`"))
      << s.fix;
  Expect(r, "table freshbooks_events", "ok");
}

TEST_F(ConnectionCheckTest, MissingCatalogPrivilegeNamesTheGrant) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {});
  world_.server().SetGrants(kDatabricksClient, "schema", "finance.freshbooks", {"ALL_PRIVILEGES"});
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "catalog finance", "failed");
  EXPECT_TRUE(
      absl::StrContains(s.fix, "GRANT USE CATALOG ON CATALOG `finance` TO `fake-client-id`"))
      << s.fix;
  Expect(r, "schema finance.freshbooks", "ok");
}

TEST_F(ConnectionCheckTest, AnOwnerNeedsNoGrants) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {"USE_CATALOG"});
  world_.server().SetGrants(kDatabricksClient, "schema", "finance.freshbooks", {});
  world_.server().SetOwner("schema", "finance.freshbooks", kDatabricksClient);
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  Expect(r, "schema finance.freshbooks", "ok");
}

TEST_F(ConnectionCheckTest, MissingSchema) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  // Nothing provisioned: the schema does not exist. With CREATE SCHEMA on the
  // catalog (the default grants: ALL PRIVILEGES) the writer creates it.
  CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  Expect(r, "schema finance.freshbooks", "warning");
  Expect(r, "tables", "skipped");
  // Without, a human must.
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {"USE_CATALOG"});
  r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "schema finance.freshbooks", "failed");
  EXPECT_TRUE(absl::StrContains(s.fix, "CREATE SCHEMA IF NOT EXISTS `finance`.`freshbooks`"))
      << s.fix;
  EXPECT_TRUE(absl::StrContains(s.fix, "databricks.schema")) << s.fix;
}

TEST_F(ConnectionCheckTest, UnknownCatalog) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  world_.server().SetSecurableProvider(
      [](const std::string& type, const std::string&) { return type != "catalog"; });
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "catalog finance", "failed");
  EXPECT_TRUE(absl::StrContains(s.detail, "does not exist")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.fix, "databricks.catalog")) << s.fix;
}

TEST_F(ConnectionCheckTest, MissingTablesColumnsAndTypeConflicts) {
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks(/*entity_tables=*/false);
  mlc::testing::FakeSqlEngine& engine = world_.engine();
  // id is BIGINT in the spec.
  ASSERT_TRUE(engine
                  .CreateTableDirect("finance.freshbooks.freshbooks_invoices",
                                     {{"account_id", "STRING"}, {"id", "STRING"}})
                  .ok());
  // Right types, columns missing.
  ASSERT_TRUE(engine
                  .CreateTableDirect("finance.freshbooks.freshbooks_payments",
                                     {{"account_id", "STRING"}, {"id", "BIGINT"}})
                  .ok());
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  Expect(r, "table freshbooks_events", "ok");
  const CheckStepResult conflict = Expect(r, "table freshbooks_invoices", "failed");
  EXPECT_TRUE(
      absl::StrContains(conflict.detail, "column `id`: table has string, spec wants bigint"))
      << conflict.detail;
  EXPECT_TRUE(absl::StrContains(conflict.detail, "goes dead")) << conflict.detail;
  EXPECT_TRUE(absl::StrContains(conflict.fix, "RENAME COLUMN `id`")) << conflict.fix;
  const CheckStepResult columns = Expect(r, "table freshbooks_payments", "warning");
  EXPECT_TRUE(absl::StrContains(columns.detail, "invoiceid")) << columns.detail;
  EXPECT_TRUE(absl::StrContains(
      columns.fix, "ALTER TABLE `finance`.`freshbooks`.`freshbooks_payments` ADD COLUMNS"))
      << columns.fix;
  const CheckStepResult missing = Expect(r, "table freshbooks_bills", "warning");
  EXPECT_TRUE(absl::StrContains(missing.detail, "creates it")) << missing.detail;

  // Without CREATE TABLE a missing table cannot be created: failed.
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {"USE_CATALOG"});
  world_.server().SetGrants(kDatabricksClient, "schema", "finance.freshbooks",
                            {"USE_SCHEMA", "SELECT", "MODIFY"});
  const CheckReport r2 = Check();
  const CheckStepResult cannot = Expect(r2, "table freshbooks_bills", "failed");
  EXPECT_TRUE(absl::StrContains(cannot.fix, "GRANT CREATE TABLE ON SCHEMA")) << cannot.fix;
}

TEST_F(ConnectionCheckTest, WithoutOAuthOnlyTheEventsTableIsChecked) {
  Make(Conn(/*oauth=*/false), "databricks");
  ProvisionDatabricks(/*entity_tables=*/false);
  const CheckReport r = Check();
  EXPECT_TRUE(r.ok) << Describe(r);
  Expect(r, "oauth", "skipped");
  Expect(r, "table freshbooks_events", "ok");
  EXPECT_EQ(Step(r, "table freshbooks_invoices"), nullptr) << Describe(r);
}

TEST_F(ConnectionCheckTest, FreshBooksNotAuthorized) {
  ConnectionConfig c = Conn();
  c.freshbooks.verifiers.clear();
  Make(c, "sqlite");
  ProvisionSqlite();
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "authorization", "failed");
  EXPECT_TRUE(absl::StrContains(s.fix, "mlc authorize --connection acme")) << s.fix;
  for (const char* name : {"re-authorization", "access token (/users/me)", "business", "scopes"}) {
    Expect(r, name, "skipped");
  }
  const CheckStepResult keys = Expect(r, "signing keys", "warning");
  EXPECT_TRUE(absl::StrContains(keys.fix, "mlc register-webhooks --connection acme")) << keys.fix;
  EXPECT_EQ(fb_->Requests("ME"), 0);
}

TEST_F(ConnectionCheckTest, RevokedRefreshTokenIsReportedAsNeedingReauthorization) {
  Make(Conn(), "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionSqlite();
  fb_->RevokeRefreshTokens();
  fb_->ExpireAllAccessTokens();
  CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  Expect(r, "re-authorization", "ok");  // not yet known before the call
  const CheckStepResult s = Expect(r, "access token (/users/me)", "failed");
  EXPECT_TRUE(absl::StrContains(s.detail, "re-authorization")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.detail, "invalid_grant")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.fix, "mlc authorize --connection acme")) << s.fix;
  EXPECT_EQ(fb_->Requests("TOKEN refresh_token"), 1);
  EXPECT_TRUE(conns_->Client("acme")->NeedsReauthorization().has_value());

  // Now the flag itself is reported, and FreshBooks is not asked again.
  r = Check();
  const CheckStepResult flag = Expect(r, "re-authorization", "failed");
  EXPECT_TRUE(absl::StrContains(flag.fix, "mlc authorize --connection acme")) << flag.fix;
  Expect(r, "access token (/users/me)", "skipped");
  EXPECT_EQ(fb_->Requests("TOKEN refresh_token"), 1);
}

TEST_F(ConnectionCheckTest, MissingScopesAreNamed) {
  std::vector<std::string> scopes;
  for (const std::string& s : FakeFreshBooks::AllReadScopes()) {
    if (s != "user:bills:read" && s != "user:projects:read") scopes.push_back(s);
  }
  fb_->SetScopes(scopes);
  Make(Conn(), "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionSqlite();
  const CheckReport r = Check();
  EXPECT_FALSE(r.ok);
  const CheckStepResult s = Expect(r, "scopes", "failed");
  EXPECT_TRUE(absl::StrContains(s.detail, "user:bills:read (bill)")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.detail, "user:projects:read (project, service)")) << s.detail;
  EXPECT_FALSE(absl::StrContains(s.detail, "user:invoices:read")) << s.detail;
  EXPECT_TRUE(absl::StrContains(s.fix, "user:bills:read, user:projects:read")) << s.fix;
  EXPECT_TRUE(absl::StrContains(s.fix, "mlc authorize --connection acme")) << s.fix;
  Expect(r, "access token (/users/me)", "ok");
}

TEST_F(ConnectionCheckTest, AnotherBusinessIsReported) {
  ConnectionConfig c = Conn();
  Make(c, "sqlite");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionSqlite();
  c.freshbooks.account_id = "OtherAcct";  // config changed after authorization
  Make(c, "sqlite");
  const CheckReport r = Check();
  const CheckStepResult s = Expect(r, "business", "failed");
  EXPECT_TRUE(absl::StrContains(s.fix, "freshbooks.account_id")) << s.fix;
}

// The fake's Unity Catalog grants in Databricks' shapes (what the checker parses).
TEST_F(ConnectionCheckTest, FakeUnityCatalogAnswersLikeDatabricks) {
  Make(Conn(), "databricks");
  ProvisionDatabricks(/*entity_tables=*/false);
  FakeDatabricks& server = world_.server();
  server.SetGrants(kDatabricksClient, "catalog", "finance", {"USE_CATALOG", "CREATE_SCHEMA"});
  server.SetGrants(kDatabricksClient, "schema", "finance.freshbooks", {"USE_SCHEMA"});
  const auto get = [&](const std::string& path) {
    HttpRequest req;
    req.url = absl::StrCat(world_.url(), path);
    absl::StatusOr<std::string> token = tokens_->Token();
    EXPECT_TRUE(token.ok());
    req.headers.emplace("Authorization", absl::StrCat("Bearer ", token.value_or("")));
    absl::StatusOr<HttpResponse> res = http_.Send(req);
    EXPECT_TRUE(res.ok()) << res.status();
    return res.ok() ? *res : HttpResponse{};
  };
  HttpResponse res =
      get("/api/2.1/unity-catalog/effective-permissions/schema/finance.freshbooks?principal=" +
          std::string(kDatabricksClient));
  ASSERT_EQ(res.status, 200) << res.body;
  nlohmann::json doc = nlohmann::json::parse(res.body);
  ASSERT_EQ(doc["privilege_assignments"].size(), 1u) << res.body;
  const nlohmann::json& a = doc["privilege_assignments"][0];
  EXPECT_EQ(a["principal"], kDatabricksClient);
  std::set<std::string> seen;
  for (const nlohmann::json& p : a["privileges"]) {
    const std::string name = p["privilege"];
    seen.insert(name);
    if (name == "USE_SCHEMA") {
      EXPECT_FALSE(p.contains("inherited_from_name")) << p.dump();
    } else {
      EXPECT_EQ(p["inherited_from_type"], "CATALOG") << p.dump();
      EXPECT_EQ(p["inherited_from_name"], "finance") << p.dump();
    }
  }
  EXPECT_EQ(seen, (std::set<std::string>{"USE_SCHEMA", "USE_CATALOG", "CREATE_SCHEMA"}));
  // Another principal holds nothing.
  res = get("/api/2.1/unity-catalog/effective-permissions/catalog/finance?principal=someone");
  EXPECT_EQ(nlohmann::json::parse(res.body)["privilege_assignments"].size(), 0u) << res.body;
  // Unknown securables are 404 with Databricks' error codes.
  res = get("/api/2.1/unity-catalog/effective-permissions/schema/finance.nope?principal=x");
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(nlohmann::json::parse(res.body)["error_code"], "SCHEMA_DOES_NOT_EXIST");
  res = get("/api/2.1/unity-catalog/effective-permissions/table/finance.freshbooks.nope");
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(nlohmann::json::parse(res.body)["error_code"], "TABLE_DOES_NOT_EXIST");
  res =
      get("/api/2.1/unity-catalog/effective-permissions/table/"
          "finance.freshbooks.freshbooks_events?principal=" +
          std::string(kDatabricksClient));
  EXPECT_EQ(res.status, 200) << res.body;
  server.SetOwner("schema", "finance.freshbooks", "owner@example.com");
  res = get("/api/2.1/unity-catalog/schemas/finance.freshbooks");
  ASSERT_EQ(res.status, 200) << res.body;
  doc = nlohmann::json::parse(res.body);
  EXPECT_EQ(doc["owner"], "owner@example.com");
  EXPECT_EQ(doc["catalog_name"], "finance");
  EXPECT_EQ(doc["full_name"], "finance.freshbooks");
  res = get("/api/2.1/unity-catalog/catalogs/finance");
  EXPECT_EQ(nlohmann::json::parse(res.body)["owner"], FakeDatabricks::kDefaultOwner);
  // Without a token, like every API call.
  HttpRequest anonymous;
  anonymous.url = absl::StrCat(world_.url(), "/api/2.1/unity-catalog/catalogs/finance");
  absl::StatusOr<HttpResponse> denied = http_.Send(anonymous);
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
}

TEST_F(ConnectionCheckTest, UnknownConnectionIsNotFound) {
  Make(Conn(), "sqlite");
  absl::StatusOr<CheckReport> r = checker_->Check("nope");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
}

TEST_F(ConnectionCheckTest, EveryEntityHasAScopeFreshBooksKnows) {
  const std::vector<std::string> all = FakeFreshBooks::AllReadScopes();
  const std::set<std::string> known(all.begin(), all.end());
  for (const EntitySpec* e : AllEntities()) {
    const std::string& scope = e->read_scope;
    EXPECT_FALSE(scope.empty()) << e->name;
    EXPECT_EQ(known.count(scope), 1u) << e->name << ": " << scope;
  }
}

TEST_F(ConnectionCheckTest, NoSecretOrTokenInAnyReport) {
  // Good and bad states, every report kept in reports_.
  Make(Conn(), "databricks");
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  ProvisionDatabricks();
  Check();
  world_.server().SetGrants(kDatabricksClient, "schema", "finance.freshbooks", {});
  world_.server().SetGrants(kDatabricksClient, "catalog", "finance", {});
  Check();
  ConnectionConfig wrong = Conn();
  wrong.databricks->client_secret = "wr0ng-dbx-secret-value";
  Make(wrong, "databricks");
  Check();
  Make(Conn(), "sqlite");
  ProvisionSqlite();
  Check();
  const std::optional<std::string> access = *store_->GetSecret("freshbooks/acme/access_token");
  const std::optional<std::string> refresh = *store_->GetSecret("freshbooks/acme/refresh_token");
  ASSERT_TRUE(access.has_value());
  ASSERT_TRUE(refresh.has_value());
  fb_->RevokeRefreshTokens();
  fb_->ExpireAllAccessTokens();
  Check();
  Check();
  absl::StatusOr<std::string> dbx_token = tokens_->Token();
  ASSERT_TRUE(dbx_token.ok());

  std::vector<std::string> secrets = {fb_->options().client_secret,
                                      world_.server().options().client_secret,
                                      "wr0ng-dbx-secret-value",
                                      kVerifier,
                                      *access,
                                      *refresh,
                                      *dbx_token,
                                      "dapifake"};
  ASSERT_GE(reports_.size(), 6u);
  for (const CheckReport& r : reports_) {
    const std::string text = absl::StrCat(Describe(r), ToProto(r).DebugString());
    for (const std::string& secret : secrets) {
      ASSERT_FALSE(secret.empty());
      EXPECT_FALSE(absl::StrContains(text, secret)) << "secret " << secret << " in\n" << text;
    }
  }
}

}  // namespace
}  // namespace mlc::writer

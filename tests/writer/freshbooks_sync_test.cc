// Tests of the reconcile/backfill sync (writer/freshbooks_sync.h) against the
// fake FreshBooks (a real HTTP server), through a real FreshBooksClient holding
// real OAuth tokens in an encrypted CredentialStore, into a real SQLite
// lakehouse. Every check reads the lakehouse with its own sqlite3 connection, as
// a user would: rows in the entity tables, deleted flags, updated values.
#include "writer/freshbooks_sync.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_freshbooks.h"
#include "tests/fakes/freshbooks_samples.h"
#include "tests/support/test_util.h"
#include "writer/credential_store.h"
#include "writer/freshbooks_client.h"
#include "writer/freshbooks_entities.h"
#include "writer/sqlite_sink.h"

namespace mlc::writer {
namespace {

using ::mlc::testing::FakeFreshBooks;
using ::mlc::testing::SampleObject;
using ::testing::HasSubstr;

constexpr char kConn[] = "acme";

using Cells = ::mlc::testing::SqlRow;
using ::mlc::testing::QueryRows;

// One text value (first column of the first row), or "<none>".
std::string Scalar(const std::string& path, const std::string& sql) {
  std::vector<Cells> rows = QueryRows(path, sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0].has_value()) return "<none>";
  return *rows[0][0];
}

int64_t Count(const std::string& path, const std::string& table, const std::string& where = "") {
  std::string sql = absl::StrCat("SELECT COUNT(*) FROM ", table);
  if (!where.empty()) absl::StrAppend(&sql, " WHERE ", where);
  return std::stoll(Scalar(path, sql));
}

const EntitySyncResult* Find(const SyncReport& report, const std::string& entity) {
  for (const EntitySyncResult& r : report.entities) {
    if (r.entity == entity) return &r;
  }
  return nullptr;
}

// A sink that forwards to another and can be told to fail writes to one table,
// or to run a hook before each write (to inject FreshBooks faults mid-paging).
class ProbeSink final : public Sink {
 public:
  explicit ProbeSink(Sink* inner) : inner_(inner) {}
  std::string Name() const override { return "probe"; }
  absl::Status Start() override { return inner_->Start(); }
  absl::Status EnsureTable(const TableSpec& table) override { return inner_->EnsureTable(table); }
  absl::Status Upsert(const TableSpec& table, const std::vector<Row>& rows) override {
    std::function<void(const std::string&)> hook;
    {
      absl::MutexLock lock(&mu_);
      if (table.name == fail_table_) {
        return absl::UnavailableError(absl::StrCat("injected failure writing ", table.name));
      }
      hook = before_write_;
    }
    if (hook) hook(table.name);
    return inner_->Upsert(table, rows);
  }
  void FailTable(const std::string& table) {
    absl::MutexLock lock(&mu_);
    fail_table_ = table;
  }
  void BeforeWrite(std::function<void(const std::string&)> hook) {
    absl::MutexLock lock(&mu_);
    before_write_ = std::move(hook);
  }

 private:
  Sink* inner_;
  absl::Mutex mu_;
  std::string fail_table_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> before_write_ ABSL_GUARDED_BY(mu_);
};

class FreshBooksSyncTest : public ::testing::Test {
 protected:
  void SetUp() override { Init(FakeFreshBooks::AllReadScopes()); }

  void Init(std::vector<std::string> scopes) {
    FakeFreshBooks::Options fo;
    fo.clock = &clock_;
    fo.scopes = std::move(scopes);
    fake_ = std::make_unique<FakeFreshBooks>(fo);
    ASSERT_TRUE(fake_->Start().ok());

    absl::StatusOr<std::unique_ptr<CredentialStore>> store =
        CredentialStore::Open(dir_.File("credentials.db"), std::string(32, 'k'));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    ASSERT_TRUE(
        store_->PutSecret(absl::StrCat("freshbooks/", kConn, "/client_secret"), fo.client_secret)
            .ok());

    FreshBooksClientOptions co;
    co.connection_id = kConn;
    co.api_url = fake_->url();
    co.client_id = fo.client_id;
    co.redirect_uri = fo.redirect_uri;
    co.requests_per_second = 10000;
    co.burst = 10000;
    co.timeout = absl::Seconds(10);
    co.sleep = [this](absl::Duration d) {
      absl::MutexLock lock(&sleeps_mu_);
      sleeps_.push_back(d);
    };
    client_ = std::make_unique<FreshBooksClient>(co, &http_, store_.get(), &clock_);
    absl::StatusOr<std::string> scope = client_->ExchangeCode(fake_->IssueAuthorizationCode());
    ASSERT_TRUE(scope.ok()) << scope.status();

    sink_ = std::make_unique<SqliteSink>(lake_);
    ASSERT_TRUE(sink_->Start().ok());
    probe_ = std::make_unique<ProbeSink>(sink_.get());
    registry_ = std::make_unique<Registry>();
    syncer_ = std::make_unique<Syncer>(store_.get(), &clock_, registry_.get());

    target_.client = client_.get();
    target_.identity.account_id = fo.account_id;
    target_.identity.business_id = absl::StrCat(fo.business_id);
    target_.identity.business_uuid = fo.business_uuid;
    target_.identity.business_name = fo.business_name;
    target_.sink = probe_.get();
  }

  // Creates invoices until the fake holds `total`.
  void CreateInvoices(int total) {
    std::mt19937_64 rng(7);
    for (int64_t id = static_cast<int64_t>(fake_->Count("invoice")) + 1; id <= total; ++id) {
      fake_->Create("invoice", SampleObject("invoice", id, clock_.Now(), rng), /*notify=*/false);
    }
  }

  std::optional<std::string> Watermark(const std::string& entity) {
    absl::StatusOr<std::optional<std::string>> v =
        store_->GetState(absl::StrCat("sync/", kConn, "/", entity, "/watermark"));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }

  SyncReport RunSync(const SyncOptions& options = {}) {
    absl::StatusOr<SyncReport> report = syncer_->Run(kConn, target_, options);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : SyncReport{};
  }

  static std::string Day(absl::Time t) {
    return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
  }

  mlc::testing::TempDir dir_;
  const std::string lake_ = dir_.File("lakehouse.db");
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};  // 2026-01-01T00:00:00Z
  std::unique_ptr<FakeFreshBooks> fake_;
  HttplibClient http_;
  std::unique_ptr<CredentialStore> store_;
  std::unique_ptr<FreshBooksClient> client_;
  std::unique_ptr<SqliteSink> sink_;
  std::unique_ptr<ProbeSink> probe_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Syncer> syncer_;
  SyncTarget target_;
  absl::Mutex sleeps_mu_;
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(sleeps_mu_);
};

TEST_F(FreshBooksSyncTest, BackfillWritesEveryEntityAndAllPages) {
  ASSERT_GT(fake_->Seed(4), 0);
  CreateInvoices(250);
  size_t lines = 0;
  for (const nlohmann::json& invoice : fake_->All("invoice")) {
    auto it = invoice.find("lines");
    if (it != invoice.end() && it->is_array()) lines += it->size();
  }
  ASSERT_GT(lines, 0U);

  SyncReport report = RunSync();
  ASSERT_EQ(report.entities.size(), AllEntities().size());
  for (const EntitySyncResult& r : report.entities) {
    EXPECT_TRUE(r.status.ok()) << r.entity << ": " << r.status;
    EXPECT_EQ(r.skipped, 0) << r.entity;
    EXPECT_EQ(r.updated_min, "") << r.entity;
  }
  const EntitySyncResult* inv = Find(report, "invoice");
  ASSERT_NE(inv, nullptr);
  EXPECT_EQ(inv->objects, 250);
  EXPECT_EQ(inv->deleted, 0);
  EXPECT_EQ(inv->pages, 4);  // 3 pages of 100, then the (empty) deleted-objects pass
  EXPECT_EQ(fake_->Requests("LIST invoice"), 4);

  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 250);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices", "_source = 'sync' AND is_deleted = 0"), 250);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices", "account_id = '6BApk'"), 250);
  EXPECT_EQ(Count(lake_, "freshbooks_invoice_lines"), static_cast<int64_t>(lines));
  for (const EntitySpec* e : AllEntities()) {
    EXPECT_EQ(Count(lake_, e->table), static_cast<int64_t>(fake_->Count(e->name))) << e->name;
    EXPECT_EQ(Find(report, e->name)->objects, static_cast<int64_t>(fake_->Count(e->name)))
        << e->name;
    EXPECT_EQ(Watermark(e->name), Day(clock_.Now())) << e->name;
  }
  EXPECT_EQ(syncer_->LastSuccess(kConn), absl::ToUnixSeconds(clock_.Now()));
  const std::string metrics = registry_->Render();
  EXPECT_THAT(metrics,
              HasSubstr("mlc_sync_objects_total{connection=\"acme\",entity=\"invoice\"} 250"));
  EXPECT_THAT(metrics, HasSubstr("mlc_sync_runs_total{connection=\"acme\",outcome=\"ok\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mlc_sync_running{connection=\"acme\"} 0"));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat(
                           "mlc_sync_last_success_timestamp_seconds{connection=\"acme\"} ",
                           absl::ToUnixSeconds(clock_.Now()))));
}

TEST_F(FreshBooksSyncTest, SecondRunReadsSinceWatermarkAndPicksUpChangesAndDeletes) {
  ASSERT_GT(fake_->Seed(3), 0);
  CreateInvoices(120);
  clock_.Advance(absl::Hours(24 * 10));  // the seed is old by now
  const absl::Time first = clock_.Now();
  SyncReport r1 = RunSync();
  ASSERT_TRUE(Find(r1, "invoice")->status.ok()) << Find(r1, "invoice")->status;
  EXPECT_EQ(Find(r1, "invoice")->objects, 120);

  clock_.Advance(absl::Hours(24 * 2));
  ASSERT_TRUE(fake_->Update(
      "invoice", 7, [](nlohmann::json& o) { o["notes"] = "changed after the backfill"; },
      /*notify=*/false));
  ASSERT_TRUE(fake_->SoftDelete("invoice", 9, /*notify=*/false));
  ASSERT_TRUE(fake_->SoftDelete("client", 2, /*notify=*/false));
  const int lists_before = fake_->Requests("LIST invoice");

  SyncReport r2 = RunSync();
  const EntitySyncResult* inv = Find(r2, "invoice");
  ASSERT_NE(inv, nullptr);
  ASSERT_TRUE(inv->status.ok()) << inv->status;
  EXPECT_EQ(inv->updated_min, Day(first - absl::Hours(24)));
  // Only what changed since the watermark (minus a day) is listed: the edited
  // invoice, and the deleted one in the vis_state pass.
  EXPECT_EQ(inv->objects, 2);
  EXPECT_EQ(inv->deleted, 1);
  EXPECT_EQ(inv->pages, 2);
  EXPECT_EQ(fake_->Requests("LIST invoice") - lists_before, 2);
  EXPECT_EQ(Find(r2, "client")->deleted, 1);

  EXPECT_THAT(Scalar(lake_, "SELECT raw FROM freshbooks_invoices WHERE id = 7"),
              HasSubstr("changed after the backfill"));
  EXPECT_EQ(Scalar(lake_, "SELECT is_deleted FROM freshbooks_invoices WHERE id = 9"), "1");
  EXPECT_EQ(Scalar(lake_, "SELECT vis_state FROM freshbooks_invoices WHERE id = 9"), "1");
  EXPECT_EQ(Scalar(lake_, "SELECT is_deleted FROM freshbooks_invoices WHERE id = 8"), "0");
  EXPECT_EQ(Scalar(lake_, "SELECT is_deleted FROM freshbooks_clients WHERE id = 2"), "1");
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 120);
  EXPECT_EQ(Watermark("invoice"), Day(clock_.Now()));

  // full ignores the watermark.
  SyncOptions full;
  full.full = true;
  full.entities = {"invoice"};
  SyncReport r3 = RunSync(full);
  ASSERT_EQ(r3.entities.size(), 1U);
  EXPECT_EQ(r3.entities[0].updated_min, "");
  EXPECT_EQ(r3.entities[0].objects, 120);  // 119 listed + 1 in the deleted pass
  EXPECT_EQ(r3.entities[0].deleted, 1);
}

TEST_F(FreshBooksSyncTest, ThrottlingAndServerErrorsDuringPagingAreRetried) {
  CreateInvoices(250);
  // After the first page is written, FreshBooks throttles and then fails twice.
  std::atomic<bool> injected{false};
  probe_->BeforeWrite([&](const std::string& table) {
    if (table == "freshbooks_invoices" && !injected.exchange(true)) {
      fake_->Throttle(1, /*retry_after_seconds=*/2);
      fake_->FailNext5xx(2, 503);
    }
  });
  SyncOptions options;
  options.entities = {"invoice"};
  SyncReport report = RunSync(options);
  ASSERT_EQ(report.entities.size(), 1U);
  EXPECT_TRUE(report.entities[0].status.ok()) << report.entities[0].status;
  EXPECT_EQ(report.entities[0].objects, 250);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 250);
  EXPECT_TRUE(injected.load());
  EXPECT_EQ(fake_->RequestsWithStatus(429), 1);
  EXPECT_EQ(fake_->RequestsWithStatus(503), 2);
  {
    absl::MutexLock lock(&sleeps_mu_);
    EXPECT_GE(sleeps_.size(), 3U);  // the client backed off before each retry
  }
  EXPECT_EQ(Watermark("invoice"), Day(clock_.Now()));
  // Only some entities ran: not a full run, so no last success.
  EXPECT_EQ(syncer_->LastSuccess(kConn), 0);
}

TEST_F(FreshBooksSyncTest, SinkFailureKeepsWatermarkAndOtherEntitiesSync) {
  ASSERT_GT(fake_->Seed(3), 0);
  probe_->FailTable("freshbooks_payments");
  SyncReport report = RunSync();
  const EntitySyncResult* payments = Find(report, "payment");
  ASSERT_NE(payments, nullptr);
  EXPECT_EQ(payments->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(payments->status.message(), HasSubstr("freshbooks_payments"));
  EXPECT_THAT(payments->status.message(), HasSubstr("payment"));
  EXPECT_EQ(Watermark("payment"), std::nullopt);
  for (const EntitySyncResult& r : report.entities) {
    if (r.entity != "payment") {
      EXPECT_TRUE(r.status.ok()) << r.entity << ": " << r.status;
    }
  }
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), static_cast<int64_t>(fake_->Count("invoice")));
  EXPECT_EQ(Watermark("invoice"), Day(clock_.Now()));
  EXPECT_EQ(syncer_->LastSuccess(kConn), 0);
  EXPECT_THAT(registry_->Render(),
              HasSubstr("mlc_sync_runs_total{connection=\"acme\",outcome=\"partial\"} 1"));

  // Fixed: the next run reads payments in full again (no watermark) and succeeds.
  probe_->FailTable("");
  clock_.Advance(absl::Hours(24));
  SyncReport again = RunSync();
  payments = Find(again, "payment");
  ASSERT_TRUE(payments->status.ok()) << payments->status;
  EXPECT_EQ(payments->updated_min, "");
  EXPECT_EQ(payments->objects, static_cast<int64_t>(fake_->Count("payment")));
  EXPECT_EQ(Count(lake_, "freshbooks_payments"), static_cast<int64_t>(fake_->Count("payment")));
  EXPECT_EQ(Find(again, "invoice")->updated_min, Day(clock_.Now() - absl::Hours(48)));
  EXPECT_EQ(syncer_->LastSuccess(kConn), absl::ToUnixSeconds(clock_.Now()));
}

// The app was granted every read scope but bills'.
class FreshBooksSyncWithoutBillsScopeTest : public FreshBooksSyncTest {
 protected:
  void SetUp() override {
    std::vector<std::string> scopes;
    for (const std::string& s : FakeFreshBooks::AllReadScopes()) {
      if (s != "user:bills:read") scopes.push_back(s);
    }
    Init(scopes);
  }
};

TEST_F(FreshBooksSyncWithoutBillsScopeTest, MissingScopeFailsOnlyThatEntity) {
  ASSERT_GT(fake_->Seed(2), 0);
  SyncReport report = RunSync();
  const EntitySyncResult* bills = Find(report, "bill");
  ASSERT_NE(bills, nullptr);
  EXPECT_EQ(bills->status.code(), absl::StatusCode::kPermissionDenied) << bills->status;
  EXPECT_THAT(bills->status.message(), HasSubstr("user:bills:read"));
  EXPECT_EQ(Watermark("bill"), std::nullopt);
  EXPECT_EQ(Count(lake_, "freshbooks_payments"), static_cast<int64_t>(fake_->Count("payment")));
  EXPECT_TRUE(Find(report, "payment")->status.ok());
  EXPECT_EQ(Watermark("payment"), Day(clock_.Now()));
}

TEST_F(FreshBooksSyncTest, UnmappableObjectIsSkippedAndTheRestIsWritten) {
  CreateInvoices(30);
  std::mt19937_64 rng(3);
  nlohmann::json bad = SampleObject("invoice", 31, clock_.Now(), rng);
  bad["amount"] = nlohmann::json{{"amount", "12,50"}, {"code", "USD"}};
  fake_->Create("invoice", bad, /*notify=*/false);
  SyncOptions options;
  options.entities = {"invoice"};
  SyncReport report = RunSync(options);
  ASSERT_EQ(report.entities.size(), 1U);
  EXPECT_TRUE(report.entities[0].status.ok()) << report.entities[0].status;
  EXPECT_EQ(report.entities[0].skipped, 1);
  EXPECT_EQ(report.entities[0].objects, 30);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 30);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices", "id = 31"), 0);
}

TEST_F(FreshBooksSyncTest, IdentityWithoutBusinessSkipsBusinessEntities) {
  ASSERT_GT(fake_->Seed(2), 0);
  target_.identity.business_id.clear();
  target_.identity.business_uuid.clear();
  SyncReport report = RunSync();
  for (const EntitySpec* e : AllEntities()) {
    const EntitySyncResult* r = Find(report, e->name);
    ASSERT_NE(r, nullptr) << e->name;
    if (e->scope == EntityScope::kAccount) {
      EXPECT_TRUE(r->status.ok()) << e->name << ": " << r->status;
    } else {
      EXPECT_EQ(r->status.code(), absl::StatusCode::kFailedPrecondition) << e->name;
      EXPECT_THAT(r->status.message(), HasSubstr("business"));
      EXPECT_EQ(Watermark(e->name), std::nullopt);
    }
  }
  EXPECT_EQ(fake_->Requests("LIST project"), 0);
}

TEST_F(FreshBooksSyncTest, UnknownEntityIsInvalidArgument) {
  SyncOptions options;
  options.entities = {"invoice", "nonsense"};
  absl::StatusOr<SyncReport> report = syncer_->Run(kConn, target_, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(report.status().message(), HasSubstr("nonsense"));
  EXPECT_EQ(fake_->Requests("LIST invoice"), 0);
}

TEST_F(FreshBooksSyncTest, ExpiredTokenIsRefreshedDuringTheRun) {
  CreateInvoices(150);
  fake_->ExpireAllAccessTokens();
  SyncOptions options;
  options.entities = {"invoice"};
  SyncReport report = RunSync(options);
  ASSERT_EQ(report.entities.size(), 1U);
  EXPECT_TRUE(report.entities[0].status.ok()) << report.entities[0].status;
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 150);
  EXPECT_EQ(fake_->TokenRefreshes(), 1);
}

// --- SyncScheduler ---------------------------------------------------------

TEST_F(FreshBooksSyncTest, SchedulerRunsAtStartAndAgainAfterTheInterval) {
  CreateInvoices(5);
  std::atomic<int> asked{0};
  SyncScheduler scheduler(
      syncer_.get(), {{kConn, absl::Hours(1)}},
      [&](const std::string& id) -> std::optional<SyncTarget> {
        EXPECT_EQ(id, kConn);
        ++asked;
        return target_;
      },
      absl::ZeroDuration());
  scheduler.Start();
  ASSERT_TRUE(mlc::testing::WaitFor([&] { return syncer_->LastSuccess(kConn) > 0; }));
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 5);

  // Not due yet: a nudge does not start another run.
  scheduler.Nudge();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(asked.load(), 1);

  CreateInvoices(8);
  clock_.Advance(absl::Minutes(61));
  scheduler.Nudge();
  ASSERT_TRUE(mlc::testing::WaitFor([&] { return asked.load() == 2; }));
  ASSERT_TRUE(mlc::testing::WaitFor(
      [&] { return absl::FromUnixSeconds(syncer_->LastSuccess(kConn)) == clock_.Now(); }));
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 8);
  scheduler.Stop();
}

TEST_F(FreshBooksSyncTest, SchedulerWaitsForAConnectionToBecomeReady) {
  CreateInvoices(3);
  std::atomic<bool> ready{false};
  std::atomic<int> asked{0};
  SyncScheduler scheduler(
      syncer_.get(), {{kConn, absl::Hours(6)}},
      [&](const std::string&) -> std::optional<SyncTarget> {
        ++asked;
        if (!ready.load()) return std::nullopt;
        return target_;
      },
      absl::ZeroDuration());
  scheduler.Start();
  ASSERT_TRUE(mlc::testing::WaitFor([&] { return asked.load() >= 1; }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(asked.load(), 1);  // not asked again before the recheck or a nudge
  EXPECT_EQ(syncer_->LastSuccess(kConn), 0);

  ready = true;
  scheduler.Nudge();
  ASSERT_TRUE(mlc::testing::WaitFor([&] { return syncer_->LastSuccess(kConn) > 0; },
                                    std::chrono::seconds(5)));
  EXPECT_EQ(Count(lake_, "freshbooks_invoices"), 3);
}

TEST_F(FreshBooksSyncTest, SchedulerRespectsAPersistedLastSuccess) {
  CreateInvoices(3);
  ASSERT_FALSE(RunSync().entities.empty());
  ASSERT_GT(syncer_->LastSuccess(kConn), 0);
  std::atomic<int> asked{0};
  {
    // As after a restart: synced a minute ago, interval 1 h - nothing to do yet.
    clock_.Advance(absl::Minutes(1));
    SyncScheduler scheduler(
        syncer_.get(), {{kConn, absl::Hours(1)}},
        [&](const std::string&) -> std::optional<SyncTarget> {
          ++asked;
          return target_;
        },
        absl::ZeroDuration());
    scheduler.Start();
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_EQ(asked.load(), 0);
    clock_.Advance(absl::Hours(1));
    scheduler.Nudge();
    ASSERT_TRUE(mlc::testing::WaitFor([&] { return asked.load() == 1; }));
  }
}

TEST_F(FreshBooksSyncTest, StopIsPromptEvenDuringARun) {
  ASSERT_GT(fake_->Seed(3), 0);
  fake_->SetLatency(absl::Milliseconds(100));
  std::atomic<int> asked{0};
  auto scheduler = std::make_unique<SyncScheduler>(
      syncer_.get(), std::vector<SyncScheduler::Entry>{{kConn, absl::Hours(1)}},
      [&](const std::string&) -> std::optional<SyncTarget> {
        ++asked;
        return target_;
      },
      absl::ZeroDuration());
  scheduler->Start();
  ASSERT_TRUE(mlc::testing::WaitFor([&] { return fake_->Requests("LIST invoice") > 0; }));
  const absl::Time before = absl::Now();
  scheduler->Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(2));
  // Cancelled midway: not a success, and the unfinished entities kept no watermark.
  EXPECT_EQ(syncer_->LastSuccess(kConn), 0);
  EXPECT_EQ(Watermark("time_entry"), std::nullopt);
  scheduler.reset();

  // An idle scheduler (waiting hours for the next run) stops at once too.
  SyncScheduler idle(
      syncer_.get(), {{kConn, absl::Hours(6)}},
      [&](const std::string&) -> std::optional<SyncTarget> { return std::nullopt; },
      absl::Hours(1));
  idle.Start();
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time t0 = absl::Now();
  idle.Stop();
  EXPECT_LT(absl::Now() - t0, absl::Milliseconds(500));
}

}  // namespace
}  // namespace mlc::writer

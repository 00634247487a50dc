// FreshBooksHydrator against the fake FreshBooks: one fetch per object however
// many events name it, tombstones for deleted objects, waiting while a
// connection is not authorized, and connections without OAuth left alone.
#include "writer/freshbooks_hydrator.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/fakes/fake_freshbooks.h"
#include "tests/fakes/freshbooks_samples.h"
#include "tests/support/freshbooks_oauth_test.h"
#include "tests/support/test_util.h"

namespace mlc::writer {
namespace {

using mlc::testing::FakeFreshBooks;
using mlc::testing::SampleObject;

class FreshBooksHydratorTest : public testing::FreshBooksOAuthTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartFreshBooks());
    ConnectionConfig c = OAuthConnection();
    ConnectionConfig plain;
    plain.id = "static";
    plain.freshbooks.verifiers = {"k"};
    configs_ = {c, plain};
    keys_ = std::make_unique<SigningKeys>(configs_);
    conns_ = std::make_unique<FreshBooksConnections>(configs_, &http_, store_.get(), keys_.get(),
                                                     RealClock::Get(), &registry_);
    ASSERT_TRUE(conns_->Start().ok());
    hydrator_ = std::make_unique<FreshBooksHydrator>(conns_.get(), RealClock::Get(), 4);
  }

  Delivery Event(const std::string& name, int64_t object_id, const std::string& connection = "acme",
                 const std::string& account = "6BApk") {
    Delivery d;
    d.delivery_id = absl::StrCat("d", ++n_);
    d.connection_id = connection;
    d.kind = "event";
    d.event_type = name;
    d.object_type = name.substr(0, name.find('.'));
    d.object_id = std::to_string(object_id);
    d.account_id = account;
    return d;
  }

  int64_t Create(const std::string& entity) {
    nlohmann::json sample = SampleObject(entity, 0, absl::Now(), rng_);
    sample.erase("id");  // the fake assigns one
    nlohmann::json o = fb_->Create(entity, std::move(sample), false);
    const nlohmann::json& id = o.at("id");
    return id.is_string() ? std::stoll(id.get<std::string>()) : id.get<int64_t>();
  }

  int n_ = 0;
  std::mt19937_64 rng_{42};
  Registry registry_;
  std::vector<ConnectionConfig> configs_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<FreshBooksConnections> conns_;
  std::unique_ptr<FreshBooksHydrator> hydrator_;
};

TEST_F(FreshBooksHydratorTest, SeveralEventsForOneObjectCostOneFetch) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const int64_t invoice = Create("invoice");
  const int64_t client = Create("client");
  std::vector<Delivery> batch = {Event("invoice.create", invoice), Event("invoice.update", invoice),
                                 Event("client.update", client),
                                 Event("invoice.sendByEmail", invoice)};
  std::vector<Hydrated> h = hydrator_->Hydrate(batch);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(fb_->Requests("GET invoice"), 1);
  EXPECT_EQ(fb_->Requests("GET client"), 1);
  size_t invoice_rows = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    ASSERT_TRUE(h[i].status.ok()) << h[i].status;
    ASSERT_TRUE(h[i].data.has_value());
    EXPECT_EQ(h[i].attempt.stage, "hydrate");
    EXPECT_EQ(h[i].attempt.http_status, 200);
    if (batch[i].object_type == "invoice") invoice_rows += h[i].rows.size();
  }
  // Rows go with one event of the group only: the invoice and its lines once.
  const nlohmann::json stored = *fb_->Get("invoice", invoice);
  EXPECT_EQ(invoice_rows, 1 + stored["lines"].size());
  EXPECT_EQ(nlohmann::json::parse(*h[0].data)["id"], stored["id"]);
}

TEST_F(FreshBooksHydratorTest, AHardDeletedObjectBecomesATombstone) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const int64_t invoice = Create("invoice");
  ASSERT_TRUE(fb_->HardDelete("invoice", invoice, false));
  std::vector<Hydrated> h = hydrator_->Hydrate({Event("invoice.delete", invoice)});
  ASSERT_TRUE(h[0].status.ok()) << h[0].status;
  EXPECT_FALSE(h[0].data.has_value());
  EXPECT_EQ(h[0].attempt.http_status, 404);
  ASSERT_EQ(h[0].rows.size(), 1u);
  const TableSpec& t = *h[0].rows[0].table;
  EXPECT_EQ(t.name, "freshbooks_invoices");
  EXPECT_EQ(h[0].rows[0].row[t.ColumnIndex("is_deleted")], std::optional<std::string>("true"));

  // The classic "not found" that comes with HTTP 200 is a tombstone too.
  std::vector<Hydrated> c = hydrator_->Hydrate({Event("client.delete", 999999)});
  ASSERT_TRUE(c[0].status.ok()) << c[0].status;
  ASSERT_EQ(c[0].rows.size(), 1u);
}

TEST_F(FreshBooksHydratorTest, ASoftDeletedObjectIsFetchedAndMarkedDeleted) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const int64_t expense = Create("expense");
  ASSERT_TRUE(fb_->SoftDelete("expense", expense, false));
  std::vector<Hydrated> h = hydrator_->Hydrate({Event("expense.delete", expense)});
  ASSERT_TRUE(h[0].status.ok()) << h[0].status;
  ASSERT_FALSE(h[0].rows.empty());
  const TableSpec& t = *h[0].rows[0].table;
  EXPECT_EQ(h[0].rows[0].row[t.ColumnIndex("is_deleted")], std::optional<std::string>("true"));
}

TEST_F(FreshBooksHydratorTest, EventsWaitUntilTheConnectionIsAuthorized) {
  std::vector<Hydrated> h = hydrator_->Hydrate({Event("invoice.create", 1)});
  EXPECT_EQ(h[0].status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(h[0].status.message(), "mlc authorize --connection acme"));
  EXPECT_EQ(fb_->AllRequests().size(), 0u);
}

TEST_F(FreshBooksHydratorTest, ConnectionsWithoutOAuthAndUnknownObjectsAreNotFetched) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  std::vector<Hydrated> h =
      hydrator_->Hydrate({Event("invoice.create", 1, "static"), Event("recurring.create", 5)});
  for (const Hydrated& x : h) {
    EXPECT_TRUE(x.status.ok()) << x.status;
    EXPECT_FALSE(x.data.has_value());
    EXPECT_TRUE(x.rows.empty());
    EXPECT_TRUE(x.attempt.stage.empty());
  }
}

TEST_F(FreshBooksHydratorTest, AnEventForAnotherAccountIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  std::vector<Hydrated> h = hydrator_->Hydrate({Event("invoice.create", 1, "acme", "OTHER")});
  EXPECT_EQ(h[0].status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FreshBooksHydratorTest, ThrottlingIsRetriedWithinTheFetch) {
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  const int64_t payment = Create("payment");
  fb_->Throttle(2, 0);
  std::vector<Hydrated> h = hydrator_->Hydrate({Event("payment.create", payment)});
  ASSERT_TRUE(h[0].status.ok()) << h[0].status;
  EXPECT_EQ(fb_->RequestsWithStatus(429), 2);
}

}  // namespace
}  // namespace mlc::writer

// The Admin service's delivery RPCs over real gRPC (an in-process server on a
// loopback port) and a real Journal in a temp dir: the admin token on every new
// method, ListDeliveries' filters and paging, GetDelivery's payload and audit
// trail, Replay (dry run vs real; the pipeline is told), GetStats, and
// INVALID_ARGUMENT answers that name the field and the fix.
#include "writer/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/grpc_util.h"
#include "gmock/gmock.h"
#include "mlconnector/v1/admin.grpc.pb.h"
#include "tests/support/test_util.h"
#include "writer/journal.h"
#include "writer/journal_retention.h"

namespace mlc::writer {
namespace {

namespace pb = ::mlconnector::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kToken[] = "admin-test-token-0123456789";

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  out.set_nanos(
      static_cast<int32_t>((t - absl::FromUnixSeconds(out.seconds())) / absl::Nanoseconds(1)));
  return out;
}

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto j = Journal::Open(dir_.File("journal.db"), &clock_);
    ASSERT_TRUE(j.ok()) << j.status();
    journal_ = std::move(*j);
    retention_ = std::make_unique<JournalRetention>(journal_.get(), &clock_, 30);
    AdminJournal deps;
    deps.journal = journal_.get();
    deps.on_replay = [this](int n) {
      absl::MutexLock lock(&mu_);
      notified_.push_back(n);
    };
    deps.retention = retention_.get();
    service_ = std::make_unique<AdminService>(kToken, nullptr, nullptr, nullptr,
                                              SyncScheduler::TargetFor(), std::move(deps));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = pb::Admin::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Appends a delivery and drives it to `status` through the journal.
  void Add(const std::string& id, const std::string& connection, const std::string& event,
           DeliveryStatus status, absl::Time received, const std::string& error = "") {
    Delivery d;
    d.delivery_id = id;
    d.connection_id = connection;
    d.kind = status == DeliveryStatus::kHandshake ? "handshake" : "event";
    d.event_type = event;
    d.object_type = event.substr(0, event.find('.'));
    d.object_id = absl::StrCat("obj-", id);
    d.account_id = "6BApk";
    d.received_at = received;
    d.payload = absl::StrCat(R"([["name",")", event, R"("],["object_id","obj-)", id, R"("]])");
    d.status = status == DeliveryStatus::kHandshake ? status : DeliveryStatus::kPending;
    d.available_at = absl::InfinitePast();
    ASSERT_TRUE(journal_->AppendSync(d).ok());
    if (status == DeliveryStatus::kWritten) {
      Attempt a;
      a.delivery_id = id;
      a.stage = "write";
      a.outcome = "ok";
      a.duration = absl::Microseconds(12500);
      a.at = clock_.Now();
      ASSERT_TRUE(journal_->MarkWrittenSync({id}, {a}).ok());
    } else if (status == DeliveryStatus::kDead) {
      Attempt a;
      a.delivery_id = id;
      a.stage = "write";
      a.outcome = "dead";
      a.http_status = 400;
      a.error = error;
      a.duration = absl::Milliseconds(3);
      a.at = clock_.Now();
      ASSERT_TRUE(journal_->MarkDeadSync({id}, error, {a}).ok());
    }
  }

  void AddWorld() {
    const absl::Time t0 = clock_.Now();
    Add("w1", "acme", "invoice.create", DeliveryStatus::kWritten, t0 - absl::Hours(3));
    Add("x1", "acme", "invoice.update", DeliveryStatus::kDead, t0 - absl::Hours(2),
        "column amount: type conflict");
    Add("x2", "acme", "payment.create", DeliveryStatus::kDead, t0 - absl::Minutes(90),
        "column amount: type conflict");
    Add("p1", "acme", "invoice.create", DeliveryStatus::kPending, t0 - absl::Minutes(30));
    Add("h1", "acme", "callback.verify", DeliveryStatus::kHandshake, t0 - absl::Minutes(20));
    Add("b1", "beta", "invoice.create", DeliveryStatus::kDead, t0 - absl::Minutes(10),
        "permission denied");
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = kToken) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) AddBearerToken(ctx.get(), token);
    return ctx;
  }

  std::vector<int> notified() {
    absl::MutexLock lock(&mu_);
    return notified_;
  }

  DeliveryStatus StatusOf(const std::string& id) {
    auto d = journal_->Get(id);
    EXPECT_TRUE(d.ok() && d->has_value()) << id;
    return d.ok() && d->has_value() ? (*d)->status : DeliveryStatus::kPending;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JournalRetention> retention_;
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::Admin::Stub> stub_;
  absl::Mutex mu_;
  std::vector<int> notified_ ABSL_GUARDED_BY(mu_);
};

TEST_F(AdminServiceTest, EveryDeliveryMethodNeedsTheAdminToken) {
  AddWorld();
  for (const std::string token : {"", "wrong-token-0123456789", "admin-test-token-012345678"}) {
    SCOPED_TRACE(token.empty() ? "<none>" : token);
    {
      pb::ListDeliveriesResponse r;
      EXPECT_EQ(stub_->ListDeliveries(Ctx(token).get(), {}, &r).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
      EXPECT_THAT(r.deliveries(), IsEmpty());
    }
    {
      pb::GetDeliveryRequest req;
      req.set_delivery_id("x1");
      pb::GetDeliveryResponse r;
      EXPECT_EQ(stub_->GetDelivery(Ctx(token).get(), req, &r).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
      EXPECT_FALSE(r.has_delivery());
    }
    {
      pb::ReplayRequest req;
      req.add_delivery_ids("x1");
      pb::ReplayResponse r;
      EXPECT_EQ(stub_->Replay(Ctx(token).get(), req, &r).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      pb::GetStatsResponse r;
      EXPECT_EQ(stub_->GetStats(Ctx(token).get(), {}, &r).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
      EXPECT_THAT(r.connections(), IsEmpty());
    }
  }
  EXPECT_EQ(StatusOf("x1"), DeliveryStatus::kDead) << "a rejected replay changed nothing";
  EXPECT_THAT(notified(), IsEmpty());
}

TEST_F(AdminServiceTest, ListDeliveriesFiltersAndPages) {
  AddWorld();
  pb::ListDeliveriesRequest req;
  req.mutable_filter()->set_connection_id("acme");
  req.mutable_filter()->add_statuses("dead");
  req.mutable_filter()->add_statuses("pending");
  req.mutable_filter()->set_event_type("invoice");
  req.set_page_size(1);
  std::vector<std::string> ids;
  int pages = 0;
  do {
    pb::ListDeliveriesResponse r;
    grpc::Status s = stub_->ListDeliveries(Ctx().get(), req, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_LE(r.deliveries_size(), 1);
    for (const pb::Delivery& d : r.deliveries()) {
      ids.push_back(d.delivery_id());
      EXPECT_EQ(d.payload(), "") << "no payloads in a list";
    }
    req.set_page_token(r.next_page_token());
    ASSERT_LT(++pages, 5);
  } while (!req.page_token().empty());
  EXPECT_THAT(ids, ElementsAre("p1", "x1"));

  // Every field of a delivery, and a time range.
  pb::ListDeliveriesRequest range;
  *range.mutable_filter()->mutable_received_after() = ToProto(clock_.Now() - absl::Hours(2));
  *range.mutable_filter()->mutable_received_before() = ToProto(clock_.Now() - absl::Minutes(30));
  pb::ListDeliveriesResponse r;
  ASSERT_TRUE(stub_->ListDeliveries(Ctx().get(), range, &r).ok());
  ASSERT_THAT(r.deliveries(), SizeIs(2));
  EXPECT_EQ(r.deliveries(0).delivery_id(), "x2");
  const pb::Delivery& x1 = r.deliveries(1);
  EXPECT_EQ(x1.delivery_id(), "x1");
  EXPECT_EQ(x1.connection_id(), "acme");
  EXPECT_EQ(x1.kind(), "event");
  EXPECT_EQ(x1.event_type(), "invoice.update");
  EXPECT_EQ(x1.object_type(), "invoice");
  EXPECT_EQ(x1.object_id(), "obj-x1");
  EXPECT_EQ(x1.account_id(), "6BApk");
  EXPECT_EQ(FromProto(x1.received_at()), clock_.Now() - absl::Hours(2));
  EXPECT_EQ(FromProto(x1.journaled_at()), clock_.Now());
  EXPECT_EQ(x1.status(), "dead");
  EXPECT_EQ(x1.attempts(), 1);
  EXPECT_FALSE(x1.has_next_attempt_at()) << "only pending deliveries have a next attempt";
  EXPECT_EQ(x1.last_error(), "column amount: type conflict");
  EXPECT_EQ(FromProto(x1.finished_at()), clock_.Now());
  EXPECT_EQ(x1.replays(), 0);
  EXPECT_EQ(r.next_page_token(), "");

  pb::ListDeliveriesRequest pending;
  pending.mutable_filter()->add_statuses("pending");
  ASSERT_TRUE(stub_->ListDeliveries(Ctx().get(), pending, &r).ok());
  ASSERT_THAT(r.deliveries(), SizeIs(1));
  EXPECT_TRUE(r.deliveries(0).has_next_attempt_at());
  EXPECT_FALSE(r.deliveries(0).has_finished_at());
}

TEST_F(AdminServiceTest, BadRequestsNameTheFieldAndTheFix) {
  AddWorld();
  struct Case {
    std::string name;
    pb::ListDeliveriesRequest request;
    std::string want;
  };
  std::vector<Case> cases;
  cases.push_back({"unknown status", {}, "filter.statuses[1] \"deadd\""});
  cases.back().request.mutable_filter()->add_statuses("dead");
  cases.back().request.mutable_filter()->add_statuses("deadd");
  cases.push_back({"page size too big", {}, "page_size 1001: use 1..1000"});
  cases.back().request.set_page_size(1001);
  cases.push_back({"negative page size", {}, "page_size -1"});
  cases.back().request.set_page_size(-1);
  cases.push_back({"bad token", {}, "page_token"});
  cases.back().request.set_page_token("not-a-token");
  cases.push_back({"empty range", {}, "filter.received_after must be before"});
  *cases.back().request.mutable_filter()->mutable_received_after() = ToProto(clock_.Now());
  *cases.back().request.mutable_filter()->mutable_received_before() = ToProto(clock_.Now());
  cases.push_back({"bad timestamp", {}, "filter.received_before: not a valid timestamp"});
  cases.back().request.mutable_filter()->mutable_received_before()->set_nanos(-5);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    pb::ListDeliveriesResponse r;
    grpc::Status s = stub_->ListDeliveries(Ctx().get(), c.request, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr(c.want));
  }
  pb::GetDeliveryResponse g;
  grpc::Status s = stub_->GetDelivery(Ctx().get(), {}, &g);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("delivery_id"));
}

TEST_F(AdminServiceTest, GetDeliveryHasThePayloadAndEveryAttemptOldestFirst) {
  AddWorld();
  pb::GetDeliveryRequest req;
  req.set_delivery_id("w1");
  pb::GetDeliveryResponse r;
  grpc::Status s = stub_->GetDelivery(Ctx().get(), req, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.delivery().delivery_id(), "w1");
  EXPECT_EQ(r.delivery().status(), "written");
  EXPECT_EQ(r.delivery().payload(), R"([["name","invoice.create"],["object_id","obj-w1"]])");
  ASSERT_THAT(r.attempts(), SizeIs(2));
  EXPECT_EQ(r.attempts(0).stage(), "journal");
  EXPECT_EQ(r.attempts(0).outcome(), "ok");
  EXPECT_DOUBLE_EQ(r.attempts(0).duration_ms(), 3 * 3600 * 1000.0);  // received -> journaled
  EXPECT_EQ(r.attempts(1).stage(), "write");
  EXPECT_DOUBLE_EQ(r.attempts(1).duration_ms(), 12.5);
  EXPECT_EQ(FromProto(r.attempts(1).at()), clock_.Now());

  req.set_delivery_id("x1");
  ASSERT_TRUE(stub_->GetDelivery(Ctx().get(), req, &r).ok());
  ASSERT_THAT(r.attempts(), SizeIs(2));
  EXPECT_EQ(r.attempts(1).outcome(), "dead");
  EXPECT_EQ(r.attempts(1).http_status(), 400);
  EXPECT_EQ(r.attempts(1).error(), "column amount: type conflict");

  req.set_delivery_id("no-such-delivery");
  s = stub_->GetDelivery(Ctx().get(), req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("no-such-delivery"));
}

TEST_F(AdminServiceTest, ReplayDryRunThenForReal) {
  AddWorld();
  clock_.Advance(absl::Minutes(1));
  pb::ReplayRequest req;
  req.mutable_filter()->add_statuses("dead");
  req.mutable_filter()->set_error_contains("type conflict");
  req.set_dry_run(true);
  pb::ReplayResponse dry;
  grpc::Status s = stub_->Replay(Ctx().get(), req, &dry);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(dry.dry_run());
  EXPECT_EQ(dry.matched(), 2);
  EXPECT_EQ(dry.replayed(), 0);
  EXPECT_THAT(dry.delivery_ids(), ElementsAre("x1", "x2"));
  EXPECT_FALSE(dry.truncated());
  EXPECT_EQ(StatusOf("x1"), DeliveryStatus::kDead);
  EXPECT_THAT(notified(), IsEmpty()) << "a dry run does not wake the pipeline";

  req.set_dry_run(false);
  pb::ReplayResponse real;
  s = stub_->Replay(Ctx().get(), req, &real);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(real.dry_run());
  EXPECT_EQ(real.matched(), 2);
  EXPECT_EQ(real.replayed(), 2);
  EXPECT_THAT(real.delivery_ids(), ElementsAre("x1", "x2"));
  EXPECT_EQ(StatusOf("x1"), DeliveryStatus::kPending);
  EXPECT_EQ(StatusOf("x2"), DeliveryStatus::kPending);
  EXPECT_EQ(StatusOf("b1"), DeliveryStatus::kDead);
  EXPECT_THAT(notified(), ElementsAre(2));

  // The audit trail shows the replay; the delivery shows it was replayed.
  pb::GetDeliveryRequest get;
  get.set_delivery_id("x1");
  pb::GetDeliveryResponse got;
  ASSERT_TRUE(stub_->GetDelivery(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.delivery().replays(), 1);
  EXPECT_EQ(got.delivery().attempts(), 0);
  EXPECT_EQ(FromProto(got.delivery().next_attempt_at()), clock_.Now());
  EXPECT_EQ(got.attempts(got.attempts_size() - 1).stage(), "replay");
  EXPECT_EQ(FromProto(got.attempts(got.attempts_size() - 1).at()), clock_.Now());

  // By ids: missing ids and handshakes are reported.
  pb::ReplayRequest by_ids;
  by_ids.add_delivery_ids("b1");
  by_ids.add_delivery_ids("h1");
  by_ids.add_delivery_ids("ghost");
  pb::ReplayResponse r;
  ASSERT_TRUE(stub_->Replay(Ctx().get(), by_ids, &r).ok());
  EXPECT_EQ(r.matched(), 2);
  EXPECT_EQ(r.replayed(), 1);
  EXPECT_THAT(r.not_found(), ElementsAre("ghost"));
  ASSERT_THAT(r.skipped(), SizeIs(1));
  EXPECT_THAT(r.skipped(0), HasSubstr("h1"));
  EXPECT_THAT(notified(), ElementsAre(2, 1));
}

TEST_F(AdminServiceTest, ReplayRefusesToReplayEverything) {
  AddWorld();
  std::vector<std::pair<std::string, pb::ReplayRequest>> cases;
  cases.emplace_back("nothing", pb::ReplayRequest());
  pb::ReplayRequest empty_filter;
  empty_filter.mutable_filter();  // present but empty
  empty_filter.set_limit(10);
  cases.emplace_back("empty filter", empty_filter);
  pb::ReplayRequest dry;
  dry.set_dry_run(true);
  cases.emplace_back("dry run of nothing", dry);
  for (const auto& [name, req] : cases) {
    SCOPED_TRACE(name);
    pb::ReplayResponse r;
    grpc::Status s = stub_->Replay(Ctx().get(), req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("delivery_ids or a filter"));
  }
  pb::ReplayRequest big;
  big.mutable_filter()->add_statuses("dead");
  big.set_limit(100001);
  pb::ReplayResponse r;
  grpc::Status s = stub_->Replay(Ctx().get(), big, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limit 100001"));
  pb::ReplayRequest bad_status;
  bad_status.mutable_filter()->add_statuses("DEAD");
  s = stub_->Replay(Ctx().get(), bad_status, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("filter.statuses[0]"));
  EXPECT_EQ(StatusOf("x1"), DeliveryStatus::kDead);
  EXPECT_THAT(notified(), IsEmpty());
}

TEST_F(AdminServiceTest, GetStatsReportsTheJournalAndRetention) {
  AddWorld();
  ASSERT_TRUE(journal_->MarkRetrySync({{"p1", clock_.Now()}}, "throttled", {}).ok());
  auto compacted = retention_->RunOnce();
  ASSERT_TRUE(compacted.ok());
  clock_.Advance(absl::Minutes(1));

  pb::GetStatsResponse r;
  grpc::Status s = stub_->GetStats(Ctx().get(), {}, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_THAT(r.connections(), SizeIs(2));
  const pb::ConnectionStats& acme = r.connections(0);
  EXPECT_EQ(acme.connection_id(), "acme");
  EXPECT_EQ(acme.pending(), 1);
  EXPECT_EQ(acme.retrying(), 1);
  EXPECT_EQ(acme.written(), 1);
  EXPECT_EQ(acme.dead(), 2);
  EXPECT_EQ(acme.handshakes(), 1);
  EXPECT_EQ(FromProto(acme.oldest_pending_received_at()),
            clock_.Now() - absl::Minutes(1) - absl::Minutes(30));
  EXPECT_EQ(FromProto(acme.last_written_at()), clock_.Now() - absl::Minutes(1));
  EXPECT_EQ(acme.received_last_hour(), 2);  // p1, h1
  EXPECT_EQ(acme.written_last_hour(), 1);
  ASSERT_THAT(acme.dead_letters(), SizeIs(1));
  EXPECT_EQ(acme.dead_letters(0).reason(), "column amount: type conflict");
  EXPECT_EQ(acme.dead_letters(0).count(), 2);
  const pb::ConnectionStats& beta = r.connections(1);
  EXPECT_EQ(beta.connection_id(), "beta");
  EXPECT_EQ(beta.dead(), 1);
  EXPECT_FALSE(beta.has_oldest_pending_received_at());
  EXPECT_EQ(r.journal_bytes(), journal_->FileBytes());
  EXPECT_GT(r.journal_bytes(), 0);
  EXPECT_EQ(r.audit_retention_days(), 30);
  EXPECT_EQ(FromProto(r.last_compaction()), clock_.Now() - absl::Minutes(1));
  EXPECT_EQ(r.compacted_total(), 0);

  pb::GetStatsRequest one;
  one.set_connection_id("beta");
  ASSERT_TRUE(stub_->GetStats(Ctx().get(), one, &r).ok());
  ASSERT_THAT(r.connections(), SizeIs(1));
  EXPECT_EQ(r.connections(0).dead_letters(0).reason(), "permission denied");
  one.set_connection_id("nobody");
  s = stub_->GetStats(Ctx().get(), one, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace mlc::writer

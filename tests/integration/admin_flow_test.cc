// Dead letters and replay through the real binaries: webhooks go through
// mlc-ingress into mlc-writer, the lakehouse refuses them (a trigger that aborts
// every insert - a permanent failure, like a permission or type problem), so they
// become dead letters. The operator finds them with the Admin API, fixes the
// cause, replays them, and each lands in the table exactly once; the audit trail
// and the writer's log show the replay.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "mlconnector/v1/admin.grpc.pb.h"
#include "tests/support/services.h"

namespace mlc::testing {
namespace {

namespace pb = ::mlconnector::v1;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs SQL on a database of the writer's, through a connection of our own.
void Exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "") << ": " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

class AdminFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s_.StartAll();
    stub_ = pb::Admin::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", s_.writer_port()),
                                                   grpc::InsecureChannelCredentials()));
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    AddBearerToken(ctx.get(), s_.options().admin_token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }

  std::map<std::string, int> Rows() {
    std::map<std::string, int> out;
    for (const auto& [id, n] : s_.EventRowCounts()) out[id] = n;
    return out;
  }

  Services s_;
  std::unique_ptr<pb::Admin::Stub> stub_;
};

TEST_F(AdminFlowTest, DeadLettersAreListedReplayedAndWrittenExactlyOnce) {
  const std::string lakehouse = s_.data_dir() + "/lakehouse.db";
  Exec(lakehouse,
       "CREATE TRIGGER refuse_events BEFORE INSERT ON freshbooks_events "
       "BEGIN SELECT RAISE(ABORT, 'lakehouse refuses writes (test)'); END;");

  std::vector<std::string> ids;
  for (const char* object : {"101", "102", "103"}) {
    Services::Answer a = s_.Send(StandardEvent("invoice.create", object));
    ASSERT_EQ(a.status, 202) << a.body << s_.IngressLog();
    ids.push_back(a.delivery_id);
  }
  std::sort(ids.begin(), ids.end());
  ASSERT_TRUE(WaitFor([&] {
    return std::all_of(ids.begin(), ids.end(),
                       [&](const std::string& id) { return s_.DeliveryStatus(id) == "dead"; });
  })) << s_.WriterLog();
  EXPECT_TRUE(Rows().empty());

  // The operator lists the dead letters...
  pb::ListDeliveriesRequest list;
  list.mutable_filter()->set_connection_id("acme");
  list.mutable_filter()->add_statuses("dead");
  pb::ListDeliveriesResponse dead;
  grpc::Status st = stub_->ListDeliveries(Ctx().get(), list, &dead);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<std::string> listed;
  for (const pb::Delivery& d : dead.deliveries()) {
    listed.push_back(d.delivery_id());
    EXPECT_EQ(d.status(), "dead");
    EXPECT_TRUE(Contains(d.last_error(), "lakehouse refuses writes")) << d.last_error();
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, ids);
  // ...and sees them grouped by reason.
  pb::GetStatsResponse stats;
  ASSERT_TRUE(stub_->GetStats(Ctx().get(), {}, &stats).ok());
  ASSERT_EQ(stats.connections_size(), 1);
  EXPECT_EQ(stats.connections(0).dead(), 3);
  ASSERT_EQ(stats.connections(0).dead_letters_size(), 1);
  EXPECT_EQ(stats.connections(0).dead_letters(0).count(), 3);
  EXPECT_EQ(stats.audit_retention_days(), 30);  // the default
  EXPECT_GT(stats.journal_bytes(), 0);

  // A dry run changes nothing.
  pb::ReplayRequest replay;
  replay.mutable_filter()->set_connection_id("acme");
  replay.mutable_filter()->add_statuses("dead");
  replay.mutable_filter()->set_error_contains("refuses writes");
  replay.set_dry_run(true);
  pb::ReplayResponse dry;
  ASSERT_TRUE(stub_->Replay(Ctx().get(), replay, &dry).ok());
  EXPECT_EQ(dry.matched(), 3);
  EXPECT_EQ(dry.replayed(), 0);
  for (const std::string& id : ids) EXPECT_EQ(s_.DeliveryStatus(id), "dead");

  // The cause is fixed, then the dead letters are replayed.
  Exec(lakehouse, "DROP TRIGGER refuse_events");
  replay.set_dry_run(false);
  pb::ReplayResponse done;
  st = stub_->Replay(Ctx().get(), replay, &done);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(done.matched(), 3);
  EXPECT_EQ(done.replayed(), 3);
  std::vector<std::string> replayed(done.delivery_ids().begin(), done.delivery_ids().end());
  std::sort(replayed.begin(), replayed.end());
  EXPECT_EQ(replayed, ids);

  ASSERT_TRUE(WaitFor([&] {
    return std::all_of(ids.begin(), ids.end(),
                       [&](const std::string& id) { return s_.DeliveryStatus(id) == "written"; });
  })) << s_.WriterLog();
  std::map<std::string, int> rows = Rows();
  EXPECT_EQ(rows.size(), ids.size());
  for (const std::string& id : ids) EXPECT_EQ(rows[id], 1) << id;

  // The audit trail tells the story; the log shows the operator's action.
  pb::GetDeliveryRequest get;
  get.set_delivery_id(ids[0]);
  pb::GetDeliveryResponse one;
  ASSERT_TRUE(stub_->GetDelivery(Ctx().get(), get, &one).ok());
  std::vector<std::string> steps;
  for (const pb::Attempt& a : one.attempts()) steps.push_back(a.stage() + ":" + a.outcome());
  EXPECT_EQ(steps, (std::vector<std::string>{"journal:ok", "write:dead", "replay:ok", "write:ok"}));
  EXPECT_EQ(one.delivery().replays(), 1);
  EXPECT_EQ(one.delivery().last_error(), "");
  EXPECT_TRUE(Contains(s_.WriterLog(), "\"msg\":\"admin: replay\"")) << s_.WriterLog();

  // Replaying a written delivery again rewrites the same row: still one per id.
  pb::ReplayRequest again;
  again.add_delivery_ids(ids[1]);
  pb::ReplayResponse r;
  ASSERT_TRUE(stub_->Replay(Ctx().get(), again, &r).ok());
  EXPECT_EQ(r.replayed(), 1);
  ASSERT_TRUE(WaitFor([&] {
    return s_.Query("journal.db", "SELECT replays FROM deliveries WHERE delivery_id='" + ids[1] +
                                      "' AND status='written'") == "2";
  })) << s_.WriterLog();
  rows = Rows();
  EXPECT_EQ(rows.size(), ids.size());
  for (const std::string& id : ids) EXPECT_EQ(rows[id], 1) << id;
}

TEST_F(AdminFlowTest, TheNewMethodsNeedTheAdminToken) {
  grpc::ClientContext ctx;
  AddBearerToken(&ctx, "not-the-admin-token-0123456789");
  pb::ReplayRequest replay;
  replay.mutable_filter()->add_statuses("dead");
  pb::ReplayResponse r;
  EXPECT_EQ(stub_->Replay(&ctx, replay, &r).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext none;
  pb::GetStatsResponse stats;
  EXPECT_EQ(stub_->GetStats(&none, {}, &stats).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// The operator's view through the real `mlc` against the real writer: every
// delivery command, the check, and the refusal of a replay without a target.
TEST_F(AdminFlowTest, MlcCommandsShowDeliveriesStatsAndTheCheck) {
  std::vector<std::string> ids;
  for (const char* object : {"201", "202"}) {
    Services::Answer a = s_.Send(StandardEvent("payment.create", object));
    ASSERT_EQ(a.status, 202) << a.body;
    ids.push_back(a.delivery_id);
  }
  ASSERT_TRUE(WaitFor([&] {
    return std::all_of(ids.begin(), ids.end(),
                       [&](const std::string& id) { return s_.DeliveryStatus(id) == "written"; });
  })) << s_.WriterLog();

  std::string out;
  int st = s_.RunCli({"deliveries", "--connection", "acme", "--event", "payment"}, &out);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  for (const std::string& id : ids) EXPECT_TRUE(Contains(out, id)) << out;
  EXPECT_TRUE(Contains(out, "payment.create")) << out;
  EXPECT_TRUE(Contains(out, "written")) << out;

  st = s_.RunCli({"show", ids[0]}, &out);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  EXPECT_TRUE(Contains(out, "object_id = 201")) << out;  // the raw payload, field by field
  EXPECT_TRUE(Contains(out, "journal")) << out;
  EXPECT_TRUE(Contains(out, "write")) << out;

  st = s_.RunCli({"stats", "--json"}, &out);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  EXPECT_TRUE(Contains(out, "\"written\": \"2\"") || Contains(out, "\"written\":\"2\"")) << out;

  st = s_.RunCli({"check", "--connection", "acme"}, &out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  EXPECT_TRUE(Contains(out, "lakehouse")) << out;
  EXPECT_TRUE(Contains(out, "freshbooks_events")) << out;
  st = s_.RunCli({"check", "--connection", "nope"}, &out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << out;

  // A replay needs ids or a filter; no RPC is made otherwise.
  st = s_.RunCli({"replay"}, &out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << out;
  st = s_.RunCli({"replay", "--dry-run", ids[1]}, &out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  EXPECT_EQ(s_.DeliveryStatus(ids[1]), "written");
}

}  // namespace
}  // namespace mlc::testing

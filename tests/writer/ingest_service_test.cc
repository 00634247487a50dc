// Ingest over real gRPC against an in-process WriterApp: the internal token, per-
// item results of SubmitBatch, and that an OK answer means the row is journaled.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/synchronization/notification.h"
#include "common/config.h"
#include "common/grpc_util.h"
#include "mlconnector/v1/ingest.grpc.pb.h"
#include "tests/support/test_util.h"
#include "writer/journal.h"
#include "writer/writer_app.h"

namespace mlc::writer {
namespace {

using mlconnector::v1::Ingest;
using mlconnector::v1::SubmitBatchRequest;
using mlconnector::v1::SubmitBatchResponse;
using mlconnector::v1::SubmitRequest;
using mlconnector::v1::SubmitResponse;

constexpr char kToken[] = "ingest-test-token-0123456789";

class IngestServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config;
    config.writer.listen = "127.0.0.1:0";
    config.writer.metrics_listen = "127.0.0.1:0";
    config.writer.data_dir = dir_.File("var");
    config.writer.internal_token = kToken;
    config.writer.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    config.writer.batch.max_delay_ms = 10;
    ConnectionConfig c;
    c.id = "acme";
    c.freshbooks.verifiers = {"secret-verifier"};
    config.connections.push_back(c);
    auto app = WriterApp::Create(config);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    ASSERT_TRUE(app_->Start().ok());
    stub_ = Ingest::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                                                grpc::InsecureChannelCredentials()));
  }

  static SubmitRequest Event(const std::string& connection, const std::string& object_id) {
    SubmitRequest r;
    auto* e = r.mutable_event();
    e->set_connection_id(connection);
    e->set_event_type("invoice.update");
    e->set_object_type("invoice");
    e->set_action("update");
    e->set_object_id(object_id);
    e->set_account_id("6BApk");
    return r;
  }

  std::string JournalStatus(const std::string& id) {
    auto journal = Journal::Open(dir_.File("var/journal.db"), RealClock::Get());
    EXPECT_TRUE(journal.ok());
    auto d = (*journal)->Get(id);
    return d.ok() && d->has_value() ? DeliveryStatusName((*d)->status) : "missing";
  }

  testing::TempDir dir_;
  std::unique_ptr<WriterApp> app_;
  std::unique_ptr<Ingest::Stub> stub_;
};

TEST_F(IngestServiceTest, WrongOrMissingTokenIsUnauthenticated) {
  for (const std::string token : {"", "wrong-token-0123456789"}) {
    grpc::ClientContext ctx;
    if (!token.empty()) AddBearerToken(&ctx, token);
    SubmitResponse response;
    grpc::Status s = stub_->Submit(&ctx, Event("acme", "1"), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(response.delivery_id().empty());
  }
  grpc::ClientContext ctx;
  SubmitBatchRequest batch;
  *batch.add_submits() = Event("acme", "1");
  SubmitBatchResponse response;
  EXPECT_EQ(stub_->SubmitBatch(&ctx, batch, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(IngestServiceTest, SubmitAnswersOnlyOnceJournaled) {
  grpc::ClientContext ctx;
  AddBearerToken(&ctx, kToken);
  SubmitResponse response;
  ASSERT_TRUE(stub_->Submit(&ctx, Event("acme", "42"), &response).ok());
  ASSERT_FALSE(response.delivery_id().empty());
  // Read through a separate connection: the answer came after the commit.
  const std::string status = JournalStatus(response.delivery_id());
  EXPECT_TRUE(status == "pending" || status == "written") << status;
}

TEST_F(IngestServiceTest, SubmitBatchGivesEachItemItsOwnResult) {
  SubmitBatchRequest batch;
  *batch.add_submits() = Event("acme", "1");
  *batch.add_submits() = Event("nobody", "2");
  batch.add_submits();  // empty
  SubmitRequest missing = Event("acme", "");
  *batch.add_submits() = missing;
  *batch.add_submits() = Event("acme", "5");
  grpc::ClientContext ctx;
  AddBearerToken(&ctx, kToken);
  SubmitBatchResponse response;
  ASSERT_TRUE(stub_->SubmitBatch(&ctx, batch, &response).ok());
  ASSERT_EQ(response.results_size(), 5);
  EXPECT_EQ(response.results(0).code(), 0);
  EXPECT_EQ(response.results(1).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(response.results(2).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(response.results(3).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(response.results(4).code(), 0);
  EXPECT_NE(response.results(0).delivery_id(), response.results(4).delivery_id());
  for (int i : {0, 4}) {
    const std::string status = JournalStatus(response.results(i).delivery_id());
    EXPECT_TRUE(status == "pending" || status == "written") << status;
  }
  EXPECT_TRUE(response.results(1).delivery_id().empty());
}

TEST_F(IngestServiceTest, EmptyBatchIsOk) {
  grpc::ClientContext ctx;
  AddBearerToken(&ctx, kToken);
  SubmitBatchResponse response;
  EXPECT_TRUE(stub_->SubmitBatch(&ctx, SubmitBatchRequest(), &response).ok());
  EXPECT_EQ(response.results_size(), 0);
}

// grpc.health.v1 is served (for Kubernetes gRPC probes). Called through the
// generic stub with hand-encoded messages: HealthCheckRequest{} is empty, and
// SERVING is field 1 = 1, i.e. the bytes 08 01.
TEST_F(IngestServiceTest, ServesGrpcHealth) {
  grpc::GenericStub generic(grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                                                grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

// Server reflection is on (what grpcurl and `mlc` rely on). ServerReflectionRequest
// {list_services: ""} is field 7, i.e. the bytes 3a 00; the answer lists services.
TEST_F(IngestServiceTest, ServesReflectionListingTheIngestService) {
  grpc::GenericStub generic(grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                                                grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t want) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  grpc::Slice request_bytes(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&request_bytes, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_NE(bytes.find("mlconnector.v1.Ingest"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST(WriterAppTest, RefusesToStartWithoutAMasterKeyAndSaysHowToMakeOne) {
  mlc::testing::TempDir dir;
  Config config;
  config.writer.listen = "127.0.0.1:0";
  config.writer.metrics_listen = "127.0.0.1:0";
  config.writer.data_dir = dir.File("var");
  config.writer.internal_token = "t";
  auto app = WriterApp::Create(config);
  ASSERT_TRUE(app.ok());
  absl::Status s = (*app)->Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("openssl rand -base64 32"), absl::string_view::npos) << s;
  // Nothing is encrypted under no key.
  EXPECT_FALSE(std::filesystem::exists(dir.File("var/credentials.db")));
}

}  // namespace
}  // namespace mlc::writer

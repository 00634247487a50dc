// TLS for the internal gRPC services (common/grpc_tls.h): files that cannot be used
// are refused with the config key and the file in the message, and a real gRPC
// server on loopback built from ServerCredentials accepts exactly the clients it
// should (right CA; with mutual TLS also a client certificate from that CA).
#include "common/grpc_tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mlconnector/v1/admin.grpc.pb.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_util.h"

namespace mlc {
namespace {

using ::mlc::testing::MakeTestPki;
using ::mlc::testing::ReadFile;
using ::mlc::testing::TempDir;
using ::mlc::testing::TestPki;
using ::mlc::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;

// Answers ListConnections with one connection named after the client
// certificate's common name ("-" without one), so a test sees both that the call
// got through and which certificate the server saw.
class PeerEchoAdmin final : public mlconnector::v1::Admin::Service {
 public:
  grpc::Status ListConnections(grpc::ServerContext* ctx,
                               const mlconnector::v1::ListConnectionsRequest* /*request*/,
                               mlconnector::v1::ListConnectionsResponse* response) override {
    std::string cn = "-";
    for (const grpc::string_ref& v : ctx->auth_context()->FindPropertyValues("x509_common_name")) {
      cn.assign(v.data(), v.size());
    }
    response->add_connections()->set_connection_id(cn);
    return grpc::Status::OK;
  }
};

class GrpcTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { pki_ = MakeTestPki(dir_.path()); }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Starts the server with `tls` on a free loopback port (fatal failure when the
  // credentials are refused).
  void StartServer(const TlsServerConfig& tls) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ServerCredentials(tls);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  TlsServerConfig ServerTls(bool mutual) const {
    return {pki_.server_cert, pki_.server_key, mutual ? pki_.ca_cert : ""};
  }

  // Calls ListConnections at `host`:port with `tls`. Returns the common name the
  // server saw, or the failed status.
  absl::StatusOr<std::string> Call(const TlsClientConfig& tls,
                                   const std::string& host = "127.0.0.1") {
    grpc::ChannelArguments args;
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        ChannelCredentials(tls, "ingress.writer_tls", &args);
    if (!creds.ok()) return creds.status();
    auto stub = mlconnector::v1::Admin::NewStub(
        grpc::CreateCustomChannel(absl::StrCat(host, ":", port_), *creds, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    mlconnector::v1::ListConnectionsRequest request;
    mlconnector::v1::ListConnectionsResponse response;
    grpc::Status s = stub->ListConnections(&ctx, request, &response);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    if (response.connections_size() != 1) return absl::InternalError("unexpected answer");
    return response.connections(0).connection_id();
  }

  // What ClassifyConnectFailure makes of a failed Call's message (gRPC's own
  // words, so a gRPC that words them differently fails here).
  static ConnectFailure Classify(const absl::StatusOr<std::string>& r) {
    return ClassifyConnectFailure(std::string(r.status().message()));
  }

  TempDir dir_;
  TestPki pki_;
  PeerEchoAdmin service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(GrpcTlsTest, DisabledConfigsArePlaintext) {
  StartServer(TlsServerConfig{});
  EXPECT_EQ(DescribeServerTls(TlsServerConfig{}), "plaintext");
  EXPECT_EQ(DescribeClientTls(TlsClientConfig{}), "plaintext");
  absl::StatusOr<std::string> cn = Call(TlsClientConfig{});
  ASSERT_TRUE(cn.ok()) << cn.status();
  EXPECT_EQ(*cn, "-");
  // A TLS client does not fall back to plaintext.
  absl::StatusOr<std::string> tls = Call({pki_.ca_cert, "", "", ""});
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kUnavailable) << tls.status();
  EXPECT_EQ(Classify(tls), ConnectFailure::kNotTls) << tls.status();
}

TEST_F(GrpcTlsTest, UnreadableFilesAreRefusedNamingTheKeyAndTheFile) {
  const std::string missing = dir_.File("missing.pem");
  auto server_error = [](const TlsServerConfig& c) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> s = ServerCredentials(c);
    return s.ok() ? std::string("OK") : std::string(s.status().message());
  };
  EXPECT_EQ(server_error({missing, pki_.server_key, ""}),
            absl::StrCat("writer.tls.cert_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_EQ(server_error({pki_.server_cert, missing, ""}),
            absl::StrCat("writer.tls.key_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_EQ(server_error({pki_.server_cert, pki_.server_key, missing}),
            absl::StrCat("writer.tls.client_ca_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_THAT(server_error({dir_.path(), pki_.server_key, ""}),
              HasSubstr(absl::StrCat("writer.tls.cert_file \"", dir_.path(),
                                     "\": cannot read: Is a directory")));

  auto client_error = [](const TlsClientConfig& c) {
    grpc::ChannelArguments args;
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> s =
        ChannelCredentials(c, "ingress.writer_tls", &args);
    return s.ok() ? std::string("OK") : std::string(s.status().message());
  };
  EXPECT_EQ(client_error({missing, "", "", ""}),
            absl::StrCat("ingress.writer_tls.ca_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_EQ(client_error({pki_.ca_cert, missing, pki_.client_key, ""}),
            absl::StrCat("ingress.writer_tls.cert_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_EQ(client_error({pki_.ca_cert, pki_.client_cert, missing, ""}),
            absl::StrCat("ingress.writer_tls.key_file \"", missing,
                         "\": cannot read: No such file or directory"));
  EXPECT_EQ(client_error({pki_.ca_cert, pki_.client_cert, pki_.client_key, ""}), "OK");
}

TEST_F(GrpcTlsTest, FilesThatAreNotPemOrDoNotMatchAreRefusedWithoutShowingKeys) {
  const std::string garbage = dir_.File("garbage.pem");
  WriteFile(garbage, "not a certificate\n");
  const std::string encrypted = dir_.File("encrypted.pem");
  WriteFile(encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAc\n"
            "-----END ENCRYPTED PRIVATE KEY-----\n");
  const std::string key_text = ReadFile(pki_.server_key);
  auto server_error = [](const TlsServerConfig& c) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> s = ServerCredentials(c);
    return s.ok() ? std::string("OK") : std::string(s.status().message());
  };
  EXPECT_EQ(server_error({garbage, pki_.server_key, ""}),
            absl::StrCat("writer.tls.cert_file \"", garbage,
                         "\": holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"));
  // A key where the certificate belongs: named, and the key's bytes never echoed.
  const std::string swapped = server_error({pki_.server_key, pki_.server_cert, ""});
  EXPECT_THAT(swapped, HasSubstr(absl::StrCat("writer.tls.cert_file \"", pki_.server_key,
                                              "\": holds no PEM certificate")));
  EXPECT_THAT(swapped, Not(HasSubstr("PRIVATE KEY-----\n")));
  EXPECT_EQ(server_error({pki_.server_cert, garbage, ""}),
            absl::StrCat("writer.tls.key_file \"", garbage,
                         "\": holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\")"));
  EXPECT_THAT(server_error({pki_.server_cert, encrypted, ""}),
              HasSubstr(absl::StrCat("writer.tls.key_file \"", encrypted,
                                     "\": is an encrypted private key")));
  const std::string mismatch = server_error({pki_.server_cert, pki_.client_key, ""});
  EXPECT_EQ(mismatch, absl::StrCat("writer.tls.key_file \"", pki_.client_key,
                                   "\": is not the private key of the certificate in "
                                   "writer.tls.cert_file \"",
                                   pki_.server_cert,
                                   "\" (the first certificate of the file must be the one the key "
                                   "belongs to)"));
  EXPECT_THAT(mismatch, Not(HasSubstr(key_text.substr(30, 40))));
  EXPECT_THAT(server_error({pki_.server_cert, pki_.server_key, garbage}),
              HasSubstr("writer.tls.client_ca_file"));
}

TEST_F(GrpcTlsTest, TlsServerAcceptsOnlyClientsThatTrustItsCa) {
  StartServer(ServerTls(/*mutual=*/false));
  EXPECT_EQ(DescribeServerTls(ServerTls(false)), "tls");

  // The right CA, by IP (the certificate's IP SAN) and by name.
  absl::StatusOr<std::string> ok = Call({pki_.ca_cert, "", "", ""});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "-");
  absl::StatusOr<std::string> by_name = Call({pki_.ca_cert, "", "", ""}, "localhost");
  EXPECT_TRUE(by_name.ok()) << by_name.status();

  // Another CA does not vouch for this server.
  absl::StatusOr<std::string> wrong_ca = Call({pki_.other_ca_cert, "", "", ""});
  EXPECT_EQ(wrong_ca.status().code(), absl::StatusCode::kUnavailable) << wrong_ca.status();
  EXPECT_EQ(Classify(wrong_ca), ConnectFailure::kUntrustedServer) << wrong_ca.status();

  // A plaintext client gets nowhere.
  absl::StatusOr<std::string> plaintext = Call(TlsClientConfig{});
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kUnavailable) << plaintext.status();
  EXPECT_EQ(Classify(plaintext), ConnectFailure::kHungUp) << plaintext.status();

  // server_name is the name checked against the certificate: a name it does not
  // carry fails, the one it carries works even when dialling another name.
  absl::StatusOr<std::string> wrong_name = Call({pki_.ca_cert, "", "", "writer.example.com"});
  EXPECT_EQ(wrong_name.status().code(), absl::StatusCode::kUnavailable) << wrong_name.status();
  EXPECT_EQ(Classify(wrong_name), ConnectFailure::kServerNameMismatch) << wrong_name.status();
  absl::StatusOr<std::string> override = Call({pki_.ca_cert, "", "", "localhost"}, "127.0.0.1");
  EXPECT_TRUE(override.ok()) << override.status();
}

TEST(ClassifyConnectFailureTest, RefusedAndUnknownAreOther) {
  auto stub = mlconnector::v1::Admin::NewStub(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  mlconnector::v1::ListConnectionsRequest request;
  mlconnector::v1::ListConnectionsResponse response;
  grpc::Status s = stub->ListConnections(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(ClassifyConnectFailure(s.error_message()), ConnectFailure::kOther) << s.error_message();
  EXPECT_EQ(ClassifyConnectFailure(""), ConnectFailure::kOther);
}

TEST_F(GrpcTlsTest, MutualTlsRequiresAClientCertificateFromTheConfiguredCa) {
  StartServer(ServerTls(/*mutual=*/true));
  EXPECT_EQ(DescribeServerTls(ServerTls(true)), "mutual tls");
  EXPECT_EQ(DescribeClientTls({pki_.ca_cert, pki_.client_cert, pki_.client_key, ""}),
            "tls with client certificate");

  absl::StatusOr<std::string> no_cert = Call({pki_.ca_cert, "", "", ""});
  EXPECT_EQ(no_cert.status().code(), absl::StatusCode::kUnavailable) << no_cert.status();
  EXPECT_EQ(Classify(no_cert), ConnectFailure::kHungUp) << no_cert.status();

  absl::StatusOr<std::string> wrong_ca_cert =
      Call({pki_.ca_cert, pki_.other_client_cert, pki_.other_client_key, ""});
  EXPECT_EQ(wrong_ca_cert.status().code(), absl::StatusCode::kUnavailable)
      << wrong_ca_cert.status();
  EXPECT_EQ(Classify(wrong_ca_cert), ConnectFailure::kHungUp) << wrong_ca_cert.status();

  absl::StatusOr<std::string> plaintext = Call(TlsClientConfig{});
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kUnavailable) << plaintext.status();

  absl::StatusOr<std::string> ok = Call({pki_.ca_cert, pki_.client_cert, pki_.client_key, ""});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "mlc-test-client");  // the server saw the client's certificate
}

}  // namespace
}  // namespace mlc

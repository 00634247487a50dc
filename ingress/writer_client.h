// The writer as ingress sees it: Submit a delivery, list signing keys, complete
// a FreshBooks OAuth authorization. The interface exists so the webhook handler
// and the HTTP routes can be tested against a fake writer.
//
// GrpcWriterClient is the real one. Submits from concurrent HTTP workers are
// coalesced: each worker queues its delivery and sleeps; a dispatcher thread sends
// whatever has queued as one Ingest.SubmitBatch (up to kMaxBatch, at most
// kMaxInFlight calls at a time) and wakes each worker with its own result. Under
// load this turns N gRPC calls into one and lets the writer commit them with one
// fsync; an idle system sends a batch of one at once, so there is no added wait.
// One shared HTTP/2 channel, a deadline on every call, fast reconnects so a
// restarted writer is found again within a second. ListSigningKeys and
// CompleteAuthorization are plain unary calls on the same channel. The channel
// speaks TLS (with a client certificate for a writer that requires mutual TLS)
// when ingress.writer_tls is set; Create reads those files once and fails when
// one cannot be used. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "mlconnector/v1/ingest.grpc.pb.h"

namespace mlc::ingress {

class WriterClient {
 public:
  virtual ~WriterClient() = default;
  // Returns the delivery id once the writer has the delivery on disk.
  virtual absl::StatusOr<std::string> Submit(const mlconnector::v1::SubmitRequest& request,
                                             std::chrono::milliseconds deadline) = 0;
  virtual absl::StatusOr<mlconnector::v1::ListSigningKeysResponse> ListSigningKeys(
      std::chrono::milliseconds deadline) = 0;
  // Hands an OAuth callback's code and state (or FreshBooks' error) to the
  // writer, which exchanges the code and stores the tokens. The status keeps the
  // writer's code and message (written for the user who opened the link).
  virtual absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> CompleteAuthorization(
      const mlconnector::v1::CompleteAuthorizationRequest& request,
      std::chrono::milliseconds deadline) = 0;
};

class GrpcWriterClient final : public WriterClient {
 public:
  static constexpr int kMaxBatch = 256;
  static constexpr int kMaxInFlight = 4;

  // A client for config.writer with config.internal_token, over TLS when
  // config.writer_tls is enabled. Errors name the ingress.writer_tls key and file.
  static absl::StatusOr<std::unique_ptr<GrpcWriterClient>> Create(const IngressConfig& config);

  // Plaintext to `target`.
  GrpcWriterClient(const std::string& target, std::string internal_token);
  // `credentials` and `args` as made by ChannelCredentials (common/grpc_tls.h)
  // from `tls`, which connection errors are explained in terms of.
  GrpcWriterClient(const std::string& target, std::string internal_token,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                   grpc::ChannelArguments args, TlsClientConfig tls = {});
  ~GrpcWriterClient() override;  // fails queued submits, waits for calls in flight

  absl::StatusOr<std::string> Submit(const mlconnector::v1::SubmitRequest& request,
                                     std::chrono::milliseconds deadline) override;
  absl::StatusOr<mlconnector::v1::ListSigningKeysResponse> ListSigningKeys(
      std::chrono::milliseconds deadline) override;
  absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> CompleteAuthorization(
      const mlconnector::v1::CompleteAuthorizationRequest& request,
      std::chrono::milliseconds deadline) override;

 private:
  struct Pending;
  void DispatchLoop();
  // Why the channel cannot connect, from a fail-fast call's UNAVAILABLE
  // `detail`, with the ingress.writer_tls setting to fix.
  absl::Status ExplainConnectFailure(const std::string& detail) const;

  std::string target_;
  TlsClientConfig tls_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<mlconnector::v1::Ingest::Stub> stub_;

  absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
};

}  // namespace mlc::ingress

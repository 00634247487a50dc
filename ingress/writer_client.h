// The writer as ingress sees it: Submit a delivery, list signing keys. The
// interface exists so the webhook handler can be tested against a fake writer;
// GrpcWriterClient is the real one (one shared HTTP/2 channel, a deadline on every
// call, fast reconnects so a restarted writer is found again within a second).
// Implementations are thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
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
};

class GrpcWriterClient final : public WriterClient {
 public:
  GrpcWriterClient(const std::string& target, std::string internal_token);
  absl::StatusOr<std::string> Submit(const mlconnector::v1::SubmitRequest& request,
                                     std::chrono::milliseconds deadline) override;
  absl::StatusOr<mlconnector::v1::ListSigningKeysResponse> ListSigningKeys(
      std::chrono::milliseconds deadline) override;

 private:
  std::string token_;
  std::unique_ptr<mlconnector::v1::Ingest::Stub> stub_;
};

}  // namespace mlc::ingress

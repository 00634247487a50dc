// AdminClient: `mlc`'s connection to the writer's Admin gRPC service
// (proto/mlconnector/v1/admin.proto). It owns the channel, attaches the admin token
// as `authorization: Bearer <token>` metadata and a deadline to every call, and turns
// a failed call into an absl::Status whose message tells the operator what to do
// (which address could not be reached, which flag or variable holds the token).
// New RPCs need no code here: Call() takes the stub method.
//
// Thread safety: Call() may be used from several threads (gRPC stubs are
// thread-safe). The client owns its channel and stub.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_util.h"
#include "mlconnector/v1/admin.grpc.pb.h"

namespace mlc::cli {

inline constexpr char kDefaultWriter[] = "127.0.0.1:50051";
inline constexpr char kWriterEnv[] = "MLC_WRITER";
inline constexpr char kAdminTokenEnv[] = "MLC_ADMIN_TOKEN";

struct AdminToken {
  std::string token;
  std::string source;  // "--admin-token-file /etc/mlc/admin-token" or "$MLC_ADMIN_TOKEN"
};

// The token from `token_file` (trailing newlines and spaces dropped) or else from
// $MLC_ADMIN_TOKEN. InvalidArgument naming both ways when neither gives one, or when
// the file cannot be read or is empty.
absl::StatusOr<AdminToken> LoadAdminToken(
    const std::optional<std::string>& token_file,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

class AdminClient {
 public:
  template <typename Request, typename Response>
  using Method = grpc::Status (mlconnector::v1::Admin::StubInterface::*)(grpc::ClientContext*,
                                                                         const Request&, Response*);

  // `writer` is a gRPC target ("host:port"); plaintext, as the writer serves today.
  AdminClient(std::string writer, AdminToken token);
  // For tests and other transports: calls go to `stub`.
  AdminClient(std::string writer, AdminToken token,
              std::unique_ptr<mlconnector::v1::Admin::StubInterface> stub);

  // Calls `method` (e.g. &Admin::StubInterface::Sync) with a deadline of `timeout`.
  // `name` ("Sync") is used in error messages.
  template <typename Request, typename Response>
  absl::Status Call(const char* name, Method<Request, Response> method, const Request& request,
                    Response* response, absl::Duration timeout) {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    const grpc::Status status = ((*stub_).*method)(&ctx, request, response);
    return Explain(status, name, timeout);
  }

  const std::string& writer() const { return writer_; }

 private:
  void Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const;
  absl::Status Explain(const grpc::Status& status, const char* name, absl::Duration timeout) const;

  std::string writer_;
  AdminToken token_;
  std::shared_ptr<grpc::Channel> channel_;  // null when a stub was injected
  std::unique_ptr<mlconnector::v1::Admin::StubInterface> stub_;
};

}  // namespace mlc::cli

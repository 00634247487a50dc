// The edges between absl::Status and gRPC, and the bearer-token metadata both
// internal services use. Status codes share numbering, so the mapping is a cast.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mlc {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Metadata key and value format for bearer tokens.
inline constexpr char kAuthorizationHeader[] = "authorization";

// True when the call's `authorization` metadata is "Bearer <expected>" (constant-time).
bool HasBearerToken(const grpc::ServerContextBase& ctx, std::string_view expected);

// Adds "authorization: Bearer <token>" to an outgoing call.
void AddBearerToken(grpc::ClientContext* ctx, const std::string& token);

}  // namespace mlc

// AdminClient: `mlc`'s connection to the writer's Admin gRPC service
// (proto/mlconnector/v1/admin.proto). It owns the channel, attaches the admin token
// as `authorization: Bearer <token>` metadata and a deadline to every call, and turns
// a failed call into an absl::Status whose message tells the operator what to do
// (which address could not be reached, which flag or variable holds the token).
// New RPCs need no code here: Call() takes the stub method.
//
// The channel speaks TLS when a CA is given (--tls-ca / $MLC_TLS_CA), presenting a
// client certificate (--tls-cert/--tls-key) to a writer that requires mutual TLS.
// A failed handshake, or a plaintext client at a TLS writer, is explained as such
// ("does the writer speak TLS? pass --tls-ca FILE") rather than as a bare UNAVAILABLE.
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
#include "common/config.h"
#include "common/grpc_tls.h"
#include "common/grpc_util.h"
#include "mlconnector/v1/admin.grpc.pb.h"

namespace mlc::cli {

inline constexpr char kDefaultWriter[] = "127.0.0.1:50051";
inline constexpr char kWriterEnv[] = "MLC_WRITER";
inline constexpr char kAdminTokenEnv[] = "MLC_ADMIN_TOKEN";
inline constexpr char kTlsCaEnv[] = "MLC_TLS_CA";
inline constexpr char kTlsCertEnv[] = "MLC_TLS_CERT";
inline constexpr char kTlsKeyEnv[] = "MLC_TLS_KEY";
inline constexpr char kTlsServerNameEnv[] = "MLC_TLS_SERVER_NAME";

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

// TLS to the writer as the operator asked for it: each setting from its global flag
// (--tls-ca, --tls-cert, --tls-key, --tls-server-name) or else its variable
// ($MLC_TLS_CA, ...). Plaintext when no CA is given.
struct AdminTls {
  TlsClientConfig config;
  TlsClientSettings sources;  // where each file came from: "--tls-ca" or "$MLC_TLS_CA"
  bool enabled() const { return config.enabled(); }
};

// `flag` returns a global flag's value by name ("tls-ca"), `getenv` a variable's.
// InvalidArgument when only one of the client certificate and its key is given, or
// a client certificate or server name without a CA.
absl::StatusOr<AdminTls> ResolveAdminTls(
    const std::function<std::optional<std::string>(const std::string&)>& flag,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

class AdminClient {
 public:
  template <typename Request, typename Response>
  using Method = grpc::Status (mlconnector::v1::Admin::StubInterface::*)(grpc::ClientContext*,
                                                                         const Request&, Response*);

  // `writer` is a gRPC target ("host:port"), reached over TLS per `tls`. Fails
  // (naming the flag or variable and the file) when a TLS file cannot be used.
  static absl::StatusOr<std::unique_ptr<AdminClient>> Create(std::string writer, AdminToken token,
                                                             const AdminTls& tls);
  // Plaintext to `writer`.
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

  AdminClient(std::string writer, AdminToken token, AdminTls tls,
              const std::shared_ptr<grpc::ChannelCredentials>& credentials,
              const grpc::ChannelArguments& args);
  // Why a call failed before reaching the writer, from gRPC's `detail`; empty when
  // the detail says nothing specific (the writer is simply not reachable).
  std::string ExplainTransport(const std::string& detail) const;

  std::string writer_;
  AdminToken token_;
  AdminTls tls_;
  std::shared_ptr<grpc::Channel> channel_;  // null when a stub was injected
  std::unique_ptr<mlconnector::v1::Admin::StubInterface> stub_;
};

}  // namespace mlc::cli

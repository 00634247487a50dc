#include "cli/admin_client.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mlc::cli {
namespace {

std::string GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

}  // namespace

absl::StatusOr<AdminToken> LoadAdminToken(
    const std::optional<std::string>& token_file,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  AdminToken t;
  if (token_file.has_value()) {
    std::ifstream in(*token_file, std::ios::binary);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read --admin-token-file ", *token_file, ": ", std::strerror(errno)));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    t.token = std::string(absl::StripAsciiWhitespace(ss.str()));
    t.source = absl::StrCat("--admin-token-file ", *token_file);
    if (t.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--admin-token-file ", *token_file, " is empty"));
    }
    return t;
  }
  if (std::optional<std::string> env = getenv(kAdminTokenEnv); env.has_value()) {
    t.token = std::string(absl::StripAsciiWhitespace(*env));
    t.source = absl::StrCat("$", kAdminTokenEnv);
  }
  if (t.token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no admin token: pass --admin-token-file FILE or set $", kAdminTokenEnv,
                     " (the value of writer.admin_token in the writer's config)"));
  }
  return t;
}

AdminClient::AdminClient(std::string writer, AdminToken token)
    : writer_(std::move(writer)),
      token_(std::move(token)),
      channel_(grpc::CreateChannel(writer_, grpc::InsecureChannelCredentials())),
      stub_(mlconnector::v1::Admin::NewStub(channel_)) {}

AdminClient::AdminClient(std::string writer, AdminToken token,
                         std::unique_ptr<mlconnector::v1::Admin::StubInterface> stub)
    : writer_(std::move(writer)), token_(std::move(token)), stub_(std::move(stub)) {}

void AdminClient::Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  AddBearerToken(ctx, token_.token);
}

absl::Status AdminClient::Explain(const grpc::Status& status, const char* name,
                                  absl::Duration timeout) const {
  if (status.ok()) return absl::OkStatus();
  const std::string& detail = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // The writer itself may answer UNAVAILABLE (say, FreshBooks is down); only a
      // channel that never got ready means the writer was not reached.
      if (channel_ == nullptr || channel_->GetState(false) != GRPC_CHANNEL_READY) {
        return absl::UnavailableError(absl::StrCat(
            "cannot reach the writer at ", writer_, " (is it running? --writer / $", kWriterEnv,
            ")", detail.empty() ? "" : absl::StrCat("\n  detail: ", detail)));
      }
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(
          absl::StrCat("the writer rejected the admin token (check --admin-token-file / $",
                       kAdminTokenEnv, ")\n  the token was read from ", token_.source));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      if (channel_ != nullptr && channel_->GetState(false) != GRPC_CHANNEL_READY) {
        return absl::UnavailableError(absl::StrCat(
            "cannot reach the writer at ", writer_, " within ", absl::FormatDuration(timeout),
            " (is it running? --writer / $", kWriterEnv, ")"));
      }
      return absl::DeadlineExceededError(
          absl::StrCat("the writer at ", writer_, " did not answer ", name, " within ",
                       absl::FormatDuration(timeout),
                       " (raise --timeout; work already started may still finish in the writer)"));
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::UnimplementedError(
          absl::StrCat("the writer at ", writer_, " does not offer Admin.", name,
                       " (is it an older version than mlc?)", detail.empty() ? "" : ": ", detail));
    default:
      break;
  }
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat(name, " failed (", GrpcCodeName(status.error_code()), "): ", detail));
}

}  // namespace mlc::cli

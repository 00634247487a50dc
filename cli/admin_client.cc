#include "cli/admin_client.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

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

absl::StatusOr<AdminTls> ResolveAdminTls(
    const std::function<std::optional<std::string>(const std::string&)>& flag,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  AdminTls tls;
  // Each setting: its flag, else its variable; `source` says which, for messages.
  auto pick = [&](const char* flag_name, const char* env_name, std::string* value,
                  std::string* source) {
    if (std::optional<std::string> v = flag(flag_name); v.has_value()) {
      *value = *v;
      *source = absl::StrCat("--", flag_name);
    } else if (std::optional<std::string> e = getenv(env_name); e.has_value()) {
      *value = *e;
      *source = absl::StrCat("$", env_name);
    } else {
      *source = absl::StrCat("--", flag_name);
    }
  };
  std::string server_name_source;
  pick("tls-ca", kTlsCaEnv, &tls.config.ca_file, &tls.sources.ca_file);
  pick("tls-cert", kTlsCertEnv, &tls.config.cert_file, &tls.sources.cert_file);
  pick("tls-key", kTlsKeyEnv, &tls.config.key_file, &tls.sources.key_file);
  pick("tls-server-name", kTlsServerNameEnv, &tls.config.server_name, &server_name_source);
  if (tls.config.cert_file.empty() != tls.config.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        tls.config.cert_file.empty() ? tls.sources.key_file : tls.sources.cert_file, " needs ",
        tls.config.cert_file.empty() ? tls.sources.cert_file : tls.sources.key_file,
        " too: a client certificate goes with its private key (--tls-cert FILE --tls-key FILE)"));
  }
  if (!tls.enabled() && (!tls.config.cert_file.empty() || !tls.config.server_name.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat(tls.config.cert_file.empty() ? server_name_source : tls.sources.cert_file,
                     " needs --tls-ca FILE (or $", kTlsCaEnv,
                     "): the CA certificate that signed the writer's certificate"));
  }
  return tls;
}

absl::StatusOr<std::unique_ptr<AdminClient>> AdminClient::Create(std::string writer,
                                                                 AdminToken token,
                                                                 const AdminTls& tls) {
  grpc::ChannelArguments args;
  MLC_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                       ChannelCredentials(tls.config, tls.sources, &args));
  return std::unique_ptr<AdminClient>(
      new AdminClient(std::move(writer), std::move(token), tls, credentials, args));
}

AdminClient::AdminClient(std::string writer, AdminToken token)
    : AdminClient(std::move(writer), std::move(token), AdminTls{},
                  grpc::InsecureChannelCredentials(), grpc::ChannelArguments()) {}

AdminClient::AdminClient(std::string writer, AdminToken token, AdminTls tls,
                         const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                         const grpc::ChannelArguments& args)
    : writer_(std::move(writer)),
      token_(std::move(token)),
      tls_(std::move(tls)),
      channel_(grpc::CreateCustomChannel(writer_, credentials, args)),
      stub_(mlconnector::v1::Admin::NewStub(channel_)) {}

AdminClient::AdminClient(std::string writer, AdminToken token,
                         std::unique_ptr<mlconnector::v1::Admin::StubInterface> stub)
    : writer_(std::move(writer)), token_(std::move(token)), stub_(std::move(stub)) {}

void AdminClient::Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  AddBearerToken(ctx, token_.token);
}

std::string AdminClient::ExplainTransport(const std::string& detail) const {
  switch (ClassifyConnectFailure(detail)) {
    case ConnectFailure::kNotTls:
      return absl::StrCat("the writer at ", writer_,
                          " does not speak TLS (its writer.tls is not set): drop ",
                          tls_.sources.ca_file, " or configure TLS on the writer");
    case ConnectFailure::kUntrustedServer:
      return absl::StrCat("TLS handshake failed: the writer's certificate at ", writer_,
                          " is not signed by the CA in ", tls_.sources.ca_file, " \"",
                          tls_.config.ca_file, "\" (or it has expired)");
    case ConnectFailure::kServerNameMismatch: {
      const std::string name = tls_.config.server_name.empty()
                                   ? writer_.substr(0, writer_.rfind(':'))
                                   : tls_.config.server_name;
      return absl::StrCat("TLS handshake failed: the writer's certificate is not for \"", name,
                          "\"; pass --tls-server-name NAME (or $", kTlsServerNameEnv,
                          ") with a name the certificate carries");
    }
    case ConnectFailure::kHungUp:
      break;
    case ConnectFailure::kOther:
      return "";
  }
  if (!tls_.enabled()) {
    return absl::StrCat("the writer at ", writer_,
                        " closed the connection: the writer speaks TLS? pass --tls-ca FILE (or $",
                        kTlsCaEnv, ") with the CA certificate that signed the writer's");
  }
  if (tls_.config.cert_file.empty()) {
    return absl::StrCat("certificate rejected: the writer at ", writer_,
                        " requires a client certificate (--tls-cert/--tls-key, or $", kTlsCertEnv,
                        "/$", kTlsKeyEnv, ")");
  }
  return absl::StrCat("certificate rejected: the writer at ", writer_,
                      " did not accept the client certificate in ", tls_.sources.cert_file, " \"",
                      tls_.config.cert_file,
                      "\" (is it signed by the CA of the writer's writer.tls.client_ca_file, and "
                      "still valid?)");
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
        const std::string why = ExplainTransport(detail);
        if (!why.empty()) {
          return absl::UnavailableError(absl::StrCat(why, "\n  detail: ", detail));
        }
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

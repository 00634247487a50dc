#include "ingress/writer_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_tls.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"

namespace mlc::ingress {

// One queued submit; lives on the submitting worker's stack until it is notified.
struct GrpcWriterClient::Pending {
  const mlconnector::v1::SubmitRequest* request;
  std::chrono::system_clock::time_point deadline;
  absl::StatusOr<std::string> result = absl::UnknownError("not sent");
  absl::Notification done;
};

absl::StatusOr<std::unique_ptr<GrpcWriterClient>> GrpcWriterClient::Create(
    const IngressConfig& config) {
  grpc::ChannelArguments args;
  MLC_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                       ChannelCredentials(config.writer_tls, "ingress.writer_tls", &args));
  return std::make_unique<GrpcWriterClient>(config.writer, config.internal_token, credentials,
                                            std::move(args), config.writer_tls);
}

GrpcWriterClient::GrpcWriterClient(const std::string& target, std::string internal_token)
    : GrpcWriterClient(target, std::move(internal_token), grpc::InsecureChannelCredentials(),
                       grpc::ChannelArguments()) {}

GrpcWriterClient::GrpcWriterClient(const std::string& target, std::string internal_token,
                                   const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                   grpc::ChannelArguments args, TlsClientConfig tls)
    : target_(target), tls_(std::move(tls)), token_(std::move(internal_token)) {
  // Reconnect quickly after a writer restart (the default backoff grows to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  channel_ = grpc::CreateCustomChannel(target, credentials, args);
  stub_ = mlconnector::v1::Ingest::NewStub(channel_);
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

GrpcWriterClient::~GrpcWriterClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  dispatcher_.join();
}

absl::StatusOr<std::string> GrpcWriterClient::Submit(const mlconnector::v1::SubmitRequest& request,
                                                     std::chrono::milliseconds deadline) {
  Pending p;
  p.request = &request;
  p.deadline = std::chrono::system_clock::now() + deadline;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("ingress is shutting down");
    queue_.push_back(&p);
  }
  p.done.WaitForNotification();
  return std::move(p.result);
}

void GrpcWriterClient::DispatchLoop() {
  while (true) {
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return (stopping_ && in_flight_ == 0) || (!queue_.empty() && in_flight_ < kMaxInFlight);
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) {
        for (Pending* p : queue_) {
          p->result = absl::UnavailableError("ingress is shutting down");
          p->done.Notify();
        }
        queue_.clear();
        return;
      }
      while (!queue_.empty() && static_cast<int>(batch.size()) < kMaxBatch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      ++in_flight_;
    }

    struct Call {
      grpc::ClientContext ctx;
      mlconnector::v1::SubmitBatchRequest request;
      mlconnector::v1::SubmitBatchResponse response;
      std::vector<Pending*> items;
    };
    auto* call = new Call;
    call->items = std::move(batch);
    auto deadline = call->items.front()->deadline;
    for (Pending* p : call->items) {
      deadline = std::min(deadline, p->deadline);
      *call->request.add_submits() = *p->request;
    }
    call->ctx.set_deadline(deadline);
    AddBearerToken(&call->ctx, token_);
    stub_->async()->SubmitBatch(
        &call->ctx, &call->request, &call->response, [this, call](const grpc::Status& s) {
          const auto& results = call->response.results();
          for (size_t i = 0; i < call->items.size(); ++i) {
            Pending* p = call->items[i];
            if (!s.ok()) {
              p->result = FromGrpcStatus(s);
            } else if (static_cast<int>(i) >= results.size()) {
              p->result = absl::InternalError("writer answered fewer results than submits");
            } else if (const auto& r = results[static_cast<int>(i)]; r.code() != 0) {
              p->result = absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
            } else {
              p->result = r.delivery_id();
            }
            p->done.Notify();
          }
          delete call;
          absl::MutexLock lock(&mu_);
          --in_flight_;
        });
  }
}

absl::StatusOr<mlconnector::v1::ListSigningKeysResponse> GrpcWriterClient::ListSigningKeys(
    std::chrono::milliseconds deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  // Waiting for the channel (rather than failing fast) keeps a thread polling
  // while it reconnects; with gRPC's sync API nothing else drives a reconnect
  // when every Submit fails fast during a writer outage.
  ctx.set_wait_for_ready(true);
  AddBearerToken(&ctx, token_);
  mlconnector::v1::ListSigningKeysRequest request;
  mlconnector::v1::ListSigningKeysResponse response;
  grpc::Status s = stub_->ListSigningKeys(&ctx, request, &response);
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel_->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    // Waiting hid why the channel cannot connect (refused, TLS handshake,
    // certificate). A fail-fast call in this state is answered at once with
    // the channel's last connection error, which says it.
    grpc::ClientContext probe;
    probe.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    AddBearerToken(&probe, token_);
    grpc::Status why = stub_->ListSigningKeys(&probe, request, &response);
    if (why.ok()) return response;
    if (why.error_code() == grpc::StatusCode::UNAVAILABLE) {
      return ExplainConnectFailure(why.error_message());
    }
  }
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

absl::Status GrpcWriterClient::ExplainConnectFailure(const std::string& detail) const {
  const std::string at = absl::StrCat("the writer at ", target_);
  std::string why;
  switch (ClassifyConnectFailure(detail)) {
    case ConnectFailure::kNotTls:
      why = absl::StrCat(at,
                         " does not speak TLS: set writer.tls on the writer, or remove "
                         "ingress.writer_tls");
      break;
    case ConnectFailure::kUntrustedServer:
      why = absl::StrCat("TLS handshake failed: the certificate of ", at,
                         " is not signed by the CA in ingress.writer_tls.ca_file \"", tls_.ca_file,
                         "\" (or it has expired)");
      break;
    case ConnectFailure::kServerNameMismatch:
      why = absl::StrCat(
          "TLS handshake failed: the certificate of ", at, " is not for \"",
          tls_.server_name.empty() ? target_.substr(0, target_.rfind(':')) : tls_.server_name,
          "\": set ingress.writer_tls.server_name to a name it carries");
      break;
    case ConnectFailure::kHungUp:
      if (!tls_.enabled()) {
        why = absl::StrCat(at,
                           " closed the connection: does it speak TLS? Then set "
                           "ingress.writer_tls.ca_file to the CA that signed its certificate");
      } else if (tls_.cert_file.empty()) {
        why = absl::StrCat(at,
                           " closed the TLS connection: does it require a client certificate "
                           "(writer.tls.client_ca_file)? Then set ingress.writer_tls.cert_file "
                           "and key_file");
      } else {
        why = absl::StrCat(at, " did not accept the client certificate in ",
                           "ingress.writer_tls.cert_file \"", tls_.cert_file,
                           "\" (is it signed by the CA of the writer's writer.tls.client_ca_file, "
                           "and still valid?)");
      }
      break;
    case ConnectFailure::kOther:
      why = absl::StrCat("cannot connect to ", at);
      break;
  }
  return absl::UnavailableError(absl::StrCat(why, " (gRPC: ", detail, ")"));
}

absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse>
GrpcWriterClient::CompleteAuthorization(
    const mlconnector::v1::CompleteAuthorizationRequest& request,
    std::chrono::milliseconds deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  // Fails fast (no wait_for_ready): a user waiting in a browser is better served
  // by an immediate "try again" than by a page that hangs for the whole deadline
  // while the writer is down. The key refresher keeps the channel reconnecting.
  AddBearerToken(&ctx, token_);
  mlconnector::v1::CompleteAuthorizationResponse response;
  grpc::Status s = stub_->CompleteAuthorization(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

}  // namespace mlc::ingress

#include "ingress/writer_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/notification.h"
#include "common/grpc_util.h"

namespace mlc::ingress {

GrpcWriterClient::GrpcWriterClient(const std::string& target, std::string internal_token)
    : token_(std::move(internal_token)) {
  grpc::ChannelArguments args;
  // Reconnect quickly after a writer restart (the default backoff grows to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  stub_ = mlconnector::v1::Ingest::NewStub(channel);
}

absl::StatusOr<std::string> GrpcWriterClient::Submit(const mlconnector::v1::SubmitRequest& request,
                                                     std::chrono::milliseconds deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  AddBearerToken(&ctx, token_);
  mlconnector::v1::SubmitResponse response;
  // The callback API completes the call on gRPC's own poller, so the HTTP worker
  // just sleeps until it is woken once; the blocking API would make every worker
  // take turns polling the channel, which costs far more context switches.
  absl::Notification done;
  grpc::Status s;
  stub_->async()->Submit(&ctx, &request, &response, [&](grpc::Status status) {
    s = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  if (!s.ok()) return FromGrpcStatus(s);
  return response.delivery_id();
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
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

}  // namespace mlc::ingress

// Ingest: the gRPC service ingress calls. A thin adapter: it checks the internal
// token, turns the proto into a journal Delivery, and finishes the call from the
// journal's completion callback - so the answer (and ingress's 202) happens only
// after the fsync that made the delivery durable. Uses gRPC's callback API, so a
// submit waiting for its group commit holds no thread. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "common/clock.h"
#include "common/metrics.h"
#include "mlconnector/v1/ingest.grpc.pb.h"
#include "writer/journal.h"
#include "writer/pipeline.h"
#include "writer/signing_keys.h"

namespace mlc::writer {

struct IngestMetrics {
  Family<Counter>* submits = nullptr;   // {kind, outcome}
  Histogram* submit_seconds = nullptr;  // receive -> durable
};

class IngestService final : public mlconnector::v1::Ingest::CallbackService {
 public:
  IngestService(std::string internal_token, Journal* journal, Pipeline* pipeline, SigningKeys* keys,
                Clock* clock, IngestMetrics metrics);
  ~IngestService() override;  // joins authorizations in flight

  // Completes FreshBooks OAuth (it calls FreshBooks, so it runs on its own
  // thread, not on gRPC's). Unset: CompleteAuthorization is FAILED_PRECONDITION.
  using Authorizer = std::function<absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse>(
      const mlconnector::v1::CompleteAuthorizationRequest&)>;
  void SetAuthorizer(Authorizer authorizer);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx,
                                   const mlconnector::v1::SubmitRequest* request,
                                   mlconnector::v1::SubmitResponse* response) override;
  grpc::ServerUnaryReactor* SubmitBatch(grpc::CallbackServerContext* ctx,
                                        const mlconnector::v1::SubmitBatchRequest* request,
                                        mlconnector::v1::SubmitBatchResponse* response) override;
  grpc::ServerUnaryReactor* ListSigningKeys(
      grpc::CallbackServerContext* ctx, const mlconnector::v1::ListSigningKeysRequest* request,
      mlconnector::v1::ListSigningKeysResponse* response) override;
  grpc::ServerUnaryReactor* CompleteAuthorization(
      grpc::CallbackServerContext* ctx,
      const mlconnector::v1::CompleteAuthorizationRequest* request,
      mlconnector::v1::CompleteAuthorizationResponse* response) override;

 private:
  bool Authorized(grpc::CallbackServerContext* ctx, const char* method);
  // Validates a submit and turns it into a journal Delivery; a non-OK status is
  // the answer for that submit.
  grpc::Status Prepare(const mlconnector::v1::SubmitRequest& request, absl::Time now, Delivery* d);
  // Journals `d`; `done` runs on the journal's committer thread once it is durable
  // (OK and the delivery id) or failed (UNAVAILABLE).
  void Append(Delivery d, absl::Time received,
              std::function<void(const grpc::Status&, const std::string&)> done);

  const std::string internal_token_;
  Journal* journal_;
  Pipeline* pipeline_;
  SigningKeys* keys_;
  Clock* clock_;
  IngestMetrics metrics_;
  Counter* events_ok_ = nullptr;  // hot children of metrics_.submits
  Counter* events_error_ = nullptr;
  Authorizer authorizer_;
  absl::Mutex threads_mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(threads_mu_);
};

}  // namespace mlc::writer

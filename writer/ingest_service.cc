#include "writer/ingest_service.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>

#include "common/grpc_util.h"
#include "common/ids.h"
#include "common/logging.h"

namespace mlc::writer {
namespace {

using mlconnector::v1::ListSigningKeysRequest;
using mlconnector::v1::ListSigningKeysResponse;
using mlconnector::v1::SubmitBatchRequest;
using mlconnector::v1::SubmitBatchResponse;
using mlconnector::v1::SubmitRequest;
using mlconnector::v1::SubmitResponse;

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const grpc::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(s);
  return reactor;
}

std::string FieldsJson(const mlconnector::v1::WebhookEvent& e) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& f : e.fields()) arr.push_back({f.name(), f.value()});
  // Field values were validated as UTF-8 by ingress; replace rather than throw
  // should a caller ever send something else.
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

IngestService::IngestService(std::string internal_token, Journal* journal, Pipeline* pipeline,
                             SigningKeys* keys, Clock* clock, IngestMetrics metrics)
    : internal_token_(std::move(internal_token)),
      journal_(journal),
      pipeline_(pipeline),
      keys_(keys),
      clock_(clock),
      metrics_(metrics) {
  if (metrics_.submits != nullptr) {
    events_ok_ = metrics_.submits->With({"event", "ok"});
    events_error_ = metrics_.submits->With({"event", "error"});
  }
}

IngestService::~IngestService() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&threads_mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

void IngestService::SetAuthorizer(Authorizer authorizer) { authorizer_ = std::move(authorizer); }

grpc::ServerUnaryReactor* IngestService::CompleteAuthorization(
    grpc::CallbackServerContext* ctx, const mlconnector::v1::CompleteAuthorizationRequest* request,
    mlconnector::v1::CompleteAuthorizationResponse* response) {
  if (!Authorized(ctx, "CompleteAuthorization")) {
    return FinishNow(
        ctx, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong internal token"));
  }
  if (!authorizer_) {
    return FinishNow(ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                       "this writer has no FreshBooks OAuth configured"));
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::MutexLock lock(&threads_mu_);
  threads_.emplace_back([this, reactor, request, response] {
    absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> r = authorizer_(*request);
    if (r.ok()) {
      *response = std::move(*r);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(ToGrpcStatus(r.status()));
    }
  });
  return reactor;
}

bool IngestService::Authorized(grpc::CallbackServerContext* ctx, const char* method) {
  if (HasBearerToken(*ctx, internal_token_)) return true;
  log::Warn("ingest: rejected a call without a valid internal token",
            {{"method", method}, {"peer", ctx->peer()}});
  if (metrics_.submits != nullptr) metrics_.submits->With({"any", "unauthenticated"})->Inc();
  return false;
}

grpc::Status IngestService::Prepare(const SubmitRequest& request, absl::Time now, Delivery* d) {
  d->delivery_id = NewDeliveryId(now);
  d->available_at = absl::InfinitePast();  // the journal uses its commit time
  if (request.has_event()) {
    const auto& e = request.event();
    if (!keys_->HasConnection(e.connection_id())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown connection \"" + e.connection_id() + "\"");
    }
    if (e.event_type().empty() || e.object_id().empty() || e.account_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "event needs event_type, object_id and account_id");
    }
    d->kind = "event";
    d->connection_id = e.connection_id();
    d->event_type = e.event_type();
    d->object_type = e.object_type();
    d->object_id = e.object_id();
    d->account_id = e.account_id();
    d->business_id = e.business_id();
    d->identity_id = e.identity_id();
    d->user_id = e.user_id();
    d->received_at = absl::FromUnixMicros(e.received_at_unix_micros());
    d->payload = FieldsJson(e);
    d->status = DeliveryStatus::kPending;
  } else if (request.has_handshake()) {
    const auto& h = request.handshake();
    if (!keys_->HasConnection(h.connection_id())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown connection \"" + h.connection_id() + "\"");
    }
    d->kind = "handshake";
    d->connection_id = h.connection_id();
    d->event_type = "callback.verify";
    d->object_type = "callback";
    d->object_id = h.callback_id();
    d->received_at = absl::FromUnixMicros(h.received_at_unix_micros());
    // The verifier is a secret: the journal records that a handshake came, not the key.
    d->payload = nlohmann::json::array({{"object_id", h.callback_id()}, {"verifier", "[redacted]"}})
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    d->status = DeliveryStatus::kHandshake;
    keys_->RecordHandshake(h.connection_id(), h.callback_id(), h.verifier());
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty submit");
  }
  if (d->received_at == absl::UnixEpoch()) d->received_at = now;
  return grpc::Status::OK;
}

void IngestService::Append(Delivery d, absl::Time received,
                           std::function<void(const grpc::Status&, const std::string&)> done) {
  const std::string id = d.delivery_id;
  const std::string kind = d.kind;
  const std::string connection = d.connection_id;
  journal_->Append(std::move(d), [this, id, kind, connection, received,
                                  done = std::move(done)](const absl::Status& s) {
    if (metrics_.submits != nullptr) {
      (kind == "event" ? (s.ok() ? events_ok_ : events_error_)
                       : metrics_.submits->With({kind, s.ok() ? "ok" : "error"}))
          ->Inc();
    }
    if (metrics_.submit_seconds != nullptr) {
      metrics_.submit_seconds->Observe(absl::ToDoubleSeconds(clock_->Now() - received));
    }
    if (s.ok()) {
      if (kind == "event") pipeline_->Notify(1);
      if (kind == "handshake") {
        log::Info(
            "ingest: verification handshake recorded; it is trusted only once FreshBooks "
            "accepts the verifier at registration",
            {{"connection", connection}, {"delivery_id", id}});
      }
      done(grpc::Status::OK, id);
    } else {
      log::Error("ingest: journal append failed; ingress will answer 503 and FreshBooks retries",
                 {{"connection", connection}, {"error", s.ToString()}});
      done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "journal unavailable"), "");
    }
  });
}

grpc::ServerUnaryReactor* IngestService::Submit(grpc::CallbackServerContext* ctx,
                                                const SubmitRequest* request,
                                                SubmitResponse* response) {
  if (!Authorized(ctx, "Submit")) {
    return FinishNow(
        ctx, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong internal token"));
  }
  const absl::Time now = clock_->Now();
  Delivery d;
  if (grpc::Status s = Prepare(*request, now, &d); !s.ok()) return FinishNow(ctx, s);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Append(std::move(d), now, [reactor, response](const grpc::Status& s, const std::string& id) {
    if (s.ok()) response->set_delivery_id(id);
    reactor->Finish(s);
  });
  return reactor;
}

grpc::ServerUnaryReactor* IngestService::SubmitBatch(grpc::CallbackServerContext* ctx,
                                                     const SubmitBatchRequest* request,
                                                     SubmitBatchResponse* response) {
  if (!Authorized(ctx, "SubmitBatch")) {
    return FinishNow(
        ctx, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong internal token"));
  }
  const int n = request->submits_size();
  if (n == 0) return FinishNow(ctx, grpc::Status::OK);
  const absl::Time now = clock_->Now();
  for (int i = 0; i < n; ++i) response->add_results();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // The last item to complete (validation failure or journal callback) finishes
  // the call; the counter starts at n + 1 so the loop below holds it open.
  auto remaining = std::make_shared<std::atomic<int>>(n + 1);
  auto finish_one = [reactor, remaining]() {
    if (remaining->fetch_sub(1) == 1) reactor->Finish(grpc::Status::OK);
  };
  for (int i = 0; i < n; ++i) {
    mlconnector::v1::SubmitResult* result = response->mutable_results(i);
    Delivery d;
    if (grpc::Status s = Prepare(request->submits(i), now, &d); !s.ok()) {
      result->set_code(s.error_code());
      result->set_message(s.error_message());
      finish_one();
      continue;
    }
    Append(std::move(d), now, [result, finish_one](const grpc::Status& s, const std::string& id) {
      result->set_code(s.error_code());
      result->set_message(s.error_message());
      result->set_delivery_id(id);
      finish_one();
    });
  }
  finish_one();
  return reactor;
}

grpc::ServerUnaryReactor* IngestService::ListSigningKeys(grpc::CallbackServerContext* ctx,
                                                         const ListSigningKeysRequest* /*request*/,
                                                         ListSigningKeysResponse* response) {
  if (!Authorized(ctx, "ListSigningKeys")) {
    return FinishNow(
        ctx, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong internal token"));
  }
  uint64_t version = 0;
  for (const auto& [connection, keys] : keys_->Snapshot(&version)) {
    auto* c = response->add_connections();
    c->set_connection_id(connection);
    for (const KeyEntry& k : keys) {
      auto* key = c->add_keys();
      key->set_key_id(k.key_id);
      key->set_secret(k.secret);
    }
  }
  response->set_version(version);
  return FinishNow(ctx, grpc::Status::OK);
}

}  // namespace mlc::writer

#include "writer/admin_service.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_util.h"
#include "common/logging.h"

namespace mlc::writer {
namespace {

namespace pb = ::mlconnector::v1;

const grpc::Status kUnauthenticated(grpc::StatusCode::UNAUTHENTICATED,
                                    "missing or wrong admin token (authorization: Bearer ...)");
const grpc::Status kNoJournal(grpc::StatusCode::UNAVAILABLE,
                              "the journal is not open in this writer");
const grpc::Status kNoConnections(grpc::StatusCode::UNAVAILABLE,
                                  "FreshBooks connections are not set up in this writer");

grpc::Status InvalidArgument(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t us = absl::ToUnixMicros(t);
  int64_t seconds = us / 1000000;
  int64_t micros = us % 1000000;
  if (micros < 0) {  // Timestamp's nanos are never negative
    micros += 1000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(micros * 1000));
}

// google.protobuf.Timestamp's valid range: 0001-01-01 .. 9999-12-31.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

grpc::Status FromProto(const google::protobuf::Timestamp& t, const char* field, absl::Time* out) {
  if (t.seconds() < kMinTimestampSeconds || t.seconds() > kMaxTimestampSeconds || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return InvalidArgument(absl::StrCat(field, ": not a valid timestamp (seconds ", t.seconds(),
                                        ", nanos ", t.nanos(), "); use an RFC 3339 time"));
  }
  *out = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return grpc::Status::OK;
}

// DeliveryFilter -> DeliveryQuery; `prefix` names the field in errors ("filter").
grpc::Status FromProto(const pb::DeliveryFilter& f, const std::string& prefix, DeliveryQuery* out) {
  out->connection_id = f.connection_id();
  out->event_type = f.event_type();
  out->object_id = f.object_id();
  out->error_contains = f.error_contains();
  for (int i = 0; i < f.statuses_size(); ++i) {
    std::optional<DeliveryStatus> st = ParseDeliveryStatus(f.statuses(i));
    if (!st.has_value()) {
      return InvalidArgument(absl::StrCat(prefix, ".statuses[", i, "] \"", f.statuses(i),
                                          "\": unknown status; use pending, written, dead or "
                                          "handshake"));
    }
    out->statuses.push_back(*st);
  }
  if (f.has_received_after()) {
    absl::Time t;
    const std::string field = prefix + ".received_after";
    if (grpc::Status s = FromProto(f.received_after(), field.c_str(), &t); !s.ok()) return s;
    out->received_after = t;
  }
  if (f.has_received_before()) {
    absl::Time t;
    const std::string field = prefix + ".received_before";
    if (grpc::Status s = FromProto(f.received_before(), field.c_str(), &t); !s.ok()) return s;
    out->received_before = t;
  }
  if (out->received_after.has_value() && out->received_before.has_value() &&
      *out->received_after >= *out->received_before) {
    return InvalidArgument(absl::StrCat(prefix, ".received_after must be before ", prefix,
                                        ".received_before (the range is [after, before))"));
  }
  return grpc::Status::OK;
}

void ToProto(const Delivery& d, bool with_payload, pb::Delivery* out) {
  out->set_delivery_id(d.delivery_id);
  out->set_connection_id(d.connection_id);
  out->set_kind(d.kind);
  out->set_event_type(d.event_type);
  out->set_object_type(d.object_type);
  out->set_object_id(d.object_id);
  out->set_account_id(d.account_id);
  out->set_business_id(d.business_id);
  out->set_identity_id(d.identity_id);
  out->set_user_id(d.user_id);
  ToProto(d.received_at, out->mutable_received_at());
  ToProto(d.journaled_at, out->mutable_journaled_at());
  out->set_status(DeliveryStatusName(d.status));
  out->set_attempts(d.attempts);
  if (d.status == DeliveryStatus::kPending) {
    ToProto(d.available_at, out->mutable_next_attempt_at());
  }
  out->set_last_error(d.last_error);
  if (d.finished_at.has_value()) ToProto(*d.finished_at, out->mutable_finished_at());
  if (with_payload) out->set_payload(d.payload);
  out->set_replays(d.replays);
}

// What a replay was asked to do, for the log (ids are counted, not listed).
std::string Describe(const pb::ReplayRequest& r) {
  if (r.delivery_ids_size() > 0) {
    return r.delivery_ids_size() == 1 ? absl::StrCat("delivery ", r.delivery_ids(0))
                                      : absl::StrCat(r.delivery_ids_size(), " delivery ids");
  }
  const pb::DeliveryFilter& f = r.filter();
  std::vector<std::string> parts;
  if (!f.connection_id().empty()) parts.push_back(absl::StrCat("connection=", f.connection_id()));
  if (!f.event_type().empty()) parts.push_back(absl::StrCat("event=", f.event_type()));
  if (!f.object_id().empty()) parts.push_back(absl::StrCat("object=", f.object_id()));
  if (f.statuses_size() > 0) {
    parts.push_back(absl::StrCat("status=", absl::StrJoin(f.statuses(), "|")));
  }
  if (f.has_received_after()) {
    parts.push_back(absl::StrCat("received_after=", f.received_after().seconds()));
  }
  if (f.has_received_before()) {
    parts.push_back(absl::StrCat("received_before=", f.received_before().seconds()));
  }
  if (!f.error_contains().empty()) {
    parts.push_back(absl::StrCat("error~\"", f.error_contains(), "\""));
  }
  return absl::StrCat("filter ", absl::StrJoin(parts, " "));
}

}  // namespace

AdminService::AdminService(std::string admin_token, FreshBooksConnections* connections,
                           SigningKeys* keys, Syncer* syncer, SyncScheduler::TargetFor target_for,
                           AdminJournal journal)
    : admin_token_(std::move(admin_token)),
      connections_(connections),
      keys_(keys),
      syncer_(syncer),
      target_for_(std::move(target_for)),
      journal_(std::move(journal)) {}

bool AdminService::Authorized(grpc::ServerContext* ctx, const char* method) const {
  if (!admin_token_.empty() && HasBearerToken(*ctx, admin_token_)) return true;
  log::Warn("admin: rejected a call without a valid admin token",
            {{"method", method}, {"peer", ctx->peer()}});
  return false;
}

grpc::Status AdminService::ListConnections(grpc::ServerContext* ctx,
                                           const mlconnector::v1::ListConnectionsRequest*,
                                           mlconnector::v1::ListConnectionsResponse* response) {
  if (!Authorized(ctx, "ListConnections")) return kUnauthenticated;
  if (!ConnectionsAvailable()) return kNoConnections;
  uint64_t version = 0;
  auto keys = keys_->Snapshot(&version);
  for (const ConnectionConfig& c : connections_->configs()) {
    auto* info = response->add_connections();
    info->set_connection_id(c.id);
    info->set_oauth_configured(connections_->OAuthConfigured(c.id));
    info->set_webhook_url(c.freshbooks.webhook_url);
    info->set_signing_keys(static_cast<int32_t>(keys[c.id].size()));
    if (std::optional<FreshBooksIdentity> id = connections_->Identity(c.id); id.has_value()) {
      info->set_authorized(true);
      info->set_account_id(id->account_id);
      info->set_business_id(id->business_id);
      info->set_business_uuid(id->business_uuid);
      info->set_business_name(id->business_name);
    }
    if (FreshBooksClient* client = connections_->Client(c.id); client != nullptr) {
      if (std::optional<std::string> why = client->NeedsReauthorization(); why.has_value()) {
        info->set_needs_reauthorization(true);
        info->set_reauthorization_reason(*why);
      }
    }
    info->set_last_sync_unix(syncer_->LastSuccess(c.id));
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::StartAuthorization(
    grpc::ServerContext* ctx, const mlconnector::v1::StartAuthorizationRequest* request,
    mlconnector::v1::StartAuthorizationResponse* response) {
  if (!Authorized(ctx, "StartAuthorization")) return kUnauthenticated;
  if (!ConnectionsAvailable()) return kNoConnections;
  auto r = connections_->StartAuthorization(request->connection_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  response->set_authorization_url(r->first);
  response->set_expires_at_unix(absl::ToUnixSeconds(r->second));
  return grpc::Status::OK;
}

grpc::Status AdminService::RegisterWebhooks(grpc::ServerContext* ctx,
                                            const mlconnector::v1::RegisterWebhooksRequest* request,
                                            mlconnector::v1::RegisterWebhooksResponse* response) {
  if (!Authorized(ctx, "RegisterWebhooks")) return kUnauthenticated;
  if (!ConnectionsAvailable()) return kNoConnections;
  const int wait = std::clamp(request->wait_seconds(), 0, 120);
  auto r = connections_->RegisterWebhooks(request->connection_id(), absl::Seconds(wait));
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (const CallbackStatus& st : *r) {
    auto* cb = response->add_callbacks();
    cb->set_event(st.event);
    cb->set_callback_id(st.callback_id);
    cb->set_status(st.status);
    cb->set_uri(st.uri);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::Sync(grpc::ServerContext* ctx,
                                const mlconnector::v1::SyncRequest* request,
                                mlconnector::v1::SyncResponse* response) {
  if (!Authorized(ctx, "Sync")) return kUnauthenticated;
  if (!ConnectionsAvailable()) return kNoConnections;
  if (connections_->Config(request->connection_id()) == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("unknown connection \"", request->connection_id(), "\""));
  }
  std::optional<SyncTarget> target = target_for_(request->connection_id());
  if (!target.has_value()) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("connection \"", request->connection_id(),
                     "\" cannot sync: it needs FreshBooks OAuth configured and authorized "
                     "(mlc authorize --connection ",
                     request->connection_id(), ")"));
  }
  SyncOptions options;
  options.entities.assign(request->entities().begin(), request->entities().end());
  options.full = request->full();
  // The caller gave up (Ctrl-C, deadline) or the server is shutting down (its
  // Shutdown deadline cancels calls in flight): stop between pages.
  options.cancelled = [ctx] { return ctx->IsCancelled(); };
  auto r = syncer_->Run(request->connection_id(), *target, options);
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (const EntitySyncResult& e : r->entities) {
    auto* out = response->add_entities();
    out->set_entity(e.entity);
    out->set_objects(e.objects);
    out->set_deleted(e.deleted);
    out->set_pages(e.pages);
    out->set_updated_min(e.updated_min);
    if (!e.status.ok()) out->set_error(std::string(e.status.message()));
  }
  response->set_seconds(absl::ToDoubleSeconds(r->took));
  return grpc::Status::OK;
}

grpc::Status AdminService::ListDeliveries(grpc::ServerContext* ctx,
                                          const pb::ListDeliveriesRequest* request,
                                          pb::ListDeliveriesResponse* response) {
  if (!Authorized(ctx, "ListDeliveries")) return kUnauthenticated;
  if (journal_.journal == nullptr) return kNoJournal;
  DeliveryQuery query;
  if (grpc::Status s = FromProto(request->filter(), "filter", &query); !s.ok()) return s;
  DeliveryPageRequest page;
  page.page_size = request->page_size();
  page.page_token = request->page_token();
  absl::StatusOr<DeliveryPage> r = journal_.journal->List(query, page);
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (const Delivery& d : r->deliveries) ToProto(d, false, response->add_deliveries());
  response->set_next_page_token(r->next_page_token);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetDelivery(grpc::ServerContext* ctx,
                                       const pb::GetDeliveryRequest* request,
                                       pb::GetDeliveryResponse* response) {
  if (!Authorized(ctx, "GetDelivery")) return kUnauthenticated;
  if (journal_.journal == nullptr) return kNoJournal;
  if (request->delivery_id().empty()) {
    return InvalidArgument("delivery_id is empty: pass an id from ListDeliveries");
  }
  absl::StatusOr<std::optional<Delivery>> d = journal_.journal->Get(request->delivery_id());
  if (!d.ok()) return ToGrpcStatus(d.status());
  if (!d->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("delivery \"", request->delivery_id(),
                                     "\" is not in the journal (a written delivery older than "
                                     "writer.audit_retention_days is compacted away)"));
  }
  absl::StatusOr<std::vector<Attempt>> attempts =
      journal_.journal->Attempts(request->delivery_id());
  if (!attempts.ok()) return ToGrpcStatus(attempts.status());
  ToProto(**d, true, response->mutable_delivery());
  for (const Attempt& a : *attempts) {
    pb::Attempt* out = response->add_attempts();
    out->set_stage(a.stage);
    out->set_outcome(a.outcome);
    out->set_http_status(a.http_status);
    out->set_error(a.error);
    out->set_duration_ms(absl::ToDoubleMilliseconds(a.duration));
    ToProto(a.at, out->mutable_at());
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::Replay(grpc::ServerContext* ctx, const pb::ReplayRequest* request,
                                  pb::ReplayResponse* response) {
  if (!Authorized(ctx, "Replay")) return kUnauthenticated;
  if (journal_.journal == nullptr) return kNoJournal;
  ReplayRequest r;
  // By ids when any are given (the filter is then not used, as admin.proto says).
  r.delivery_ids.assign(request->delivery_ids().begin(), request->delivery_ids().end());
  for (size_t i = 0; i < r.delivery_ids.size(); ++i) {
    if (r.delivery_ids[i].empty()) {
      return InvalidArgument(absl::StrCat("delivery_ids[", i, "] is empty"));
    }
  }
  if (r.delivery_ids.empty()) {
    if (grpc::Status s = FromProto(request->filter(), "filter", &r.filter); !s.ok()) return s;
    if (r.filter.empty()) {
      return InvalidArgument(
          "replay needs delivery_ids or a filter with at least one field set (for example "
          "filter.statuses: [\"dead\"] and filter.connection_id); replaying everything is not "
          "allowed");
    }
  }
  r.dry_run = request->dry_run();
  r.limit = request->limit();
  absl::StatusOr<ReplayResult> result = journal_.journal->Replay(r);
  if (!result.ok()) {
    log::Warn("admin: replay failed",
              {{"request", Describe(*request)}, {"error", result.status().ToString()}});
    return ToGrpcStatus(result.status());
  }
  log::Info(r.dry_run ? "admin: replay (dry run, nothing changed)" : "admin: replay",
            {{"request", Describe(*request)},
             {"connection", r.delivery_ids.empty() ? r.filter.connection_id : std::string()},
             {"matched", result->matched},
             {"replayed", result->replayed},
             {"not_found", static_cast<int64_t>(result->not_found.size())},
             {"skipped", static_cast<int64_t>(result->skipped.size())},
             {"truncated", result->truncated},
             {"dry_run", r.dry_run},
             {"peer", ctx->peer()}});
  if (result->replayed > 0 && journal_.on_replay) {
    journal_.on_replay(static_cast<int>(std::min<int64_t>(result->replayed, INT32_MAX)));
  }
  response->set_matched(result->matched);
  response->set_replayed(result->replayed);
  for (const std::string& id : result->delivery_ids) response->add_delivery_ids(id);
  for (const std::string& id : result->not_found) response->add_not_found(id);
  for (const std::string& s : result->skipped) response->add_skipped(s);
  response->set_dry_run(r.dry_run);
  response->set_truncated(result->truncated);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetStats(grpc::ServerContext* ctx, const pb::GetStatsRequest* request,
                                    pb::GetStatsResponse* response) {
  if (!Authorized(ctx, "GetStats")) return kUnauthenticated;
  if (journal_.journal == nullptr) return kNoJournal;
  const std::string& id = request->connection_id();
  absl::StatusOr<JournalStats> stats = journal_.journal->Stats(id);
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  // Configured connections without deliveries yet show up with zeros; one that is
  // only in the journal (since removed from config) keeps its figures.
  std::map<std::string, ConnectionStats> by_id;
  for (ConnectionStats& c : stats->connections) by_id[c.connection_id] = std::move(c);
  if (connections_ != nullptr) {
    for (const ConnectionConfig& c : connections_->configs()) {
      if ((id.empty() || c.id == id) && by_id.count(c.id) == 0) by_id[c.id].connection_id = c.id;
    }
  }
  if (!id.empty() && by_id.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("unknown connection \"", id,
                                     "\": not configured and no deliveries in the journal"));
  }
  for (const auto& [cid, c] : by_id) {
    pb::ConnectionStats* out = response->add_connections();
    out->set_connection_id(cid);
    out->set_pending(c.pending);
    out->set_written(c.written);
    out->set_dead(c.dead);
    out->set_handshakes(c.handshakes);
    out->set_retrying(c.retrying);
    if (c.oldest_pending_received_at.has_value()) {
      ToProto(*c.oldest_pending_received_at, out->mutable_oldest_pending_received_at());
    }
    if (c.last_written_at.has_value()) ToProto(*c.last_written_at, out->mutable_last_written_at());
    for (const DeadLetterGroup& g : c.dead_letters) {
      pb::DeadLetterReason* reason = out->add_dead_letters();
      reason->set_reason(g.reason);
      reason->set_count(g.count);
      ToProto(g.latest, reason->mutable_latest());
    }
    out->set_received_last_hour(c.received_last_hour);
    out->set_written_last_hour(c.written_last_hour);
  }
  response->set_journal_bytes(stats->journal_bytes);
  if (journal_.retention != nullptr) {
    const RetentionStatus r = journal_.retention->status();
    response->set_audit_retention_days(r.retention_days);
    if (r.last_compaction.has_value()) {
      ToProto(*r.last_compaction, response->mutable_last_compaction());
    }
    response->set_compacted_total(r.compacted_total);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::CheckConnection(grpc::ServerContext* ctx,
                                           const mlconnector::v1::CheckConnectionRequest* request,
                                           mlconnector::v1::CheckConnectionResponse* response) {
  if (!Authorized(ctx, "CheckConnection")) return kUnauthenticated;
  if (checker_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection checks are not available");
  }
  absl::StatusOr<CheckReport> report = checker_->Check(request->connection_id());
  if (!report.ok()) return ToGrpcStatus(report.status());
  log::Info("admin: connection checked", {{"connection", request->connection_id()},
                                          {"ok", report->ok},
                                          {"steps", static_cast<int64_t>(report->steps.size())},
                                          {"peer", ctx->peer()}});
  *response = ToProto(*report);
  return grpc::Status::OK;
}

}  // namespace mlc::writer

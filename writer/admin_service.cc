#include "writer/admin_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"

namespace mlc::writer {
namespace {

const grpc::Status kUnauthenticated(grpc::StatusCode::UNAUTHENTICATED,
                                    "missing or wrong admin token (authorization: Bearer ...)");

}  // namespace

AdminService::AdminService(std::string admin_token, FreshBooksConnections* connections,
                           SigningKeys* keys, Syncer* syncer, SyncScheduler::TargetFor target_for)
    : admin_token_(std::move(admin_token)),
      connections_(connections),
      keys_(keys),
      syncer_(syncer),
      target_for_(std::move(target_for)) {}

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

}  // namespace mlc::writer

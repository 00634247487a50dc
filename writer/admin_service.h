// Admin: the operators' gRPC service (proto/mlconnector/v1/admin.proto). A thin
// adapter over FreshBooksConnections and Syncer: it checks the admin token
// (`authorization: Bearer`, compared in constant time; a wrong or missing token
// is UNAUTHENTICATED and logged with the peer) and converts proto <-> domain.
// Synchronous service: its calls may take minutes (a backfill), so they run on
// gRPC's sync thread pool, not on the callback threads Ingest uses. Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "mlconnector/v1/admin.grpc.pb.h"
#include "writer/freshbooks_connections.h"
#include "writer/freshbooks_sync.h"
#include "writer/signing_keys.h"

namespace mlc::writer {

class AdminService final : public mlconnector::v1::Admin::Service {
 public:
  AdminService(std::string admin_token, FreshBooksConnections* connections, SigningKeys* keys,
               Syncer* syncer, SyncScheduler::TargetFor target_for);

  grpc::Status ListConnections(grpc::ServerContext* ctx,
                               const mlconnector::v1::ListConnectionsRequest* request,
                               mlconnector::v1::ListConnectionsResponse* response) override;
  grpc::Status StartAuthorization(grpc::ServerContext* ctx,
                                  const mlconnector::v1::StartAuthorizationRequest* request,
                                  mlconnector::v1::StartAuthorizationResponse* response) override;
  grpc::Status RegisterWebhooks(grpc::ServerContext* ctx,
                                const mlconnector::v1::RegisterWebhooksRequest* request,
                                mlconnector::v1::RegisterWebhooksResponse* response) override;
  grpc::Status Sync(grpc::ServerContext* ctx, const mlconnector::v1::SyncRequest* request,
                    mlconnector::v1::SyncResponse* response) override;

 private:
  bool Authorized(grpc::ServerContext* ctx, const char* method) const;

  const std::string admin_token_;
  FreshBooksConnections* connections_;
  SigningKeys* keys_;
  Syncer* syncer_;
  SyncScheduler::TargetFor target_for_;
};

}  // namespace mlc::writer

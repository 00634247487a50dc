// Admin: the operators' gRPC service (proto/mlconnector/v1/admin.proto). A thin
// adapter over FreshBooksConnections, Syncer and the Journal: it checks the admin
// token (`authorization: Bearer`, compared in constant time; a wrong or missing
// token is UNAUTHENTICATED and logged with the peer) on every method, validates
// requests (INVALID_ARGUMENT naming the field and the fix) and converts proto <->
// domain; the work (filters, paging, replay, stats) is the journal's.
//
// Every replay is logged at info (filter or id count, matched, replayed, dry run,
// peer) - an operator action must be visible in the log - and after a real one
// the pipeline is told (AdminJournal::on_replay) so it picks the deliveries up at
// once. Replaying "everything" by accident is impossible: a replay needs ids or a
// non-empty filter.
//
// Synchronous service: its calls may take minutes (a backfill), so they run on
// gRPC's sync thread pool, not on the callback threads Ingest uses. Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "mlconnector/v1/admin.grpc.pb.h"
#include "writer/connection_check.h"
#include "writer/freshbooks_connections.h"
#include "writer/freshbooks_sync.h"
#include "writer/journal.h"
#include "writer/journal_retention.h"
#include "writer/signing_keys.h"

namespace mlc::writer {

// What the delivery RPCs (ListDeliveries, GetDelivery, Replay, GetStats) use.
struct AdminJournal {
  Journal* journal = nullptr;  // null: those RPCs answer UNAVAILABLE
  // Told how many deliveries a replay made pending (the pipeline's Notify).
  std::function<void(int)> on_replay;
  const JournalRetention* retention = nullptr;  // null: GetStats reports retention off
};

class AdminService final : public mlconnector::v1::Admin::Service {
 public:
  // `connections`, `keys` and `syncer` may be null when only the delivery RPCs
  // are served (tests); the connection RPCs need them.
  AdminService(std::string admin_token, FreshBooksConnections* connections, SigningKeys* keys,
               Syncer* syncer, SyncScheduler::TargetFor target_for, AdminJournal journal = {});

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

  grpc::Status ListDeliveries(grpc::ServerContext* ctx,
                              const mlconnector::v1::ListDeliveriesRequest* request,
                              mlconnector::v1::ListDeliveriesResponse* response) override;
  grpc::Status GetDelivery(grpc::ServerContext* ctx,
                           const mlconnector::v1::GetDeliveryRequest* request,
                           mlconnector::v1::GetDeliveryResponse* response) override;
  grpc::Status Replay(grpc::ServerContext* ctx, const mlconnector::v1::ReplayRequest* request,
                      mlconnector::v1::ReplayResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const mlconnector::v1::GetStatsRequest* request,
                        mlconnector::v1::GetStatsResponse* response) override;
  // Runs ConnectionChecker::Check; a failing step is a report with ok = false,
  // not an error. NOT_FOUND for an unknown connection.
  grpc::Status CheckConnection(grpc::ServerContext* ctx,
                               const mlconnector::v1::CheckConnectionRequest* request,
                               mlconnector::v1::CheckConnectionResponse* response) override;

  // The checker CheckConnection runs (not owned; null: UNAVAILABLE). Set before
  // the server starts.
  void set_checker(ConnectionChecker* checker) { checker_ = checker; }

 private:
  bool Authorized(grpc::ServerContext* ctx, const char* method) const;
  bool ConnectionsAvailable() const { return connections_ != nullptr; }

  const std::string admin_token_;
  FreshBooksConnections* connections_;
  SigningKeys* keys_;
  Syncer* syncer_;
  SyncScheduler::TargetFor target_for_;
  AdminJournal journal_;
  ConnectionChecker* checker_ = nullptr;
};

}  // namespace mlc::writer

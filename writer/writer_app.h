// WriterApp wires the writer together from config: journal, encrypted credential
// store, FreshBooks connections (OAuth, webhooks), sink, hydrator, pipeline,
// reconcile scheduler, audit retention (journal compaction), the gRPC server
// (Ingest, Admin, grpc.health.v1, reflection) and the HTTP metrics endpoint. main() owns one;
// integration tests can run one in-process. Start/Shutdown are called from one thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/grpc_tls.h"
#include "common/http_client.h"
#include "common/metrics.h"

namespace grpc {
class Server;
}
namespace httplib {
class Server;
}

namespace mlc::writer {

class Journal;
class JournalRetention;
class Sink;
class DatabricksTokenSource;
class StatementClient;
class Hydrator;
class Pipeline;
class SigningKeys;
class IngestService;
class AdminService;
class ConnectionChecker;
class CredentialStore;
class FreshBooksConnections;
class Syncer;
class SyncScheduler;

class WriterApp {
 public:
  static absl::StatusOr<std::unique_ptr<WriterApp>> Create(const Config& config);
  ~WriterApp();

  // Opens storage, starts the pipeline and both listeners.
  absl::Status Start();
  // Graceful: stop accepting RPCs (in-flight ones finish), stop the pipeline after
  // its current batch, drain the journal, close everything.
  void Shutdown();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string RenderMetrics();

 private:
  explicit WriterApp(const Config& config);

  // One connection's Databricks clients and sink.
  struct DatabricksConnection {
    DatabricksConnection();
    ~DatabricksConnection();
    std::unique_ptr<DatabricksTokenSource> tokens;
    std::unique_ptr<StatementClient> statements;
    std::unique_ptr<HttpClient> catalog_http;  // counts the sink's Unity Catalog calls
    std::unique_ptr<Sink> sink;
  };
  absl::Status StartDatabricks();
  Sink* SinkFor(const std::string& connection_id);
  // 200 when the journal is open and every sink passed its startup check and
  // last write; otherwise 503 naming what is wrong.
  std::string Readiness(bool* ready);

  Config config_;
  Registry registry_;
  std::unique_ptr<TlsFileMonitor> tls_monitor_;  // logs when writer.tls files become unusable
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JournalRetention> retention_;  // audit retention (compaction)
  std::unique_ptr<Sink> sink_;                   // sink: sqlite
  std::unique_ptr<HttpClient> http_client_;
  std::unique_ptr<CredentialStore> store_;
  std::unique_ptr<FreshBooksConnections> freshbooks_;
  std::unique_ptr<Syncer> syncer_;
  std::unique_ptr<SyncScheduler> scheduler_;
  std::unique_ptr<ConnectionChecker> checker_;
  std::unique_ptr<AdminService> admin_;
  std::map<std::string, std::unique_ptr<DatabricksConnection>> databricks_;
  std::thread checks_thread_;            // Databricks startup checks (they may take minutes)
  Family<Gauge>* sink_ready_ = nullptr;  // {connection}
  std::unique_ptr<Hydrator> hydrator_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<IngestService> ingest_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  Family<Gauge>* journal_depth_ = nullptr;
  Gauge* journal_bytes_ = nullptr;
  bool shut_down_ = false;
};

}  // namespace mlc::writer

#include "writer/writer_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <httplib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/grpc_tls.h"
#include "common/http_server_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "writer/admin_service.h"
#include "writer/connection_check.h"
#include "writer/credential_store.h"
#include "writer/databricks_requests.h"
#include "writer/databricks_sink.h"
#include "writer/databricks_statements.h"
#include "writer/databricks_token.h"
#include "writer/freshbooks_connections.h"
#include "writer/freshbooks_entities.h"
#include "writer/freshbooks_hydrator.h"
#include "writer/freshbooks_sync.h"
#include "writer/hydrator.h"
#include "writer/ingest_service.h"
#include "writer/journal.h"
#include "writer/journal_retention.h"
#include "writer/pipeline.h"
#include "writer/signing_keys.h"
#include "writer/sqlite_sink.h"
#include "writer/table_spec.h"

namespace mlc::writer {

WriterApp::WriterApp(const Config& config) : config_(config) {}

WriterApp::~WriterApp() { Shutdown(); }

WriterApp::DatabricksConnection::DatabricksConnection() = default;
WriterApp::DatabricksConnection::~DatabricksConnection() = default;

absl::StatusOr<std::unique_ptr<WriterApp>> WriterApp::Create(const Config& config) {
  if (config.writer.sink != "sqlite" && config.writer.sink != "databricks") {
    return absl::InvalidArgumentError(
        absl::StrCat("writer.sink \"", config.writer.sink, "\": use sqlite or databricks"));
  }
  return std::unique_ptr<WriterApp>(new WriterApp(config));
}

Sink* WriterApp::SinkFor(const std::string& connection_id) {
  if (sink_ != nullptr) return sink_.get();
  auto it = databricks_.find(connection_id);
  return it == databricks_.end() ? nullptr : it->second->sink.get();
}

absl::Status WriterApp::StartDatabricks() {
  Family<Counter>* refreshes = registry_.AddCounter(
      "mlc_databricks_token_refreshes_total", "Databricks OAuth tokens minted", {"connection"});
  Family<Counter>* token_failures =
      registry_.AddCounter("mlc_databricks_token_failures_total",
                           "Databricks token requests that failed", {"connection"});
  Family<Histogram>* latency =
      registry_.AddHistogram("mlc_databricks_statement_seconds",
                             "SQL statement latency (submit to terminal)", {"connection"});
  Family<Counter>* retries = registry_.AddCounter(
      "mlc_databricks_statement_retries_total",
      "Databricks calls retried (429/503, network, conflicts, token refresh)", {"connection"});
  Family<Counter>* failed = registry_.AddCounter("mlc_databricks_statement_failures_total",
                                                 "SQL statements that failed", {"connection"});
  Family<Counter>* requests = registry_.AddCounter(
      "mlc_databricks_requests_total",
      "Databricks HTTP requests (token, statements, Unity Catalog) by connection and HTTP "
      "status, or \"network\" when no answer came",
      {"connection", "status"});
  for (const ConnectionConfig& c : config_.connections) {
    if (!c.databricks.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "connection \"", c.id, "\": writer.sink is databricks but it has no databricks block"));
    }
    const DatabricksConfig& d = *c.databricks;
    // The secret is kept (encrypted) in the store too; config still provides it
    // at every start.
    const std::string secret_name = absl::StrCat("databricks/", c.id, "/client_secret");
    MLC_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_->GetSecret(secret_name));
    if (!d.client_secret.empty() && stored != d.client_secret) {
      MLC_RETURN_IF_ERROR(store_->PutSecret(secret_name, d.client_secret));
    }
    auto conn = std::make_unique<DatabricksConnection>();
    DatabricksTokenOptions topts;
    topts.host = d.host;
    topts.client_id = d.client_id;
    topts.client_secret = d.client_secret;
    const DatabricksRequestCounter counter(requests, c.id);
    conn->tokens = std::make_unique<DatabricksTokenSource>(
        topts, http_client_.get(), RealClock::Get(),
        DatabricksTokenMetrics{refreshes->With({c.id}), token_failures->With({c.id}), counter});
    StatementClientOptions sopts;
    sopts.host = d.host;
    sopts.warehouse_id = d.warehouse_id;
    conn->statements = std::make_unique<StatementClient>(
        sopts, http_client_.get(), conn->tokens.get(), RealClock::Get(),
        StatementMetrics{latency->With({c.id}), retries->With({c.id}), failed->With({c.id}),
                         counter});
    BatchLimits limits;
    limits.max_rows = static_cast<size_t>(config_.writer.batch.max_rows);
    // The sink's own HTTP calls are Unity Catalog's; they are counted too.
    conn->catalog_http = std::make_unique<CountingHttpClient>(http_client_.get(), counter);
    conn->sink = std::make_unique<DatabricksSink>(
        c.id, d, conn->catalog_http.get(), conn->tokens.get(), conn->statements.get(), limits);
    sink_ready_->With({c.id})->Set(0);
    databricks_[c.id] = std::move(conn);
  }
  // The checks retry for a while and a warehouse may need minutes to start; the
  // writer journals webhooks meanwhile, so they run in the background.
  checks_thread_ = std::thread([this] {
    for (auto& [id, conn] : databricks_) {
      absl::Status s = conn->sink->Start();
      if (s.ok()) s = conn->sink->EnsureTable(FreshBooksEventsTable());
      if (s.ok() && freshbooks_->OAuthConfigured(id)) {
        for (const TableSpec* t : AllEntityTables()) {
          s = conn->sink->EnsureTable(*t);
          if (!s.ok()) break;
        }
      }
      if (!s.ok()) {
        log::Error("databricks sink not ready; deliveries wait in the journal and are retried",
                   {{"connection", id}, {"error", std::string(s.message())}});
      }
      sink_ready_->With({id})->Set(s.ok() ? 1 : 0);
    }
  });
  return absl::OkStatus();
}

absl::Status WriterApp::Start() {
  const WriterConfig& wc = config_.writer;
  std::error_code ec;
  std::filesystem::create_directories(wc.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("writer.data_dir \"", wc.data_dir, "\": cannot create: ", ec.message()));
  }
  std::filesystem::permissions(wc.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);

  Clock* clock = RealClock::Get();
  JournalMetrics jm;
  jm.commits = registry_
                   .AddCounter("mlc_journal_commits_total",
                               "Journal transactions committed (one fsync each)")
                   ->With({});
  jm.commit_failures =
      registry_.AddCounter("mlc_journal_commit_failures_total", "Journal commits that failed")
          ->With({});
  jm.commit_seconds =
      registry_.AddHistogram("mlc_journal_commit_seconds", "Journal group commit latency")
          ->With({});
  jm.group_size = registry_
                      .AddHistogram("mlc_journal_group_size", "Operations per journal commit", {},
                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096})
                      ->With({});
  journal_depth_ = registry_.AddGauge("mlc_journal_deliveries",
                                      "Deliveries in the journal by status", {"status"});
  MLC_ASSIGN_OR_RETURN(journal_, Journal::Open(wc.data_dir + "/journal.db", clock, jm));
  journal_bytes_ = registry_
                       .AddGauge("mlc_journal_bytes",
                                 "Size of the journal on disk (journal.db and its WAL), bytes")
                       ->With({});
  RetentionMetrics rm;
  rm.compacted = registry_
                     .AddCounter("mlc_journal_compacted_total",
                                 "Deliveries removed from the journal by audit retention")
                     ->With({});
  rm.journal_bytes = journal_bytes_;
  retention_ = std::make_unique<JournalRetention>(journal_.get(), clock, wc.audit_retention_days,
                                                  absl::Hours(1), rm);

  if (wc.master_key.empty()) {
    return absl::FailedPreconditionError(
        "writer.master_key is required: it encrypts FreshBooks and Databricks credentials at "
        "rest. Make one with `openssl rand -base64 32` and pass it through MLC_MASTER_KEY "
        "(scripts/run-local creates one under ./var)");
  }
  MLC_ASSIGN_OR_RETURN(std::string master_key, DecodeMasterKey(wc.master_key));
  MLC_ASSIGN_OR_RETURN(
      store_, CredentialStore::Open(wc.data_dir + "/credentials.db", std::move(master_key)));
  http_client_ = std::make_unique<HttplibClient>();
  keys_ = std::make_unique<SigningKeys>(config_.connections);
  freshbooks_ = std::make_unique<FreshBooksConnections>(
      config_.connections, http_client_.get(), store_.get(), keys_.get(), clock, &registry_);
  MLC_RETURN_IF_ERROR(freshbooks_->Start());

  sink_ready_ = registry_.AddGauge(
      "mlc_sink_ready", "1 when the connection's sink passed its startup check", {"connection"});
  if (wc.sink == "sqlite") {
    sink_ = std::make_unique<SqliteSink>(wc.data_dir + "/lakehouse.db");
    if (absl::Status s = sink_->Start(); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("sink sqlite: ", s.message()));
    }
    std::vector<const TableSpec*> tables = AllEntityTables();
    tables.insert(tables.begin(), &FreshBooksEventsTable());
    for (const TableSpec* t : tables) {
      if (absl::Status s = sink_->EnsureTable(*t); !s.ok()) {
        return absl::FailedPreconditionError(absl::StrCat("sink sqlite: ", s.message()));
      }
    }
    for (const ConnectionConfig& c : config_.connections) sink_ready_->With({c.id})->Set(1);
  } else {
    MLC_RETURN_IF_ERROR(StartDatabricks());
  }
  HydratorMetrics hm;
  hm.fetches = registry_.AddCounter("mlc_hydrate_fetches_total",
                                    "FreshBooks object fetches for webhook events, by outcome",
                                    {"connection", "outcome"});
  hm.coalesced = registry_
                     .AddCounter("mlc_hydrate_coalesced_total",
                                 "Events served by another event's fetch of the same object")
                     ->With({});
  hydrator_ = std::make_unique<FreshBooksHydrator>(freshbooks_.get(), clock, 8, hm);

  PipelineMetrics pm;
  pm.deliveries =
      registry_.AddCounter("mlc_pipeline_deliveries_total",
                           "Deliveries processed by the pipeline, by outcome", {"outcome"});
  // Exposed from the start (at 0), so "dead letters" is a series an alert can
  // watch before the first one happens.
  for (const char* outcome : {"written", "retry", "wait", "dead"}) pm.deliveries->With({outcome});
  pm.batch_rows = registry_
                      .AddHistogram("mlc_pipeline_batch_rows", "Rows per sink batch", {},
                                    {1, 10, 50, 100, 250, 500, 1000, 5000})
                      ->With({});
  pm.sink_seconds =
      registry_.AddHistogram("mlc_sink_write_seconds", "Sink upsert latency", {"sink"})
          ->With({wc.sink});
  pm.end_to_end_seconds =
      registry_.AddHistogram("mlc_end_to_end_seconds", "Webhook received to row in table", {})
          ->With({});
  pm.sink_up = registry_.AddGauge("mlc_sink_up", "1 when the last sink write succeeded", {"sink"})
                   ->With({wc.sink});
  pm.sink_up->Set(1);
  pipeline_ = std::make_unique<Pipeline>(
      journal_.get(), [this](const std::string& id) { return SinkFor(id); }, hydrator_.get(), clock,
      wc.batch, wc.retry, pm);

  syncer_ = std::make_unique<Syncer>(store_.get(), clock, &registry_);
  SyncScheduler::TargetFor target_for = [this](const std::string& id) -> std::optional<SyncTarget> {
    FreshBooksClient* client = freshbooks_->Client(id);
    std::optional<FreshBooksIdentity> identity = freshbooks_->Identity(id);
    Sink* sink = SinkFor(id);
    if (client == nullptr || !identity.has_value() || sink == nullptr ||
        client->NeedsReauthorization().has_value()) {
      return std::nullopt;
    }
    return SyncTarget{client, *identity, sink};
  };
  std::vector<SyncScheduler::Entry> entries;
  for (const ConnectionConfig& c : config_.connections) {
    if (!freshbooks_->OAuthConfigured(c.id)) continue;
    entries.push_back({c.id, absl::Minutes(std::max(1, c.freshbooks.sync_interval_minutes))});
  }
  scheduler_ = std::make_unique<SyncScheduler>(syncer_.get(), entries, target_for);
  AdminJournal admin_journal;
  admin_journal.journal = journal_.get();
  admin_journal.on_replay = [this](int n) { pipeline_->Notify(n); };
  admin_journal.retention = retention_.get();
  admin_ = std::make_unique<AdminService>(wc.admin_token, freshbooks_.get(), keys_.get(),
                                          syncer_.get(), target_for, std::move(admin_journal));
  checker_ = std::make_unique<ConnectionChecker>(
      freshbooks_.get(), keys_.get(),
      [this](const std::string& id) -> std::optional<ConnectionCheckTargets> {
        if (freshbooks_->Config(id) == nullptr) return std::nullopt;
        ConnectionCheckTargets t;
        t.sink = config_.writer.sink;
        t.http = http_client_.get();
        t.sqlite_path = config_.writer.data_dir + "/lakehouse.db";
        if (auto it = databricks_.find(id); it != databricks_.end()) {
          t.databricks_tokens = it->second->tokens.get();
        }
        return t;
      },
      clock);
  admin_->set_checker(checker_.get());
  IngestMetrics im;
  im.submits = registry_.AddCounter("mlc_ingest_submits_total",
                                    "Ingest.Submit calls by kind and outcome", {"kind", "outcome"});
  im.submit_seconds =
      registry_.AddHistogram("mlc_ingest_submit_seconds", "Submit received to durable")->With({});
  ingest_ = std::make_unique<IngestService>(wc.internal_token, journal_.get(), pipeline_.get(),
                                            keys_.get(), clock, im);
  ingest_->SetAuthorizer([this](const mlconnector::v1::CompleteAuthorizationRequest& req)
                             -> absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> {
    MLC_ASSIGN_OR_RETURN(AuthorizationResult r,
                         freshbooks_->CompleteAuthorization(req.code(), req.state(), req.error(),
                                                            req.error_description()));
    scheduler_->Nudge();  // the first sync (the backfill) starts now
    mlconnector::v1::CompleteAuthorizationResponse out;
    out.set_connection_id(r.connection_id);
    out.set_account_id(r.identity.account_id);
    out.set_business_name(r.identity.business_name);
    return out;
  });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // The health and reflection services are synchronous; their pollers notice a
  // shutdown only when this timeout expires, so keep it short.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 200);
  // Without this gRPC sets SO_REUSEPORT, and a second writer on the same data_dir
  // could start on the same port instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // TLS (DESIGN.md §5) covers Ingest, Admin, health and reflection alike; the
  // metrics/health HTTP endpoint stays plaintext for probes and Prometheus.
  MLC_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> grpc_credentials,
                       ServerCredentials(wc.tls));
  log::Info("writer: gRPC transport", {{"tls", DescribeServerTls(wc.tls)}});
  tls_monitor_ = TlsFileMonitor::ForServer(wc.tls, "writer.tls", &registry_);
  builder.AddListeningPort(wc.listen, grpc_credentials, &grpc_port_);
  builder.RegisterService(ingest_.get());
  builder.RegisterService(admin_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("writer.listen \"", wc.listen, "\": cannot listen (address in use?)"));
  }

  http_ = std::make_unique<httplib::Server>();
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetrics(), "text/plain; version=0.0.4");
  });
  http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    bool ready = false;
    res.set_content(Readiness(&ready), "text/plain");
    res.status = ready ? 200 : 503;
  });
  MLC_ASSIGN_OR_RETURN(metrics_port_, StartHttpServer(http_.get(), "writer.metrics_listen",
                                                      wc.metrics_listen, &http_thread_));

  pipeline_->Start();
  scheduler_->Start();
  retention_->Start();  // compacts now, then every hour
  log::Info("writer started",
            {{"grpc", absl::StrCat(wc.listen.substr(0, wc.listen.rfind(':')), ":", grpc_port_)},
             {"metrics_port", metrics_port_},
             {"data_dir", wc.data_dir},
             {"sink", wc.sink},
             {"connections", static_cast<int64_t>(config_.connections.size())}});
  return absl::OkStatus();
}

std::string WriterApp::Readiness(bool* ready) {
  *ready = journal_ != nullptr;
  std::string out;
  for (const ConnectionConfig& c : config_.connections) {
    const bool ok = sink_ready_ != nullptr && sink_ready_->With({c.id})->Value() > 0;
    *ready = *ready && ok;
    absl::StrAppend(&out, "connection ", c.id, ": sink ", config_.writer.sink,
                    ok ? " ready\n" : " not ready (see the writer log's startup check)\n");
    // Not a reason to stop taking webhooks (they wait in the journal), but the
    // first thing an operator must see.
    if (freshbooks_ != nullptr && freshbooks_->OAuthConfigured(c.id)) {
      FreshBooksClient* client = freshbooks_->Client(c.id);
      if (std::optional<std::string> why = client->NeedsReauthorization(); why.has_value()) {
        absl::StrAppend(&out, "connection ", c.id, ": FreshBooks NEEDS RE-AUTHORIZATION (", *why,
                        "); events wait - run `mlc authorize --connection ", c.id, "`\n");
      } else if (!freshbooks_->Identity(c.id).has_value()) {
        absl::StrAppend(&out, "connection ", c.id,
                        ": FreshBooks not authorized yet - run `mlc authorize --connection ", c.id,
                        "`\n");
      }
    }
  }
  return absl::StrCat(*ready ? "ready\n" : "not ready\n", out);
}

std::string WriterApp::RenderMetrics() {
  if (journal_ != nullptr && journal_depth_ != nullptr) {
    auto counts = journal_->CountByStatus();
    if (counts.ok()) {
      for (DeliveryStatus st : {DeliveryStatus::kPending, DeliveryStatus::kWritten,
                                DeliveryStatus::kDead, DeliveryStatus::kHandshake}) {
        int64_t n = 0;
        for (const auto& [s, c] : *counts) {
          if (s == st) n = c;
        }
        journal_depth_->With({DeliveryStatusName(st)})->Set(static_cast<double>(n));
      }
    }
  }
  if (journal_ != nullptr && journal_bytes_ != nullptr) {
    journal_bytes_->Set(static_cast<double>(journal_->FileBytes()));
  }
  return registry_.Render();
}

void WriterApp::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  log::Info("writer shutting down");
  if (grpc_server_ != nullptr) {
    // New calls are refused at once; calls in flight get a second to finish (a
    // submit waits only for its group commit). gRPC also waits this long for idle
    // client connections to go away, which is why it is not longer.
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc_server_->Wait();
    log::Info("writer: gRPC server stopped");
  }
  // Statements in flight are cancelled; their batches stay pending and are
  // written again (idempotently) after the restart.
  for (auto& [id, conn] : databricks_) conn->statements->CancelAll();
  if (scheduler_ != nullptr) scheduler_->Stop();
  if (retention_ != nullptr) retention_->Stop();  // after its current chunk
  if (freshbooks_ != nullptr) freshbooks_->Stop();
  if (pipeline_ != nullptr) pipeline_->Stop();
  if (checks_thread_.joinable()) checks_thread_.join();
  log::Info("writer: pipeline stopped");
  if (http_ != nullptr) StopHttpServer(http_.get(), &http_thread_);
  journal_.reset();  // drains queued operations, then closes
  log::Info("writer stopped");
}

}  // namespace mlc::writer

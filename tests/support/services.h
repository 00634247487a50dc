// Runs the real mlc-writer and mlc-ingress binaries as child processes for
// integration tests and benchmarks: writes a config into a temp dir, picks ports,
// starts/kills/restarts either service, and sends signed webhooks over HTTP.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/webhook_signature.h"
#include "tests/support/test_util.h"

namespace mlc::testing {

struct ServicesOptions {
  std::string connection_id = "acme";
  std::string verifier = "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd";
  std::string internal_token = "test-internal-token-0123456789";
  // The token ingress presents; differs from internal_token to test auth failures.
  std::string ingress_token;  // empty: same as internal_token
  int max_rows = 500;
  int max_delay_ms = 100;
  int64_t max_body_bytes = 65536;
  std::string log_level = "info";
  // sink: databricks, against a (fake) workspace at databricks_host.
  std::string sink = "sqlite";
  std::string databricks_host;
  std::string databricks_client_id = "fake-client-id";
  std::string databricks_client_secret = "fake-client-secret";
  std::string databricks_warehouse_id = "fakewarehouse01";
  std::string databricks_catalog = "finance";
  std::string databricks_schema = "freshbooks";
  // Base64 of 32 bytes (the writer refuses to start without a master key).
  std::string master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
  std::string admin_token = "test-admin-token-0123456789";
  // FreshBooks OAuth against a (fake) FreshBooks at freshbooks_url; empty: the
  // connection has only the static verifier.
  std::string freshbooks_url;
  std::string freshbooks_client_id = "fake-fb-client";
  std::string freshbooks_client_secret = "fake-fb-secret";
  std::string freshbooks_account_id;           // empty: discovered at authorization
  std::vector<std::string> freshbooks_events;  // empty: all
  int sync_interval_minutes = 360;
  int freshbooks_requests_per_second = 0;  // 0: the default
  // TLS (paths of PEM files; see tests/support/test_pki.h): writer.tls on the
  // writer's gRPC listener, ingress.writer_tls for ingress, and the --tls-* flags
  // RunCli passes to mlc. Empty (not enabled): plaintext.
  TlsServerConfig writer_tls;
  TlsClientConfig ingress_writer_tls;
  TlsClientConfig cli_tls;
};

class Services {
 public:
  explicit Services(ServicesOptions options = {});
  ~Services();

  void StartWriter();
  void StartIngress();
  // Both, waiting until ingress reports ready.
  void StartAll();
  void KillWriter(int sig);
  void KillIngress(int sig);
  int WaitWriter();
  // Until ingress's /readyz answers 200.
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Until GET /readyz on `port` (ingress_port() or metrics_port(), the
  // writer's) answers `status`.
  bool WaitReadyz(int port, int status,
                  std::chrono::milliseconds timeout = std::chrono::seconds(15));

  std::string webhook_url() const;
  std::string ingress_origin() const;
  int ingress_port() const { return ingress_port_; }
  int writer_port() const { return writer_port_; }
  int metrics_port() const { return metrics_port_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& config_path() const { return config_path_; }
  const ServicesOptions& options() const { return options_; }
  Process* writer() { return writer_.get(); }
  Process* ingress() { return ingress_.get(); }

  // Signs `fields` with the connection's verifier and POSTs them.
  struct Answer {
    int status = 0;  // 0: no HTTP answer (connection error)
    std::string body;
    std::string delivery_id;  // from a 202 body
  };
  Answer Send(const FormFields& fields) const;
  Answer SendRaw(const std::string& body, const std::string& content_type,
                 const std::optional<std::string>& signature) const;

  // Rows of freshbooks_events keyed by delivery_id (count per id).
  std::vector<std::pair<std::string, int>> EventRowCounts() const;
  // A single scalar query against a database in data_dir (e.g. "journal.db").
  std::string Query(const std::string& db, const std::string& sql) const;
  // The journal's status of delivery `id` ("pending", "written", "dead", ...; ""
  // when there is none).
  std::string DeliveryStatus(const std::string& id) const;
  std::string WriterLog() const;
  std::string IngressLog() const;
  std::string HttpGet(int port, const std::string& path, int* status = nullptr) const;
  // The OAuth redirect URI (ingress's callback) this config uses.
  std::string redirect_uri() const;
  // Runs `mlc <args>` against this writer with the admin token; returns the exit
  // status (as from waitpid) and puts stdout+stderr into *output.
  int RunCli(const std::vector<std::string>& args, std::string* output) const;
  // The same with `tls` instead of options().cli_tls.
  int RunCli(const TlsClientConfig& tls, const std::vector<std::string>& args,
             std::string* output) const;
  // All rows of a query against a database in data_dir ("NULL" for NULLs).
  std::vector<std::vector<std::string>> QueryRows(const std::string& db,
                                                  const std::string& sql) const;

 private:
  void WriteConfig();

  ServicesOptions options_;
  TempDir dir_;
  std::string data_dir_;
  std::string config_path_;
  int ingress_port_ = 0;
  int writer_port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<Process> writer_;
  std::unique_ptr<Process> ingress_;
};

// The six standard fields of a FreshBooks delivery, in FreshBooks' usual order.
FormFields StandardEvent(const std::string& name, const std::string& object_id,
                         const std::string& account_id = "6BApk");

}  // namespace mlc::testing

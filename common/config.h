// Configuration shared by both binaries (DESIGN.md §3.2): one YAML file, `${ENV_VAR}`
// substitution in scalar values, unknown keys and invalid values rejected with a
// message that names the key and the fix.
//
// The loader accepts every key of the contract, even where the feature behind it
// comes later. Which keys are *required* depends on the role: ingress needs only
// its own block; the writer needs its block and, with `sink: databricks`, each
// connection's `databricks` block. Config is a plain value type; load it once at
// startup and pass it by const reference.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mlc {

struct BatchConfig {
  int max_rows = 500;
  int max_delay_ms = 1000;
};

struct RetryConfig {
  int64_t initial_ms = 1000;
  int64_t max_ms = 300000;
  int64_t max_age_hours = 72;
};

// How often the TLS files are re-read, so that a rotated certificate (say,
// cert-manager renewing a mounted Secret) is used without a restart.
inline constexpr int64_t kDefaultTlsReloadSeconds = 60;

// TLS for a gRPC server (an extension of the contract, DESIGN.md §5 "both can run
// over TLS"). Empty cert_file: plaintext. With client_ca_file, clients must present a
// certificate signed by that CA (mutual TLS).
struct TlsServerConfig {
  std::string cert_file;  // PEM chain
  std::string key_file;   // PEM private key
  std::string client_ca_file;
  int64_t reload_seconds = kDefaultTlsReloadSeconds;
  bool enabled() const { return !cert_file.empty(); }
};

// TLS for a gRPC client. Empty ca_file: plaintext. cert_file/key_file present a
// client certificate (for a server that requires mutual TLS); server_name overrides
// the name checked against the server's certificate.
struct TlsClientConfig {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
  int64_t reload_seconds = kDefaultTlsReloadSeconds;
  bool enabled() const { return !ca_file.empty(); }
};

struct IngressConfig {
  std::string listen = "0.0.0.0:8080";  // host:port
  std::string writer = "127.0.0.1:50051";
  std::string internal_token;  // secret
  int64_t max_body_bytes = 65536;
  TlsClientConfig writer_tls;  // how ingress reaches the writer
};

struct WriterConfig {
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9091";
  std::string data_dir = "./var";
  std::string master_key;       // secret: base64 of 32 bytes (validated when non-empty)
  std::string internal_token;   // secret
  std::string admin_token;      // secret
  std::string sink = "sqlite";  // "sqlite" or "databricks"
  BatchConfig batch;
  RetryConfig retry;
  // Audit retention (an extension of the contract): written deliveries, handshakes
  // and their attempts older than this are compacted away. Pending and dead
  // deliveries are never removed. 0 keeps everything.
  int audit_retention_days = 30;
  TlsServerConfig tls;  // the gRPC listener (Ingest and Admin)
};

struct FreshBooksConfig {
  std::string client_id;
  std::string client_secret;  // secret
  std::string redirect_uri;
  std::string webhook_url;
  std::string account_id;
  // Event object names ("invoice", ...) or full names ("invoice.create"). Empty
  // in the file means "all"; the loader fills in the full list then.
  std::vector<std::string> events;
  std::vector<std::string> verifiers;  // secrets: static signing keys
  std::string api_url = "https://api.freshbooks.com";
  std::string auth_url = "https://auth.freshbooks.com";
  int sync_interval_minutes = 360;
  // The connection's FreshBooks API request budget (an extension of the
  // contract): FreshBooks publishes no limit, so the default stays polite.
  int requests_per_second = 5;
};

struct DatabricksConfig {
  std::string host;
  std::string client_id;
  std::string client_secret;  // secret
  std::string warehouse_id;
  std::string catalog;
  std::string schema;
};

struct ConnectionConfig {
  std::string id;  // [a-z0-9][a-z0-9_-]{0,62}: it appears in the webhook URL
  FreshBooksConfig freshbooks;
  std::optional<DatabricksConfig> databricks;
};

struct Config {
  IngressConfig ingress;
  WriterConfig writer;
  std::vector<ConnectionConfig> connections;
};

enum class ConfigRole { kIngress, kWriter };

// All FreshBooks webhook event object names (FRESHBOOKS.md §1), the default for
// `connections[].freshbooks.events`.
const std::vector<std::string>& AllFreshBooksEventObjects();

// Parses YAML text. `getenv` resolves `${NAME}` (tests inject it); a reference to an
// unset variable is an error naming the key and the variable, unless the key is one
// the role does not use (e.g. ingress does not need writer.master_key).
using GetEnvFn = const char* (*)(const char*);
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, ConfigRole role,
                                   GetEnvFn getenv_fn = nullptr);

// Reads and parses a file. Errors name the file.
absl::StatusOr<Config> LoadConfigFile(const std::string& path, ConfigRole role,
                                      GetEnvFn getenv_fn = nullptr);

// Splits "host:port" (also "[::1]:port"); errors name `key`.
absl::Status ParseHostPort(const std::string& key, const std::string& value, std::string* host,
                           int* port);

}  // namespace mlc

#include "tests/support/services.h"

#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace mlc::testing {

namespace {

// "  <key>: { ... }\n" for a TLS block inside ingress: or writer:, or nothing.
std::string TlsClientYaml(const std::string& key, const TlsClientConfig& c) {
  if (!c.enabled()) return "";
  return absl::StrCat("  ", key, ": { ca_file: \"", c.ca_file, "\", cert_file: \"", c.cert_file,
                      "\", key_file: \"", c.key_file, "\", server_name: \"", c.server_name,
                      "\", reload_seconds: ", c.reload_seconds, " }\n");
}

std::string TlsServerYaml(const TlsServerConfig& c) {
  if (!c.enabled()) return "";
  return absl::StrCat("  tls: { cert_file: \"", c.cert_file, "\", key_file: \"", c.key_file,
                      "\", client_ca_file: \"", c.client_ca_file,
                      "\", reload_seconds: ", c.reload_seconds, " }\n");
}

}  // namespace

Services::Services(ServicesOptions options) : options_(std::move(options)) {
  data_dir_ = dir_.File("var");
  config_path_ = dir_.File("config.yaml");
  ingress_port_ = PickFreePort();
  writer_port_ = PickFreePort();
  metrics_port_ = PickFreePort();
  WriteConfig();
}

Services::~Services() {
  if (ingress_ != nullptr && ingress_->Running()) {
    ingress_->Kill(SIGTERM);
    ingress_->Wait();
  }
  if (writer_ != nullptr && writer_->Running()) {
    writer_->Kill(SIGTERM);
    writer_->Wait();
  }
}

void Services::WriteConfig() {
  // Secrets come through ${ENV} substitution, as in production.
  const std::string yaml = absl::StrCat(
      "ingress:\n"
      "  listen: \"127.0.0.1:",
      ingress_port_, "\"\n", "  writer: \"127.0.0.1:", writer_port_, "\"\n",
      "  internal_token: \"${MLC_INGRESS_TOKEN}\"\n"
      "  max_body_bytes: ",
      options_.max_body_bytes, "\n", TlsClientYaml("writer_tls", options_.ingress_writer_tls),
      "writer:\n"
      "  listen: \"127.0.0.1:",
      writer_port_, "\"\n", "  metrics_listen: \"127.0.0.1:", metrics_port_, "\"\n",
      "  data_dir: \"", data_dir_, "\"\n",
      "  internal_token: \"${MLC_INTERNAL_TOKEN}\"\n"
      "  master_key: \"${MLC_MASTER_KEY}\"\n"
      "  admin_token: \"${MLC_ADMIN_TOKEN}\"\n"
      "  sink: ",
      options_.sink, "\n", "  batch: { max_rows: ", options_.max_rows,
      ", max_delay_ms: ", options_.max_delay_ms, " }\n",
      "  retry: { initial_ms: 50, max_ms: 2000, max_age_hours: 72 }\n",
      TlsServerYaml(options_.writer_tls),
      "connections:\n"
      "  - id: \"",
      options_.connection_id, "\"\n", "    freshbooks:\n");
  std::string full = yaml;
  if (!options_.verifier.empty()) {
    absl::StrAppend(&full, "      verifiers: [\"${MLC_TEST_VERIFIER}\"]\n");
  }
  if (!options_.freshbooks_url.empty()) {
    absl::StrAppend(&full, "      client_id: \"", options_.freshbooks_client_id, "\"\n",
                    "      client_secret: \"${FB_CLIENT_SECRET}\"\n", "      redirect_uri: \"",
                    redirect_uri(), "\"\n", "      webhook_url: \"", webhook_url(), "\"\n",
                    "      api_url: \"", options_.freshbooks_url, "\"\n", "      auth_url: \"",
                    options_.freshbooks_url, "\"\n",
                    "      sync_interval_minutes: ", options_.sync_interval_minutes, "\n");
    if (options_.freshbooks_requests_per_second > 0) {
      absl::StrAppend(&full, "      requests_per_second: ", options_.freshbooks_requests_per_second,
                      "\n");
    }
    if (!options_.freshbooks_account_id.empty()) {
      absl::StrAppend(&full, "      account_id: \"", options_.freshbooks_account_id, "\"\n");
    }
    if (!options_.freshbooks_events.empty()) {
      absl::StrAppend(&full, "      events: [");
      for (size_t i = 0; i < options_.freshbooks_events.size(); ++i) {
        absl::StrAppend(&full, i == 0 ? "" : ", ", "\"", options_.freshbooks_events[i], "\"");
      }
      absl::StrAppend(&full, "]\n");
    }
  }
  if (options_.sink == "databricks") {
    absl::StrAppend(&full, "    databricks:\n      host: \"", options_.databricks_host,
                    "\"\n      client_id: \"", options_.databricks_client_id,
                    "\"\n      client_secret: \"${DATABRICKS_CLIENT_SECRET}\"\n",
                    "      warehouse_id: \"", options_.databricks_warehouse_id, "\"\n",
                    "      catalog: \"", options_.databricks_catalog, "\"\n", "      schema: \"",
                    options_.databricks_schema, "\"\n");
  }
  WriteFile(config_path_, full);
}

void Services::StartWriter() {
  writer_ =
      std::make_unique<Process>(std::vector<std::string>{MLC_WRITER_BIN, "--config", config_path_},
                                std::map<std::string, std::string>{
                                    {"MLC_INTERNAL_TOKEN", options_.internal_token},
                                    {"MLC_TEST_VERIFIER", options_.verifier},
                                    {"MLC_MASTER_KEY", options_.master_key},
                                    {"MLC_ADMIN_TOKEN", options_.admin_token},
                                    {"FB_CLIENT_SECRET", options_.freshbooks_client_secret},
                                    {"DATABRICKS_CLIENT_SECRET", options_.databricks_client_secret},
                                    {"MLC_LOG_LEVEL", options_.log_level}},
                                dir_.File("writer.log"));
}

void Services::StartIngress() {
  const std::string token =
      options_.ingress_token.empty() ? options_.internal_token : options_.ingress_token;
  ingress_ = std::make_unique<Process>(
      std::vector<std::string>{MLC_INGRESS_BIN, "--config", config_path_},
      std::map<std::string, std::string>{{"MLC_INGRESS_TOKEN", token},
                                         {"MLC_INTERNAL_TOKEN", token},
                                         {"MLC_LOG_LEVEL", options_.log_level}},
      dir_.File("ingress.log"));
}

void Services::StartAll() {
  StartWriter();
  StartIngress();
  if (!WaitReady()) {
    throw std::runtime_error("services not ready.\nwriter log:\n" + WriterLog() +
                             "\ningress log:\n" + IngressLog());
  }
}

bool Services::WaitReady(std::chrono::milliseconds timeout) {
  return WaitReadyz(ingress_port_, 200, timeout);
}

bool Services::WaitReadyz(int port, int status, std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] {
        int got = 0;
        HttpGet(port, "/readyz", &got);
        return got == status;
      },
      timeout);
}

void Services::KillWriter(int sig) {
  if (writer_ != nullptr) writer_->Kill(sig);
}
void Services::KillIngress(int sig) {
  if (ingress_ != nullptr) ingress_->Kill(sig);
}
int Services::WaitWriter() { return writer_ != nullptr ? writer_->Wait() : 0; }

std::string Services::ingress_origin() const {
  return absl::StrCat("http://127.0.0.1:", ingress_port_);
}
std::string Services::redirect_uri() const {
  return absl::StrCat(ingress_origin(), "/oauth/freshbooks/callback");
}

int Services::RunCli(const std::vector<std::string>& args, std::string* output) const {
  return RunCli(options_.cli_tls, args, output);
}

int Services::RunCli(const TlsClientConfig& tls, const std::vector<std::string>& args,
                     std::string* output) const {
  std::vector<std::string> argv = {MLC_CLI_BIN, "--writer",
                                   absl::StrCat("127.0.0.1:", writer_port_)};
  const std::pair<const char*, const std::string*> tls_flags[] = {
      {"--tls-ca", &tls.ca_file},
      {"--tls-cert", &tls.cert_file},
      {"--tls-key", &tls.key_file},
      {"--tls-server-name", &tls.server_name}};
  for (const auto& [flag, value] : tls_flags) {
    if (!value->empty()) argv.insert(argv.end(), {flag, *value});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = dir_.File("cli.log");
  WriteFile(log, "");
  Process p(argv, {{"MLC_ADMIN_TOKEN", options_.admin_token}}, log);
  const int status = p.Wait(std::chrono::seconds(120));
  if (output != nullptr) *output = ReadFile(log);
  return status;
}

std::string Services::webhook_url() const {
  return absl::StrCat(ingress_origin(), "/webhooks/freshbooks/", options_.connection_id);
}

Services::Answer Services::Send(const FormFields& fields) const {
  return SendRaw(EncodeWebhookForm(fields), "application/x-www-form-urlencoded",
                 FreshBooksSignature(options_.verifier, fields));
}

Services::Answer Services::SendRaw(const std::string& body, const std::string& content_type,
                                   const std::optional<std::string>& signature) const {
  httplib::Client client("127.0.0.1", ingress_port_);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(15, 0);
  client.set_tcp_nodelay(true);
  httplib::Headers headers;
  if (signature.has_value()) headers.emplace("X-FreshBooks-Hmac-SHA256", *signature);
  auto res = client.Post(absl::StrCat("/webhooks/freshbooks/", options_.connection_id).c_str(),
                         headers, body, content_type.c_str());
  Answer a;
  if (!res) return a;
  a.status = res->status;
  a.body = res->body;
  if (a.status == 202) {
    auto j = nlohmann::json::parse(a.body, nullptr, false);
    if (j.is_object() && j.contains("delivery_id")) a.delivery_id = j["delivery_id"];
  }
  return a;
}

std::string Services::HttpGet(int port, const std::string& path, int* status) const {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get(path.c_str());
  if (status != nullptr) *status = res ? res->status : 0;
  return res ? res->body : std::string();
}

namespace {
int Collect(void* out, int argc, char** argv, char** /*names*/) {
  auto* rows = static_cast<std::vector<std::vector<std::string>>*>(out);
  std::vector<std::string> row;
  for (int i = 0; i < argc; ++i) row.push_back(argv[i] != nullptr ? argv[i] : "NULL");
  rows->push_back(std::move(row));
  return 0;
}

std::vector<std::vector<std::string>> RunQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::vector<std::vector<std::string>> rows;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("cannot open " + path);
  }
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), Collect, &rows, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "?";
    sqlite3_free(err);
    sqlite3_close(db);
    throw std::runtime_error("query failed: " + msg + ": " + sql);
  }
  sqlite3_close(db);
  return rows;
}
}  // namespace

std::vector<std::pair<std::string, int>> Services::EventRowCounts() const {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& row :
       RunQuery(data_dir_ + "/lakehouse.db",
                "SELECT delivery_id, COUNT(*) FROM freshbooks_events GROUP BY delivery_id")) {
    out.emplace_back(row[0], std::stoi(row[1]));
  }
  return out;
}

std::string Services::Query(const std::string& db, const std::string& sql) const {
  auto rows = RunQuery(data_dir_ + "/" + db, sql);
  if (rows.empty() || rows[0].empty()) return "";
  return rows[0][0];
}

std::string Services::DeliveryStatus(const std::string& id) const {
  return Query("journal.db", "SELECT status FROM deliveries WHERE delivery_id='" + id + "'");
}

std::vector<std::vector<std::string>> Services::QueryRows(const std::string& db,
                                                          const std::string& sql) const {
  return RunQuery(data_dir_ + "/" + db, sql);
}

std::string Services::WriterLog() const { return writer_ != nullptr ? writer_->Log() : ""; }
std::string Services::IngressLog() const { return ingress_ != nullptr ? ingress_->Log() : ""; }

FormFields StandardEvent(const std::string& name, const std::string& object_id,
                         const std::string& account_id) {
  return {{"name", name},          {"object_id", object_id}, {"account_id", account_id},
          {"business_id", "6543"}, {"identity_id", "1234"},  {"user_id", "1"}};
}

}  // namespace mlc::testing

// FakeDatabricks: token and SQL statement endpoints with fault knobs.
#include "tests/fakes/fake_databricks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/http_server_util.h"

namespace mlc::testing {
namespace {

using json = nlohmann::json;

constexpr char kJson[] = "application/json";

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

void ApiError(httplib::Response& res, int status, const std::string& code,
              const std::string& message) {
  Reply(res, status, json{{"error_code", code}, {"message", message}});
}

// The bracketed class at the start of a message: "[A_B.C] ..." -> "A_B".
std::string LeadingErrorClass(const std::string& message) {
  if (message.empty() || message[0] != '[') return "";
  const size_t close = message.find(']');
  if (close == std::string::npos) return "";
  const std::string token = message.substr(1, close - 1);
  return token.substr(0, token.find('.'));
}

std::string TypeName(const std::string& type_text) {
  std::string t = absl::AsciiStrToUpper(type_text.substr(0, type_text.find('(')));
  if (t == "BIGINT") return "LONG";
  if (t == "INTEGER") return "INT";
  if (t == "SMALLINT") return "SHORT";
  if (t == "TINYINT") return "BYTE";
  return t;
}

bool ScopeMatches(FakeDatabricks::Scope scope, FakeDatabricks::Endpoint endpoint) {
  using E = FakeDatabricks::Endpoint;
  using S = FakeDatabricks::Scope;
  switch (scope) {
    case S::kAll:
      return true;
    case S::kApi:
      return endpoint != E::kToken;
    case S::kToken:
      return endpoint == E::kToken;
    case S::kExecute:
      return endpoint == E::kExecute;
    case S::kGetStatement:
      return endpoint == E::kGetStatement || endpoint == E::kGetChunk;
    case S::kCancel:
      return endpoint == E::kCancel;
  }
  return false;
}

// JSON lookups through the underlying std::map / std::vector (nlohmann's iterators
// trip GCC's -Wnull-dereference at -O2).
const json* Member(const json& j, const char* name) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return nullptr;
  const auto it = object->find(name);
  return it == object->end() ? nullptr : &it->second;
}

const std::string* StringMember(const json& j, const char* name) {
  const json* v = Member(j, name);
  return v == nullptr ? nullptr : v->get_ptr<const std::string*>();
}

int PortOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return -1;
}

}  // namespace

FakeDatabricks::ExecResult FakeDatabricks::ExecResult::MergeCounts(int64_t affected,
                                                                   int64_t updated, int64_t deleted,
                                                                   int64_t inserted) {
  ExecResult r;
  r.columns = {{"num_affected_rows", "BIGINT"},
               {"num_updated_rows", "BIGINT"},
               {"num_deleted_rows", "BIGINT"},
               {"num_inserted_rows", "BIGINT"}};
  r.rows = {{absl::StrCat(affected), absl::StrCat(updated), absl::StrCat(deleted),
             absl::StrCat(inserted)}};
  return r;
}

std::string FakeDatabricks::SqlStateForErrorClass(const std::string& error_class) {
  if (absl::StartsWith(error_class, "DELTA_CONCURRENT_") ||
      error_class == "DELTA_METADATA_CHANGED" || error_class == "DELTA_PROTOCOL_CHANGED") {
    return "2D521";
  }
  static const auto* const kStates = new std::map<std::string, std::string>{
      {"TABLE_OR_VIEW_NOT_FOUND", "42P01"},
      {"DELTA_TABLE_NOT_FOUND", "42P01"},
      {"SCHEMA_NOT_FOUND", "42704"},
      {"NO_SUCH_CATALOG_EXCEPTION", "42704"},
      {"CATALOG_NOT_FOUND", "42704"},
      {"UNRESOLVED_COLUMN", "42703"},
      {"INSUFFICIENT_PERMISSIONS", "42501"},
      {"DELTA_FAILED_TO_MERGE_FIELDS", "22005"},
      {"PARSE_SYNTAX_ERROR", "42601"},
      {"DELTA_MERGE_UNRESOLVED_EXPRESSION", "42601"},
      {"DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE", "21506"},
      {"TABLE_OR_VIEW_ALREADY_EXISTS", "42P07"},
      {"SCHEMA_ALREADY_EXISTS", "42P06"},
      {"FIELDS_ALREADY_EXISTS", "42710"},
      {"DELTA_DUPLICATE_COLUMNS_FOUND", "42711"},
      {"CAST_INVALID_INPUT", "22018"},
      {"DIVIDE_BY_ZERO", "22012"},
      {"DATATYPE_MISMATCH", "42K09"},
      {"NOT_NULL_CONSTRAINT_VIOLATION", "42000"},
  };
  const auto it = kStates->find(error_class);
  return it == kStates->end() ? "" : it->second;
}

FakeDatabricks::FakeDatabricks() : FakeDatabricks(Options()) {}

FakeDatabricks::FakeDatabricks(Options options)
    : options_(std::move(options)), token_ttl_(options_.token_ttl) {}

FakeDatabricks::~FakeDatabricks() { Stop(); }

const Clock* FakeDatabricks::clock() const {
  return options_.clock != nullptr ? options_.clock : RealClock::Get();
}

std::string FakeDatabricks::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

absl::Status FakeDatabricks::Start() {
  // Writing an answer to a connection the fake itself dropped must not kill the
  // test process.
  std::signal(SIGPIPE, SIG_IGN);
  Route();
  // Answers go out in two writes (head, body); with Nagle on, the second waits for
  // the client's delayed ACK (~40 ms per request).
  server_.set_tcp_nodelay(true);
  absl::StatusOr<int> port = StartHttpServer(&server_, "fake_databricks", "127.0.0.1:0", &thread_);
  if (!port.ok()) return port.status();
  port_ = *port;
  return absl::OkStatus();
}

void FakeDatabricks::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  StopHttpServer(&server_, &thread_);
}

void FakeDatabricks::SetTableProvider(TableProvider provider) {
  table_provider_ = std::move(provider);
}

void FakeDatabricks::SetSecurableProvider(SecurableProvider provider) {
  absl::MutexLock lock(&mu_);
  securable_provider_ = std::move(provider);
}

void FakeDatabricks::SetOwner(const std::string& type, const std::string& full_name,
                              const std::string& owner) {
  absl::MutexLock lock(&mu_);
  owners_[{absl::AsciiStrToLower(type), absl::AsciiStrToLower(full_name)}] = owner;
}

void FakeDatabricks::SetGrants(const std::string& principal, const std::string& type,
                               const std::string& full_name, std::vector<std::string> privileges) {
  absl::MutexLock lock(&mu_);
  grants_[principal][{absl::AsciiStrToLower(type), absl::AsciiStrToLower(full_name)}] =
      std::move(privileges);
}

void FakeDatabricks::SetExecutor(Executor executor) {
  ContextExecutor wrapped;
  if (executor) {
    wrapped = [executor = std::move(executor)](const std::string& sql,
                                               const std::vector<Param>& params,
                                               const Context&) { return executor(sql, params); };
  }
  SetContextExecutor(std::move(wrapped));
}

void FakeDatabricks::SetContextExecutor(ContextExecutor executor) {
  absl::MutexLock lock(&mu_);
  executor_ = std::move(executor);
}

void FakeDatabricks::SetTokenTtl(absl::Duration ttl) {
  absl::MutexLock lock(&mu_);
  token_ttl_ = ttl;
}

void FakeDatabricks::ThrottleNext(int n, int retry_after_seconds, Scope scope) {
  absl::MutexLock lock(&mu_);
  throttle_.push_back(Fault{n, retry_after_seconds, scope});
}

void FakeDatabricks::UnavailableNext(int n, int retry_after_seconds, Scope scope) {
  absl::MutexLock lock(&mu_);
  unavailable_.push_back(Fault{n, retry_after_seconds, scope});
}

void FakeDatabricks::RejectTokensNext(int n) {
  absl::MutexLock lock(&mu_);
  reject_tokens_ += n;
}

void FakeDatabricks::RevokeAllTokens() {
  absl::MutexLock lock(&mu_);
  tokens_.clear();
}

void FakeDatabricks::SetStatementLatency(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  latency_ = latency;
}

void FakeDatabricks::ConflictNext(int n) {
  absl::MutexLock lock(&mu_);
  conflicts_ += n;
}

void FakeDatabricks::SetFaultRate(double rate, uint32_t seed) {
  absl::MutexLock lock(&mu_);
  fault_rate_ = rate;
  fault_rng_.seed(seed);
}

void FakeDatabricks::DropConnectionAfterNextStatements(int n) {
  absl::MutexLock lock(&mu_);
  drops_ += n;
}

void FakeDatabricks::SetChunkRows(size_t rows) {
  absl::MutexLock lock(&mu_);
  chunk_rows_ = rows;
}

int FakeDatabricks::Requests(Endpoint endpoint) const {
  absl::MutexLock lock(&mu_);
  const auto it = requests_.find(endpoint);
  return it == requests_.end() ? 0 : it->second;
}

int FakeDatabricks::TokensMinted() const {
  absl::MutexLock lock(&mu_);
  return tokens_minted_;
}

int FakeDatabricks::StatementsExecuted() const {
  absl::MutexLock lock(&mu_);
  return executed_;
}

int FakeDatabricks::StatementsCanceled() const {
  absl::MutexLock lock(&mu_);
  return canceled_;
}

std::vector<std::string> FakeDatabricks::ExecuteRequestBodies() const {
  absl::MutexLock lock(&mu_);
  return execute_bodies_;
}

std::optional<std::string> FakeDatabricks::StatementState(const std::string& statement_id) const {
  absl::MutexLock lock(&mu_);
  const auto it = statements_.find(statement_id);
  if (it == statements_.end()) return std::nullopt;
  return it->second.state;
}

std::vector<std::string> FakeDatabricks::RunningStatements() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, r] : statements_) {
    if (r.state == "PENDING" || r.state == "RUNNING") ids.push_back(id);
  }
  return ids;
}

void FakeDatabricks::Route() {
  server_.Post("/oidc/v1/token", [this](const httplib::Request& req, httplib::Response& res) {
    HandleToken(req, res);
  });
  server_.Post(
      "/api/2\\.0/sql/statements/?",
      [this](const httplib::Request& req, httplib::Response& res) { HandleExecute(req, res); });
  server_.Get(
      "/api/2\\.0/sql/statements/([^/]+)/result/chunks/([0-9]+)",
      [this](const httplib::Request& req, httplib::Response& res) { HandleChunk(req, res); });
  server_.Get("/api/2\\.0/sql/statements/([^/]+)",
              [this](const httplib::Request& req, httplib::Response& res) { HandleGet(req, res); });
  server_.Get("/api/2\\.1/unity-catalog/tables/([^/]+)", [this](const httplib::Request& req,
                                                                httplib::Response& res) {
    if (!Admit(Endpoint::kTable, req, res)) return;
    std::optional<std::string> table;
    if (table_provider_) table = table_provider_(req.matches[1]);
    if (!table.has_value()) {
      return ApiError(res, 404, "TABLE_DOES_NOT_EXIST",
                      absl::StrCat("Table '", std::string(req.matches[1]), "' does not exist."));
    }
    res.status = 200;
    res.set_content(*table, kJson);
  });
  server_.Get("/api/2\\.1/unity-catalog/catalogs/([^/]+)",
              [this](const httplib::Request& req, httplib::Response& res) {
                HandleSecurable(Endpoint::kCatalog, req, res);
              });
  server_.Get("/api/2\\.1/unity-catalog/schemas/([^/]+)",
              [this](const httplib::Request& req, httplib::Response& res) {
                HandleSecurable(Endpoint::kSchema, req, res);
              });
  server_.Get(
      "/api/2\\.1/unity-catalog/effective-permissions/([^/]+)/([^/]+)",
      [this](const httplib::Request& req, httplib::Response& res) { HandlePermissions(req, res); });
  server_.Post(
      "/api/2\\.0/sql/statements/([^/]+)/cancel",
      [this](const httplib::Request& req, httplib::Response& res) { HandleCancel(req, res); });
}

bool FakeDatabricks::InjectFault(Endpoint endpoint, httplib::Response& res) {
  for (auto* faults : {&throttle_, &unavailable_}) {
    for (Fault& f : *faults) {
      if (f.remaining <= 0 || !ScopeMatches(f.scope, endpoint)) continue;
      --f.remaining;
      if (f.retry_after_seconds >= 0) {
        res.set_header("Retry-After", absl::StrCat(f.retry_after_seconds));
      }
      if (faults == &throttle_) {
        ApiError(res, 429, "TOO_MANY_REQUESTS",
                 "Too many requests. Please wait a moment and try again.");
      } else {
        ApiError(res, 503, "TEMPORARILY_UNAVAILABLE",
                 "The service is temporarily unavailable. Please try again later.");
      }
      return true;
    }
  }
  return false;
}

bool FakeDatabricks::Admit(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  ++requests_[endpoint];
  if (endpoint == Endpoint::kExecute && fault_rate_ > 0 &&
      std::uniform_real_distribution<double>(0, 1)(fault_rng_) < fault_rate_) {
    // Arm one fault for this submission; the checks below (or the statement's
    // execution, for conflicts and drops) meet it.
    switch (fault_rng_() % 5) {
      case 0:
        throttle_.push_back(Fault{1, 0, Scope::kExecute});
        break;
      case 1:
        unavailable_.push_back(Fault{1, 0, Scope::kExecute});
        break;
      case 2:
        ++reject_tokens_;
        break;
      case 3:
        ++conflicts_;
        break;
      default:
        ++drops_;
        break;
    }
  }
  if (InjectFault(endpoint, res)) return false;
  if (endpoint == Endpoint::kToken) return true;
  if (reject_tokens_ > 0) {
    --reject_tokens_;
    Reply(res, 403, json{{"error_code", 403}, {"message", "Invalid access token. [ReqId: fake]"}});
    return false;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (!absl::StartsWith(auth, "Bearer ")) {
    Reply(res, 401,
          json{{"error_code", 401},
               {"message", "Credential was not sent or was of an unsupported type for this API."}});
    return false;
  }
  const auto it = tokens_.find(auth.substr(7));
  // Like Databricks, reject tokens within 30 s of their expiry (scaled down for the
  // short TTLs tests use, where 30 s would reject every token at once).
  const absl::Duration window = std::min(absl::Seconds(30), token_ttl_ / 5);
  if (it == tokens_.end() || clock()->Now() >= it->second - window) {
    Reply(res, 403, json{{"error_code", 403}, {"message", "Invalid access token. [ReqId: fake]"}});
    return false;
  }
  return true;
}

void FakeDatabricks::HandleToken(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kToken, req, res)) return;
  const auto invalid_client = [&res] {
    Reply(res, 401,
          json{{"error", "invalid_client"}, {"error_description", "Client authentication failed"}});
  };
  const std::string auth = req.get_header_value("Authorization");
  if (!absl::StartsWith(auth, "Basic ")) return invalid_client();
  absl::StatusOr<std::string> decoded = Base64Decode(auth.substr(6));
  if (!decoded.ok()) return invalid_client();
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos ||
      !ConstantTimeEquals(decoded->substr(0, colon), options_.client_id) ||
      !ConstantTimeEquals(decoded->substr(colon + 1), options_.client_secret)) {
    return invalid_client();
  }
  std::map<std::string, std::string> form;
  for (absl::string_view pair : absl::StrSplit(req.body, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    form[kv.first] = kv.second;
  }
  if (form["grant_type"] != "client_credentials") {
    return Reply(res, 400,
                 json{{"error", "unsupported_grant_type"},
                      {"error_description", "grant_type must be client_credentials"}});
  }
  if (form["scope"] != "all-apis") {
    return Reply(res, 400,
                 json{{"error", "invalid_scope"}, {"error_description", "scope must be all-apis"}});
  }
  absl::MutexLock lock(&mu_);
  const std::string token = absl::StrCat("dapifake", RandomToken(16));
  tokens_[token] = clock()->Now() + token_ttl_;
  ++tokens_minted_;
  Reply(res, 200,
        json{{"access_token", token},
             {"token_type", "Bearer"},
             {"expires_in", absl::ToInt64Seconds(token_ttl_)},
             {"scope", "all-apis"}});
}

void FakeDatabricks::HandleExecute(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kExecute, req, res)) return;
  const json body = json::parse(req.body, nullptr, false);
  {
    absl::MutexLock lock(&mu_);
    execute_bodies_.push_back(req.body);
  }
  if (!body.is_object()) {
    return ApiError(res, 400, "MALFORMED_REQUEST", "Could not parse request object");
  }
  const auto str = [&body](const char* name, const char* fallback) -> std::string {
    const std::string* s = StringMember(body, name);
    return s != nullptr ? *s : fallback;
  };
  if (str("warehouse_id", "") != options_.warehouse_id) {
    return ApiError(res, 404, "RESOURCE_DOES_NOT_EXIST",
                    absl::StrCat("Warehouse ", str("warehouse_id", ""), " does not exist."));
  }
  const std::string sql = str("statement", "");
  if (sql.empty()) {
    return ApiError(res, 400, "INVALID_PARAMETER_VALUE", "statement must not be empty");
  }
  const std::string wait_text = str("wait_timeout", "10s");
  int64_t wait_seconds = -1;
  if (!absl::EndsWith(wait_text, "s") ||
      !absl::SimpleAtoi(absl::string_view(wait_text).substr(0, wait_text.size() - 1),
                        &wait_seconds) ||
      !(wait_seconds == 0 || (wait_seconds >= 5 && wait_seconds <= 50))) {
    return ApiError(
        res, 400, "INVALID_PARAMETER_VALUE",
        absl::StrCat("wait_timeout \"", wait_text, "\" must be 0s or between 5s and 50s"));
  }
  const std::string on_timeout = str("on_wait_timeout", "CONTINUE");
  if (on_timeout != "CONTINUE" && on_timeout != "CANCEL") {
    return ApiError(res, 400, "INVALID_PARAMETER_VALUE",
                    "on_wait_timeout must be CONTINUE or CANCEL");
  }
  std::vector<Param> params;
  if (const json* list = Member(body, "parameters"); list != nullptr) {
    const auto* array = list->get_ptr<const json::array_t*>();
    if (array == nullptr) {
      return ApiError(res, 400, "INVALID_PARAMETER_VALUE", "parameters must be an array");
    }
    if (array->size() > 256) {
      return ApiError(res, 400, "INVALID_PARAMETER_VALUE",
                      "A statement can have at most 256 parameters");
    }
    for (const json& p : *array) {
      Param param;
      const std::string* name = StringMember(p, "name");
      if (name == nullptr) {
        return ApiError(res, 400, "INVALID_PARAMETER_VALUE", "every parameter needs a name");
      }
      param.name = *name;
      const std::string* type = StringMember(p, "type");
      param.type = type != nullptr ? *type : "STRING";
      if (const json* value = Member(p, "value"); value != nullptr && !value->is_null()) {
        const auto* text = value->get_ptr<const std::string*>();
        if (text == nullptr) {
          return ApiError(res, 400, "INVALID_PARAMETER_VALUE", "parameter values are strings");
        }
        param.value = *text;
      }
      const std::string base = absl::AsciiStrToUpper(param.type.substr(0, param.type.find('(')));
      for (const char* bad : {"ARRAY", "MAP", "STRUCT", "BINARY"}) {
        if (absl::StartsWith(base, bad)) {
          return ApiError(res, 400, "INVALID_PARAMETER_VALUE",
                          absl::StrCat("Parameter type ", param.type, " is not supported"));
        }
      }
      params.push_back(std::move(param));
    }
  }

  std::string id;
  absl::Duration latency;
  {
    absl::MutexLock lock(&mu_);
    id = absl::StrFormat("01f0fa4e-%04x-%04x-8000-%012x", (next_id_ >> 16) & 0xffff,
                         next_id_ & 0xffff, next_id_);
    ++next_id_;
    latency = latency_;
    Record r;
    r.id = id;
    r.sql = sql;
    r.params = std::move(params);
    r.context = Context{str("catalog", ""), str("schema", "")};
    r.due = absl::Now() + latency;
    r.state = wait_seconds == 0 ? "PENDING" : "RUNNING";
    if (conflicts_ > 0) {
      --conflicts_;
      r.conflict = true;
    } else if (drops_ > 0) {
      --drops_;
      r.drop_after_apply = true;
    }
    statements_[id] = std::move(r);
  }

  const absl::Duration wait = absl::Seconds(wait_seconds);
  if (latency <= wait) {
    if (latency > absl::ZeroDuration()) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), latency);
    }
    if (RunIfDue(id)) {
      absl::MutexLock lock(&mu_);
      if (statements_[id].drop_after_apply) return DropConnection(req);
    }
  } else if (wait > absl::ZeroDuration()) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
  }
  absl::MutexLock lock(&mu_);
  Record& r = statements_[id];
  if ((r.state == "PENDING" || r.state == "RUNNING") && !r.executing && on_timeout == "CANCEL") {
    r.state = "CANCELED";
  }
  res.status = 200;
  res.set_content(StatementJson(r), kJson);
}

bool FakeDatabricks::RunIfDue(const std::string& id) {
  std::string sql;
  std::vector<Param> params;
  Context context;
  ContextExecutor executor;
  {
    absl::MutexLock lock(&mu_);
    const auto it = statements_.find(id);
    if (it == statements_.end()) return false;
    Record& r = it->second;
    if ((r.state != "PENDING" && r.state != "RUNNING") || r.executing || absl::Now() < r.due) {
      return false;
    }
    if (r.conflict) {
      r.state = "FAILED";
      r.sql_state = "2D521";
      r.error_message =
          "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to the root of "
          "the table by a concurrent update. Please try the operation again.";
      return false;
    }
    r.executing = true;
    sql = r.sql;
    params = r.params;
    context = r.context;
    executor = executor_;
  }
  absl::StatusOr<ExecResult> result = ExecResult{};
  {
    absl::MutexLock lock(&exec_mu_);
    if (executor) result = executor(sql, params, context);
  }
  absl::MutexLock lock(&mu_);
  Record& r = statements_[id];
  r.executing = false;
  ++executed_;
  if (result.ok()) {
    r.state = "SUCCEEDED";
    r.result = *std::move(result);
  } else {
    r.state = "FAILED";
    r.error_message = std::string(result.status().message());
    const auto payload = result.status().GetPayload(kSqlStatePayload);
    r.sql_state = payload.has_value() ? std::string(*payload)
                                      : SqlStateForErrorClass(LeadingErrorClass(r.error_message));
  }
  return true;
}

std::string FakeDatabricks::ChunkJson(const Record& r, size_t chunk) const {
  const size_t n = r.result.rows.size();
  const size_t per = chunk_rows_ == 0 ? std::max<size_t>(n, 1) : chunk_rows_;
  const size_t chunks = n == 0 ? 0 : (n + per - 1) / per;
  const size_t begin = std::min(chunk * per, n);
  const size_t end = std::min(begin + per, n);
  json j = {{"chunk_index", chunk}, {"row_offset", begin}, {"row_count", end - begin}};
  if (end > begin) {
    json rows = json::array();
    for (size_t i = begin; i < end; ++i) {
      json row = json::array();
      for (const auto& cell : r.result.rows[i]) {
        row.push_back(cell.has_value() ? json(*cell) : json(nullptr));
      }
      rows.push_back(std::move(row));
    }
    j["data_array"] = std::move(rows);
  }
  if (chunk + 1 < chunks) {
    j["next_chunk_index"] = chunk + 1;
    j["next_chunk_internal_link"] =
        absl::StrCat("/api/2.0/sql/statements/", r.id, "/result/chunks/", chunk + 1);
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string FakeDatabricks::StatementJson(const Record& r) const {
  json status = {{"state", r.executing ? std::string("RUNNING") : r.state}};
  json j = {{"statement_id", r.id}};
  if (r.state == "FAILED") {
    if (!r.sql_state.empty()) status["sql_state"] = r.sql_state;
    status["error"] = {{"error_code", "BAD_REQUEST"}, {"message", r.error_message}};
  }
  j["status"] = std::move(status);
  if (r.state == "SUCCEEDED" && !r.executing) {
    const size_t n = r.result.rows.size();
    const size_t per = chunk_rows_ == 0 ? std::max<size_t>(n, 1) : chunk_rows_;
    const size_t chunks = n == 0 ? 0 : (n + per - 1) / per;
    json columns = json::array();
    for (size_t i = 0; i < r.result.columns.size(); ++i) {
      const Column& c = r.result.columns[i];
      columns.push_back({{"name", c.name},
                         {"type_text", c.type_text},
                         {"type_name", TypeName(c.type_text)},
                         {"position", i}});
    }
    json chunk_list = json::array();
    for (size_t k = 0; k < chunks; ++k) {
      const size_t begin = k * per;
      chunk_list.push_back(
          {{"chunk_index", k}, {"row_offset", begin}, {"row_count", std::min(per, n - begin)}});
    }
    j["manifest"] = {{"format", "JSON_ARRAY"},
                     {"schema", {{"column_count", columns.size()}, {"columns", columns}}},
                     {"total_row_count", n},
                     {"total_chunk_count", chunks},
                     {"chunks", chunk_list},
                     {"truncated", false}};
    j["result"] = json::parse(ChunkJson(r, 0));
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void FakeDatabricks::HandleGet(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kGetStatement, req, res)) return;
  const std::string id = req.matches[1];
  {
    absl::MutexLock lock(&mu_);
    if (statements_.find(id) == statements_.end()) {
      return ApiError(res, 404, "RESOURCE_DOES_NOT_EXIST",
                      absl::StrCat("Statement ", id, " does not exist"));
    }
  }
  if (RunIfDue(id)) {
    absl::MutexLock lock(&mu_);
    if (statements_[id].drop_after_apply) return DropConnection(req);
  }
  absl::MutexLock lock(&mu_);
  res.status = 200;
  res.set_content(StatementJson(statements_[id]), kJson);
}

void FakeDatabricks::HandleChunk(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kGetChunk, req, res)) return;
  const std::string id = req.matches[1];
  size_t chunk = 0;
  if (!absl::SimpleAtoi(std::string(req.matches[2]), &chunk)) {
    return ApiError(res, 400, "INVALID_PARAMETER_VALUE", "bad chunk index");
  }
  absl::MutexLock lock(&mu_);
  const auto it = statements_.find(id);
  if (it == statements_.end() || it->second.state != "SUCCEEDED") {
    return ApiError(res, 404, "RESOURCE_DOES_NOT_EXIST",
                    absl::StrCat("Statement ", id, " has no result"));
  }
  res.status = 200;
  res.set_content(ChunkJson(it->second, chunk), kJson);
}

void FakeDatabricks::HandleCancel(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kCancel, req, res)) return;
  const std::string id = req.matches[1];
  absl::MutexLock lock(&mu_);
  const auto it = statements_.find(id);
  if (it == statements_.end()) {
    return ApiError(res, 404, "RESOURCE_DOES_NOT_EXIST",
                    absl::StrCat("Statement ", id, " does not exist"));
  }
  Record& r = it->second;
  if ((r.state == "PENDING" || r.state == "RUNNING") && !r.executing) {
    r.state = "CANCELED";
    ++canceled_;
  }
  Reply(res, 200, json::object());
}

bool FakeDatabricks::SecurableExists(const std::string& type, const std::string& full_name,
                                     httplib::Response& res) {
  const std::vector<std::string> parts = absl::StrSplit(full_name, '.');
  const size_t want = type == "catalog" ? 1 : type == "schema" ? 2 : type == "table" ? 3 : 0;
  if (want == 0) {
    ApiError(res, 400, "INVALID_PARAMETER_VALUE",
             absl::StrCat("Unsupported securable type '", type, "'."));
    return false;
  }
  if (parts.size() != want) {
    ApiError(res, 400, "INVALID_PARAMETER_VALUE",
             absl::StrCat("Invalid ", type, " name '", full_name, "'."));
    return false;
  }
  SecurableProvider provider;
  {
    absl::MutexLock lock(&mu_);
    provider = securable_provider_;
  }
  if (provider && !provider("catalog", parts[0])) {
    ApiError(res, 404, "CATALOG_DOES_NOT_EXIST",
             absl::StrCat("Catalog '", parts[0], "' does not exist."));
    return false;
  }
  if (want == 1) return true;
  const std::string schema = absl::StrCat(parts[0], ".", parts[1]);
  if (provider && !provider("schema", schema)) {
    ApiError(res, 404, "SCHEMA_DOES_NOT_EXIST",
             absl::StrCat("Schema '", schema, "' does not exist."));
    return false;
  }
  if (want == 2) return true;
  if (!table_provider_ || !table_provider_(full_name).has_value()) {
    ApiError(res, 404, "TABLE_DOES_NOT_EXIST",
             absl::StrCat("Table '", full_name, "' does not exist."));
    return false;
  }
  return true;
}

void FakeDatabricks::HandleSecurable(Endpoint endpoint, const httplib::Request& req,
                                     httplib::Response& res) {
  if (!Admit(endpoint, req, res)) return;
  const std::string type = endpoint == Endpoint::kCatalog ? "catalog" : "schema";
  const std::string full_name = absl::AsciiStrToLower(std::string(req.matches[1]));
  if (!SecurableExists(type, full_name, res)) return;
  std::string owner = kDefaultOwner;
  {
    absl::MutexLock lock(&mu_);
    const auto it = owners_.find({type, full_name});
    if (it != owners_.end()) owner = it->second;
  }
  if (endpoint == Endpoint::kCatalog) {
    return Reply(res, 200,
                 json{{"name", full_name},
                      {"full_name", full_name},
                      {"owner", owner},
                      {"catalog_type", "MANAGED_CATALOG"}});
  }
  const size_t dot = full_name.find('.');
  Reply(res, 200,
        json{{"name", full_name.substr(dot + 1)},
             {"catalog_name", full_name.substr(0, dot)},
             {"full_name", full_name},
             {"owner", owner}});
}

void FakeDatabricks::HandlePermissions(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(Endpoint::kPermissions, req, res)) return;
  const std::string type = absl::AsciiStrToLower(std::string(req.matches[1]));
  const std::string full_name = absl::AsciiStrToLower(std::string(req.matches[2]));
  if (!SecurableExists(type, full_name, res)) return;
  // The securable and the parents it inherits from: catalog, schema, table.
  const std::vector<std::string> parts = absl::StrSplit(full_name, '.');
  std::vector<std::pair<std::string, std::string>> chain = {{"catalog", parts[0]}};
  if (parts.size() >= 2) chain.emplace_back("schema", absl::StrCat(parts[0], ".", parts[1]));
  if (parts.size() >= 3) chain.emplace_back("table", full_name);
  const auto privilege = [&](const std::string& name, const std::string& from_type,
                             const std::string& from_name) {
    json p = {{"privilege", name}};
    if (from_type != type || from_name != full_name) {
      p["inherited_from_type"] = absl::AsciiStrToUpper(from_type);
      p["inherited_from_name"] = from_name;
    }
    return p;
  };
  absl::MutexLock lock(&mu_);
  std::vector<std::string> principals;
  if (req.has_param("principal")) {
    principals.push_back(req.get_param_value("principal"));
  } else {
    for (const auto& [p, grants] : grants_) principals.push_back(p);
    if (grants_.count(options_.client_id) == 0) principals.push_back(options_.client_id);
  }
  json assignments = json::array();
  for (const std::string& principal : principals) {
    json privileges = json::array();
    const auto g = grants_.find(principal);
    if (g == grants_.end()) {
      if (principal == options_.client_id) {
        privileges.push_back(privilege("ALL_PRIVILEGES", "catalog", parts[0]));
      }
    } else {
      for (const auto& securable : chain) {
        const auto it = g->second.find(securable);
        if (it == g->second.end()) continue;
        for (const std::string& p : it->second) {
          privileges.push_back(privilege(p, securable.first, securable.second));
        }
      }
    }
    if (privileges.empty()) continue;
    assignments.push_back({{"principal", principal}, {"privileges", std::move(privileges)}});
  }
  Reply(res, 200, json{{"privilege_assignments", std::move(assignments)}});
}

void FakeDatabricks::DropConnection(const httplib::Request& req) {
  // cpp-httplib gives handlers no socket; find ours among the process's fds by the
  // connection's ports. The client's end has the same ports swapped, so matching
  // local == local_port and peer == remote_port picks the server end only.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &fd)) continue;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (PortOf(local) == req.local_port && PortOf(peer) == req.remote_port) {
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
  }
}

}  // namespace mlc::testing

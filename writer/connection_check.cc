#include "writer/connection_check.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "writer/databricks_sql.h"
#include "writer/databricks_statements.h"
#include "writer/freshbooks_entities.h"
#include "writer/sink.h"
#include "writer/sqlite_db.h"

namespace mlc::writer {
namespace {

using json = nlohmann::json;

constexpr char kOk[] = "ok";
constexpr char kFailed[] = "failed";
constexpr char kWarning[] = "warning";
constexpr char kSkipped[] = "skipped";

constexpr char kWriter[] = "writer";
constexpr char kFreshBooks[] = "freshbooks";
constexpr char kDatabricks[] = "databricks";
constexpr char kSqlite[] = "sqlite";

constexpr char kUsersMe[] = "/auth/api/v1/users/me";
constexpr char kProfileScope[] = "user:profile:read";

// What the service principal needs on the schema to create, evolve and merge
// into its tables.
const char* const kSchemaPrivileges[] = {"USE_SCHEMA", "CREATE_TABLE", "SELECT", "MODIFY"};

// Appended to "lacks privilege" details: what the effective-permissions API lists.
constexpr char kGroupCaveat[] =
    "; as Unity Catalog lists the principal's own and inherited grants - a grant to a group it "
    "belongs to may not show here";

// Unreserved characters as is, everything else %XX (a path segment or a query value).
std::string PercentEncode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

// USE_SCHEMA -> USE SCHEMA (the SQL spelling of a Unity Catalog privilege).
std::string SqlPrivilege(const std::string& privilege) {
  return absl::StrReplaceAll(privilege, {{"_", " "}});
}

std::string Plural(size_t n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

std::string Text(const json* j) {
  if (j == nullptr || j->is_null()) return "";
  if (const auto* s = j->get_ptr<const std::string*>(); s != nullptr) return *s;
  return j->dump();
}

// A Databricks error answer's "error_code: message", or a clip of the body.
std::string DatabricksError(const HttpResponse& res) {
  const json doc = json::parse(res.body, nullptr, false);
  const std::string code = Text(JsonAt(doc, "error_code"));
  const std::string message = Text(JsonAt(doc, "message"));
  std::string out = absl::StrCat("HTTP ", res.status);
  if (!code.empty()) absl::StrAppend(&out, " ", code);
  if (!message.empty()) {
    absl::StrAppend(&out, ": ", message.substr(0, 300));
  } else if (doc.is_discarded() && !res.body.empty()) {
    absl::StrAppend(&out, ": ", res.body.substr(0, 200));
  }
  return out;
}

// Privileges an effective-permissions answer conveys: privilege -> where from
// ("" when granted on the securable itself).
std::map<std::string, std::string> ParsePrivileges(const std::string& body) {
  std::map<std::string, std::string> out;
  const json doc = json::parse(body, nullptr, false);
  const json* assignments = JsonAt(doc, "privilege_assignments");
  const auto* list =
      assignments == nullptr ? nullptr : assignments->get_ptr<const json::array_t*>();
  if (list == nullptr) return out;
  for (const json& a : *list) {
    const json* privileges = JsonAt(a, "privileges");
    const auto* plist =
        privileges == nullptr ? nullptr : privileges->get_ptr<const json::array_t*>();
    if (plist == nullptr) continue;
    for (const json& p : *plist) {
      const std::string name = absl::AsciiStrToUpper(Text(JsonAt(p, "privilege")));
      if (name.empty()) continue;
      const std::string from_type = absl::AsciiStrToLower(Text(JsonAt(p, "inherited_from_type")));
      const std::string from_name = Text(JsonAt(p, "inherited_from_name"));
      out.emplace(name, from_name.empty() ? "" : absl::StrCat(from_type, " ", from_name));
    }
  }
  return out;
}

// "ALL_PRIVILEGES (inherited from catalog finance), USE_SCHEMA"
std::string DescribePrivileges(const std::map<std::string, std::string>& privileges) {
  if (privileges.empty()) return "none";
  std::vector<std::string> parts;
  parts.reserve(privileges.size());
  for (const auto& [name, from] : privileges) {
    parts.push_back(from.empty() ? name : absl::StrCat(name, " (inherited from ", from, ")"));
  }
  return absl::StrJoin(parts, ", ");
}

std::set<std::string> SplitScopes(const std::string& scope) {
  std::set<std::string> out;
  for (absl::string_view s : absl::StrSplit(scope, absl::ByAnyChar(" ,\t\n"), absl::SkipEmpty())) {
    out.emplace(s);
  }
  return out;
}

}  // namespace

// One Check(): the connection's config and objects, and the steps so far.
class ConnectionChecker::Run {
 public:
  Run(const ConnectionChecker& checker, const ConnectionConfig& config,
      ConnectionCheckTargets targets)
      : checker_(checker), config_(config), targets_(std::move(targets)), id_(config.id) {
    report_.connection_id = id_;
  }

  CheckReport Execute() {
    CheckWriter();
    CheckFreshBooks();
    if (targets_.sink == "databricks") {
      CheckDatabricks();
    } else if (targets_.sink == "sqlite") {
      CheckSqlite();
    }
    Scrub();
    for (const CheckStepResult& s : report_.steps) {
      if (s.status == kFailed) report_.ok = false;
    }
    return std::move(report_);
  }

 private:
  absl::Time Now() const { return checker_.clock_->Now(); }

  void Add(const char* system, std::string name, const char* status, std::string detail,
           std::string fix, absl::Time start) {
    report_.steps.push_back(CheckStepResult{system, std::move(name), status, std::move(detail),
                                            status == kOk ? "" : std::move(fix), Now() - start});
  }

  void Skip(const char* system, const std::vector<std::string>& names, const std::string& why) {
    for (const std::string& name : names) {
      Add(system, name, kSkipped, absl::StrCat("not checked: ", why), "", Now());
    }
  }

  std::string Authorize() const { return absl::StrCat("`mlc authorize --connection ", id_, "`"); }

  // The config keys as an operator finds them in the writer's config file.
  std::string Key(const std::string& key) const {
    return absl::StrCat("connections[", id_, "].", key);
  }

  // Every secret the report must not contain: config secrets and signing keys.
  void Scrub() {
    std::vector<std::string> secrets = {config_.freshbooks.client_secret};
    if (config_.databricks.has_value()) secrets.push_back(config_.databricks->client_secret);
    for (const std::string& v : config_.freshbooks.verifiers) secrets.push_back(v);
    uint64_t version = 0;
    const auto snapshot = checker_.keys_->Snapshot(&version);
    if (const auto it = snapshot.find(id_); it != snapshot.end()) {
      for (const KeyEntry& k : it->second) secrets.push_back(k.secret);
    }
    for (const std::string& secret : secrets) {
      if (secret.size() < 4) continue;  // too short to be a real secret; would mangle text
      for (CheckStepResult& s : report_.steps) {
        absl::StrReplaceAll({{secret, "[redacted]"}}, &s.detail);
        absl::StrReplaceAll({{secret, "[redacted]"}}, &s.fix);
      }
    }
  }

  // ---------------------------------------------------------------- writer

  void CheckWriter() {
    const absl::Time start = Now();
    std::vector<std::string> missing;
    std::vector<std::string> warnings;
    std::vector<std::string> facts;
    const FreshBooksConfig& fb = config_.freshbooks;
    if (targets_.sink == "databricks") {
      if (!config_.databricks.has_value()) {
        missing.push_back(
            Key("databricks (host, client_id, client_secret, warehouse_id, "
                "catalog, schema)"));
      } else {
        const DatabricksConfig& d = *config_.databricks;
        const std::pair<const char*, const std::string*> keys[] = {
            {"host", &d.host},
            {"client_id", &d.client_id},
            {"client_secret", &d.client_secret},
            {"warehouse_id", &d.warehouse_id},
            {"catalog", &d.catalog},
            {"schema", &d.schema}};
        for (const auto& [key, value] : keys) {
          if (value->empty()) missing.push_back(Key(absl::StrCat("databricks.", key)));
        }
        facts.push_back(absl::StrCat("sink databricks (", d.host, ", warehouse ", d.warehouse_id,
                                     ", schema ", d.catalog, ".", d.schema, ")"));
      }
    } else if (targets_.sink == "sqlite") {
      facts.push_back(absl::StrCat("sink sqlite (", targets_.sqlite_path, ")"));
    } else {
      missing.push_back(
          absl::StrCat("writer.sink (\"", targets_.sink, "\": use sqlite or databricks)"));
    }
    if (!fb.client_id.empty()) {
      if (fb.redirect_uri.empty()) missing.push_back(Key("freshbooks.redirect_uri"));
      if (fb.client_secret.empty()) {
        warnings.emplace_back(
            "freshbooks.client_secret is not set (a secret stored earlier is used, if any)");
      }
      if (fb.webhook_url.empty()) {
        warnings.emplace_back(
            "freshbooks.webhook_url is not set (`mlc register-webhooks` needs it)");
      }
      facts.push_back(
          absl::StrCat("FreshBooks OAuth configured (account ",
                       fb.account_id.empty() ? "chosen at authorization" : fb.account_id,
                       "), events: ", fb.events.empty() ? "all" : absl::StrJoin(fb.events, ", ")));
    } else {
      facts.emplace_back("FreshBooks OAuth not configured (webhooks are recorded as events only)");
    }
    std::string detail = absl::StrJoin(facts, "; ");
    if (!missing.empty()) {
      Add(kWriter, "configuration", kFailed,
          absl::StrCat(detail, "; missing: ", absl::StrJoin(missing, ", ")),
          absl::StrCat("set ", absl::StrJoin(missing, ", "),
                       " in the writer's config and restart the writer"),
          start);
    } else if (!warnings.empty()) {
      Add(kWriter, "configuration", kWarning,
          absl::StrCat(detail, "; ", absl::StrJoin(warnings, "; ")),
          absl::StrCat("set the keys named under ", Key("freshbooks"), " in the writer's config"),
          start);
    } else {
      Add(kWriter, "configuration", kOk, std::move(detail), "", start);
    }
    CheckSigningKeys();
  }

  void CheckSigningKeys() {
    const absl::Time start = Now();
    uint64_t version = 0;
    const auto snapshot = checker_.keys_->Snapshot(&version);
    int from_config = 0;
    int registered = 0;
    if (const auto it = snapshot.find(id_); it != snapshot.end()) {
      for (const KeyEntry& k : it->second) {
        if (absl::StartsWith(k.key_id, "config:")) {
          ++from_config;
        } else {
          ++registered;
        }
      }
    }
    if (from_config + registered == 0) {
      const bool oauth = !config_.freshbooks.client_id.empty();
      return Add(kWriter, "signing keys", kWarning,
                 "no key verifies this connection's webhooks: ingress refuses every delivery "
                 "with 401 until one exists",
                 oauth ? absl::StrCat("run `mlc register-webhooks --connection ", id_,
                                      "` (FreshBooks' handshake gives a verifier per callback), "
                                      "or set ",
                                      Key("freshbooks.verifiers"))
                       : absl::StrCat("set ", Key("freshbooks.verifiers"),
                                      ", or configure FreshBooks OAuth and run `mlc "
                                      "register-webhooks --connection ",
                                      id_, "`"),
                 start);
    }
    Add(kWriter, "signing keys", kOk,
        absl::StrCat(Plural(from_config + registered, "signing key", "signing keys"), " (",
                     from_config, " from freshbooks.verifiers, ", registered,
                     " from registered webhooks)"),
        "", start);
  }

  // ------------------------------------------------------------ FreshBooks

  void CheckFreshBooks() {
    const absl::Time start = Now();
    FreshBooksConnections* conns = checker_.freshbooks_;
    FreshBooksClient* client = conns->Client(id_);
    if (!conns->OAuthConfigured(id_) || client == nullptr) {
      return Add(kFreshBooks, "oauth", kSkipped,
                 "freshbooks.client_id is not set: webhooks are recorded in freshbooks_events "
                 "only (no entity tables, no sync)",
                 absl::StrCat("to sync FreshBooks objects set ", Key("freshbooks.client_id"),
                              ", client_secret and redirect_uri, then run ", Authorize()),
                 start);
    }
    const std::vector<std::string> later = {"re-authorization", "access token (/users/me)",
                                            "business", "scopes"};
    const std::optional<FreshBooksIdentity> identity = conns->Identity(id_);
    if (!identity.has_value() || !client->HasTokens()) {
      Add(kFreshBooks, "authorization", kFailed,
          identity.has_value() ? "an account is recorded but no tokens are stored"
                               : "not authorized yet: no FreshBooks account is linked",
          absl::StrCat("run ", Authorize(), ", open the URL it prints and approve the app"), start);
      return Skip(kFreshBooks, later, "not authorized");
    }
    Add(kFreshBooks, "authorization", kOk,
        absl::StrCat(
            "account ", identity->account_id,
            identity->business_name.empty() ? "" : absl::StrCat(" (", identity->business_name, ")"),
            ", business id ", identity->business_id),
        "", start);

    const absl::Time reauth_start = Now();
    if (std::optional<std::string> why = client->NeedsReauthorization(); why.has_value()) {
      Add(kFreshBooks, "re-authorization", kFailed,
          absl::StrCat("the connection needs re-authorization (", *why,
                       "); its events wait in the journal"),
          absl::StrCat("run ", Authorize(), " and approve the app again"), reauth_start);
      return Skip(kFreshBooks, std::vector<std::string>(later.begin() + 1, later.end()),
                  "needs re-authorization");
    }
    Add(kFreshBooks, "re-authorization", kOk, "not needed", "", reauth_start);

    const absl::Time call_start = Now();
    absl::StatusOr<FreshBooksResponse> me = client->Call("GET", kUsersMe);
    if (!me.ok()) {
      ReportCallFailure(client, me.status(), call_start);
      Skip(kFreshBooks, {"business"}, "/users/me failed");
    } else {
      Add(kFreshBooks, "access token (/users/me)", kOk,
          absl::StrCat("GET ", kUsersMe, " answered HTTP ", me->http_status,
                       ": the access token is valid"),
          "", call_start);
      CheckBusiness(*identity, me->body);
    }
    CheckScopes(client);
  }

  void ReportCallFailure(FreshBooksClient* client, const absl::Status& status, absl::Time start) {
    const char* name = "access token (/users/me)";
    if (std::optional<std::string> why = client->NeedsReauthorization(); why.has_value()) {
      return Add(kFreshBooks, name, kFailed,
                 absl::StrCat("the access token needed a refresh and FreshBooks refused it (", *why,
                              "): the connection is now marked as needing re-authorization; "
                              "its events wait in the journal"),
                 absl::StrCat("run ", Authorize(), " and approve the app again"), start);
    }
    std::string fix;
    switch (status.code()) {
      case absl::StatusCode::kUnauthenticated:
        fix = absl::StrCat("run ", Authorize(), " and approve the app again");
        break;
      case absl::StatusCode::kPermissionDenied:
        fix = absl::StrCat("enable the ", kProfileScope,
                           " scope for the app in the FreshBooks developer portal, then run ",
                           Authorize());
        break;
      case absl::StatusCode::kFailedPrecondition:
        fix = absl::StrCat("set ", Key("freshbooks.client_id"),
                           " and client_secret (the app's "
                           "credentials in the FreshBooks developer portal) and check ",
                           Key("freshbooks.api_url"));
        break;
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
      case absl::StatusCode::kResourceExhausted:
        fix = absl::StrCat("FreshBooks did not answer in time: check ", Key("freshbooks.api_url"),
                           " (", config_.freshbooks.api_url,
                           ") and the writer's outbound network, then check again");
        break;
      default:
        fix = absl::StrCat("check ", Key("freshbooks.api_url"), " (", config_.freshbooks.api_url,
                           ")");
        break;
    }
    Add(kFreshBooks, name, kFailed, std::string(status.message()), std::move(fix), start);
  }

  void CheckBusiness(const FreshBooksIdentity& identity, const json& body) {
    const absl::Time start = Now();
    std::vector<std::string> accounts;
    std::string name;
    const json* memberships = JsonAt(body, "response.business_memberships");
    const auto* list =
        memberships == nullptr ? nullptr : memberships->get_ptr<const json::array_t*>();
    if (list != nullptr) {
      accounts.reserve(list->size());
      for (const json& m : *list) {
        const std::string account = Text(JsonAt(m, "business.account_id"));
        if (account.empty()) continue;
        if (account == identity.account_id) name = Text(JsonAt(m, "business.name"));
        accounts.push_back(account);
      }
    }
    const std::string& configured = config_.freshbooks.account_id;
    if (!configured.empty() && configured != identity.account_id) {
      return Add(
          kFreshBooks, "business", kFailed,
          absl::StrCat(Key("freshbooks.account_id"), " is ", configured,
                       " but the connection is authorized for account ", identity.account_id),
          absl::StrCat("set ", Key("freshbooks.account_id"), " to ", identity.account_id,
                       ", or run ", Authorize(), " signed in as a user of account ", configured),
          start);
    }
    if (std::find(accounts.begin(), accounts.end(), identity.account_id) == accounts.end()) {
      return Add(
          kFreshBooks, "business", kFailed,
          absl::StrCat("the authorized FreshBooks user no longer has access to account ",
                       identity.account_id, " (/users/me lists ",
                       accounts.empty() ? "no business" : absl::StrJoin(accounts, ", "), ")"),
          absl::StrCat("run ", Authorize(), " signed in as a user of account ",
                       identity.account_id),
          start);
    }
    Add(kFreshBooks, "business", kOk,
        absl::StrCat("/users/me lists account ", identity.account_id,
                     name.empty() ? "" : absl::StrCat(" (", name, ")")),
        "", start);
  }

  void CheckScopes(FreshBooksClient* client) {
    const absl::Time start = Now();
    const std::optional<std::string> granted = client->GrantedScope();
    if (!granted.has_value() || granted->empty()) {
      return Add(kFreshBooks, "scopes", kWarning,
                 "FreshBooks reported no granted scopes at authorization, so they cannot be "
                 "checked",
                 absl::StrCat("run ", Authorize(), " to record them"), start);
    }
    const std::set<std::string> have = SplitScopes(*granted);
    // scope -> what needs it
    std::map<std::string, std::vector<std::string>> need;
    need[kProfileScope].emplace_back("/users/me");
    for (const EntitySpec* e : AllEntities()) need[e->read_scope].push_back(e->name);
    std::vector<std::string> missing;
    std::vector<std::string> described;
    for (const auto& [scope, users] : need) {
      if (have.count(scope) > 0) continue;
      missing.push_back(scope);
      described.push_back(absl::StrCat(scope, " (", absl::StrJoin(users, ", "), ")"));
    }
    if (missing.empty()) {
      return Add(kFreshBooks, "scopes", kOk,
                 absl::StrCat("all ", need.size(), " scopes the writer reads with are granted"), "",
                 start);
    }
    Add(kFreshBooks, "scopes", kFailed,
        absl::StrCat("missing ", Plural(missing.size(), "scope", "scopes"), ": ",
                     absl::StrJoin(described, "; "),
                     ". FreshBooks answers 403 for those objects, so their webhooks cannot be "
                     "hydrated and their sync fails"),
        absl::StrCat("enable ", absl::StrJoin(missing, ", "),
                     " for the app in the FreshBooks developer portal (the app's scopes), then "
                     "re-authorize with them: ",
                     Authorize()),
        start);
  }

  // ------------------------------------------------------------ Databricks

  // GET <host><path> with the connection's token; a rejected token is minted
  // again once. Any HTTP answer is returned; errors are transport failures.
  absl::StatusOr<HttpResponse> UnityGet(const std::string& path) {
    std::string host = config_.databricks->host;
    while (!host.empty() && host.back() == '/') host.pop_back();
    HttpRequest req;
    req.method = "GET";
    req.url = absl::StrCat(host, path);
    req.timeout = absl::Seconds(30);
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<std::string> token = targets_.databricks_tokens->Token();
      if (!token.ok()) return token.status();
      req.headers.clear();
      req.headers.emplace("Authorization", absl::StrCat("Bearer ", *token));
      req.headers.emplace("Accept", "application/json");
      absl::StatusOr<HttpResponse> res = targets_.http->Send(req);
      if (!res.ok() || attempt > 0 || !IsInvalidTokenAnswer(res->status, res->body)) return res;
      targets_.databricks_tokens->Invalidate(*token);
    }
  }

  // The owner of a catalog or schema (GET /api/2.1/unity-catalog/{catalogs|schemas}/...), "" if
  // unknown.
  std::string Owner(const std::string& collection, const std::string& full_name) {
    absl::StatusOr<HttpResponse> res = UnityGet(
        absl::StrCat("/api/2.1/unity-catalog/", collection, "/", PercentEncode(full_name)));
    if (!res.ok() || res->status != 200) return "";
    return Text(JsonAt(json::parse(res->body, nullptr, false), "owner"));
  }

  std::string Grant(const std::vector<std::string>& privileges, const std::string& on) const {
    std::vector<std::string> sql;
    sql.reserve(privileges.size());
    for (const std::string& p : privileges) sql.push_back(SqlPrivilege(p));
    return absl::StrCat("GRANT ", absl::StrJoin(sql, ", "), " ON ", on, " TO ",
                        QuoteIdentifier(config_.databricks->client_id));
  }

  void CheckDatabricks() {
    if (!config_.databricks.has_value()) {
      return Skip(kDatabricks, {"oauth token", "warehouse", "catalog", "schema", "tables"},
                  "the connection has no databricks block");
    }
    const DatabricksConfig& d = *config_.databricks;
    const std::vector<std::string> later = {"warehouse", absl::StrCat("catalog ", d.catalog),
                                            absl::StrCat("schema ", d.catalog, ".", d.schema),
                                            "tables"};
    const absl::Time start = Now();
    if (targets_.databricks_tokens == nullptr || targets_.http == nullptr) {
      Add(kDatabricks, "oauth token", kFailed,
          "the writer runs no Databricks client for this connection",
          "restart the writer with writer.sink: databricks", start);
      return Skip(kDatabricks, later, "no Databricks client");
    }
    absl::StatusOr<std::string> token = targets_.databricks_tokens->Token();
    if (!token.ok()) {
      std::string fix;
      switch (token.status().code()) {
        case absl::StatusCode::kUnauthenticated:
          fix = absl::StrCat(
              "check ", Key("databricks.client_id"), " and ", Key("databricks.client_secret"),
              ": an OAuth secret of that service principal (Settings -> Identity and access -> "
              "Service principals -> Secrets), and the principal must be added to workspace ",
              d.host);
          break;
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kDeadlineExceeded:
        case absl::StatusCode::kResourceExhausted:
          fix = absl::StrCat("the workspace did not answer: check ", Key("databricks.host"), " (",
                             d.host, ") and the writer's outbound network, then check again");
          break;
        default:
          fix = absl::StrCat("check ", Key("databricks.host"), " (", d.host,
                             "): the workspace URL, e.g. https://dbc-1234.cloud.databricks.com");
          break;
      }
      Add(kDatabricks, "oauth token", kFailed, std::string(token.status().message()),
          std::move(fix), start);
      return Skip(kDatabricks, later, "no Databricks token");
    }
    Add(kDatabricks, "oauth token", kOk,
        absl::StrCat("token minted for service principal ", d.client_id, " at ", d.host), "",
        start);
    CheckWarehouse(d);
    CheckCatalogAndTables(d);
  }

  void CheckWarehouse(const DatabricksConfig& d) {
    const ConnectionCheckerOptions& o = checker_.options_;
    StatementClientOptions so;
    so.host = d.host;
    so.warehouse_id = d.warehouse_id;
    so.wait_timeout = o.warehouse_wait;
    so.request_timeout = absl::Seconds(30);
    so.statement_timeout = o.warehouse_timeout;
    so.max_http_attempts = 5;
    so.max_conflict_attempts = 1;
    so.sleep = o.sleep;
    Counter retries;
    StatementMetrics metrics;
    metrics.retries = &retries;
    StatementClient statements(so, targets_.http, targets_.databricks_tokens, checker_.clock_,
                               metrics);
    Statement st;
    st.sql = "SELECT 1";
    st.idempotent = true;
    const absl::Time start = Now();
    absl::StatusOr<StatementResult> r = statements.Execute(st);
    const absl::Duration took = Now() - start;
    const std::string warehouse = absl::StrCat("warehouse ", d.warehouse_id);
    if (r.ok()) {
      const int n = static_cast<int>(retries.Value());
      if (n > 0 || took >= o.slow_warehouse) {
        return Add(kDatabricks, "warehouse", kOk,
                   absl::StrCat(warehouse, " answered SELECT 1 after ", absl::FormatDuration(took),
                                n > 0 ? absl::StrCat(" and ", Plural(n, "retry", "retries")) : "",
                                ": it was probably starting (a stopped warehouse starts on the "
                                "first statement; its auto-stop setting decides how often)"),
                   "", start);
      }
      return Add(kDatabricks, "warehouse", kOk,
                 absl::StrCat(warehouse, " answered SELECT 1 in ", absl::FormatDuration(took)), "",
                 start);
    }
    const absl::Status& s = r.status();
    const std::string message(s.message());
    const std::string lower = absl::AsciiStrToLower(message);
    const bool unknown =
        absl::StrContains(lower, "does not exist") || absl::StrContains(lower, "not found") ||
        absl::StrContains(lower, "resource_does_not_exist") || absl::StrContains(lower, "http 404");
    if (s.code() == absl::StatusCode::kDeadlineExceeded) {
      return Add(kDatabricks, "warehouse", kWarning,
                 absl::StrCat(warehouse, " did not finish SELECT 1 within ",
                              absl::FormatDuration(o.warehouse_timeout),
                              " (probably still starting): ", message),
                 "check again in a few minutes; deliveries wait in the journal meanwhile. If it "
                 "stays stopped, start it in SQL Warehouses and check its state there",
                 start);
    }
    std::string fix;
    if (unknown || s.code() == absl::StatusCode::kInvalidArgument) {
      fix = absl::StrCat("check ", Key("databricks.warehouse_id"), " (", d.warehouse_id,
                         "): the id at the end of the warehouse's HTTP path "
                         "(/sql/1.0/warehouses/<id>, SQL Warehouses -> Connection details) in "
                         "workspace ",
                         d.host);
    } else if (s.code() == absl::StatusCode::kPermissionDenied) {
      fix = absl::StrCat("grant service principal ", d.client_id, " CAN USE on ", warehouse,
                         " (SQL Warehouses -> Permissions)");
    } else if (s.code() == absl::StatusCode::kUnauthenticated) {
      fix = absl::StrCat("check ", Key("databricks.client_id"), " and ",
                         Key("databricks.client_secret"));
    } else if (IsTransient(s)) {
      fix = absl::StrCat(
          "the warehouse kept answering with errors; check its state in SQL Warehouses and "
          "check again (deliveries wait in the journal meanwhile)");
    } else {
      fix = absl::StrCat("check ", warehouse, " in SQL Warehouses and that service principal ",
                         d.client_id, " may use it");
    }
    Add(kDatabricks, "warehouse", kFailed, message, std::move(fix), start);
  }

  void CheckCatalogAndTables(const DatabricksConfig& d) {
    const std::string catalog_sql = absl::StrCat("CATALOG ", QuoteIdentifier(d.catalog));
    const std::string schema_full = absl::StrCat(d.catalog, ".", d.schema);
    const std::string schema_sql =
        absl::StrCat("SCHEMA ", QuoteIdentifier(d.catalog), ".", QuoteIdentifier(d.schema));
    const std::string principal = absl::StrCat("service principal ", d.client_id);
    const std::string query = absl::StrCat("?principal=", PercentEncode(d.client_id));

    // The catalog: exists, USE_CATALOG.
    const std::string catalog_step = absl::StrCat("catalog ", d.catalog);
    absl::Time start = Now();
    absl::StatusOr<HttpResponse> res = UnityGet(absl::StrCat(
        "/api/2.1/unity-catalog/effective-permissions/catalog/", PercentEncode(d.catalog), query));
    if (!res.ok()) {
      Add(kDatabricks, catalog_step, kFailed,
          absl::StrCat("Unity Catalog did not answer: ", res.status().message()),
          absl::StrCat("check ", Key("databricks.host"), " and the writer's outbound network"),
          start);
      return Skip(kDatabricks, {absl::StrCat("schema ", schema_full), "tables"},
                  "Unity Catalog did not answer");
    }
    bool catalog_owner = false;
    std::map<std::string, std::string> catalog_privileges;
    if (res->status == 404) {
      Add(kDatabricks, catalog_step, kFailed,
          absl::StrCat("catalog ", d.catalog, " does not exist, or ", principal, " cannot see it (",
                       DatabricksError(*res), ")"),
          absl::StrCat("set ", Key("databricks.catalog"),
                       " to an existing catalog (ml-connector does not create catalogs) and run: ",
                       Grant({"USE_CATALOG"}, catalog_sql)),
          start);
      return Skip(kDatabricks, {absl::StrCat("schema ", schema_full), "tables"},
                  "the catalog does not exist");
    }
    if (res->status != 200) {
      Add(kDatabricks, catalog_step, kWarning,
          absl::StrCat("cannot read the grants on catalog ", d.catalog, " (", DatabricksError(*res),
                       "); privileges not verified"),
          absl::StrCat("make sure ", principal,
                       " holds USE CATALOG: ", Grant({"USE_CATALOG"}, catalog_sql)),
          start);
    } else {
      catalog_privileges = ParsePrivileges(res->body);
      const bool usable = catalog_privileges.count("USE_CATALOG") > 0 ||
                          catalog_privileges.count("ALL_PRIVILEGES") > 0;
      if (!usable) catalog_owner = Owner("catalogs", d.catalog) == d.client_id;
      if (usable || catalog_owner) {
        Add(kDatabricks, catalog_step, kOk,
            catalog_owner
                ? absl::StrCat(principal, " owns the catalog")
                : absl::StrCat(principal, " holds ", DescribePrivileges(catalog_privileges)),
            "", start);
      } else {
        Add(kDatabricks, catalog_step, kFailed,
            absl::StrCat(principal, " lacks USE_CATALOG on catalog ", d.catalog, " (holds ",
                         DescribePrivileges(catalog_privileges), kGroupCaveat, ")"),
            absl::StrCat("run as the catalog's owner or an admin: ",
                         Grant({"USE_CATALOG"}, catalog_sql)),
            start);
      }
    }
    const bool can_create_schema = catalog_owner || catalog_privileges.count("CREATE_SCHEMA") > 0 ||
                                   catalog_privileges.count("ALL_PRIVILEGES") > 0;

    // The schema: exists, USE_SCHEMA, CREATE_TABLE, SELECT, MODIFY.
    const std::string schema_step = absl::StrCat("schema ", schema_full);
    start = Now();
    res = UnityGet(absl::StrCat("/api/2.1/unity-catalog/effective-permissions/schema/",
                                PercentEncode(schema_full), query));
    if (!res.ok()) {
      Add(kDatabricks, schema_step, kFailed,
          absl::StrCat("Unity Catalog did not answer: ", res.status().message()),
          absl::StrCat("check ", Key("databricks.host"), " and the writer's outbound network"),
          start);
      return Skip(kDatabricks, {"tables"}, "Unity Catalog did not answer");
    }
    const std::vector<std::string> all_needed(std::begin(kSchemaPrivileges),
                                              std::end(kSchemaPrivileges));
    if (res->status == 404) {
      const std::string create =
          absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", QuoteIdentifier(d.catalog), ".",
                       QuoteIdentifier(d.schema));
      if (can_create_schema) {
        Add(kDatabricks, schema_step, kWarning,
            absl::StrCat("schema ", schema_full, " does not exist yet; ", principal,
                         " may create it and the writer does at startup and before its first "
                         "write"),
            absl::StrCat("none needed (restart the writer to create it now), or create it: ",
                         create),
            start);
      } else {
        Add(kDatabricks, schema_step, kFailed,
            absl::StrCat("schema ", schema_full, " does not exist (", DatabricksError(*res),
                         ") and ", principal, " may not create it (no CREATE SCHEMA on catalog ",
                         d.catalog, ")"),
            absl::StrCat("create it and grant access: ", create, "; ",
                         Grant(all_needed, schema_sql), " - or set ", Key("databricks.catalog"),
                         " / ", Key("databricks.schema"), " to an existing schema"),
            start);
      }
      return Skip(kDatabricks, {"tables"}, "the schema does not exist");
    }
    bool can_create_table = true;  // unless we learn otherwise
    if (res->status != 200) {
      Add(kDatabricks, schema_step, kWarning,
          absl::StrCat("cannot read the grants on schema ", schema_full, " (",
                       DatabricksError(*res), "); privileges not verified"),
          absl::StrCat("make sure ", principal, " holds them: ", Grant(all_needed, schema_sql)),
          start);
    } else {
      const std::map<std::string, std::string> privileges = ParsePrivileges(res->body);
      std::vector<std::string> missing;
      if (privileges.count("ALL_PRIVILEGES") == 0) {
        for (const std::string& p : all_needed) {
          if (privileges.count(p) == 0) missing.push_back(p);
        }
      }
      if (!missing.empty() && Owner("schemas", schema_full) == d.client_id) missing.clear();
      if (missing.empty()) {
        Add(kDatabricks, schema_step, kOk,
            absl::StrCat(principal, " holds ", DescribePrivileges(privileges)), "", start);
      } else {
        can_create_table =
            std::find(missing.begin(), missing.end(), "CREATE_TABLE") == missing.end();
        Add(kDatabricks, schema_step, kFailed,
            absl::StrCat(principal, " lacks ", absl::StrJoin(missing, ", "), " on schema ",
                         schema_full, " (holds ", DescribePrivileges(privileges), kGroupCaveat,
                         "); writes to its tables fail until granted"),
            absl::StrCat("run as the schema's owner or an admin: ", Grant(missing, schema_sql)),
            start);
      }
    }

    std::vector<const TableSpec*> tables = {checker_.options_.events_table};
    if (checker_.freshbooks_->OAuthConfigured(id_)) {
      tables.insert(tables.end(), checker_.options_.entity_tables.begin(),
                    checker_.options_.entity_tables.end());
    }
    for (const TableSpec* t : tables) CheckDatabricksTable(d, *t, can_create_table, schema_sql);
  }

  void CheckDatabricksTable(const DatabricksConfig& d, const TableSpec& table,
                            bool can_create_table, const std::string& schema_sql) {
    const absl::Time start = Now();
    const std::string step = absl::StrCat("table ", table.name);
    const std::string full = FullTableName(d.catalog, d.schema, table.name);
    absl::StatusOr<HttpResponse> res = UnityGet(
        absl::StrCat("/api/2.1/unity-catalog/tables/",
                     PercentEncode(absl::StrCat(d.catalog, ".", d.schema, ".", table.name))));
    if (!res.ok()) {
      return Add(
          kDatabricks, step, kFailed,
          absl::StrCat("Unity Catalog did not answer: ", res.status().message()),
          absl::StrCat("check ", Key("databricks.host"), " and the writer's outbound network"),
          start);
    }
    if (res->status == 404) {
      if (can_create_table) {
        return Add(kDatabricks, step, kWarning,
                   absl::StrCat(full,
                                " does not exist yet: the writer creates it before its "
                                "first write to it"),
                   "none needed (restarting the writer creates it now)", start);
      }
      return Add(kDatabricks, step, kFailed,
                 absl::StrCat(full,
                              " does not exist and the service principal may not create "
                              "it (no CREATE TABLE on the schema)"),
                 absl::StrCat("run as the schema's owner or an admin: ",
                              Grant({"CREATE_TABLE"}, schema_sql)),
                 start);
    }
    if (res->status != 200) {
      const bool transient = res->status == 429 || res->status >= 500;
      return Add(
          kDatabricks, step, kFailed,
          absl::StrCat("cannot read ", full, " from Unity Catalog (", DatabricksError(*res), ")"),
          transient ? std::string("check again in a minute")
                    : absl::StrCat("the service principal needs USE CATALOG, USE SCHEMA "
                                   "and SELECT: ",
                                   Grant({"USE_SCHEMA", "SELECT"}, schema_sql)),
          start);
    }
    absl::StatusOr<std::vector<CatalogColumn>> columns = ParseCatalogColumns(res->body);
    if (!columns.ok()) {
      return Add(kDatabricks, step, kFailed,
                 absl::StrCat("Unity Catalog's answer for ", full,
                              " cannot be read: ", columns.status().message()),
                 "check databricks.host points at a Databricks workspace", start);
    }
    const SchemaDiff diff = DiffSchema(table, *columns);
    if (!diff.incompatible.empty()) {
      std::vector<std::string> names;
      names.reserve(diff.incompatible.size());
      for (const ColumnConflict& c : diff.incompatible) names.push_back(QuoteIdentifier(c.name));
      return Add(
          kDatabricks, step, kFailed,
          absl::StrCat(full, ": ", DescribeConflicts(diff.incompatible),
                       ". ml-connector never retypes a column: every delivery for this table "
                       "goes dead until it is fixed"),
          absl::StrCat("rename or drop ", absl::StrJoin(names, ", "),
                       " in Databricks (ALTER TABLE ", full, " RENAME COLUMN ", names.front(),
                       " TO ... , or DROP COLUMN; both "
                       "need delta.columnMapping.mode = 'name'), or drop the table to have it "
                       "recreated, or point ",
                       Key("databricks.schema"),
                       " at another schema; then replay the dead deliveries"),
          start);
    }
    if (!diff.missing.empty()) {
      std::vector<std::string> names;
      names.reserve(diff.missing.size());
      for (const ColumnSpec& c : diff.missing) names.push_back(c.name);
      absl::StatusOr<std::string> alter =
          AddColumnsSql(d.catalog, d.schema, table.name, diff.missing);
      return Add(kDatabricks, step, kWarning,
                 absl::StrCat(full, " lacks ", Plural(names.size(), "column", "columns"), " (",
                              absl::StrJoin(names, ", "),
                              "): the writer adds them before its next write to it"),
                 alter.ok() ? absl::StrCat("none needed, or add them now: ", *alter)
                            : std::string("none needed"),
                 start);
    }
    Add(kDatabricks, step, kOk,
        absl::StrCat(
            full, ": all ", table.columns.size(), " columns match",
            diff.extra.empty()
                ? ""
                : absl::StrCat(" (", Plural(diff.extra.size(), "extra column", "extra columns"),
                               " ignored)")),
        "", start);
  }

  // ---------------------------------------------------------------- SQLite

  void CheckSqlite() {
    const absl::Time start = Now();
    const std::string& path = targets_.sqlite_path;
    std::error_code ec;
    if (path.empty() || !std::filesystem::exists(path, ec)) {
      Add(kSqlite, "lakehouse", kFailed,
          absl::StrCat("the lakehouse file ", path.empty() ? "(none)" : path, " does not exist"),
          "the writer creates <writer.data_dir>/lakehouse.db at startup: check writer.data_dir "
          "and the writer's log",
          start);
      return Skip(kSqlite, {"tables"}, "no lakehouse file");
    }
    absl::StatusOr<std::unique_ptr<Db>> db =
        Db::Open(path, Durability::kNormal, /*read_only=*/true);
    absl::StatusOr<Stmt> probe =
        db.ok() ? (*db)->Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
                : absl::StatusOr<Stmt>(db.status());
    absl::StatusOr<bool> row = probe.ok() ? probe->Step() : absl::StatusOr<bool>(probe.status());
    if (!row.ok() || !*row) {
      Add(kSqlite, "lakehouse", kFailed,
          absl::StrCat("cannot read ", path, ": ",
                       row.ok() ? "no answer" : std::string(row.status().message())),
          "check that the file is the writer's SQLite lakehouse and readable by the writer "
          "(writer.data_dir)",
          start);
      return Skip(kSqlite, {"tables"}, "the lakehouse cannot be read");
    }
    Add(kSqlite, "lakehouse", kOk,
        absl::StrCat(path, " opens (", Plural(probe->ColumnInt(0), "table", "tables"), ")"), "",
        start);
    probe->Reset();

    std::vector<const TableSpec*> tables = {checker_.options_.events_table};
    tables.insert(tables.end(), checker_.options_.entity_tables.begin(),
                  checker_.options_.entity_tables.end());
    for (const TableSpec* t : tables) CheckSqliteTable(db->get(), *t);
  }

  void CheckSqliteTable(Db* db, const TableSpec& table) {
    const absl::Time start = Now();
    const std::string step = absl::StrCat("table ", table.name);
    const std::string restart =
        "restart the writer: it creates missing tables and adds missing columns at startup";
    absl::StatusOr<Stmt> info =
        db->Prepare(absl::StrCat("PRAGMA table_info(", QuoteIdent(table.name), ")"));
    std::set<std::string> existing;
    absl::Status error = info.status();
    while (error.ok()) {
      absl::StatusOr<bool> row = info->Step();
      if (!row.ok()) error = row.status();
      if (!row.ok() || !*row) break;
      existing.insert(absl::AsciiStrToLower(info->ColumnText(1)));
    }
    if (!error.ok()) {
      return Add(kSqlite, step, kFailed, std::string(error.message()), restart, start);
    }
    if (existing.empty()) {
      return Add(kSqlite, step, kFailed,
                 absl::StrCat("table ", table.name, " does not exist: writes to it fail"), restart,
                 start);
    }
    std::vector<std::string> missing;
    for (const ColumnSpec& c : table.columns) {
      if (existing.count(absl::AsciiStrToLower(c.name)) == 0) missing.push_back(c.name);
    }
    if (!missing.empty()) {
      return Add(
          kSqlite, step, kFailed,
          absl::StrCat("table ", table.name, " lacks ", Plural(missing.size(), "column", "columns"),
                       " (", absl::StrJoin(missing, ", "), "): writes to it fail"),
          restart, start);
    }
    Add(kSqlite, step, kOk, absl::StrCat("all ", table.columns.size(), " columns present"), "",
        start);
  }

  const ConnectionChecker& checker_;
  const ConnectionConfig& config_;
  const ConnectionCheckTargets targets_;
  const std::string id_;
  CheckReport report_;
};

ConnectionChecker::ConnectionChecker(FreshBooksConnections* freshbooks, SigningKeys* keys,
                                     TargetsFor targets_for, const Clock* clock,
                                     ConnectionCheckerOptions options)
    : freshbooks_(freshbooks),
      keys_(keys),
      targets_for_(std::move(targets_for)),
      clock_(clock),
      options_(std::move(options)) {}

absl::StatusOr<CheckReport> ConnectionChecker::Check(const std::string& connection_id) {
  const ConnectionConfig* config = freshbooks_->Config(connection_id);
  std::optional<ConnectionCheckTargets> targets;
  if (config != nullptr && targets_for_) targets = targets_for_(connection_id);
  if (config == nullptr || !targets.has_value()) {
    return absl::NotFoundError(absl::StrCat("unknown connection \"", connection_id, "\""));
  }
  Run run(*this, *config, *std::move(targets));
  CheckReport report = run.Execute();
  int failed = 0;
  int warnings = 0;
  for (const CheckStepResult& s : report.steps) {
    if (s.status == kFailed) ++failed;
    if (s.status == kWarning) ++warnings;
  }
  log::Info("connection check", {{"connection", connection_id},
                                 {"ok", report.ok},
                                 {"failed", static_cast<int64_t>(failed)},
                                 {"warnings", static_cast<int64_t>(warnings)}});
  return report;
}

mlconnector::v1::CheckConnectionResponse ToProto(const CheckReport& report) {
  mlconnector::v1::CheckConnectionResponse out;
  out.set_connection_id(report.connection_id);
  out.set_ok(report.ok);
  for (const CheckStepResult& s : report.steps) {
    mlconnector::v1::CheckStep* step = out.add_steps();
    step->set_system(s.system);
    step->set_name(s.name);
    step->set_status(s.status);
    step->set_detail(s.detail);
    step->set_fix(s.fix);
    step->set_duration_ms(absl::ToDoubleMilliseconds(s.took));
  }
  return out;
}

}  // namespace mlc::writer

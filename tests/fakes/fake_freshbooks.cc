// FakeFreshBooks: OAuth, identity, resources, callbacks and signed webhooks.
#include "tests/fakes/fake_freshbooks.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "common/http_server_util.h"
#include "common/webhook_signature.h"
#include "tests/fakes/freshbooks_samples.h"

namespace mlc::testing {

using json = nlohmann::json;

// One REST resource: where it lives, its envelope keys, webhook object and scope.
struct FakeFreshBooks::EntityRoute {
  std::string entity;
  Family family = Family::kAccounting;
  std::string prefix;                     // up to the scope id, e.g. "/accounting/account/"
  std::string list_path;                  // below the scope id, e.g. "invoices/invoices"
  std::vector<std::string> single_paths;  // "<path>/{id}" forms; empty: list only
  std::string single_key;
  std::string list_key;
  std::string event_object;  // "" when FreshBooks has no webhooks for it
  std::string scope;
  std::vector<std::string> twin_ids;  // id fields kept equal to the id, if present
  bool has_lines = false;
};

namespace {

constexpr char kJson[] = "application/json";
constexpr int kDefaultPerPage = 15;
constexpr int kMaxPerPage = 100;
constexpr size_t kMaxSentLog = 10000;  // SentWebhooks() keeps about the last this many

using RouteSpec = FakeFreshBooks::EntityRoute;

const std::vector<RouteSpec>& Routes() {
  using F = FakeFreshBooks;
  static const auto* routes = [] {
    constexpr char kAcct[] = "/accounting/account/";
    const auto acct = [&](const char* entity, const char* path, const char* single,
                          const char* list, const char* event, const char* scope,
                          std::vector<std::string> twins) {
      RouteSpec r;
      r.entity = entity;
      r.family = F::Family::kAccounting;
      r.prefix = kAcct;
      r.list_path = path;
      r.single_paths = {path};
      r.single_key = single;
      r.list_key = list;
      r.event_object = event;
      r.scope = scope;
      r.twin_ids = std::move(twins);
      return r;
    };
    auto* v = new std::vector<RouteSpec>();
    RouteSpec invoice = acct("invoice", "invoices/invoices", "invoice", "invoices", "invoice",
                             "user:invoices:read", {"invoiceid"});
    invoice.has_lines = true;
    v->push_back(std::move(invoice));
    v->push_back(acct("payment", "payments/payments", "payment", "payments", "payment",
                      "user:payments:read", {"logid"}));
    v->push_back(
        acct("bill", "bills/bills", "bill", "bills", "bill", "user:bills:read", {"billid"}));
    v->push_back(acct("bill_payment", "bill_payments/bill_payments", "bill_payment",
                      "bill_payments", "", "user:bill_payments:read", {"billpaymentid"}));
    v->push_back(acct("bill_vendor", "bill_vendors/bill_vendors", "bill_vendor", "bill_vendors",
                      "bill_vendor", "user:bill_vendors:read", {"vendorid", "id"}));
    v->push_back(acct("expense", "expenses/expenses", "expense", "expenses", "expense",
                      "user:expenses:read", {"expenseid"}));
    v->push_back(acct("expense_category", "expenses/categories", "category", "categories",
                      "category", "user:expenses:read", {"categoryid"}));
    v->push_back(acct("client", "users/clients", "client", "clients", "client", "user:clients:read",
                      {"userid"}));
    v->push_back(acct("item", "items/items", "item", "items", "item", "user:billable_items:read",
                      {"itemid"}));
    v->push_back(acct("tax", "taxes/taxes", "tax", "taxes", "tax", "user:taxes:read", {"taxid"}));
    v->push_back(acct("credit_note", "credit_notes/credit_notes", "credit_note", "credit_notes",
                      "credit_note", "user:credit_notes:read", {"creditid"}));
    v->push_back(acct("estimate", "estimates/estimates", "estimate", "estimates", "estimate",
                      "user:estimates:read", {"estimateid"}));
    v->push_back(acct("other_income", "other_incomes/other_incomes", "other_income", "other_income",
                      "", "user:other_income:read", {"incomeid"}));
    RouteSpec jed = acct("journal_entry_detail", "journal_entries/journal_entry_details",
                         "journal_entry_detail", "journal_entry_details", "",
                         "user:journal_entries:read", {"detailid"});
    jed.single_paths.clear();
    v->push_back(std::move(jed));

    RouteSpec ledger;
    ledger.entity = "ledger_account";
    ledger.family = F::Family::kLedger;
    ledger.prefix = "/accounting/businesses/";
    ledger.list_path = "ledger_accounts/accounts";
    ledger.single_paths = {"ledger_accounts/accounts"};
    ledger.single_key = "data";
    ledger.list_key = "data";
    ledger.scope = "user:journal_entries:read";
    v->push_back(std::move(ledger));

    const auto business = [](const char* entity, const char* prefix, const char* list,
                             std::vector<std::string> singles, const char* single_key,
                             const char* event, const char* scope) {
      RouteSpec r;
      r.entity = entity;
      r.family = F::Family::kProjects;
      r.prefix = prefix;
      r.list_path = list;
      r.single_paths = std::move(singles);
      r.single_key = single_key;
      r.list_key = list;
      r.event_object = event;
      r.scope = scope;
      return r;
    };
    v->push_back(business("project", "/projects/business/", "projects", {"project", "projects"},
                          "project", "project", "user:projects:read"));
    v->push_back(business("service", "/comments/business/", "services", {"service", "services"},
                          "service", "service", "user:projects:read"));
    v->push_back(business("time_entry", "/timetracking/business/", "time_entries", {"time_entries"},
                          "time_entry", "time_entry", "user:time_entries:read"));
    return v;
  }();
  return *routes;
}

const RouteSpec* FindRoute(const std::string& entity) {
  for (const RouteSpec& r : Routes()) {
    if (r.entity == entity) return &r;
  }
  return nullptr;
}

const RouteSpec& RouteOrDie(const std::string& entity) {
  const RouteSpec* r = FindRoute(entity);
  if (r == nullptr) {
    std::fprintf(stderr, "FakeFreshBooks: unknown entity \"%s\"\n", entity.c_str());
    std::abort();
  }
  return *r;
}

// Webhook object names of FRESHBOOKS.md §1 (recurring has no entity here).
const std::set<std::string>& EventObjects() {
  static const auto* objects =
      new std::set<std::string>{"bill",     "bill_vendor", "category", "client", "credit_note",
                                "estimate", "expense",     "invoice",  "item",   "payment",
                                "project",  "recurring",   "service",  "tax",    "time_entry"};
  return *objects;
}

bool ValidEventName(const std::string& event) {
  const std::vector<std::string> parts = absl::StrSplit(event, absl::MaxSplits('.', 1));
  if (EventObjects().count(parts[0]) == 0) return false;
  if (parts.size() == 1) return true;
  const std::string& action = parts[1];
  if (action == "create" || action == "update" || action == "delete") return true;
  return action == "sendByEmail" && (parts[0] == "invoice" || parts[0] == "estimate");
}

const absl::TimeZone& Eastern() {
  static const auto* tz = [] {
    auto* zone = new absl::TimeZone();
    if (!absl::LoadTimeZone("America/New_York", zone)) *zone = absl::FixedTimeZone(-5 * 3600);
    return zone;
  }();
  return *tz;
}

// JSON lookups through the underlying std::map (nlohmann's iterators trip GCC's
// -Wnull-dereference at -O2).
const json* Member(const json& j, const std::string& name) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return nullptr;
  const auto it = object->find(name);
  return it == object->end() ? nullptr : &it->second;
}

const std::string* StringMember(const json& j, const std::string& name) {
  const json* v = Member(j, name);
  return v == nullptr ? nullptr : v->get_ptr<const std::string*>();
}

std::optional<int64_t> AsId(const json* v) {
  if (v == nullptr) return std::nullopt;
  if (const auto* i = v->get_ptr<const json::number_integer_t*>(); i != nullptr) return *i;
  if (const auto* u = v->get_ptr<const json::number_unsigned_t*>(); u != nullptr) {
    return static_cast<int64_t>(*u);
  }
  int64_t id = 0;
  if (const auto* s = v->get_ptr<const std::string*>(); s != nullptr && absl::SimpleAtoi(*s, &id)) {
    return id;
  }
  return std::nullopt;
}

int VisState(const json& object) {
  const std::optional<int64_t> v = AsId(Member(object, "vis_state"));
  return v.has_value() ? static_cast<int>(*v) : 0;
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

std::string Param(const httplib::Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : "";
}

int IntParam(const httplib::Request& req, const char* name, int fallback) {
  int v = 0;
  return absl::SimpleAtoi(Param(req, name), &v) ? v : fallback;
}

std::string EasternText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, Eastern());
}

// A small random alphanumeric string, like FreshBooks verifiers.
std::string Alnum(std::mt19937_64& rng, size_t n) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kChars[rng() % (sizeof(kChars) - 1)]);
  return s;
}

double Uniform(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0, 1)(rng); }

int RpcCode(int status) {
  switch (status) {
    case 400:
      return 3;  // INVALID_ARGUMENT
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 5;  // NOT_FOUND
    case 429:
      return 8;  // RESOURCE_EXHAUSTED
    case 503:
      return 14;  // UNAVAILABLE
    default:
      return 13;  // INTERNAL
  }
}

int AccountingErrno(int status) {
  switch (status) {
    case 401:
      return 1003;
    case 404:
      return 1012;
    default:
      return status;
  }
}

// The error body of `family`; `code` is the OAuth-style word ("invalid_token").
json ErrorBody(FakeFreshBooks::Family family, int status, const std::string& code,
               const std::string& message) {
  using F = FakeFreshBooks;
  switch (family) {
    case F::Family::kAuth:
      return json{{"error", code}, {"error_description", message}};
    case F::Family::kAccounting:
      return json{{"response",
                   {{"errors", json::array({json{{"errno", AccountingErrno(status)},
                                                 {"field", nullptr},
                                                 {"message", message},
                                                 {"object", nullptr},
                                                 {"value", nullptr}}})}}}};
    case F::Family::kEvents:
      return json{{"errno", status}, {"message", absl::StrCat(code, ": ", message)}};
    case F::Family::kLedger:
      return json{
          {"errors", {{"message", message}, {"status", status}, {"details", json::array()}}}};
    case F::Family::kProjects:
      return json{{"code", RpcCode(status)}, {"message", message}, {"details", json::array()}};
  }
  return json{{"message", message}};
}

void Error(httplib::Response& res, FakeFreshBooks::Family family, int status,
           const std::string& code, const std::string& message) {
  Reply(res, status, ErrorBody(family, status, code, message));
}

// "Client" from "client", "Credit note" from "credit_note".
std::string Capitalised(const std::string& key) {
  std::string s = key;
  std::replace(s.begin(), s.end(), '_', ' ');
  if (!s.empty()) s[0] = absl::ascii_toupper(static_cast<unsigned char>(s[0]));
  return s;
}

// A page of a list: `page` is 1-based, per_page already capped.
struct Page {
  int page = 1;
  int per_page = kDefaultPerPage;
  int pages = 1;
  int total = 0;
  size_t begin = 0;
  size_t end = 0;
};

Page Paginate(const httplib::Request& req, size_t total) {
  Page p;
  p.page = std::max(1, IntParam(req, "page", 1));
  p.per_page = IntParam(req, "per_page", kDefaultPerPage);
  if (p.per_page < 1) p.per_page = kDefaultPerPage;
  p.per_page = std::min(p.per_page, kMaxPerPage);
  p.total = static_cast<int>(total);
  p.pages = std::max(1, (p.total + p.per_page - 1) / p.per_page);
  const size_t per = static_cast<size_t>(p.per_page);
  p.begin = std::min(total, static_cast<size_t>(p.page - 1) * per);
  p.end = std::min(total, p.begin + per);
  return p;
}

// The parsed body of a token request: JSON object of strings, or a form.
std::optional<std::map<std::string, std::string>> TokenParams(const httplib::Request& req) {
  std::map<std::string, std::string> out;
  const std::string type = absl::AsciiStrToLower(req.get_header_value("Content-Type"));
  const bool looks_json = absl::StrContains(type, "json") ||
                          absl::StartsWith(absl::StripLeadingAsciiWhitespace(req.body), "{");
  if (looks_json) {
    const json body = json::parse(req.body, nullptr, false);
    const auto* object = body.get_ptr<const json::object_t*>();
    if (object == nullptr) return std::nullopt;
    for (const auto& [key, value] : *object) {
      if (const auto* s = value.get_ptr<const std::string*>(); s != nullptr) out[key] = *s;
    }
    return out;
  }
  FormLimits limits;
  limits.max_value_bytes = 8192;
  limits.max_key_bytes = 256;
  absl::StatusOr<FormFields> fields = ParseWebhookForm(req.body, limits);
  if (!fields.ok()) return std::nullopt;
  for (auto& [key, value] : *fields) out[key] = std::move(value);
  return out;
}

bool WantsLines(const httplib::Request& req) {
  for (const char* key : {"include[]", "include"}) {
    const size_t n = req.get_param_value_count(key);
    for (size_t i = 0; i < n; ++i) {
      if (req.get_param_value(key, i) == "lines") return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> FakeFreshBooks::AllReadScopes() {
  return {"user:profile:read",         "user:invoices:read",      "user:payments:read",
          "user:bills:read",           "user:bill_payments:read", "user:bill_vendors:read",
          "user:expenses:read",        "user:clients:read",       "user:billable_items:read",
          "user:taxes:read",           "user:credit_notes:read",  "user:estimates:read",
          "user:journal_entries:read", "user:other_income:read",  "user:projects:read",
          "user:time_entries:read",    "user:business:read"};
}

FakeFreshBooks::FakeFreshBooks() : FakeFreshBooks(Options()) {}

FakeFreshBooks::FakeFreshBooks(Options options)
    : options_(std::move(options)),
      rng_(options_.seed),
      classic_not_found_(options_.classic_not_found),
      scopes_(options_.scopes) {}

FakeFreshBooks::~FakeFreshBooks() { Stop(); }

const Clock* FakeFreshBooks::clock() const {
  return options_.clock != nullptr ? options_.clock : RealClock::Get();
}

std::string FakeFreshBooks::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

absl::Status FakeFreshBooks::Start() {
  std::signal(SIGPIPE, SIG_IGN);
  for (const std::string& entity : SampleEntityNames()) {
    if (FindRoute(entity) == nullptr) {
      return absl::InternalError(
          absl::StrCat("fake FreshBooks has no route for sample entity \"", entity, "\""));
    }
  }
  RegisterRoutes();
  server_.set_tcp_nodelay(true);
  server_.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (absl::StartsWith(req.path, "/_fake/")) return;
    absl::MutexLock lock(&mu_);
    ++statuses_[res.status];
  });
  absl::StatusOr<int> port =
      StartHttpServer(&server_, "fake_freshbooks", options_.listen, &thread_);
  if (!port.ok()) return port.status();
  port_ = *port;
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  sender_ = std::thread([this] { SenderLoop(); });
  return absl::OkStatus();
}

void FakeFreshBooks::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    sender_cv_.SignalAll();
  }
  if (sender_.joinable()) sender_.join();
  StopHttpServer(&server_, &thread_);
}

// --- Routing ------------------------------------------------------------------

void FakeFreshBooks::RegisterRoutes() {
  server_.Get("/oauth/authorize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleAuthorize(req, res);
  });
  server_.Post("/auth/oauth/token", [this](const httplib::Request& req, httplib::Response& res) {
    HandleToken(req, res);
  });
  server_.Get("/auth/api/v1/users/me",
              [this](const httplib::Request& req, httplib::Response& res) { HandleMe(req, res); });
  const std::string callbacks = "/events/account/([^/]+)/events/callbacks(?:/([0-9]+))?/?";
  const auto on_callbacks = [this](const httplib::Request& req, httplib::Response& res) {
    HandleCallbacks(req, res);
  };
  server_.Get(callbacks, on_callbacks);
  server_.Post(callbacks, on_callbacks);
  server_.Put(callbacks, on_callbacks);
  server_.Delete(callbacks, on_callbacks);
  for (const EntityRoute& route : Routes()) RouteEntity(route);
  const auto on_control = [this](const httplib::Request& req, httplib::Response& res) {
    HandleControl(req, res);
  };
  server_.Get("/_fake/(.*)", on_control);
  server_.Post("/_fake/(.*)", on_control);
}

void FakeFreshBooks::RouteEntity(const EntityRoute& route) {
  const EntityRoute* r = &route;  // Routes() is static: the pointer stays valid
  server_.Get(
      absl::StrCat(route.prefix, "([^/]+)/", route.list_path, "/?"),
      [this, r](const httplib::Request& req, httplib::Response& res) { HandleList(*r, req, res); });
  for (const std::string& single : route.single_paths) {
    server_.Get(absl::StrCat(route.prefix, "([^/]+)/", single, "/([^/]+)/?"),
                [this, r](const httplib::Request& req, httplib::Response& res) {
                  HandleGet(*r, req, res);
                });
  }
}

int FakeFreshBooks::KnownScope(Family family, const std::string& scope_id) const {
  const auto matches = [&](const std::string& account_id, const std::string& uuid, int64_t id) {
    switch (family) {
      case Family::kLedger:
        return scope_id == uuid;
      case Family::kProjects:
        return scope_id == absl::StrCat(id);
      default:
        return scope_id == account_id;
    }
  };
  if (matches(options_.account_id, options_.business_uuid, options_.business_id)) return 1;
  for (const Business& b : options_.other_businesses) {
    if (matches(b.account_id, b.business_uuid, b.id)) return 0;
  }
  return -1;
}

bool FakeFreshBooks::Admit(const std::string& pattern, Family family, const std::string& scope,
                           bool token_endpoint, const httplib::Request& req,
                           httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  ++requests_[pattern];
  if (latency_ > absl::ZeroDuration()) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), latency_);
  }
  for (Fault& f : faults_) {
    if (f.remaining <= 0) continue;
    const bool applies =
        f.scope == FaultScope::kAll || (f.scope == FaultScope::kToken) == token_endpoint;
    if (!applies) continue;
    --f.remaining;
    if (f.status == 429) {
      if (f.retry_after_seconds >= 0) {
        res.set_header("Retry-After", absl::StrCat(f.retry_after_seconds));
      }
      Error(res, family, 429, "rate_limited", "Too many requests. Please slow down.");
    } else {
      Error(res, family, f.status, "unavailable",
            "The service is temporarily unavailable. Please try again later.");
    }
    return false;
  }
  faults_.erase(std::remove_if(faults_.begin(), faults_.end(),
                               [](const Fault& f) { return f.remaining <= 0; }),
                faults_.end());
  if (token_endpoint) return true;
  const std::string auth = req.get_header_value("Authorization");
  const auto it = absl::StartsWithIgnoreCase(auth, "Bearer ") ? access_tokens_.find(auth.substr(7))
                                                              : access_tokens_.end();
  if (it == access_tokens_.end() || clock()->Now() >= it->second.expires) {
    Error(res, family, 401, "invalid_token", "The access token is invalid");
    return false;
  }
  if (!scope.empty() && it->second.scopes.count(scope) == 0) {
    Error(res, family, 403, "insufficient_scope",
          absl::StrCat("This request requires the scope ", scope,
                       ", which was not granted to the access token"));
    return false;
  }
  return true;
}

// --- OAuth --------------------------------------------------------------------

void FakeFreshBooks::HandleAuthorize(const httplib::Request& req, httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  ++requests_["AUTHORIZE"];
  const std::string redirect_uri = Param(req, "redirect_uri");
  if (Param(req, "client_id") != options_.client_id) {
    return Error(res, Family::kAuth, 400, "invalid_client",
                 "Client authentication failed due to unknown client.");
  }
  if (redirect_uri != options_.redirect_uri) {
    return Error(res, Family::kAuth, 400, "invalid_request",
                 "The redirect uri included is not valid.");
  }
  FormFields query;
  if (deny_authorization_) {
    query = {
        {"error", "access_denied"},
        {"error_description", "The resource owner or authorization server denied the request."}};
  } else if (Param(req, "response_type") != "code") {
    query = {
        {"error", "unsupported_response_type"},
        {"error_description", "The authorization server does not support this response type."}};
  } else {
    const std::string code = RandomToken(20);
    codes_[code] = Code{clock()->Now() + absl::Minutes(10), redirect_uri};
    query = {{"code", code}};
  }
  if (req.has_param("state")) query.emplace_back("state", Param(req, "state"));
  res.status = 302;
  res.set_header("Location",
                 absl::StrCat(redirect_uri, absl::StrContains(redirect_uri, '?') ? "&" : "?",
                              EncodeWebhookForm(query)));
}

json FakeFreshBooks::TokensLocked() {
  const absl::Time now = clock()->Now();
  const std::string access = RandomToken(24);
  const std::string refresh = RandomToken(24);
  access_tokens_[access] =
      AccessToken{now + options_.access_ttl, std::set<std::string>(scopes_.begin(), scopes_.end())};
  refresh_tokens_.insert(refresh);
  return json{{"access_token", access},
              {"token_type", "Bearer"},
              {"expires_in", absl::ToInt64Seconds(options_.access_ttl)},
              {"refresh_token", refresh},
              {"scope", absl::StrJoin(scopes_, " ")},
              {"created_at", absl::ToUnixSeconds(now)}};
}

void FakeFreshBooks::HandleToken(const httplib::Request& req, httplib::Response& res) {
  const std::optional<std::map<std::string, std::string>> params = TokenParams(req);
  const auto get = [&params](const char* key) -> std::string {
    if (!params.has_value()) return "";
    const auto it = params->find(key);
    return it == params->end() ? "" : it->second;
  };
  const std::string grant = get("grant_type");
  if (!Admit(absl::StrCat("TOKEN ", grant), Family::kAuth, "", /*token_endpoint=*/true, req, res)) {
    return;
  }
  if (!params.has_value()) {
    return Error(res, Family::kAuth, 400, "invalid_request", "The request body is malformed.");
  }
  if (grant != "authorization_code" && grant != "refresh_token") {
    return Error(res, Family::kAuth, 400, "unsupported_grant_type",
                 "The authorization grant type is not supported by the authorization server.");
  }
  if (get("client_id") != options_.client_id ||
      !ConstantTimeEquals(get("client_secret"), options_.client_secret)) {
    return Error(res, Family::kAuth, 401, "invalid_client",
                 "Client authentication failed due to unknown client, no client authentication "
                 "included, or unsupported authentication method.");
  }
  constexpr char kInvalidGrant[] =
      "The provided authorization grant is invalid, expired, revoked, does not match the "
      "redirection URI used in the authorization request, or was issued to another client.";
  absl::MutexLock lock(&mu_);
  if (grant == "authorization_code") {
    const auto it = codes_.find(get("code"));
    if (it == codes_.end()) return Error(res, Family::kAuth, 400, "invalid_grant", kInvalidGrant);
    const Code code = it->second;
    codes_.erase(it);  // single-use, even when the rest of the request is wrong
    if (clock()->Now() >= code.expires || get("redirect_uri") != code.redirect_uri) {
      return Error(res, Family::kAuth, 400, "invalid_grant", kInvalidGrant);
    }
    return Reply(res, 200, TokensLocked());
  }
  const auto it = refresh_tokens_.find(get("refresh_token"));
  if (it == refresh_tokens_.end()) {
    return Error(res, Family::kAuth, 400, "invalid_grant", kInvalidGrant);
  }
  refresh_tokens_.erase(it);
  ++token_refreshes_;
  Reply(res, 200, TokensLocked());
}

void FakeFreshBooks::HandleMe(const httplib::Request& req, httplib::Response& res) {
  if (!Admit("ME", Family::kAuth, "user:profile:read", false, req, res)) return;
  const auto membership = [](int64_t membership_id, int64_t id, const std::string& uuid,
                             const std::string& account_id, const std::string& name) {
    return json{{"id", membership_id},
                {"role", "owner"},
                {"business",
                 {{"id", id},
                  {"business_uuid", uuid},
                  {"account_id", account_id},
                  {"name", name},
                  {"date_format", "mm/dd/yyyy"},
                  {"timezone", "America/New_York"},
                  {"business_clients", json::array()}}}};
  };
  json memberships = json::array();
  memberships.push_back(membership(options_.membership_id, options_.business_id,
                                   options_.business_uuid, options_.account_id,
                                   options_.business_name));
  for (const Business& b : options_.other_businesses) {
    memberships.push_back(membership(b.membership_id, b.id, b.business_uuid, b.account_id, b.name));
  }
  Reply(res, 200,
        json{{"response",
              {{"id", options_.identity_id},
               {"identity_id", options_.identity_id},
               {"first_name", "Fay"},
               {"last_name", "Books"},
               {"email", options_.email},
               {"language", "en"},
               {"confirmed_at", "2020-01-01T00:00:00Z"},
               {"business_memberships", memberships},
               {"roles", json::array({json{{"id", 1},
                                           {"role", "admin"},
                                           {"systemid", options_.business_id},
                                           {"userid", options_.user_id},
                                           {"accountid", options_.account_id}}})}}}});
}

// --- Resources ------------------------------------------------------------------

void FakeFreshBooks::HandleGet(const EntityRoute& route, const httplib::Request& req,
                               httplib::Response& res) {
  if (!Admit(absl::StrCat("GET ", route.entity), route.family, route.scope, false, req, res)) {
    return;
  }
  const std::string scope_id = req.matches[1];
  const std::string id_text = req.matches[2];
  const int known = KnownScope(route.family, scope_id);
  if (known < 0) {
    return Error(res, route.family, 403, "forbidden",
                 absl::StrCat("The access token is not authorized for ", scope_id));
  }
  absl::MutexLock lock(&mu_);
  const Record* record = nullptr;
  if (known == 1) {
    const auto& objects = store_[route.entity];
    const auto it = objects.find(id_text);
    if (it != objects.end()) record = &it->second;
  }
  if (record == nullptr) {
    const std::string message = absl::StrCat(Capitalised(route.single_key), " not found.");
    if (route.family == Family::kAccounting && classic_not_found_.count(route.entity) != 0) {
      // The classic accounting answer: HTTP 200 with response.errors.
      return Reply(
          res, 200,
          json{{"response",
                {{"errors", json::array({json{{"errno", 1012},
                                              {"field", absl::StrCat(route.single_key, "id")},
                                              {"message", message},
                                              {"object", route.single_key},
                                              {"value", id_text}}})}}}});
    }
    if (route.family == Family::kAccounting) {
      return Reply(
          res, 404,
          json{{"response",
                {{"errors", json::array({json{{"errno", 1012},
                                              {"field", absl::StrCat(route.single_key, "id")},
                                              {"message", message},
                                              {"object", route.single_key},
                                              {"value", id_text}}})}}}});
    }
    return Error(res, route.family, 404, "not_found", "Requested resource could not be found.");
  }
  json object = record->object;
  if (route.has_lines && !WantsLines(req)) object.erase("lines");
  switch (route.family) {
    case Family::kAccounting:
      return Reply(res, 200, json{{"response", {{"result", {{route.single_key, object}}}}}});
    case Family::kLedger:
      return Reply(res, 200, json{{"data", object}});
    default:
      return Reply(res, 200, json{{route.single_key, object}});
  }
}

void FakeFreshBooks::HandleList(const EntityRoute& route, const httplib::Request& req,
                                httplib::Response& res) {
  if (!Admit(absl::StrCat("LIST ", route.entity), route.family, route.scope, false, req, res)) {
    return;
  }
  const std::string scope_id = req.matches[1];
  const int known = KnownScope(route.family, scope_id);
  if (known < 0) {
    return Error(res, route.family, 403, "forbidden",
                 absl::StrCat("The access token is not authorized for ", scope_id));
  }
  std::string updated_min = Param(req, "search[updated_min]");
  if (updated_min.empty() && route.family == Family::kProjects) {
    updated_min = Param(req, "updated_since").substr(0, 10);
  }
  absl::Time parsed;
  std::string parse_error;
  if (!updated_min.empty() &&
      (updated_min.size() != 10 ||
       !absl::ParseTime("%Y-%m-%d", updated_min, absl::UTCTimeZone(), &parsed, &parse_error))) {
    return Error(res, route.family, 400, "invalid_request",
                 absl::StrCat("search[updated_min] \"", updated_min, "\" is not YYYY-MM-DD"));
  }
  std::optional<int> vis_state;
  if (req.has_param("search[vis_state]")) {
    int v = 0;
    if (!absl::SimpleAtoi(Param(req, "search[vis_state]"), &v)) {
      return Error(res, route.family, 400, "invalid_request",
                   "search[vis_state] must be 0, 1 or 2");
    }
    vis_state = v;
  }
  const bool lines = route.has_lines && WantsLines(req);
  const absl::TimeZone tz = route.family == Family::kAccounting ? Eastern() : absl::UTCTimeZone();

  absl::MutexLock lock(&mu_);
  std::vector<const Record*> matched;
  if (known == 1) {
    for (const auto& [key, record] : store_[route.entity]) {
      const int vs = VisState(record.object);
      if (vis_state.has_value() ? vs != *vis_state : vs == 1) continue;
      if (!updated_min.empty() && absl::FormatTime("%Y-%m-%d", record.updated, tz) < updated_min) {
        continue;
      }
      matched.push_back(&record);
    }
  }
  std::sort(matched.begin(), matched.end(),
            [](const Record* a, const Record* b) { return a->seq < b->seq; });
  const Page page = Paginate(req, matched.size());
  json items = json::array();
  for (size_t i = page.begin; i < page.end; ++i) {
    json object = matched[i]->object;
    if (route.has_lines && !lines) object.erase("lines");
    items.push_back(std::move(object));
  }
  json meta = {{"page", page.page},
               {"pages", page.pages},
               {"per_page", page.per_page},
               {"total", page.total}};
  switch (route.family) {
    case Family::kAccounting: {
      meta[route.list_key] = std::move(items);
      return Reply(res, 200, json{{"response", {{"result", std::move(meta)}}}});
    }
    case Family::kLedger:
      return Reply(res, 200, json{{"data", std::move(items)}, {"meta", std::move(meta)}});
    default:
      return Reply(res, 200, json{{route.list_key, std::move(items)}, {"meta", std::move(meta)}});
  }
}

// --- Callbacks ------------------------------------------------------------------

json FakeFreshBooks::CallbackJson(const Callback& callback) const {
  return json{{"callbackid", callback.id},
              {"verified", callback.verified},
              {"uri", callback.uri},
              {"event", callback.event},
              {"updated_at", EasternText(callback.updated)}};
}

void FakeFreshBooks::HandleCallbacks(const httplib::Request& req, httplib::Response& res) {
  const std::string account_id = req.matches[1];
  const std::string id_text = req.matches[2];
  const bool has_id = !id_text.empty();
  const json body = json::parse(req.body, nullptr, false);
  const json* cb_body = Member(body, "callback");
  std::string pattern;
  if (req.method == "POST") {
    pattern = "CALLBACK create";
  } else if (req.method == "PUT") {
    const json* resend = cb_body == nullptr ? nullptr : Member(*cb_body, "resend");
    pattern = resend != nullptr && resend->is_boolean() && resend->get<bool>() ? "CALLBACK resend"
                                                                               : "CALLBACK verify";
  } else if (req.method == "DELETE") {
    pattern = "CALLBACK delete";
  } else {
    pattern = has_id ? "CALLBACK get" : "CALLBACK list";
  }
  if (!Admit(pattern, Family::kEvents, "", false, req, res)) return;
  if (KnownScope(Family::kAccounting, account_id) < 0) {
    return Error(res, Family::kEvents, 403, "forbidden",
                 absl::StrCat("The access token is not authorized for account ", account_id));
  }
  const auto reply_callback = [&res, this](const Callback& cb) {
    Reply(res, 200, json{{"response", {{"result", {{"callback", CallbackJson(cb)}}}}}});
  };
  if ((req.method == "POST" && has_id) ||
      ((req.method == "PUT" || req.method == "DELETE") && !has_id)) {
    return Error(res, Family::kEvents, 405, "method_not_allowed", "Method not allowed here");
  }
  int64_t id = 0;
  (void)absl::SimpleAtoi(id_text, &id);
  absl::MutexLock lock(&mu_);
  if (req.method == "POST") {
    const std::string* event = cb_body == nullptr ? nullptr : StringMember(*cb_body, "event");
    const std::string* uri = cb_body == nullptr ? nullptr : StringMember(*cb_body, "uri");
    if (event == nullptr || !ValidEventName(*event)) {
      return Error(res, Family::kEvents, 400, "invalid_request",
                   "callback.event must be an event name such as invoice.create");
    }
    if (uri == nullptr || !ParseHttpUrl(*uri).ok()) {
      return Error(res, Family::kEvents, 400, "invalid_request",
                   "callback.uri must be an absolute http(s) URL");
    }
    Callback cb;
    cb.id = next_callback_id_++;
    cb.account_id = account_id;
    cb.event = *event;
    cb.uri = *uri;
    cb.verifier = Alnum(rng_, 33);
    cb.updated = clock()->Now();
    callbacks_[cb.id] = cb;
    QueueHandshakeLocked(cb);
    return reply_callback(cb);
  }
  if (!has_id) {  // list
    const std::string event = Param(req, "search[event]");
    const std::string uri = Param(req, "search[uri]");
    std::vector<const Callback*> matched;
    for (const auto& [cb_id, cb] : callbacks_) {
      if (cb.account_id != account_id) continue;
      if (!event.empty() && cb.event != event) continue;
      if (!uri.empty() && cb.uri != uri) continue;
      matched.push_back(&cb);
    }
    const Page page = Paginate(req, matched.size());
    json items = json::array();
    for (size_t i = page.begin; i < page.end; ++i) items.push_back(CallbackJson(*matched[i]));
    return Reply(res, 200,
                 json{{"response",
                       {{"result",
                         {{"callbacks", std::move(items)},
                          {"page", page.page},
                          {"pages", page.pages},
                          {"per_page", page.per_page},
                          {"total", page.total}}}}}});
  }
  const auto it = callbacks_.find(id);
  if (it == callbacks_.end() || it->second.account_id != account_id) {
    return Error(res, Family::kEvents, 404, "not_found",
                 absl::StrCat("Callback ", id_text, " not found"));
  }
  Callback& cb = it->second;
  if (req.method == "GET") return reply_callback(cb);
  if (req.method == "DELETE") {
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [id](const Pending& p) { return p.callback_id == id; }),
                 queue_.end());
    callbacks_.erase(it);
    return Reply(res, 200, json{{"response", json::object()}});
  }
  // PUT: verify or resend.
  if (pattern == "CALLBACK resend") {
    QueueHandshakeLocked(cb);
    return reply_callback(cb);
  }
  const std::string* verifier = cb_body == nullptr ? nullptr : StringMember(*cb_body, "verifier");
  if (verifier == nullptr) {
    return Error(res, Family::kEvents, 400, "invalid_request",
                 "callback.verifier or callback.resend is required");
  }
  if (!ConstantTimeEquals(*verifier, cb.verifier)) {
    return Error(res, Family::kEvents, 400, "invalid_verifier",
                 absl::StrCat("The verifier for callback ", id_text, " is not valid"));
  }
  cb.verified = true;
  cb.updated = clock()->Now();
  reply_callback(cb);
}

// --- Store ----------------------------------------------------------------------

json FakeFreshBooks::CreateLocked(const std::string& entity, json object, absl::Time now,
                                  bool notify) {
  const EntityRoute& route = RouteOrDie(entity);
  if (!object.is_object()) {
    std::fprintf(stderr, "FakeFreshBooks::Create(%s): not a JSON object\n", entity.c_str());
    std::abort();
  }
  const std::string id_field = SampleIdField(entity);
  int64_t& next = next_id_.try_emplace(entity, 1).first->second;
  std::string key;
  std::optional<int64_t> number = AsId(Member(object, id_field));
  if (const std::string* text = StringMember(object, id_field);
      text != nullptr && !text->empty() && !number.has_value()) {
    key = *text;  // a uuid (ledger accounts)
  } else {
    if (!number.has_value()) number = next;
    next = std::max(next, *number + 1);
    key = absl::StrCat(*number);
    if (id_field == "uuid") {
      object[id_field] = absl::StrFormat("00000000-0000-4000-8000-%012d", *number);
      key = object[id_field].get<std::string>();
    } else {
      object[id_field] = *number;
      for (const std::string& twin : route.twin_ids) {
        if (twin != id_field && Member(object, twin) != nullptr) object[twin] = *number;
      }
      if (route.has_lines) {
        if (auto* lines = object["lines"].get_ptr<json::array_t*>(); lines != nullptr) {
          for (json& line : *lines) {
            if (line.is_object()) line["invoiceid"] = *number;
          }
        }
      }
    }
  }
  object["vis_state"] = 0;
  TouchUpdated(entity, object, now);
  auto& objects = store_[entity];
  const auto existing = objects.find(key);
  const uint64_t seq = existing != objects.end() ? existing->second.seq : next_record_seq_++;
  objects[key] = Record{object, now, seq};
  if (notify) NotifyLocked(entity, key, "create");
  return object;
}

bool FakeFreshBooks::UpdateLocked(const std::string& entity, const std::string& id,
                                  const std::function<void(json&)>& mutate, bool notify) {
  RouteOrDie(entity);
  auto& objects = store_[entity];
  const auto it = objects.find(id);
  if (it == objects.end()) return false;
  const absl::Time now = clock()->Now();
  const std::string id_field = SampleIdField(entity);
  const json* id_value = Member(it->second.object, id_field);
  const json id_copy = id_value != nullptr ? *id_value : json(id);
  if (mutate) mutate(it->second.object);
  it->second.object[id_field] = id_copy;
  TouchUpdated(entity, it->second.object, now);
  it->second.updated = now;
  if (notify) NotifyLocked(entity, id, "update");
  return true;
}

bool FakeFreshBooks::SoftDeleteLocked(const std::string& entity, const std::string& id,
                                      bool notify) {
  RouteOrDie(entity);
  auto& objects = store_[entity];
  const auto it = objects.find(id);
  if (it == objects.end()) return false;
  const absl::Time now = clock()->Now();
  it->second.object["vis_state"] = 1;
  TouchUpdated(entity, it->second.object, now);
  it->second.updated = now;
  if (notify) NotifyLocked(entity, id, "delete");
  return true;
}

json FakeFreshBooks::Create(const std::string& entity, json object, bool notify) {
  absl::MutexLock lock(&mu_);
  return CreateLocked(entity, std::move(object), clock()->Now(), notify);
}

bool FakeFreshBooks::Update(const std::string& entity, const std::string& id,
                            const std::function<void(json&)>& mutate, bool notify) {
  absl::MutexLock lock(&mu_);
  return UpdateLocked(entity, id, mutate, notify);
}

bool FakeFreshBooks::Update(const std::string& entity, int64_t id,
                            const std::function<void(json&)>& mutate, bool notify) {
  return Update(entity, absl::StrCat(id), mutate, notify);
}

bool FakeFreshBooks::SoftDelete(const std::string& entity, const std::string& id, bool notify) {
  absl::MutexLock lock(&mu_);
  return SoftDeleteLocked(entity, id, notify);
}

bool FakeFreshBooks::SoftDelete(const std::string& entity, int64_t id, bool notify) {
  return SoftDelete(entity, absl::StrCat(id), notify);
}

bool FakeFreshBooks::HardDelete(const std::string& entity, const std::string& id, bool notify) {
  RouteOrDie(entity);
  absl::MutexLock lock(&mu_);
  if (store_[entity].erase(id) == 0) return false;
  if (notify) NotifyLocked(entity, id, "delete");
  return true;
}

bool FakeFreshBooks::HardDelete(const std::string& entity, int64_t id, bool notify) {
  return HardDelete(entity, absl::StrCat(id), notify);
}

std::optional<json> FakeFreshBooks::Get(const std::string& entity, const std::string& id) const {
  RouteOrDie(entity);
  absl::MutexLock lock(&mu_);
  const auto objects = store_.find(entity);
  if (objects == store_.end()) return std::nullopt;
  const auto it = objects->second.find(id);
  if (it == objects->second.end()) return std::nullopt;
  return it->second.object;
}

std::optional<json> FakeFreshBooks::Get(const std::string& entity, int64_t id) const {
  return Get(entity, absl::StrCat(id));
}

std::vector<json> FakeFreshBooks::All(const std::string& entity) const {
  RouteOrDie(entity);
  absl::MutexLock lock(&mu_);
  std::vector<const Record*> records;
  if (const auto objects = store_.find(entity); objects != store_.end()) {
    for (const auto& [key, record] : objects->second) records.push_back(&record);
  }
  std::sort(records.begin(), records.end(),
            [](const Record* a, const Record* b) { return a->seq < b->seq; });
  std::vector<json> out;
  out.reserve(records.size());
  for (const Record* r : records) out.push_back(r->object);
  return out;
}

size_t FakeFreshBooks::Count(const std::string& entity) const {
  RouteOrDie(entity);
  absl::MutexLock lock(&mu_);
  const auto objects = store_.find(entity);
  return objects == store_.end() ? 0 : objects->second.size();
}

int FakeFreshBooks::Seed(int count, absl::Duration spread) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock()->Now();
  int created = 0;
  for (const std::string& entity : SampleEntityNames()) {
    for (int i = 0; i < count; ++i) {
      // Oldest first, the last one at `now`.
      const absl::Time at = now - spread + spread * (i + 1) / count;
      const int64_t id = next_id_.try_emplace(entity, 1).first->second++;
      CreateLocked(entity, SampleObject(entity, id, at, rng_), at, /*notify=*/false);
      ++created;
    }
  }
  return created;
}

std::vector<std::string> FakeFreshBooks::Activity(int count) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> events;
  // Keys of the objects of `entity` that are not deleted and pass `filter`.
  const auto active = [this](const std::string& entity,
                             const std::function<bool(const json&)>& filter) {
    std::vector<std::string> keys;
    for (const auto& [key, record] : store_[entity]) {
      if (VisState(record.object) != 1 && (!filter || filter(record.object))) keys.push_back(key);
    }
    return keys;
  };
  const auto pick = [this](const std::vector<std::string>& keys) {
    return keys[rng_() % keys.size()];
  };
  const auto record_event = [&](const std::string& entity, const std::string& action,
                                const std::string& key) {
    events.push_back(absl::StrCat(RouteOrDie(entity).event_object, ".", action, " ", key));
  };
  const auto create = [&](const std::string& entity, const std::function<void(json&)>& adjust) {
    const absl::Time now = clock()->Now();
    const int64_t id = next_id_.try_emplace(entity, 1).first->second++;
    json object = SampleObject(entity, id, now, rng_);
    if (adjust) adjust(object);
    CreateLocked(entity, std::move(object), now, true);
    record_event(entity, "create", absl::StrCat(id));
  };
  const auto edit = [&](const std::string& entity, const std::string& key) {
    UpdateLocked(
        entity, key, [&](json& object) { MutateSample(entity, object, clock()->Now(), rng_); },
        true);
    record_event(entity, "update", key);
  };
  const auto unpaid = [](const json& invoice) {
    const std::string* status = StringMember(invoice, "payment_status");
    return status == nullptr || *status != "paid";
  };
  for (int i = 0; i < count; ++i) {
    const double dice = Uniform(rng_);
    const std::vector<std::string> open_invoices = active("invoice", unpaid);
    if (dice < 0.30 || (dice < 0.55 && open_invoices.empty())) {
      const std::vector<std::string> clients = active("client", nullptr);
      create("invoice", [&](json& invoice) {
        int64_t client = 0;
        if (!clients.empty() && absl::SimpleAtoi(pick(clients), &client)) {
          invoice["customerid"] = client;
        }
      });
    } else if (dice < 0.55) {
      // A payment of what is outstanding on an open invoice, which pays it.
      const std::string key = pick(open_invoices);
      const json invoice = store_["invoice"][key].object;
      const json* outstanding = Member(invoice, "outstanding");
      int64_t invoice_id = 0;
      (void)absl::SimpleAtoi(key, &invoice_id);
      create("payment", [&](json& payment) {
        payment["invoiceid"] = invoice_id;
        if (const json* client = Member(invoice, "customerid"); client != nullptr) {
          payment["clientid"] = *client;
        }
        if (outstanding != nullptr) payment["amount"] = *outstanding;
      });
      UpdateLocked(
          "invoice", key,
          [&](json& object) {
            if (const json* amount = Member(object, "amount"); amount != nullptr) {
              object["paid"] = *amount;
            }
            if (outstanding != nullptr && outstanding->is_object()) {
              json zero = *outstanding;
              zero["amount"] = "0.00";
              object["outstanding"] = zero;
            }
            object["payment_status"] = "paid";
            object["v3_status"] = "paid";
            object["status"] = 4;
            object["date_paid"] = absl::FormatTime("%Y-%m-%d", clock()->Now(), Eastern());
          },
          true);
      record_event("invoice", "update", key);
    } else if (dice < 0.75) {
      create("expense", nullptr);
    } else if (dice < 0.85) {
      const std::vector<std::string> clients = active("client", nullptr);
      if (clients.empty()) {
        create("client", nullptr);
      } else {
        edit("client", pick(clients));
      }
    } else if (dice < 0.95) {
      const std::vector<std::string> invoices = active("invoice", nullptr);
      if (invoices.empty()) {
        create("invoice", nullptr);
      } else {
        edit("invoice", pick(invoices));
      }
    } else {
      const std::vector<std::string> expenses = active("expense", nullptr);
      const std::vector<std::string> invoices = active("invoice", nullptr);
      if (expenses.empty() && invoices.empty()) {
        create("expense", nullptr);
        continue;
      }
      const bool expense = invoices.empty() || (!expenses.empty() && Uniform(rng_) < 0.5);
      const std::string entity = expense ? "expense" : "invoice";
      const std::string key = pick(expense ? expenses : invoices);
      SoftDeleteLocked(entity, key, true);
      record_event(entity, "delete", key);
    }
  }
  return events;
}

// --- Webhooks -------------------------------------------------------------------

void FakeFreshBooks::NotifyLocked(const std::string& entity, const std::string& id,
                                  const std::string& action) {
  const EntityRoute& route = RouteOrDie(entity);
  if (route.event_object.empty()) return;
  EmitLocked(absl::StrCat(route.event_object, ".", action), id);
}

void FakeFreshBooks::EmitWebhook(const std::string& event_name, int64_t object_id) {
  absl::MutexLock lock(&mu_);
  EmitLocked(event_name, absl::StrCat(object_id));
}

void FakeFreshBooks::EmitLocked(const std::string& event_name, const std::string& object_id) {
  const std::string object = event_name.substr(0, event_name.find('.'));
  const absl::Time now = absl::Now();
  bool queued = false;
  for (const auto& [id, cb] : callbacks_) {
    if (cb.account_id != options_.account_id || !cb.verified) continue;
    if (cb.event != event_name && cb.event != object) continue;
    if (drop_next_ > 0) {
      --drop_next_;
      ++stats_.dropped;
      continue;
    }
    if (drop_probability_ > 0 && Uniform(rng_) < drop_probability_) {
      ++stats_.dropped;
      continue;
    }
    int copies = 1;
    if (duplicate_probability_ > 0 && Uniform(rng_) < duplicate_probability_) {
      ++copies;
      ++stats_.duplicated;
    }
    for (int c = 0; c < copies; ++c) {
      FormFields fields = {{"name", event_name},
                           {"object_id", object_id},
                           {"account_id", options_.account_id},
                           {"business_id", absl::StrCat(options_.business_id)},
                           {"identity_id", absl::StrCat(options_.identity_id)},
                           {"user_id", options_.user_id}};
      std::shuffle(fields.begin(), fields.end(), rng_);
      Pending p;
      p.seq = next_seq_++;
      p.callback_id = cb.id;
      p.uri = cb.uri;
      p.verifier = cb.verifier;
      p.body = EncodeWebhookForm(fields);
      p.signature = FreshBooksSignature(cb.verifier, fields);
      p.not_before = now;
      if (reorder_window_ > absl::ZeroDuration()) p.not_before += reorder_window_ * Uniform(rng_);
      queue_.push_back(std::move(p));
      queued = true;
    }
  }
  if (queued) sender_cv_.Signal();
}

void FakeFreshBooks::QueueHandshakeLocked(const Callback& callback) {
  FormFields fields = {{"name", "callback.verify"},
                       {"object_id", absl::StrCat(callback.id)},
                       {"verifier", callback.verifier},
                       {"account_id", callback.account_id},
                       {"business_id", absl::StrCat(options_.business_id)},
                       {"identity_id", absl::StrCat(options_.identity_id)},
                       {"user_id", options_.user_id}};
  std::shuffle(fields.begin(), fields.end(), rng_);
  Pending p;
  p.seq = next_seq_++;
  p.callback_id = callback.id;
  p.uri = callback.uri;
  p.verifier = callback.verifier;
  p.body = EncodeWebhookForm(fields);
  p.signature = FreshBooksSignature(callback.verifier, fields);
  p.handshake = true;
  p.not_before = absl::Now() + options_.handshake_delay;
  queue_.push_back(std::move(p));
  sender_cv_.Signal();
}

bool FakeFreshBooks::IdleLocked() const { return queue_.empty() && in_flight_ == 0; }

void FakeFreshBooks::SenderLoop() {
  // Local to this thread, so Stop() closes its keep-alive connections and the
  // receivers' servers can shut down without waiting for them to time out.
  HttplibClient::Options client_options;
  client_options.connect_timeout = absl::Seconds(2);
  HttplibClient http(client_options);
  mu_.Lock();
  while (!stopping_) {
    const absl::Time now = absl::Now();
    int best = -1;
    absl::Time earliest = absl::InfiniteFuture();
    for (size_t i = 0; i < queue_.size(); ++i) {
      const Pending& p = queue_[i];
      if (paused_ && !p.handshake) continue;
      earliest = std::min(earliest, p.not_before);
      if (p.not_before > now) continue;
      if (best < 0 || p.not_before < queue_[best].not_before ||
          (p.not_before == queue_[best].not_before && p.seq < queue_[best].seq)) {
        best = static_cast<int>(i);
      }
    }
    if (best < 0) {
      if (earliest == absl::InfiniteFuture()) {
        sender_cv_.Wait(&mu_);
      } else {
        sender_cv_.WaitWithDeadline(&mu_, earliest);
      }
      continue;
    }
    Pending p = std::move(queue_[best]);
    queue_.erase(queue_.begin() + best);
    ++in_flight_;
    const absl::Duration timeout = options_.webhook_timeout;
    mu_.Unlock();

    HttpRequest request;
    request.method = "POST";
    request.url = p.uri;
    request.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
    request.headers.emplace("X-FreshBooks-Hmac-SHA256", p.signature);
    request.headers.emplace("User-Agent", "FreshBooks-Webhooks (fake)");
    request.body = p.body;
    request.timeout = timeout;
    const absl::StatusOr<HttpResponse> response = http.Send(request);
    const int status = response.ok() ? response->status : 0;

    mu_.Lock();
    --in_flight_;
    ++stats_.sent;
    if (sent_.size() >= kMaxSentLog) sent_.erase(sent_.begin(), sent_.begin() + kMaxSentLog / 2);
    sent_.push_back(SentWebhook{p.uri, p.body, p.signature, p.callback_id, p.handshake, status});
    ++p.attempts;
    if (status >= 200 && status < 300) {
      ++(p.handshake ? stats_.handshakes : stats_.acked);
    } else if (p.attempts < options_.webhook_max_attempts && callbacks_.count(p.callback_id) != 0) {
      p.not_before = absl::Now() + options_.webhook_initial_backoff * (1 << (p.attempts - 1));
      queue_.push_back(std::move(p));
    } else {
      ++stats_.failed;
    }
  }
  mu_.Unlock();
}

bool FakeFreshBooks::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(this, &FakeFreshBooks::IdleLocked), timeout);
}

// --- Knobs ----------------------------------------------------------------------

std::string FakeFreshBooks::IssueAuthorizationCode() {
  absl::MutexLock lock(&mu_);
  std::string code = RandomToken(20);
  codes_[code] = Code{clock()->Now() + absl::Minutes(10), options_.redirect_uri};
  return code;
}

json FakeFreshBooks::IssueTokens() {
  absl::MutexLock lock(&mu_);
  return TokensLocked();
}

void FakeFreshBooks::SetScopes(std::vector<std::string> scopes) {
  absl::MutexLock lock(&mu_);
  scopes_ = std::move(scopes);
}

void FakeFreshBooks::DenyAuthorization(bool deny) {
  absl::MutexLock lock(&mu_);
  deny_authorization_ = deny;
}

void FakeFreshBooks::Throttle(int n, int retry_after_seconds, FaultScope scope) {
  absl::MutexLock lock(&mu_);
  faults_.push_back(Fault{n, 429, retry_after_seconds, scope});
}

void FakeFreshBooks::FailNext5xx(int n, int status, FaultScope scope) {
  absl::MutexLock lock(&mu_);
  faults_.push_back(Fault{n, status, -1, scope});
}

void FakeFreshBooks::SetLatency(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  latency_ = latency;
}

void FakeFreshBooks::ExpireAllAccessTokens() {
  absl::MutexLock lock(&mu_);
  for (auto& [token, info] : access_tokens_) info.expires = absl::InfinitePast();
}

void FakeFreshBooks::RevokeRefreshTokens() {
  absl::MutexLock lock(&mu_);
  refresh_tokens_.clear();
}

void FakeFreshBooks::ClassicNotFoundWith200(const std::string& entity, bool enabled) {
  RouteOrDie(entity);
  absl::MutexLock lock(&mu_);
  if (enabled) {
    classic_not_found_.insert(entity);
  } else {
    classic_not_found_.erase(entity);
  }
}

void FakeFreshBooks::SetWebhookDropProbability(double p) {
  absl::MutexLock lock(&mu_);
  drop_probability_ = p;
}

void FakeFreshBooks::DropNextWebhooks(int n) {
  absl::MutexLock lock(&mu_);
  drop_next_ += n;
}

void FakeFreshBooks::SetWebhookDuplicateProbability(double p) {
  absl::MutexLock lock(&mu_);
  duplicate_probability_ = p;
}

void FakeFreshBooks::SetWebhookReorderWindow(absl::Duration window) {
  absl::MutexLock lock(&mu_);
  reorder_window_ = window;
}

void FakeFreshBooks::PauseWebhooks() {
  absl::MutexLock lock(&mu_);
  paused_ = true;
}

void FakeFreshBooks::ResumeWebhooks() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
  sender_cv_.Signal();
}

// --- Observations ---------------------------------------------------------------

int FakeFreshBooks::Requests(const std::string& pattern) const {
  absl::MutexLock lock(&mu_);
  const auto it = requests_.find(pattern);
  return it == requests_.end() ? 0 : it->second;
}

std::map<std::string, int> FakeFreshBooks::AllRequests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int FakeFreshBooks::RequestsWithStatus(int status) const {
  absl::MutexLock lock(&mu_);
  const auto it = statuses_.find(status);
  return it == statuses_.end() ? 0 : it->second;
}

int FakeFreshBooks::TokenRefreshes() const {
  absl::MutexLock lock(&mu_);
  return token_refreshes_;
}

FakeFreshBooks::WebhookStats FakeFreshBooks::webhook_stats() const {
  absl::MutexLock lock(&mu_);
  WebhookStats s = stats_;
  s.pending = static_cast<int64_t>(queue_.size()) + in_flight_;
  return s;
}

std::vector<FakeFreshBooks::SentWebhook> FakeFreshBooks::SentWebhooks() const {
  absl::MutexLock lock(&mu_);
  return sent_;
}

std::vector<json> FakeFreshBooks::Callbacks() const {
  absl::MutexLock lock(&mu_);
  std::vector<json> out;
  for (const auto& [id, cb] : callbacks_) {
    json j = CallbackJson(cb);
    j["verifier"] = cb.verifier;
    j["account_id"] = cb.account_id;
    out.push_back(std::move(j));
  }
  return out;
}

json FakeFreshBooks::StatsJson() const {
  const WebhookStats w = webhook_stats();
  absl::MutexLock lock(&mu_);
  json requests = json::object();
  for (const auto& [pattern, n] : requests_) requests[pattern] = n;
  json statuses = json::object();
  for (const auto& [status, n] : statuses_) statuses[absl::StrCat(status)] = n;
  json objects = json::object();
  for (const RouteSpec& route : Routes()) {
    const auto it = store_.find(route.entity);
    objects[route.entity] = it == store_.end() ? 0 : it->second.size();
  }
  json callbacks = json::array();
  for (const auto& [id, cb] : callbacks_) callbacks.push_back(CallbackJson(cb));
  return json{{"requests", std::move(requests)},
              {"statuses", std::move(statuses)},
              {"token_refreshes", token_refreshes_},
              {"webhooks",
               {{"sent", w.sent},
                {"acked", w.acked},
                {"failed", w.failed},
                {"dropped", w.dropped},
                {"duplicated", w.duplicated},
                {"handshakes", w.handshakes},
                {"pending", w.pending}}},
              {"objects", std::move(objects)},
              {"callbacks", std::move(callbacks)}};
}

absl::Status FakeFreshBooks::ApplyFaults(const json& faults) {
  const auto* object = faults.get_ptr<const json::object_t*>();
  if (object == nullptr) return absl::InvalidArgumentError("faults: expected a JSON object");
  // Validate everything first, then apply: a bad body changes nothing.
  std::vector<std::function<void()>> actions;
  const auto number = [](const json& v, const std::string& key, double lo,
                         double hi) -> absl::StatusOr<double> {
    if (!v.is_number()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected a number"));
    const double d = v.get<double>();
    if (d < lo || d > hi) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", d, " is out of range"));
    }
    return d;
  };
  const auto scope_of = [](const json& v, FaultScope* scope) {
    const std::string* s = StringMember(v, "scope");
    if (s == nullptr || *s == "api") return true;
    if (*s == "token") {
      *scope = FaultScope::kToken;
    } else if (*s == "all") {
      *scope = FaultScope::kAll;
    } else {
      return false;
    }
    return true;
  };
  for (const auto& [key, value] : *object) {
    if (key == "throttle" || key == "fail_5xx") {
      // A count, or {"count": n, "retry_after": s, "status": 5xx, "scope": "api|token|all"}.
      const json* count_json = value.is_number() ? &value : Member(value, "count");
      if (count_json == nullptr) return absl::InvalidArgumentError(key + ": count is required");
      absl::StatusOr<double> count = number(*count_json, key + ".count", 0, 1e6);
      if (!count.ok()) return count.status();
      FaultScope scope = FaultScope::kApi;
      if (!scope_of(value, &scope)) {
        return absl::InvalidArgumentError(key + ".scope: expected api, token or all");
      }
      const int n = static_cast<int>(*count);
      if (key == "throttle") {
        int retry_after = 1;
        if (const json* r = Member(value, "retry_after"); r != nullptr) {
          absl::StatusOr<double> v = number(*r, "throttle.retry_after", -1, 86400);
          if (!v.ok()) return v.status();
          retry_after = static_cast<int>(*v);
        }
        actions.emplace_back([=] { Throttle(n, retry_after, scope); });
      } else {
        int status = 503;
        if (const json* s = Member(value, "status"); s != nullptr) {
          absl::StatusOr<double> v = number(*s, "fail_5xx.status", 500, 599);
          if (!v.ok()) return v.status();
          status = static_cast<int>(*v);
        }
        actions.emplace_back([=] { FailNext5xx(n, status, scope); });
      }
    } else if (key == "latency_ms" || key == "webhook_reorder_window_ms") {
      absl::StatusOr<double> ms = number(value, key, 0, 600000);
      if (!ms.ok()) return ms.status();
      const absl::Duration d = absl::Milliseconds(*ms);
      if (key == "latency_ms") {
        actions.emplace_back([=] { SetLatency(d); });
      } else {
        actions.emplace_back([=] { SetWebhookReorderWindow(d); });
      }
    } else if (key == "webhook_drop_probability" || key == "webhook_duplicate_probability") {
      absl::StatusOr<double> p = number(value, key, 0, 1);
      if (!p.ok()) return p.status();
      const double v = *p;
      if (key == "webhook_drop_probability") {
        actions.emplace_back([=] { SetWebhookDropProbability(v); });
      } else {
        actions.emplace_back([=] { SetWebhookDuplicateProbability(v); });
      }
    } else if (key == "drop_next_webhooks") {
      absl::StatusOr<double> n = number(value, key, 0, 1e6);
      if (!n.ok()) return n.status();
      const int v = static_cast<int>(*n);
      actions.emplace_back([=] { DropNextWebhooks(v); });
    } else if (key == "expire_access_tokens" || key == "revoke_refresh_tokens" ||
               key == "pause_webhooks" || key == "deny_authorization") {
      if (!value.is_boolean()) return absl::InvalidArgumentError(key + ": expected true or false");
      const bool on = value.get<bool>();
      if (key == "expire_access_tokens") {
        if (on) actions.emplace_back([this] { ExpireAllAccessTokens(); });
      } else if (key == "revoke_refresh_tokens") {
        if (on) actions.emplace_back([this] { RevokeRefreshTokens(); });
      } else if (key == "pause_webhooks") {
        actions.emplace_back([this, on] { on ? PauseWebhooks() : ResumeWebhooks(); });
      } else {
        actions.emplace_back([this, on] { DenyAuthorization(on); });
      }
    } else if (key == "scopes") {
      const auto* array = value.get_ptr<const json::array_t*>();
      if (array == nullptr) return absl::InvalidArgumentError("scopes: expected an array");
      std::vector<std::string> scopes;
      for (const json& s : *array) {
        const auto* text = s.get_ptr<const std::string*>();
        if (text == nullptr) return absl::InvalidArgumentError("scopes: expected strings");
        scopes.push_back(*text);
      }
      actions.emplace_back([this, scopes] { SetScopes(scopes); });
    } else if (key == "classic_not_found") {
      const auto* entities = value.get_ptr<const json::object_t*>();
      if (entities == nullptr) {
        return absl::InvalidArgumentError("classic_not_found: expected {\"<entity>\": bool}");
      }
      for (const auto& [entity, on] : *entities) {
        if (FindRoute(entity) == nullptr || !on.is_boolean()) {
          return absl::InvalidArgumentError(
              absl::StrCat("classic_not_found.", entity, ": expected a known entity and a bool"));
        }
        const bool enabled = on.get<bool>();
        actions.emplace_back(
            [this, entity = entity, enabled] { ClassicNotFoundWith200(entity, enabled); });
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("faults: unknown key \"", key, "\""));
    }
  }
  for (const auto& action : actions) action();
  return absl::OkStatus();
}

// --- Control endpoints ------------------------------------------------------------

void FakeFreshBooks::HandleControl(const httplib::Request& req, httplib::Response& res) {
  const std::string what = req.matches[1];
  const int count = IntParam(req, "count", 10);
  if (req.method == "GET" && what == "stats") return Reply(res, 200, StatsJson());
  if (req.method == "POST" && what == "seed") {
    if (count < 0 || count > 100000) {
      return Reply(res, 400, json{{"error", "count must be between 0 and 100000"}});
    }
    const int spread_hours = IntParam(req, "spread_hours", 0);
    return Reply(res, 200, json{{"created", Seed(count, absl::Hours(std::max(0, spread_hours)))}});
  }
  if (req.method == "POST" && what == "activity") {
    if (count < 0 || count > 100000) {
      return Reply(res, 400, json{{"error", "count must be between 0 and 100000"}});
    }
    return Reply(res, 200, json{{"events", Activity(count)}});
  }
  if (req.method == "POST" && what == "faults") {
    const json body = json::parse(req.body, nullptr, false);
    if (absl::Status s = ApplyFaults(body); !s.ok()) {
      return Reply(res, 400, json{{"error", std::string(s.message())}});
    }
    return Reply(res, 200, json{{"ok", true}});
  }
  if (req.method == "POST" && what == "emit") {
    int64_t object_id = 0;
    const std::string event = Param(req, "event");
    if (!ValidEventName(event) || !absl::StrContains(event, '.') ||
        !absl::SimpleAtoi(Param(req, "object_id"), &object_id)) {
      return Reply(res, 400, json{{"error", "need event=<object>.<action> and object_id=<n>"}});
    }
    EmitWebhook(event, object_id);
    return Reply(res, 200, json{{"ok", true}});
  }
  Reply(res, 404,
        json{{"error", absl::StrCat("unknown control endpoint ", req.method, " /_fake/", what)}});
}

}  // namespace mlc::testing

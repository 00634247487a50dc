// FreshBooksClient: OAuth tokens (exchange, single-flight refresh with the
// rotated refresh token persisted first, needs-reauthorization) and polite,
// classified API calls.
#include "writer/freshbooks_client.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

using json = nlohmann::json;

constexpr char kTokenPath[] = "/auth/oauth/token";
// A token is refreshed when it expires within this margin.
constexpr absl::Duration kRefreshMargin = absl::Minutes(1);
// FreshBooks access tokens last 12 hours; used when an answer has no expires_in.
constexpr absl::Duration kDefaultTokenLifetime = absl::Hours(12);
constexpr int kClassicNotFoundErrno = 1012;
constexpr size_t kMaxMessage = 500;
constexpr size_t kMaxDetails = 3;

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// At most `n` bytes of server-provided text for an error message.
std::string Clip(std::string_view s, size_t n = kMaxMessage) {
  if (s.size() <= n) return std::string(s);
  return absl::StrCat(ToAbsl(s.substr(0, n)), "...");
}

// JSON lookups through the underlying std::map / std::vector: nlohmann's own
// iterators trip GCC's -Wnull-dereference at -O2.
const json* Member(const json& j, const char* name) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return nullptr;
  const auto it = object->find(name);
  return it == object->end() ? nullptr : &it->second;
}

const json::array_t* Array(const json* j) {
  return j == nullptr ? nullptr : j->get_ptr<const json::array_t*>();
}

// A string member, or a number member as its JSON text; "" otherwise.
std::string Text(const json& j, const char* name) {
  const json* v = Member(j, name);
  if (v == nullptr) return "";
  if (const auto* s = v->get_ptr<const std::string*>()) return *s;
  if (v->is_number()) return v->dump();
  return "";
}

// "message (errno 1012, field userid)" for one error object of any shape.
std::string DescribeError(const json& e) {
  if (const auto* s = e.get_ptr<const std::string*>()) return Clip(*s);
  if (!e.is_object()) return "";
  std::string message = Text(e, "message");
  if (message.empty()) message = Text(e, "error_description");
  if (message.empty()) message = Text(e, "description");
  if (message.empty()) message = Text(e, "error");
  std::vector<std::string> notes;
  for (const char* key : {"errno", "code", "field", "object"}) {
    const std::string v = Text(e, key);
    if (!v.empty()) notes.push_back(absl::StrCat(key, " ", Clip(v, 100)));
  }
  std::vector<std::string> details;
  if (const json::array_t* array = Array(Member(e, "details")); array != nullptr) {
    for (const json& d : *array) {
      if (details.size() >= kMaxDetails) break;
      std::string text;
      if (const auto* s = d.get_ptr<const std::string*>()) {
        text = *s;
      } else {
        for (const char* key : {"message", "description", "reason", "detail"}) {
          text = Text(d, key);
          if (!text.empty()) break;
        }
      }
      if (!text.empty()) details.push_back(Clip(text, 200));
    }
  }
  std::string out = Clip(message);
  if (!notes.empty()) {
    absl::StrAppend(&out, out.empty() ? "" : " ", "(", absl::StrJoin(notes, ", "), ")");
  }
  if (!details.empty()) {
    absl::StrAppend(&out, out.empty() ? "" : ": ", absl::StrJoin(details, "; "));
  }
  return out;
}

// The descriptions of a list (or single object) of errors, joined.
std::string DescribeErrors(const json& errors) {
  if (const json::array_t* array = errors.get_ptr<const json::array_t*>()) {
    std::vector<std::string> parts;
    for (const json& e : *array) {
      std::string d = DescribeError(e);
      if (!d.empty()) parts.push_back(std::move(d));
    }
    return absl::StrJoin(parts, "; ");
  }
  return DescribeError(errors);
}

bool NonEmpty(const json* j) {
  if (j == nullptr || j->is_null()) return false;
  if (j->is_array() || j->is_object() || j->is_string()) return !j->empty();
  return true;
}

// The classic `response.errors` of an answer, if it has any.
const json* ClassicErrors(const json& body) {
  const json* response = Member(body, "response");
  const json* errors = response == nullptr ? nullptr : Member(*response, "errors");
  return NonEmpty(errors) ? errors : nullptr;
}

// Whether classic errors say the object does not exist.
bool SaysNotFound(const json& errors) {
  const auto one = [](const json& e) {
    if (const json* n = Member(e, "errno"); n != nullptr) {
      int64_t code = 0;
      if (n->is_number_integer()) {
        code = n->get<int64_t>();
      } else if (const auto* s = n->get_ptr<const std::string*>(); s != nullptr) {
        if (!absl::SimpleAtoi(*s, &code)) code = 0;
      }
      if (code == kClassicNotFoundErrno) return true;
    }
    const std::string message =
        e.is_string() ? e.get_ref<const std::string&>() : Text(e, "message");
    return absl::StrContains(absl::AsciiStrToLower(message), "not found");
  };
  if (const json::array_t* array = errors.get_ptr<const json::array_t*>()) {
    return std::any_of(array->begin(), array->end(), one);
  }
  return one(errors);
}

std::string TrimUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string Scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (!secret.empty()) text = absl::StrReplaceAll(text, {{secret, "[redacted]"}});
  }
  return text;
}

// An expires_in value (number or numeric string) if it is a positive duration.
std::optional<absl::Duration> ExpiresIn(const json* v) {
  if (v == nullptr) return std::nullopt;
  int64_t seconds = 0;
  if (v->is_number_integer()) {
    seconds = v->get<int64_t>();
  } else if (v->is_number()) {
    seconds = static_cast<int64_t>(v->get<double>());
  } else if (const auto* s = v->get_ptr<const std::string*>(); s != nullptr) {
    if (!absl::SimpleAtoi(*s, &seconds)) seconds = 0;
  }
  if (seconds <= 0) return std::nullopt;
  return absl::Seconds(seconds);
}

bool IsBlank(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); });
}

}  // namespace

std::optional<std::string> FreshBooksErrorMessage(const json& body) {
  if (!body.is_object()) return std::nullopt;
  std::string message;
  if (const json* classic = ClassicErrors(body); classic != nullptr) {
    // {"response":{"errors":[{"errno":1012,"field":"userid","message":"..."}]}}
    message = DescribeErrors(*classic);
  } else if (const json* errors = Member(body, "errors"); NonEmpty(errors)) {
    // {"errors":{"message":"...","status":400,"details":[...]}} (ledger)
    message = DescribeErrors(*errors);
  } else if (const json* error = Member(body, "error"); NonEmpty(error)) {
    // {"error":"invalid_token","error_description":"..."} (auth)
    if (const auto* code = error->get_ptr<const std::string*>(); code != nullptr) {
      const std::string description = Text(body, "error_description");
      message = description.empty() ? Clip(*code, 100)
                                    : absl::StrCat(Clip(*code, 100), ": ", Clip(description));
    } else {
      message = DescribeError(*error);
    }
  } else if (Member(body, "errno") != nullptr || Member(body, "code") != nullptr) {
    // {"errno":401,"message":"..."} (events) or {"code":5,"message":"...","details":[]}
    if (Member(body, "message") == nullptr) return std::nullopt;
    message = DescribeError(body);
  } else {
    return std::nullopt;
  }
  if (message.empty()) message = "(FreshBooks gave no message)";
  return message;
}

FreshBooksClient::FreshBooksClient(FreshBooksClientOptions options, HttpClient* http,
                                   CredentialStore* store, const Clock* clock,
                                   FreshBooksMetrics metrics)
    : options_(std::move(options)),
      base_url_(TrimUrl(options_.api_url)),
      http_(http),
      store_(store),
      clock_(clock),
      metrics_(metrics) {
  {
    absl::MutexLock lock(&mu_);
    budget_tokens_ = std::max(options_.burst, 1);
    budget_at_ = absl::Now();
  }
  absl::MutexLock refresh_lock(&refresh_mu_);
  absl::StatusOr<Stored> stored = LoadStored();
  if (!stored.ok()) {
    // Not fatal here: every use reads the store again and reports the error.
    log::Warn("freshbooks: cannot read the connection's stored tokens",
              {{"connection", options_.connection_id},
               {"error", std::string(stored.status().message())}});
  } else if (stored->needs_reauth.has_value()) {
    log::Error(absl::StrCat("freshbooks: connection needs re-authorization; run `mlc authorize "
                            "--connection ",
                            options_.connection_id, "`"),
               {{"connection", options_.connection_id}, {"reason", *stored->needs_reauth}});
  }
}

std::string FreshBooksClient::Name(const char* suffix) const {
  return absl::StrCat("freshbooks/", options_.connection_id, "/", suffix);
}

void FreshBooksClient::CountRequest(const std::string& status) const {
  if (metrics_.requests != nullptr) {
    metrics_.requests->With({options_.connection_id, status})->Inc();
  }
}

void FreshBooksClient::Sleep(absl::Duration d) const {
  if (options_.sleep) {
    options_.sleep(d);
  } else {
    absl::SleepFor(d);
  }
}

void FreshBooksClient::TakeBudget() {
  const double rate = options_.requests_per_second;
  if (!(rate > 0)) return;  // no budget configured
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    const double elapsed = std::max(absl::ToDoubleSeconds(now - budget_at_), 0.0);
    budget_at_ = now;
    budget_tokens_ =
        std::min(static_cast<double>(std::max(options_.burst, 1)), budget_tokens_ + elapsed * rate);
    // Take the token now even if it is owed: callers queue up fairly, each
    // waiting until its own token has been earned.
    budget_tokens_ -= 1;
    if (budget_tokens_ >= 0) return;
    wait = absl::Seconds(-budget_tokens_ / rate);
  }
  absl::SleepFor(wait);
}

absl::StatusOr<FreshBooksClient::Stored> FreshBooksClient::LoadStored() {
  Stored stored;
  const auto fail = [this](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("freshbooks connection \"", options_.connection_id,
                                               "\": reading stored tokens: ", s.message()));
  };
  absl::StatusOr<std::optional<std::string>> reauth = store_->GetState(Name("needs_reauth"));
  if (!reauth.ok()) return fail(reauth.status());
  stored.needs_reauth = *reauth;
  absl::StatusOr<std::optional<std::string>> access = store_->GetSecret(Name("access_token"));
  if (!access.ok()) return fail(access.status());
  stored.access_token = access->value_or("");
  absl::StatusOr<std::optional<std::string>> refresh = store_->GetSecret(Name("refresh_token"));
  if (!refresh.ok()) return fail(refresh.status());
  stored.refresh_token = refresh->value_or("");
  absl::StatusOr<std::optional<std::string>> expires = store_->GetState(Name("access_expires_at"));
  if (!expires.ok()) return fail(expires.status());
  int64_t seconds = 0;
  if (expires->has_value() && absl::SimpleAtoi(**expires, &seconds)) {
    stored.expires_at = absl::FromUnixSeconds(seconds);
  }

  {
    absl::MutexLock lock(&mu_);
    needs_reauth_ = stored.needs_reauth;
    if (stored.access_token.empty()) {
      access_token_.reset();
    } else {
      access_token_ = stored.access_token;
    }
    access_expires_at_ = stored.expires_at;
  }
  if (metrics_.needs_reauth != nullptr) {
    metrics_.needs_reauth->Set(stored.needs_reauth.has_value() ? 1 : 0);
  }
  return stored;
}

bool FreshBooksClient::HasTokens() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  absl::StatusOr<Stored> stored = LoadStored();
  return stored.ok() && !stored->refresh_token.empty();
}

std::optional<std::string> FreshBooksClient::NeedsReauthorization() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  absl::StatusOr<Stored> stored = LoadStored();
  if (stored.ok()) return stored->needs_reauth;
  absl::MutexLock lock(&mu_);
  return needs_reauth_;
}

std::optional<std::string> FreshBooksClient::GrantedScope() {
  absl::StatusOr<std::optional<std::string>> scope = store_->GetState(Name("scope"));
  if (!scope.ok()) return std::nullopt;
  return *scope;
}

absl::StatusOr<std::string> FreshBooksClient::ClientSecret() {
  if (options_.client_id.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("freshbooks connection \"", options_.connection_id,
                     "\": connections[].freshbooks.client_id is empty"));
  }
  absl::StatusOr<std::optional<std::string>> secret = store_->GetSecret(Name("client_secret"));
  if (!secret.ok()) {
    return absl::Status(secret.status().code(),
                        absl::StrCat("freshbooks connection \"", options_.connection_id,
                                     "\": reading the client secret: ", secret.status().message()));
  }
  if (!secret->has_value() || (*secret)->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "freshbooks connection \"", options_.connection_id,
        "\": connections[].freshbooks.client_secret is not set (it is needed to obtain tokens)"));
  }
  return **secret;
}

absl::StatusOr<FreshBooksClient::Grant> FreshBooksClient::RequestToken(
    const json& body, const std::string& what, const std::vector<std::string>& secrets,
    std::string* rejected) {
  rejected->clear();
  const std::string prefix =
      absl::StrCat("freshbooks connection \"", options_.connection_id, "\": ", what);
  std::string payload;
  try {
    payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const json::exception&) {
    return absl::InternalError(absl::StrCat(prefix, ": cannot encode the token request"));
  }
  absl::BitGen gen;
  const BackoffPolicy backoff{options_.initial_backoff, options_.max_backoff};
  const int attempts = std::max(options_.max_attempts, 1);
  for (int attempt = 0;; ++attempt) {
    TakeBudget();
    HttpRequest request;
    request.method = "POST";
    request.url = base_url_ + kTokenPath;
    request.timeout = options_.timeout;
    request.headers.emplace("Content-Type", "application/json");
    request.headers.emplace("Accept", "application/json");
    request.body = payload;
    absl::StatusOr<HttpResponse> response = http_->Send(request);

    std::string failure;
    absl::Duration retry_after = absl::ZeroDuration();
    if (!response.ok()) {
      CountRequest("network");
      failure = Scrub(std::string(response.status().message()), secrets);
    } else {
      const int status = response->status;
      CountRequest(absl::StrCat(status));
      const json answer = json::parse(response->body, nullptr, false);
      const std::optional<std::string> error = FreshBooksErrorMessage(answer);
      const std::string reason = Scrub(error.value_or(absl::StrCat("HTTP ", status)), secrets);
      if (status >= 200 && status < 300) {
        Grant grant;
        const json* access = Member(answer, "access_token");
        const auto* access_text =
            access == nullptr ? nullptr : access->get_ptr<const std::string*>();
        if (access_text == nullptr || access_text->empty()) {
          // Nothing usable was issued; whatever went wrong, retrying it is not
          // ours to decide (the refresh token may have been consumed).
          return absl::UnavailableError(absl::StrCat(prefix, ": the token endpoint answered HTTP ",
                                                     status, " without an access_token"));
        }
        grant.access_token = *access_text;
        if (const json* r = Member(answer, "refresh_token"); r != nullptr) {
          if (const auto* s = r->get_ptr<const std::string*>(); s != nullptr) {
            grant.refresh_token = *s;
          }
        }
        grant.expires_in = ExpiresIn(Member(answer, "expires_in")).value_or(kDefaultTokenLifetime);
        if (const json* scope = Member(answer, "scope"); scope != nullptr) {
          if (const auto* s = scope->get_ptr<const std::string*>(); s != nullptr) {
            grant.scope = *s;
          }
        }
        return grant;
      }
      if (status == 400 || status == 401) {
        *rejected = reason;
        return absl::UnauthenticatedError(
            absl::StrCat(prefix, ": FreshBooks rejected it (HTTP ", status, "): ", reason));
      }
      if (status != 429 && status < 500) {
        return absl::FailedPreconditionError(
            absl::StrCat(prefix, ": the token endpoint ", base_url_, kTokenPath, " answered HTTP ",
                         status, ": ", reason, " (check connections[].freshbooks.api_url)"));
      }
      if (auto ra = response->Header("Retry-After"); ra.has_value()) {
        retry_after =
            std::min(ParseRetryAfter(*ra).value_or(absl::ZeroDuration()), options_.max_retry_after);
      }
      failure = absl::StrCat("the token endpoint answered HTTP ", status);
    }
    if (attempt + 1 >= attempts) {
      // Transient however it failed: the caller may try again later.
      return absl::UnavailableError(
          absl::StrCat(prefix, ": ", failure, " (gave up after ", attempts, " attempts)"));
    }
    const absl::Duration delay = FullJitterDelay(backoff, attempt, gen, retry_after);
    log::Warn("freshbooks: token request failed; retrying",
              {{"connection", options_.connection_id},
               {"attempt", attempt + 1},
               {"delay_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(delay))},
               {"error", failure}});
    Sleep(delay);
  }
}

absl::Status FreshBooksClient::Persist(const Grant& grant, absl::Time obtained) {
  // Whole seconds, as stored, so the cache and the store agree.
  const int64_t expires_s = absl::ToUnixSeconds(obtained + grant.expires_in);
  CredentialStore::Change change;
  change.secrets.emplace_back(Name("access_token"), grant.access_token);
  if (!grant.refresh_token.empty()) {
    change.secrets.emplace_back(Name("refresh_token"), grant.refresh_token);
  }
  change.state.emplace_back(Name("access_expires_at"), absl::StrCat(expires_s));
  if (grant.scope.has_value()) change.state.emplace_back(Name("scope"), *grant.scope);
  change.state.emplace_back(Name("needs_reauth"), std::nullopt);
  if (absl::Status s = store_->Update(change); !s.ok()) {
    log::Error("freshbooks: cannot store the new tokens; they will not be used",
               {{"connection", options_.connection_id}, {"error", std::string(s.message())}});
    return absl::UnavailableError(
        absl::StrCat("freshbooks connection \"", options_.connection_id,
                     "\": cannot store the new tokens (not used until stored): ", s.message()));
  }
  {
    absl::MutexLock lock(&mu_);
    access_token_ = grant.access_token;
    access_expires_at_ = absl::FromUnixSeconds(expires_s);
    needs_reauth_.reset();
  }
  if (metrics_.needs_reauth != nullptr) metrics_.needs_reauth->Set(0);
  return absl::OkStatus();
}

void FreshBooksClient::MarkNeedsReauth(const std::string& reason) {
  if (absl::Status s = store_->PutState(Name("needs_reauth"), reason); !s.ok()) {
    log::Error("freshbooks: cannot record needs_reauth; it holds until restart",
               {{"connection", options_.connection_id}, {"error", std::string(s.message())}});
  }
  {
    absl::MutexLock lock(&mu_);
    needs_reauth_ = reason;
    access_token_.reset();
    access_expires_at_ = absl::InfinitePast();
  }
  if (metrics_.needs_reauth != nullptr) metrics_.needs_reauth->Set(1);
  log::Error(absl::StrCat("freshbooks: connection needs re-authorization; run `mlc authorize "
                          "--connection ",
                          options_.connection_id, "`"),
             {{"connection", options_.connection_id}, {"reason", reason}});
}

absl::StatusOr<std::string> FreshBooksClient::ExchangeCode(const std::string& code) {
  if (code.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "freshbooks connection \"", options_.connection_id, "\": the authorization code is empty"));
  }
  absl::MutexLock refresh_lock(&refresh_mu_);
  MLC_ASSIGN_OR_RETURN(const std::string secret, ClientSecret());
  const json body = {{"grant_type", "authorization_code"},
                     {"client_id", options_.client_id},
                     {"client_secret", secret},
                     {"code", code},
                     {"redirect_uri", options_.redirect_uri}};
  const absl::Time obtained = clock_->Now();
  std::string rejected;
  absl::StatusOr<Grant> grant =
      RequestToken(body, "exchanging the authorization code", {secret, code}, &rejected);
  if (!grant.ok()) {
    if (!rejected.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "freshbooks connection \"", options_.connection_id,
          "\": FreshBooks rejected the authorization code (", rejected,
          "); codes are single-use and short-lived, and redirect_uri must match the app's: start "
          "again with `mlc authorize --connection ",
          options_.connection_id, "`"));
    }
    return grant.status();
  }
  if (grant->refresh_token.empty()) {
    return absl::UnavailableError(
        absl::StrCat("freshbooks connection \"", options_.connection_id,
                     "\": the token endpoint answered without a refresh_token"));
  }
  unsaved_.reset();  // superseded by the new authorization
  MLC_RETURN_IF_ERROR(Persist(*grant, obtained));
  const std::string scope = grant->scope.value_or("");
  log::Info("freshbooks: connection authorized",
            {{"connection", options_.connection_id}, {"scope", scope}});
  return scope;
}

absl::StatusOr<std::string> FreshBooksClient::Refresh(const std::string& refresh_token) {
  MLC_ASSIGN_OR_RETURN(const std::string secret, ClientSecret());
  const json body = {{"grant_type", "refresh_token"},
                     {"client_id", options_.client_id},
                     {"client_secret", secret},
                     {"refresh_token", refresh_token},
                     {"redirect_uri", options_.redirect_uri}};
  const absl::Time obtained = clock_->Now();
  std::string rejected;
  absl::StatusOr<Grant> grant =
      RequestToken(body, "refreshing the access token", {secret, refresh_token}, &rejected);
  if (!grant.ok()) {
    if (metrics_.refresh_failures != nullptr) metrics_.refresh_failures->Inc();
    if (rejected.empty()) return grant.status();  // transient: nothing is marked
    const std::string reason = absl::StrCat("FreshBooks rejected the refresh token: ", rejected);
    MarkNeedsReauth(reason);
    return absl::UnauthenticatedError(absl::StrCat(
        "freshbooks connection \"", options_.connection_id, "\" needs re-authorization (", reason,
        "): run `mlc authorize --connection ", options_.connection_id, "`"));
  }
  if (absl::Status s = Persist(*grant, obtained); !s.ok()) {
    if (!grant->refresh_token.empty()) unsaved_.emplace(*grant, obtained);
    if (metrics_.refresh_failures != nullptr) metrics_.refresh_failures->Inc();
    return s;
  }
  if (metrics_.refreshes != nullptr) metrics_.refreshes->Inc();
  log::Info("freshbooks: access token refreshed",
            {{"connection", options_.connection_id},
             {"expires_in_s", static_cast<int64_t>(absl::ToInt64Seconds(grant->expires_in))}});
  return grant->access_token;
}

absl::StatusOr<std::string> FreshBooksClient::AccessToken(const std::string& stale) {
  const auto usable = [this, &stale](const std::string& token, absl::Time expires_at) {
    return !token.empty() && (stale.empty() || !ConstantTimeEquals(token, stale)) &&
           clock_->Now() + kRefreshMargin < expires_at;
  };
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!needs_reauth_.has_value() && access_token_.has_value() &&
        usable(*access_token_, access_expires_at_)) {
      return *access_token_;
    }
    generation = refresh_generation_;
  }

  // Single flight: whoever gets here first refreshes; the others wait and then
  // find the new token in the store.
  absl::MutexLock refresh_lock(&refresh_mu_);
  if (unsaved_.has_value()) {
    // A rotated grant we could not store: store it now (its refresh token is
    // the only live one) before anything else.
    const std::pair<Grant, absl::Time> pending = *unsaved_;
    MLC_RETURN_IF_ERROR(Persist(pending.first, pending.second));
    unsaved_.reset();
    log::Info("freshbooks: stored the rotated tokens after an earlier failure",
              {{"connection", options_.connection_id}});
  }
  MLC_ASSIGN_OR_RETURN(const Stored stored, LoadStored());
  if (stored.needs_reauth.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "freshbooks connection \"", options_.connection_id, "\" needs re-authorization (",
        *stored.needs_reauth, "): run `mlc authorize --connection ", options_.connection_id, "`"));
  }
  if (usable(stored.access_token, stored.expires_at)) return stored.access_token;
  {
    absl::MutexLock lock(&mu_);
    if (refresh_generation_ != generation && !last_refresh_status_.ok()) {
      return last_refresh_status_;  // the refresh this caller waited for failed
    }
  }
  if (stored.refresh_token.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("freshbooks connection \"", options_.connection_id,
                     "\" is not authorized yet (no tokens): run `mlc authorize --connection ",
                     options_.connection_id, "`"));
  }
  absl::StatusOr<std::string> token = Refresh(stored.refresh_token);
  absl::MutexLock lock(&mu_);
  ++refresh_generation_;
  last_refresh_status_ = token.status();
  return token;
}

absl::StatusOr<FreshBooksResponse> FreshBooksClient::Call(const std::string& method,
                                                          const std::string& path_and_query,
                                                          const std::optional<json>& body) {
  const std::string target =
      path_and_query.empty() || path_and_query[0] != '/' ? "/" + path_and_query : path_and_query;
  const std::string path = target.substr(0, target.find('?'));
  const std::string what =
      absl::StrCat("freshbooks connection \"", options_.connection_id, "\": ", method, " ", path);
  std::string payload;
  if (body.has_value()) {
    try {
      payload = body->dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const json::exception&) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": cannot encode the request body"));
    }
  }
  // A POST creates something: after a failure that may have reached the server
  // it is not sent again (429 and 503 are safe: the server refused it).
  const bool resend_ok = method != "POST" && method != "PATCH";

  absl::BitGen gen;
  const BackoffPolicy backoff{options_.initial_backoff, options_.max_backoff};
  const int attempts = std::max(options_.max_attempts, 1);
  std::string stale;
  bool refreshed = false;
  for (int attempt = 0;;) {
    MLC_ASSIGN_OR_RETURN(const std::string token, AccessToken(stale));
    TakeBudget();
    HttpRequest request;
    request.method = method;
    request.url = base_url_ + target;
    request.timeout = options_.timeout;
    request.headers.emplace("Authorization", absl::StrCat("Bearer ", token));
    request.headers.emplace("Accept", "application/json");
    if (body.has_value()) request.headers.emplace("Content-Type", "application/json");
    request.body = payload;
    absl::StatusOr<HttpResponse> response = http_->Send(request);

    absl::Status failure;
    absl::Duration retry_after = absl::ZeroDuration();
    if (!response.ok()) {
      CountRequest("network");
      const std::string message =
          absl::StrCat(what, ": ", Scrub(std::string(response.status().message()), {token}));
      if (!resend_ok && !RequestNotSent(response.status())) {
        return absl::Status(response.status().code(),
                            absl::StrCat(message, " (outcome unknown; not sent again)"));
      }
      failure = absl::Status(response.status().code(), message);
    } else {
      const int status = response->status;
      CountRequest(absl::StrCat(status));
      json parsed;  // null for an empty body
      if (!IsBlank(response->body)) {
        parsed = json::parse(response->body, nullptr, false);
        if (parsed.is_discarded()) {
          if (status >= 200 && status < 300) {
            return absl::InvalidArgumentError(
                absl::StrCat(what, ": HTTP ", status, " with an answer that is not JSON"));
          }
          parsed = nullptr;
        }
      }
      if (status >= 200 && status < 300) {
        if (const json* errors = ClassicErrors(parsed); errors != nullptr) {
          const std::string message = absl::StrCat(what, ": FreshBooks answered with an error: ",
                                                   Scrub(DescribeErrors(*errors), {token}));
          return SaysNotFound(*errors) ? absl::NotFoundError(message)
                                       : absl::InvalidArgumentError(message);
        }
        return FreshBooksResponse{status, std::move(parsed)};
      }
      std::optional<std::string> error = FreshBooksErrorMessage(parsed);
      if (!error.has_value()) {
        if (const auto* m = Member(parsed, "message"); m != nullptr && m->is_string()) {
          error = Clip(m->get_ref<const std::string&>());
        }
      }
      const std::string detail =
          absl::StrCat(what, ": HTTP ", status, error.has_value() ? ": " : "",
                       Scrub(error.value_or(""), {token}));
      if (status == 401) {
        if (!refreshed) {
          refreshed = true;
          stale = token;
          log::Warn("freshbooks: access token rejected; refreshing it and retrying once",
                    {{"connection", options_.connection_id}, {"method", method}, {"path", path}});
          continue;
        }
        return absl::UnauthenticatedError(
            absl::StrCat(detail, " (rejected again after a token refresh)"));
      }
      if (status == 404) return absl::NotFoundError(detail);
      if (status == 403) return absl::PermissionDeniedError(detail);
      if (status == 429) {
        failure = absl::ResourceExhaustedError(detail);
      } else if (status >= 500) {
        if (!resend_ok && status != 503) {
          return absl::UnavailableError(absl::StrCat(detail, " (outcome unknown; not sent again)"));
        }
        failure = absl::UnavailableError(detail);
      } else {
        return absl::InvalidArgumentError(detail);
      }
      if (auto ra = response->Header("Retry-After"); ra.has_value()) {
        retry_after =
            std::min(ParseRetryAfter(*ra).value_or(absl::ZeroDuration()), options_.max_retry_after);
      }
    }

    if (++attempt >= attempts) {
      return absl::Status(failure.code(), absl::StrCat(failure.message(), " (gave up after ",
                                                       attempts, " attempts)"));
    }
    const absl::Duration delay = FullJitterDelay(backoff, attempt - 1, gen, retry_after);
    log::Warn("freshbooks: request failed; retrying",
              {{"connection", options_.connection_id},
               {"method", method},
               {"path", path},
               {"attempt", attempt},
               {"delay_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(delay))},
               {"error", std::string(failure.message())}});
    Sleep(delay);
  }
}

}  // namespace mlc::writer
